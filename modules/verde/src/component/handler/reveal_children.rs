//! `MsgRevealChildren`: in the descent both reveal the two children of their
//! current tree node (checked against it); the game follows the leftmost
//! child that differs, down to one leaf: the disputed node `j`.
use framework::{BlockCtx, StateWrite};
use tasks::TasksRead;
use train::merkle;

use crate::component::game::{descend_promoted, start_reveal};
use crate::component::state::{VerdeRead, VerdeWrite};
use crate::dispute::{Phase, Turn};
use crate::error::{h32, Result, VerdeError};
use crate::msg::MsgRevealChildren;
use crate::proof::level_sizes;

pub fn execute<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    m: &MsgRevealChildren,
) -> Result<()> {
    let id = m.dispute_id;
    let mut d = s.dispute(id)?;
    // The same move serves both descents: over the trace tree (h_0..h_T) and
    // over one step's operator tree.
    let trace = d.phase == Phase::TraceDescent;
    s.check_phase(
        ctx,
        &d,
        if trace {
            Phase::TraceDescent
        } else {
            Phase::Descent
        },
    )?;
    let who = d.party(&m.sender).ok_or_else(|| {
        VerdeError::NotYourMove(format!("{} is not a party of dispute {id}", m.sender))
    })?;
    let is_solver = who == Turn::Solver;
    let (node, slot) = if is_solver {
        (d.solver_node, &mut d.solver_children)
    } else {
        (d.challenger_node, &mut d.challenger_children)
    };
    if !slot.is_empty() {
        return Err(VerdeError::NotYourMove(format!(
            "{} already revealed at this level",
            m.sender
        )));
    }
    let node = node.ok_or(VerdeError::WrongPhase {
        id,
        phase: "descent",
    })?;
    let l = m.left;
    if d.level == 0 {
        if m.right.is_some() || merkle::leaf_node(&l) != node {
            return Err(VerdeError::BadProof(
                "the leaf value does not hash to your tree node".into(),
            ));
        }
        *slot = l.to_vec();
    } else {
        let r = m
            .right
            .ok_or_else(|| VerdeError::BadProof("right child missing".into()))?;
        if merkle::internal_node(&l, &r) != node {
            return Err(VerdeError::BadProof(
                "the children do not hash to your tree node".into(),
            ));
        }
        *slot = [l, r].concat();
    }
    let actor = if is_solver { "solver" } else { "challenger" };
    let note = format!(
        "reveal {}level {} node {}",
        if trace { "trace " } else { "" },
        d.level,
        d.index
    );
    d.record(ctx.height, actor, note);
    if d.solver_children.is_empty() || d.challenger_children.is_empty() {
        let pending = d.solver_children.is_empty();
        s.await_other(&mut d, pending);
        return Ok(());
    }
    d.rounds += 1;
    let t = s.task(d.task_id)?;
    if d.level == 0 {
        return if trace {
            trace_leaf(s, ctx, &mut d, &t)
        } else {
            start_reveal(s, ctx, &mut d)
        };
    }
    let (sl, sr) = d.solver_children.split_at(32);
    let (cl, cr) = d.challenger_children.split_at(32);
    let (sn, cn, idx) = if sl != cl {
        (h32(sl, "left")?, h32(cl, "left")?, 2 * d.index)
    } else {
        (h32(sr, "right")?, h32(cr, "right")?, 2 * d.index + 1)
    };
    d.solver_node = Some(sn);
    d.challenger_node = Some(cn);
    d.index = idx;
    d.level -= 1;
    let leaves = if trace {
        t.steps.saturating_add(1)
    } else {
        t.node_count
    };
    descend_promoted(&mut d, &level_sizes(leaves));
    let phase = d.phase;
    s.next_move(ctx, &mut d, phase, Turn::Both)
}

/// The trace descent reached step `t`, the leftmost whose hash differs (so
/// both agree on every earlier one). `t = 0` disputes h_0, which the referee
/// recomputes; otherwise the solver must reveal `h_{t-1}` with its proof and
/// the game goes on as a dispute on `(t-1, t]`.
fn trace_leaf<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    d: &mut crate::dispute::Dispute,
    task: &tasks::Task,
) -> Result<()> {
    let step = d.index;
    let solver_leaf = h32(&d.solver_children, "leaf")?;
    d.record(
        ctx.height,
        "chain",
        format!(
            "step {step} is the first whose hash differs: interval ({}, {step}]",
            step.saturating_sub(1)
        ),
    );
    if step == 0 {
        let h0 = crate::proof::initial_hash(task)?;
        d.referee_output = hex::encode(h0);
        d.op_kind = "init".into();
        d.lo = 0;
        d.hi = 0;
        d.h_hi = solver_leaf;
        let right = h0 == solver_leaf;
        return s.resolve(
            ctx,
            d,
            right,
            if right {
                "the solver's h_0 is the program's initial state"
            } else {
                "the solver's h_0 is not the program's initial state"
            },
        );
    }
    d.lo = step - 1;
    d.hi = step;
    d.h_hi = solver_leaf;
    // mid = lo marks "reveal the agreed h_lo" (bisection always has lo < mid).
    d.mid = step - 1;
    d.h_mid = None;
    d.solver_children.clear();
    d.challenger_children.clear();
    s.next_move(ctx, d, Phase::BisectReveal, Turn::Solver)
}
