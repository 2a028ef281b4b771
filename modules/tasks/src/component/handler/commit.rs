//! `MsgCommitResult`: the solver commits `trace_root` and `h_T`; the
//! challenge window (its length fixed at submission) starts.
use framework::{BlockCtx, StateWrite, StateWriteExt};

use crate::component::state::{expect_status, TasksRead, TasksWrite};
use crate::error::{Result, TasksError};
use crate::event::EventResultCommitted;
use crate::msg::MsgCommitResult;
use crate::task::{Commitment, Status};
use crate::Deadline;

pub fn execute<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    m: &MsgCommitResult,
) -> Result<()> {
    let mut t = s.task(m.task_id)?;
    expect_status(&t, Status::Claimed)?;
    let claim = t.claim.as_ref().ok_or(TasksError::NotFound(t.id))?;
    if claim.solver != m.solver {
        return Err(TasksError::NotAllowed {
            role: "solver",
            expected: claim.solver.to_string(),
            got: m.solver.to_string(),
        });
    }
    if ctx.height > claim.commit_deadline {
        return Err(TasksError::DeadlinePassed {
            deadline: claim.commit_deadline,
            height: ctx.height,
        });
    }
    let challenge_end = ctx.height.saturating_add(t.window_blocks.max(1));
    t.status = Status::Committed;
    t.commitment = Some(Commitment {
        trace_root: m.trace_root,
        final_state_hash: m.final_state_hash,
        height: ctx.height,
        challenge_end,
    });
    s.put_task(&t);
    // The draw: in the next block from its hash, or, when the submitter
    // committed to a seed, as soon as it reveals it (MsgRevealSeed), with the
    // block hash only as the fallback once reveal_blocks have passed.
    let p = s.tasks_params()?;
    let select_at = match t.seed_commitment {
        None => ctx.height.saturating_add(1),
        Some(_) => ctx.height.saturating_add(p.reveal_blocks).saturating_add(1),
    };
    s.schedule(select_at, t.id, Deadline::Select);
    s.schedule(challenge_end.saturating_add(1), t.id, Deadline::Finalize);
    s.emit_typed(&EventResultCommitted {
        task_id: t.id,
        trace_root: hex::encode(m.trace_root),
        final_state_hash: hex::encode(m.final_state_hash),
        challenge_end,
    });
    Ok(())
}
