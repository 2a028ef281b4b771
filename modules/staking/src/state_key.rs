//! Every key of the staking module. All start with `staking/`.
use crate::Role;
use framework::Address;

pub const PARAMS: &[u8] = b"staking/params";
pub const OPERATOR_PREFIX: &[u8] = b"staking/operator/";
pub const ROLE_PREFIX: &[u8] = b"staking/role/";
pub const UNBONDING_PREFIX: &[u8] = b"staking/unbonding/";
pub const LOCK_PREFIX: &[u8] = b"staking/lock/";

/// `staking/lock/<addr>` → u64: open obligations that keep the stake bonded.
pub fn lock(a: &Address) -> Vec<u8> {
    [LOCK_PREFIX, a.as_bytes()].concat()
}

/// `staking/operator/<addr>` → `Operator` (protobuf).
pub fn operator(a: &Address) -> Vec<u8> {
    [OPERATOR_PREFIX, a.as_bytes()].concat()
}

/// `staking/role/<role byte>/` : prefix of the role index.
pub fn role_prefix(r: Role) -> Vec<u8> {
    [ROLE_PREFIX, &[r as u8, b'/']].concat()
}

/// `staking/role/<role byte>/<addr>` → empty: index of operators by role.
pub fn role_index(r: Role, a: &Address) -> Vec<u8> {
    [role_prefix(r).as_slice(), a.as_bytes()].concat()
}

/// `staking/unbonding/<completion height, 8 bytes BE>/<addr>` → amount (16 bytes BE).
pub fn unbonding(height: u64, a: &Address) -> Vec<u8> {
    framework::queue_key(UNBONDING_PREFIX, height, a.as_bytes())
}
