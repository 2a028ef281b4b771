//! `MsgSubmitTask`: escrow reward + fee for a validated program.
use bank::{BankError, BankRead, BankWrite};
use framework::{BlockCtx, StateWrite, StateWriteExt};

use crate::component::state::{TasksRead, TasksWrite};
use crate::error::{Result, TasksError};
use crate::event::EventTaskSubmitted;
use crate::level;
use crate::msg::MsgSubmitTask;
use crate::program::validate_program;
use crate::task::{Status, Task};
use crate::{module_address, Deadline};

pub fn execute<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    m: &MsgSubmitTask,
) -> Result<u64> {
    let p = s.tasks_params()?;
    if m.reward < p.min_reward {
        return Err(TasksError::RewardTooLow {
            got: m.reward,
            min: p.min_reward,
        });
    }
    // Funds first: validating a program is the expensive check.
    let escrow = m.reward.checked_add(m.verification_fee)?;
    let balance = s.balance(&m.submitter)?;
    if balance < escrow {
        return Err(BankError::InsufficientFunds {
            address: m.submitter.to_string(),
            balance,
            needed: escrow,
        }
        .into());
    }
    let info = m.dataset.as_ref().map(|d| d.to_proto());
    let v = validate_program(&m.program_json, &p, info.as_ref())?;
    level::check_level(m.level, v.program.steps)?;
    // At the sampled level checkpoint availability is enforced on chain
    // (MsgRequestCheckpoint): the state must fit a posted checkpoint.
    let state_bytes = v.program.footprint().state_bytes;
    if m.level != crate::task::Level::Full && state_bytes > p.max_posted_checkpoint_bytes {
        return Err(TasksError::InvalidLevel(format!(
            "the sampled level needs a state of at most {} bytes (its checkpoints can be posted on \
             chain); this program's is {state_bytes}: use the full level",
            p.max_posted_checkpoint_bytes
        )));
    }
    s.transfer(&m.submitter, &module_address(), escrow)?;
    let id = s.next_task_id()?;
    let claim_deadline = ctx.height.saturating_add(p.claim_timeout_blocks);
    let total_flops = v.step_flops.saturating_mul(v.program.steps);
    let t = Task {
        id,
        submitter: m.submitter,
        program_hash: v.program.hash(),
        program_json: m.program_json.clone(),
        dataset_root: v.program.dataset.root,
        dataset: v.layout,
        steps: v.program.steps,
        node_count: v.node_count,
        reward: m.reward,
        verification_fee: m.verification_fee,
        level: m.level,
        window_blocks: level::window_blocks(
            p.challenge_window_blocks,
            total_flops,
            p.reexec_flops_per_block,
        ),
        status: Status::Open,
        submitted_height: ctx.height,
        claim_deadline,
        claim: None,
        commitment: None,
        verifiers: vec![],
        selection_seed: None,
        seed_commitment: m.seed_commitment,
        attestations: vec![],
        challengers: vec![],
        open_disputes: vec![],
        checkpoint_requests: vec![],
        payouts: vec![],
        note: String::new(),
    };
    s.put_task(&t);
    s.schedule(claim_deadline.saturating_add(1), id, Deadline::Claim);
    s.emit_typed(&EventTaskSubmitted {
        task_id: id,
        submitter: m.submitter,
        reward: m.reward,
        verification_fee: m.verification_fee,
    });
    Ok(id)
}
