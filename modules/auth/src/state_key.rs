//! Every key of the auth module. All start with `auth/`.
use framework::Address;

pub const PARAMS: &[u8] = b"auth/params";
pub const NEXT_ACCOUNT_NUMBER: &[u8] = b"auth/next_account_number";
pub const ACCOUNT_PREFIX: &[u8] = b"auth/account/";

/// `auth/account/<20-byte address>` → `BaseAccount` (protobuf).
pub fn account(a: &Address) -> Vec<u8> {
    [ACCOUNT_PREFIX, a.as_bytes()].concat()
}
