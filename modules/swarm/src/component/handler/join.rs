//! `MsgJoinRound`: a staked solver takes the next slot of the current round.
//! The slot's task (train `inner_steps` from `G_r` on the slot's shard) is
//! submitted by the swarm and claimed for the contributor in one step, so its
//! claim bond, stake lock and deadlines are the tasks module's own.
use framework::{BlockCtx, StateWrite, StateWriteExt};
use staking::{Role, StakingRead};

use crate::component::round::{contribution_program, submit_task, Reward};
use crate::component::state::{SwarmRead, SwarmWrite};
use crate::error::{Result, SwarmError};
use crate::event::EventRoundJoined;
use crate::msg::MsgJoinRound;
use crate::swarm::{Contribution, Phase};

pub fn execute<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    m: &MsgJoinRound,
) -> Result<(u64, u64)> {
    let mut sw = s.swarm(m.swarm_id)?;
    let no = |why: String| Err(SwarmError::CannotJoin(m.contributor.to_string(), why));
    if sw.done {
        return no(format!("swarm {} is done", sw.id));
    }
    if m.round != sw.round {
        return no(format!(
            "the current round is {}, not {}",
            sw.round, m.round
        ));
    }
    let mut r = s.round(sw.id, sw.round)?;
    if r.phase != Phase::Joining || ctx.height > r.join_deadline {
        return Err(SwarmError::WrongPhase {
            swarm: sw.id,
            round: r.round,
            phase: r.phase.name(),
            why: format!("joining closed at height {}", r.join_deadline),
        });
    }
    if r.contributions.len() as u64 >= sw.slots {
        return no("every slot is taken".into());
    }
    if r.contributions
        .iter()
        .any(|c| c.contributor == m.contributor)
    {
        return no("it already holds a slot of this round".into());
    }
    let stake = s.bonded_stake(&m.contributor, Role::Solver)?;
    if stake.is_zero() || stake < sw.min_stake {
        return no(format!(
            "bonded solver stake {stake} is below the swarm's minimum {}",
            sw.min_stake
        ));
    }
    if let Some(d) = &m.dataset {
        // Own data could hold the public evaluation rows: allowed only when each
        // round is measured on a pool published after its contributions.
        if sw.pools.is_empty() {
            return no(
                "this swarm has no sealed evaluation pools: contributions train on its shards"
                    .into(),
            );
        }
        if d.layout.schema != sw.dataset.schema || d.layout.rows < 2 {
            return no(format!(
                "its dataset must be {} with at least 2 rows",
                sw.dataset.schema.name()
            ));
        }
    }
    let slot = r.contributions.len() as u64;
    let base = sw.program()?;
    let prog = contribution_program(&sw, &base, &r.start, r.round, slot, m.dataset.as_ref())?;
    let layout = m
        .dataset
        .as_ref()
        .map_or_else(|| sw.dataset.clone(), |d| d.layout.clone());
    let task_id = submit_task(s, ctx, &mut sw, &prog, Reward::Contribution, layout)?;
    tasks::component::handler::claim::execute(
        s,
        ctx,
        &tasks::msg::MsgClaimTask {
            solver: m.contributor,
            task_id,
            endpoint: m.endpoint.clone(),
        },
    )?;
    r.contributions.push(Contribution {
        slot,
        contributor: m.contributor,
        task_id,
        task_status: String::new(),
        final_state_hash: None,
        solver: None,
        endpoint: m.endpoint.clone(),
        eval: None,
        duplicate: false,
        improvement: 0,
        quality_paid: framework::Amount::ZERO,
        dataset: m.dataset.clone(),
    });
    // Full: the next check of the round moves it on.
    if r.contributions.len() as u64 == sw.slots {
        r.phase = Phase::Training;
    }
    s.emit_typed(&EventRoundJoined {
        swarm_id: sw.id,
        round: r.round,
        slot,
        contributor: m.contributor,
        task_id,
    });
    s.put_round(&r);
    s.put_swarm(&sw);
    Ok((task_id, slot))
}
