//! RepOps: reproducible f32 operators, the bit-level CPU reference of Veritrain.
//!
//! Every operator a transformer's training step needs (forward, backward and optimizer
//! update as explicit ops) with one exactly specified evaluation order, so that any
//! honest machine gets the same bits: see `repops/SPEC.md` and the contract
//! `shared/spec/repops.md` (R1-R7). Elementary functions are our own ([`math`]),
//! reductions follow the 32-lane order ([`reduce`]), matrix products the ascending fma
//! fold ([`matmul`]), randomness is Philox ([`philox`]), hashes are R6 ([`tensor_hash`]).
//!
//! Other devices implement [`Backend`] (upload, execute, download over a
//! [`DeviceTensor`]); the CPU reference is [`CpuBackend`], whose device tensors are host
//! tensors.
//!
//! This crate must not depend on anything chain-related (no tendermint, no prost, no
//! tokio), on any platform libm for elementary functions, or on any BLAS; it is pure
//! computation on host memory. `unsafe` appears only in [`matmul`] for SIMD intrinsics.

pub mod backend;
pub mod conformance;
pub mod error;
pub mod golden;
pub mod math;
pub mod matmul;
pub mod ops;
pub mod philox;
pub mod reduce;
pub mod slice;
pub mod tensor;
pub mod tile;

pub use backend::{Backend, CpuBackend, DeviceTensor, Digest};
pub use error::{RepOpsError, Result};
pub use ops::{MaskFill, Op, OP_VERSION};
pub use philox::Philox;
pub use tensor::{tensor_hash, Tensor};
