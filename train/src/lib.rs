//! Veritrain training programs: what one training step is, as an ordered list of RepOps
//! nodes, and an offline trainer that runs them.
//!
//! A [`Program`] expands into the node list of one step ([`Program::nodes`]); solver,
//! verifier and the on-chain referee build the same list from this code. A step runs
//! through one executor, [`StepExecutor`] (the trainer's, and the daemons' with fault
//! injection as a [`StepHook`]), and the referee runs a single node with
//! [`execute_node`]. Datasets are content-addressed
//! ([`Dataset`], Merkle root over row chunks), state is hashed per R6 ([`state_hash`]),
//! and [`merkle`] provides the roots and proofs the dispute game checks.
//!
//! This crate must not depend on chain crates (tendermint, prost, tokio) or on any
//! floating-point code outside `repops`: every float it computes goes through a RepOps
//! op, except report-only figures (accuracy, unigram entropy) which never reach a hash.

pub mod checkpoint;
pub mod conformance;
pub mod dataset;
pub mod error;
pub mod exec;
pub mod merkle;
pub mod onnx;
pub mod program;
pub mod step;
pub mod trainer;

pub use dataset::{Dataset, RowProof};
pub use error::{Result, TrainError};
pub use exec::{execute_node, execute_node_device, execute_node_on, state_hash};
pub use merkle::Hash;
pub use program::{Cost, Input, Node, Program, StateRef, StepGraph, TileCost};
pub use step::{DeviceState, Honest, Record, StepExecutor, StepHook, StepOutput};
pub use trainer::{
    batch_for_step, batch_from_rows, batch_rows, Evaluation, StepResult, TracedStep, Trainer,
};
