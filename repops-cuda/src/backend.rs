//! [`CudaBackend`]: `repops::Backend` on one CUDA device.
//!
//! `execute` checks the op exactly as the CPU reference does (`Op::check`, and index
//! inputs with `repops::ops::index`), uploads the inputs, runs the op's kernels on the
//! device's stream, downloads the output and canonicalises its NaNs (R1) on the host.
//! Ops with an empty input or output have nothing to compute and are answered by the
//! CPU reference (zeros or a copy); `reshape` is a host copy (no arithmetic).

// Kernel launches are `unsafe` in cudarc: the argument list must match the kernel's
// parameters. Each launch below passes exactly the parameters of the `.cu` signature
// named next to it.
#![allow(unsafe_code)]

use crate::kernels::{self, MODULES};
use crate::{probe, Error};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;
use repops::ops::index;
use repops::{Backend, MaskFill, Op, RepOpsError, Tensor};
use std::collections::HashMap;
use std::sync::Arc;

type R<T> = repops::Result<T>;

/// The RepOps backend on CUDA device `ordinal`.
pub struct CudaBackend {
    name: String,
    device: String,
    arch: String,
    stream: Arc<CudaStream>,
    funcs: HashMap<&'static str, CudaFunction>,
    sm_count: u32,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("name", &self.name)
            .field("device", &self.device)
            .field("arch", &self.arch)
            .finish()
    }
}

/// Oldest driver API (CUDA 13.0) the bindings are built for (`cuda-13000`).
const MIN_DRIVER_CUDA: i32 = 13_000;

const THREADS: u32 = 256;
const ROWS_PER_BLOCK: u32 = 4;
const MAX_BLOCKS: u64 = 65_535;

fn blocks(units: u64, per_block: u64) -> u32 {
    units.div_ceil(per_block).clamp(1, MAX_BLOCKS) as u32
}

fn elementwise(n: u64) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks(n, THREADS as u64), 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn per_row(rows: u64) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks(rows, ROWS_PER_BLOCK as u64), 1, 1),
        block_dim: (32, ROWS_PER_BLOCK, 1),
        shared_mem_bytes: 0,
    }
}

