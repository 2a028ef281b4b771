//! `MsgOpenDispute`: a challenger posts a bond and the interval `(lo, hi]`
//! it disputes. Any number of disputes may be open on one task.
use bank::BankWrite;
use framework::{BlockCtx, StateWrite, StateWriteExt};
use staking::StakingLocks;
use tasks::{TaskDisputes, TasksRead};

use crate::component::game::{after_interval, descend_promoted};
use crate::component::state::{VerdeRead, VerdeWrite};
use crate::dispute::{Dispute, Phase, Turn};
use crate::error::{Result, VerdeError};
use crate::event::EventDisputeOpened;
use crate::module_address;
use crate::msg::MsgOpenDispute;
use crate::proof::{check_proof, initial_hash, level_sizes};

pub fn execute<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    m: &MsgOpenDispute,
) -> Result<u64> {
    let p = s.verde_params()?;
    if m.bond < p.min_bond {
        return Err(VerdeError::BondTooLow {
            got: m.bond,
            min: p.min_bond,
        });
    }
    let t = s.task(m.task_id)?;
    if t.solver() == Some(m.challenger) {
        return Err(VerdeError::SelfChallenge);
    }
    let (lo, hi) = (m.lo, m.hi);
    // Status and window first, for a clear error (the whole transaction's
    // writes are dropped if anything below fails).
    let id = s.next_dispute_id()?;
    let t = s.dispute_opened(ctx, m.task_id, id, m.challenger)?;
    let c = t
        .commitment
        .clone()
        .ok_or(tasks::TasksError::NotFound(t.id))?;
    let solver = t.solver().ok_or(tasks::TasksError::NotFound(t.id))?;
    if let Some(root) = m.trace_root {
        return open_trace(s, ctx, m, id, t, c, solver, root);
    }
    let initial = lo == 0 && hi == 0;
    if !initial && (lo >= hi || hi > t.steps) {
        return Err(VerdeError::BadInterval(format!(
            "need 0 <= lo < hi <= {} (or lo = hi = 0 for h_0), got ({lo}, {hi}]",
            t.steps
        )));
    }
    let n = t.steps.saturating_add(1);
    // Two ends need no proof, so that a challenger needs nothing from a
    // solver that serves nothing: h_0 follows from the program (the chain
    // recomputes it) and h_T is the committed final_state_hash.
    match &m.proof_lo {
        None if lo == 0 => {
            let h0 = initial_hash(&t)?;
            if m.h_lo != h0 {
                return Err(VerdeError::BadProof(format!(
                    "h_lo without a proof must be the program's h_0 {}",
                    hex::encode(h0)
                )));
            }
        }
        None => return Err(VerdeError::BadProof("proof_lo: missing".into())),
        Some(pr) => check_proof(&c.trace_root, &m.h_lo, pr, lo, n, "h_lo")?,
    }
    match &m.proof_hi {
        None if hi == t.steps && hi > 0 => {
            if m.h_hi != c.final_state_hash {
                return Err(VerdeError::BadProof(
                    "h_hi without a proof must be the committed final_state_hash".into(),
                ));
            }
        }
        None => return Err(VerdeError::BadProof("proof_hi: missing".into())),
        Some(pr) => check_proof(&c.trace_root, &m.h_hi, pr, hi, n, "h_hi")?,
    }
    let mut d = new_dispute(s, ctx, m, id, &t, solver)?;
    d.lo = lo;
    d.h_lo = m.h_lo;
    d.hi = hi;
    d.h_hi = m.h_hi;
    d.record(
        ctx.height,
        "challenger",
        format!("open on steps ({lo}, {hi}] with bond {}", m.bond),
    );
    if initial {
        // h_0 follows from the program alone: the referee recomputes it now.
        let h0 = initial_hash(&t)?;
        d.referee_output = hex::encode(h0);
        d.op_kind = "init".into();
        let solver_right = h0 == m.h_hi;
        s.resolve(
            ctx,
            &mut d,
            solver_right,
            if solver_right {
                "the solver's h_0 is the program's initial state"
            } else {
                "the solver's h_0 is not the program's initial state"
            },
        )?;
    } else {
        after_interval(s, ctx, &mut d)?;
    }
    Ok(id)
}

/// Trace mode: the challenger holds its own run (root `root` over its
/// h_0..h_T) and nothing of the solver's. Both descend their trace trees to
/// the leftmost differing step; no assumption about h_T is needed.
#[allow(clippy::too_many_arguments)]
fn open_trace<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    m: &MsgOpenDispute,
    id: u64,
    t: tasks::Task,
    c: tasks::task::Commitment,
    solver: framework::Address,
    root: train::Hash,
) -> Result<u64> {
    if root == c.trace_root {
        return Err(VerdeError::BadInterval(
            "your trace root equals the committed one: nothing to dispute".into(),
        ));
    }
    let mut d = new_dispute(s, ctx, m, id, &t, solver)?;
    d.hi = t.steps;
    d.h_hi = c.final_state_hash;
    d.record(
        ctx.height,
        "challenger",
        format!(
            "open on the trace of steps (0, {}] with bond {}; challenger's trace root {}",
            t.steps,
            m.bond,
            hex::encode(&root[..8])
        ),
    );
    let sizes = level_sizes(t.steps.saturating_add(1));
    d.level = (sizes.len() - 1) as u32;
    d.index = 0;
    d.solver_node = Some(c.trace_root);
    d.challenger_node = Some(root);
    descend_promoted(&mut d, &sizes);
    s.next_move(ctx, &mut d, Phase::TraceDescent, Turn::Both)?;
    Ok(id)
}

/// Takes the bond, locks the challenger and builds the dispute record.
fn new_dispute<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    m: &MsgOpenDispute,
    id: u64,
    t: &tasks::Task,
    solver: framework::Address,
) -> Result<Dispute> {
    s.transfer(&m.challenger, &module_address(), m.bond)?;
    s.lock(&m.challenger)?;
    s.emit_typed(&EventDisputeOpened {
        dispute_id: id,
        task_id: t.id,
        challenger: m.challenger,
        lo: m.lo,
        hi: m.hi,
    });
    Ok(Dispute {
        id,
        task_id: t.id,
        challenger: m.challenger,
        solver,
        bond: m.bond,
        phase: Phase::BisectReveal,
        turn: Turn::Nobody,
        deadline: 0,
        lo: 0,
        h_lo: [0; 32],
        hi: 0,
        h_hi: [0; 32],
        mid: 0,
        h_mid: None,
        solver_op_root: None,
        challenger_op_root: None,
        level: 0,
        index: 0,
        solver_node: None,
        challenger_node: None,
        solver_children: vec![],
        challenger_children: vec![],
        node: 0,
        solver_output: vec![],
        challenger_output: vec![],
        inputs: vec![],
        rows_needed: vec![],
        rows_proven: 0,
        rounds: 1,
        outcome: String::new(),
        slashed: framework::Amount::ZERO,
        referee_output: String::new(),
        op_kind: String::new(),
        transcript: vec![],
        opened_height: ctx.height,
        resolved_height: 0,
        inner: Default::default(),
    })
}
