//! The backend abstraction: anything that can run a RepOps op with the CPU reference's bits.

use crate::error::Result;
use crate::ops::Op;
use crate::tensor::Tensor;

/// A device that executes RepOps operators on host tensors, op by op.
///
/// Implementations must return, for every op and every input, exactly the bits of
/// [`CpuBackend`] (checked by the golden-vector conformance suite). The trait is object
/// safe so callers can hold a `Box<dyn Backend>`.
pub trait Backend: Send + Sync {
    /// Short name for logs ("cpu", "cuda:0").
    fn name(&self) -> &str;
    /// Run one op.
    fn execute(&self, op: &Op, inputs: &[&Tensor]) -> Result<Tensor>;
}

/// The CPU reference backend: packed SIMD GEMM, rayon over the current thread pool.
/// Use `rayon::ThreadPool::install` to choose the thread count; bits do not depend on it.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend;

impl Backend for CpuBackend {
    fn name(&self) -> &str {
        "cpu"
    }
    fn execute(&self, op: &Op, inputs: &[&Tensor]) -> Result<Tensor> {
        op.execute(inputs)
    }
}
