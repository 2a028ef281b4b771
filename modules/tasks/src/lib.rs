//! `tasks`: escrowed training jobs.
//!
//! A submitter escrows `reward + verification_fee` with a program and a
//! **verification level** (full re-execution by default, or sampling); the
//! program is validated here, cheapest checks first: its state size and node
//! count are bounded before it is expanded, and every node's referee cost
//! must fit `max_referee_flops` and `max_reveal_bytes`. A solver whose bonded
//! stake covers `solver_stake_per_claim` for each open obligation claims it
//! with a bond and commits `trace_root` (Merkle root over `h_0..h_T`) and
//! `h_T` before its deadline. In the next block verifiers are drawn by stake
//! from that block's hash; the draw also fixes each one's **evidence step**
//! `s`, and an attestation must prove `h_s` against `trace_root`, which takes
//! the whole run (the proof's siblings cover every other step). The challenge
//! window grows with the job's FLOPs. Any number of disputes (`verde`) may be
//! open at once; the task finalizes when its window has passed and none is
//! open: the solver gets reward and bond, attesters share the fee, drawn
//! verifiers that neither attested nor challenged are slashed. A lost
//! dispute fails the task: the submitter is refunded and every attester of
//! the wrong result slashed. Claims, selections and disputes lock stake
//! (`staking::StakingLocks`) until they resolve.
//!
//! Every movement of funds emits `EventPayout`. Invariant: the module account
//! holds exactly the sum over unfinished tasks of reward + fee + bond
//! ([`check_escrow`]). Consensus code: integers and hashes only; the program's
//! floats are parsed but never computed with here. Must not depend on ABCI,
//! tonic, sled or tokio.

// Consensus code never panics: no unwrap/expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod component;
pub mod error;
pub mod event;
pub mod genesis;
pub mod level;
pub mod msg;
pub mod params;
pub mod program;
pub mod query;
pub mod state_key;
pub mod stats;
pub mod task;

pub use component::dispute::{Settlement, TaskDisputes, Verdict};

/// Work units of `MsgPostCheckpoint` (the program's expansion and the
/// checkpoint's decoding and hashing): as much as opening a dispute.
pub const POST_CHECKPOINT_UNITS: u64 = 1_000;

/// Bytes of a transaction carrying a posted checkpoint beyond the
/// checkpoint itself (signature, proof, envelope), for its fee.
pub const POST_CHECKPOINT_OVERHEAD: usize = 4096;
pub use component::end_block::end_block;
pub use component::state::TasksRead;
pub use error::TasksError;
pub use genesis::{export_genesis, init_genesis};
pub use msg::TasksMsg;
pub use params::Params;
pub use program::validate_program;
pub use query::{check_escrow, summary};
pub use task::{parse_schema, status_name, DatasetLayout, Level, Status, Task};

use framework::Address;

pub const MODULE: &str = "tasks";

pub fn module_address() -> Address {
    Address::module(MODULE)
}

/// Kinds of deadline queue entries (the byte in `tasks/deadline/...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Deadline {
    Claim = 1,
    Commit = 2,
    Select = 3,
    Finalize = 4,
    Availability = 5,
}

impl Deadline {
    fn from_u8(b: u8) -> Option<Deadline> {
        Some(match b {
            1 => Deadline::Claim,
            2 => Deadline::Commit,
            3 => Deadline::Select,
            5 => Deadline::Availability,
            4 => Deadline::Finalize,
            _ => return None,
        })
    }
}
