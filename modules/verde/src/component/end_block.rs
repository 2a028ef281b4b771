//! End-block hook: whoever owes a move past its deadline loses.
use framework::{BlockCtx, StateError, StateWrite};

use crate::component::state::{VerdeRead, VerdeWrite};
use crate::dispute::Phase;
use crate::error::Result;
use crate::state_key;

pub fn end_block<S: StateWrite + ?Sized>(s: &mut S, ctx: &BlockCtx) -> Result<()> {
    loop {
        let due = framework::take_due(s, state_key::DEADLINE_PREFIX, ctx.height, 64)?;
        if due.is_empty() {
            return Ok(());
        }
        for e in due {
            let id = <[u8; 8]>::try_from(e.rest.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| StateError::Corrupt {
                    key: format!("verde/deadline/{}/{:?}", e.height, e.rest),
                    reason: "bad deadline entry".into(),
                })?;
            let mut d = s.dispute(id)?;
            if d.phase == Phase::Resolved || d.deadline.saturating_add(1) != e.height {
                continue; // a later move reset the clock, or it ended
            }
            // Exhaustive on purpose: a new phase must say who owes its move.
            let (solver_moved, challenger_moved) = match d.phase {
                Phase::OpRoots => (d.solver_op_root.is_some(), d.challenger_op_root.is_some()),
                Phase::Descent | Phase::TraceDescent | Phase::OutputDescent => (
                    !d.solver_children.is_empty(),
                    !d.challenger_children.is_empty(),
                ),
                Phase::BisectRespond | Phase::FoldRespond => (true, false),
                Phase::BisectReveal
                | Phase::Assembly
                | Phase::Reveal
                | Phase::FoldReveal
                | Phase::TileInputs => (false, true),
                Phase::Resolved => continue,
            };
            // The solver wins only if it moved and the challenger did not.
            let solver_right = solver_moved && !challenger_moved;
            let who = if solver_right { "challenger" } else { "solver" };
            let reason = format!(
                "the {who} missed its {} deadline at height {}",
                d.phase.name(),
                d.deadline
            );
            s.resolve(ctx, &mut d, solver_right, &reason)?;
        }
    }
}
