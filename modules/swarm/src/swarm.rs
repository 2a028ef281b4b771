//! Domain types of the swarm module, converted to protobuf only at storage and
//! at the query edge.
use framework::{Address, Amount};
use proto::swarm::v1 as pb;

use crate::error::{amount, parse_addr, Result, SwarmError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Joining,
    Training,
    Evaluating,
    Scoring,
    Settled,
    Seeding,
    Merging,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Joining => "joining",
            Phase::Training => "training",
            Phase::Evaluating => "evaluating",
            Phase::Scoring => "scoring",
            Phase::Settled => "settled",
            Phase::Seeding => "seeding",
            Phase::Merging => "merging",
        }
    }
    fn to_proto(self) -> i32 {
        (match self {
            Phase::Joining => pb::RoundPhase::Joining,
            Phase::Training => pb::RoundPhase::Training,
            Phase::Evaluating => pb::RoundPhase::Evaluating,
            Phase::Scoring => pb::RoundPhase::Scoring,
            Phase::Settled => pb::RoundPhase::Settled,
            Phase::Seeding => pb::RoundPhase::Seeding,
            Phase::Merging => pb::RoundPhase::Merging,
        }) as i32
    }
    /// A `veritrain.swarm.v1.RoundPhase` value.
    pub fn from_proto(v: i32) -> Result<Phase> {
        Ok(match pb::RoundPhase::try_from(v) {
            Ok(pb::RoundPhase::Joining) => Phase::Joining,
            Ok(pb::RoundPhase::Training) => Phase::Training,
            Ok(pb::RoundPhase::Evaluating) => Phase::Evaluating,
            Ok(pb::RoundPhase::Scoring) => Phase::Scoring,
            Ok(pb::RoundPhase::Settled) => Phase::Settled,
            Ok(pb::RoundPhase::Seeding) => Phase::Seeding,
            Ok(pb::RoundPhase::Merging) => Phase::Merging,
            _ => return Err(SwarmError::Invalid(format!("round phase {v}"))),
        })
    }
}

/// A dataset by content: where it is fetched, its root and its layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataSource {
    pub name: String,
    pub root: [u8; 32],
    pub layout: tasks::DatasetLayout,
}

/// Longest dataset source name.
pub const MAX_SOURCE_NAME: usize = 1024;

impl DataSource {
    pub fn to_proto(&self) -> pb::DataSource {
        pb::DataSource {
            name: self.name.clone(),
            root: self.root.to_vec(),
            layout: Some(self.layout.to_proto()),
        }
    }
    pub fn from_proto(p: &pb::DataSource) -> Result<DataSource> {
        if p.name.is_empty() || p.name.len() > MAX_SOURCE_NAME {
            return Err(SwarmError::Invalid(format!(
                "a dataset source name must have 1..={MAX_SOURCE_NAME} bytes"
            )));
        }
        Ok(DataSource {
            name: p.name.clone(),
            root: hash32(&p.root)?,
            layout: tasks::DatasetLayout::from_proto(
                p.layout.as_ref().unwrap_or(&Default::default()),
            )?,
        })
    }
    /// This dataset as a program's, with `train_rows` of its rows for training.
    pub fn as_ref(&self, train_rows: u64) -> train::program::DatasetRef {
        train::program::DatasetRef {
            name: self.name.clone(),
            root: self.root,
            train_rows,
        }
    }
}

/// The global model a round starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalState {
    pub root: [u8; 32],
    /// Its `opt.step`.
    pub step: u64,
    /// Where it is fetched (`seed:N` for the base's own initial state).
    pub source: String,
    /// The contribution task it came from (0: the base).
    pub task_id: u64,
}

impl GlobalState {
    pub fn to_proto(&self) -> pb::GlobalState {
        pb::GlobalState {
            root: self.root.to_vec(),
            step: self.step,
            source: self.source.clone(),
            task_id: self.task_id,
        }
    }
    pub fn from_proto(p: &pb::GlobalState) -> Result<GlobalState> {
        Ok(GlobalState {
            root: hash32(&p.root)?,
            step: p.step,
            source: p.source.clone(),
            task_id: p.task_id,
        })
    }
    /// This state as a program's `init_state`.
    pub fn as_init(&self) -> train::StateRef {
        train::StateRef {
            name: self.source.clone(),
            root: self.root,
            step: self.step,
        }
    }
}

