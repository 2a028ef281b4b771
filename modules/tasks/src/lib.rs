//! `tasks`: escrowed training jobs.
//!
//! A submitter escrows `reward + verification_fee` with a program (validated
//! here: every node's referee cost must fit `max_referee_flops` and
//! `max_reveal_bytes`). A staked solver claims it with a bond and commits
//! `trace_root` (Merkle root over `h_0..h_T`) and `h_T` before its deadline.
//! In the block after the commit, verifiers are drawn weighted by stake from
//! that block's hash (randomness that did not exist at commit time); they
//! attest within the challenge window. At the window's end, with no dispute
//! open, the solver gets the reward and its bond, attesting verifiers share
//! the fee, and selected verifiers that stayed silent are slashed. The `verde`
//! module runs disputes and reports their outcome through
//! [`dispute_opened`] / [`dispute_resolved`].
//!
//! Every movement of funds emits `EventPayout`. Invariant: the `tasks` module
//! account holds exactly the sum over unfinished tasks of reward + fee + bond
//! ([`check_escrow`]). Consensus code: integers and hashes only; the program's
//! floats are parsed but never computed with here.

pub mod state_key;

use bank::{BankError, BankRead, BankWrite};
use framework::{
    Address, Amount, AmountError, BlockCtx, ModuleError, StateError, StateRead, StateReadExt,
    StateWrite, StateWriteExt,
};
use proto::tasks::v1::{self as pb, TaskStatus};
use sha2::{Digest, Sha256};
use staking::{Role, StakingError, StakingRead, StakingWrite};

pub const MODULE: &str = "tasks";

pub fn module_address() -> Address {
    Address::module(MODULE)
}

/// Tasks errors. Codes are stable: never renumber, only append.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TasksError {
    #[error("task {0} does not exist")]
    NotFound(u64),
    #[error("task {id} is {status}, expected {expected}")]
    WrongStatus {
        id: u64,
        status: &'static str,
        expected: &'static str,
    },
    #[error("invalid program: {0}")]
    InvalidProgram(String),
    #[error("program is {got} bytes, the limit is {max}")]
    ProgramTooLarge { got: u64, max: u64 },
    #[error("node {node} ({label}) costs {got} {what}, the referee limit is {max}")]
    NodeTooExpensive {
        node: usize,
        label: String,
        what: &'static str,
        got: u64,
        max: u64,
    },
    #[error("reward {got} is below the minimum {min}")]
    RewardTooLow { got: Amount, min: Amount },
    #[error("{0} is not a registered solver with bonded stake")]
    NotASolver(String),
    #[error("only the task's {role} {expected} may do this, not {got}")]
    NotAllowed {
        role: &'static str,
        expected: String,
        got: String,
    },
    #[error("deadline passed at height {deadline} (now {height})")]
    DeadlinePassed { deadline: u64, height: u64 },
    #[error("{0} is not a selected verifier of this task, or already attested")]
    NotSelected(String),
    #[error("invalid hash: {0}")]
    InvalidHash(String),
    #[error("invalid amount: {0}")]
    InvalidAmount(#[from] AmountError),
    #[error("invalid address: {0}")]
    InvalidAddress(String),
    #[error("a dispute is already open on task {0}")]
    DisputeOpen(u64),
    #[error("escrow invariant broken: module holds {held}, open obligations are {owed}")]
    EscrowMismatch { held: Amount, owed: Amount },
    #[error(transparent)]
    Bank(#[from] BankError),
    #[error(transparent)]
    Staking(#[from] StakingError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl ModuleError for TasksError {
    fn codespace(&self) -> &'static str {
        match self {
            TasksError::Bank(e) => e.codespace(),
            TasksError::Staking(e) => e.codespace(),
            TasksError::State(e) => e.codespace(),
            _ => MODULE,
        }
    }
    fn code(&self) -> u32 {
        match self {
            TasksError::NotFound(_) => 2,
            TasksError::WrongStatus { .. } => 3,
            TasksError::InvalidProgram(_) => 4,
            TasksError::ProgramTooLarge { .. } => 5,
            TasksError::NodeTooExpensive { .. } => 6,
            TasksError::RewardTooLow { .. } => 7,
            TasksError::NotASolver(_) => 8,
            TasksError::NotAllowed { .. } => 9,
            TasksError::DeadlinePassed { .. } => 10,
            TasksError::NotSelected(_) => 11,
            TasksError::InvalidHash(_) => 12,
            TasksError::InvalidAmount(_) => 13,
            TasksError::InvalidAddress(_) => 14,
            TasksError::DisputeOpen(_) => 15,
            TasksError::EscrowMismatch { .. } => 16,
            TasksError::Bank(e) => e.code(),
            TasksError::Staking(e) => e.code(),
            TasksError::State(e) => e.code(),
        }
    }
}

type Result<T> = std::result::Result<T, TasksError>;

/// Domain params.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    pub claim_timeout_blocks: u64,
    pub commit_blocks: u64,
    pub challenge_window_blocks: u64,
    pub verifiers_per_task: u32,
    pub claim_bond: Amount,
    pub min_reward: Amount,
    pub verifier_miss_slash: Amount,
    pub max_referee_flops: u64,
    pub max_reveal_bytes: u64,
    pub max_program_bytes: u64,
    pub max_steps: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            claim_timeout_blocks: 600,
            commit_blocks: 1200,
            challenge_window_blocks: 20,
            verifiers_per_task: 1,
            claim_bond: Amount(200_000),
            min_reward: Amount(1_000),
            verifier_miss_slash: Amount(10_000),
            max_referee_flops: 1 << 30,
            max_reveal_bytes: 16 << 20,
            max_program_bytes: 64 << 10,
            max_steps: 1 << 20,
        }
    }
}

