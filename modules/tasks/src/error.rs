//! Tasks errors. Codes are stable: never renumber, only append.
use bank::BankError;
use framework::{Amount, AmountError, ModuleError, StateError};
use staking::StakingError;

use crate::MODULE;

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
    #[error("the program's {what} is {got}, the limit is {max}")]
    ProgramTooBig {
        what: &'static str,
        got: u64,
        max: u64,
    },
    #[error("attestation evidence rejected: {0}")]
    BadEvidence(String),
    #[error("solver {solver} has bonded stake {stake}; {claims} open claim(s) plus this one need {needed}")]
    StakeTooLow {
        solver: String,
        stake: Amount,
        claims: u64,
        needed: Amount,
    },
    #[error("invalid verification level: {0}")]
    InvalidLevel(String),
    #[error("seed reveal rejected: {0}")]
    BadSeed(String),
    #[error("checkpoint request or post rejected: {0}")]
    BadCheckpoint(String),
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
            TasksError::ProgramTooBig { .. } => 17,
            TasksError::BadEvidence(_) => 18,
            TasksError::StakeTooLow { .. } => 19,
            TasksError::InvalidLevel(_) => 20,
            TasksError::BadSeed(_) => 21,
            TasksError::BadCheckpoint(_) => 22,
            TasksError::Bank(e) => e.code(),
            TasksError::Staking(e) => e.code(),
            TasksError::State(e) => e.code(),
        }
    }
}

pub type Result<T> = std::result::Result<T, TasksError>;

pub(crate) fn parse_addr(s: &str) -> Result<framework::Address> {
    s.parse()
        .map_err(|e: framework::AddressError| TasksError::InvalidAddress(e.to_string()))
}

pub(crate) fn hash32(b: &[u8], what: &str) -> Result<[u8; 32]> {
    <[u8; 32]>::try_from(b)
        .map_err(|_| TasksError::InvalidHash(format!("{what} is {} bytes, expected 32", b.len())))
}

/// A decimal amount where empty means `default` (fields absent from older
/// records and genesis files).
pub(crate) fn amount_or(s: &str, default: framework::Amount) -> Result<framework::Amount> {
    if s.is_empty() {
        Ok(default)
    } else {
        Ok(framework::Amount::parse_coin(s)?)
    }
}
