//! A round's life: the programs it derives from the base, the tasks it
//! creates, and its progress, looked at every `check_blocks` by the end-block
//! hook (joining → training → evaluating → scoring → settled → next round).
use framework::{Address, Amount, BlockCtx, StateWrite, StateWriteExt};
use sha2::{Digest, Sha256};
use tasks::{Status, TasksRead};

use crate::component::state::{SwarmRead, SwarmWrite};
use crate::error::{Result, SwarmError};
use crate::event::{EventEvaluationStarted, EventRoundSettled};
use crate::swarm::{Contribution, DataSource, GlobalState, Measurement, Phase, Round, Swarm};

/// Evaluation tasks one measurement may take (the first and the resubmissions).
pub const MAX_EVAL_ATTEMPTS: u32 = 3;

fn seed_of(tag: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(tag);
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn u64_of(h: &[u8; 32]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    u64::from_be_bytes(b)
}

/// The program of slot `slot` in round `round`: `inner_steps` training steps from
/// `start`, with the slot's own batch seed (its shard of the training rows).
pub fn contribution_program(
    sw: &Swarm,
    base: &train::Program,
    start: &GlobalState,
    round: u64,
    slot: u64,
    own: Option<&DataSource>,
) -> Result<train::Program> {
    let mut p = base.clone();
    if let Some(d) = own {
        // All its rows but one train (the tasks module keeps one held out).
        p.dataset = d.as_ref(d.layout.rows.saturating_sub(1).max(1));
    }
    p.steps = sw.inner_steps;
    p.seed = u64_of(&seed_of(
        b"veritrain/swarm/shard",
        &[
            &sw.id.to_be_bytes(),
            &round.to_be_bytes(),
            &slot.to_be_bytes(),
        ],
    ));
    p.init_state = Some(start.as_init());
    Ok(p)
}

/// The evaluation of `state` in round `round`: `eval_steps` forward batches of
/// `eval_batch` rows drawn by `eval_seed` from the held-out pool (the round's
/// sealed pool, when the swarm has them), the loss of each recorded in `h_t`.
/// Returns the program and the layout of the dataset it reads.
pub fn evaluation_program(
    sw: &Swarm,
    base: &train::Program,
    state: &GlobalState,
    eval_seed: &[u8; 32],
    round: u64,
) -> Result<(train::Program, tasks::DatasetLayout)> {
    let mut p = base.clone();
    let layout = match sw.pools.get(round as usize) {
        Some(pool) => {
            p.dataset = pool.as_ref(1);
            p.mode = train::program::Mode::Evaluate {
                rows_from: 0,
                rows_to: pool.layout.rows,
            };
            pool.layout.clone()
        }
        None => {
            p.mode = train::program::Mode::Evaluate {
                rows_from: sw.eval_from,
                rows_to: sw.eval_to,
            };
            sw.dataset.clone()
        }
    };
    p.batch_size = usize::try_from(sw.eval_batch)
        .map_err(|_| SwarmError::Invalid("eval_batch is too large".into()))?;
    // Evaluation is forward only: no micro-batches.
    p.grad_accum = 1;
    p.steps = sw.eval_steps;
    p.seed = u64_of(eval_seed);
    p.init_state = Some(state.as_init());
    Ok((p, layout))
}

/// The averaged merge of round `r`: one step (train's mode merge) from `start`
/// (`G_r`) and the `contributions`' verified states, with the swarm's outer
/// learning rate; its final state is `G_{r+1}`.
pub fn merge_program(
    sw: &Swarm,
    base: &train::Program,
    start: &GlobalState,
    contributions: &[GlobalState],
) -> Result<train::Program> {
    let mut p = base.clone();
    p.mode = train::program::Mode::Merge {
        outer_lr: f32::from_bits(sw.outer_lr_bits),
    };
    p.steps = 1;
    p.grad_accum = 1;
    p.init_state = None;
    p.inputs = std::iter::once(start)
        .chain(contributions)
        .map(GlobalState::as_init)
        .collect();
    Ok(p)
}

/// A program as the JSON a task carries.
pub fn task_msg(p: &train::Program) -> Result<Vec<u8>> {
    serde_json::to_vec(p).map_err(|e| SwarmError::Invalid(e.to_string()))
}

/// Which of the swarm's rewards a task pays.
#[derive(Clone, Copy)]
pub(crate) enum Reward {
    Contribution,
    Evaluation,
}

/// Submits `prog` as a task paid by the swarm (the reward and the verification
/// fee out of its escrow); the task is verified like any other.
pub(crate) fn submit_task<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    sw: &mut Swarm,
    prog: &train::Program,
    reward: Reward,
    layout: tasks::DatasetLayout,
) -> Result<u64> {
    let reward = match reward {
        Reward::Contribution => sw.contribution_reward,
        Reward::Evaluation => sw.evaluation_reward,
    };
    submit_json(s, ctx, sw, task_msg(prog)?, reward, layout)
}

