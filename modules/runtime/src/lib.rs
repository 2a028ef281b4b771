//! `runtime`: the module set as one state machine, written once for the node
//! and for every test: message dispatch (an exhaustive `match`), the
//! end-block order, the invariants checked after every block in tests, and a
//! test world that drives them on an in-memory state.
//!
//! Knows nothing of ABCI, tonic, sled or tokio (the node in `app/` maps
//! ABCI onto this).

// Consensus code never panics: no unwrap/expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod error;
pub mod msg;
pub mod testkit;

pub use error::TxFailure;
pub use msg::Msg;

use framework::{BlockCtx, Delta, Event, Layered, StateRead, StateWrite};

/// The end-block hooks, in the order they run: unbondings pay out first,
/// then dispute clocks (a dispute decided here settles its task), then task
/// deadlines (finalization sees every dispute of this block settled), then
/// swarm rounds (they see every task that ended in this block).
pub const END_BLOCK_ORDER: [&str; 4] = ["staking", "verde", "tasks", "swarm"];

fn run_hook<S: StateWrite + ?Sized>(name: &str, s: &mut S, ctx: &BlockCtx) -> Result<(), String> {
    match name {
        "staking" => staking::StakingWrite::end_block(s, ctx).map_err(|e| e.to_string()),
        "verde" => verde::end_block(s, ctx).map_err(|e| e.to_string()),
        "tasks" => tasks::end_block(s, ctx).map_err(|e| e.to_string()),
        "swarm" => swarm::end_block(s, ctx).map_err(|e| e.to_string()),
        other => Err(format!("unknown end-block hook {other}")),
    }
}

/// A hook that failed: its changes were dropped (the same on every node,
/// since hooks are deterministic).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookFailure {
    pub hook: &'static str,
    pub error: String,
}

/// Runs every end-block hook in [`END_BLOCK_ORDER`], each in its own delta on
/// top of `block`: a hook's writes join the block if it succeeds. Returns the
/// hooks' events and failures.
pub fn end_block<B: StateRead>(
    base: &B,
    block: &mut Delta,
    ctx: &BlockCtx,
) -> (Vec<Event>, Vec<HookFailure>) {
    let mut events = Vec::new();
    let mut failures = Vec::new();
    for hook in END_BLOCK_ORDER {
        let mut d = Delta::default();
        let r = {
            let below = Layered::new(base, block);
            let mut s = Layered::new(&below, &mut d);
            run_hook(hook, &mut s, ctx)
        };
        match r {
            Ok(()) => {
                events.append(&mut d.events);
                block.writes.extend(d.writes);
            }
            Err(error) => failures.push(HookFailure { hook, error }),
        }
    }
    (events, failures)
}

/// Conservation: supply equals the sum of balances, and each module account
/// holds exactly its open obligations.
pub fn check_invariants<S: StateRead + ?Sized>(s: &S) -> Result<(), String> {
    bank::check_supply(s).map_err(|e| format!("supply: {e}"))?;
    tasks::check_escrow(s).map_err(|e| format!("tasks escrow: {e}"))?;
    verde::check_escrow(s).map_err(|e| format!("verde escrow: {e}"))?;
    swarm::check_escrow(s).map_err(|e| format!("swarm escrow: {e}"))?;
    Ok(())
}
