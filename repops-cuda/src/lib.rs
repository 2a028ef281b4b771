//! repops-cuda: the CUDA backend of RepOps, with the CPU reference's bits.
//!
//! [`CudaBackend`] implements [`repops::Backend`]: every op of `repops::Op` runs as a
//! kernel from `repops-cuda/kernels/*.cu`, compiled at run time by NVRTC with
//! `--fmad=false --prec-div=true --prec-sqrt=true --ftz=false` (cached per GPU
//! architecture). The kernels are line-by-line ports of the CPU reference: the R4
//! functions of `repops/src/math.rs`, the R3 32-lane reduction order as one warp and a
//! shuffle-down tree, and an R2 tiled GEMM in which each thread walks K in order with
//! one fma per step. [`ptx`] is the audit that proves from the PTX that no approximate,
//! flush-to-zero, tensor-core or compiler-invented fused instruction is in any kernel.
//!
//! cudarc loads `libcuda` and `libnvrtc` dynamically, so building needs no CUDA. It
//! panics on the first call into a library it cannot open; this crate probes for them
//! first ([`probe`]) and returns [`Error`] instead. [`select_backend`] picks CPU or CUDA
//! at run time (`auto|cpu|cuda`).
//!
//! Consensus code (`modules/*`, `app`) and `train` must not depend on this crate: the
//! referee always runs the CPU reference, and `train` takes any `Arc<dyn Backend>`.

mod backend;
#[cfg(test)]
mod emu;
mod exec;
pub mod kernels;
pub mod parity;
pub mod probe;
pub mod ptx;
mod select;

pub use backend::CudaBackend;
pub use exec::{gemm_choice, GemmKernel, GEMM_KERNELS, GEMM_PRODUCTION};
pub use select::{select_backend, BackendKind, Selected};

/// Environment variable: when set to `1`, a test that needs NVRTC fails instead of
/// skipping when NVRTC cannot be loaded (CI sets it where it installed NVRTC).
pub const REQUIRE_NVRTC_ENV: &str = "REPOPS_REQUIRE_NVRTC";

/// Everything that can keep the CUDA backend from running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `libnvrtc` (e.g. `libnvrtc.so.13`) could not be opened.
    #[error(
        "NVRTC (libnvrtc.so.13) cannot be loaded: install the CUDA 13 runtime compiler \
         (e.g. `pip install nvidia-cuda-nvrtc`) and put its lib directory on LD_LIBRARY_PATH"
    )]
    NvrtcMissing,
    /// The CUDA driver library `libcuda.so.1` could not be opened.
    #[error("the CUDA driver (libcuda.so.1) cannot be loaded: no NVIDIA driver on this machine")]
    DriverMissing,
    /// The driver loaded but there is no usable device.
    #[error("no usable CUDA device {ordinal}: {detail}")]
    NoDevice { ordinal: usize, detail: String },
    /// NVRTC rejected a kernel module.
    #[error("NVRTC failed to compile {module}: {detail}")]
    Compile {
        module: &'static str,
        detail: String,
    },
    /// The PTX compiled for the device failed the audit (`ptx`): it is not loaded.
    #[error("the PTX for {arch} fails the IEEE audit:\n{violations}")]
    Audit { arch: String, violations: String },
    /// A driver call failed.
    #[error("CUDA driver: {0}")]
    Driver(String),
    /// `--backend` named something other than `auto`, `cpu` or `cuda`.
    #[error("unknown backend {0:?}: expected auto, cpu or cuda")]
    UnknownBackend(String),
    /// A lock was poisoned by a panic in another thread.
    #[error("internal lock poisoned")]
    Poisoned,
}

/// The message of a caught panic payload.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

impl From<cudarc::driver::DriverError> for Error {
    fn from(e: cudarc::driver::DriverError) -> Self {
        Error::Driver(e.to_string())
    }
}
