//! Reads of the tasks state (any module may use them) and the crate-private
//! writes that move escrow and keep the invariants.
use bank::BankWrite;
use framework::{Address, Amount, StateError, StateRead, StateReadExt, StateWrite, StateWriteExt};
use proto::tasks::v1 as pb;
use staking::StakingLocks;

use crate::error::{Result, TasksError};
use crate::event::{EventPayout, EventTaskEnded};
use crate::params::Params;
use crate::state_key;
use crate::stats::Stats;
use crate::task::{Payout, Status, Task};
use crate::{module_address, Deadline};

pub trait TasksRead: StateRead {
    fn tasks_params(&self) -> Result<Params> {
        match self.get_proto::<pb::Params>(state_key::PARAMS)? {
            None => Ok(Params::default()),
            Some(p) => Params::from_proto(&p),
        }
    }

    fn task(&self, id: u64) -> Result<Task> {
        let p = self
            .get_proto::<pb::Task>(&state_key::task(id))?
            .ok_or(TasksError::NotFound(id))?;
        Task::try_from(&p)
    }

    /// Tasks with ids > `after`, in id order, optionally of one status.
    fn tasks(&self, status: Option<Status>, after: u64, limit: usize) -> Result<Vec<Task>> {
        let mut out = Vec::new();
        let mut start = state_key::task(after.saturating_add(1));
        loop {
            let page = self.prefix_raw(state_key::TASK_PREFIX, &start, 256)?;
            let full = page.len() == 256;
            for (k, v) in &page {
                let p: pb::Task =
                    prost::Message::decode(v.as_slice()).map_err(|e| StateError::Corrupt {
                        key: String::from_utf8_lossy(k).into_owned(),
                        reason: e.to_string(),
                    })?;
                let t = Task::try_from(&p)?;
                if status.is_none_or(|s| t.status == s) {
                    out.push(t);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            match page.last() {
                Some((k, _)) if full => {
                    start = k.clone();
                    start.push(0);
                }
                _ => return Ok(out),
            }
        }
    }

    fn stats(&self, a: &Address) -> Result<Stats> {
        match self.get_proto::<pb::OperatorStats>(&state_key::stats(a))? {
            None => Ok(Stats::new(*a)),
            Some(p) => Stats::from_proto(*a, &p),
        }
    }
}
impl<S: StateRead + ?Sized> TasksRead for S {}

pub(crate) trait TasksWrite: StateWrite {
    fn put_task(&mut self, t: &Task) {
        self.put_proto(state_key::task(t.id), &t.to_proto());
    }

    fn next_task_id(&mut self) -> Result<u64> {
        let id = self.get_u64(state_key::NEXT_ID)?.unwrap_or(1);
        self.put_u64(state_key::NEXT_ID.to_vec(), id.saturating_add(1));
        Ok(id)
    }

    fn schedule(&mut self, height: u64, id: u64, kind: Deadline) {
        self.put_raw(state_key::deadline(height, id, kind as u8), vec![]);
    }

    fn update_stats(
        &mut self,
        a: &Address,
        height: u64,
        f: impl FnOnce(&mut Stats) -> Result<()>,
    ) -> Result<()> {
        let mut st = self.stats(a)?;
        f(&mut st)?;
        st.last_active_height = height;
        self.put_proto(state_key::stats(a), &st.to_proto());
        Ok(())
    }

    /// Pays `amount` from the tasks module account and records it.
    fn pay(
        &mut self,
        t: &mut Task,
        to: &Address,
        amount: Amount,
        reason: &'static str,
    ) -> Result<()> {
        if amount.is_zero() {
            return Ok(());
        }
        self.transfer(&module_address(), to, amount)?;
        t.payouts.push(Payout {
            recipient: *to,
            amount,
            reason: reason.into(),
        });
        self.emit_typed(&EventPayout {
            task_id: t.id,
            recipient: *to,
            amount,
            reason,
        });
        Ok(())
    }

    /// Ends the task with `status` (escrow must already be paid out) and
    /// releases the stake locks its solver and drawn verifiers hold.
    fn end(&mut self, t: &mut Task, status: Status, note: String) -> Result<()> {
        // Requests still open when the task ends (a dispute ended it first)
        // get their bonds back; posted checkpoints are deleted.
        let mut refunds = Vec::new();
        for r in t.checkpoint_requests.iter_mut() {
            if r.state == crate::task::RequestState::Open {
                r.state = crate::task::RequestState::Missed;
                refunds.push((r.requester, r.bond));
            }
        }
        for (to, bond) in refunds {
            self.pay(
                t,
                &to,
                bond,
                "checkpoint request bond returned: the task ended",
            )?;
        }
        let steps: std::collections::BTreeSet<u64> =
            t.checkpoint_requests.iter().map(|r| r.step).collect();
        for k in steps {
            self.delete(state_key::posted_checkpoint(t.id, k));
        }
        if let (Some(c), Status::Claimed | Status::Committed) = (&t.claim, t.status) {
            self.unlock(&c.solver)?;
            for v in &t.verifiers {
                self.unlock(v)?;
            }
        }
        t.status = status;
        t.note = note.clone();
        self.put_task(t);
        self.emit_typed(&EventTaskEnded {
            task_id: t.id,
            status: status.name(),
            note,
        });
        Ok(())
    }
}
impl<S: StateWrite + ?Sized> TasksWrite for S {}

/// NotAllowed unless `who` submitted `t`.
pub(crate) fn expect_submitter(t: &Task, who: &framework::Address) -> Result<()> {
    if t.submitter != *who {
        return Err(TasksError::NotAllowed {
            role: "submitter",
            expected: t.submitter.to_string(),
            got: who.to_string(),
        });
    }
    Ok(())
}

pub(crate) fn expect_status(t: &Task, want: Status) -> Result<()> {
    if t.status != want {
        return Err(TasksError::WrongStatus {
            id: t.id,
            status: t.status.name(),
            expected: want.name(),
        });
    }
    Ok(())
}
