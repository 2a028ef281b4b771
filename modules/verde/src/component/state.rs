//! Reads of the verde state (public) and the crate-private writes: moves and
//! clocks, uploads, and the one place a dispute ends ([`VerdeWrite::resolve`]).
use bank::BankWrite;
use framework::{Address, Amount, BlockCtx, StateRead, StateReadExt, StateWrite, StateWriteExt};
use proto::verde::v1 as pb;
use staking::{StakingLocks, StakingWrite};
use tasks::{TaskDisputes, Verdict};

use crate::dispute::{Dispute, Phase, Turn};
use crate::error::{Result, VerdeError};
use crate::event::{EventDisputeMove, EventDisputeResolved, EventPayout};
use crate::params::Params;
use crate::{module_address, state_key};

pub trait VerdeRead: StateRead {
    fn verde_params(&self) -> Result<Params> {
        match self.get_proto::<pb::Params>(state_key::PARAMS)? {
            None => Ok(Params::default()),
            Some(p) => Params::from_proto(&p),
        }
    }

    fn dispute(&self, id: u64) -> Result<Dispute> {
        let p = self
            .get_proto::<pb::Dispute>(&state_key::dispute(id))?
            .ok_or(VerdeError::NotFound(id))?;
        Dispute::try_from(&p)
    }

    /// The bytes uploaded so far for input `input` of dispute `id`, in order.
    fn uploaded(&self, id: u64, input: u32) -> Result<Vec<u8>> {
        let prefix = state_key::upload_input(id, input);
        let mut out = Vec::new();
        let mut start = Vec::new();
        loop {
            let page = self.prefix_raw(&prefix, &start, 64)?;
            for (_, v) in &page {
                out.extend_from_slice(v);
            }
            match page.last() {
                Some((k, _)) if page.len() == 64 => {
                    start = k.clone();
                    start.push(0);
                }
                _ => return Ok(out),
            }
        }
    }

    /// Proven dataset rows of dispute `id`, by row index.
    fn proven_rows(&self, id: u64) -> Result<std::collections::BTreeMap<u64, Vec<u8>>> {
        let prefix = state_key::rows(id);
        let mut out = std::collections::BTreeMap::new();
        let mut start = Vec::new();
        loop {
            let page = self.prefix_raw(&prefix, &start, 256)?;
            for (k, v) in &page {
                let r = k
                    .get(prefix.len()..)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
                    .ok_or_else(|| VerdeError::BadUpload("bad row key".into()))?;
                out.insert(r, v.clone());
            }
            match page.last() {
                Some((k, _)) if page.len() == 256 => {
                    start = k.clone();
                    start.push(0);
                }
                _ => return Ok(out),
            }
        }
    }
}
impl<S: StateRead + ?Sized> VerdeRead for S {}

pub(crate) trait VerdeWrite: StateWrite {
    fn put_dispute(&mut self, d: &Dispute) {
        self.put_proto(state_key::dispute(d.id), &d.to_proto());
    }

    fn next_dispute_id(&mut self) -> Result<u64> {
        let id = self.get_u64(state_key::NEXT_ID)?.unwrap_or(1);
        self.put_u64(state_key::NEXT_ID.to_vec(), id.saturating_add(1));
        Ok(id)
    }

    /// Sets the next deadline and whose move it is, and queues the timeout.
    fn next_move(
        &mut self,
        ctx: &BlockCtx,
        d: &mut Dispute,
        phase: Phase,
        turn: Turn,
    ) -> Result<()> {
        let p = self.verde_params()?;
        d.phase = phase;
        d.turn = turn;
        d.deadline = ctx.height.saturating_add(p.move_blocks);
        self.put_raw(
            state_key::deadline(d.deadline.saturating_add(1), d.id),
            vec![],
        );
        self.put_dispute(d);
        let actor = d.to_proto().turn;
        self.emit_typed(&EventDisputeMove {
            dispute_id: d.id,
            actor,
            action: phase.name().into(),
            deadline: d.deadline,
        });
        Ok(())
    }

    /// Deletes every uploaded chunk and row of dispute `id`.
    fn delete_uploads(&mut self, id: u64) -> Result<()> {
        for prefix in [state_key::uploads(id), state_key::rows(id)] {
            loop {
                let page = self.prefix_raw(&prefix, &[], 256)?;
                if page.is_empty() {
                    break;
                }
                for (k, _) in page {
                    self.delete(k);
                }
            }
        }
        Ok(())
    }

    fn payout(
        &mut self,
        d: &Dispute,
        to: &Address,
        amount: Amount,
        why: &'static str,
    ) -> Result<()> {
        if !amount.is_zero() {
            self.transfer(&module_address(), to, amount)?;
            self.emit_typed(&EventPayout {
                dispute_id: d.id,
                recipient: *to,
                amount,
                reason: why,
            });
        }
        Ok(())
    }