pub(crate) fn hash32(b: &[u8]) -> Result<[u8; 32]> {
    <[u8; 32]>::try_from(b)
        .map_err(|_| SwarmError::Invalid(format!("a hash of {} bytes, expected 32", b.len())))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Swarm {
    pub id: u64,
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
    pub round: u64,
    pub global: GlobalState,
    pub done: bool,
    pub created_height: u64,
    /// What the swarm account holds for this swarm.
    pub escrow: Amount,
    pub eval_from: u64,
    pub eval_to: u64,
    /// The dataset layout every task of the swarm names.
    pub dataset: tasks::DatasetLayout,
    /// The head of the creator's seed chain (`None`: seeds from block hashes).
    pub seed_chain: Option<[u8; 32]>,
    /// Sealed evaluation pools, one per round (empty: the base's held-out rows).
    pub pools: Vec<DataSource>,
    /// The averaged merge's outer learning rate as f32 bits (consensus keeps the
    /// bits; only the merge program computes with them); 0: merge by selection.
    pub outer_lr_bits: u32,
}

impl Swarm {
    /// The base program (validated at creation).
    pub fn program(&self) -> Result<train::Program> {
        let text = std::str::from_utf8(&self.program_json)
            .map_err(|e| SwarmError::Invalid(format!("program: {e}")))?;
        train::Program::from_json(text).map_err(|e| SwarmError::Invalid(e.to_string()))
    }

    /// Whether rounds merge by averaging (a merge task) rather than by selection.
    pub fn averages(&self) -> bool {
        self.outer_lr_bits != 0
    }

    /// What one round's tasks take out of the escrow at most (first attempts): the
    /// contributions, the evaluations and, when averaging, the merge (paid the
    /// evaluation reward).
    pub fn task_budget(&self) -> Result<Amount> {
        let per_task = |r: Amount| r.checked_add(self.verification_fee);
        let paid_like_evaluations = self.slots + 1 + u64::from(self.averages());
        Ok(per_task(self.contribution_reward)?
            .checked_mul_u64(self.slots)?
            .checked_add(
                per_task(self.evaluation_reward)?.checked_mul_u64(paid_like_evaluations)?,
            )?)
    }

    pub fn to_proto(&self) -> pb::Swarm {
        pb::Swarm {
            id: self.id,
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
            round: self.round,
            global: Some(self.global.to_proto()),
            status: if self.done {
                pb::SwarmStatus::Done
            } else {
                pb::SwarmStatus::Active
            } as i32,
            created_height: self.created_height,
            escrow: self.escrow.0.to_string(),
            eval_from: self.eval_from,
            eval_to: self.eval_to,
            dataset: Some(self.dataset.to_proto()),
            seed_chain: self.seed_chain.map(|h| h.to_vec()).unwrap_or_default(),
            pools: self.pools.iter().map(DataSource::to_proto).collect(),
            outer_lr: f32::from_bits(self.outer_lr_bits),
        }
    }

    pub fn from_proto(p: &pb::Swarm) -> Result<Swarm> {
        Ok(Swarm {
            id: p.id,
            creator: parse_addr(&p.creator)?,
            program_json: p.program_json.clone(),
            rounds: p.rounds,
            slots: p.slots,
            inner_steps: p.inner_steps,
            eval_steps: p.eval_steps,
            eval_batch: p.eval_batch,
            budget_per_round: amount(&p.budget_per_round)?,
            contribution_reward: amount(&p.contribution_reward)?,
            evaluation_reward: amount(&p.evaluation_reward)?,
            verification_fee: amount(&p.verification_fee)?,
            min_stake: amount(&p.min_stake)?,
            round: p.round,
            global: GlobalState::from_proto(p.global.as_ref().unwrap_or(&Default::default()))?,
            done: p.status == pb::SwarmStatus::Done as i32,
            created_height: p.created_height,
            escrow: amount(&p.escrow)?,
            eval_from: p.eval_from,
            eval_to: p.eval_to,
            dataset: tasks::DatasetLayout::from_proto(
                p.dataset.as_ref().unwrap_or(&Default::default()),
            )?,
            seed_chain: if p.seed_chain.is_empty() {
                None
            } else {
                Some(hash32(&p.seed_chain)?)
            },
            pools: p
                .pools
                .iter()
                .map(DataSource::from_proto)
                .collect::<Result<_>>()?,
            outer_lr_bits: p.outer_lr.to_bits(),
        })
    }
}

/// A measurement: an evaluation task and, once reported, its losses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Measurement {
    pub task_id: u64,
    /// The task's status once it ended (empty while it runs).
    pub task_status: String,
    pub reported: bool,
    pub loss_fixed: u64,
    pub loss_bits: Vec<u32>,
    /// Evaluation tasks submitted for it so far.
    pub attempts: u32,
}

