//! One file per message: check and execute against the state being written.
pub mod open;
pub mod post_op_root;
pub mod prove_assembly;
pub mod prove_slice;
pub mod respond;
pub mod reveal_children;
pub mod reveal_mid;
pub mod reveal_output;
pub mod reveal_partial;
pub mod upload_input;
pub mod upload_rows;
