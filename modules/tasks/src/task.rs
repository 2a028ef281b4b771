//! The domain `Task` and its parts. Converted to and from protobuf only at
//! storage and at the query edge.
use framework::{Address, Amount};
use proto::tasks::v1 as pb;

use crate::error::{amount_or, hash32, parse_addr, Result, TasksError};

pub type Hash = [u8; 32];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Open,
    Claimed,
    Committed,
    Finalized,
    Cancelled,
    Failed,
    Expired,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Claimed => "claimed",
            Status::Committed => "committed",
            Status::Finalized => "finalized",
            Status::Cancelled => "cancelled",
            Status::Failed => "failed",
            Status::Expired => "expired",
        }
    }
    /// Still holding escrow (not ended).
    pub fn is_open(self) -> bool {
        matches!(self, Status::Open | Status::Claimed | Status::Committed)
    }
    pub fn to_proto(self) -> pb::TaskStatus {
        match self {
            Status::Open => pb::TaskStatus::Open,
            Status::Claimed => pb::TaskStatus::Claimed,
            Status::Committed => pb::TaskStatus::Committed,
            Status::Finalized => pb::TaskStatus::Finalized,
            Status::Cancelled => pb::TaskStatus::Cancelled,
            Status::Failed => pb::TaskStatus::Failed,
            Status::Expired => pb::TaskStatus::Expired,
        }
    }
    pub fn from_proto(s: i32) -> Option<Status> {
        Some(match pb::TaskStatus::try_from(s).ok()? {
            pb::TaskStatus::Unspecified => return None,
            pb::TaskStatus::Open => Status::Open,
            pb::TaskStatus::Claimed => Status::Claimed,
            pb::TaskStatus::Committed => Status::Committed,
            pb::TaskStatus::Finalized => Status::Finalized,
            pb::TaskStatus::Cancelled => Status::Cancelled,
            pb::TaskStatus::Failed => Status::Failed,
            pb::TaskStatus::Expired => Status::Expired,
        })
    }
}

/// A status number's name ("unspecified" for unknown numbers).
pub fn status_name(s: i32) -> &'static str {
    Status::from_proto(s).map_or("unspecified", Status::name)
}

/// What the submitter paid for; see `level.rs` for what each catches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Every drawn verifier re-executes all steps from `h_0`.
    Full,
    /// Every drawn verifier re-executes `bps` basis points of the steps.
    Sampled { bps: u32 },
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Full => "full",
            Level::Sampled { .. } => "sampled",
        }
    }
    pub fn from_proto(level: i32, bps: u32) -> Result<Level> {
        match pb::VerificationLevel::try_from(level) {
            Ok(pb::VerificationLevel::Unspecified | pb::VerificationLevel::Full) => Ok(Level::Full),
            Ok(pb::VerificationLevel::Sampled) => {
                if bps == 0 || bps > 10_000 {
                    return Err(TasksError::InvalidLevel(format!(
                        "sample_bps must be 1..=10000, got {bps}"
                    )));
                }
                Ok(Level::Sampled { bps })
            }
            Err(_) => Err(TasksError::InvalidLevel(format!("unknown level {level}"))),
        }
    }
    pub fn to_proto(self) -> (pb::VerificationLevel, u32) {
        match self {
            Level::Full => (pb::VerificationLevel::Full, 0),
            Level::Sampled { bps } => (pb::VerificationLevel::Sampled, bps),
        }
    }
}

/// The dataset's layout as recorded at submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetLayout {
    pub schema: train::dataset::Schema,
    pub rows: u64,
    pub row_bytes: u64,
    pub chunk_rows: u64,
}

impl DatasetLayout {
    pub fn chunks(&self) -> u64 {
        self.rows.div_ceil(self.chunk_rows.max(1))
    }
    pub fn to_proto(&self) -> pb::DatasetInfo {
        pb::DatasetInfo {
            schema: schema_name(self.schema).into(),
            rows: self.rows,
            row_bytes: self.row_bytes,
            chunk_rows: self.chunk_rows,
        }
    }
    pub fn from_proto(i: &pb::DatasetInfo) -> Result<DatasetLayout> {
        let schema = parse_schema(&i.schema).ok_or_else(|| {
            TasksError::InvalidProgram(format!(
                "unknown dataset schema {:?}; expected digits8x8, ascii, tokens_u16 or tokens_u32",
                i.schema
            ))
        })?;
        Ok(DatasetLayout {
            schema,
            rows: i.rows,
            row_bytes: i.row_bytes,
            chunk_rows: i.chunk_rows,
        })
    }
}

/// `train::dataset::Schema` by its name in [`pb::DatasetInfo`].
pub fn parse_schema(s: &str) -> Option<train::dataset::Schema> {
    train::dataset::Schema::parse(s)
}

pub fn schema_name(s: train::dataset::Schema) -> &'static str {
    s.name()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub solver: Address,
    pub endpoint: String,
    pub bond: Amount,
    pub height: u64,
    pub commit_deadline: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commitment {
    pub trace_root: Hash,
    pub final_state_hash: Hash,
    pub height: u64,
    pub challenge_end: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attestation {
    pub verifier: Address,
    pub height: u64,
    pub evidence_step: u64,
}

/// Where a checkpoint request stands (see `MsgRequestCheckpoint`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestState {
    Open,
    Posted,
    Missed,
}

