//! `verde`: the dispute game over a committed training result.
//!
//! 1. **Open** on steps `(lo, hi]`: the challenger posts a bond and the
//!    solver's `h_lo` (agreed) and `h_hi` (disputed), both proven against the
//!    task's `trace_root` (`lo = 0` with the program's `h_0` and `hi = T` with
//!    the committed final hash need no proof). `hi = 0` disputes `h_0`.
//!    **Any number of disputes may be open on one task**: no challenger, and
//!    no sybil of the solver's, can keep another from disputing.
//! 2. **Step bisection** while `hi - lo > 1`: the solver reveals `h_mid` with a
//!    proof against `trace_root`; the challenger agrees (`lo = mid`) or not
//!    (`hi = mid`).
//! 3. **Op roots** of step `hi`: both post theirs. Equal roots mean both agree
//!    on every node output, so the solver must prove that `h_hi` assembles from
//!    them (**assembly**). Different roots start the **descent** to the
//!    leftmost differing leaf `j`.
//! 4. **Reveal**: the solver uploads node `j`'s inputs in chunks, each stored
//!    once under its own key and deleted when the dispute ends; each input is
//!    checked when complete (state tensors against `h_lo`, earlier outputs
//!    against its op root); batch inputs are rebuilt by the referee from the
//!    dataset (the chain's builtin copy, or proven rows).
//! 5. **Adjudicate**: the referee (`referee.rs`) runs node `j` with the CPU
//!    RepOps reference — the only floating point in consensus.
//! 6. **Clocks**: every move has a deadline `move_blocks` ahead; whoever owes a
//!    move and misses it loses. Silence never wins.
//!
//! The loser pays: a wrong challenger's bond goes to the solver; a wrong
//! solver loses its claim bond and `solver_slash` of stake, of which
//! `challenger_reward_percent` goes to the challenger and the rest is burned;
//! the task fails (submitter refunded, attesters slashed, see `tasks`) and
//! every other open dispute on it closes as moot with its bond returned.
//! Challengers' stake is locked while their dispute is open. Must not depend
//! on ABCI, tonic, sled or tokio.

// Consensus code never panics: no unwrap/expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod component;
pub mod dispute;
pub mod error;
pub mod event;
pub mod genesis;
pub mod msg;
pub mod params;
pub(crate) mod proof;
pub mod query;
pub mod referee;
pub mod state_key;

pub use component::end_block::end_block;
pub use component::state::VerdeRead;
pub use dispute::{phase_name, Dispute, Phase, Turn};
pub use error::VerdeError;
pub use genesis::{export_genesis, init_genesis};
pub use msg::VerdeMsg;
pub use params::Params;
pub use query::check_escrow;

use framework::Address;

pub const MODULE: &str = "verde";

pub fn module_address() -> Address {
    Address::module(MODULE)
}