/// [`submit_task`] of a program already in task JSON.
fn submit_json<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    sw: &mut Swarm,
    program_json: Vec<u8>,
    reward: Amount,
    layout: tasks::DatasetLayout,
) -> Result<u64> {
    sw.escrow = sw
        .escrow
        .checked_sub(reward.checked_add(sw.verification_fee)?)?;
    let id = tasks::component::handler::submit::execute(
        s,
        ctx,
        &tasks::msg::MsgSubmitTask {
            submitter: crate::module_address(),
            program_json,
            reward,
            verification_fee: sw.verification_fee,
            dataset: Some(layout),
            level: tasks::Level::Full,
            seed_commitment: None,
        },
    )?;
    s.own_task(id, sw.id);
    Ok(id)
}

/// Opens round `sw.round` from `sw.global`.
pub(crate) fn open_round<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    sw: &mut Swarm,
) -> Result<()> {
    let p = s.swarm_params()?;
    let join_deadline = ctx.height.saturating_add(p.join_blocks);
    s.put_round(&Round {
        swarm_id: sw.id,
        round: sw.round,
        phase: Phase::Joining,
        start: sw.global.clone(),
        started_height: ctx.height,
        join_deadline,
        contributions: vec![],
        eval_seed: None,
        base: None,
        report_deadline: 0,
        quality_pool: Amount::ZERO,
        quality_paid: Amount::ZERO,
        merged_slot: None,
        settled_height: 0,
        note: String::new(),
        reveal_deadline: 0,
        seed_revealed: false,
        merge: None,
        merge_slots: vec![],
    });
    Ok(())
}

/// What task `id` returned to the swarm account (refunds of unused reward and
/// fee), once it ended; `None` while it runs.
fn ended<S: TasksRead + ?Sized>(s: &S, id: u64) -> Result<Option<(tasks::Task, Amount)>> {
    let t = s.task(id)?;
    if t.status.is_open() {
        return Ok(None);
    }
    let me = crate::module_address();
    let back = t
        .payouts
        .iter()
        .filter(|p| p.recipient == me)
        .try_fold(Amount::ZERO, |a, p| a.checked_add(p.amount))?;
    Ok(Some((t, back)))
}

