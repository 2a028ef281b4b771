use framework::{ModuleError, StateError};

/// Errors of the auth module and the transaction ante checks. Codes are stable:
/// never renumber, only append.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("transaction does not decode: {0}")]
    TxDecode(String),
    #[error("signature does not verify: {0}")]
    InvalidSignature(String),
    #[error("wrong chain id: transaction is for {got:?}, this chain is {expected:?}")]
    WrongChainId { expected: String, got: String },
    #[error("wrong sequence: account sequence is {expected}, transaction has {got}")]
    WrongSequence { expected: u64, got: u64 },
    #[error("fee too low: minimum is {min}, transaction pays {got}")]
    InsufficientFee { min: String, got: String },
    #[error("unknown account {0}: it must receive funds before it can sign")]
    UnknownAccount(String),
    #[error("invalid public key: {0}")]
    InvalidPublicKey(String),
    #[error("memo is {got} characters, the limit is {max}")]
    MemoTooLong { max: u64, got: u64 },
    #[error("transaction is {got} bytes, the limit is {max}")]
    TxTooLarge { max: u64, got: u64 },
    #[error("transaction has {got} messages, the limit is {max}")]
    TooManyMessages { max: u64, got: u64 },
    #[error("transaction has no messages")]
    NoMessages,
    #[error("message signer {msg_signer} is not the transaction signer {tx_signer}")]
    SignerMismatch {
        msg_signer: String,
        tx_signer: String,
    },
    #[error("transaction timed out at height {timeout}, block is {height}")]
    TimedOut { timeout: u64, height: u64 },
    #[error("invalid address: {0}")]
    InvalidAddress(String),
    #[error("invalid params: {0}")]
    InvalidParams(String),
    #[error("invalid genesis: {0}")]
    InvalidGenesis(String),
    #[error("account numbers exhausted")]
    AccountNumbersExhausted,
    #[error("sequence exhausted")]
    SequenceExhausted,
    #[error("unknown message type {0:?}")]
    UnknownMessage(String),
    #[error(transparent)]
    State(#[from] StateError),
}

impl ModuleError for AuthError {
    fn codespace(&self) -> &'static str {
        match self {
            AuthError::State(e) => e.codespace(),
            _ => crate::MODULE,
        }
    }

    fn code(&self) -> u32 {
        match self {
            AuthError::TxDecode(_) => 2,
            AuthError::InvalidSignature(_) => 3,
            AuthError::WrongChainId { .. } => 4,
            AuthError::WrongSequence { .. } => 5,
            AuthError::InsufficientFee { .. } => 6,
            AuthError::UnknownAccount(_) => 7,
            AuthError::InvalidPublicKey(_) => 8,
            AuthError::MemoTooLong { .. } => 9,
            AuthError::TxTooLarge { .. } => 10,
            AuthError::TooManyMessages { .. } => 11,
            AuthError::NoMessages => 12,
            AuthError::SignerMismatch { .. } => 13,
            AuthError::TimedOut { .. } => 14,
            AuthError::InvalidAddress(_) => 15,
            AuthError::InvalidParams(_) => 16,
            AuthError::InvalidGenesis(_) => 17,
            AuthError::AccountNumbersExhausted => 18,
            AuthError::SequenceExhausted => 19,
            AuthError::UnknownMessage(_) => 20,
            AuthError::State(e) => e.code(),
        }
    }
}
