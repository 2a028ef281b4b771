//! `MsgCreateSwarm`: validate the base program and the programs every round
//! derives from it, escrow `rounds × budget_per_round`, open round 0.
use bank::{BankError, BankRead, BankWrite};
use framework::{BlockCtx, StateWrite, StateWriteExt};
use tasks::TasksRead;

use crate::component::round::{
    contribution_program, evaluation_program, merge_program, open_round, task_msg,
};
use crate::component::state::{SwarmRead, SwarmWrite};
use crate::error::{Result, SwarmError};
use crate::event::EventSwarmCreated;
use crate::msg::MsgCreateSwarm;
use crate::swarm::{GlobalState, Swarm};

pub fn execute<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    m: &MsgCreateSwarm,
) -> Result<u64> {
    let p = s.swarm_params()?;
    let tp = s.tasks_params()?;
    let bad = |w: String| Err(SwarmError::Invalid(w));
    if m.rounds == 0 || m.rounds > p.max_rounds {
        return bad(format!(
            "rounds must be 1..={}, got {}",
            p.max_rounds, m.rounds
        ));
    }
    if m.slots == 0 || m.slots > p.max_slots {
        return bad(format!(
            "slots must be 1..={}, got {}",
            p.max_slots, m.slots
        ));
    }
    if m.inner_steps < 2 || m.inner_steps > tp.max_steps {
        return bad(format!(
            "inner_steps must be 2..={}, got {}",
            tp.max_steps, m.inner_steps
        ));
    }
    if m.eval_steps < 2 || m.eval_steps > p.max_eval_steps {
        return bad(format!(
            "eval_steps must be 2..={}, got {}",
            p.max_eval_steps, m.eval_steps
        ));
    }
    for (what, r) in [
        ("contribution_reward", m.contribution_reward),
        ("evaluation_reward", m.evaluation_reward),
    ] {
        if r < tp.min_reward {
            return bad(format!(
                "{what} {r} is below the tasks minimum {}",
                tp.min_reward
            ));
        }
    }
    // Compared, never computed with (IEEE comparisons are exact): NaN or infinity
    // would not even serialize into the merge program.
    let outer_lr = f32::from_bits(m.outer_lr_bits);
    if m.outer_lr_bits != 0 && !(outer_lr.is_finite() && outer_lr > 0.0) {
        return bad(format!(
            "outer_lr = {outer_lr} must be finite and > 0 (or 0: merge by selection)"
        ));
    }
    let mut sw = Swarm {
        id: 0,
        creator: m.creator,
        program_json: m.program_json.clone(),
        rounds: m.rounds,
        slots: m.slots,
        inner_steps: m.inner_steps,
        eval_steps: m.eval_steps,
        eval_batch: m.eval_batch,
        budget_per_round: m.budget_per_round,
        contribution_reward: m.contribution_reward,
        evaluation_reward: m.evaluation_reward,
        verification_fee: m.verification_fee,
        min_stake: m.min_stake,
        round: 0,
        global: GlobalState {
            root: [0; 32],
            step: 0,
            source: String::new(),
            task_id: 0,
        },
        done: false,
        created_height: ctx.height,
        escrow: m.budget_per_round.checked_mul_u64(m.rounds)?,
        eval_from: 0,
        eval_to: 0,
        dataset: tasks::DatasetLayout {
            schema: train::dataset::Schema::Ascii,
            rows: 0,
            row_bytes: 0,
            chunk_rows: 0,
        },
        seed_chain: m.seed_commitment,
        pools: m.pools.clone(),
        outer_lr_bits: m.outer_lr_bits,
    };
    let tasks_cost = sw.task_budget()?;
    if m.budget_per_round < tasks_cost {
        return bad(format!(
            "budget_per_round {} does not cover the round's tasks ({} = slots x (contribution_reward + fee) + (slots + 1, + 1 with an averaged merge) x (evaluation_reward + fee))",
            m.budget_per_round, tasks_cost
        ));
    }
    // Funds first: validating programs is the expensive check.
    let balance = s.balance(&m.creator)?;
    if balance < sw.escrow {
        return Err(BankError::InsufficientFunds {
            address: m.creator.to_string(),
            balance,
            needed: sw.escrow,
        }
        .into());
    }
    let info = m.dataset.as_ref().map(tasks::DatasetLayout::to_proto);
    let v = tasks::validate_program(&m.program_json, &tp, info.as_ref())?;
    let base = v.program;
    if !base.mode.is_train() || !base.record_loss {
        return bad("the base program must train (mode train) with record_loss: true".into());
    }
    sw.eval_from = base.dataset.train_rows;
    sw.eval_to = v.layout.rows;
    sw.dataset = v.layout;
    // Round 0 starts from the base's committed state, or from its seed state,
    // whose hash the chain computes once here (bounded by max_state_bytes).
    sw.global = match &base.init_state {
        Some(init) => GlobalState {
            root: init.root,
            step: init.step,
            source: init.name.clone(),
            task_id: 0,
        },
        None => {
            let s0 = train::trainer::initial_state(&base)
                .map_err(|e| SwarmError::Invalid(e.to_string()))?;
            GlobalState {
                root: train::state_hash(&s0),
                step: 0,
                source: format!("{}{}", train::trainer::SEED_SOURCE, base.seed),
                task_id: 0,
            }
        }
    };
    if !sw.pools.is_empty() && sw.pools.len() as u64 != sw.rounds {
        return bad(format!(
            "{} evaluation pools for {} rounds: give one per round, or none",
            sw.pools.len(),
            sw.rounds
        ));
    }
    if let Some(p) = sw
        .pools
        .iter()
        .find(|p| p.layout.schema != sw.dataset.schema)
    {
        return bad(format!(
            "evaluation pool {} has schema {}, the swarm's data is {}",
            p.name,
            p.layout.schema.name(),
            sw.dataset.schema.name()
        ));
    }
    // Every task a round creates must pass the tasks module's bounds: check the
    // shapes of the programs now (seeds and states do not change the bounds).
    let contribution = contribution_program(&sw, &base, &sw.global, 0, 0, None)?;
    tasks::validate_program(&task_msg(&contribution)?, &tp, info.as_ref())?;
    for r in 0..sw.pools.len().max(1) as u64 {
        let (prog, layout) = evaluation_program(&sw, &base, &sw.global, &[0; 32], r)?;
        tasks::validate_program(&task_msg(&prog)?, &tp, Some(&layout.to_proto()))?;
    }
    if sw.averages() {
        // The largest merge a round can submit: G_r and every slot.
        let all: Vec<GlobalState> = (0..sw.slots).map(|_| sw.global.clone()).collect();
        let prog = merge_program(&sw, &base, &sw.global, &all)?;
        tasks::validate_program(&task_msg(&prog)?, &tp, info.as_ref())?;
    }
    s.transfer(&m.creator, &crate::module_address(), sw.escrow)?;
    sw.id = s.next_swarm_id()?;
    open_round(s, ctx, &mut sw)?;
    // One check chain per swarm: each look schedules the next (end_block).
    s.schedule_check(ctx.height.saturating_add(p.check_blocks.max(1)), sw.id);
    s.emit_typed(&EventSwarmCreated {
        swarm_id: sw.id,
        creator: m.creator,
        escrow: sw.escrow,
    });
    s.put_swarm(&sw);
    Ok(sw.id)
}
