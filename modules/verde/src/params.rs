//! Verde parameters (genesis `verde.params`).
use framework::Amount;
use proto::verde::v1 as pb;

use crate::error::Result;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    pub min_bond: Amount,
    pub move_blocks: u64,
    pub solver_slash: Amount,
    pub challenger_reward_percent: u32,
    pub max_chunk_bytes: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            min_bond: Amount(100_000),
            move_blocks: 10,
            solver_slash: Amount(500_000),
            challenger_reward_percent: 50,
            max_chunk_bytes: 256 << 10,
        }
    }
}

impl Params {
    pub fn to_proto(&self) -> pb::Params {
        pb::Params {
            min_bond: self.min_bond.0.to_string(),
            move_blocks: self.move_blocks,
            solver_slash: self.solver_slash.0.to_string(),
            challenger_reward_percent: self.challenger_reward_percent,
            max_chunk_bytes: self.max_chunk_bytes,
        }
    }
    pub fn from_proto(p: &pb::Params) -> Result<Params> {
        Ok(Params {
            min_bond: Amount::parse_coin(&p.min_bond)?,
            move_blocks: p.move_blocks.max(1),
            solver_slash: Amount::parse_coin(&p.solver_slash)?,
            challenger_reward_percent: p.challenger_reward_percent.min(100),
            max_chunk_bytes: p.max_chunk_bytes.max(1),
        })
    }
}
