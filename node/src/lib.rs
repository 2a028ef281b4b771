//! The Veritrain node: the ABCI application ([`abci::App`]), its sled/JMT
//! store, message execution, genesis, replay, the embedded dev chain that
//! drives the same application in CometBFT 0.38's call order, the node's
//! gRPC services and the explorer. No daemons and no CUDA: `cargo tree -p
//! veritrain-node` has neither solverd, verifierd nor cudarc. The
//! `veritraind` command line (crate `app`) is built on it.
//!
//! Consensus logic is in [`exec`] and the modules; everything else here is
//! plumbing that must not change what a block does.

pub mod abci;
pub mod devchain;
pub mod exec;
pub mod explorer;
pub mod genesis;
pub mod grpc;
pub mod home;
pub mod query;
pub mod replay;
pub mod service;
pub mod store;
pub mod testkit;

pub use abci::App;

/// The message set and its failure type live in `runtime` (shared with the module tests).
pub use runtime::{error, msg};
