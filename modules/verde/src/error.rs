//! Verde errors. Codes are stable: never renumber, only append.
use bank::BankError;
use framework::{Amount, AmountError, ModuleError, StateError};
use staking::StakingError;
use tasks::TasksError;

use crate::MODULE;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerdeError {
    #[error("dispute {0} does not exist")]
    NotFound(u64),
    #[error("dispute {id} is in phase {phase}; this move belongs to another phase")]
    WrongPhase { id: u64, phase: &'static str },
    #[error("not your move: {0}")]
    NotYourMove(String),
    #[error("move deadline passed at height {deadline} (now {height})")]
    TooLate { deadline: u64, height: u64 },
    #[error("proof does not verify: {0}")]
    BadProof(String),
    #[error("invalid interval: {0}")]
    BadInterval(String),
    #[error("bond {got} is below the minimum {min}")]
    BondTooLow { got: Amount, min: Amount },
    #[error("invalid hash: {0}")]
    InvalidHash(String),
    #[error("upload rejected: {0}")]
    BadUpload(String),
    #[error("the solver cannot challenge its own task")]
    SelfChallenge,
    #[error("the referee cannot run this program: {0}")]
    Referee(String),
    #[error("invalid address: {0}")]
    InvalidAddress(String),
    #[error("invalid amount: {0}")]
    InvalidAmount(#[from] AmountError),
    #[error("escrow invariant broken: module holds {held}, open bonds are {owed}")]
    EscrowMismatch { held: Amount, owed: Amount },
    #[error(transparent)]
    Tasks(#[from] TasksError),
    #[error(transparent)]
    Bank(#[from] BankError),
    #[error(transparent)]
    Staking(#[from] StakingError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl ModuleError for VerdeError {
    fn codespace(&self) -> &'static str {
        match self {
            VerdeError::Tasks(e) => e.codespace(),
            VerdeError::Bank(e) => e.codespace(),
            VerdeError::Staking(e) => e.codespace(),
            VerdeError::State(e) => e.codespace(),
            _ => MODULE,
        }
    }
    fn code(&self) -> u32 {
        match self {
            VerdeError::NotFound(_) => 2,
            VerdeError::WrongPhase { .. } => 3,
            VerdeError::NotYourMove(_) => 4,
            VerdeError::TooLate { .. } => 5,
            VerdeError::BadProof(_) => 6,
            VerdeError::BadInterval(_) => 7,
            VerdeError::BondTooLow { .. } => 8,
            VerdeError::InvalidHash(_) => 9,
            VerdeError::BadUpload(_) => 10,
            VerdeError::SelfChallenge => 11,
            VerdeError::Referee(_) => 12,
            VerdeError::InvalidAddress(_) => 13,
            VerdeError::InvalidAmount(_) => 14,
            VerdeError::EscrowMismatch { .. } => 15,
            VerdeError::Tasks(e) => e.code(),
            VerdeError::Bank(e) => e.code(),
            VerdeError::Staking(e) => e.code(),
            VerdeError::State(e) => e.code(),
        }
    }
}

pub type Result<T> = std::result::Result<T, VerdeError>;

pub(crate) fn parse_addr(s: &str) -> Result<framework::Address> {
    s.parse()
        .map_err(|e: framework::AddressError| VerdeError::InvalidAddress(e.to_string()))
}

pub(crate) fn h32(b: &[u8], what: &str) -> Result<train::Hash> {
    <[u8; 32]>::try_from(b)
        .map_err(|_| VerdeError::InvalidHash(format!("{what} is {} bytes, expected 32", b.len())))
}
