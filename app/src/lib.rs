//! `veritraind`: the command line by module ([`cli`]), the testnet
//! generator, the demo, the in-process cluster used by tests and the job
//! follower, around the node (crate `veritrain-node`, lib `node`), which
//! holds everything consensus runs and nothing of the daemons.

pub mod cli;
pub mod cluster;
pub mod demo;
pub mod follow;
pub mod swarm_demo;
pub mod testnet;

/// The node's start functions (`app::node::start_dev`, ...).
pub use ::node::service as node;
/// The node's parts under their old paths (`app::abci`, `app::store`, ...).
pub use ::node::{
    abci, devchain, error, exec, explorer, genesis, grpc, home, msg, query, replay, store, testkit,
    App,
};

/// The node client and keyring live in their own crate so the daemons can use
/// them without the state machine; re-exported under their old paths.
pub use ::client::{self as client, keyring};