impl Measurement {
    fn to_proto(&self) -> pb::Measurement {
        pb::Measurement {
            task_id: self.task_id,
            reported: self.reported,
            loss_fixed: self.loss_fixed,
            loss_bits: self.loss_bits.clone(),
            task_status: self.task_status.clone(),
            attempts: self.attempts,
        }
    }
    fn from_proto(p: &pb::Measurement) -> Measurement {
        Measurement {
            task_id: p.task_id,
            task_status: p.task_status.clone(),
            reported: p.reported,
            loss_fixed: p.loss_fixed,
            loss_bits: p.loss_bits.clone(),
            attempts: p.attempts,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contribution {
    pub slot: u64,
    pub contributor: Address,
    pub task_id: u64,
    /// The task's status once it ended (empty while it runs).
    pub task_status: String,
    pub final_state_hash: Option<[u8; 32]>,
    /// The solver whose verified state it is, and its endpoint.
    pub solver: Option<Address>,
    pub endpoint: String,
    pub eval: Option<Measurement>,
    pub duplicate: bool,
    pub improvement: u64,
    pub quality_paid: Amount,
    /// The contributor's own training data (`None`: the slot's shard).
    pub dataset: Option<DataSource>,
}

impl Contribution {
    fn to_proto(&self) -> pb::Contribution {
        pb::Contribution {
            slot: self.slot,
            contributor: self.contributor.to_string(),
            task_id: self.task_id,
            task_status: self.task_status.clone(),
            final_state_hash: self
                .final_state_hash
                .map(|h| h.to_vec())
                .unwrap_or_default(),
            solver: self.solver.map(|a| a.to_string()).unwrap_or_default(),
            endpoint: self.endpoint.clone(),
            eval: self.eval.as_ref().map(Measurement::to_proto),
            duplicate: self.duplicate,
            improvement: self.improvement,
            quality_paid: self.quality_paid.0.to_string(),
            dataset: self.dataset.as_ref().map(DataSource::to_proto),
        }
    }
    fn from_proto(p: &pb::Contribution) -> Result<Contribution> {
        Ok(Contribution {
            slot: p.slot,
            contributor: parse_addr(&p.contributor)?,
            task_id: p.task_id,
            task_status: p.task_status.clone(),
            final_state_hash: if p.final_state_hash.is_empty() {
                None
            } else {
                Some(hash32(&p.final_state_hash)?)
            },
            solver: if p.solver.is_empty() {
                None
            } else {
                Some(parse_addr(&p.solver)?)
            },
            endpoint: p.endpoint.clone(),
            eval: p.eval.as_ref().map(Measurement::from_proto),
            duplicate: p.duplicate,
            improvement: p.improvement,
            quality_paid: amount(&p.quality_paid)?,
            dataset: p.dataset.as_ref().map(DataSource::from_proto).transpose()?,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Round {
    pub swarm_id: u64,
    pub round: u64,
    pub phase: Phase,
    pub start: GlobalState,
    pub started_height: u64,
    pub join_deadline: u64,
    pub contributions: Vec<Contribution>,
    pub eval_seed: Option<[u8; 32]>,
    pub base: Option<Measurement>,
    pub report_deadline: u64,
    pub quality_pool: Amount,
    pub quality_paid: Amount,
    pub merged_slot: Option<u64>,
    pub settled_height: u64,
    pub note: String,
    pub reveal_deadline: u64,
    pub seed_revealed: bool,
    /// An averaged merge's task (no losses), once submitted.
    pub merge: Option<Measurement>,
    /// The slots the merge averages, in input order.
    pub merge_slots: Vec<u64>,
}

impl Round {
    /// Every measurement of the round: the base's, then each contribution's.
    pub fn measurements(&self) -> impl Iterator<Item = &Measurement> {
        self.base
            .iter()
            .chain(self.contributions.iter().filter_map(|c| c.eval.as_ref()))
    }

    pub fn to_proto(&self) -> pb::Round {
        pb::Round {
            swarm_id: self.swarm_id,
            round: self.round,
            phase: self.phase.to_proto(),
            start: Some(self.start.to_proto()),
            started_height: self.started_height,
            join_deadline: self.join_deadline,
            contributions: self
                .contributions
                .iter()
                .map(Contribution::to_proto)
                .collect(),
            eval_seed: self.eval_seed.map(|h| h.to_vec()).unwrap_or_default(),
            base: self.base.as_ref().map(Measurement::to_proto),
            report_deadline: self.report_deadline,
            quality_pool: self.quality_pool.0.to_string(),
            quality_paid: self.quality_paid.0.to_string(),
            merged_slot: self.merged_slot.unwrap_or(0),
            merged: self.merged_slot.is_some(),
            settled_height: self.settled_height,
            note: self.note.clone(),
            reveal_deadline: self.reveal_deadline,
            seed_revealed: self.seed_revealed,
            merge: self.merge.as_ref().map(Measurement::to_proto),
            merge_slots: self.merge_slots.clone(),
        }
    }

    pub fn from_proto(p: &pb::Round) -> Result<Round> {
        Ok(Round {
            swarm_id: p.swarm_id,
            round: p.round,
            phase: Phase::from_proto(p.phase)?,
            start: GlobalState::from_proto(p.start.as_ref().unwrap_or(&Default::default()))?,
            started_height: p.started_height,
            join_deadline: p.join_deadline,
            contributions: p
                .contributions
                .iter()
                .map(Contribution::from_proto)
                .collect::<Result<_>>()?,
            eval_seed: if p.eval_seed.is_empty() {
                None
            } else {
                Some(hash32(&p.eval_seed)?)
            },
            base: p.base.as_ref().map(Measurement::from_proto),
            report_deadline: p.report_deadline,
            quality_pool: amount(&p.quality_pool)?,
            quality_paid: amount(&p.quality_paid)?,
            merged_slot: p.merged.then_some(p.merged_slot),
            settled_height: p.settled_height,
            note: p.note.clone(),
            reveal_deadline: p.reveal_deadline,
            seed_revealed: p.seed_revealed,
            merge: p.merge.as_ref().map(Measurement::from_proto),
            merge_slots: p.merge_slots.clone(),
        })
    }
}