/// A drawn verifier's request that the solver post a checkpoint on chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointRequest {
    pub requester: Address,
    pub step: u64,
    pub deadline: u64,
    /// Held in escrow while open.
    pub bond: Amount,
    pub state: RequestState,
}

impl CheckpointRequest {
    fn to_proto(&self) -> pb::CheckpointRequest {
        pb::CheckpointRequest {
            requester: self.requester.to_string(),
            step: self.step,
            deadline: self.deadline,
            bond: self.bond.0.to_string(),
            state: match self.state {
                RequestState::Open => pb::CheckpointRequestState::Open,
                RequestState::Posted => pb::CheckpointRequestState::Posted,
                RequestState::Missed => pb::CheckpointRequestState::Missed,
            } as i32,
        }
    }
    fn from_proto(r: &pb::CheckpointRequest) -> Result<CheckpointRequest> {
        Ok(CheckpointRequest {
            requester: parse_addr(&r.requester)?,
            step: r.step,
            deadline: r.deadline,
            bond: amount_or(&r.bond, Amount::ZERO)?,
            state: match pb::CheckpointRequestState::try_from(r.state) {
                Ok(pb::CheckpointRequestState::Posted) => RequestState::Posted,
                Ok(pb::CheckpointRequestState::Missed) => RequestState::Missed,
                _ => RequestState::Open,
            },
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payout {
    pub recipient: Address,
    pub amount: Amount,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    pub id: u64,
    pub submitter: Address,
    pub program_json: Vec<u8>,
    pub program_hash: Hash,
    pub dataset_root: Hash,
    pub dataset: DatasetLayout,
    pub steps: u64,
    pub node_count: u64,
    pub reward: Amount,
    pub verification_fee: Amount,
    pub level: Level,
    /// Challenge window length (blocks), fixed at submission.
    pub window_blocks: u64,
    pub status: Status,
    pub submitted_height: u64,
    pub claim_deadline: u64,
    /// The current (or, once ended, last) claim.
    pub claim: Option<Claim>,
    pub commitment: Option<Commitment>,
    pub verifiers: Vec<Address>,
    pub selection_seed: Option<Hash>,
    /// SHA-256 of the submitter's secret, if it chose to seed the draw.
    pub seed_commitment: Option<Hash>,
    pub attestations: Vec<Attestation>,
    /// Drawn verifiers that opened a dispute on this task.
    pub challengers: Vec<Address>,
    pub open_disputes: Vec<u64>,
    pub checkpoint_requests: Vec<CheckpointRequest>,
    pub payouts: Vec<Payout>,
    pub note: String,
}

impl Task {
    pub fn solver(&self) -> Option<Address> {
        self.claim.as_ref().map(|c| c.solver)
    }
    /// Claim bond held in escrow (zero without a live claim).
    pub fn bond_held(&self) -> Amount {
        match (&self.claim, self.status) {
            (Some(c), Status::Claimed | Status::Committed) => c.bond,
            _ => Amount::ZERO,
        }
    }
    /// What the module account holds for this task.
    pub fn escrow(&self) -> Result<Amount> {
        if !self.status.is_open() {
            return Ok(Amount::ZERO);
        }
        let mut owed = self
            .reward
            .checked_add(self.verification_fee)?
            .checked_add(self.bond_held())?;
        for r in &self.checkpoint_requests {
            if r.state == RequestState::Open {
                owed = owed.checked_add(r.bond)?;
            }
        }
        Ok(owed)
    }
    pub fn program(&self) -> Result<train::Program> {
        let s = std::str::from_utf8(&self.program_json)
            .map_err(|e| TasksError::InvalidProgram(e.to_string()))?;
        train::Program::from_json(s).map_err(|e| TasksError::InvalidProgram(e.to_string()))
    }

    pub fn to_proto(&self) -> pb::Task {
        let (level, bps) = self.level.to_proto();
        let c = self.claim.as_ref();
        let k = self.commitment.as_ref();
        pb::Task {
            id: self.id,
            submitter: self.submitter.to_string(),
            program_json: self.program_json.clone(),
            program_hash: self.program_hash.to_vec(),
            dataset_root: self.dataset_root.to_vec(),
            steps: self.steps,
            node_count: self.node_count,
            reward: self.reward.0.to_string(),
            verification_fee: self.verification_fee.0.to_string(),
            status: self.status.to_proto() as i32,
            submitted_height: self.submitted_height,
            claim_deadline: self.claim_deadline,
            solver: c.map(|c| c.solver.to_string()).unwrap_or_default(),
            claim_bond: self.bond_held().0.to_string(),
            claimed_height: c.map_or(0, |c| c.height),
            commit_deadline: c.map_or(0, |c| c.commit_deadline),
            solver_endpoint: c.map(|c| c.endpoint.clone()).unwrap_or_default(),
            trace_root: k.map(|k| k.trace_root.to_vec()).unwrap_or_default(),
            final_state_hash: k.map(|k| k.final_state_hash.to_vec()).unwrap_or_default(),
            committed_height: k.map_or(0, |k| k.height),
            challenge_end: k.map_or(0, |k| k.challenge_end),
            verifiers: self.verifiers.iter().map(|a| a.to_string()).collect(),
            attestations: self
                .attestations
                .iter()
                .map(|a| pb::Attestation {
                    verifier: a.verifier.to_string(),
                    height: a.height,
                    evidence_step: a.evidence_step,
                })
                .collect(),
            open_dispute: self.open_disputes.first().copied().unwrap_or(0),
            open_disputes: self.open_disputes.clone(),
            payouts: self
                .payouts
                .iter()
                .map(|p| pb::Payout {
                    recipient: p.recipient.to_string(),
                    amount: p.amount.0.to_string(),
                    reason: p.reason.clone(),
                })
                .collect(),
            note: self.note.clone(),
            dataset: Some(self.dataset.to_proto()),
            verification_level: level as i32,
            sample_bps: bps,
            selection_seed: self.selection_seed.map(|s| s.to_vec()).unwrap_or_default(),
            challengers: self.challengers.iter().map(|a| a.to_string()).collect(),
            guarantee: String::new(),
            window_blocks: self.window_blocks,
            seed_commitment: self.seed_commitment.map(|h| h.to_vec()).unwrap_or_default(),
            checkpoint_requests: self
                .checkpoint_requests
                .iter()
                .map(CheckpointRequest::to_proto)
                .collect(),
        }
    }
}

fn opt_hash(b: &[u8], what: &str) -> Result<Option<Hash>> {
    if b.is_empty() {
        Ok(None)
    } else {
        hash32(b, what).map(Some)
    }
}

impl TryFrom<&pb::Task> for Task {
    type Error = TasksError;
    fn try_from(t: &pb::Task) -> Result<Task> {
        let status = Status::from_proto(t.status)
            .ok_or_else(|| TasksError::InvalidProgram(format!("unknown status {}", t.status)))?;
        let claim = if t.solver.is_empty() {
            None
        } else {
            Some(Claim {
                solver: parse_addr(&t.solver)?,
                endpoint: t.solver_endpoint.clone(),
                bond: amount_or(&t.claim_bond, Amount::ZERO)?,
                height: t.claimed_height,
                commit_deadline: t.commit_deadline,
            })
        };
        let commitment = match (
            opt_hash(&t.trace_root, "trace_root")?,
            opt_hash(&t.final_state_hash, "final_state_hash")?,
        ) {
            (Some(trace_root), Some(final_state_hash)) => Some(Commitment {
                trace_root,
                final_state_hash,
                height: t.committed_height,
                challenge_end: t.challenge_end,
            }),
            _ => None,
        };
        let mut open_disputes = t.open_disputes.clone();
        if open_disputes.is_empty() && t.open_dispute != 0 {
            open_disputes.push(t.open_dispute);
        }
        Ok(Task {
            id: t.id,
            submitter: parse_addr(&t.submitter)?,
            program_json: t.program_json.clone(),
            program_hash: hash32(&t.program_hash, "program_hash")?,
            dataset_root: hash32(&t.dataset_root, "dataset_root")?,
            dataset: DatasetLayout::from_proto(&t.dataset.clone().unwrap_or_default())?,
            steps: t.steps,
            node_count: t.node_count,
            reward: amount_or(&t.reward, Amount::ZERO)?,
            verification_fee: amount_or(&t.verification_fee, Amount::ZERO)?,
            level: Level::from_proto(t.verification_level, t.sample_bps)?,
            window_blocks: t.window_blocks,
            status,
            submitted_height: t.submitted_height,
            claim_deadline: t.claim_deadline,
            claim,
            commitment,
            verifiers: t
                .verifiers
                .iter()
                .map(|v| parse_addr(v))
                .collect::<Result<_>>()?,
            selection_seed: opt_hash(&t.selection_seed, "selection_seed")?,
            seed_commitment: opt_hash(&t.seed_commitment, "seed_commitment")?,
            attestations: t
                .attestations
                .iter()
                .map(|a| {
                    Ok(Attestation {
                        verifier: parse_addr(&a.verifier)?,
                        height: a.height,
                        evidence_step: a.evidence_step,
                    })
                })
                .collect::<Result<_>>()?,
            challengers: t
                .challengers
                .iter()
                .map(|v| parse_addr(v))
                .collect::<Result<_>>()?,
            open_disputes,
            checkpoint_requests: t
                .checkpoint_requests
                .iter()
                .map(CheckpointRequest::from_proto)
                .collect::<Result<_>>()?,
            payouts: t
                .payouts
                .iter()
                .map(|p| {
                    Ok(Payout {
                        recipient: parse_addr(&p.recipient)?,
                        amount: amount_or(&p.amount, Amount::ZERO)?,
                        reason: p.reason.clone(),
                    })
                })
                .collect::<Result<_>>()?,
            note: t.note.clone(),
        })
    }
}
