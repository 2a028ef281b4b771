//! Error type of the RepOps crate.

use thiserror::Error;

/// Everything that can go wrong when an operator is asked to run.
///
/// Operators never panic on bad input: shapes, parameters and values coming from
/// outside (a program, a dispute reveal, a dataset) are checked and reported here.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum RepOpsError {
    /// The tensor data length does not match the product of its dimensions.
    #[error("tensor data has {got} elements but shape {shape:?} needs {want}")]
    DataLength {
        shape: Vec<usize>,
        want: usize,
        got: usize,
    },
    /// Input shapes do not satisfy the operator's shape rule.
    #[error("{op}: shape mismatch: {detail}")]
    Shape { op: &'static str, detail: String },
    /// Wrong number of inputs for an operator.
    #[error("{op}: expected {want} inputs, got {got}")]
    Arity {
        op: &'static str,
        want: usize,
        got: usize,
    },
    /// A parameter of the operator is invalid (e.g. zero dimension, bad permutation).
    #[error("{op}: invalid parameter: {detail}")]
    Param { op: &'static str, detail: String },
    /// An index input (embedding id, class label) is not an integer in range.
    #[error("{op}: index {value} at position {pos} is not an integer in 0..{limit}")]
    Index {
        op: &'static str,
        pos: usize,
        value: f32,
        limit: usize,
    },
    /// A value that must be finite is NaN or infinite.
    #[error("{what}: non-finite value {value} at element {pos}")]
    NonFinite {
        what: String,
        pos: usize,
        value: f32,
    },
    /// A backend other than the CPU reference failed to run an op (device error, driver
    /// or compiler missing). Never a statement about the op's inputs.
    #[error("{backend}: {detail}")]
    Device { backend: String, detail: String },
    /// The op version requested is not implemented by this build.
    #[error("{op}: version {version} is not supported (this build implements v{supported})")]
    Version {
        op: &'static str,
        version: u32,
        supported: u32,
    },
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, RepOpsError>;
