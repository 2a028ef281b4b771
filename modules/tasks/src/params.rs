//! Tasks parameters (genesis `tasks.params`).
use framework::Amount;
use proto::tasks::v1 as pb;

use crate::error::{amount_or, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    pub claim_timeout_blocks: u64,
    pub commit_blocks: u64,
    /// The challenge window's fixed part; the window also grows with the
    /// job's re-execution cost (`reexec_flops_per_block`).
    pub challenge_window_blocks: u64,
    pub verifiers_per_task: u32,
    pub claim_bond: Amount,
    pub min_reward: Amount,
    pub verifier_miss_slash: Amount,
    pub max_referee_flops: u64,
    pub max_reveal_bytes: u64,
    pub max_program_bytes: u64,
    pub max_steps: u64,
    pub reexec_flops_per_block: u64,
    pub attester_wrong_slash: Amount,
    pub solver_stake_per_claim: Amount,
    pub max_state_bytes: u64,
    pub max_nodes: u64,
    pub max_chunk_bytes: u64,
    pub default_sample_bps: u32,
    pub reveal_blocks: u64,
    pub availability_blocks: u64,
    pub availability_bond: Amount,
    pub withhold_slash: Amount,
    pub max_posted_checkpoint_bytes: u64,
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
            // Per dispute: a node over these is disputed inside, down to one tile.
            max_referee_flops: 1 << 24,
            max_reveal_bytes: 1 << 20,
            max_program_bytes: 64 << 10,
            max_steps: 1 << 20,
            // A CPU verifier re-executes about 2^32 FLOPs per one-second block.
            reexec_flops_per_block: 1 << 32,
            attester_wrong_slash: Amount(100_000),
            // verde's default solver_slash: a lost dispute can take this much.
            solver_stake_per_claim: Amount(500_000),
            max_state_bytes: 1 << 30,
            max_nodes: 1 << 16,
            max_chunk_bytes: 256 << 10,
            default_sample_bps: 200,
            reveal_blocks: 10,
            availability_blocks: 10,
            // Covers the solver's fee for posting when the request was needless.
            availability_bond: Amount(20_000),
            // Covers a forced replay of the whole run (the verifier's cost).
            withhold_slash: Amount(100_000),
            max_posted_checkpoint_bytes: 768 << 10,
        }
    }
}

/// Zero means "not set" for the parameters added after the first release, so
/// that older genesis files keep their meaning.
fn or(v: u64, default: u64) -> u64 {
    if v == 0 {
        default
    } else {
        v
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
            reexec_flops_per_block: self.reexec_flops_per_block,
            attester_wrong_slash: self.attester_wrong_slash.0.to_string(),
            solver_stake_per_claim: self.solver_stake_per_claim.0.to_string(),
            max_state_bytes: self.max_state_bytes,
            max_nodes: self.max_nodes,
            max_chunk_bytes: self.max_chunk_bytes,
            default_sample_bps: self.default_sample_bps,
            reveal_blocks: self.reveal_blocks,
            availability_blocks: self.availability_blocks,
            availability_bond: self.availability_bond.0.to_string(),
            withhold_slash: self.withhold_slash.0.to_string(),
            max_posted_checkpoint_bytes: self.max_posted_checkpoint_bytes,
        }
    }

    pub fn from_proto(p: &pb::Params) -> Result<Params> {
        let d = Params::default();
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
            reexec_flops_per_block: or(p.reexec_flops_per_block, d.reexec_flops_per_block),
            attester_wrong_slash: amount_or(&p.attester_wrong_slash, d.attester_wrong_slash)?,
            solver_stake_per_claim: amount_or(&p.solver_stake_per_claim, d.solver_stake_per_claim)?,
            max_state_bytes: or(p.max_state_bytes, d.max_state_bytes),
            max_nodes: or(p.max_nodes, d.max_nodes),
            max_chunk_bytes: or(p.max_chunk_bytes, d.max_chunk_bytes),
            default_sample_bps: match p.default_sample_bps {
                0 => d.default_sample_bps,
                b => b.min(10_000),
            },
            reveal_blocks: or(p.reveal_blocks, d.reveal_blocks),
            availability_blocks: or(p.availability_blocks, d.availability_blocks),
            availability_bond: amount_or(&p.availability_bond, d.availability_bond)?,
            withhold_slash: amount_or(&p.withhold_slash, d.withhold_slash)?,
            max_posted_checkpoint_bytes: or(
                p.max_posted_checkpoint_bytes,
                d.max_posted_checkpoint_bytes,
            ),
        })
    }
}
