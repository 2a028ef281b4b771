//! One file per message: check and execute against the state being written.
pub mod attest;
pub mod cancel;
pub mod claim;
pub mod commit;
pub mod post_checkpoint;
pub mod request_checkpoint;
pub mod reveal_seed;
pub mod submit;
