//! `MsgPostCheckpoint`: the solver answers checkpoint requests by posting
//! the checkpoint on chain, checked against its commitment: it decodes under
//! the program's state shapes, is the state after `step`, and its state hash
//! is `h_step` under the trace root. Every open request for that step is
//! then answered. The solver gets back what posting cost it (the fee of a
//! transaction carrying these bytes) out of the requests' bonds, never more:
//! not serving off chain and posting on request must not pay. The rest of
//! the bonds goes back to the requesters. The bytes stay readable
//! (`Query/PostedCheckpoint`) until the task ends.
use auth::AuthRead;
use framework::{BlockCtx, StateWrite, StateWriteExt};

use crate::component::state::{expect_status, TasksRead, TasksWrite};
use crate::error::{Result, TasksError};
use crate::event::EventCheckpointPosted;
use crate::msg::MsgPostCheckpoint;
use crate::state_key;
use crate::task::{RequestState, Status};

pub fn execute<S: StateWrite + ?Sized>(
    s: &mut S,
    _ctx: &BlockCtx,
    m: &MsgPostCheckpoint,
) -> Result<()> {
    let mut t = s.task(m.task_id)?;
    expect_status(&t, Status::Committed)?;
    let solver = t.solver().ok_or(TasksError::NotFound(t.id))?;
    if solver != m.solver {
        return Err(TasksError::NotAllowed {
            role: "solver",
            expected: solver.to_string(),
            got: m.solver.to_string(),
        });
    }
    let open =
        |r: &crate::task::CheckpointRequest| r.step == m.step && r.state == RequestState::Open;
    if !t.checkpoint_requests.iter().any(open) {
        return Err(TasksError::BadCheckpoint(format!(
            "no open request for the checkpoint of step {}",
            m.step
        )));
    }
    let p = s.tasks_params()?;
    if m.checkpoint.len() as u64 > p.max_posted_checkpoint_bytes {
        return Err(TasksError::BadCheckpoint(format!(
            "{} bytes; at most {}",
            m.checkpoint.len(),
            p.max_posted_checkpoint_bytes
        )));
    }
    let c = t.commitment.clone().ok_or(TasksError::NotFound(t.id))?;
    let program = t.program()?;
    let graph = program
        .graph()
        .map_err(|e| TasksError::InvalidProgram(e.to_string()))?;
    // Bit-level checks only (decoding, finiteness, hashing): no arithmetic.
    let (step, _, h) =
        train::checkpoint::decode_hashed(&program, &graph.state_shapes, &m.checkpoint)
            .map_err(|e| TasksError::BadCheckpoint(e.to_string()))?;
    if step != m.step
        || m.proof.index != m.step
        || m.proof.leaf_count != t.steps.saturating_add(1)
        || !train::merkle::verify(&c.trace_root, &h, &m.proof)
    {
        return Err(TasksError::BadCheckpoint(format!(
            "the checkpoint is not the committed state after step {}",
            m.step
        )));
    }
    s.put_raw(
        state_key::posted_checkpoint(t.id, m.step),
        m.checkpoint.clone(),
    );
    let ap = s
        .auth_params()
        .map_err(|e| TasksError::BadCheckpoint(format!("auth params: {e}")))?;
    let mut owed = auth::required_fee(
        &ap,
        m.checkpoint
            .len()
            .saturating_add(crate::POST_CHECKPOINT_OVERHEAD),
        crate::POST_CHECKPOINT_UNITS,
    )
    .map_err(|e| TasksError::BadCheckpoint(format!("posting fee: {e}")))?;
    let mut bonds = Vec::new();
    for r in t.checkpoint_requests.iter_mut().filter(|r| open(r)) {
        r.state = RequestState::Posted;
        bonds.push((r.requester, r.bond));
    }
    for (requester, bond) in bonds {
        let fee = bond.min(owed);
        owed = owed.checked_sub(fee)?;
        s.pay(&mut t, &solver, fee, "checkpoint posted on request")?;
        s.pay(
            &mut t,
            &requester,
            bond.checked_sub(fee)?,
            "checkpoint request bond returned (less the posting fee)",
        )?;
    }
    s.put_task(&t);
    s.emit_typed(&EventCheckpointPosted {
        task_id: t.id,
        step: m.step,
        bytes: m.checkpoint.len() as u64,
    });
    Ok(())
}