    /// Pays out and ends the dispute: the one place a dispute ends.
    fn resolve(
        &mut self,
        ctx: &BlockCtx,
        d: &mut Dispute,
        solver_right: bool,
        reason: &str,
    ) -> Result<()> {
        let p = self.verde_params()?;
        let me = module_address();
        let mut slashed = Amount::ZERO;
        let mut moot = Vec::new();
        if solver_right {
            self.payout(
                d,
                &d.solver.clone(),
                d.bond,
                "challenger's bond forfeited to the solver",
            )?;
            self.dispute_resolved(ctx, d.task_id, d.id, Verdict::SolverRight, &me)?;
            self.record_challenger(ctx, &d.challenger, false, Amount::ZERO, d.bond)?;
        } else {
            let st = self.dispute_resolved(ctx, d.task_id, d.id, Verdict::SolverWrong, &me)?;
            let stake_lost = self.slash(&d.solver, p.solver_slash, "lost a Verde dispute", &me)?;
            slashed = st.claim_bond.checked_add(stake_lost)?;
            let to_challenger = slashed.mul_ratio(u64::from(p.challenger_reward_percent), 100);
            self.payout(
                d,
                &d.challenger.clone(),
                d.bond,
                "challenger's bond returned",
            )?;
            self.payout(
                d,
                &d.challenger.clone(),
                to_challenger,
                "challenger's reward",
            )?;
            let burn = slashed.checked_sub(to_challenger)?;
            if !burn.is_zero() {
                self.burn(&me, burn)?;
            }
            self.record_slash(ctx, &d.solver, slashed)?;
            self.record_challenger(ctx, &d.challenger, true, to_challenger, Amount::ZERO)?;
            moot = st.moot;
        }
        self.finish(
            ctx,
            d,
            slashed,
            format!(
                "{} wins: {reason}",
                if solver_right { "solver" } else { "challenger" }
            ),
        )?;
        self.emit_typed(&EventDisputeResolved {
            dispute_id: d.id,
            task_id: d.task_id,
            winner: if solver_right { "solver" } else { "challenger" },
            step: d.hi,
            node: d.node,
            op_kind: d.op_kind.clone(),
            rounds: d.rounds,
            slashed,
            reason: reason.to_string(),
        });
        for id in moot.into_iter().filter(|m| *m != d.id) {
            self.close_moot(ctx, id, d.id)?;
        }
        Ok(())
    }

    /// Ends a dispute whose task failed in another dispute: no verdict, the
    /// challenger's bond comes back.
    fn close_moot(&mut self, ctx: &BlockCtx, id: u64, by: u64) -> Result<()> {
        let mut d = self.dispute(id)?;
        if d.phase == Phase::Resolved {
            return Ok(());
        }
        self.payout(
            &d,
            &d.challenger.clone(),
            d.bond,
            "challenger's bond returned: moot",
        )?;
        self.finish(
            ctx,
            &mut d,
            Amount::ZERO,
            format!("moot: the solver lost dispute {by} and the task failed"),
        )?;
        self.emit_typed(&EventDisputeResolved {
            dispute_id: d.id,
            task_id: d.task_id,
            winner: "none",
            step: d.hi,
            node: d.node,
            op_kind: d.op_kind.clone(),
            rounds: d.rounds,
            slashed: Amount::ZERO,
            reason: d.outcome.clone(),
        });
        Ok(())
    }

    /// Marks `d` resolved, releases the challenger's stake lock and deletes
    /// its uploads.
    fn finish(
        &mut self,
        ctx: &BlockCtx,
        d: &mut Dispute,
        slashed: Amount,
        outcome: String,
    ) -> Result<()> {
        d.phase = Phase::Resolved;
        d.turn = Turn::Nobody;
        d.outcome = outcome.clone();
        d.slashed = slashed;
        d.resolved_height = ctx.height;
        d.record(ctx.height, "chain", outcome);
        self.put_dispute(d);
        self.unlock(&d.challenger)?;
        self.delete_uploads(d.id)
    }

    /// In a two-party phase where one party has moved: it is now the other's
    /// turn (the clock is unchanged).
    fn await_other(&mut self, d: &mut Dispute, solver_pending: bool) {
        d.turn = if solver_pending {
            Turn::Solver
        } else {
            Turn::Challenger
        };
        self.put_dispute(d);
    }

    fn check_phase(&self, ctx: &BlockCtx, d: &Dispute, phase: Phase) -> Result<()> {
        if d.phase != phase {
            return Err(VerdeError::WrongPhase {
                id: d.id,
                phase: d.phase.name(),
            });
        }
        if ctx.height > d.deadline {
            return Err(VerdeError::TooLate {
                deadline: d.deadline,
                height: ctx.height,
            });
        }
        Ok(())
    }

    /// The dispute, if it is in `phase`, before its deadline, and `who`'s move.
    fn active(&self, ctx: &BlockCtx, id: u64, phase: Phase, who: &Address) -> Result<Dispute> {
        let d = self.dispute(id)?;
        self.check_phase(ctx, &d, phase)?;
        let mine = match d.turn {
            Turn::Solver => *who == d.solver,
            Turn::Challenger => *who == d.challenger,
            Turn::Both | Turn::Nobody => false,
        };
        if !mine {
            return Err(VerdeError::NotYourMove(format!(
                "{} must move, not {who}",
                d.to_proto().turn
            )));
        }
        Ok(d)
    }
}
impl<S: StateWrite + ?Sized> VerdeWrite for S {}