/// `(rows, last)` of a tensor, as the CPU reference's `rows_cols`.
fn rows_cols(t: &Tensor) -> (u64, u64) {
    let c = t.last_dim();
    let r = t.len().checked_div(c).unwrap_or(0);
    (r as u64, c as u64)
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
            name: format!("cuda:{ordinal}"),
            device: ctx.name()?,
            arch,
            stream: ctx.default_stream(),
            funcs,
            sm_count,
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
        &self.stream
    }

    fn err(&self, e: impl std::fmt::Display) -> RepOpsError {
        RepOpsError::Device {
            backend: self.name.clone(),
            detail: e.to_string(),
        }
    }

    fn func(&self, name: &str) -> R<&CudaFunction> {
        self.funcs
            .get(name)
            .ok_or_else(|| self.err(format!("kernel {name} is not loaded")))
    }

    fn up<T: DeviceRepr>(&self, data: &[T]) -> R<CudaSlice<T>> {
        self.stream.clone_htod(data).map_err(|e| self.err(e))
    }

    fn zeros(&self, n: usize) -> R<CudaSlice<f32>> {
        self.stream
            .alloc_zeros::<f32>(n.max(1))
            .map_err(|e| self.err(e))
    }

    fn down(&self, d: &CudaSlice<f32>, n: usize) -> R<Vec<f32>> {
        let mut v = self.stream.clone_dtoh(d).map_err(|e| self.err(e))?;
        v.truncate(n);
        Ok(v)
    }

    /// Index inputs as u32 after the CPU reference's checks.
    fn indices(&self, op: &'static str, t: &Tensor, limit: usize) -> R<Vec<u32>> {
        if limit > u32::MAX as usize {
            return Err(self.err(format!("{op}: index range {limit} exceeds u32")));
        }
        t.data()
            .iter()
            .enumerate()
            .map(|(i, v)| index(op, *v, i, limit).map(|x| x as u32))
            .collect()
    }

    /// Evaluate elementary function `f` (`repops::math::Func::ALL` order) on the bit
    /// patterns `start .. start + n` into `out` (device); used by the exhaustive check.
    pub fn eval_bits(&self, f: i32, start: u32, n: u64, out: &mut CudaSlice<f32>) -> R<()> {
        let func = self.func("rp_eval_bits")?;
        let mut b = self.stream.launch_builder(func);
        b.arg(&f).arg(&start).arg(&n).arg(out);
        // SAFETY: rp_eval_bits(int f, u32 start, u64 n, float* y), y has >= n elements.
        unsafe { b.launch(elementwise(n)) }.map_err(|e| self.err(e))?;
        Ok(())
    }

    fn map1(&self, kernel: &str, x: &Tensor, s: f32) -> R<Vec<f32>> {
        let n = x.len() as u64;
        let dx = self.up(x.data())?;
        let mut y = self.zeros(x.len())?;
        let mut b = self.stream.launch_builder(self.func(kernel)?);
        b.arg(&dx).arg(&mut y).arg(&n).arg(&s);
        // SAFETY: MAP1 kernels take (const float* x, float* y, u64 n, float s).
        unsafe { b.launch(elementwise(n)) }.map_err(|e| self.err(e))?;
        self.down(&y, x.len())
    }

    fn map2(&self, kernel: &str, a: &Tensor, bt: &Tensor, s: f32, t: f32) -> R<Vec<f32>> {
        let n = a.len() as u64;
        let (da, db) = (self.up(a.data())?, self.up(bt.data())?);
        let mut y = self.zeros(a.len())?;
        let mut b = self.stream.launch_builder(self.func(kernel)?);
        b.arg(&da).arg(&db).arg(&mut y).arg(&n).arg(&s).arg(&t);
        // SAFETY: MAP2 kernels take (const float* a, const float* b, float* y, u64 n,
        // float s, float t); a, b and y have n elements.
        unsafe { b.launch(elementwise(n)) }.map_err(|e| self.err(e))?;
        self.down(&y, a.len())
    }

    /// Row kernels `(x, y, rows, c)`.
    fn rows1(&self, kernel: &str, x: &Tensor) -> R<Vec<f32>> {
        let (r, c) = rows_cols(x);
        let dx = self.up(x.data())?;
        let mut y = self.zeros(x.len())?;
        let mut b = self.stream.launch_builder(self.func(kernel)?);
        b.arg(&dx).arg(&mut y).arg(&r).arg(&c);
        // SAFETY: (const float* x, float* y, u64 rows, u64 c).
        unsafe { b.launch(per_row(r)) }.map_err(|e| self.err(e))?;
        self.down(&y, x.len())
    }

    /// Row kernels `(y, dy, dx, rows, c)`.
    fn rows2(&self, kernel: &str, y: &Tensor, dy: &Tensor) -> R<Vec<f32>> {
        let (r, c) = rows_cols(y);
        let (d0, d1) = (self.up(y.data())?, self.up(dy.data())?);
        let mut o = self.zeros(y.len())?;
        let mut b = self.stream.launch_builder(self.func(kernel)?);
        b.arg(&d0).arg(&d1).arg(&mut o).arg(&r).arg(&c);
        // SAFETY: (const float* y, const float* dy, float* dx, u64 rows, u64 c).
        unsafe { b.launch(per_row(r)) }.map_err(|e| self.err(e))?;
        self.down(&o, y.len())
    }

    /// R3 sum (or mean) of each row of a device `[rows, c]` matrix into `y`.
    fn sum_last_dev(
        &self,
        x: &CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
        r: u64,
        c: u64,
        mean: bool,
    ) -> R<()> {
        let (mean, cf) = (mean as i32, c as f32);
        let mut b = self.stream.launch_builder(self.func("rp_sum_last")?);
        b.arg(x).arg(y).arg(&r).arg(&c).arg(&mean).arg(&cf);
        // SAFETY: rp_sum_last(const float* x, float* y, u64 rows, u64 c, int mean, float cf).
        unsafe { b.launch(per_row(r)) }.map_err(|e| self.err(e))?;
        Ok(())
    }

    /// R2 GEMM on device buffers: `C[g] = op(A[g]) op(B[g])` for `g` in `0..batches`,
    /// `A[g]` is `[M,K]` (`[K,M]` if `ta`), `B[g]` is `[K,N]` (`[N,K]` if `tb`), all
    /// row-major and packed; `c` holds `batches * m * n` outputs. Public for benchmarks.
    pub fn gemm_device(
        &self,
        a: &CudaSlice<f32>,
        b: &CudaSlice<f32>,
        c: &mut CudaSlice<f32>,
        (batches, m, n, k): (u64, u64, u64, u64),
        (ta, tb): (bool, bool),
    ) -> R<()> {
        let (a_i, a_k) = if ta { (1, m) } else { (k, 1) };
        let (b_k, b_j) = if tb { (1, k) } else { (n, 1) };
        let (a_g, b_g) = (m * k, k * n);
        // Big tiles when they still give every SM a block; small tiles otherwise (the
        // bits are the same: each output's fma chain does not depend on the tiling).
        let big = m.div_ceil(128) * n.div_ceil(128) * batches >= self.sm_count as u64;
        let (kernel, tile) = if big {
            ("rp_gemm_128", 128)
        } else {
            ("rp_gemm_32", 32)
        };
        let (gx, gy) = (n.div_ceil(tile), m.div_ceil(tile));
        if gx > i32::MAX as u64 || gy > MAX_BLOCKS {
            return Err(self.err(format!("mat_mul: output [{m}, {n}] is too large")));
        }
        let cfg = LaunchConfig {
            grid_dim: (gx as u32, gy as u32, batches.clamp(1, MAX_BLOCKS) as u32),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = self.stream.launch_builder(self.func(kernel)?);
        l.arg(a).arg(b).arg(c).arg(&m).arg(&n).arg(&k).arg(&batches);
        l.arg(&a_g)
            .arg(&a_i)
            .arg(&a_k)
            .arg(&b_g)
            .arg(&b_k)
            .arg(&b_j);
        // SAFETY: GEMM_PARAMS = (a, b, c, m, n, k, batches, a_g, a_i, a_k, b_g, b_k,
        // b_j); every index the kernel forms is below batches*m*k in a, batches*k*n in
        // b and batches*m*n in c (the callers' shapes).
        unsafe { l.launch(cfg) }.map_err(|e| self.err(e))?;
        Ok(())
    }

    fn gemm(
        &self,
        a: &Tensor,
        b: &Tensor,
        dims: (u64, u64, u64, u64),
        trans: (bool, bool),
    ) -> R<Vec<f32>> {
        let (da, db) = (self.up(a.data())?, self.up(b.data())?);
        let len = (dims.0 * dims.1 * dims.2) as usize;
        let mut c = self.zeros(len)?;
        self.gemm_device(&da, &db, &mut c, dims, trans)?;
        self.down(&c, len)
    }

    /// Upload host data (for benchmarks and the exhaustive check).
    pub fn upload(&self, data: &[f32]) -> R<CudaSlice<f32>> {
        self.up(data)
    }

    /// A device buffer of `n` zeros.
    pub fn alloc_zeros(&self, n: usize) -> R<CudaSlice<f32>> {
        self.zeros(n)
    }

    /// Download the first `n` elements of a device buffer.
    pub fn download(&self, d: &CudaSlice<f32>, n: usize) -> R<Vec<f32>> {
        self.down(d, n)
    }

    /// Wait for all work on the stream.
    pub fn synchronize(&self) -> R<()> {
        self.stream.synchronize().map_err(|e| self.err(e))
    }

    fn compute(&self, op: &Op, x: &[&Tensor], out_shape: &[usize]) -> R<Vec<f32>> {
        let name = op.name();
        let out_len: usize = out_shape.iter().product();
        match op {
            Op::MatMul { ta, tb } => {
                let (m, n) = (out_shape[0] as u64, out_shape[1] as u64);
                let k = if *ta {
                    x[0].shape()[0]
                } else {
                    x[0].shape()[1]
                } as u64;
                self.gemm(x[0], x[1], (1, m, n, k), (*ta, *tb))
            }
            Op::BatchedMatMul { ta, tb } => {
                let (g, m, n) = (
                    out_shape[0] as u64,
                    out_shape[1] as u64,
                    out_shape[2] as u64,
                );
                let k = if *ta {
                    x[0].shape()[1]
                } else {
                    x[0].shape()[2]
                } as u64;
                self.gemm(x[0], x[1], (g, m, n, k), (*ta, *tb))
            }
            Op::AddBias => {
                let (n, c) = (x[0].len() as u64, x[0].last_dim() as u64);
                let (dx, db) = (self.up(x[0].data())?, self.up(x[1].data())?);
                let mut y = self.zeros(x[0].len())?;
                let mut b = self.stream.launch_builder(self.func("rp_add_bias")?);
                b.arg(&dx).arg(&db).arg(&mut y).arg(&n).arg(&c);
                // SAFETY: (const float* x, const float* b, float* y, u64 n, u64 c).
                unsafe { b.launch(elementwise(n)) }.map_err(|e| self.err(e))?;
                self.down(&y, x[0].len())
            }
            Op::Add => self.map2("rp_add", x[0], x[1], 0.0, 0.0),
            Op::Sub => self.map2("rp_sub", x[0], x[1], 0.0, 0.0),
            Op::Mul => self.map2("rp_mul", x[0], x[1], 0.0, 0.0),
            Op::Scale { s } => self.map1("rp_scale", x[0], *s),
            Op::AddScalar { s } => self.map1("rp_add_scalar", x[0], *s),
            Op::Relu => self.map1("rp_relu", x[0], 0.0),
            Op::ReluBackward => self.map2("rp_relu_backward", x[0], x[1], 0.0, 0.0),
            Op::Gelu => self.map1("rp_gelu_k", x[0], 0.0),
            Op::GeluBackward => self.map2("rp_gelu_backward", x[0], x[1], 0.0, 0.0),
            Op::Tanh => self.map1("rp_tanh_k", x[0], 0.0),
            Op::TanhBackward => self.map2("rp_tanh_backward", x[0], x[1], 0.0, 0.0),
            Op::Sigmoid => self.map1("rp_sigmoid_k", x[0], 0.0),
            Op::SigmoidBackward => self.map2("rp_sigmoid_backward", x[0], x[1], 0.0, 0.0),
            Op::Exp => self.map1("rp_exp_k", x[0], 0.0),
            Op::Log => self.map1("rp_log_k", x[0], 0.0),
            Op::Rsqrt => self.map1("rp_rsqrt_k", x[0], 0.0),
            Op::Softmax => self.rows1("rp_softmax", x[0]),
            Op::SoftmaxBackward => self.rows2("rp_softmax_backward", x[0], x[1]),
            Op::LogSoftmax => self.rows1("rp_log_softmax", x[0]),
            Op::LogSoftmaxBackward => self.rows2("rp_log_softmax_backward", x[0], x[1]),
            Op::CrossEntropy | Op::CrossEntropyBackward => {
                let (n, c) = (x[0].shape()[0] as u64, x[0].shape()[1] as u64);
                let labels = self.up(&self.indices(name, x[1], c as usize)?)?;
                let dx = self.up(x[0].data())?;
                let nf = n as f32;
                if matches!(op, Op::CrossEntropy) {
                    let mut loss = self.zeros(n as usize)?;
                    let mut b = self
                        .stream
                        .launch_builder(self.func("rp_cross_entropy_rows")?);
                    b.arg(&dx).arg(&labels).arg(&mut loss).arg(&n).arg(&c);
                    // SAFETY: (const float* x, const u32* labels, float* loss, u64 rows, u64 c).
                    unsafe { b.launch(per_row(n)) }.map_err(|e| self.err(e))?;
                    let mut y = self.zeros(1)?;
                    // sum(L) / N: the R3 sum of the loss vector as one row, divided by N.
                    self.sum_last_dev(&loss, &mut y, 1, n, true)?;
                    self.down(&y, 1)
                } else {
                    let mut y = self.zeros(x[0].len())?;
                    let mut b = self
                        .stream
                        .launch_builder(self.func("rp_cross_entropy_backward")?);
                    b.arg(&dx).arg(&labels).arg(&mut y).arg(&n).arg(&c).arg(&nf);
                    // SAFETY: (const float* x, const u32* labels, float* y, u64 rows,
                    // u64 c, float nf).
                    unsafe { b.launch(per_row(n)) }.map_err(|e| self.err(e))?;
                    self.down(&y, x[0].len())
                }
            }
            Op::LayerNorm { eps } | Op::LayerNormBackwardInput { eps } => {
                let (r, d) = rows_cols(x[0]);
                let df = d as f32;
                let ins = [
                    self.up(x[0].data())?,
                    self.up(x[1].data())?,
                    self.up(x[2].data())?,
                ];
                let mut y = self.zeros(x[0].len())?;
                let kernel = if matches!(op, Op::LayerNorm { .. }) {
                    "rp_layer_norm"
                } else {
                    "rp_layer_norm_backward_input"
                };
                let mut b = self.stream.launch_builder(self.func(kernel)?);
                b.arg(&ins[0]).arg(&ins[1]).arg(&ins[2]).arg(&mut y);
                b.arg(&r).arg(&d).arg(&df).arg(eps);
                // SAFETY: both take (const float*, const float*, const float*, float* y,
                // u64 rows, u64 d, float df, float eps).
                unsafe { b.launch(per_row(r)) }.map_err(|e| self.err(e))?;
                self.down(&y, x[0].len())
            }
            Op::LayerNormBackwardGamma { eps } => {
                let (r, d) = rows_cols(x[0]);
                let df = d as f32;
                let (dx, ddy) = (self.up(x[0].data())?, self.up(x[1].data())?);
                let (mut mean, mut rstd) = (self.zeros(r as usize)?, self.zeros(r as usize)?);
                let mut b = self
                    .stream
                    .launch_builder(self.func("rp_layer_norm_stats")?);
                b.arg(&dx).arg(&mut mean).arg(&mut rstd);
                b.arg(&r).arg(&d).arg(&df).arg(eps);
                // SAFETY: (const float* x, float* mean, float* rstd, u64 rows, u64 d,
                // float df, float eps).
                unsafe { b.launch(per_row(r)) }.map_err(|e| self.err(e))?;
                let mut y = self.zeros(d as usize)?;
                let mut b = self
                    .stream
                    .launch_builder(self.func("rp_layer_norm_backward_gamma")?);
                b.arg(&dx)
                    .arg(&ddy)
                    .arg(&mean)
                    .arg(&rstd)
                    .arg(&mut y)
                    .arg(&r)
                    .arg(&d);
                // SAFETY: (x, dy, mean, rstd, float* y, u64 rows, u64 cols).
                unsafe { b.launch(columns(d)) }.map_err(|e| self.err(e))?;
                self.down(&y, d as usize)
            }
            Op::Embedding => {
                let (v, d) = (x[0].shape()[0], x[0].shape()[1] as u64);
                let ids = self.indices(name, x[1], v)?;
                let n = ids.len() as u64;
                let (tab, dids) = (self.up(x[0].data())?, self.up(&ids)?);
                let mut y = self.zeros(out_len)?;
                let mut b = self.stream.launch_builder(self.func("rp_embedding")?);
                b.arg(&tab).arg(&dids).arg(&mut y).arg(&n).arg(&d);
                // SAFETY: (const float* table, const u32* ids, float* y, u64 n, u64 d).
                unsafe { b.launch(elementwise(n * d)) }.map_err(|e| self.err(e))?;
                self.down(&y, out_len)
            }
            Op::EmbeddingBackward { vocab } => {
                let d = out_shape[1] as u64;
                let ids = self.indices(name, x[0], *vocab)?;
                if ids.len() > u32::MAX as usize {
                    return Err(self.err("embedding_backward: too many positions"));
                }
                // CSR of positions per id, ascending within each id.
                let mut starts = vec![0u32; vocab + 1];
                for &id in &ids {
                    starts[id as usize + 1] += 1;
                }
                for v in 0..*vocab {
                    starts[v + 1] += starts[v];
                }
                let mut fill = starts.clone();
                let mut positions = vec![0u32; ids.len()];
                for (p, &id) in ids.iter().enumerate() {
                    positions[fill[id as usize] as usize] = p as u32;
                    fill[id as usize] += 1;
                }
                let (ddy, dst, dpos) = (
                    self.up(x[1].data())?,
                    self.up(&starts)?,
                    self.up(&positions)?,
                );
                let vocab = *vocab as u64;
                let mut y = self.zeros(out_len)?;
                let mut b = self
                    .stream
                    .launch_builder(self.func("rp_embedding_backward")?);
                b.arg(&ddy)
                    .arg(&dst)
                    .arg(&dpos)
                    .arg(&mut y)
                    .arg(&vocab)
                    .arg(&d);
                // SAFETY: (const float* dy, const u32* starts, const u32* positions,
                // float* y, u64 vocab, u64 d).
                unsafe { b.launch(elementwise(vocab * d)) }.map_err(|e| self.err(e))?;
                self.down(&y, out_len)
            }
            Op::CausalMask { fill } => {
                let t = x[0].last_dim() as u64;
                let fv = match fill {
                    MaskFill::NegInf => f32::NEG_INFINITY,
                    MaskFill::Zero => 0.0,
                };
                let n = x[0].len() as u64;
                let dx = self.up(x[0].data())?;
                let mut y = self.zeros(x[0].len())?;
                let mut b = self.stream.launch_builder(self.func("rp_causal_mask")?);
                b.arg(&dx).arg(&mut y).arg(&n).arg(&t).arg(&fv);
                // SAFETY: (const float* x, float* y, u64 n, u64 t, float fill).
                unsafe { b.launch(elementwise(n)) }.map_err(|e| self.err(e))?;
                self.down(&y, x[0].len())
            }
            Op::SumAxis0 | Op::MeanAxis0 => {
                let (r, c) = rows_cols(x[0]);
                let (mean, rf) = (matches!(op, Op::MeanAxis0) as i32, r as f32);
                let dx = self.up(x[0].data())?;
                let mut y = self.zeros(c as usize)?;
                let mut b = self.stream.launch_builder(self.func("rp_sum_axis0")?);
                b.arg(&dx).arg(&mut y).arg(&r).arg(&c).arg(&mean).arg(&rf);
                // SAFETY: (const float* x, float* y, u64 rows, u64 cols, int mean, float rf).
                unsafe { b.launch(columns(c)) }.map_err(|e| self.err(e))?;
                self.down(&y, c as usize)
            }
            Op::SumLast | Op::MeanLast => {
                let (r, c) = rows_cols(x[0]);
                let dx = self.up(x[0].data())?;
                let mut y = self.zeros(r as usize)?;
                self.sum_last_dev(&dx, &mut y, r, c, matches!(op, Op::MeanLast))?;
                self.down(&y, r as usize)
            }
            Op::Transpose => {
                let (r, c) = (x[0].shape()[0] as u64, x[0].shape()[1] as u64);
                if r.div_ceil(32) > MAX_BLOCKS {
                    return Err(self.err(format!("transpose: {r} rows is too many")));
                }
                let dx = self.up(x[0].data())?;
                let mut y = self.zeros(x[0].len())?;
                let cfg = LaunchConfig {
                    grid_dim: (c.div_ceil(32) as u32, r.div_ceil(32) as u32, 1),
                    block_dim: (32, 8, 1),
                    shared_mem_bytes: 0,
                };
                let mut b = self.stream.launch_builder(self.func("rp_transpose")?);
                b.arg(&dx).arg(&mut y).arg(&r).arg(&c);
                // SAFETY: (const float* x, float* y, u64 r, u64 c).
                unsafe { b.launch(cfg) }.map_err(|e| self.err(e))?;
                self.down(&y, x[0].len())
            }
            Op::Reshape { .. } => Ok(x[0].data().to_vec()),
            Op::Permute { perm } => {
                let s = x[0].shape();
                let rank = s.len();
                let mut in_strides = vec![1u64; rank];
                for d in (0..rank.saturating_sub(1)).rev() {
                    in_strides[d] = in_strides[d + 1] * s[d + 1] as u64;
                }
                let mut meta: Vec<u64> = out_shape.iter().map(|&d| d as u64).collect();
                meta.extend(perm.iter().map(|&p| in_strides[p]));
                let n = x[0].len() as u64;
                let (dx, dmeta) = (self.up(x[0].data())?, self.up(&meta)?);
                let mut y = self.zeros(x[0].len())?;
                let rank = rank as i32;
                let mut b = self.stream.launch_builder(self.func("rp_permute")?);
                b.arg(&dx).arg(&mut y).arg(&dmeta).arg(&n).arg(&rank);
                // SAFETY: (const float* x, float* y, const u64* meta, u64 n, int rank),
                // meta holds 2 * rank values.
                unsafe { b.launch(elementwise(n)) }.map_err(|e| self.err(e))?;
                self.down(&y, x[0].len())
            }
            Op::SgdMomentumBuf { momentum } => {
                self.map2("rp_sgd_momentum_buf", x[0], x[1], *momentum, 0.0)
            }
            Op::SgdUpdate { lr } => self.map2("rp_sgd_update", x[0], x[1], *lr, 0.0),
            Op::AdamM { beta1 } => self.map2("rp_adam_m", x[0], x[1], *beta1, 1.0 - *beta1),
            Op::AdamV { beta2 } => self.map2("rp_adam_v", x[0], x[1], *beta2, 1.0 - *beta2),
            Op::AdamWUpdate {
                lr,
                eps,
                weight_decay,
            } => {
                let bc1 = 1.0 - x[3].data()[0];
                let bc2 = 1.0 - x[4].data()[0];
                let n = x[0].len() as u64;
                let ins = [
                    self.up(x[0].data())?,
                    self.up(x[1].data())?,
                    self.up(x[2].data())?,
                ];
                let mut y = self.zeros(x[0].len())?;
                let mut b = self.stream.launch_builder(self.func("rp_adamw_update")?);
                b.arg(&ins[0]).arg(&ins[1]).arg(&ins[2]).arg(&mut y).arg(&n);
                b.arg(&bc1).arg(&bc2).arg(lr).arg(eps).arg(weight_decay);
                // SAFETY: (p, m, v, float* y, u64 n, float bc1, float bc2, float lr,
                // float eps, float wd).
                unsafe { b.launch(elementwise(n)) }.map_err(|e| self.err(e))?;
                self.down(&y, x[0].len())
            }
        }
    }
}

/// Column reductions: blocks of 32 columns x 32 lanes.
fn columns(cols: u64) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (cols.div_ceil(32).max(1) as u32, 1, 1),
        block_dim: (32, 32, 1),
        shared_mem_bytes: 0,
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn execute(&self, op: &Op, inputs: &[&Tensor]) -> R<Tensor> {
        let out_shape = op.check(inputs)?;
        let out_len: usize = out_shape.iter().product();
        if out_len == 0 || inputs.iter().any(|t| t.is_empty()) {
            // Nothing to compute (zeros, or an empty result); the CPU reference also
            // performs the index checks.
            return op.execute(inputs);
        }
        let data = self.compute(op, inputs, &out_shape)?;
        let mut out = Tensor::new(out_shape, data)?;
        out.canonicalize();
        Ok(out)
    }
}
