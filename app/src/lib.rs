//! The Veritrain node: the ABCI application ([`abci::App`]), its sled/JMT
//! store, the embedded dev chain that drives the same application in
//! CometBFT 0.38's call order, the node's gRPC services and the `veritraind`
//! command line.
//!
//! Consensus logic is in [`exec`] and the modules; everything else here is
//! plumbing that must not change what a block does.

pub mod abci;
pub mod cli;
pub mod cluster;
pub mod demo;
pub mod devchain;
pub mod exec;
pub mod explorer;
pub mod follow;
pub mod genesis;
pub mod grpc;
pub mod home;
pub mod node;
pub mod query;
pub mod replay;
pub mod store;
pub mod testkit;
pub mod testnet;

/// The node client and keyring live in their own crate so the daemons can use
/// them without the state machine; re-exported under their old paths.
pub use ::client::{self as client, keyring};
pub use abci::App;

/// The message set and its failure type live in `runtime` (shared with the module tests).
pub use runtime::{error, msg};
