//! `MsgRespond`: the challenger agrees with `h_mid` (the fault is later) or
//! not (the fault is earlier); the interval halves.
use framework::{BlockCtx, StateWrite};

use crate::component::game::after_interval;
use crate::component::state::VerdeWrite;
use crate::dispute::Phase;
use crate::error::{Result, VerdeError};
use crate::msg::MsgRespond;

pub fn execute<S: StateWrite + ?Sized>(s: &mut S, ctx: &BlockCtx, m: &MsgRespond) -> Result<()> {
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
