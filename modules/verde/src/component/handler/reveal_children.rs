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
    s.check_phase(ctx, &d, Phase::Descent)?;
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
    let note = format!("reveal level {} node {}", d.level, d.index);
    d.record(ctx.height, actor, note);
    if d.solver_children.is_empty() || d.challenger_children.is_empty() {
        d.turn = if d.solver_children.is_empty() {
            Turn::Solver
        } else {
            Turn::Challenger
        };
        s.put_dispute(&d);
        return Ok(());
    }
    d.rounds += 1;
    if d.level == 0 {
        return start_reveal(s, ctx, &mut d);
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
    let t = s.task(d.task_id)?;
    descend_promoted(&mut d, &level_sizes(t.node_count));
    s.next_move(ctx, &mut d, Phase::Descent, Turn::Both)
}
