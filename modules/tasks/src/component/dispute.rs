//! The narrow interface `verde` uses: a dispute opens on a committed task,
//! and its outcome settles the task. Nothing else of tasks is writable from
//! outside the crate.
use bank::BankWrite;
use framework::{Address, Amount, BlockCtx, StateWrite};
use staking::StakingWrite;

use crate::component::state::{expect_status, TasksRead, TasksWrite};
use crate::error::{Result, TasksError};
use crate::module_address;
use crate::task::{Status, Task};
use crate::Deadline;

/// How a dispute ended, as far as the task is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The solver's result stood on the disputed interval.
    SolverRight,
    /// The solver was proven wrong (or fell silent): the task fails.
    SolverWrong,
}

/// What the caller must settle after a verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settlement {
    /// The solver's claim bond, moved to the caller's account (SolverWrong).
    pub claim_bond: Amount,
    /// Other disputes of the task, now moot (the task failed): the caller
    /// closes them without a verdict.
    pub moot: Vec<u64>,
    /// Attesters slashed for vouching for a wrong result, and how much.
    pub attesters_slashed: Vec<(Address, Amount)>,
}

pub trait TaskDisputes: StateWrite {
    /// A dispute `dispute_id` by `challenger` opens on task `task_id`: the task
    /// must be committed and in its window. Any number may be open at once,
    /// so no party can keep others from disputing.
    fn dispute_opened(
        &mut self,
        ctx: &BlockCtx,
        task_id: u64,
        dispute_id: u64,
        challenger: Address,
    ) -> Result<Task> {
        let mut t = self.task(task_id)?;
        expect_status(&t, Status::Committed)?;
        let c = t.commitment.as_ref().ok_or(TasksError::NotFound(task_id))?;
        if ctx.height > c.challenge_end {
            return Err(TasksError::DeadlinePassed {
                deadline: c.challenge_end,
                height: ctx.height,
            });
        }
        if t.verifiers.contains(&challenger) && !t.challengers.contains(&challenger) {
            t.challengers.push(challenger);
        }
        t.open_disputes.push(dispute_id);
        self.put_task(&t);
        Ok(t)
    }

    /// Dispute `dispute_id` ended with `verdict`. SolverRight: the task goes
    /// on (finalizing once its window has passed and no dispute is open).
    /// SolverWrong: the submitter is refunded, every attester is slashed
    /// `attester_wrong_slash`, the claim bond moves to `to`, and the task
    /// fails. A task that already ended is left alone (a moot dispute).
    fn dispute_resolved(
        &mut self,
        ctx: &BlockCtx,
        task_id: u64,
        dispute_id: u64,
        verdict: Verdict,
        to: &Address,
    ) -> Result<Settlement> {
        let mut t = self.task(task_id)?;
        if t.status != Status::Committed || !t.open_disputes.contains(&dispute_id) {
            return Ok(Settlement::default());
        }
        t.open_disputes.retain(|d| *d != dispute_id);
        let c = t.claim.clone().ok_or(TasksError::NotFound(task_id))?;
        let end = t.commitment.as_ref().map_or(0, |k| k.challenge_end);
        if verdict == Verdict::SolverRight {
            self.update_stats(&c.solver, ctx.height, |st| {
                st.disputes_won = st.disputes_won.saturating_add(1);
                Ok(())
            })?;
            self.put_task(&t);
            if t.open_disputes.is_empty() && ctx.height >= end {
                self.schedule(ctx.height.saturating_add(1), task_id, Deadline::Finalize);
            }
            return Ok(Settlement::default());
        }
        self.update_stats(&c.solver, ctx.height, |st| {
            st.disputes_lost = st.disputes_lost.saturating_add(1);
            Ok(())
        })?;
        let p = self.tasks_params()?;
        let refund = t.reward.checked_add(t.verification_fee)?;
        let sub = t.submitter;
        self.pay(&mut t, &sub, refund, "refund: the solver lost a dispute")?;
        self.pay(&mut t, to, c.bond, "claim bond forfeited to the dispute")?;
        // An attestation carries evidence built from the solver's hashes: an
        // attester of a wrong result either colluded or copied.
        let mut slashed = Vec::new();
        for a in t.attestations.clone() {
            let cut = self.slash(
                &a.verifier,
                p.attester_wrong_slash,
                "attested a result later proven wrong",
                &module_address(),
            )?;
            self.burn(&module_address(), cut)?;
            self.update_stats(&a.verifier, ctx.height, |st| {
                st.slashed = st.slashed.checked_add(cut)?;
                Ok(())
            })?;
            slashed.push((a.verifier, cut));
        }
        let moot = std::mem::take(&mut t.open_disputes);
        let mut note = format!(
            "solver {} lost dispute {dispute_id}; the submitter was refunded",
            c.solver
        );
        if !slashed.is_empty() {
            note.push_str(&format!(
                "; {} attester(s) of the wrong result were slashed",
                slashed.len()
            ));
        }
        self.end(&mut t, Status::Failed, note)?;
        Ok(Settlement {
            claim_bond: c.bond,
            moot,
            attesters_slashed: slashed,
        })
    }

    /// Records a challenger's outcome on the leaderboard.
    fn record_challenger(
        &mut self,
        ctx: &BlockCtx,
        who: &Address,
        won: bool,
        reward: Amount,
        lost: Amount,
    ) -> Result<()> {
        self.update_stats(who, ctx.height, |st| {
            if won {
                st.disputes_won = st.disputes_won.saturating_add(1);
            } else {
                st.disputes_lost = st.disputes_lost.saturating_add(1);
            }
            st.rewards = st.rewards.checked_add(reward)?;
            st.slashed = st.slashed.checked_add(lost)?;
            Ok(())
        })
    }

    /// Records an amount slashed from an operator in a dispute.
    fn record_slash(&mut self, ctx: &BlockCtx, who: &Address, amount: Amount) -> Result<()> {
        self.update_stats(who, ctx.height, |st| {
            st.slashed = st.slashed.checked_add(amount)?;
            Ok(())
        })
    }
}
impl<S: StateWrite + ?Sized> TaskDisputes for S {}
