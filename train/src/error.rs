//! Error type of the `train` crate.

use thiserror::Error;

/// Everything that can go wrong building, loading or running a training program.
#[derive(Debug, Error)]
pub enum TrainError {
    /// An operator rejected its inputs.
    #[error("node {node} ({label}): {source}")]
    Op {
        node: usize,
        label: String,
        #[source]
        source: repops::RepOpsError,
    },
    /// The program spec is impossible or inconsistent.
    #[error("invalid program: {0}")]
    Program(String),
    /// A dataset file is malformed, or its content does not match its root.
    #[error("dataset: {0}")]
    Dataset(String),
    /// A checkpoint file is malformed, or does not match its state hash or program.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A backend failed to move a tensor between host and device memory.
    #[error("{0}")]
    Transfer(#[source] repops::RepOpsError),
    /// A node was given inputs that do not match its declaration.
    #[error("node {node}: {detail}")]
    NodeInputs { node: usize, detail: String },
    /// Training diverged: a state tensor holds NaN or infinity.
    #[error("step {step}: {detail}")]
    NonFinite { step: u64, detail: String },
    /// Steps must be run in order.
    #[error("step {requested} requested but the trainer is at step {current}")]
    StepOrder { requested: u64, current: u64 },
    /// I/O failure.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Result alias.
pub type Result<T> = std::result::Result<T, TrainError>;
