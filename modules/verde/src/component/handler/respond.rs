//! `MsgRespond`: the challenger agrees with `h_mid` (the fault is later) or
//! not (the fault is earlier); the interval halves. The same move answers the
//! fold bisection inside one output element (`acc_mid` at `fold_mid`).
use framework::{BlockCtx, StateWrite};

use crate::component::game::after_interval;
use crate::component::state::{VerdeRead, VerdeWrite};
use crate::dispute::Phase;
use crate::error::{Result, VerdeError};
use crate::msg::MsgRespond;

pub fn execute<S: StateWrite + ?Sized>(s: &mut S, ctx: &BlockCtx, m: &MsgRespond) -> Result<()> {
    if s.dispute(m.dispute_id)?.phase == Phase::FoldRespond {
        return fold(s, ctx, m);
    }
    let mut d = s.active(ctx, m.dispute_id, Phase::BisectRespond, &m.challenger)?;
    let h_mid = d.h_mid.ok_or(VerdeError::WrongPhase {
        id: d.id,
        phase: "bisect-reveal",
    })?;
    if m.agree {
        d.lo = d.mid;
        d.h_lo = h_mid;
    } else {
        d.hi = d.mid;
        d.h_hi = h_mid;
    }
    d.rounds += 1;
    let note = format!(
        "{} with h_{}: interval ({}, {}]",
        if m.agree { "agree" } else { "disagree" },
        d.mid,
        d.lo,
        d.hi
    );
    d.record(ctx.height, "challenger", note);
    after_interval(s, ctx, &mut d)
}

/// The fold bisection's answer: agreeing moves the agreed state up to `fold_mid`,
/// disagreeing makes the solver's state there the disputed end.
fn fold<S: StateWrite + ?Sized>(s: &mut S, ctx: &BlockCtx, m: &MsgRespond) -> Result<()> {
    let mut d = s.active(ctx, m.dispute_id, Phase::FoldRespond, &m.challenger)?;
    let acc = std::mem::take(&mut d.inner.acc_mid);
    if m.agree {
        d.inner.fold_lo = d.inner.fold_mid;
        d.inner.acc_lo = acc;
    } else {
        d.inner.fold_hi = d.inner.fold_mid;
        d.inner.acc_hi = acc;
    }
    d.rounds += 1;
    let note = format!(
        "{} with the fold state at step {}: interval ({}, {}]",
        if m.agree { "agree" } else { "disagree" },
        d.inner.fold_mid,
        d.inner.fold_lo,
        d.inner.fold_hi
    );
    d.record(ctx.height, "challenger", note);
    let (_, _, node) = crate::proof::disputed_node(s, d.task_id, d.node)?;
    crate::component::inner::after_fold(s, ctx, &mut d, &node)
}
