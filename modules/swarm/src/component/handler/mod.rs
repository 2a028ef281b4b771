//! One file per message: check and execute against the state being written.
pub mod create;
pub mod join;
pub mod report_loss;
pub mod reveal_seed;
