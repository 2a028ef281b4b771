//! `MsgRevealMid`: the solver reveals `h_mid` with its proof against
//! `trace_root` (it cannot change what it committed).
use framework::{BlockCtx, StateWrite};
use tasks::TasksRead;

use crate::component::game::after_interval;
use crate::component::state::VerdeWrite;
use crate::dispute::{Phase, Turn};
use crate::error::{Result, VerdeError};
use crate::msg::MsgRevealMid;
use crate::proof::check_proof;

pub fn execute<S: StateWrite + ?Sized>(s: &mut S, ctx: &BlockCtx, m: &MsgRevealMid) -> Result<()> {
    let mut d = s.active(ctx, m.dispute_id, Phase::BisectReveal, &m.solver)?;
    let t = s.task(d.task_id)?;
    let c = t.commitment.ok_or(VerdeError::NotFound(d.id))?;
    check_proof(
        &c.trace_root,
        &m.h_mid,
        &m.proof,
        d.mid,
        t.steps.saturating_add(1),
        "h_mid",
    )?;
    d.h_mid = Some(m.h_mid);
    let note = format!("reveal h_{} = {}", d.mid, hex::encode(&m.h_mid[..8]));
    d.record(ctx.height, "solver", note);
    if d.mid == d.lo {
        // After a trace descent: h_lo is agreed (every leaf left of the
        // differing one agrees); the dispute is now on (lo, lo + 1].
        d.h_lo = m.h_mid;
        d.rounds += 1;
        return after_interval(s, ctx, &mut d);
    }
    s.next_move(ctx, &mut d, Phase::BisectRespond, Turn::Challenger)
}
