//! Domain messages: parsed from protobuf with `TryFrom` (every check that needs
//! no state happens here), built back with `to_proto` by clients.
use framework::{Address, Amount, BlockCtx, StateWrite};
use proto::swarm::v1 as pb;

use crate::error::{amount, parse_addr, Result, SwarmError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgCreateSwarm {
    pub creator: Address,
    pub program_json: Vec<u8>,
    pub rounds: u64,
    pub slots: u64,
    pub inner_steps: u64,
    pub eval_steps: u64,
    pub eval_batch: u64,
    pub budget_per_round: Amount,
    pub contribution_reward: Amount,
    pub evaluation_reward: Amount,
    pub verification_fee: Amount,
    pub min_stake: Amount,
    /// Required unless the program names a builtin dataset.
    pub dataset: Option<tasks::DatasetLayout>,
    /// SHA-256^rounds of the creator's secret (the head of its seed chain).
    pub seed_commitment: Option<[u8; 32]>,
    /// Sealed evaluation pools, one per round (empty: the base's held-out rows).
    pub pools: Vec<crate::swarm::DataSource>,
    /// The averaged merge's outer learning rate as f32 bits (0: merge by selection).
    pub outer_lr_bits: u32,
}

/// The creator reveals the next link of its seed chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgRevealEvalSeed {
    pub creator: Address,
    pub swarm_id: u64,
    pub round: u64,
    pub secret: [u8; 32],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgJoinRound {
    pub contributor: Address,
    pub swarm_id: u64,
    pub round: u64,
    /// The contributor's Solver endpoint (truncated to 256 characters).
    pub endpoint: String,
    /// The contributor's own training data (sealed-pool swarms only).
    pub dataset: Option<crate::swarm::DataSource>,
}

/// One step's loss with its proofs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepLoss {
    pub step: u64,
    pub state_hash: [u8; 32],
    pub trace_proof: train::merkle::Proof,
    pub loss_bits: u32,
    pub state_proof: train::merkle::Proof,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgReportLoss {
    pub reporter: Address,
    pub swarm_id: u64,
    pub task_id: u64,
    pub losses: Vec<StepLoss>,
}

/// Most step losses one report may carry (also bounded by the swarm's `eval_steps`).
pub const MAX_REPORTED_STEPS: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwarmMsg {
    Create(MsgCreateSwarm),
    Join(MsgJoinRound),
    ReportLoss(MsgReportLoss),
    RevealEvalSeed(MsgRevealEvalSeed),
}

impl SwarmMsg {
    /// The program of a swarm's creation (for its fee).
    pub fn program_json(&self) -> Option<&[u8]> {
        match self {
            SwarmMsg::Create(m) => Some(&m.program_json),
            _ => None,
        }
    }

    pub fn signer(&self) -> Address {
        match self {
            SwarmMsg::Create(m) => m.creator,
            SwarmMsg::Join(m) => m.contributor,
            SwarmMsg::ReportLoss(m) => m.reporter,
            SwarmMsg::RevealEvalSeed(m) => m.creator,
        }
    }

    /// Checks and executes against the state being written.
    pub fn execute<S: StateWrite + ?Sized>(&self, s: &mut S, ctx: &BlockCtx) -> Result<()> {
        use crate::component::handler;
        match self {
            SwarmMsg::Create(m) => handler::create::execute(s, ctx, m).map(|_| ()),
            SwarmMsg::Join(m) => handler::join::execute(s, ctx, m).map(|_| ()),
            SwarmMsg::ReportLoss(m) => handler::report_loss::execute(s, ctx, m),
            SwarmMsg::RevealEvalSeed(m) => handler::reveal_seed::execute(s, ctx, m),
        }
    }
}

impl TryFrom<&pb::MsgCreateSwarm> for MsgCreateSwarm {
    type Error = SwarmError;
    fn try_from(m: &pb::MsgCreateSwarm) -> Result<Self> {
        Ok(MsgCreateSwarm {
            creator: parse_addr(&m.creator)?,
            program_json: m.program_json.clone(),
            rounds: m.rounds,
            slots: m.slots,
            inner_steps: m.inner_steps,
            eval_steps: m.eval_steps,
            eval_batch: m.eval_batch,
            budget_per_round: amount(&m.budget_per_round)?,
            contribution_reward: amount(&m.contribution_reward)?,
            evaluation_reward: amount(&m.evaluation_reward)?,
            verification_fee: amount(&m.verification_fee)?,
            min_stake: amount(&m.min_stake)?,
            dataset: m
                .dataset
                .as_ref()
                .map(tasks::DatasetLayout::from_proto)
                .transpose()?,
            seed_commitment: if m.seed_commitment.is_empty() {
                None
            } else {
                Some(crate::swarm::hash32(&m.seed_commitment)?)
            },
            outer_lr_bits: m.outer_lr.to_bits(),
            pools: m
                .pools
                .iter()
                .map(crate::swarm::DataSource::from_proto)
                .collect::<Result<_>>()?,
        })
    }
}

impl MsgCreateSwarm {
    pub fn to_proto(&self) -> pb::MsgCreateSwarm {
        pb::MsgCreateSwarm {
            creator: self.creator.to_string(),
            program_json: self.program_json.clone(),
            rounds: self.rounds,
            slots: self.slots,
            inner_steps: self.inner_steps,
            eval_steps: self.eval_steps,
            eval_batch: self.eval_batch,
            budget_per_round: self.budget_per_round.0.to_string(),
            contribution_reward: self.contribution_reward.0.to_string(),
            evaluation_reward: self.evaluation_reward.0.to_string(),
            verification_fee: self.verification_fee.0.to_string(),
            min_stake: self.min_stake.0.to_string(),
            dataset: self.dataset.as_ref().map(tasks::DatasetLayout::to_proto),
            seed_commitment: self.seed_commitment.map(|h| h.to_vec()).unwrap_or_default(),
            outer_lr: f32::from_bits(self.outer_lr_bits),
            pools: self
                .pools
                .iter()
                .map(crate::swarm::DataSource::to_proto)
                .collect(),
        }
    }
}

impl TryFrom<&pb::MsgJoinRound> for MsgJoinRound {
    type Error = SwarmError;
    fn try_from(m: &pb::MsgJoinRound) -> Result<Self> {
        Ok(MsgJoinRound {
            contributor: parse_addr(&m.contributor)?,
            swarm_id: m.swarm_id,
            round: m.round,
            endpoint: tasks::msg::bounded_endpoint(&m.endpoint),
            dataset: m
                .dataset
                .as_ref()
                .map(crate::swarm::DataSource::from_proto)
                .transpose()?,
        })
    }
}

impl MsgJoinRound {
    pub fn to_proto(&self) -> pb::MsgJoinRound {
        pb::MsgJoinRound {
            contributor: self.contributor.to_string(),
            swarm_id: self.swarm_id,
            round: self.round,
            endpoint: self.endpoint.clone(),
            dataset: self
                .dataset
                .as_ref()
                .map(crate::swarm::DataSource::to_proto),
        }
    }
}

impl TryFrom<&pb::MsgReportLoss> for MsgReportLoss {
    type Error = SwarmError;
    fn try_from(m: &pb::MsgReportLoss) -> Result<Self> {
        if m.losses.is_empty() || m.losses.len() > MAX_REPORTED_STEPS {
            return Err(SwarmError::BadReport(format!(
                "{} step losses (1..={MAX_REPORTED_STEPS})",
                m.losses.len()
            )));
        }
        let proof = |p: &Option<proto::verde::v1::MerkleProof>| -> Result<train::merkle::Proof> {
            let p = p
                .as_ref()
                .ok_or_else(|| SwarmError::BadReport("a proof is missing".into()))?;
            Ok(tasks::msg::proof_from_proto(p)?)
        };
        Ok(MsgReportLoss {
            reporter: parse_addr(&m.reporter)?,
            swarm_id: m.swarm_id,
            task_id: m.task_id,
            losses: m
                .losses
                .iter()
                .map(|l| {
                    Ok(StepLoss {
                        step: l.step,
                        state_hash: crate::swarm::hash32(&l.state_hash)?,
                        trace_proof: proof(&l.trace_proof)?,
                        loss_bits: l.loss_bits,
                        state_proof: proof(&l.state_proof)?,
                    })
                })
                .collect::<Result<_>>()?,
        })
    }
}

impl MsgReportLoss {
    pub fn to_proto(&self) -> pb::MsgReportLoss {
        pb::MsgReportLoss {
            reporter: self.reporter.to_string(),
            swarm_id: self.swarm_id,
            task_id: self.task_id,
            losses: self
                .losses
                .iter()
                .map(|l| pb::StepLoss {
                    step: l.step,
                    state_hash: l.state_hash.to_vec(),
                    trace_proof: Some(tasks::msg::proof_to_proto(&l.trace_proof)),
                    loss_bits: l.loss_bits,
                    state_proof: Some(tasks::msg::proof_to_proto(&l.state_proof)),
                })
                .collect(),
        }
    }
}

impl TryFrom<&pb::MsgRevealEvalSeed> for MsgRevealEvalSeed {
    type Error = SwarmError;
    fn try_from(m: &pb::MsgRevealEvalSeed) -> Result<Self> {
        Ok(MsgRevealEvalSeed {
            creator: parse_addr(&m.creator)?,
            swarm_id: m.swarm_id,
            round: m.round,
            secret: crate::swarm::hash32(&m.secret)?,
        })
    }
}

impl MsgRevealEvalSeed {
    pub fn to_proto(&self) -> pb::MsgRevealEvalSeed {
        pb::MsgRevealEvalSeed {
            creator: self.creator.to_string(),
            swarm_id: self.swarm_id,
            round: self.round,
            secret: self.secret.to_vec(),
        }
    }
}

/// The head of a seed chain of `rounds` links from `secret` (what
/// `MsgCreateSwarm.seed_commitment` takes), and the link to reveal in round `r`.
pub fn seed_chain(secret: &[u8; 32], rounds: u64) -> [u8; 32] {
    (0..rounds).fold(*secret, |h, _| sha256(&h))
}

/// The link whose SHA-256 is the head after `r` reveals: `H^(rounds - 1 - r)(secret)`.
pub fn seed_link(secret: &[u8; 32], rounds: u64, r: u64) -> [u8; 32] {
    seed_chain(secret, rounds.saturating_sub(r + 1))
}

/// The link of `secret`'s chain (of `rounds` links) whose SHA-256 is `head`, if any.
pub fn link_for(secret: &[u8; 32], rounds: u64, head: &[u8; 32]) -> Option<[u8; 32]> {
    let mut link = *secret;
    for _ in 0..rounds {
        let next = sha256(&link);
        if &next == head {
            return Some(link);
        }
        link = next;
    }
    None
}

pub(crate) fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}

