//! `MsgReportLoss`: the losses of a finalized evaluation, each proven twice:
//! `h_t` against the task's trace root, and the `loss` tensor's leaf against
//! `h_t`. The chain turns the f32 bits into integers exactly (`fixed`). The
//! task was verified like any job, so the bits are the program's.
use framework::{BlockCtx, StateWrite, StateWriteExt};
use tasks::{Status, TasksRead};

use crate::component::round::measurement_mut;
use crate::component::state::{SwarmRead, SwarmWrite};

use crate::error::{Result, SwarmError};
use crate::event::EventLossReported;
use crate::msg::MsgReportLoss;
use crate::swarm::Phase;

pub fn execute<S: StateWrite + ?Sized>(
    s: &mut S,
    _ctx: &BlockCtx,
    m: &MsgReportLoss,
) -> Result<()> {
    let bad = |w: String| Err(SwarmError::BadReport(w));
    let sw = s.swarm(m.swarm_id)?;
    if sw.done {
        return bad(format!("swarm {} is done", sw.id));
    }
    let mut r = s.round(sw.id, sw.round)?;
    if !matches!(r.phase, Phase::Evaluating | Phase::Scoring) {
        return Err(SwarmError::WrongPhase {
            swarm: sw.id,
            round: r.round,
            phase: r.phase.name(),
            why: "losses are reported while the round evaluates".into(),
        });
    }
    let Some(meas) = measurement_mut(&mut r, m.task_id) else {
        return bad(format!(
            "task {} is not an evaluation of round {}",
            m.task_id, r.round
        ));
    };
    if meas.reported {
        return bad(format!("task {} is already reported", m.task_id));
    }
    let t = s.task(m.task_id)?;
    if t.status != Status::Finalized {
        return bad(format!(
            "task {} is {}: only a verified (finalized) evaluation counts",
            m.task_id,
            t.status.name()
        ));
    }
    let Some(c) = t.commitment else {
        return bad("the task has no commitment".into());
    };
    if m.losses.len() as u64 != sw.eval_steps {
        return bad(format!(
            "{} step losses, the evaluation has {} steps",
            m.losses.len(),
            sw.eval_steps
        ));
    }
    // Where `loss` sits among the state's tensors (sorted by name).
    let spec = sw
        .program()?
        .state_spec()
        .map_err(|e| SwarmError::Invalid(e.to_string()))?;
    let leaves = spec.len() as u64;
    let index = spec
        .keys()
        .position(|k| k == train::program::LOSS_STATE)
        .ok_or_else(|| SwarmError::Invalid("the program records no loss".into()))?
        as u64;
    let mut fixed: u64 = 0;
    let mut bits = Vec::with_capacity(m.losses.len());
    for (i, l) in m.losses.iter().enumerate() {
        let step = i as u64 + 1;
        if l.step != step {
            return bad(format!("entry {i} is step {}, expected {step}", l.step));
        }
        let tp = &l.trace_proof;
        if tp.index != step
            || tp.leaf_count != t.steps + 1
            || !train::merkle::verify(&c.trace_root, &l.state_hash, tp)
        {
            return bad(format!("h_{step} is not proven against the trace root"));
        }
        let leaf = train::exec::state_leaf(
            train::program::LOSS_STATE,
            &repops::tensor_hash(&repops::Tensor::scalar(f32::from_bits(l.loss_bits))),
        );
        let sp = &l.state_proof;
        if sp.index != index
            || sp.leaf_count != leaves
            || !train::merkle::verify(&l.state_hash, &leaf, sp)
        {
            return bad(format!(
                "the loss of step {step} is not proven against h_{step}"
            ));
        }
        let v = crate::fixed::from_f32_bits(l.loss_bits).ok_or_else(|| {
            SwarmError::BadReport(format!(
                "step {step}'s loss is not a finite non-negative number"
            ))
        })?;
        fixed = fixed.saturating_add(v);
        bits.push(l.loss_bits);
    }
    meas.reported = true;
    meas.loss_fixed = fixed;
    meas.loss_bits = bits;
    s.emit_typed(&EventLossReported {
        swarm_id: sw.id,
        round: r.round,
        task_id: m.task_id,
        loss_fixed: fixed,
    });
    s.put_round(&r);
    Ok(())
}
