//! Swarm errors (codespace `swarm`). Codes are stable: never renumber, only append.
use bank::BankError;
use framework::{AmountError, ModuleError, StateError};
use staking::StakingError;
use tasks::TasksError;

use crate::MODULE;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwarmError {
    #[error("swarm {0} does not exist")]
    NotFound(u64),
    #[error("invalid swarm: {0}")]
    Invalid(String),
    #[error("swarm {swarm} is in round {round} ({phase}): {why}")]
    WrongPhase {
        swarm: u64,
        round: u64,
        phase: &'static str,
        why: String,
    },
    #[error("{0} may not join: {1}")]
    CannotJoin(String, String),
    #[error("loss report rejected: {0}")]
    BadReport(String),
    #[error("invalid amount: {0}")]
    InvalidAmount(#[from] AmountError),
    #[error("invalid address: {0}")]
    InvalidAddress(String),
    #[error("escrow invariant broken: {0}")]
    EscrowMismatch(String),
    #[error("seed reveal rejected: {0}")]
    BadReveal(String),
    #[error(transparent)]
    Tasks(#[from] TasksError),
    #[error(transparent)]
    Bank(#[from] BankError),
    #[error(transparent)]
    Staking(#[from] StakingError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl ModuleError for SwarmError {
    fn codespace(&self) -> &'static str {
        match self {
            SwarmError::Tasks(e) => e.codespace(),
            SwarmError::Bank(e) => e.codespace(),
            SwarmError::Staking(e) => e.codespace(),
            SwarmError::State(e) => e.codespace(),
            _ => MODULE,
        }
    }
    fn code(&self) -> u32 {
        match self {
            SwarmError::NotFound(_) => 2,
            SwarmError::Invalid(_) => 3,
            SwarmError::WrongPhase { .. } => 4,
            SwarmError::CannotJoin(..) => 5,
            SwarmError::BadReport(_) => 6,
            SwarmError::InvalidAmount(_) => 7,
            SwarmError::InvalidAddress(_) => 8,
            SwarmError::EscrowMismatch(_) => 9,
            SwarmError::BadReveal(_) => 10,
            SwarmError::Tasks(e) => e.code(),
            SwarmError::Bank(e) => e.code(),
            SwarmError::Staking(e) => e.code(),
            SwarmError::State(e) => e.code(),
        }
    }
}

pub type Result<T> = std::result::Result<T, SwarmError>;

pub(crate) fn parse_addr(s: &str) -> Result<framework::Address> {
    s.parse()
        .map_err(|e: framework::AddressError| SwarmError::InvalidAddress(e.to_string()))
}

/// A decimal amount; empty is zero (fields absent from older records).
pub(crate) fn amount(s: &str) -> Result<framework::Amount> {
    if s.is_empty() {
        Ok(framework::Amount::ZERO)
    } else {
        Ok(framework::Amount::parse_coin(s)?)
    }
}