macro_rules! from_proto {
    ($($pb:ident => $variant:ident($domain:ident)),* $(,)?) => {$(
        impl TryFrom<&pb::$pb> for SwarmMsg {
            type Error = SwarmError;
            fn try_from(m: &pb::$pb) -> Result<Self> {
                Ok(SwarmMsg::$variant($domain::try_from(m)?))
            }
        }
    )*};
}
from_proto!(
    MsgCreateSwarm => Create(MsgCreateSwarm),
    MsgJoinRound => Join(MsgJoinRound),
    MsgReportLoss => ReportLoss(MsgReportLoss),
    MsgRevealEvalSeed => RevealEvalSeed(MsgRevealEvalSeed),
);

impl StepLoss {
    /// Step `step`'s entry of a report, from the evaluation's step hashes
    /// `h_0..h_T` and its state after step `step`.
    pub fn from_run(
        step: u64,
        hashes: &[train::Hash],
        state: &std::collections::BTreeMap<String, repops::Tensor>,
    ) -> Option<StepLoss> {
        let loss = state
            .get(train::program::LOSS_STATE)?
            .data()
            .first()?
            .to_bits();
        Some(StepLoss {
            step,
            state_hash: *hashes.get(step as usize)?,
            trace_proof: train::merkle::proof(hashes, step as usize)?,
            loss_bits: loss,
            state_proof: train::exec::state_tensor_proof(state, train::program::LOSS_STATE)?,
        })
    }
}
