//! Domain messages: parsed from protobuf with `TryFrom` (every check that
//! needs no state happens here), and built back with `to_proto` by every
//! client (CLI, daemons, tests).
use framework::{Address, Amount, BlockCtx, StateWrite};
use proto::tasks::v1 as pb;

use crate::error::{hash32, parse_addr, Result, TasksError};
use crate::task::{DatasetLayout, Hash, Level};

fn coin(c: &Option<proto::base::v1::Coin>) -> Result<Amount> {
    match c {
        None => Ok(Amount::ZERO),
        Some(c) => Ok(Amount::from_coin(&c.denom, &c.amount)?),
    }
}

/// `a` as the protobuf coin every message carries.
pub fn to_coin(a: Amount) -> Option<proto::base::v1::Coin> {
    Some(proto::base::v1::Coin {
        denom: framework::DENOM.into(),
        amount: a.0.to_string(),
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgSubmitTask {
    pub submitter: Address,
    pub program_json: Vec<u8>,
    pub reward: Amount,
    pub verification_fee: Amount,
    /// Required unless the program names a builtin dataset.
    pub dataset: Option<DatasetLayout>,
    pub level: Level,
    /// SHA-256 of a secret revealed after the commit (seeds the draw).
    pub seed_commitment: Option<Hash>,
}

/// Reveals the secret behind a task's seed commitment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgRevealSeed {
    pub submitter: Address,
    pub task_id: u64,
    pub secret: Hash,
}

/// Sampled level: a drawn verifier asks the solver to post a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgRequestCheckpoint {
    pub verifier: Address,
    pub task_id: u64,
    pub step: u64,
}

/// The solver posts a requested checkpoint with the proof of `h_step`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgPostCheckpoint {
    pub solver: Address,
    pub task_id: u64,
    pub step: u64,
    pub checkpoint: Vec<u8>,
    pub proof: train::merkle::Proof,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgCancelTask {
    pub submitter: Address,
    pub task_id: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgClaimTask {
    pub solver: Address,
    pub task_id: u64,
    /// The solver's gRPC endpoint (truncated to 256 characters).
    pub endpoint: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgCommitResult {
    pub solver: Address,
    pub task_id: u64,
    pub trace_root: Hash,
    pub final_state_hash: Hash,
}

/// Evidence of re-execution: `h_s` of one of the verifier's evidence steps
/// and its Merkle proof against the task's `trace_root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    pub state_hash: Hash,
    pub proof: train::merkle::Proof,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgAttest {
    pub verifier: Address,
    pub task_id: u64,
    pub steps_checked: u64,
    /// One per evidence step, ascending (`level::evidence_steps`).
    pub evidence: Vec<Evidence>,
}

/// A Merkle proof from protobuf (at most 64 siblings).
pub fn proof_from_proto(p: &proto::verde::v1::MerkleProof) -> Result<train::merkle::Proof> {
    if p.siblings.len() > 64 {
        return Err(TasksError::BadEvidence(format!(
            "{} siblings",
            p.siblings.len()
        )));
    }
    Ok(train::merkle::Proof {
        index: p.index,
        leaf_count: p.leaf_count,
        siblings: p
            .siblings
            .iter()
            .map(|s| hash32(s, "sibling"))
            .collect::<Result<_>>()?,
    })
}

pub fn proof_to_proto(p: &train::merkle::Proof) -> proto::verde::v1::MerkleProof {
    proto::verde::v1::MerkleProof {
        index: p.index,
        leaf_count: p.leaf_count,
        siblings: p.siblings.iter().map(|s| s.to_vec()).collect(),
    }
}

impl TryFrom<&pb::MsgSubmitTask> for MsgSubmitTask {
    type Error = TasksError;
    fn try_from(m: &pb::MsgSubmitTask) -> Result<Self> {
        Ok(MsgSubmitTask {
            submitter: parse_addr(&m.submitter)?,
            program_json: m.program_json.clone(),
            reward: coin(&m.reward)?,
            verification_fee: coin(&m.verification_fee)?,
            dataset: m
                .dataset
                .as_ref()
                .map(DatasetLayout::from_proto)
                .transpose()?,
            level: Level::from_proto(m.verification_level, m.sample_bps)?,
            seed_commitment: if m.seed_commitment.is_empty() {
                None
            } else {
                Some(hash32(&m.seed_commitment, "seed_commitment")?)
            },
        })
    }
}

impl TryFrom<&pb::MsgRevealSeed> for MsgRevealSeed {
    type Error = TasksError;
    fn try_from(m: &pb::MsgRevealSeed) -> Result<Self> {
        Ok(MsgRevealSeed {
            submitter: parse_addr(&m.submitter)?,
            task_id: m.task_id,
            secret: hash32(&m.secret, "secret")?,
        })
    }
}
impl TryFrom<&pb::MsgRequestCheckpoint> for MsgRequestCheckpoint {
    type Error = TasksError;
    fn try_from(m: &pb::MsgRequestCheckpoint) -> Result<Self> {
        Ok(MsgRequestCheckpoint {
            verifier: parse_addr(&m.verifier)?,
            task_id: m.task_id,
            step: m.step,
        })
    }
}
impl MsgRequestCheckpoint {
    pub fn to_proto(&self) -> pb::MsgRequestCheckpoint {
        pb::MsgRequestCheckpoint {
            verifier: self.verifier.to_string(),
            task_id: self.task_id,
            step: self.step,
        }
    }
}
impl TryFrom<&pb::MsgPostCheckpoint> for MsgPostCheckpoint {
    type Error = TasksError;
    fn try_from(m: &pb::MsgPostCheckpoint) -> Result<Self> {
        let proof = m
            .proof
            .as_ref()
            .ok_or_else(|| TasksError::BadCheckpoint("the post has no proof of h_step".into()))?;
        Ok(MsgPostCheckpoint {
            solver: parse_addr(&m.solver)?,
            task_id: m.task_id,
            step: m.step,
            checkpoint: m.checkpoint.clone(),
            proof: proof_from_proto(proof)?,
        })
    }
}
impl MsgPostCheckpoint {
    pub fn to_proto(&self) -> pb::MsgPostCheckpoint {
        pb::MsgPostCheckpoint {
            solver: self.solver.to_string(),
            task_id: self.task_id,
            step: self.step,
            checkpoint: self.checkpoint.clone(),
            proof: Some(proof_to_proto(&self.proof)),
        }
    }
}
impl MsgRevealSeed {
    pub fn to_proto(&self) -> pb::MsgRevealSeed {
        pb::MsgRevealSeed {
            submitter: self.submitter.to_string(),
            task_id: self.task_id,
            secret: self.secret.to_vec(),
        }
    }
}
impl MsgSubmitTask {
    pub fn to_proto(&self) -> pb::MsgSubmitTask {
        let (level, bps) = self.level.to_proto();
        pb::MsgSubmitTask {
            submitter: self.submitter.to_string(),
            program_json: self.program_json.clone(),
            reward: to_coin(self.reward),
            verification_fee: to_coin(self.verification_fee),
            dataset: self.dataset.as_ref().map(DatasetLayout::to_proto),
            verification_level: level as i32,
            sample_bps: bps,
            seed_commitment: self.seed_commitment.map(|h| h.to_vec()).unwrap_or_default(),
        }
    }
}

impl TryFrom<&pb::MsgCancelTask> for MsgCancelTask {
    type Error = TasksError;
    fn try_from(m: &pb::MsgCancelTask) -> Result<Self> {
        Ok(MsgCancelTask {
            submitter: parse_addr(&m.submitter)?,
            task_id: m.task_id,
        })
    }
}
impl MsgCancelTask {
    pub fn to_proto(&self) -> pb::MsgCancelTask {
        pb::MsgCancelTask {
            submitter: self.submitter.to_string(),
            task_id: self.task_id,
        }
    }
}

/// Longest endpoint a claim records, in bytes: a swarm names a contributor's state
/// by `grpc://<endpoint host>`, which must fit a program's source name (1,024 bytes)
/// whatever characters the endpoint has.
pub const MAX_ENDPOINT_BYTES: usize = 256;

/// `endpoint` cut to [`MAX_ENDPOINT_BYTES`] on a character boundary (the one rule every
/// message that records an endpoint applies).
pub fn bounded_endpoint(endpoint: &str) -> String {
    let mut end = endpoint.len().min(MAX_ENDPOINT_BYTES);
    while !endpoint.is_char_boundary(end) {
        end -= 1;
    }
    endpoint[..end].to_string()
}

impl TryFrom<&pb::MsgClaimTask> for MsgClaimTask {
    type Error = TasksError;
    fn try_from(m: &pb::MsgClaimTask) -> Result<Self> {
        Ok(MsgClaimTask {
            solver: parse_addr(&m.solver)?,
            task_id: m.task_id,
            endpoint: bounded_endpoint(&m.endpoint),
        })
    }
}
impl MsgClaimTask {
    pub fn to_proto(&self) -> pb::MsgClaimTask {
        pb::MsgClaimTask {
            solver: self.solver.to_string(),
            task_id: self.task_id,
            endpoint: self.endpoint.clone(),
        }
    }
}

impl TryFrom<&pb::MsgCommitResult> for MsgCommitResult {
    type Error = TasksError;
    fn try_from(m: &pb::MsgCommitResult) -> Result<Self> {
        Ok(MsgCommitResult {
            solver: parse_addr(&m.solver)?,
            task_id: m.task_id,
            trace_root: hash32(&m.trace_root, "trace_root")?,
            final_state_hash: hash32(&m.final_state_hash, "final_state_hash")?,
        })
    }
}
impl MsgCommitResult {
    pub fn to_proto(&self) -> pb::MsgCommitResult {
        pb::MsgCommitResult {
            solver: self.solver.to_string(),
            task_id: self.task_id,
            trace_root: self.trace_root.to_vec(),
            final_state_hash: self.final_state_hash.to_vec(),
        }
    }
}

impl TryFrom<&pb::MsgAttest> for MsgAttest {
    type Error = TasksError;
    fn try_from(m: &pb::MsgAttest) -> Result<Self> {
        if m.evidence.len() as u64 > crate::level::MAX_SAMPLED_STEPS {
            return Err(TasksError::BadEvidence(format!(
                "{} evidence entries; at most {}",
                m.evidence.len(),
                crate::level::MAX_SAMPLED_STEPS
            )));
        }
        let evidence = m
            .evidence
            .iter()
            .map(|e| {
                Ok(Evidence {
                    state_hash: hash32(&e.state_hash, "evidence state_hash")?,
                    proof: proof_from_proto(e.proof.as_ref().ok_or_else(|| {
                        TasksError::BadEvidence("an evidence entry has no proof".into())
                    })?)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(MsgAttest {
            verifier: parse_addr(&m.verifier)?,
            task_id: m.task_id,
            steps_checked: m.steps_checked,
            evidence,
        })
    }
}
impl MsgAttest {
    /// The attestation of `verifier`, which holds the whole trace `hashes`
    /// (h_0..h_T): evidence for each of its evidence steps at `level` under
    /// the draw's `seed`. Steps beyond `hashes` are left out (the chain then
    /// refuses the attestation, which is what a test of it may want).
    pub fn from_trace(
        verifier: Address,
        task_id: u64,
        level: crate::task::Level,
        seed: &Hash,
        hashes: &[Hash],
        steps_checked: u64,
    ) -> MsgAttest {
        let steps = hashes.len().saturating_sub(1) as u64;
        let tree =
            train::merkle::Tree::from_nodes(hashes.iter().map(train::merkle::leaf_node).collect());
        let evidence = crate::level::evidence_steps(level, seed, &verifier, steps)
            .into_iter()
            .filter_map(|k| {
                Some(Evidence {
                    state_hash: *hashes.get(k as usize)?,
                    proof: tree.proof(k as usize)?,
                })
            })
            .collect();
        MsgAttest {
            verifier,
            task_id,
            steps_checked,
            evidence,
        }
    }

    pub fn to_proto(&self) -> pb::MsgAttest {
        pb::MsgAttest {
            verifier: self.verifier.to_string(),
            task_id: self.task_id,
            steps_checked: self.steps_checked,
            evidence: self
                .evidence
                .iter()
                .map(|e| pb::StepEvidence {
                    state_hash: e.state_hash.to_vec(),
                    proof: Some(proof_to_proto(&e.proof)),
                })
                .collect(),
        }
    }
}

/// Every tasks message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TasksMsg {
    Submit(MsgSubmitTask),
    Cancel(MsgCancelTask),
    Claim(MsgClaimTask),
    Commit(MsgCommitResult),
    Attest(MsgAttest),
    RevealSeed(MsgRevealSeed),
    RequestCheckpoint(MsgRequestCheckpoint),
    PostCheckpoint(MsgPostCheckpoint),
}

impl TasksMsg {
    /// The program of a submission (for its fee).
    pub fn as_ref_submit(&self) -> Option<&[u8]> {
        match self {
            TasksMsg::Submit(m) => Some(&m.program_json),
            _ => None,
        }
    }

    pub fn signer(&self) -> Address {
        match self {
            TasksMsg::Submit(m) => m.submitter,
            TasksMsg::Cancel(m) => m.submitter,
            TasksMsg::Claim(m) => m.solver,
            TasksMsg::Commit(m) => m.solver,
            TasksMsg::Attest(m) => m.verifier,
            TasksMsg::RevealSeed(m) => m.submitter,
            TasksMsg::RequestCheckpoint(m) => m.verifier,
            TasksMsg::PostCheckpoint(m) => m.solver,
        }
    }

    /// Checks and executes against the state being written.
    pub fn execute<S: StateWrite + ?Sized>(&self, s: &mut S, ctx: &BlockCtx) -> Result<()> {
        use crate::component::handler;
        match self {
            TasksMsg::Submit(m) => handler::submit::execute(s, ctx, m).map(|_| ()),
            TasksMsg::Cancel(m) => handler::cancel::execute(s, m),
            TasksMsg::Claim(m) => handler::claim::execute(s, ctx, m),
            TasksMsg::Commit(m) => handler::commit::execute(s, ctx, m),
            TasksMsg::Attest(m) => handler::attest::execute(s, ctx, m),
            TasksMsg::RevealSeed(m) => handler::reveal_seed::execute(s, ctx, m),
            TasksMsg::RequestCheckpoint(m) => handler::request_checkpoint::execute(s, ctx, m),
            TasksMsg::PostCheckpoint(m) => handler::post_checkpoint::execute(s, ctx, m),
        }
    }
}

macro_rules! from_proto {
    ($($pb:ident => $variant:ident($domain:ident)),* $(,)?) => {$(
        impl TryFrom<&pb::$pb> for TasksMsg {
            type Error = TasksError;
            fn try_from(m: &pb::$pb) -> Result<Self> {
                Ok(TasksMsg::$variant($domain::try_from(m)?))
            }
        }
    )*};
}
from_proto!(
    MsgSubmitTask => Submit(MsgSubmitTask),
    MsgCancelTask => Cancel(MsgCancelTask),
    MsgClaimTask => Claim(MsgClaimTask),
    MsgCommitResult => Commit(MsgCommitResult),
    MsgAttest => Attest(MsgAttest),
    MsgRevealSeed => RevealSeed(MsgRevealSeed),
    MsgRequestCheckpoint => RequestCheckpoint(MsgRequestCheckpoint),
    MsgPostCheckpoint => PostCheckpoint(MsgPostCheckpoint),
);
