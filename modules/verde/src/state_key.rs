//! Every key of the verde module. All start with `verde/`.
pub const PARAMS: &[u8] = b"verde/params";
pub const NEXT_ID: &[u8] = b"verde/next_id";
pub const DISPUTE_PREFIX: &[u8] = b"verde/dispute/";
pub const DEADLINE_PREFIX: &[u8] = b"verde/deadline/";

/// `verde/dispute/<id u64 BE>` → `Dispute`.
pub fn dispute(id: u64) -> Vec<u8> {
    [DISPUTE_PREFIX, &id.to_be_bytes()].concat()
}

/// `verde/deadline/<height u64 BE>/<id u64 BE>` → empty.
pub fn deadline(height: u64, id: u64) -> Vec<u8> {
    [
        DEADLINE_PREFIX,
        &height.to_be_bytes(),
        b"/",
        &id.to_be_bytes(),
    ]
    .concat()
}
