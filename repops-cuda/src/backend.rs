//! [`CudaBackend`]: `repops::Backend` on one CUDA device.
//!
//! Tensors live in device memory ([`repops::DeviceTensor`] holding an `exec::Resident`
//! buffer): `upload` copies a host tensor up once, `execute` checks the op exactly as the
//! CPU reference does (`Op::output_shape` and `Op::check_params`, and index inputs with
//! `repops::ops::index`), runs its kernels on the device's stream and canonicalises the
//! output's NaNs (R1) there, and only `download` copies back (`exec.rs`, shared with the
//! host emulation the unit tests run). [`CudaBackend::transfers`] counts the bytes moved.

// Kernel launches are `unsafe` in cudarc: the argument list must match the kernel's
// parameters. `exec.rs` builds every argument list from the `.cu` signature it names,
// and the host emulation (`emu/emu.cpp`) checks the count of every launch in the tests.
#![allow(unsafe_code)]

use crate::exec::{self, Arg, Device, TransferCounter, Transfers, R};
use crate::kernels::{self, MODULES};
use crate::{probe, Error};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;
use repops::{Backend, DeviceTensor, Op, Tensor};
use std::collections::HashMap;
use std::sync::Arc;

/// Oldest driver API (CUDA 13.0) the bindings are built for (`cuda-13000`).
const MIN_DRIVER_CUDA: i32 = 13_000;

/// The loaded kernels on one context's stream.
struct Gpu {
    name: String,
    stream: Arc<CudaStream>,
    funcs: HashMap<&'static str, CudaFunction>,
    sm_count: u32,
    transfers: TransferCounter,
}

impl Device for Gpu {
    type Buf = CudaSlice<u8>;

    fn label(&self) -> &str {
        &self.name
    }

    fn upload(&self, bytes: &[u8]) -> R<CudaSlice<u8>> {
        self.stream.clone_htod(bytes).map_err(|e| self.err(e))
    }

    fn zeros(&self, nbytes: usize) -> R<CudaSlice<u8>> {
        self.stream
            .alloc_zeros::<u8>(nbytes.max(1))
            .map_err(|e| self.err(e))
    }

    fn download(&self, b: &CudaSlice<u8>) -> R<Vec<u8>> {
        self.stream.clone_dtoh(b).map_err(|e| self.err(e))
    }

    fn copy_into(
        &self,
        src: &CudaSlice<u8>,
        dst: &mut CudaSlice<u8>,
        offset: usize,
        bytes: usize,
    ) -> R<()> {
        if src.len() < bytes || dst.len() < offset + bytes {
            return Err(self.err("copy_into out of bounds"));
        }
        let s = src.slice(0..bytes);
        let mut d = dst.slice_mut(offset..offset + bytes);
        self.stream.memcpy_dtod(&s, &mut d).map_err(|e| self.err(e))
    }

    fn launch(
        &self,
        kernel: &str,
        cfg: LaunchConfig,
        args: &mut [Arg<'_, CudaSlice<u8>>],
    ) -> R<()> {
        let f = self
            .funcs
            .get(kernel)
            .ok_or_else(|| self.err(format!("kernel {kernel} is not loaded")))?;
        let mut b = self.stream.launch_builder(f);
        for a in args.iter_mut() {
            match a {
                Arg::In(buf) => b.arg(*buf),
                Arg::Out(buf) => b.arg(&mut **buf),
                Arg::U64(v) => b.arg(&*v),
                Arg::I32(v) => b.arg(&*v),
                Arg::U32(v) => b.arg(&*v),
                Arg::F32(v) => b.arg(&*v),
            };
        }
        // SAFETY: `args` is the kernel's parameter list in order and with its types
        // (pointers as device buffers, u64/int/u32/float by value), as built in exec.rs
        // from the `.cu` signatures; buffers are sized for every index the kernel forms.
        unsafe { b.launch(cfg) }.map_err(|e| self.err(e))?;
        Ok(())
    }

    fn sm_count(&self) -> u32 {
        self.sm_count
    }

    fn transfers(&self) -> &TransferCounter {
        &self.transfers
    }
}

/// The RepOps backend on CUDA device `ordinal`.
pub struct CudaBackend {
    gpu: Gpu,
    device: String,
    arch: String,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("name", &self.gpu.name)
            .field("device", &self.device)
            .field("arch", &self.arch)
            .finish()
    }
}

impl CudaBackend {
    /// Open device `ordinal`, compile (or take from the per-architecture cache) every
    /// kernel module and load it. Errors, never panics, when the driver, NVRTC or the
    /// device is missing.
    pub fn new(ordinal: usize) -> Result<Self, Error> {
        // Belt and braces: a cudarc panic (e.g. a symbol a driver lacks) becomes an error.
        std::panic::catch_unwind(|| Self::open(ordinal)).unwrap_or_else(|p| {
            Err(Error::Driver(format!(
                "the CUDA bindings panicked: {}",
                crate::panic_message(&p)
            )))
        })
    }

