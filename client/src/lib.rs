//! The client side of a Veritrain node, shared by the `veritraind` CLI, the
//! `solverd`/`verifierd` daemons and the tests: a gRPC [`NodeClient`]
//! (queries, signing, broadcasting, waiting for inclusion) and the file
//! [`keyring::Keyring`].
//!
//! It knows nothing of the ABCI application or of the state machine: it
//! speaks only the node's public gRPC API.

mod amount;
pub mod keyring;
mod node;

pub use amount::{parse_amount, AmountError};
pub use node::{ClientError, NodeClient};
