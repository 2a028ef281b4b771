//! The module framework of the Veritrain chain: what every module under
//! `modules/` is written against.
//!
//! - [`StateRead`] / [`StateWrite`]: the only way a module touches state, as raw
//!   bytes under keys that each module builds in its own `state_key.rs`.
//!   Modules add typed extension traits on top (`BankRead`, `StakingWrite`, …).
//! - [`Delta`] and [`Layered`]: copy-on-write overlays, so a transaction's writes
//!   can be dropped when it fails and a block's writes committed atomically.
//! - [`Event`] and [`TypedEvent`]: typed events, turned into ABCI events by the app.
//! - [`ModuleError`]: numbered error codes per codespace.
//! - [`Amount`] and [`Address`]: checked integer money and bech32 addresses.
//! - [`BlockCtx`]: height, time and chain id, taken only from the block header.
//!
//! This crate must not depend on ABCI, tonic, sled or any floating point: it is
//! consensus code.

// Consensus code never panics: no unwrap/expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod address;
mod amount;
mod event;
mod queue;
mod state;

pub use address::{Address, AddressError, ADDRESS_PREFIX};
pub use amount::{Amount, AmountError, DENOM};
pub use event::{Event, TypedEvent};
pub use queue::{queue_key, take_due, DueEntry};
pub use state::{
    Delta, KvPairs, Layered, MemState, StateError, StateRead, StateReadExt, StateWrite,
    StateWriteExt,
};

/// The facts about the current block that consensus code may use. Time comes
/// only from the block header, never from the local clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockCtx {
    pub height: u64,
    /// Block time, Unix milliseconds (from the header).
    pub time_ms: i64,
    pub chain_id: String,
    /// The block's hash from the header: public randomness that nobody knew
    /// before the block was proposed (verifier selection draws from it).
    pub block_hash: [u8; 32],
}

/// A failed message or hook: a stable `(codespace, code)` pair and a readable log.
///
/// Codes are numbered explicitly in each module's error enum and are never
/// renumbered; `code` 0 is reserved for success.
pub trait ModuleError: std::error::Error {
    fn codespace(&self) -> &'static str;
    fn code(&self) -> u32;
}

/// Errors every module may produce from its state access.
impl ModuleError for StateError {
    fn codespace(&self) -> &'static str {
        "state"
    }
    fn code(&self) -> u32 {
        1
    }
}
