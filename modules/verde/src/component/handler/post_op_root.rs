//! `MsgPostOpRoot`: both parties post their op root of step `hi`. Equal roots
//! go to the assembly proof; different roots start the descent.
use framework::{BlockCtx, StateWrite};
use tasks::TasksRead;

use crate::component::game::descend_promoted;
use crate::component::state::{VerdeRead, VerdeWrite};
use crate::dispute::{Phase, Turn};
use crate::error::{Result, VerdeError};
use crate::msg::MsgPostOpRoot;
use crate::proof::level_sizes;

pub fn execute<S: StateWrite + ?Sized>(s: &mut S, ctx: &BlockCtx, m: &MsgPostOpRoot) -> Result<()> {
    let id = m.dispute_id;
    let mut d = s.dispute(id)?;
    s.check_phase(ctx, &d, Phase::OpRoots)?;
    let who = d.party(&m.sender).ok_or_else(|| {
        VerdeError::NotYourMove(format!("{} is not a party of dispute {id}", m.sender))
    })?;
    let slot = match who {
        Turn::Solver => &mut d.solver_op_root,
        _ => &mut d.challenger_op_root,
    };
    if slot.is_some() {
        return Err(VerdeError::NotYourMove(format!(
            "{} already posted its op root",
            m.sender
        )));
    }
    *slot = Some(m.op_root);
    let actor = if who == Turn::Solver {
        "solver"
    } else {
        "challenger"
    };
    let note = format!(
        "op root of step {} = {}",
        d.hi,
        hex::encode(&m.op_root[..8])
    );
    d.record(ctx.height, actor, note);
    let (Some(so), Some(co)) = (d.solver_op_root, d.challenger_op_root) else {
        let pending = d.solver_op_root.is_none();
        s.await_other(&mut d, pending);
        return Ok(());
    };
    d.rounds += 1;
    if so == co {
        return s.next_move(ctx, &mut d, Phase::Assembly, Turn::Solver);
    }
    let t = s.task(d.task_id)?;
    let sizes = level_sizes(t.node_count);
    d.level = (sizes.len() - 1) as u32;
    d.index = 0;
    d.solver_node = Some(so);
    d.challenger_node = Some(co);
    descend_promoted(&mut d, &sizes);
    s.next_move(ctx, &mut d, Phase::Descent, Turn::Both)
}
