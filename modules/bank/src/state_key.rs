//! Every key of the bank module. All start with `bank/`.
use framework::Address;

pub const SUPPLY: &[u8] = b"bank/supply";
pub const BALANCE_PREFIX: &[u8] = b"bank/balance/";

/// `bank/balance/<20-byte address>` → 16-byte big-endian uvtr amount. Absent = 0.
pub fn balance(a: &Address) -> Vec<u8> {
    [BALANCE_PREFIX, a.as_bytes()].concat()
}