impl Params {
    pub fn to_proto(&self) -> pb::Params {
        pb::Params {
            claim_timeout_blocks: self.claim_timeout_blocks,
            commit_blocks: self.commit_blocks,
            challenge_window_blocks: self.challenge_window_blocks,
            verifiers_per_task: self.verifiers_per_task,
            claim_bond: self.claim_bond.0.to_string(),
            min_reward: self.min_reward.0.to_string(),
            verifier_miss_slash: self.verifier_miss_slash.0.to_string(),
            max_referee_flops: self.max_referee_flops,
            max_reveal_bytes: self.max_reveal_bytes,
            max_program_bytes: self.max_program_bytes,
            max_steps: self.max_steps,
        }
    }
    pub fn from_proto(p: &pb::Params) -> Result<Params> {
        Ok(Params {
            claim_timeout_blocks: p.claim_timeout_blocks.max(1),
            commit_blocks: p.commit_blocks.max(1),
            challenge_window_blocks: p.challenge_window_blocks.max(1),
            verifiers_per_task: p.verifiers_per_task,
            claim_bond: Amount::parse_coin(&p.claim_bond)?,
            min_reward: Amount::parse_coin(&p.min_reward)?,
            verifier_miss_slash: Amount::parse_coin(&p.verifier_miss_slash)?,
            max_referee_flops: p.max_referee_flops,
            max_reveal_bytes: p.max_reveal_bytes,
            max_program_bytes: p.max_program_bytes,
            max_steps: p.max_steps,
        })
    }
}

/// Kinds of deadline queue entries.
const DL_CLAIM: u8 = 1;
const DL_COMMIT: u8 = 2;
const DL_SELECT: u8 = 3;
const DL_FINALIZE: u8 = 4;

pub fn status_name(s: i32) -> &'static str {
    match TaskStatus::try_from(s).unwrap_or(TaskStatus::Unspecified) {
        TaskStatus::Unspecified => "unspecified",
        TaskStatus::Open => "open",
        TaskStatus::Claimed => "claimed",
        TaskStatus::Committed => "committed",
        TaskStatus::Finalized => "finalized",
        TaskStatus::Cancelled => "cancelled",
        TaskStatus::Failed => "failed",
        TaskStatus::Expired => "expired",
    }
}

fn parse_addr(s: &str) -> Result<Address> {
    s.parse()
        .map_err(|e: framework::AddressError| TasksError::InvalidAddress(e.to_string()))
}

fn amt(s: &str) -> Result<Amount> {
    if s.is_empty() {
        return Ok(Amount::ZERO);
    }
    Ok(Amount::parse_coin(s)?)
}

fn coin(c: &Option<proto::base::v1::Coin>) -> Result<Amount> {
    match c {
        None => Ok(Amount::ZERO),
        Some(c) => Ok(Amount::from_coin(&c.denom, &c.amount)?),
    }
}

fn hash32(b: &[u8], what: &str) -> Result<[u8; 32]> {
    <[u8; 32]>::try_from(b)
        .map_err(|_| TasksError::InvalidHash(format!("{what} is {} bytes, expected 32", b.len())))
}

