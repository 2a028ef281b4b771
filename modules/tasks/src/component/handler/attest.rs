//! `MsgAttest`: a drawn verifier vouches for the result, with evidence that it
//! re-executed: `h_s` of each of its evidence steps (`level::evidence_steps`)
//! with a proof against `trace_root`. At the full level the solver serves no
//! hash before the task ends; at the sampled level it withholds the drawn
//! verifiers' sampled steps, so either way the hashes come from re-execution.
use framework::{BlockCtx, StateWrite, StateWriteExt};

use crate::component::state::{expect_status, TasksRead, TasksWrite};
use crate::error::{Result, TasksError};
use crate::event::EventAttested;
use crate::level::evidence_steps;
use crate::msg::MsgAttest;
use crate::task::{Attestation, Status};

pub fn execute<S: StateWrite + ?Sized>(s: &mut S, ctx: &BlockCtx, m: &MsgAttest) -> Result<()> {
    let mut t = s.task(m.task_id)?;
    expect_status(&t, Status::Committed)?;
    let c = t.commitment.clone().ok_or(TasksError::NotFound(t.id))?;
    if ctx.height > c.challenge_end {
        return Err(TasksError::DeadlinePassed {
            deadline: c.challenge_end,
            height: ctx.height,
        });
    }
    let v = m.verifier;
    if !t.verifiers.contains(&v) || t.attestations.iter().any(|a| a.verifier == v) {
        return Err(TasksError::NotSelected(v.to_string()));
    }
    let seed = t
        .selection_seed
        .ok_or_else(|| TasksError::NotSelected(v.to_string()))?;
    let steps = evidence_steps(t.level, &seed, &v, t.steps);
    if m.evidence.len() != steps.len() {
        return Err(TasksError::BadEvidence(format!(
            "{} evidence entries; this verifier must prove h_s for steps {steps:?}",
            m.evidence.len()
        )));
    }
    let leaves = t.steps.saturating_add(1);
    for (&step, e) in steps.iter().zip(&m.evidence) {
        if e.proof.index != step || e.proof.leaf_count != leaves {
            return Err(TasksError::BadEvidence(format!(
                "proof is for leaf {} of {}; this verifier's evidence steps are {steps:?} of {leaves}",
                e.proof.index, e.proof.leaf_count
            )));
        }
        if !train::merkle::verify(&c.trace_root, &e.state_hash, &e.proof) {
            return Err(TasksError::BadEvidence(format!(
                "h_{step} does not hash to the committed trace_root"
            )));
        }
    }
    t.attestations.push(Attestation {
        verifier: v,
        height: ctx.height,
        evidence_step: steps.first().copied().unwrap_or_default(),
    });
    s.put_task(&t);
    let checked = m.steps_checked.min(t.steps);
    s.update_stats(&v, ctx.height, |st| {
        st.steps_verified = st.steps_verified.saturating_add(checked);
        Ok(())
    })?;
    s.emit_typed(&EventAttested {
        task_id: t.id,
        verifier: v,
    });
    Ok(())
}
