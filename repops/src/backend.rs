//! The backend abstraction: anything that can run a RepOps op with the CPU reference's
//! bits, on tensors that stay in the backend's own memory between ops.
//!
//! A backend moves tensors in ([`Backend::upload`]), runs ops on them
//! ([`Backend::execute`]) and moves results out ([`Backend::download`]); a step of
//! training keeps its tensors on the device and downloads only what it must hash or
//! keep. This is candle's `Storage` split, made object safe so callers hold an
//! `Arc<dyn Backend>`: a [`DeviceTensor`] is a shape plus either a host [`Tensor`] (the
//! CPU backend: no copies, [`Tensor`] clones share their data) or an opaque buffer that
//! only the backend that made it can read.

use crate::error::{RepOpsError, Result};
use crate::ops::Op;
use crate::tensor::{numel, Tensor};
use std::any::Any;
use std::sync::Arc;

/// Where a [`DeviceTensor`]'s elements live.
#[derive(Clone)]
enum Storage {
    /// Host memory (the CPU backend's tensors).
    Host(Tensor),
    /// A buffer of the backend named `backend` (downcast by that backend).
    Device {
        backend: Arc<str>,
        buf: Arc<dyn Any + Send + Sync>,
    },
}

/// A tensor as a backend holds it: its shape, and its elements in host memory or in a
/// buffer of the backend that produced it. Clones share the elements.
#[derive(Clone)]
pub struct DeviceTensor {
    shape: Vec<usize>,
    storage: Storage,
}

impl std::fmt::Debug for DeviceTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.storage {
            Storage::Host(t) => write!(f, "DeviceTensor(host){:?}", t),
            Storage::Device { backend, .. } => {
                write!(f, "DeviceTensor({backend}){:?}", self.shape)
            }
        }
    }
}

impl DeviceTensor {
    /// A host tensor, as the CPU backend holds it (no copy).
    pub fn host(t: Tensor) -> Self {
        DeviceTensor {
            shape: t.shape().to_vec(),
            storage: Storage::Host(t),
        }
    }

    /// A buffer of backend `backend` holding a tensor of `shape`. Only that backend
    /// reads it back ([`DeviceTensor::buffer`]).
    pub fn device(backend: &str, shape: Vec<usize>, buf: Arc<dyn Any + Send + Sync>) -> Self {
        DeviceTensor {
            shape,
            storage: Storage::Device {
                backend: backend.into(),
                buf,
            },
        }
    }

    /// Dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        numel(&self.shape).unwrap_or(0)
    }

    /// True if the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The host tensor, if the elements are in host memory.
    pub fn as_host(&self) -> Option<&Tensor> {
        match &self.storage {
            Storage::Host(t) => Some(t),
            Storage::Device { .. } => None,
        }
    }

    /// The backend buffer, if it is one of type `B`.
    pub fn buffer<B: Any>(&self) -> Option<&B> {
        match &self.storage {
            Storage::Host(_) => None,
            Storage::Device { buf, .. } => (**buf).downcast_ref::<B>(),
        }
    }

    /// The name of the backend whose buffer holds the elements (`None`: host memory).
    pub fn device_name(&self) -> Option<&str> {
        match &self.storage {
            Storage::Host(_) => None,
            Storage::Device { backend, .. } => Some(backend),
        }
    }

    /// The same elements under another shape with the same element count (no copy).
    pub fn reshaped(&self, shape: &[usize]) -> Result<Self> {
        if numel(shape) != Some(self.len()) {
            return Err(RepOpsError::Shape {
                op: "reshape",
                detail: format!("cannot view {:?} as {:?}", self.shape, shape),
            });
        }
        Ok(DeviceTensor {
            shape: shape.to_vec(),
            storage: match &self.storage {
                Storage::Host(t) => Storage::Host(t.clone().reshape(shape)?),
                s @ Storage::Device { .. } => s.clone(),
            },
        })
    }

    /// The host tensor, or an error naming `backend` (for a backend that only reads
    /// host memory, handed another backend's buffer).
    pub fn host_for(&self, backend: &str) -> Result<&Tensor> {
        self.as_host().ok_or_else(|| RepOpsError::Device {
            backend: backend.to_string(),
            detail: format!(
                "tensor {:?} is in {}'s memory, not the host's",
                self.shape,
                self.device_name().unwrap_or("another backend")
            ),
        })
    }
}

/// What a step needs to know of a tensor it does not download: its R6 hash and whether
/// every element is finite (a state with a NaN or an infinity is refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest {
    /// [`crate::tensor_hash`] of the tensor.
    pub hash: [u8; 32],
    /// No NaN and no infinity among the elements.
    pub finite: bool,
}

impl Digest {
    /// The digest of a host tensor (the reference every backend's digests must equal).
    pub fn of(t: &Tensor) -> Digest {
        Digest {
            hash: crate::tensor_hash(t),
            finite: t.data().iter().all(|v| v.is_finite()),
        }
    }
}