/// Looks at swarm `id`'s round and moves it on as far as its tasks allow.
/// Returns whether to look again later.
pub(crate) fn advance<S: StateWrite + ?Sized>(s: &mut S, ctx: &BlockCtx, id: u64) -> Result<bool> {
    let mut sw = s.swarm(id)?;
    if sw.done {
        return Ok(false);
    }
    let mut r = s.round(id, sw.round)?;
    if r.phase == Phase::Joining && ctx.height > r.join_deadline {
        r.phase = Phase::Training;
    }
    if r.phase == Phase::Training {
        let mut running = false;
        for c in r
            .contributions
            .iter_mut()
            .filter(|c| c.task_status.is_empty())
        {
            match ended(s, c.task_id)? {
                None => running = true,
                Some((t, back)) => {
                    sw.escrow = sw.escrow.checked_add(back)?;
                    c.task_status = t.status.name().to_string();
                    if t.status == Status::Finalized {
                        c.final_state_hash = t.commitment.map(|k| k.final_state_hash);
                        c.solver = t.claim.as_ref().map(|k| k.solver);
                        c.endpoint = t.claim.map(|k| k.endpoint).unwrap_or_default();
                    }
                }
            }
        }
        if !running {
            contributions_ended(s, ctx, &mut sw, &mut r)?;
        }
    }
    if r.phase == Phase::Seeding && ctx.height > r.reveal_deadline {
        r.note =
            "the creator did not reveal its seed link in time: drawn from the block hash".into();
        let seed = block_seed(ctx, &sw, &r);
        start_evaluation(s, ctx, &mut sw, &mut r, seed)?;
    }
    if r.phase == Phase::Evaluating {
        let mut running = false;
        let ids: Vec<u64> = r.measurements().map(|m| m.task_id).collect();
        for task_id in ids {
            let Some(m) = measurement_mut(&mut r, task_id) else {
                continue;
            };
            if !m.task_status.is_empty() {
                continue;
            }
            match ended(s, task_id)? {
                None => running = true,
                Some((t, back)) => {
                    sw.escrow = sw.escrow.checked_add(back)?;
                    let attempts = measurement_mut(&mut r, task_id).map_or(0, |m| m.attempts);
                    // Only out of this round's own funds: later rounds keep their budgets.
                    let affordable = affords_evaluation_task(&sw, r.round)?;
                    if t.status != Status::Finalized && attempts < MAX_EVAL_ATTEMPTS && affordable {
                        // An evaluation that failed verification (its evaluator
                        // was slashed) or that nobody did: the same program
                        // again, so one evaluator cannot deny a contribution
                        // its measurement.
                        let reward = sw.evaluation_reward;
                        let layout = t.dataset.clone();
                        let again = submit_json(s, ctx, &mut sw, t.program_json, reward, layout)?;
                        if let Some(m) = measurement_mut(&mut r, task_id) {
                            m.task_id = again;
                            m.attempts = attempts + 1;
                        }
                        running = true;
                    } else if let Some(m) = measurement_mut(&mut r, task_id) {
                        m.task_status = t.status.name().to_string();
                    }
                }
            }
        }
        if !running {
            r.phase = Phase::Scoring;
            r.report_deadline = ctx.height.saturating_add(s.swarm_params()?.report_blocks);
        }
    }
    if r.phase == Phase::Scoring {
        let waiting = r
            .measurements()
            .any(|m| m.task_status == Status::Finalized.name() && !m.reported);
        if !waiting || ctx.height > r.report_deadline {
            settle(s, ctx, &mut sw, &mut r)?;
        }
    }
    if r.phase == Phase::Merging {
        merging(s, ctx, &mut sw, &mut r)?;
    }
    s.put_round(&r);
    s.put_swarm(&sw);
    Ok(!sw.done)
}

/// The measurement of task `task_id` in round `r`.
pub(crate) fn measurement_mut(r: &mut Round, task_id: u64) -> Option<&mut Measurement> {
    if r.base.as_ref().is_some_and(|m| m.task_id == task_id) {
        return r.base.as_mut();
    }
    r.contributions
        .iter_mut()
        .filter_map(|c| c.eval.as_mut())
        .find(|m| m.task_id == task_id)
}

/// Every contribution has ended. Copies are marked; with nothing to measure the
/// round settles; otherwise the evaluation seed is drawn: from the creator's next
/// seed-chain link when it committed to one (the round waits for it in
/// `Seeding`), else from this block's hash.
fn contributions_ended<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    sw: &mut Swarm,
    r: &mut Round,
) -> Result<()> {
    let mut seen: Vec<[u8; 32]> = vec![r.start.root];
    let mut any = false;
    for c in r.contributions.iter_mut() {
        let Some(h) = c.final_state_hash else {
            continue;
        };
        // A copy of an earlier slot's state (or of G_r) measures nothing new.
        if seen.contains(&h) {
            c.duplicate = true;
        } else {
            seen.push(h);
            any = true;
        }
    }
    if !any {
        r.note = "no verified contribution to evaluate".into();
        return settle(s, ctx, sw, r);
    }
    if sw.seed_chain.is_some() {
        r.phase = Phase::Seeding;
        r.reveal_deadline = ctx.height.saturating_add(s.swarm_params()?.reveal_blocks);
        return Ok(());
    }
    let seed = block_seed(ctx, sw, r);
    start_evaluation(s, ctx, sw, r, seed)
}

