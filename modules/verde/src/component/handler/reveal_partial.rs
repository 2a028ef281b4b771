//! `MsgRevealPartial`: in the fold bisection inside output element `e`, the solver
//! reveals its fold state at `fold_mid` (a product's partial sum, a column sum's 32
//! lanes) for the challenger to agree with or not. The first reveal of a column sum
//! is its state after every row (`fold_mid = fold_hi`), which must combine to the
//! solver's element.
use framework::{BlockCtx, StateWrite};
use repops::tile;

use crate::component::inner;
use crate::component::state::VerdeWrite;
use crate::dispute::{Phase, Turn};
use crate::error::{Result, VerdeError};
use crate::msg::MsgRevealPartial;
use crate::proof::disputed_node;

pub fn execute<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    m: &MsgRevealPartial,
) -> Result<()> {
    let mut d = s.active(ctx, m.dispute_id, Phase::FoldReveal, &m.solver)?;
    let (_, _, node) = disputed_node(s, d.task_id, d.node)?;
    let shapes: Vec<&[usize]> = node.input_shapes.iter().map(Vec::as_slice).collect();
    let width = tile::fold(&node.op, &shapes).map_or(0, |f| f.width);
    if m.acc.len() != width {
        return Err(VerdeError::BadUpload(format!(
            "a fold state of {} floats; this fold's has {width}",
            m.acc.len()
        )));
    }
    let mid = d.inner.fold_mid;
    if mid == d.inner.fold_hi {
        let floats: Vec<f32> = m.acc.iter().map(|&b| f32::from_bits(b)).collect();
        let v = tile::element_value(&node.op, &shapes, &floats)
            .map_err(|e| VerdeError::Referee(e.to_string()))?;
        if Some(v.to_bits()) != d.inner.solver_value {
            return Err(VerdeError::BadProof(format!(
                "these lanes make {:#010x}, not your output element",
                v.to_bits()
            )));
        }
        d.inner.acc_hi = m.acc.clone();
        d.record(
            ctx.height,
            "solver",
            format!("reveal the fold state at step {mid} (the end)"),
        );
        return inner::after_fold(s, ctx, &mut d, &node);
    }
    d.inner.acc_mid = m.acc.clone();
    d.record(
        ctx.height,
        "solver",
        format!("reveal the fold state at step {mid}"),
    );
    s.next_move(ctx, &mut d, Phase::FoldRespond, Turn::Challenger)
}
