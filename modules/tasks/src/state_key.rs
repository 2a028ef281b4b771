//! Every key of the tasks module. All start with `tasks/`.
use framework::Address;

pub const PARAMS: &[u8] = b"tasks/params";
pub const NEXT_ID: &[u8] = b"tasks/next_id";
pub const TASK_PREFIX: &[u8] = b"tasks/task/";
pub const DEADLINE_PREFIX: &[u8] = b"tasks/deadline/";
pub const STATS_PREFIX: &[u8] = b"tasks/stats/";
pub const CHECKPOINT_PREFIX: &[u8] = b"tasks/checkpoint/";

/// `tasks/checkpoint/<id u64 BE>/<step u64 BE>` → the checkpoint bytes a
/// solver posted on request (deleted when the task ends).
pub fn posted_checkpoint(id: u64, step: u64) -> Vec<u8> {
    [
        CHECKPOINT_PREFIX,
        &id.to_be_bytes(),
        b"/",
        &step.to_be_bytes(),
    ]
    .concat()
}

/// `tasks/task/<id u64 BE>` → `Task`.
pub fn task(id: u64) -> Vec<u8> {
    [TASK_PREFIX, &id.to_be_bytes()].concat()
}

/// `tasks/deadline/<height u64 BE>/<id u64 BE>/<kind>` → empty: the deadline queue.
pub fn deadline(height: u64, id: u64, kind: u8) -> Vec<u8> {
    [
        DEADLINE_PREFIX,
        &height.to_be_bytes(),
        b"/",
        &id.to_be_bytes(),
        b"/",
        &[kind],
    ]
    .concat()
}

/// `tasks/stats/<addr>` → `OperatorStats`.
pub fn stats(a: &Address) -> Vec<u8> {
    [STATS_PREFIX, a.as_bytes()].concat()
}
