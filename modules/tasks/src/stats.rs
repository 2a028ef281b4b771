//! Per-operator statistics behind the leaderboard.
use framework::{Address, Amount};
use proto::tasks::v1 as pb;

use crate::error::{amount_or, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    pub operator: Address,
    pub tasks_solved: u64,
    pub steps_verified: u64,
    pub disputes_won: u64,
    pub disputes_lost: u64,
    pub rewards: Amount,
    pub slashed: Amount,
    pub last_active_height: u64,
}

impl Stats {
    pub fn new(operator: Address) -> Stats {
        Stats {
            operator,
            tasks_solved: 0,
            steps_verified: 0,
            disputes_won: 0,
            disputes_lost: 0,
            rewards: Amount::ZERO,
            slashed: Amount::ZERO,
            last_active_height: 0,
        }
    }
    pub fn to_proto(&self) -> pb::OperatorStats {
        pb::OperatorStats {
            operator: self.operator.to_string(),
            tasks_solved: self.tasks_solved,
            steps_verified: self.steps_verified,
            disputes_won: self.disputes_won,
            disputes_lost: self.disputes_lost,
            rewards: self.rewards.0.to_string(),
            slashed: self.slashed.0.to_string(),
            last_active_height: self.last_active_height,
        }
    }
    pub fn from_proto(operator: Address, p: &pb::OperatorStats) -> Result<Stats> {
        let amt = |s: &str| amount_or(s, Amount::ZERO);
        Ok(Stats {
            operator,
            tasks_solved: p.tasks_solved,
            steps_verified: p.steps_verified,
            disputes_won: p.disputes_won,
            disputes_lost: p.disputes_lost,
            rewards: amt(&p.rewards)?,
            slashed: amt(&p.slashed)?,
            last_active_height: p.last_active_height,
        })
    }
}