/// The evaluation seed from this block's hash (no seed chain, or no reveal in time).
fn block_seed(ctx: &BlockCtx, sw: &Swarm, r: &Round) -> [u8; 32] {
    seed_of(
        b"veritrain/swarm/eval",
        &[
            &ctx.block_hash,
            &sw.id.to_be_bytes(),
            &r.round.to_be_bytes(),
        ],
    )
}

/// The evaluation seed from the creator's revealed link: the link was fixed at
/// creation and hidden until now; the contributions' states, mixed in, were
/// unknown when it was fixed. Nobody can steer it.
pub(crate) fn revealed_seed(secret: &[u8; 32], sw: &Swarm, r: &Round) -> [u8; 32] {
    let finals: Vec<[u8; 32]> = r
        .contributions
        .iter()
        .map(|c| c.final_state_hash.unwrap_or([0; 32]))
        .collect();
    let (id, round) = (sw.id.to_be_bytes(), r.round.to_be_bytes());
    let mut parts: Vec<&[u8]> = vec![secret, &id, &round];
    parts.extend(finals.iter().map(|h| &h[..]));
    seed_of(b"veritrain/swarm/eval-revealed", &parts)
}

/// Submits one evaluation of `G_r` and one of each verified, distinct
/// contribution, all on the held-out rows `seed` draws.
pub(crate) fn start_evaluation<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    sw: &mut Swarm,
    r: &mut Round,
    seed: [u8; 32],
) -> Result<()> {
    r.eval_seed = Some(seed);
    let base = sw.program()?;
    let start = r.start.clone();
    let (prog, layout) = evaluation_program(sw, &base, &start, &seed, r.round)?;
    let id = submit_task(s, ctx, sw, &prog, Reward::Evaluation, layout)?;
    r.base = Some(Measurement {
        task_id: id,
        attempts: 1,
        ..Default::default()
    });
    let mut n = 1u64;
    for c in r.contributions.iter_mut().filter(|c| !c.duplicate) {
        let Some(state) = contribution_state(sw, &start, c) else {
            continue;
        };
        let (prog, layout) = evaluation_program(sw, &base, &state, &seed, r.round)?;
        let id = submit_task(s, ctx, sw, &prog, Reward::Evaluation, layout)?;
        c.eval = Some(Measurement {
            task_id: id,
            attempts: 1,
            ..Default::default()
        });
        n += 1;
    }
    r.phase = Phase::Evaluating;
    s.emit_typed(&EventEvaluationStarted {
        swarm_id: sw.id,
        round: r.round,
        eval_seed: hex::encode(seed),
        tasks: n,
    });
    Ok(())
}

/// The verified state contribution `c` ended in (`None` until its task is
/// finalized): `inner_steps` on from `start`, served by its solver.
fn contribution_state(sw: &Swarm, start: &GlobalState, c: &Contribution) -> Option<GlobalState> {
    Some(GlobalState {
        root: c.final_state_hash?,
        step: start.step.saturating_add(sw.inner_steps),
        source: state_source(&c.endpoint),
        task_id: c.task_id,
    })
}

/// Where a contribution's final state (or its own data) is fetched: the
/// contributing solver's blob service (solverd serves its runs' states and the
/// datasets it holds by root).
pub fn state_source(endpoint: &str) -> String {
    let host = endpoint
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    format!("grpc://{host}")
}

