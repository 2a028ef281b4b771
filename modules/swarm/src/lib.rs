//! `swarm`: collaborative training in verified rounds.
//!
//! A swarm has a base program, a held-out evaluation pool (the rows of its
//! dataset after `train_rows`), a budget per round and round parameters.
//! Round `r` starts from a committed global state `G_r`. Contributors take
//! slots; each slot is a task (train `inner_steps` from `G_r` on the slot's
//! shard) that the contributor claims and that is verified and disputable like
//! any job. When every contribution has ended, the chain draws the evaluation
//! seed and submits evaluation tasks (forward only, `record_loss`) for `G_r`
//! and each verified, distinct contribution; evaluators are solvers claiming
//! them, verified like any job. Their losses are reported with proofs against
//! the verified traces and become integers exactly. Settlement pays quality
//! shares in proportion to each contribution's improvement over `G_r`, makes
//! the best one `G_{r+1}`, and ranks contributors by verified quality. See
//! README.md for the design, what it defends against and what is left.
//!
//! Consensus code: integers and hashes only; it never computes with the
//! programs' floats. Must not depend on ABCI, tonic, sled or tokio.

// Consensus code never panics: no unwrap/expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod component;
pub mod error;
pub mod event;
pub mod fixed;
pub mod genesis;
pub mod msg;
pub mod params;
pub mod query;
pub mod state_key;
pub mod swarm;

pub use component::end_block::end_block;
pub use component::state::SwarmRead;
pub use error::SwarmError;
pub use genesis::{export_genesis, init_genesis};
pub use msg::SwarmMsg;
pub use params::Params;
pub use query::check_escrow;
pub use swarm::{Phase, Round, Swarm};

use framework::Address;

pub const MODULE: &str = "swarm";

pub fn module_address() -> Address {
    Address::module(MODULE)
}
