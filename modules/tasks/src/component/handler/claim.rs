//! `MsgClaimTask`: a staked solver takes an open task and posts its bond.
use bank::BankWrite;
use framework::{BlockCtx, StateWrite, StateWriteExt};
use staking::{Role, StakingLocks, StakingRead};

use crate::component::state::{expect_status, TasksRead, TasksWrite};
use crate::error::{Result, TasksError};
use crate::event::EventTaskClaimed;
use crate::msg::MsgClaimTask;
use crate::task::{Claim, Status};
use crate::{module_address, Deadline};

pub fn execute<S: StateWrite + ?Sized>(s: &mut S, ctx: &BlockCtx, m: &MsgClaimTask) -> Result<()> {
    let mut t = s.task(m.task_id)?;
    expect_status(&t, Status::Open)?;
    if ctx.height > t.claim_deadline {
        return Err(TasksError::DeadlinePassed {
            deadline: t.claim_deadline,
            height: ctx.height,
        });
    }
    let stake = s.bonded_stake(&m.solver, Role::Solver)?;
    if stake.is_zero() {
        return Err(TasksError::NotASolver(m.solver.to_string()));
    }
    let p = s.tasks_params()?;
    // Each open obligation may cost a dispute's slash: the stake must cover
    // all of them, this claim included.
    let claims = s.locks(&m.solver)?;
    let needed = p
        .solver_stake_per_claim
        .checked_mul_u64(claims.saturating_add(1))?;
    if stake < needed {
        return Err(TasksError::StakeTooLow {
            solver: m.solver.to_string(),
            stake,
            claims,
            needed,
        });
    }
    s.transfer(&m.solver, &module_address(), p.claim_bond)?;
    s.lock(&m.solver)?;
    let commit_deadline = ctx.height.saturating_add(p.commit_blocks);
    t.status = Status::Claimed;
    t.claim = Some(Claim {
        solver: m.solver,
        endpoint: crate::msg::bounded_endpoint(&m.endpoint),
        bond: p.claim_bond,
        height: ctx.height,
        commit_deadline,
    });
    s.put_task(&t);
    s.schedule(commit_deadline.saturating_add(1), t.id, Deadline::Commit);
    s.emit_typed(&EventTaskClaimed {
        task_id: t.id,
        solver: m.solver,
        bond: p.claim_bond,
        commit_deadline,
    });
    Ok(())
}