/// A device that executes RepOps operators on its own tensors.
///
/// Implementations must return, for every op and every input, exactly the bits of
/// [`CpuBackend`] (checked by the conformance suite, [`crate::conformance`]). The trait
/// is object safe so callers can hold an `Arc<dyn Backend>`.
pub trait Backend: Send + Sync {
    /// Short name for logs ("cpu", "cuda:0").
    fn name(&self) -> &str;
    /// Place a host tensor in the backend's memory.
    fn upload(&self, t: &Tensor) -> Result<DeviceTensor>;
    /// Run one op on tensors of this backend (uploaded or produced by it); the output
    /// stays in the backend's memory.
    fn execute(&self, op: &Op, inputs: &[&DeviceTensor]) -> Result<DeviceTensor>;
    /// A tensor of this backend in host memory, NaNs canonical (R1).
    fn download(&self, t: &DeviceTensor) -> Result<Tensor>;

    /// Free memory of the device in bytes, when the backend can tell (the CPU
    /// cannot: `None`). A solver compares it with a program's planned peak
    /// before claiming a task.
    fn free_memory(&self) -> Option<u64> {
        None
    }

    /// Bytes moved so far `(host to device, device to host)`, when the backend's
    /// tensors live across a bus (`None` for the CPU: nothing moves).
    fn bytes_moved(&self) -> Option<(u64, u64)> {
        None
    }

    /// Whether [`Backend::digests`] runs where the tensors live, without downloading
    /// them. The step executor then asks it for the hashes of outputs it does not
    /// need on the host (a step's new state, the op trace) instead of downloading them.
    fn digests_on_device(&self) -> bool {
        false
    }

    /// The R6 hash ([`crate::tensor_hash`]) of each tensor and whether all its elements
    /// are finite. The default downloads each tensor and hashes it on the host; a
    /// backend that overrides it must give the same bits.
    fn digests(&self, ts: &[&DeviceTensor]) -> Result<Vec<Digest>> {
        ts.iter()
            .map(|t| self.download(t).map(|h| Digest::of(&h)))
            .collect()
    }

    /// Host in, host out: upload the inputs, run `op`, download the output.
    fn execute_host(&self, op: &Op, inputs: &[&Tensor]) -> Result<Tensor> {
        let ins = inputs
            .iter()
            .map(|t| self.upload(t))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&DeviceTensor> = ins.iter().collect();
        let out = self.execute(op, &refs)?;
        self.download(&out)
    }
}

/// The CPU reference backend: packed SIMD GEMM, rayon over the current thread pool.
/// Use `rayon::ThreadPool::install` to choose the thread count; bits do not depend on it.
/// Its device tensors are host tensors: upload and download share the data.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend;

impl Backend for CpuBackend {
    fn name(&self) -> &str {
        "cpu"
    }
    fn upload(&self, t: &Tensor) -> Result<DeviceTensor> {
        Ok(DeviceTensor::host(t.clone()))
    }
    fn execute(&self, op: &Op, inputs: &[&DeviceTensor]) -> Result<DeviceTensor> {
        let ins = inputs
            .iter()
            .map(|t| t.host_for(self.name()))
            .collect::<Result<Vec<_>>>()?;
        op.execute(&ins).map(DeviceTensor::host)
    }
    fn download(&self, t: &DeviceTensor) -> Result<Tensor> {
        t.host_for(self.name()).cloned()
    }
    fn execute_host(&self, op: &Op, inputs: &[&Tensor]) -> Result<Tensor> {
        op.execute(inputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_backend_shares_host_memory_instead_of_copying() {
        let t = Tensor::new(vec![2, 2], vec![1.0, -2.0, 3.0, f32::NAN]).unwrap();
        let d = CpuBackend.upload(&t).unwrap();
        assert!(std::ptr::eq(d.as_host().unwrap().data(), t.data()));
        let y = CpuBackend.execute(&Op::Relu, &[&d]).unwrap();
        let back = CpuBackend.download(&y).unwrap();
        assert!(std::ptr::eq(back.data(), y.as_host().unwrap().data()));
        let direct = CpuBackend.execute_host(&Op::Relu, &[&t]).unwrap();
        assert_eq!(back.hash(), direct.hash());
    }

    #[test]
    fn a_foreign_buffer_is_an_error_not_a_panic() {
        let d = DeviceTensor::device("gpu", vec![3], Arc::new(vec![0u8; 12]));
        assert!(d.buffer::<Vec<u8>>().is_some());
        assert!(d.buffer::<String>().is_none());
        let e = CpuBackend.execute(&Op::Relu, &[&d]).unwrap_err();
        assert!(e.to_string().contains("gpu's memory"), "{e}");
        assert!(CpuBackend.download(&d).is_err());
        assert_eq!(d.reshaped(&[1, 3]).unwrap().shape(), &[1, 3]);
        assert!(d.reshaped(&[2]).is_err());
    }
}