framework::typed_event!(EventTaskSubmitted, "veritrain.tasks.v1.EventTaskSubmitted", { task_id: u64, submitter: Address, reward: Amount, verification_fee: Amount });
framework::typed_event!(EventTaskClaimed, "veritrain.tasks.v1.EventTaskClaimed", { task_id: u64, solver: Address, bond: Amount, commit_deadline: u64 });
framework::typed_event!(EventResultCommitted, "veritrain.tasks.v1.EventResultCommitted", { task_id: u64, trace_root: String, final_state_hash: String, challenge_end: u64 });
framework::typed_event!(EventVerifiersSelected, "veritrain.tasks.v1.EventVerifiersSelected", { task_id: u64, verifiers: String });
framework::typed_event!(EventAttested, "veritrain.tasks.v1.EventAttested", { task_id: u64, verifier: Address });
framework::typed_event!(EventTaskFinalized, "veritrain.tasks.v1.EventTaskFinalized", { task_id: u64, solver: String, reward: Amount });
framework::typed_event!(EventTaskEnded, "veritrain.tasks.v1.EventTaskEnded", { task_id: u64, status: &'static str, note: String });
framework::typed_event!(EventPayout, "veritrain.tasks.v1.EventPayout", { task_id: u64, recipient: Address, amount: Amount, reason: &'static str });

/// Reads of the tasks state.
pub trait TasksRead: StateRead {
    fn tasks_params(&self) -> Result<Params> {
        match self.get_proto::<pb::Params>(state_key::PARAMS)? {
            None => Ok(Params::default()),
            Some(p) => Params::from_proto(&p),
        }
    }

    fn task(&self, id: u64) -> Result<pb::Task> {
        self.get_proto::<pb::Task>(&state_key::task(id))?
            .ok_or(TasksError::NotFound(id))
    }

    /// Tasks with ids > `after`, in id order, optionally of one status.
    fn tasks(&self, status: Option<TaskStatus>, after: u64, limit: usize) -> Result<Vec<pb::Task>> {
        let mut out = Vec::new();
        let mut start = state_key::task(after.saturating_add(1));
        loop {
            let page = self.prefix_raw(state_key::TASK_PREFIX, &start, 256)?;
            let full = page.len() == 256;
            for (k, v) in &page {
                let t: pb::Task =
                    prost::Message::decode(v.as_slice()).map_err(|e| StateError::Corrupt {
                        key: String::from_utf8_lossy(k).into_owned(),
                        reason: e.to_string(),
                    })?;
                if status.is_none_or(|s| t.status == s as i32) {
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

    fn stats(&self, a: &Address) -> Result<pb::OperatorStats> {
        Ok(self
            .get_proto::<pb::OperatorStats>(&state_key::stats(a))?
            .unwrap_or_else(|| pb::OperatorStats {
                operator: a.to_string(),
                rewards: "0".into(),
                slashed: "0".into(),
                ..Default::default()
            }))
    }
}
impl<S: StateRead + ?Sized> TasksRead for S {}

/// What the solver of a task owes if it loses: returned to the caller (verde).
pub struct Forfeit {
    pub solver: Address,
    pub claim_bond: Amount,
}

fn put_task<S: StateWrite + ?Sized>(s: &mut S, t: &pb::Task) {
    s.put_proto(state_key::task(t.id), t);
}

fn schedule<S: StateWrite + ?Sized>(s: &mut S, height: u64, id: u64, kind: u8) {
    s.put_raw(state_key::deadline(height, id, kind), vec![]);
}

fn update_stats<S: StateWrite + ?Sized>(
    s: &mut S,
    a: &Address,
    h: u64,
    f: impl FnOnce(&mut pb::OperatorStats) -> Result<()>,
) -> Result<()> {
    let mut st = s.stats(a)?;
    f(&mut st)?;
    st.last_active_height = h;
    s.put_proto(state_key::stats(a), &st);
    Ok(())
}

fn add_str(s: &mut String, a: Amount) -> Result<()> {
    *s = amt(s)?.checked_add(a)?.0.to_string();
    Ok(())
}

/// Pays `amount` from the tasks module account and records it.
fn pay<S: StateWrite + ?Sized>(
    s: &mut S,
    t: &mut pb::Task,
    to: &Address,
    amount: Amount,
    reason: &'static str,
) -> Result<()> {
    if amount.is_zero() {
        return Ok(());
    }
    s.transfer(&module_address(), to, amount)?;
    t.payouts.push(pb::Payout {
        recipient: to.to_string(),
        amount: amount.0.to_string(),
        reason: reason.into(),
    });
    s.emit_typed(&EventPayout {
        task_id: t.id,
        recipient: *to,
        amount,
        reason,
    });
    Ok(())
}

fn expect_status(t: &pb::Task, want: TaskStatus) -> Result<()> {
    if t.status != want as i32 {
        return Err(TasksError::WrongStatus {
            id: t.id,
            status: status_name(t.status),
            expected: status_name(want as i32),
        });
    }
    Ok(())
}

/// `train::dataset::Schema` by its name in [`pb::DatasetInfo`].
pub fn parse_schema(s: &str) -> Option<train::dataset::Schema> {
    match s {
        "digits8x8" => Some(train::dataset::Schema::Digits8x8),
        "ascii" => Some(train::dataset::Schema::Ascii),
        _ => None,
    }
}

fn schema_name(s: train::dataset::Schema) -> &'static str {
    match s {
        train::dataset::Schema::Digits8x8 => "digits8x8",
        train::dataset::Schema::Ascii => "ascii",
    }
}

/// Validates a program against the referee bounds and its dataset's layout;
/// returns it parsed, its node count and the dataset layout to record.
pub fn validate_program(
    json: &[u8],
    p: &Params,
    info: Option<&pb::DatasetInfo>,
) -> Result<(train::Program, usize, pb::DatasetInfo)> {
    if json.len() as u64 > p.max_program_bytes {
        return Err(TasksError::ProgramTooLarge {
            got: json.len() as u64,
            max: p.max_program_bytes,
        });
    }
    let text = std::str::from_utf8(json)
        .map_err(|e| TasksError::InvalidProgram(format!("not UTF-8: {e}")))?;
    let prog =
        train::Program::from_json(text).map_err(|e| TasksError::InvalidProgram(e.to_string()))?;
    prog.validate()
        .map_err(|e| TasksError::InvalidProgram(e.to_string()))?;
    if prog.steps == 0 || prog.steps > p.max_steps {
        return Err(TasksError::InvalidProgram(format!(
            "steps must be 1..={}, got {}",
            p.max_steps, prog.steps
        )));
    }
    let bad = |m: String| TasksError::InvalidProgram(m);
    // The dataset's layout: the chain's own for a builtin dataset, otherwise
    // as the submitter states it.
    let builtin = train::Dataset::builtin(&prog.dataset.name)
        .ok()
        .filter(|d| d.root() == prog.dataset.root);
    let info = match (builtin, info) {
        (Some(d), _) => {
            let h = d.header();
            pb::DatasetInfo { schema: schema_name(h.schema).into(), rows: h.rows, row_bytes: h.row_bytes, chunk_rows: h.chunk_rows }
        }
        (None, Some(i)) => i.clone(),
        (None, None) => {
            return Err(bad(format!(
                "dataset {:?} is not a builtin with root {}: state its layout (schema, rows, row_bytes, chunk_rows)",
                prog.dataset.name,
                hex::encode(prog.dataset.root)
            )))
        }
    };
    let schema = parse_schema(&info.schema).ok_or_else(|| {
        bad(format!(
            "unknown dataset schema {:?}; expected digits8x8 or ascii",
            info.schema
        ))
    })?;
    if info.row_bytes == 0 || info.chunk_rows == 0 || info.rows <= prog.dataset.train_rows {
        return Err(bad(format!(
            "dataset layout: rows ({}) must exceed train_rows ({}), row_bytes and chunk_rows must be positive",
            info.rows, prog.dataset.train_rows
        )));
    }
    match (&prog.model, schema) {
        (train::program::Model::Mlp { input, .. }, train::dataset::Schema::Digits8x8)
            if *input == 64 && info.row_bytes == 65 => {}
        (train::program::Model::Transformer { ctx, .. }, train::dataset::Schema::Ascii)
            if info.row_bytes > *ctx as u64 + 1 => {}
        _ => {
            return Err(bad(format!(
                "the model family does not fit a {} dataset of {}-byte rows",
                info.schema, info.row_bytes
            )))
        }
    }
    // A dispute may need every row of a batch, each with its whole chunk.
    let rows_bytes = (prog.batch_size as u64)
        .saturating_mul(info.chunk_rows)
        .saturating_mul(info.row_bytes);
    if rows_bytes > p.max_reveal_bytes {
        return Err(TasksError::NodeTooExpensive {
            node: 0,
            label: "batch rows".into(),
            what: "reveal bytes",
            got: rows_bytes,
            max: p.max_reveal_bytes,
        });
    }
    let nodes = prog
        .nodes()
        .map_err(|e| TasksError::InvalidProgram(e.to_string()))?;
    for n in &nodes {
        let c = n.cost();
        if c.flops > p.max_referee_flops {
            return Err(TasksError::NodeTooExpensive {
                node: n.index,
                label: n.label.clone(),
                what: "flops",
                got: c.flops,
                max: p.max_referee_flops,
            });
        }
        if c.input_bytes > p.max_reveal_bytes {
            return Err(TasksError::NodeTooExpensive {
                node: n.index,
                label: n.label.clone(),
                what: "input bytes",
                got: c.input_bytes,
                max: p.max_reveal_bytes,
            });
        }
    }
    Ok((prog, nodes.len(), info))
}

pub trait TasksWrite: StateWrite {
    fn submit(
        &mut self,
        ctx: &BlockCtx,
        submitter: Address,
        program_json: Vec<u8>,
        reward: Amount,
        fee: Amount,
        dataset: Option<&pb::DatasetInfo>,
    ) -> Result<u64> {
        let p = self.tasks_params()?;
        if reward < p.min_reward {
            return Err(TasksError::RewardTooLow {
                got: reward,
                min: p.min_reward,
            });
        }
        let (prog, m, info) = validate_program(&program_json, &p, dataset)?;
        let escrow = reward.checked_add(fee)?;
        self.transfer(&submitter, &module_address(), escrow)?;
        let id = self.get_u64(state_key::NEXT_ID)?.unwrap_or(1);
        self.put_u64(state_key::NEXT_ID.to_vec(), id.saturating_add(1));
        let claim_deadline = ctx.height.saturating_add(p.claim_timeout_blocks);
        let t = pb::Task {
            id,
            submitter: submitter.to_string(),
            program_hash: prog.hash().to_vec(),
            program_json,
            dataset_root: prog.dataset.root.to_vec(),
            steps: prog.steps,
            node_count: m as u64,
            reward: reward.0.to_string(),
            verification_fee: fee.0.to_string(),
            status: TaskStatus::Open as i32,
            submitted_height: ctx.height,
            claim_deadline,
            claim_bond: "0".into(),
            dataset: Some(info),
            ..Default::default()
        };
        put_task(self, &t);
        schedule(self, claim_deadline.saturating_add(1), id, DL_CLAIM);
        self.emit_typed(&EventTaskSubmitted {
            task_id: id,
            submitter,
            reward,
            verification_fee: fee,
        });
        Ok(id)
    }

    fn cancel(&mut self, submitter: Address, id: u64) -> Result<()> {
        let mut t = self.task(id)?;
        if t.submitter != submitter.to_string() {
            return Err(TasksError::NotAllowed {
                role: "submitter",
                expected: t.submitter.clone(),
                got: submitter.to_string(),
            });
        }
        expect_status(&t, TaskStatus::Open)?;
        let refund = amt(&t.reward)?.checked_add(amt(&t.verification_fee)?)?;
        pay(self, &mut t, &submitter, refund, "refund: cancelled")?;
        end(
            self,
            &mut t,
            TaskStatus::Cancelled,
            "cancelled by the submitter before any claim".into(),
        );
        Ok(())
    }

    fn claim(&mut self, ctx: &BlockCtx, solver: Address, id: u64, endpoint: String) -> Result<()> {
        let mut t = self.task(id)?;
        expect_status(&t, TaskStatus::Open)?;
        if ctx.height > t.claim_deadline {
            return Err(TasksError::DeadlinePassed {
                deadline: t.claim_deadline,
                height: ctx.height,
            });
        }
        if self.bonded_stake(&solver, Role::Solver)?.is_zero() {
            return Err(TasksError::NotASolver(solver.to_string()));
        }
        let p = self.tasks_params()?;
        self.transfer(&solver, &module_address(), p.claim_bond)?;
        t.status = TaskStatus::Claimed as i32;
        t.solver = solver.to_string();
        t.claim_bond = p.claim_bond.0.to_string();
        t.claimed_height = ctx.height;
        t.commit_deadline = ctx.height.saturating_add(p.commit_blocks);
        t.solver_endpoint = endpoint.chars().take(256).collect();
        put_task(self, &t);
        schedule(self, t.commit_deadline.saturating_add(1), id, DL_COMMIT);
        self.emit_typed(&EventTaskClaimed {
            task_id: id,
            solver,
            bond: p.claim_bond,
            commit_deadline: t.commit_deadline,
        });
        Ok(())
    }

    fn commit_result(
        &mut self,
        ctx: &BlockCtx,
        solver: Address,
        id: u64,
        trace_root: &[u8],
        final_hash: &[u8],
    ) -> Result<()> {
        let mut t = self.task(id)?;
        expect_status(&t, TaskStatus::Claimed)?;
        if t.solver != solver.to_string() {
            return Err(TasksError::NotAllowed {
                role: "solver",
                expected: t.solver.clone(),
                got: solver.to_string(),
            });
        }
        if ctx.height > t.commit_deadline {
            return Err(TasksError::DeadlinePassed {
                deadline: t.commit_deadline,
                height: ctx.height,
            });
        }
        let root = hash32(trace_root, "trace_root")?;
        let fin = hash32(final_hash, "final_state_hash")?;
        let p = self.tasks_params()?;
        t.status = TaskStatus::Committed as i32;
        t.trace_root = root.to_vec();
        t.final_state_hash = fin.to_vec();
        t.committed_height = ctx.height;
        t.challenge_end = ctx.height.saturating_add(p.challenge_window_blocks);
        put_task(self, &t);
        schedule(self, ctx.height.saturating_add(1), id, DL_SELECT);
        schedule(self, t.challenge_end.saturating_add(1), id, DL_FINALIZE);
        self.emit_typed(&EventResultCommitted {
            task_id: id,
            trace_root: hex::encode(root),
            final_state_hash: hex::encode(fin),
            challenge_end: t.challenge_end,
        });
        Ok(())
    }

    fn attest(
        &mut self,
        ctx: &BlockCtx,
        verifier: Address,
        id: u64,
        steps_checked: u64,
    ) -> Result<()> {
        let mut t = self.task(id)?;
        expect_status(&t, TaskStatus::Committed)?;
        if ctx.height > t.challenge_end {
            return Err(TasksError::DeadlinePassed {
                deadline: t.challenge_end,
                height: ctx.height,
            });
        }
        let v = verifier.to_string();
        if !t.verifiers.contains(&v) || t.attestations.iter().any(|a| a.verifier == v) {
            return Err(TasksError::NotSelected(v));
        }
        t.attestations.push(pb::Attestation {
            verifier: v,
            height: ctx.height,
        });
        put_task(self, &t);
        update_stats(self, &verifier, ctx.height, |st| {
            st.steps_verified = st.steps_verified.saturating_add(steps_checked.min(t.steps));
            Ok(())
        })?;
        self.emit_typed(&EventAttested {
            task_id: id,
            verifier,
        });
        Ok(())
    }

    /// End-block hook: claim and commit timeouts, verifier selection, finalization.
    fn end_block(&mut self, ctx: &BlockCtx) -> Result<()> {
        loop {
            let due = framework::take_due(self, state_key::DEADLINE_PREFIX, ctx.height, 128)?;
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
                let kind = e.rest[9];
                let mut t = match self.task(id) {
                    Ok(t) => t,
                    Err(TasksError::NotFound(_)) => continue,
                    Err(e) => return Err(e),
                };
                match kind {
                    DL_CLAIM if t.status == TaskStatus::Open as i32 => {
                        let sub = parse_addr(&t.submitter)?;
                        let refund = amt(&t.reward)?.checked_add(amt(&t.verification_fee)?)?;
                        pay(
                            self,
                            &mut t,
                            &sub,
                            refund,
                            "refund: no solver claimed the task",
                        )?;
                        end(
                            self,
                            &mut t,
                            TaskStatus::Expired,
                            "no solver claimed the task before the claim deadline".into(),
                        );
                    }
                    DL_COMMIT if t.status == TaskStatus::Claimed as i32 => {
                        self.commit_timeout(ctx, &mut t)?
                    }
                    DL_SELECT
                        if t.status == TaskStatus::Committed as i32 && t.verifiers.is_empty() =>
                    {
                        self.select(ctx, &mut t)?
                    }
                    DL_FINALIZE
                        if t.status == TaskStatus::Committed as i32 && t.open_dispute == 0 =>
                    {
                        self.finalize(ctx, &mut t)?
                    }
                    _ => {}
                }
            }
        }
    }

    /// The solver missed its commit deadline: its bond is burned, its stake
    /// slashed by the same amount, and the task reopens for another solver.
    fn commit_timeout(&mut self, ctx: &BlockCtx, t: &mut pb::Task) -> Result<()> {
        let solver = parse_addr(&t.solver)?;
        let bond = amt(&t.claim_bond)?;
        self.burn(&module_address(), bond)?;
        let slashed = self.slash(&solver, bond, "missed commit deadline", &module_address())?;
        self.burn(&module_address(), slashed)?;
        update_stats(self, &solver, ctx.height, |st| {
            add_str(&mut st.slashed, bond.checked_add(slashed)?)
        })?;
        let p = self.tasks_params()?;
        t.note = format!("solver {} missed its commit deadline at height {}; its bond and {slashed} of stake were burned; the task reopened", t.solver, t.commit_deadline);
        t.status = TaskStatus::Open as i32;
        t.solver = String::new();
        t.claim_bond = "0".into();
        t.claim_deadline = ctx.height.saturating_add(p.claim_timeout_blocks);
        put_task(self, t);
        schedule(self, t.claim_deadline.saturating_add(1), t.id, DL_CLAIM);
        Ok(())
    }

    /// Draws `verifiers_per_task` verifiers, weighted by bonded stake, from
    /// SHA-256(block hash || task id || round), without replacement; never the
    /// solver or the submitter.
    fn select(&mut self, ctx: &BlockCtx, t: &mut pb::Task) -> Result<()> {
        let p = self.tasks_params()?;
        let mut pool: Vec<(Address, Amount)> = Vec::new();
        let mut after = None;
        loop {
            let page = self.operators(Some(Role::Verifier), after.as_ref(), 256)?;
            let full = page.len() == 256;
            after = page.last().map(|o| o.address);
            for o in page {
                let a = o.address.to_string();
                if !o.stake.is_zero() && a != t.solver && a != t.submitter {
                    pool.push((o.address, o.stake));
                }
            }
            if !full {
                break;
            }
        }
        let mut total = Amount::ZERO;
        for (_, s) in &pool {
            total = total.checked_add(*s)?;
        }
        let mut chosen = Vec::new();
        for round in 0..p.verifiers_per_task {
            if pool.is_empty() || total.is_zero() {
                break;
            }
            let mut h = Sha256::new();
            h.update(ctx.block_hash);
            h.update(t.id.to_be_bytes());
            h.update(round.to_be_bytes());
            let d = h.finalize();
            let mut r16 = [0u8; 16];
            r16.copy_from_slice(&d[..16]);
            let mut r = u128::from_be_bytes(r16) % total.0;
            let mut pick = pool.len() - 1;
            for (i, (_, s)) in pool.iter().enumerate() {
                if r < s.0 {
                    pick = i;
                    break;
                }
                r -= s.0;
            }
            let (a, s) = pool.remove(pick);
            total = total.checked_sub(s)?;
            chosen.push(a);
        }
        t.verifiers = chosen.iter().map(|a| a.to_string()).collect();
        if chosen.is_empty() {
            t.note = "no registered verifier was available to select".into();
        }
        put_task(self, t);
        self.emit_typed(&EventVerifiersSelected {
            task_id: t.id,
            verifiers: t.verifiers.join(","),
        });
        Ok(())
    }

    /// Pays out a task whose window closed with no dispute upheld.
    fn finalize(&mut self, ctx: &BlockCtx, t: &mut pb::Task) -> Result<()> {
        let p = self.tasks_params()?;
        let solver = parse_addr(&t.solver)?;
        let submitter = parse_addr(&t.submitter)?;
        let reward = amt(&t.reward)?;
        let fee = amt(&t.verification_fee)?;
        pay(self, t, &solver, reward, "reward")?;
        pay(self, t, &solver, amt(&t.claim_bond)?, "claim bond returned")?;
        let k = t.verifiers.len() as u64;
        let share = if k == 0 {
            Amount::ZERO
        } else {
            fee.mul_ratio(1, k)
        };
        let mut paid = Amount::ZERO;
        let mut notes = Vec::new();
        for v in t.verifiers.clone() {
            let va = parse_addr(&v)?;
            if t.attestations.iter().any(|a| a.verifier == v) {
                pay(self, t, &va, share, "verification fee")?;
                paid = paid.checked_add(share)?;
                update_stats(self, &va, ctx.height, |st| add_str(&mut st.rewards, share))?;
            } else {
                let s = self.slash(
                    &va,
                    p.verifier_miss_slash,
                    "selected verifier did not attest",
                    &module_address(),
                )?;
                self.burn(&module_address(), s)?;
                update_stats(self, &va, ctx.height, |st| add_str(&mut st.slashed, s))?;
                notes.push(format!("verifier {v} did not attest: its fee share went back to the submitter and {s} of its stake was burned"));
            }
        }
        if k == 0 && !fee.is_zero() {
            notes.push(
                "no verifier was selected: the verification fee went back to the submitter".into(),
            );
        }
        pay(
            self,
            t,
            &submitter,
            fee.checked_sub(paid)?,
            "unused verification fee",
        )?;
        update_stats(self, &solver, ctx.height, |st| {
            st.tasks_solved = st.tasks_solved.saturating_add(1);
            add_str(&mut st.rewards, reward)
        })?;
        self.emit_typed(&EventTaskFinalized {
            task_id: t.id,
            solver: t.solver.clone(),
            reward,
        });
        let note = if notes.is_empty() {
            "finalized: no dispute upheld in the challenge window".to_string()
        } else {
            notes.join("; ")
        };
        end(self, t, TaskStatus::Finalized, note);
        Ok(())
    }
}
impl<S: StateWrite + ?Sized> TasksWrite for S {}

fn end<S: StateWrite + ?Sized>(s: &mut S, t: &mut pb::Task, status: TaskStatus, note: String) {
    t.status = status as i32;
    t.note = note.clone();
    put_task(s, t);
    s.emit_typed(&EventTaskEnded {
        task_id: t.id,
        status: status_name(status as i32),
        note,
    });
}

/// Called by `verde` when a dispute opens: the task must be committed, in its
/// window, with no other dispute open.
pub fn dispute_opened<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    id: u64,
    dispute: u64,
) -> Result<pb::Task> {
    let mut t = s.task(id)?;
    expect_status(&t, TaskStatus::Committed)?;
    if ctx.height > t.challenge_end {
        return Err(TasksError::DeadlinePassed {
            deadline: t.challenge_end,
            height: ctx.height,
        });
    }
    if t.open_dispute != 0 {
        return Err(TasksError::DisputeOpen(id));
    }
    t.open_dispute = dispute;
    put_task(s, &t);
    Ok(t)
}

/// Called by `verde` when a dispute ends. If the solver won, the task goes on
/// (finalizing at the end of its window, or in the next block if the window
/// has passed). If it lost, the submitter is refunded, the task fails, and the
/// solver's claim bond moves to `to` (verde's account) and is returned.
pub fn dispute_resolved<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    id: u64,
    solver_won: bool,
    to: &Address,
) -> Result<Option<Forfeit>> {
    let mut t = s.task(id)?;
    let dispute = t.open_dispute;
    t.open_dispute = 0;
    let solver = parse_addr(&t.solver)?;
    if solver_won {
        update_stats(s, &solver, ctx.height, |st| {
            st.disputes_won = st.disputes_won.saturating_add(1);
            Ok(())
        })?;
        put_task(s, &t);
        if ctx.height >= t.challenge_end {
            schedule(s, ctx.height.saturating_add(1), id, DL_FINALIZE);
        }
        return Ok(None);
    }
    update_stats(s, &solver, ctx.height, |st| {
        st.disputes_lost = st.disputes_lost.saturating_add(1);
        Ok(())
    })?;
    let submitter = parse_addr(&t.submitter)?;
    let refund = amt(&t.reward)?.checked_add(amt(&t.verification_fee)?)?;
    pay(
        s,
        &mut t,
        &submitter,
        refund,
        "refund: the solver lost a dispute",
    )?;
    let bond = amt(&t.claim_bond)?;
    pay(s, &mut t, to, bond, "claim bond forfeited to the dispute")?;
    let note = format!(
        "solver {} lost dispute {dispute}; the submitter was refunded",
        t.solver
    );
    end(s, &mut t, TaskStatus::Failed, note);
    Ok(Some(Forfeit {
        solver,
        claim_bond: bond,
    }))
}

/// Records stats for a challenger's outcome.
pub fn record_challenger<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    who: &Address,
    won: bool,
    reward: Amount,
    lost: Amount,
) -> Result<()> {
    update_stats(s, who, ctx.height, |st| {
        if won {
            st.disputes_won = st.disputes_won.saturating_add(1);
        } else {
            st.disputes_lost = st.disputes_lost.saturating_add(1);
        }
        add_str(&mut st.rewards, reward)?;
        add_str(&mut st.slashed, lost)
    })
}

/// Records an amount slashed from an operator in a dispute.
pub fn record_slash<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    who: &Address,
    amount: Amount,
) -> Result<()> {
    update_stats(s, who, ctx.height, |st| add_str(&mut st.slashed, amount))
}

/// The escrow invariant: the module account holds exactly the open obligations.
pub fn check_escrow<S: StateRead + ?Sized>(s: &S) -> Result<Amount> {
    let mut owed = Amount::ZERO;
    for t in s.tasks(None, 0, usize::MAX)? {
        let open = matches!(
            TaskStatus::try_from(t.status).unwrap_or(TaskStatus::Unspecified),
            TaskStatus::Open | TaskStatus::Claimed | TaskStatus::Committed
        );
        if open {
            owed = owed
                .checked_add(amt(&t.reward)?)?
                .checked_add(amt(&t.verification_fee)?)?
                .checked_add(amt(&t.claim_bond)?)?;
        }
    }
    let held = s.balance(&module_address())?;
    if held != owed {
        return Err(TasksError::EscrowMismatch { held, owed });
    }
    Ok(owed)
}

/// Validated tasks messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TasksMsg {
    Submit {
        submitter: Address,
        program_json: Vec<u8>,
        reward: Amount,
        fee: Amount,
        dataset: Option<pb::DatasetInfo>,
    },
    Cancel {
        submitter: Address,
        id: u64,
    },
    Claim {
        solver: Address,
        id: u64,
        endpoint: String,
    },
    Commit {
        solver: Address,
        id: u64,
        trace_root: Vec<u8>,
        final_hash: Vec<u8>,
    },
    Attest {
        verifier: Address,
        id: u64,
        steps_checked: u64,
    },
}

impl TasksMsg {
    pub fn signer(&self) -> Address {
        match self {
            TasksMsg::Submit { submitter, .. } | TasksMsg::Cancel { submitter, .. } => *submitter,
            TasksMsg::Claim { solver, .. } | TasksMsg::Commit { solver, .. } => *solver,
            TasksMsg::Attest { verifier, .. } => *verifier,
        }
    }

    pub fn execute<S: StateWrite + ?Sized>(&self, s: &mut S, ctx: &BlockCtx) -> Result<()> {
        match self {
            TasksMsg::Submit {
                submitter,
                program_json,
                reward,
                fee,
                dataset,
            } => s
                .submit(
                    ctx,
                    *submitter,
                    program_json.clone(),
                    *reward,
                    *fee,
                    dataset.as_ref(),
                )
                .map(|_| ()),
            TasksMsg::Cancel { submitter, id } => s.cancel(*submitter, *id),
            TasksMsg::Claim {
                solver,
                id,
                endpoint,
            } => s.claim(ctx, *solver, *id, endpoint.clone()),
            TasksMsg::Commit {
                solver,
                id,
                trace_root,
                final_hash,
            } => s.commit_result(ctx, *solver, *id, trace_root, final_hash),
            TasksMsg::Attest {
                verifier,
                id,
                steps_checked,
            } => s.attest(ctx, *verifier, *id, *steps_checked),
        }
    }
}

impl TryFrom<&pb::MsgSubmitTask> for TasksMsg {
    type Error = TasksError;
    fn try_from(m: &pb::MsgSubmitTask) -> Result<Self> {
        Ok(TasksMsg::Submit {
            submitter: parse_addr(&m.submitter)?,
            program_json: m.program_json.clone(),
            reward: coin(&m.reward)?,
            fee: coin(&m.verification_fee)?,
            dataset: m.dataset.clone(),
        })
    }
}
impl TryFrom<&pb::MsgCancelTask> for TasksMsg {
    type Error = TasksError;
    fn try_from(m: &pb::MsgCancelTask) -> Result<Self> {
        Ok(TasksMsg::Cancel {
            submitter: parse_addr(&m.submitter)?,
            id: m.task_id,
        })
    }
}
impl TryFrom<&pb::MsgClaimTask> for TasksMsg {
    type Error = TasksError;
    fn try_from(m: &pb::MsgClaimTask) -> Result<Self> {
        Ok(TasksMsg::Claim {
            solver: parse_addr(&m.solver)?,
            id: m.task_id,
            endpoint: m.endpoint.clone(),
        })
    }
}
impl TryFrom<&pb::MsgCommitResult> for TasksMsg {
    type Error = TasksError;
    fn try_from(m: &pb::MsgCommitResult) -> Result<Self> {
        hash32(&m.trace_root, "trace_root")?;
        hash32(&m.final_state_hash, "final_state_hash")?;
        Ok(TasksMsg::Commit {
            solver: parse_addr(&m.solver)?,
            id: m.task_id,
            trace_root: m.trace_root.clone(),
            final_hash: m.final_state_hash.clone(),
        })
    }
}
impl TryFrom<&pb::MsgAttest> for TasksMsg {
    type Error = TasksError;
    fn try_from(m: &pb::MsgAttest) -> Result<Self> {
        Ok(TasksMsg::Attest {
            verifier: parse_addr(&m.verifier)?,
            id: m.task_id,
            steps_checked: m.steps_checked,
        })
    }
}

pub fn init_genesis<S: StateWrite + ?Sized>(s: &mut S, g: &pb::GenesisState) -> Result<()> {
    let p = match &g.params {
        Some(p) => Params::from_proto(p)?,
        None => Params::default(),
    };
    s.put_proto(state_key::PARAMS.to_vec(), &p.to_proto());
    Ok(())
}

pub fn export_genesis<S: StateRead + ?Sized>(s: &S) -> Result<pb::GenesisState> {
    Ok(pb::GenesisState {
        params: Some(s.tasks_params()?.to_proto()),
    })
}

/// A one-paragraph summary of where a task stands, for people.
pub fn summary(t: &pb::Task, height: u64) -> String {
    let st = status_name(t.status);
    match TaskStatus::try_from(t.status).unwrap_or(TaskStatus::Unspecified) {
        TaskStatus::Open => format!("open: waiting for a solver until height {} (now {height})", t.claim_deadline),
        TaskStatus::Claimed => format!("claimed by {}: training, result due by height {} (now {height})", t.solver, t.commit_deadline),
        TaskStatus::Committed if t.open_dispute != 0 => format!("committed; dispute {} open, finalization waits for it", t.open_dispute),
        TaskStatus::Committed => format!(
            "committed: challenge window until height {} (now {height}); {} of {} selected verifiers attested",
            t.challenge_end,
            t.attestations.len(),
            t.verifiers.len()
        ),
        _ => format!("{st}: {}", t.note),
    }
}

#[cfg(test)]
mod tests;
