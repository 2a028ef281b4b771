//! Running RepOps ops as kernels on a [`Device`]: argument marshalling, launch shapes and
//! the host-side preparation (index checks, `embedding_backward`'s position lists). The
//! CUDA backend is this code on the GPU; the unit tests run the same code on a host
//! emulation of the CUDA execution model (`emu/emu.cpp`).

use cudarc::driver::LaunchConfig;
use repops::ops::index;
use repops::{MaskFill, Op, RepOpsError, Tensor};

pub(crate) type R<T> = repops::Result<T>;

/// One kernel argument.
pub(crate) enum Arg<'a, B> {
    /// A buffer the kernel reads.
    In(&'a B),
    /// A buffer the kernel writes.
    Out(&'a mut B),
    U64(u64),
    I32(i32),
    U32(u32),
    F32(f32),
}

/// Something that holds buffers and launches the kernels of `kernels/*.cu` by name.
pub(crate) trait Device {
    /// A device buffer (untyped bytes).
    type Buf;
    /// For error messages.
    fn label(&self) -> &str;
    fn upload(&self, bytes: &[u8]) -> R<Self::Buf>;
    fn zeros(&self, nbytes: usize) -> R<Self::Buf>;
    fn download(&self, b: &Self::Buf) -> R<Vec<u8>>;
    /// Launch `kernel` with exactly the arguments of its `.cu` signature.
    fn launch(&self, kernel: &str, cfg: LaunchConfig, args: &mut [Arg<'_, Self::Buf>]) -> R<()>;
    /// Streaming multiprocessors (picks the GEMM tile size; never changes bits).
    fn sm_count(&self) -> u32;

    fn err(&self, e: impl std::fmt::Display) -> RepOpsError {
        RepOpsError::Device {
            backend: self.label().to_string(),
            detail: e.to_string(),
        }
    }
}

const THREADS: u32 = 256;
const ROWS_PER_BLOCK: u32 = 4;
pub(crate) const MAX_BLOCKS: u64 = 65_535;

fn blocks(units: u64, per_block: u64) -> u32 {
    units.div_ceil(per_block).clamp(1, MAX_BLOCKS) as u32
}

/// One thread per element, grid-strided.
pub(crate) fn elementwise(n: u64) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks(n, THREADS as u64), 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One warp per row.
fn per_row(rows: u64) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks(rows, ROWS_PER_BLOCK as u64), 1, 1),
        block_dim: (32, ROWS_PER_BLOCK, 1),
        shared_mem_bytes: 0,
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

/// `(rows, last)` of a tensor, as the CPU reference's `rows_cols`.
fn rows_cols(t: &Tensor) -> (u64, u64) {
    let c = t.last_dim();
    let r = t.len().checked_div(c).unwrap_or(0);
    (r as u64, c as u64)
}

fn up_f32<D: Device>(d: &D, v: &[f32]) -> R<D::Buf> {
    d.upload(&v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
}

fn up_u32<D: Device>(d: &D, v: &[u32]) -> R<D::Buf> {
    d.upload(&v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
}

fn up_u64<D: Device>(d: &D, v: &[u64]) -> R<D::Buf> {
    d.upload(&v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
}

/// A buffer of `n` f32 zeros (at least one element: no zero-size allocations).
pub(crate) fn zeros_f32<D: Device>(d: &D, n: usize) -> R<D::Buf> {
    d.zeros(4 * n.max(1))
}

/// The first `n` f32 of a buffer.
pub(crate) fn down_f32<D: Device>(d: &D, b: &D::Buf, n: usize) -> R<Vec<f32>> {
    let bytes = d.download(b)?;
    if bytes.len() < 4 * n {
        return Err(d.err(format!("short download: {} bytes for {n} f32", bytes.len())));
    }
    Ok(bytes[..4 * n]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Index inputs as u32 after the CPU reference's checks.
fn indices<D: Device>(d: &D, op: &'static str, t: &Tensor, limit: usize) -> R<Vec<u32>> {
    if limit > u32::MAX as usize {
        return Err(d.err(format!("{op}: index range {limit} exceeds u32")));
    }
    t.data()
        .iter()
        .enumerate()
        .map(|(i, v)| index(op, *v, i, limit).map(|x| x as u32))
        .collect()
}

/// Elementary function `f` (`repops::math::Func::ALL` order) of the bit patterns
/// `start .. start + n` into `out`.
pub(crate) fn eval_bits<D: Device>(d: &D, f: i32, start: u32, n: u64, out: &mut D::Buf) -> R<()> {
    d.launch(
        "rp_eval_bits",
        elementwise(n),
        &mut [Arg::I32(f), Arg::U32(start), Arg::U64(n), Arg::Out(out)],
    )
}

/// `MAP1` kernels: `(const float* x, float* y, u64 n, float s)`.
fn map1<D: Device>(d: &D, kernel: &str, x: &Tensor, s: f32) -> R<Vec<f32>> {
    let n = x.len() as u64;
    let dx = up_f32(d, x.data())?;
    let mut y = zeros_f32(d, x.len())?;
    let args = &mut [Arg::In(&dx), Arg::Out(&mut y), Arg::U64(n), Arg::F32(s)];
    d.launch(kernel, elementwise(n), args)?;
    down_f32(d, &y, x.len())
}

/// `MAP2` kernels: `(const float* a, const float* b, float* y, u64 n, float s, float t)`.
fn map2<D: Device>(d: &D, kernel: &str, a: &Tensor, b: &Tensor, s: f32, t: f32) -> R<Vec<f32>> {
    let n = a.len() as u64;
    let (da, db) = (up_f32(d, a.data())?, up_f32(d, b.data())?);
    let mut y = zeros_f32(d, a.len())?;
    let args = &mut [
        Arg::In(&da),
        Arg::In(&db),
        Arg::Out(&mut y),
        Arg::U64(n),
        Arg::F32(s),
        Arg::F32(t),
    ];
    d.launch(kernel, elementwise(n), args)?;
    down_f32(d, &y, a.len())
}

/// Row kernels `(const float* x, float* y, u64 rows, u64 c)`.
fn rows1<D: Device>(d: &D, kernel: &str, x: &Tensor) -> R<Vec<f32>> {
    let (r, c) = rows_cols(x);
    let dx = up_f32(d, x.data())?;
    let mut y = zeros_f32(d, x.len())?;
    let args = &mut [Arg::In(&dx), Arg::Out(&mut y), Arg::U64(r), Arg::U64(c)];
    d.launch(kernel, per_row(r), args)?;
    down_f32(d, &y, x.len())
}

/// Row kernels `(const float* y, const float* dy, float* dx, u64 rows, u64 c)`.
fn rows2<D: Device>(d: &D, kernel: &str, y: &Tensor, dy: &Tensor) -> R<Vec<f32>> {
    let (r, c) = rows_cols(y);
    let (d0, d1) = (up_f32(d, y.data())?, up_f32(d, dy.data())?);
    let mut o = zeros_f32(d, y.len())?;
    let args = &mut [
        Arg::In(&d0),
        Arg::In(&d1),
        Arg::Out(&mut o),
        Arg::U64(r),
        Arg::U64(c),
    ];
    d.launch(kernel, per_row(r), args)?;
    down_f32(d, &o, y.len())
}

/// `rp_sum_last(const float* x, float* y, u64 rows, u64 c, int mean, float cf)`.
fn sum_last<D: Device>(d: &D, x: &D::Buf, y: &mut D::Buf, r: u64, c: u64, mean: bool) -> R<()> {
    let args = &mut [
        Arg::In(x),
        Arg::Out(y),
        Arg::U64(r),
        Arg::U64(c),
        Arg::I32(mean as i32),
        Arg::F32(c as f32),
    ];
    d.launch("rp_sum_last", per_row(r), args)
}

/// R2 GEMM on device buffers: `C[g] = op(A[g]) op(B[g])` for `g` in `0..batches`, `A[g]`
/// `[M,K]` (`[K,M]` if `ta`), `B[g]` `[K,N]` (`[N,K]` if `tb`), row-major and packed.
pub(crate) fn gemm<D: Device>(
    d: &D,
    (a, b, c): (&D::Buf, &D::Buf, &mut D::Buf),
    (batches, m, n, k): (u64, u64, u64, u64),
    (ta, tb): (bool, bool),
) -> R<()> {
    let (a_i, a_k) = if ta { (1, m) } else { (k, 1) };
    let (b_k, b_j) = if tb { (1, k) } else { (n, 1) };
    // Big tiles when they still give every SM a block; small tiles otherwise (the bits
    // are the same: each output's fma chain does not depend on the tiling).
    let big = m.div_ceil(128) * n.div_ceil(128) * batches >= d.sm_count() as u64;
    let (kernel, tile) = if big {
        ("rp_gemm_128", 128)
    } else {
        ("rp_gemm_32", 32)
    };
    let (gx, gy) = (n.div_ceil(tile), m.div_ceil(tile));
    if gx > i32::MAX as u64 || gy > MAX_BLOCKS {
        return Err(d.err(format!("mat_mul: output [{m}, {n}] is too large")));
    }
    let cfg = LaunchConfig {
        grid_dim: (gx as u32, gy as u32, batches.clamp(1, MAX_BLOCKS) as u32),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    // GEMM_PARAMS = (a, b, c, m, n, k, batches, a_g, a_i, a_k, b_g, b_k, b_j).
    let args = &mut [
        Arg::In(a),
        Arg::In(b),
        Arg::Out(c),
        Arg::U64(m),
        Arg::U64(n),
        Arg::U64(k),
        Arg::U64(batches),
        Arg::U64(m * k),
        Arg::U64(a_i),
        Arg::U64(a_k),
        Arg::U64(k * n),
        Arg::U64(b_k),
        Arg::U64(b_j),
    ];
    d.launch(kernel, cfg, args)
}

fn gemm_host<D: Device>(
    d: &D,
    a: &Tensor,
    b: &Tensor,
    dims: (u64, u64, u64, u64),
    trans: (bool, bool),
) -> R<Vec<f32>> {
    let (da, db) = (up_f32(d, a.data())?, up_f32(d, b.data())?);
    let len = (dims.0 * dims.1 * dims.2) as usize;
    let mut c = zeros_f32(d, len)?;
    gemm(d, (&da, &db, &mut c), dims, trans)?;
    down_f32(d, &c, len)
}

/// `Backend::execute` on a device: the CPU's checks, the kernels, NaNs canonicalised.
/// Ops with an empty input or output have nothing to compute and are answered by the CPU
/// reference (zeros or a copy, and the same index checks).
pub(crate) fn execute<D: Device>(d: &D, op: &Op, inputs: &[&Tensor]) -> R<Tensor> {
    let out_shape = op.check(inputs)?;
    let out_len: usize = out_shape.iter().product();
    if out_len == 0 || inputs.iter().any(|t| t.is_empty()) {
        return op.execute(inputs);
    }
    let data = compute(d, op, inputs, &out_shape)?;
    let mut out = Tensor::new(out_shape, data)?;
    out.canonicalize();
    Ok(out)
}

fn compute<D: Device>(d: &D, op: &Op, x: &[&Tensor], out_shape: &[usize]) -> R<Vec<f32>> {
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
            gemm_host(d, x[0], x[1], (1, m, n, k), (*ta, *tb))
        }
        Op::BatchedMatMul { ta, tb } => {
            let s = out_shape;
            let k = if *ta {
                x[0].shape()[1]
            } else {
                x[0].shape()[2]
            } as u64;
            let dims = (s[0] as u64, s[1] as u64, s[2] as u64, k);
            gemm_host(d, x[0], x[1], dims, (*ta, *tb))
        }
        Op::AddBias => {
            let (n, c) = (x[0].len() as u64, x[0].last_dim() as u64);
            let (dx, db) = (up_f32(d, x[0].data())?, up_f32(d, x[1].data())?);
            let mut y = zeros_f32(d, x[0].len())?;
            let args = &mut [
                Arg::In(&dx),
                Arg::In(&db),
                Arg::Out(&mut y),
                Arg::U64(n),
                Arg::U64(c),
            ];
            d.launch("rp_add_bias", elementwise(n), args)?;
            down_f32(d, &y, x[0].len())
        }
        Op::Add => map2(d, "rp_add", x[0], x[1], 0.0, 0.0),
        Op::Sub => map2(d, "rp_sub", x[0], x[1], 0.0, 0.0),
        Op::Mul => map2(d, "rp_mul", x[0], x[1], 0.0, 0.0),
        Op::Scale { s } => map1(d, "rp_scale", x[0], *s),
        Op::AddScalar { s } => map1(d, "rp_add_scalar", x[0], *s),
        Op::Relu => map1(d, "rp_relu", x[0], 0.0),
        Op::ReluBackward => map2(d, "rp_relu_backward", x[0], x[1], 0.0, 0.0),
        Op::Gelu => map1(d, "rp_gelu_k", x[0], 0.0),
        Op::GeluBackward => map2(d, "rp_gelu_backward", x[0], x[1], 0.0, 0.0),
        Op::Tanh => map1(d, "rp_tanh_k", x[0], 0.0),
        Op::TanhBackward => map2(d, "rp_tanh_backward", x[0], x[1], 0.0, 0.0),
        Op::Sigmoid => map1(d, "rp_sigmoid_k", x[0], 0.0),
        Op::SigmoidBackward => map2(d, "rp_sigmoid_backward", x[0], x[1], 0.0, 0.0),
        Op::Exp => map1(d, "rp_exp_k", x[0], 0.0),
        Op::Log => map1(d, "rp_log_k", x[0], 0.0),
        Op::Rsqrt => map1(d, "rp_rsqrt_k", x[0], 0.0),
        Op::Softmax => rows1(d, "rp_softmax", x[0]),
        Op::SoftmaxBackward => rows2(d, "rp_softmax_backward", x[0], x[1]),
        Op::LogSoftmax => rows1(d, "rp_log_softmax", x[0]),
        Op::LogSoftmaxBackward => rows2(d, "rp_log_softmax_backward", x[0], x[1]),
        Op::CrossEntropy | Op::CrossEntropyBackward => {
            let (n, c) = (x[0].shape()[0] as u64, x[0].shape()[1] as u64);
            let labels = up_u32(d, &indices(d, name, x[1], c as usize)?)?;
            let dx = up_f32(d, x[0].data())?;
            if matches!(op, Op::CrossEntropy) {
                let mut loss = zeros_f32(d, n as usize)?;
                // (const float* x, const u32* labels, float* loss, u64 rows, u64 c)
                let args = &mut [
                    Arg::In(&dx),
                    Arg::In(&labels),
                    Arg::Out(&mut loss),
                    Arg::U64(n),
                    Arg::U64(c),
                ];
                d.launch("rp_cross_entropy_rows", per_row(n), args)?;
                // sum(L) / N: the R3 sum of the loss vector as one row, divided by N.
                let mut y = zeros_f32(d, 1)?;
                sum_last(d, &loss, &mut y, 1, n, true)?;
                down_f32(d, &y, 1)
            } else {
                let mut y = zeros_f32(d, x[0].len())?;
                // (const float* x, const u32* labels, float* y, u64 rows, u64 c, float nf)
                let args = &mut [
                    Arg::In(&dx),
                    Arg::In(&labels),
                    Arg::Out(&mut y),
                    Arg::U64(n),
                    Arg::U64(c),
                    Arg::F32(n as f32),
                ];
                d.launch("rp_cross_entropy_backward", per_row(n), args)?;
                down_f32(d, &y, x[0].len())
            }
        }
        Op::LayerNorm { eps } | Op::LayerNormBackwardInput { eps } => {
            let (r, dd) = rows_cols(x[0]);
            let ins = [
                up_f32(d, x[0].data())?,
                up_f32(d, x[1].data())?,
                up_f32(d, x[2].data())?,
            ];
            let mut y = zeros_f32(d, x[0].len())?;
            let kernel = if matches!(op, Op::LayerNorm { .. }) {
                "rp_layer_norm"
            } else {
                "rp_layer_norm_backward_input"
            };
            // (const float*, const float*, const float*, float* y, u64 rows, u64 d,
            // float df, float eps)
            let args = &mut [
                Arg::In(&ins[0]),
                Arg::In(&ins[1]),
                Arg::In(&ins[2]),
                Arg::Out(&mut y),
                Arg::U64(r),
                Arg::U64(dd),
                Arg::F32(dd as f32),
                Arg::F32(*eps),
            ];
            d.launch(kernel, per_row(r), args)?;
            down_f32(d, &y, x[0].len())
        }
        Op::LayerNormBackwardGamma { eps } => {
            let (r, dd) = rows_cols(x[0]);
            let (dx, ddy) = (up_f32(d, x[0].data())?, up_f32(d, x[1].data())?);
            let mut mean = zeros_f32(d, r as usize)?;
            let mut rstd = zeros_f32(d, r as usize)?;
            // (const float* x, float* mean, float* rstd, u64 rows, u64 d, float df, float eps)
            let args = &mut [
                Arg::In(&dx),
                Arg::Out(&mut mean),
                Arg::Out(&mut rstd),
                Arg::U64(r),
                Arg::U64(dd),
                Arg::F32(dd as f32),
                Arg::F32(*eps),
            ];
            d.launch("rp_layer_norm_stats", per_row(r), args)?;
            let mut y = zeros_f32(d, dd as usize)?;
            // (x, dy, mean, rstd, float* y, u64 rows, u64 cols)
            let args = &mut [
                Arg::In(&dx),
                Arg::In(&ddy),
                Arg::In(&mean),
                Arg::In(&rstd),
                Arg::Out(&mut y),
                Arg::U64(r),
                Arg::U64(dd),
            ];
            d.launch("rp_layer_norm_backward_gamma", columns(dd), args)?;
            down_f32(d, &y, dd as usize)
        }
        Op::Embedding => {
            let (v, dd) = (x[0].shape()[0], x[0].shape()[1] as u64);
            let ids = indices(d, name, x[1], v)?;
            let n = ids.len() as u64;
            let (tab, dids) = (up_f32(d, x[0].data())?, up_u32(d, &ids)?);
            let mut y = zeros_f32(d, out_len)?;
            // (const float* table, const u32* ids, float* y, u64 n, u64 d)
            let args = &mut [
                Arg::In(&tab),
                Arg::In(&dids),
                Arg::Out(&mut y),
                Arg::U64(n),
                Arg::U64(dd),
            ];
            d.launch("rp_embedding", elementwise(n * dd), args)?;
            down_f32(d, &y, out_len)
        }
        Op::EmbeddingBackward { vocab } => {
            let dd = out_shape[1] as u64;
            let ids = indices(d, name, x[0], *vocab)?;
            if ids.len() > u32::MAX as usize {
                return Err(d.err("embedding_backward: too many positions"));
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
            let ddy = up_f32(d, x[1].data())?;
            let (dst, dpos) = (up_u32(d, &starts)?, up_u32(d, &positions)?);
            let vocab = *vocab as u64;
            let mut y = zeros_f32(d, out_len)?;
            // (const float* dy, const u32* starts, const u32* positions, float* y,
            // u64 vocab, u64 d)
            let args = &mut [
                Arg::In(&ddy),
                Arg::In(&dst),
                Arg::In(&dpos),
                Arg::Out(&mut y),
                Arg::U64(vocab),
                Arg::U64(dd),
            ];
            d.launch("rp_embedding_backward", elementwise(vocab * dd), args)?;
            down_f32(d, &y, out_len)
        }
        Op::CausalMask { fill } => {
            let t = x[0].last_dim() as u64;
            let fv = match fill {
                MaskFill::NegInf => f32::NEG_INFINITY,
                MaskFill::Zero => 0.0,
            };
            let n = x[0].len() as u64;
            let dx = up_f32(d, x[0].data())?;
            let mut y = zeros_f32(d, x[0].len())?;
            // (const float* x, float* y, u64 n, u64 t, float fill)
            let args = &mut [
                Arg::In(&dx),
                Arg::Out(&mut y),
                Arg::U64(n),
                Arg::U64(t),
                Arg::F32(fv),
            ];
            d.launch("rp_causal_mask", elementwise(n), args)?;
            down_f32(d, &y, x[0].len())
        }
        Op::SumAxis0 | Op::MeanAxis0 => {
            let (r, c) = rows_cols(x[0]);
            let dx = up_f32(d, x[0].data())?;
            let mut y = zeros_f32(d, c as usize)?;
            // (const float* x, float* y, u64 rows, u64 cols, int mean, float rf)
            let args = &mut [
                Arg::In(&dx),
                Arg::Out(&mut y),
                Arg::U64(r),
                Arg::U64(c),
                Arg::I32(matches!(op, Op::MeanAxis0) as i32),
                Arg::F32(r as f32),
            ];
            d.launch("rp_sum_axis0", columns(c), args)?;
            down_f32(d, &y, c as usize)
        }
        Op::SumLast | Op::MeanLast => {
            let (r, c) = rows_cols(x[0]);
            let dx = up_f32(d, x[0].data())?;
            let mut y = zeros_f32(d, r as usize)?;
            sum_last(d, &dx, &mut y, r, c, matches!(op, Op::MeanLast))?;
            down_f32(d, &y, r as usize)
        }
        Op::Transpose => {
            let (r, c) = (x[0].shape()[0] as u64, x[0].shape()[1] as u64);
            if r.div_ceil(32) > MAX_BLOCKS {
                return Err(d.err(format!("transpose: {r} rows is too many")));
            }
            let dx = up_f32(d, x[0].data())?;
            let mut y = zeros_f32(d, x[0].len())?;
            let cfg = LaunchConfig {
                grid_dim: (c.div_ceil(32) as u32, r.div_ceil(32) as u32, 1),
                block_dim: (32, 8, 1),
                shared_mem_bytes: 0,
            };
            // (const float* x, float* y, u64 r, u64 c)
            let args = &mut [Arg::In(&dx), Arg::Out(&mut y), Arg::U64(r), Arg::U64(c)];
            d.launch("rp_transpose", cfg, args)?;
            down_f32(d, &y, x[0].len())
        }
        Op::Reshape { .. } => Ok(x[0].data().to_vec()),
        Op::Permute { perm } => {
            let s = x[0].shape();
            let rank = s.len();
            let mut in_strides = vec![1u64; rank];
            for k in (0..rank.saturating_sub(1)).rev() {
                in_strides[k] = in_strides[k + 1] * s[k + 1] as u64;
            }
            let mut meta: Vec<u64> = out_shape.iter().map(|&v| v as u64).collect();
            meta.extend(perm.iter().map(|&p| in_strides[p]));
            let n = x[0].len() as u64;
            let (dx, dmeta) = (up_f32(d, x[0].data())?, up_u64(d, &meta)?);
            let mut y = zeros_f32(d, x[0].len())?;
            // (const float* x, float* y, const u64* meta, u64 n, int rank)
            let args = &mut [
                Arg::In(&dx),
                Arg::Out(&mut y),
                Arg::In(&dmeta),
                Arg::U64(n),
                Arg::I32(rank as i32),
            ];
            d.launch("rp_permute", elementwise(n), args)?;
            down_f32(d, &y, x[0].len())
        }
        Op::SgdMomentumBuf { momentum } => {
            map2(d, "rp_sgd_momentum_buf", x[0], x[1], *momentum, 0.0)
        }
        Op::SgdUpdate { lr } => map2(d, "rp_sgd_update", x[0], x[1], *lr, 0.0),
        Op::AdamM { beta1 } => map2(d, "rp_adam_m", x[0], x[1], *beta1, 1.0 - *beta1),
        Op::AdamV { beta2 } => map2(d, "rp_adam_v", x[0], x[1], *beta2, 1.0 - *beta2),
        Op::AdamWUpdate {
            lr,
            eps,
            weight_decay,
        } => {
            let n = x[0].len() as u64;
            let ins = [
                up_f32(d, x[0].data())?,
                up_f32(d, x[1].data())?,
                up_f32(d, x[2].data())?,
            ];
            let mut y = zeros_f32(d, x[0].len())?;
            // (p, m, v, float* y, u64 n, float bc1, float bc2, float lr, float eps, float wd)
            // with the bias corrections 1 - beta^t in f32, as the CPU.
            let args = &mut [
                Arg::In(&ins[0]),
                Arg::In(&ins[1]),
                Arg::In(&ins[2]),
                Arg::Out(&mut y),
                Arg::U64(n),
                Arg::F32(1.0 - x[3].data()[0]),
                Arg::F32(1.0 - x[4].data()[0]),
                Arg::F32(*lr),
                Arg::F32(*eps),
                Arg::F32(*weight_decay),
            ];
            d.launch("rp_adamw_update", elementwise(n), args)?;
            down_f32(d, &y, x[0].len())
        }
    }
}
