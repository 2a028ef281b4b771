//! The state machine: reads (public), writes that guard the escrow
//! (crate-private), one file per message handler, the end-block hook, and the
//! narrow interface `verde` uses.
pub mod dispute;
pub mod end_block;
pub mod handler;
pub mod state;