/// Pays the round's quality shares, in proportion to each verified
/// contribution's measured improvement over `G_r`, updates the leaderboard and
/// merges: by selection (the best improving contribution becomes `G_{r+1}`, and
/// the round ends) or by averaging (the merge task is submitted; the round ends
/// when it has: [`merging`]).
fn settle<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    sw: &mut Swarm,
    r: &mut Round,
) -> Result<()> {
    // Everything the escrow holds beyond the later rounds' budgets is this
    // round's quality pool: its own share, refunds of failed or unused tasks and
    // earlier rounds' unpaid pools.
    let later = sw
        .budget_per_round
        .checked_mul_u64(sw.rounds.saturating_sub(r.round + 1))?;
    // An averaged merge is paid after the shares: keep its first attempt back.
    let merge = if sw.averages() {
        sw.evaluation_reward.checked_add(sw.verification_fee)?
    } else {
        Amount::ZERO
    };
    let pool = sw
        .escrow
        .checked_sub(later)
        .and_then(|a| a.checked_sub(merge))
        .unwrap_or(Amount::ZERO);
    r.quality_pool = pool;
    let base_loss = r.base.as_ref().filter(|m| m.reported).map(|m| m.loss_fixed);
    if base_loss.is_none() && r.base.is_some() {
        r.note = "G_r's evaluation was not verified and reported: no quality share".into();
    }
    let mut total: u64 = 0;
    for c in r.contributions.iter_mut() {
        c.improvement = match (base_loss, c.eval.as_ref().filter(|m| m.reported)) {
            (Some(b), Some(m)) => b.saturating_sub(m.loss_fixed),
            _ => 0,
        };
        total = total.saturating_add(c.improvement);
    }
    let mut paid = Amount::ZERO;
    for c in r.contributions.iter_mut() {
        if c.improvement > 0 && total > 0 {
            c.quality_paid = pool.mul_ratio(c.improvement, total);
            paid = paid.checked_add(c.quality_paid)?;
        }
    }
    let mut credits: Vec<(Address, u64, Amount, bool)> = vec![];
    for c in &r.contributions {
        // Only verified work is credited, to the solver whose state it is.
        let (Some(solver), true) = (c.solver, c.task_status == Status::Finalized.name()) else {
            continue;
        };
        s.pay(sw, &solver, c.quality_paid, "quality share")?;
        credits.push((
            solver,
            c.improvement,
            sw.contribution_reward.checked_add(c.quality_paid)?,
            c.improvement > 0,
        ));
    }
    for (a, q, reward, improved) in credits {
        s.credit(sw.id, &a, q, reward, improved)?;
    }
    r.quality_paid = paid;
    r.merged_slot = None;
    if sw.averages() {
        return start_merge(s, ctx, sw, r);
    }
    select_best(sw, r);
    finish_round(s, ctx, sw, r)
}

/// The contribution with the largest measured improvement (the first of equals).
fn best_contribution(r: &Round) -> Option<usize> {
    let mut best: Option<(u64, usize)> = None;
    for (i, c) in r.contributions.iter().enumerate() {
        if c.improvement > 0 && best.is_none_or(|(b, _)| c.improvement > b) {
            best = Some((c.improvement, i));
        }
    }
    best.map(|(_, i)| i)
}

/// Merge by selection: the best improving contribution becomes `G_{r+1}` (none
/// improving keeps `G_r`).
fn select_best(sw: &mut Swarm, r: &mut Round) {
    if let Some(i) = best_contribution(r) {
        let c = &r.contributions[i];
        if let Some(state) = contribution_state(sw, &r.start, c) {
            sw.global = state;
            r.merged_slot = Some(c.slot);
        }
    }
}

/// Whether the escrow, beyond the later rounds' budgets, pays one more task at
/// the evaluation reward.
fn affords_evaluation_task(sw: &Swarm, round: u64) -> Result<bool> {
    let later = sw
        .budget_per_round
        .checked_mul_u64(sw.rounds.saturating_sub(round + 1))?;
    let cost = sw.evaluation_reward.checked_add(sw.verification_fee)?;
    Ok(sw.escrow.checked_sub(later).is_ok_and(|free| free >= cost))
}

