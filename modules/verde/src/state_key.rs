//! Every key of the verde module. All start with `verde/`.
pub const PARAMS: &[u8] = b"verde/params";
pub const NEXT_ID: &[u8] = b"verde/next_id";
pub const DISPUTE_PREFIX: &[u8] = b"verde/dispute/";
pub const DEADLINE_PREFIX: &[u8] = b"verde/deadline/";
pub const UPLOAD_PREFIX: &[u8] = b"verde/upload/";
pub const ROW_PREFIX: &[u8] = b"verde/row/";

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

/// `verde/upload/<dispute u64 BE>/` : every uploaded chunk of a dispute.
pub fn uploads(dispute: u64) -> Vec<u8> {
    [UPLOAD_PREFIX, &dispute.to_be_bytes(), b"/"].concat()
}

/// `verde/upload/<dispute>/<input u32 BE>/` : the chunks of one input.
pub fn upload_input(dispute: u64, input: u32) -> Vec<u8> {
    [uploads(dispute).as_slice(), &input.to_be_bytes(), b"/"].concat()
}

/// `verde/upload/<dispute>/<input>/<offset u64 BE>` → the chunk's bytes,
/// written once and deleted when the dispute ends.
pub fn upload_chunk(dispute: u64, input: u32, offset: u64) -> Vec<u8> {
    [
        upload_input(dispute, input).as_slice(),
        &offset.to_be_bytes(),
    ]
    .concat()
}

/// `verde/row/<dispute u64 BE>/` : proven dataset rows of a dispute.
pub fn rows(dispute: u64) -> Vec<u8> {
    [ROW_PREFIX, &dispute.to_be_bytes(), b"/"].concat()
}

/// `verde/row/<dispute>/<row u64 BE>` → the row's bytes.
pub fn row(dispute: u64, row: u64) -> Vec<u8> {
    [rows(dispute).as_slice(), &row.to_be_bytes()].concat()
}
