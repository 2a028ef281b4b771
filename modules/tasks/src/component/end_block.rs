//! End-block hook: claim expiry, commit timeouts, verifier selection and
//! finalization, each from the deadline queue.
use bank::BankWrite;
use framework::{Address, Amount, BlockCtx, StateError, StateWrite, StateWriteExt};
use sha2::{Digest, Sha256};
use staking::{Role, StakingLocks, StakingRead, StakingWrite};

use crate::component::state::{TasksRead, TasksWrite};
use crate::error::{Result, TasksError};
use crate::event::{EventTaskFinalized, EventVerifiersSelected};
use crate::state_key;
use crate::task::{Hash, Status, Task};
use crate::{module_address, Deadline};

pub fn end_block<S: StateWrite + ?Sized>(s: &mut S, ctx: &BlockCtx) -> Result<()> {
    loop {
        let due = framework::take_due(s, state_key::DEADLINE_PREFIX, ctx.height, 128)?;
        if due.is_empty() {
            return Ok(());
        }
        for e in due {
            let corrupt = || StateError::Corrupt {
                key: format!("tasks/deadline/{}/{:?}", e.height, e.rest),
                reason: "bad deadline entry".into(),
            };
            if e.rest.len() != 10 {
                return Err(corrupt().into());
            }
            let id = u64::from_be_bytes(e.rest[0..8].try_into().map_err(|_| corrupt())?);
            let kind = Deadline::from_u8(e.rest[9]).ok_or_else(corrupt)?;
            let mut t = match s.task(id) {
                Ok(t) => t,
                Err(TasksError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            match (kind, t.status) {
                (Deadline::Claim, Status::Open) => expire(s, &mut t)?,
                (Deadline::Commit, Status::Claimed) => commit_timeout(s, ctx, &mut t)?,
                (Deadline::Select, Status::Committed) if t.selection_seed.is_none() => {
                    let mut h = Sha256::new();
                    h.update(b"veritrain/tasks/selection");
                    h.update(ctx.block_hash);
                    h.update(t.id.to_be_bytes());
                    select(s, &mut t, h.finalize().into())?
                }
                (Deadline::Finalize, Status::Committed) if t.open_disputes.is_empty() => {
                    finalize(s, ctx, &mut t)?
                }
                (Deadline::Availability, Status::Committed) => missed_checkpoints(s, ctx, &mut t)?,
                _ => {}
            }
        }
    }
}

fn expire<S: StateWrite + ?Sized>(s: &mut S, t: &mut Task) -> Result<()> {
    let refund = t.reward.checked_add(t.verification_fee)?;
    let sub = t.submitter;
    s.pay(t, &sub, refund, "refund: no solver claimed the task")?;
    s.end(
        t,
        Status::Expired,
        "no solver claimed the task before the claim deadline".into(),
    )
}

/// The solver missed its commit deadline: its bond is burned, its stake
/// slashed by the same amount, and the task reopens for another solver.
fn commit_timeout<S: StateWrite + ?Sized>(s: &mut S, ctx: &BlockCtx, t: &mut Task) -> Result<()> {
    let c = t.claim.take().ok_or(TasksError::NotFound(t.id))?;
    s.burn(&module_address(), c.bond)?;
    let slashed = s.slash(
        &c.solver,
        c.bond,
        "missed commit deadline",
        &module_address(),
    )?;
    s.burn(&module_address(), slashed)?;
    s.unlock(&c.solver)?;
    let total = c.bond.checked_add(slashed)?;
    s.update_stats(&c.solver, ctx.height, |st| {
        st.slashed = st.slashed.checked_add(total)?;
        Ok(())
    })?;
    let p = s.tasks_params()?;
    t.note = format!("solver {} missed its commit deadline at height {}; its bond and {slashed} of stake were burned; the task reopened", c.solver, c.commit_deadline);
    t.status = Status::Open;
    t.claim_deadline = ctx.height.saturating_add(p.claim_timeout_blocks);
    s.put_task(t);
    s.schedule(t.claim_deadline.saturating_add(1), t.id, Deadline::Claim);
    Ok(())
}

/// Checkpoint requests past their deadline and still open: the solver is
/// slashed `withhold_slash` per request, paid to the requester with its
/// bond back (the replay it was forced into is paid for).
fn missed_checkpoints<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    t: &mut Task,
) -> Result<()> {
    let solver = t.solver().ok_or(TasksError::NotFound(t.id))?;
    let p = s.tasks_params()?;
    let due: Vec<usize> = (0..t.checkpoint_requests.len())
        .filter(|&i| {
            let r = &t.checkpoint_requests[i];
            r.state == crate::task::RequestState::Open && r.deadline < ctx.height
        })
        .collect();
    for i in due {
        let (requester, bond, step) = {
            let r = &mut t.checkpoint_requests[i];
            r.state = crate::task::RequestState::Missed;
            (r.requester, r.bond, r.step)
        };
        let cut = s.slash(
            &solver,
            p.withhold_slash,
            "did not post a requested checkpoint",
            &module_address(),
        )?;
        s.update_stats(&solver, ctx.height, |st| {
            st.slashed = st.slashed.checked_add(cut)?;
            Ok(())
        })?;
        s.pay(
            t,
            &requester,
            cut,
            "the solver withheld a requested checkpoint",
        )?;
        s.pay(t, &requester, bond, "checkpoint request bond returned")?;
        let line = format!("solver {solver} did not post the checkpoint of step {step} requested by {requester}: {cut} of its stake went to the requester");
        t.note = if t.note.is_empty() {
            line
        } else {
            format!("{}; {line}", t.note)
        };
    }
    s.put_task(t);
    Ok(())
}

/// Draws `verifiers_per_task` verifiers, weighted by bonded stake, from
/// SHA-256(seed || round), without replacement; never the solver or the
/// submitter. The seed also fixes each verifier's evidence step. Each drawn
/// verifier's stake is locked until the task ends.
pub(crate) fn select<S: StateWrite + ?Sized>(s: &mut S, t: &mut Task, seed: Hash) -> Result<()> {
    let p = s.tasks_params()?;
    let solver = t.solver();
    let mut pool: Vec<(Address, Amount)> = Vec::new();
    let mut after = None;
    loop {
        let page = s.operators(Some(Role::Verifier), after.as_ref(), 256)?;
        let full = page.len() == 256;
        after = page.last().map(|o| o.address);
        for o in page {
            if !o.stake.is_zero() && Some(o.address) != solver && o.address != t.submitter {
                pool.push((o.address, o.stake));
            }
        }
        if !full {
            break;
        }
    }
    let mut total = Amount::ZERO;
    for (_, st) in &pool {
        total = total.checked_add(*st)?;
    }
    let mut chosen = Vec::new();
    for round in 0..p.verifiers_per_task {
        if pool.is_empty() || total.is_zero() {
            break;
        }
        let mut h = Sha256::new();
        h.update(seed);
        h.update(round.to_be_bytes());
        let d = h.finalize();
        let mut r16 = [0u8; 16];
        r16.copy_from_slice(&d[..16]);
        let mut r = u128::from_be_bytes(r16) % total.0;
        let mut pick = pool.len() - 1;
        for (i, (_, st)) in pool.iter().enumerate() {
            if r < st.0 {
                pick = i;
                break;
            }
            r -= st.0;
        }
        let (a, st) = pool.remove(pick);
        total = total.checked_sub(st)?;
        chosen.push(a);
    }
    t.selection_seed = Some(seed);
    for v in &chosen {
        s.lock(v)?;
    }
    t.verifiers = chosen;
    if t.verifiers.is_empty() {
        t.note = "no registered verifier was available to select".into();
    }
    s.put_task(t);
    s.emit_typed(&EventVerifiersSelected {
        task_id: t.id,
        verifiers: t
            .verifiers
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(","),
    });
    Ok(())
}

/// Pays out a task whose window closed with no dispute upheld: the solver
/// gets reward and bond, each drawn verifier that attested (with evidence)
/// its share of the fee; a drawn verifier that neither attested nor
/// challenged is slashed `verifier_miss_slash`.
pub(crate) fn finalize<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    t: &mut Task,
) -> Result<()> {
    let p = s.tasks_params()?;
    let c = t.claim.clone().ok_or(TasksError::NotFound(t.id))?;
    let (reward, fee) = (t.reward, t.verification_fee);
    s.pay(t, &c.solver, reward, "reward")?;
    s.pay(t, &c.solver, c.bond, "claim bond returned")?;
    let k = t.verifiers.len() as u64;
    let share = if k == 0 {
        Amount::ZERO
    } else {
        fee.mul_ratio(1, k)
    };
    let mut paid = Amount::ZERO;
    let mut notes = Vec::new();
    for v in t.verifiers.clone() {
        if t.attestations.iter().any(|a| a.verifier == v) {
            s.pay(t, &v, share, "verification fee")?;
            paid = paid.checked_add(share)?;
            s.update_stats(&v, ctx.height, |st| {
                st.rewards = st.rewards.checked_add(share)?;
                Ok(())
            })?;
        } else if t.challengers.contains(&v) {
            notes.push(format!(
                "verifier {v} challenged instead of attesting: its fee share went back to the submitter"
            ));
        } else {
            let cut = s.slash(
                &v,
                p.verifier_miss_slash,
                "selected verifier did not attest",
                &module_address(),
            )?;
            s.burn(&module_address(), cut)?;
            s.update_stats(&v, ctx.height, |st| {
                st.slashed = st.slashed.checked_add(cut)?;
                Ok(())
            })?;
            notes.push(format!("verifier {v} did not attest: its fee share went back to the submitter and {cut} of its stake was burned"));
        }
    }
    if k == 0 && !fee.is_zero() {
        notes.push(
            "no verifier was selected: the verification fee went back to the submitter".into(),
        );
    }
    let sub = t.submitter;
    s.pay(t, &sub, fee.checked_sub(paid)?, "unused verification fee")?;
    s.update_stats(&c.solver, ctx.height, |st| {
        st.tasks_solved = st.tasks_solved.saturating_add(1);
        st.rewards = st.rewards.checked_add(reward)?;
        Ok(())
    })?;
    s.emit_typed(&EventTaskFinalized {
        task_id: t.id,
        solver: c.solver.to_string(),
        reward,
    });
    let note = if notes.is_empty() {
        "finalized: no dispute upheld in the challenge window".to_string()
    } else {
        notes.join("; ")
    };
    s.end(t, Status::Finalized, note)
}
