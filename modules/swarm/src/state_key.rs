//! Every key of the swarm module. All start with `swarm/`.
use framework::Address;

pub const PARAMS: &[u8] = b"swarm/params";
pub const NEXT_ID: &[u8] = b"swarm/next_id";
pub const SWARM_PREFIX: &[u8] = b"swarm/swarm/";
pub const ROUND_PREFIX: &[u8] = b"swarm/round/";
pub const CHECK_PREFIX: &[u8] = b"swarm/check/";
pub const SCORE_PREFIX: &[u8] = b"swarm/score/";
pub const RANK_PREFIX: &[u8] = b"swarm/rank/";
pub const TASK_PREFIX: &[u8] = b"swarm/task/";

/// `swarm/swarm/<id u64 BE>` → `Swarm`.
pub fn swarm(id: u64) -> Vec<u8> {
    [SWARM_PREFIX, &id.to_be_bytes()].concat()
}

/// `swarm/round/<id u64 BE>/<round u64 BE>` → `Round` (every round is kept: the history).
pub fn round(id: u64, r: u64) -> Vec<u8> {
    [ROUND_PREFIX, &id.to_be_bytes(), b"/", &r.to_be_bytes()].concat()
}

/// `swarm/check/<height u64 BE>/<id u64 BE>` → empty: when a swarm's round next
/// looks at its tasks.
pub fn check(height: u64, id: u64) -> Vec<u8> {
    framework::queue_key(CHECK_PREFIX, height, &id.to_be_bytes())
}

/// `swarm/task/<task id u64 BE>` → swarm id (u64 BE): the tasks a swarm created.
pub fn task(task_id: u64) -> Vec<u8> {
    [TASK_PREFIX, &task_id.to_be_bytes()].concat()
}

/// `swarm/score/<swarm u64 BE>/<addr>` → `ContributorScore` (swarm 0: over all swarms).
pub fn score(swarm: u64, a: &Address) -> Vec<u8> {
    [SCORE_PREFIX, &swarm.to_be_bytes(), b"/", a.as_bytes()].concat()
}

/// `swarm/rank/<swarm u64 BE>/` : the prefix of one ranking.
pub fn rank_prefix(swarm: u64) -> Vec<u8> {
    [RANK_PREFIX, &swarm.to_be_bytes(), b"/"].concat()
}

/// `swarm/rank/<swarm u64 BE>/<!quality u128 BE>/<addr>` → empty: the ranking by
/// verified quality, best first (ties by address).
pub fn rank(swarm: u64, quality: u128, a: &Address) -> Vec<u8> {
    [
        rank_prefix(swarm).as_slice(),
        &(!quality).to_be_bytes(),
        b"/",
        a.as_bytes(),
    ]
    .concat()
}
