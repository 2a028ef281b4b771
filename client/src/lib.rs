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

/// A page of the task list: tasks with `status` (0: any) after id `after`
/// (0: from the start), at most `limit` (0: the node's default).
pub fn tasks_page(status: i32, after: u64, limit: u64) -> proto::tasks::v1::QueryTasksRequest {
    proto::tasks::v1::QueryTasksRequest {
        status,
        pagination: Some(proto::base::v1::PageRequest {
            key: if after == 0 {
                vec![]
            } else {
                after.to_be_bytes().to_vec()
            },
            limit,
        }),
    }
}