/// Merge by averaging: submits the merge task over `G_r` and every improving
/// contribution (in slot order), paid the evaluation reward out of what settlement
/// kept back; none improving keeps `G_r`.
fn start_merge<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    sw: &mut Swarm,
    r: &mut Round,
) -> Result<()> {
    let start = r.start.clone();
    let mut slots = vec![];
    let mut states = vec![];
    for c in r.contributions.iter().filter(|c| c.improvement > 0) {
        if let Some(state) = contribution_state(sw, &start, c) {
            slots.push(c.slot);
            states.push(state);
        }
    }
    if states.is_empty() {
        return finish_round(s, ctx, sw, r);
    }
    if !affords_evaluation_task(sw, r.round)? {
        r.note = "the escrow cannot pay the merge task: merged by selection".into();
        select_best(sw, r);
        return finish_round(s, ctx, sw, r);
    }
    let prog = merge_program(sw, &sw.program()?, &start, &states)?;
    let layout = sw.dataset.clone();
    let id = submit_task(s, ctx, sw, &prog, Reward::Evaluation, layout)?;
    r.merge = Some(Measurement {
        task_id: id,
        attempts: 1,
        ..Default::default()
    });
    r.merge_slots = slots;
    r.phase = Phase::Merging;
    Ok(())
}

/// Looks at the merge task: once verified, its final state is `G_{r+1}` (served by
/// its solver); one that failed verification or was never done is submitted again
/// (as evaluations are, [`MAX_EVAL_ATTEMPTS`] in all, out of this round's funds),
/// after which the round merges by selection.
fn merging<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    sw: &mut Swarm,
    r: &mut Round,
) -> Result<()> {
    let Some(m) = r.merge.clone() else {
        return finish_round(s, ctx, sw, r);
    };
    let Some((t, back)) = ended(s, m.task_id)? else {
        return Ok(());
    };
    sw.escrow = sw.escrow.checked_add(back)?;
    let status = t.status.name().to_string();
    if let (Status::Finalized, Some(k)) = (t.status, t.commitment) {
        sw.global = GlobalState {
            root: k.final_state_hash,
            step: r.start.step.saturating_add(1),
            source: state_source(&t.claim.map(|c| c.endpoint).unwrap_or_default()),
            task_id: m.task_id,
        };
    } else if m.attempts < MAX_EVAL_ATTEMPTS && affords_evaluation_task(sw, r.round)? {
        let again = submit_json(s, ctx, sw, t.program_json, sw.evaluation_reward, t.dataset)?;
        r.merge = Some(Measurement {
            task_id: again,
            attempts: m.attempts + 1,
            ..Default::default()
        });
        return Ok(());
    } else {
        r.note = format!(
            "the merge was not verified after {} attempt(s): merged by selection",
            m.attempts
        );
        select_best(sw, r);
    }
    if let Some(m) = r.merge.as_mut() {
        m.task_status = status;
    }
    finish_round(s, ctx, sw, r)
}

/// Ends round `r` (its global state for the next round is in `sw.global`) and
/// opens the next, or ends the swarm and refunds what is left to its creator.
fn finish_round<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    sw: &mut Swarm,
    r: &mut Round,
) -> Result<()> {
    r.phase = Phase::Settled;
    r.settled_height = ctx.height;
    s.emit_typed(&EventRoundSettled {
        swarm_id: sw.id,
        round: r.round,
        quality_paid: r.quality_paid,
        merged_slot: r.merged_slot.unwrap_or(0),
    });
    s.put_round(r);
    sw.round = sw.round.saturating_add(1);
    if sw.round >= sw.rounds {
        let left = sw.escrow;
        let creator = sw.creator;
        s.pay(sw, &creator, left, "refund of the unspent budget")?;
        sw.done = true;
        return Ok(());
    }
    open_round(s, ctx, sw)?;
    // The next round's record replaces this one's only in `r` (already stored).
    *r = s.round(sw.id, sw.round)?;
    Ok(())
}
