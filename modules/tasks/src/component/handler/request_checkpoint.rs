//! `MsgRequestCheckpoint`: at the sampled level a drawn verifier replays its
//! sampled steps from the solver's checkpoints. A solver that withholds (or
//! serves corrupt) checkpoints forces a replay from an earlier state, up to
//! the whole run. The verifier asks for the checkpoint on chain: the solver
//! posts it within `availability_blocks` (and gets the requester's bond for
//! its trouble) or is slashed `withhold_slash` for the requester, which pays
//! for the replay it forced.
use bank::BankWrite;
use framework::{BlockCtx, StateWrite, StateWriteExt};

use crate::component::state::{expect_status, TasksRead, TasksWrite};
use crate::error::{Result, TasksError};
use crate::event::EventCheckpointRequested;
use crate::level;
use crate::msg::MsgRequestCheckpoint;
use crate::task::{CheckpointRequest, Level, RequestState, Status};
use crate::{module_address, Deadline};

pub fn execute<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    m: &MsgRequestCheckpoint,
) -> Result<()> {
    let mut t = s.task(m.task_id)?;
    expect_status(&t, Status::Committed)?;
    if t.level == Level::Full {
        return Err(TasksError::BadCheckpoint(
            "at the full level verifiers re-execute from h_0 and need no checkpoint".into(),
        ));
    }
    let v = m.verifier;
    let seed = match t.selection_seed {
        Some(seed) if t.verifiers.contains(&v) => seed,
        _ => return Err(TasksError::NotSelected(v.to_string())),
    };
    if t.attestations.iter().any(|a| a.verifier == v) {
        return Err(TasksError::NotSelected(v.to_string()));
    }
    if m.step == 0 || m.step >= t.steps {
        return Err(TasksError::BadCheckpoint(format!(
            "step {} is not in 1..{}: h_0 comes from the program and h_T is the model",
            m.step, t.steps
        )));
    }
    if level::withheld_steps(t.level, &seed, &t.verifiers, t.steps).contains(&m.step) {
        return Err(TasksError::BadCheckpoint(format!(
            "step {} is a drawn verifier's evidence step: it stays withheld until the task ends",
            m.step
        )));
    }
    let mine = t.checkpoint_requests.iter().filter(|r| r.requester == v);
    if mine.clone().any(|r| r.step == m.step) {
        return Err(TasksError::BadCheckpoint(format!(
            "step {} is already requested by {v}",
            m.step
        )));
    }
    // A posted checkpoint is on chain, checked against h_step, and readable
    // by anyone until the task ends: asking again would only pay the solver
    // a second time for the same bytes.
    if t.checkpoint_requests
        .iter()
        .any(|r| r.step == m.step && r.state == RequestState::Posted)
    {
        return Err(TasksError::BadCheckpoint(format!(
            "step {} is already posted: read it with Query/PostedCheckpoint",
            m.step
        )));
    }
    // One request per sampled step bounds what a verifier can make the
    // solver post.
    let cap = level::steps_per_verifier(t.level, t.steps).min(level::MAX_SAMPLED_STEPS);
    if mine.count() as u64 >= cap {
        return Err(TasksError::BadCheckpoint(format!(
            "{v} has made its {cap} requests (one per sampled step)"
        )));
    }
    let c = t.commitment.clone().ok_or(TasksError::NotFound(t.id))?;
    let p = s.tasks_params()?;
    let deadline = ctx.height.saturating_add(p.availability_blocks);
    // The request resolves before the task can finalize.
    if deadline >= c.challenge_end {
        return Err(TasksError::DeadlinePassed {
            deadline: c.challenge_end.saturating_sub(p.availability_blocks),
            height: ctx.height,
        });
    }
    s.transfer(&v, &module_address(), p.availability_bond)?;
    t.checkpoint_requests.push(CheckpointRequest {
        requester: v,
        step: m.step,
        deadline,
        bond: p.availability_bond,
        state: RequestState::Open,
    });
    s.put_task(&t);
    s.schedule(deadline.saturating_add(1), t.id, Deadline::Availability);
    s.emit_typed(&EventCheckpointRequested {
        task_id: t.id,
        requester: v,
        step: m.step,
        deadline,
    });
    Ok(())
}