    fn open(ordinal: usize) -> Result<Self, Error> {
        if !probe::driver_available() {
            return Err(Error::DriverMissing);
        }
        if !probe::nvrtc_available() {
            return Err(Error::NvrtcMissing);
        }
        // cudarc's CUDA 13 bindings look symbols up lazily and panic on one an older
        // driver lacks: refuse such a driver up front.
        match probe::driver_version() {
            Some(v) if v >= MIN_DRIVER_CUDA => {}
            Some(v) => {
                return Err(Error::Driver(format!(
                    "the driver supports CUDA {}.{}; this backend needs CUDA 13.0 or newer",
                    v / 1000,
                    (v % 1000) / 10
                )))
            }
            None => return Err(Error::Driver("cuDriverGetVersion failed".into())),
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| Error::NoDevice {
            ordinal,
            detail: e.to_string(),
        })?;
        // Every buffer of this context is used on its default stream only (ops, copies,
        // cuBLAS in the benchmark), so cudarc's per-buffer events (two created and two
        // destroyed per allocation, for ordering between streams) are pure overhead.
        // SAFETY: no second stream is ever created on this context, so no buffer is used
        // on a stream other than the one that allocated it.
        unsafe { ctx.disable_event_tracking() };
        let (major, minor) = ctx.compute_capability()?;
        let arch = format!("compute_{major}{minor}");
        let ptx = kernels::production_ptx(&arch)?;
        let mut funcs = HashMap::new();
        for (m, src) in MODULES.iter().zip(ptx.iter()) {
            let module = ctx.load_module(Ptx::from_src(src.clone()))?;
            for e in m.entries {
                funcs.insert(*e, module.load_function(e)?);
            }
        }
        let sm_count = ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )
            .unwrap_or(80)
            .max(1) as u32;
        Ok(CudaBackend {
            gpu: Gpu {
                name: format!("cuda:{ordinal}"),
                stream: ctx.default_stream(),
                funcs,
                sm_count,
                transfers: TransferCounter::default(),
            },
            device: ctx.name()?,
            arch,
        })
    }

    /// The device's name (e.g. "NVIDIA H100 80GB HBM3").
    pub fn device_name(&self) -> &str {
        &self.device
    }

    /// The NVRTC architecture the kernels were compiled for (e.g. `compute_90`).
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// The stream every op runs on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.gpu.stream
    }

    /// Bytes moved between host and device so far, by every upload and download
    /// (tensors, index lists, launch metadata).
    pub fn transfers(&self) -> Transfers {
        self.gpu.transfers.get()
    }

    /// Upload f32 data as a raw buffer (for benchmarks and the exhaustive check).
    pub fn upload_f32(&self, data: &[f32]) -> repops::Result<CudaSlice<u8>> {
        exec::up_f32(&self.gpu, data)
    }

    /// A device buffer of `n` f32 zeros.
    pub fn alloc_zeros(&self, n: usize) -> repops::Result<CudaSlice<u8>> {
        exec::zeros_f32(&self.gpu, n)
    }

    /// The first `n` f32 of a raw device buffer.
    pub fn download_f32(&self, d: &CudaSlice<u8>, n: usize) -> repops::Result<Vec<f32>> {
        exec::down_f32(&self.gpu, d, n)
    }

    /// Wait for all work on the stream.
    pub fn synchronize(&self) -> repops::Result<()> {
        self.gpu.stream.synchronize().map_err(|e| self.gpu.err(e))
    }

    /// The R2 GEMM on device buffers of f32 with a given kernel (the production one is
    /// [`crate::gemm_choice`]; all of [`crate::GEMM_KERNELS`] give the same bits):
    /// `C[g] = op(A[g]) op(B[g])` for `g` in `0..batches`, `A[g]` `[M,K]` (`[K,M]` if
    /// `ta`), `B[g]` `[K,N]` (`[N,K]` if `tb`), row-major and packed; `c` holds
    /// `batches * m * n` outputs. For benchmarks.
    pub fn gemm_device_with(
        &self,
        kernel: crate::GemmKernel,
        a: &CudaSlice<u8>,
        b: &CudaSlice<u8>,
        c: &mut CudaSlice<u8>,
        dims: (u64, u64, u64, u64),
        trans: (bool, bool),
    ) -> repops::Result<()> {
        exec::gemm_with(&self.gpu, kernel, (a, b, c), dims, trans)
    }

    /// Elementary function `f` (`repops::math::Func::ALL` order) of the bit patterns
    /// `start .. start + n` into `out` (f32); the exhaustive check.
    pub fn eval_bits(
        &self,
        f: i32,
        start: u32,
        n: u64,
        out: &mut CudaSlice<u8>,
    ) -> repops::Result<()> {
        exec::eval_bits(&self.gpu, f, start, n, out)
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> &str {
        &self.gpu.name
    }

    fn free_memory(&self) -> Option<u64> {
        let (free, _total) = self.gpu.stream.context().mem_get_info().ok()?;
        Some(free as u64)
    }

    fn upload(&self, t: &Tensor) -> repops::Result<DeviceTensor> {
        exec::upload(&self.gpu, t)
    }

    fn execute(&self, op: &Op, inputs: &[&DeviceTensor]) -> repops::Result<DeviceTensor> {
        exec::execute(&self.gpu, op, inputs)
    }

    fn download(&self, t: &DeviceTensor) -> repops::Result<Tensor> {
        exec::download(&self.gpu, t)
    }

    fn digests_on_device(&self) -> bool {
        true
    }

    fn bytes_moved(&self) -> Option<(u64, u64)> {
        let t = self.gpu.transfers.get();
        Some((t.host_to_device, t.device_to_host))
    }

    fn digests(&self, ts: &[&DeviceTensor]) -> repops::Result<Vec<repops::Digest>> {
        exec::digests(&self.gpu, ts)
    }
}
