//! `MsgRevealSeed`: the submitter reveals the secret behind its seed
//! commitment, after the commit and within `reveal_blocks`; the verifiers are
//! drawn at once from SHA-256(secret ‖ trace root ‖ task id). The secret was
//! fixed before the trace existed and hidden until it was committed, so
//! neither the solver nor a block proposer can steer the draw.
use framework::{BlockCtx, StateWrite};
use sha2::{Digest, Sha256};

use crate::component::end_block::select;
use crate::component::state::{expect_status, expect_submitter, TasksRead};
use crate::error::{Result, TasksError};
use crate::msg::MsgRevealSeed;
use crate::task::Status;

pub fn execute<S: StateWrite + ?Sized>(s: &mut S, ctx: &BlockCtx, m: &MsgRevealSeed) -> Result<()> {
    let mut t = s.task(m.task_id)?;
    expect_submitter(&t, &m.submitter)?;
    // Before the commit the secret would let the solver aim its trace.
    expect_status(&t, Status::Committed)?;
    let commitment = t
        .seed_commitment
        .ok_or_else(|| TasksError::BadSeed("the task has no seed commitment".into()))?;
    if t.selection_seed.is_some() {
        return Err(TasksError::BadSeed(
            "the verifiers are already drawn".into(),
        ));
    }
    let c = t.commitment.clone().ok_or(TasksError::NotFound(t.id))?;
    let deadline = c.height.saturating_add(s.tasks_params()?.reveal_blocks);
    if ctx.height > deadline {
        return Err(TasksError::DeadlinePassed {
            deadline,
            height: ctx.height,
        });
    }
    let h: [u8; 32] = Sha256::digest(m.secret).into();
    if h != commitment {
        return Err(TasksError::BadSeed(
            "SHA-256 of the secret is not the commitment".into(),
        ));
    }
    let mut seed = Sha256::new();
    seed.update(b"veritrain/tasks/selection-revealed");
    seed.update(m.secret);
    seed.update(c.trace_root);
    seed.update(t.id.to_be_bytes());
    select(s, &mut t, seed.finalize().into())
}
