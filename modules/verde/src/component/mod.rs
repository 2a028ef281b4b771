//! The state machine: reads (public), crate-private writes that move bonds
//! and slash, one file per message handler, and the clocks.
pub mod end_block;
pub(crate) mod game;
pub mod handler;
pub(crate) mod inner;
pub mod state;
