//! The state machine: reads (public), writes (crate-private), one file per
//! message handler, and the round's progress (`round.rs`) driven by the
//! end-block hook.
pub mod end_block;
pub mod handler;
pub mod round;
pub mod state;
