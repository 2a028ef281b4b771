//! Running RepOps ops as kernels on a [`Device`]: argument marshalling, launch shapes and
//! the host-side preparation (index checks, `embedding_backward`'s position lists), over
//! tensors that stay in device memory between ops ([`Resident`], carried by a
//! [`repops::DeviceTensor`]). The CUDA backend is this code on the GPU; the unit tests
//! run the same code on a host emulation of the CUDA execution model (`emu/emu.cpp`).

use cudarc::driver::LaunchConfig;
use repops::ops::index;
use repops::{DeviceTensor, Digest, MaskFill, Op, RepOpsError, Tensor};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

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
    /// The GEMM kernel every product must use, overriding [`gemm_choice`] (tests).
    fn forced_gemm(&self) -> Option<GemmKernel> {
        None
    }
    /// Copy the first `bytes` of `src` into `dst` at byte `offset`, on the device.
    fn copy_into(&self, src: &Self::Buf, dst: &mut Self::Buf, offset: usize, bytes: usize)
        -> R<()>;
    /// Where the bytes moved by [`up_f32`] and [`down_f32`] are counted.
    fn transfers(&self) -> &TransferCounter;

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

/// Bytes moved between host and device, counted by every upload and download.
#[derive(Debug, Default)]
pub struct TransferCounter {
    host_to_device: AtomicU64,
    device_to_host: AtomicU64,
}

/// A snapshot of a [`TransferCounter`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transfers {
    /// Bytes uploaded (tensors, index lists, launch metadata).
    pub host_to_device: u64,
    /// Bytes downloaded.
    pub device_to_host: u64,
}

impl TransferCounter {
    /// The bytes moved so far.
    pub fn get(&self) -> Transfers {
        Transfers {
            host_to_device: self.host_to_device.load(Ordering::Relaxed),
            device_to_host: self.device_to_host.load(Ordering::Relaxed),
        }
    }
}

fn up_bytes<D: Device>(d: &D, bytes: &[u8]) -> R<D::Buf> {
    let b = d.upload(bytes)?;
    d.transfers()
        .host_to_device
        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    Ok(b)
}

pub(crate) fn up_f32<D: Device>(d: &D, v: &[f32]) -> R<D::Buf> {
    up_bytes(d, bytemuck::cast_slice(v))
}

fn up_u32<D: Device>(d: &D, v: &[u32]) -> R<D::Buf> {
    up_bytes(d, bytemuck::cast_slice(v))
}

fn up_u64<D: Device>(d: &D, v: &[u64]) -> R<D::Buf> {
    up_bytes(d, bytemuck::cast_slice(v))
}

/// A buffer of `n` f32 zeros (at least one element: no zero-size allocations).
pub(crate) fn zeros_f32<D: Device>(d: &D, n: usize) -> R<D::Buf> {
    d.zeros(4 * n.max(1))
}

/// The first `n` f32 of a buffer.
pub(crate) fn down_f32<D: Device>(d: &D, b: &D::Buf, n: usize) -> R<Vec<f32>> {
    let bytes = d.download(b)?;
    d.transfers()
        .device_to_host
        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    if bytes.len() < 4 * n {
        return Err(d.err(format!("short download: {} bytes for {n} f32", bytes.len())));
    }
    Ok(bytes[..4 * n]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Index inputs as u32 after the CPU reference's checks.
fn indices<D: Device>(d: &D, op: &'static str, t: &In<'_, D::Buf>, limit: usize) -> R<Vec<u32>> {
    if limit > u32::MAX as usize {
        return Err(d.err(format!("{op}: index range {limit} exceeds u32")));
    }
    host(d, t)?
        .data()
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

/// A tensor in a device's memory: the buffer (at least 4 bytes, f32 little-endian) and,
/// once known, the same elements on the host (what was uploaded, or what a download
/// returned), so that index inputs and repeated downloads cost no transfer.
pub(crate) struct Resident<B> {
    buf: B,
    host: OnceLock<Tensor>,
}

/// One input of an op: its device buffer and shape.
struct In<'a, B> {
    r: &'a Resident<B>,
    shape: &'a [usize],
}

impl<B> In<'_, B> {
    fn buf(&self) -> &B {
        &self.r.buf
    }
    fn len(&self) -> usize {
        self.shape.iter().product()
    }
    fn last_dim(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }
    /// `(rows, last)`, as the CPU reference's `rows_cols`.
    fn rows_cols(&self) -> (u64, u64) {
        let c = self.last_dim();
        let r = self.len().checked_div(c).unwrap_or(0);
        (r as u64, c as u64)
    }
}

/// The elements of an input on the host (its mirror, or a download that fills it).
fn host<'a, D: Device>(d: &D, x: &In<'a, D::Buf>) -> R<&'a Tensor> {
    if x.r.host.get().is_none() {
        let data = down_f32(d, &x.r.buf, x.len())?;
        let _ = x.r.host.set(Tensor::new(x.shape.to_vec(), data)?);
    }
    x.r.host
        .get()
        .ok_or_else(|| d.err("host copy of a device tensor is missing"))
}

/// Upload a host tensor; the device tensor keeps the host tensor as its mirror.
pub(crate) fn upload<D: Device>(d: &D, t: &Tensor) -> R<DeviceTensor>
where
    D::Buf: Send + Sync + 'static,
{
    let r = resident_of(d, t)?;
    Ok(DeviceTensor::device(
        d.label(),
        t.shape().to_vec(),
        Arc::new(r),
    ))
}

fn resident_of<D: Device>(d: &D, t: &Tensor) -> R<Resident<D::Buf>> {
    let buf = if t.is_empty() {
        zeros_f32(d, 0)?
    } else {
        up_f32(d, t.data())?
    };
    let host = OnceLock::new();
    let _ = host.set(t.clone());
    Ok(Resident { buf, host })
}

fn resident<'a, D: Device>(d: &D, t: &'a DeviceTensor) -> Option<&'a Resident<D::Buf>>
where
    D::Buf: 'static,
{
    t.buffer::<Resident<D::Buf>>()
        .filter(|_| t.device_name() == Some(d.label()))
}

/// A device tensor on the host: the mirror if there is one, else a download.
pub(crate) fn download<D: Device>(d: &D, t: &DeviceTensor) -> R<Tensor>
where
    D::Buf: 'static,
{
    if let Some(h) = t.as_host() {
        return Ok(h.clone());
    }
    let r = resident(d, t).ok_or_else(|| foreign(d, t))?;
    let h = host(
        d,
        &In {
            r,
            shape: t.shape(),
        },
    )?;
    // A reshaped view shares the buffer (and its host copy) under another shape.
    if h.shape() == t.shape() {
        Ok(h.clone())
    } else {
        h.clone().reshape(t.shape())
    }
}

/// Ranks whose header the hash kernel builds from its arguments; a tensor of higher rank
/// (none in the shipped programs) is hashed on the host.
const HASH_MAX_RANK: usize = 6;

/// `Backend::digests` on a device: every R6 hash and finiteness flag computed there
/// (`hash.cu`) by two launches for the whole batch, after the tensors are copied into one
/// buffer on the device; the batch's descriptors (80 bytes a tensor) go up, 36 bytes a
/// tensor come down. Tensors not in this device's memory, and ranks above
/// [`HASH_MAX_RANK`], are hashed on the host.
pub(crate) fn digests<D: Device>(d: &D, ts: &[&DeviceTensor]) -> R<Vec<Digest>>
where
    D::Buf: 'static,
{
    let on_device: Vec<(usize, &Resident<D::Buf>)> = ts
        .iter()
        .enumerate()
        .filter(|(_, t)| t.shape().len() <= HASH_MAX_RANK)
        .filter_map(|(i, t)| resident(d, t).map(|r| (i, r)))
        .collect();
    let mut out = vec![None; ts.len()];
    if !on_device.is_empty() {
        // Descriptors: word offset, elements, rank, dims[6], first chunk; then a sentinel
        // record whose last field is the total number of chunks.
        let mut desc = Vec::with_capacity(10 * (on_device.len() + 1));
        let (mut words, mut chunks) = (0u64, 0u64);
        for (i, _) in &on_device {
            let t = ts[*i];
            let mut dims = [0u64; HASH_MAX_RANK];
            for (k, &x) in t.shape().iter().enumerate() {
                dims[k] = x as u64;
            }
            desc.extend([words, t.len() as u64, t.shape().len() as u64]);
            desc.extend(dims);
            desc.push(chunks);
            words += t.len() as u64;
            let len = 18 + 8 * t.shape().len() as u64 + 4 * t.len() as u64;
            chunks += len.div_ceil(1024);
        }
        desc.extend([0; 9]);
        desc.push(chunks);
        let mut data = d.zeros(4 * words.max(1) as usize)?;
        for (slot, (i, r)) in on_device.iter().enumerate() {
            let n = ts[*i].len();
            if n > 0 {
                d.copy_into(&r.buf, &mut data, 4 * desc[10 * slot] as usize, 4 * n)?;
            }
        }
        let tensors = on_device.len() as u64;
        if tensors > MAX_BLOCKS {
            return Err(d.err(format!("{tensors} tensors to hash in one batch")));
        }
        let desc_buf = up_u64(d, &desc)?;
        // Two halves: the chunk CVs, then the tree's next levels; 8 words a CV.
        let mut cvs = d.zeros(2 * 8 * 4 * chunks as usize)?;
        let mut words_out = d.zeros(9 * 4 * on_device.len())?;
        d.launch(
            "rp_blake3_chunks",
            elementwise(chunks),
            &mut [
                Arg::In(&data),
                Arg::In(&desc_buf),
                Arg::U64(tensors),
                Arg::Out(&mut cvs),
                Arg::Out(&mut words_out),
            ],
        )?;
        let tree = LaunchConfig {
            grid_dim: (tensors as u32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        d.launch(
            "rp_blake3_tree",
            tree,
            &mut [
                Arg::In(&desc_buf),
                Arg::U64(tensors),
                Arg::Out(&mut cvs),
                Arg::Out(&mut words_out),
            ],
        )?;
        let bytes = d.download(&words_out)?;
        d.transfers()
            .device_to_host
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        for (slot, (i, _)) in on_device.iter().enumerate() {
            let rec = bytes
                .get(36 * slot..36 * slot + 36)
                .ok_or_else(|| d.err("short download of tensor hashes"))?;
            let mut hash = [0u8; 32];
            hash.copy_from_slice(&rec[..32]);
            out[*i] = Some(Digest {
                hash,
                finite: rec[32..36] == [0, 0, 0, 0],
            });
        }
    }
    ts.iter()
        .zip(out)
        .map(|(t, o)| match o {
            Some(g) => Ok(g),
            None => download(d, t).map(|h| Digest::of(&h)),
        })
        .collect()
}

fn foreign<D: Device>(d: &D, t: &DeviceTensor) -> RepOpsError {
    d.err(format!(
        "tensor {:?} is in {}'s memory, not {}'s",
        t.shape(),
        t.device_name().unwrap_or("the host"),
        d.label()
    ))
}

/// `Backend::execute` on a device: the CPU's checks, the kernels, NaNs canonicalised on
/// the device; the output stays there. Host tensors among the inputs are uploaded.
/// `reshape` shares its input's buffer. Ops with an empty input or output have nothing
/// to compute and are answered by the CPU reference (zeros or a copy, and the same
/// index checks).
pub(crate) fn execute<D: Device>(d: &D, op: &Op, inputs: &[&DeviceTensor]) -> R<DeviceTensor>
where
    D::Buf: Send + Sync + 'static,
{
    let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape()).collect();
    let out_shape = op.output_shape(&shapes)?;
    op.check_params()?;
    if let Op::Reshape { .. } = op {
        if let Some(x) = inputs.first() {
            return x.reshaped(&out_shape);
        }
    }
    let out_len: usize = out_shape.iter().product();
    if out_len == 0 || inputs.iter().any(|t| t.is_empty()) {
        let host = inputs
            .iter()
            .map(|t| download(d, t))
            .collect::<R<Vec<_>>>()?;
        let refs: Vec<&Tensor> = host.iter().collect();
        return upload(d, &op.execute(&refs)?);
    }
    // Host tensors (not uploaded by this backend) go up first.
    let uploaded = inputs
        .iter()
        .map(|t| match (resident(d, t), t.as_host()) {
            (Some(_), _) => Ok(None),
            (None, Some(h)) => resident_of(d, h).map(Some),
            (None, None) => Err(foreign(d, t)),
        })
        .collect::<R<Vec<_>>>()?;
    let ins = inputs
        .iter()
        .zip(&uploaded)
        .map(|(t, u)| {
            let r = u
                .as_ref()
                .or_else(|| resident(d, t))
                .ok_or_else(|| foreign(d, t))?;
            Ok(In {
                r,
                shape: t.shape(),
            })
        })
        .collect::<R<Vec<_>>>()?;
    // Every kernel stores its outputs canonical (`rp_canon`, R1): no pass over them.
    let buf = compute(d, op, &ins, &out_shape)?;
    let r = Resident {
        buf,
        host: OnceLock::new(),
    };
    Ok(DeviceTensor::device(d.label(), out_shape, Arc::new(r)))
}

/// `MAP1` kernels: `(const float* x, float* y, u64 n, float s)`.
fn map1<D: Device>(d: &D, kernel: &str, x: &In<'_, D::Buf>, s: f32) -> R<D::Buf> {
    let n = x.len() as u64;
    let mut y = zeros_f32(d, x.len())?;
    let args = &mut [Arg::In(x.buf()), Arg::Out(&mut y), Arg::U64(n), Arg::F32(s)];
    d.launch(kernel, elementwise(n), args)?;
    Ok(y)
}

/// `MAP2` kernels: `(const float* a, const float* b, float* y, u64 n, float s, float t)`.
fn map2<D: Device>(
    d: &D,
    kernel: &str,
    a: &In<'_, D::Buf>,
    b: &In<'_, D::Buf>,
    s: f32,
    t: f32,
) -> R<D::Buf> {
    let n = a.len() as u64;
    let mut y = zeros_f32(d, a.len())?;
    let args = &mut [
        Arg::In(a.buf()),
        Arg::In(b.buf()),
        Arg::Out(&mut y),
        Arg::U64(n),
        Arg::F32(s),
        Arg::F32(t),
    ];
    d.launch(kernel, elementwise(n), args)?;
    Ok(y)
}

/// Row kernels `(const float* x, float* y, u64 rows, u64 c)`.
fn rows1<D: Device>(d: &D, kernel: &str, x: &In<'_, D::Buf>) -> R<D::Buf> {
    let (r, c) = x.rows_cols();
    let mut y = zeros_f32(d, x.len())?;
    let args = &mut [Arg::In(x.buf()), Arg::Out(&mut y), Arg::U64(r), Arg::U64(c)];
    d.launch(kernel, per_row(r), args)?;
    Ok(y)
}

/// Row kernels `(const float* y, const float* dy, float* dx, u64 rows, u64 c)`.
fn rows2<D: Device>(d: &D, kernel: &str, y: &In<'_, D::Buf>, dy: &In<'_, D::Buf>) -> R<D::Buf> {
    let (r, c) = y.rows_cols();
    let mut o = zeros_f32(d, y.len())?;
    let args = &mut [
        Arg::In(y.buf()),
        Arg::In(dy.buf()),
        Arg::Out(&mut o),
        Arg::U64(r),
        Arg::U64(c),
    ];
    d.launch(kernel, per_row(r), args)?;
    Ok(o)
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

/// One R2 GEMM kernel of `gemm.cu`: a block of `threads` computes a `bm` x `bn` tile of
/// C. Every kernel gives the same bits (R2: each output's fma chain is the same); they
/// differ only in speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmKernel {
    /// The `extern "C"` name in `gemm.cu` (listed in `kernels::MODULES`).
    pub name: &'static str,
    /// Rows of C per block.
    pub bm: u64,
    /// Columns of C per block.
    pub bn: u64,
    /// Threads per block (`__launch_bounds__`).
    pub threads: u32,
}

const fn gk(name: &'static str, bm: u64, bn: u64, threads: u32) -> GemmKernel {
    GemmKernel {
        name,
        bm,
        bn,
        threads,
    }
}

/// Every GEMM kernel, the production ones first in the order [`gemm`] considers them:
/// the first whose grid gives every SM at least one block, else the last of
/// [`GEMM_PRODUCTION`] (the smallest tile). The others are variants kept for benchmarks
/// and tests ([`gemm_with`]).
pub const GEMM_KERNELS: [GemmKernel; 7] = [
    // The production three, ranked by the H200 run of 2026-11-30 (repops-cuda/PARITY.md):
    // w128_k8 best from n = 2048 up, w128x64 at 1024, the 32x32 tile at 512.
    gk("rp_gemm_w128_k8", 128, 128, 256),
    gk("rp_gemm_w128x64", 128, 64, 256),
    gk("rp_gemm_32", 32, 32, 256),
    gk("rp_gemm_w128_k16", 128, 128, 256),
    gk("rp_gemm_w64", 64, 64, 128),
    gk("rp_gemm_w128_t128", 128, 128, 128),
    gk("rp_gemm_128", 128, 128, 256),
];

/// How many of [`GEMM_KERNELS`] (from the first) the production choice draws from.
pub const GEMM_PRODUCTION: usize = 3;

impl GemmKernel {
    /// The kernel named `name`, if it is one of [`GEMM_KERNELS`].
    pub fn by_name(name: &str) -> Option<GemmKernel> {
        GEMM_KERNELS.iter().find(|k| k.name == name).copied()
    }

    /// Blocks of C for an `[m, n]` output, times `batches`.
    pub fn blocks(&self, (batches, m, n): (u64, u64, u64)) -> u64 {
        m.div_ceil(self.bm) * n.div_ceil(self.bn) * batches
    }
}

/// The production kernel for a shape on a device with `sm_count` SMs: the largest tile
/// that still gives nine SMs in ten a block (n = 1024 on an H200's 132 SMs: 128 blocks of
/// 128x64 measured faster than 512 of 64x64). The bits never depend on it.
pub fn gemm_choice((batches, m, n): (u64, u64, u64), sm_count: u32) -> GemmKernel {
    let table = &GEMM_KERNELS[..GEMM_PRODUCTION];
    table
        .iter()
        .find(|k| 10 * k.blocks((batches, m, n)) >= 9 * sm_count as u64)
        .unwrap_or(&table[GEMM_PRODUCTION - 1])
        .to_owned()
}

/// R2 GEMM on device buffers: `C[g] = op(A[g]) op(B[g])` for `g` in `0..batches`, `A[g]`
/// `[M,K]` (`[K,M]` if `ta`), `B[g]` `[K,N]` (`[N,K]` if `tb`), row-major and packed.
/// The kernel is the device's forced one if it has one (tests), else [`gemm_choice`].
pub(crate) fn gemm<D: Device>(
    d: &D,
    bufs: (&D::Buf, &D::Buf, &mut D::Buf),
    dims: (u64, u64, u64, u64),
    trans: (bool, bool),
) -> R<()> {
    let (batches, m, n, _) = dims;
    let kernel = d
        .forced_gemm()
        .unwrap_or_else(|| gemm_choice((batches, m, n), d.sm_count()));
    gemm_with(d, kernel, bufs, dims, trans)
}

/// [`gemm`] with a given kernel (every kernel gives the same bits).
pub(crate) fn gemm_with<D: Device>(
    d: &D,
    kernel: GemmKernel,
    (a, b, c): (&D::Buf, &D::Buf, &mut D::Buf),
    (batches, m, n, k): (u64, u64, u64, u64),
    (ta, tb): (bool, bool),
) -> R<()> {
    let (a_i, a_k) = if ta { (1, m) } else { (k, 1) };
    let (b_k, b_j) = if tb { (1, k) } else { (n, 1) };
    let (gx, gy) = (n.div_ceil(kernel.bn), m.div_ceil(kernel.bm));
    if gx > i32::MAX as u64 || gy > MAX_BLOCKS {
        return Err(d.err(format!("mat_mul: output [{m}, {n}] is too large")));
    }
    let cfg = LaunchConfig {
        grid_dim: (gx as u32, gy as u32, batches.clamp(1, MAX_BLOCKS) as u32),
        block_dim: (kernel.threads, 1, 1),
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
    d.launch(kernel.name, cfg, args)
}

fn gemm_dev<D: Device>(
    d: &D,
    a: &In<'_, D::Buf>,
    b: &In<'_, D::Buf>,
    dims: (u64, u64, u64, u64),
    trans: (bool, bool),
) -> R<D::Buf> {
    let len = (dims.0 * dims.1 * dims.2) as usize;
    let mut c = zeros_f32(d, len)?;
    gemm(d, (a.buf(), b.buf(), &mut c), dims, trans)?;
    Ok(c)
}

fn compute<D: Device>(d: &D, op: &Op, x: &[In<'_, D::Buf>], out_shape: &[usize]) -> R<D::Buf> {
    let name = op.name();
    let out_len: usize = out_shape.iter().product();
    match op {
        Op::MatMul { ta, tb } => {
            let (m, n) = (out_shape[0] as u64, out_shape[1] as u64);
            let k = if *ta { x[0].shape[0] } else { x[0].shape[1] } as u64;
            gemm_dev(d, &x[0], &x[1], (1, m, n, k), (*ta, *tb))
        }
        Op::BatchedMatMul { ta, tb } => {
            let s = out_shape;
            let k = if *ta { x[0].shape[1] } else { x[0].shape[2] } as u64;
            let dims = (s[0] as u64, s[1] as u64, s[2] as u64, k);
            gemm_dev(d, &x[0], &x[1], dims, (*ta, *tb))
        }
        Op::AddBias => {
            let (n, c) = (x[0].len() as u64, x[0].last_dim() as u64);
            let (dx, db) = (x[0].buf(), x[1].buf());
            let mut y = zeros_f32(d, x[0].len())?;
            let args = &mut [
                Arg::In(dx),
                Arg::In(db),
                Arg::Out(&mut y),
                Arg::U64(n),
                Arg::U64(c),
            ];
            d.launch("rp_add_bias", elementwise(n), args)?;
            Ok(y)
        }
        Op::Add => map2(d, "rp_add", &x[0], &x[1], 0.0, 0.0),
        Op::Sub => map2(d, "rp_sub", &x[0], &x[1], 0.0, 0.0),
        Op::Mul => map2(d, "rp_mul", &x[0], &x[1], 0.0, 0.0),
        Op::Scale { s } => map1(d, "rp_scale", &x[0], *s),
        Op::AddScalar { s } => map1(d, "rp_add_scalar", &x[0], *s),
        Op::Relu => map1(d, "rp_relu", &x[0], 0.0),
        Op::ReluBackward => map2(d, "rp_relu_backward", &x[0], &x[1], 0.0, 0.0),
        Op::Gelu => map1(d, "rp_gelu_k", &x[0], 0.0),
        Op::GeluBackward => map2(d, "rp_gelu_backward", &x[0], &x[1], 0.0, 0.0),
        Op::Tanh => map1(d, "rp_tanh_k", &x[0], 0.0),
        Op::TanhBackward => map2(d, "rp_tanh_backward", &x[0], &x[1], 0.0, 0.0),
        Op::Sigmoid => map1(d, "rp_sigmoid_k", &x[0], 0.0),
        Op::Silu => map1(d, "rp_silu_k", &x[0], 0.0),
        Op::SiluBackward => map2(d, "rp_silu_backward", &x[0], &x[1], 0.0, 0.0),
        Op::SigmoidBackward => map2(d, "rp_sigmoid_backward", &x[0], &x[1], 0.0, 0.0),
        Op::Exp => map1(d, "rp_exp_k", &x[0], 0.0),
        Op::Log => map1(d, "rp_log_k", &x[0], 0.0),
        Op::Rsqrt => map1(d, "rp_rsqrt_k", &x[0], 0.0),
        Op::Softmax => rows1(d, "rp_softmax", &x[0]),
        Op::SoftmaxBackward => rows2(d, "rp_softmax_backward", &x[0], &x[1]),
        Op::LogSoftmax => rows1(d, "rp_log_softmax", &x[0]),
        Op::LogSoftmaxBackward => rows2(d, "rp_log_softmax_backward", &x[0], &x[1]),
        Op::CrossEntropy | Op::CrossEntropyBackward => {
            let (n, c) = (x[0].shape[0] as u64, x[0].shape[1] as u64);
            let labels = up_u32(d, &indices(d, name, &x[1], c as usize)?)?;
            let dx = x[0].buf();
            if matches!(op, Op::CrossEntropy) {
                let mut loss = zeros_f32(d, n as usize)?;
                // (const float* x, const u32* labels, float* loss, u64 rows, u64 c)
                let args = &mut [
                    Arg::In(dx),
                    Arg::In(&labels),
                    Arg::Out(&mut loss),
                    Arg::U64(n),
                    Arg::U64(c),
                ];
                d.launch("rp_cross_entropy_rows", per_row(n), args)?;
                // sum(L) / N: the R3 sum of the loss vector as one row, divided by N.
                let mut y = zeros_f32(d, 1)?;
                sum_last(d, &loss, &mut y, 1, n, true)?;
                Ok(y)
            } else {
                let mut y = zeros_f32(d, x[0].len())?;
                // (const float* x, const u32* labels, float* y, u64 rows, u64 c, float nf)
                let args = &mut [
                    Arg::In(dx),
                    Arg::In(&labels),
                    Arg::Out(&mut y),
                    Arg::U64(n),
                    Arg::U64(c),
                    Arg::F32(n as f32),
                ];
                d.launch("rp_cross_entropy_backward", per_row(n), args)?;
                Ok(y)
            }
        }
        Op::LayerNorm { eps } | Op::LayerNormBackwardInput { eps } => {
            let (r, dd) = x[0].rows_cols();
            let ins = [x[0].buf(), x[1].buf(), x[2].buf()];
            let mut y = zeros_f32(d, x[0].len())?;
            let kernel = if matches!(op, Op::LayerNorm { .. }) {
                "rp_layer_norm"
            } else {
                "rp_layer_norm_backward_input"
            };
            // (const float*, const float*, const float*, float* y, u64 rows, u64 d,
            // float df, float eps)
            let args = &mut [
                Arg::In(ins[0]),
                Arg::In(ins[1]),
                Arg::In(ins[2]),
                Arg::Out(&mut y),
                Arg::U64(r),
                Arg::U64(dd),
                Arg::F32(dd as f32),
                Arg::F32(*eps),
            ];
            d.launch(kernel, per_row(r), args)?;
            Ok(y)
        }
        Op::RmsNorm { eps } | Op::RmsNormBackwardInput { eps } => {
            let (r, dd) = x[0].rows_cols();
            let mut y = zeros_f32(d, x[0].len())?;
            let mut args = vec![Arg::In(x[0].buf()), Arg::In(x[1].buf())];
            if let Op::RmsNormBackwardInput { .. } = op {
                args.push(Arg::In(x[2].buf()));
            }
            let kernel = if args.len() == 2 {
                "rp_rms_norm"
            } else {
                "rp_rms_norm_backward_input"
            };
            // (x, gamma[, dy], float* y, u64 rows, u64 d, float df, float eps)
            args.extend([
                Arg::Out(&mut y),
                Arg::U64(r),
                Arg::U64(dd),
                Arg::F32(dd as f32),
                Arg::F32(*eps),
            ]);
            d.launch(kernel, per_row(r), &mut args)?;
            Ok(y)
        }
        Op::LayerNormBackwardGamma { eps } | Op::RmsNormBackwardGamma { eps } => {
            let (r, dd) = x[0].rows_cols();
            let (dx, ddy) = (x[0].buf(), x[1].buf());
            let mut mean = zeros_f32(d, r as usize)?;
            let mut rstd = zeros_f32(d, r as usize)?;
            // (const float* x, float* mean, float* rstd, u64 rows, u64 d, float df, float eps)
            let args = &mut [
                Arg::In(dx),
                Arg::Out(&mut mean),
                Arg::Out(&mut rstd),
                Arg::U64(r),
                Arg::U64(dd),
                Arg::F32(dd as f32),
                Arg::F32(*eps),
            ];
            let stats = if matches!(op, Op::RmsNormBackwardGamma { .. }) {
                "rp_rms_stats"
            } else {
                "rp_layer_norm_stats"
            };
            d.launch(stats, per_row(r), args)?;
            let mut y = zeros_f32(d, dd as usize)?;
            // (x, dy, mean, rstd, float* y, u64 rows, u64 cols)
            let args = &mut [
                Arg::In(dx),
                Arg::In(ddy),
                Arg::In(&mean),
                Arg::In(&rstd),
                Arg::Out(&mut y),
                Arg::U64(r),
                Arg::U64(dd),
            ];
            d.launch("rp_layer_norm_backward_gamma", columns(dd), args)?;
            Ok(y)
        }
        Op::Embedding => {
            let (v, dd) = (x[0].shape[0], x[0].shape[1] as u64);
            let ids = indices(d, name, &x[1], v)?;
            let n = ids.len() as u64;
            let (tab, dids) = (x[0].buf(), up_u32(d, &ids)?);
            let mut y = zeros_f32(d, out_len)?;
            // (const float* table, const u32* ids, float* y, u64 n, u64 d)
            let args = &mut [
                Arg::In(tab),
                Arg::In(&dids),
                Arg::Out(&mut y),
                Arg::U64(n),
                Arg::U64(dd),
            ];
            d.launch("rp_embedding", elementwise(n * dd), args)?;
            Ok(y)
        }
        Op::EmbeddingBackward { vocab } => {
            let dd = out_shape[1] as u64;
            let ids = indices(d, name, &x[0], *vocab)?;
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
            let ddy = x[1].buf();
            let (dst, dpos) = (up_u32(d, &starts)?, up_u32(d, &positions)?);
            let vocab = *vocab as u64;
            let mut y = zeros_f32(d, out_len)?;
            // (const float* dy, const u32* starts, const u32* positions, float* y,
            // u64 vocab, u64 d)
            let args = &mut [
                Arg::In(ddy),
                Arg::In(&dst),
                Arg::In(&dpos),
                Arg::Out(&mut y),
                Arg::U64(vocab),
                Arg::U64(dd),
            ];
            d.launch("rp_embedding_backward", elementwise(vocab * dd), args)?;
            Ok(y)
        }
        Op::Dropout { p, key } => {
            let n = x[0].len() as u64;
            let mut y = zeros_f32(d, x[0].len())?;
            // (const float* x, const float* step, float* y, u64 n, float p, u32 key_lo, u32 key_hi)
            let args = &mut [
                Arg::In(x[0].buf()),
                Arg::In(x[1].buf()),
                Arg::Out(&mut y),
                Arg::U64(n),
                Arg::F32(*p),
                Arg::U32(*key as u32),
                Arg::U32((*key >> 32) as u32),
            ];
            d.launch("rp_dropout", elementwise(n), args)?;
            Ok(y)
        }
        Op::Rope { base, inverse } => {
            let sh = &x[0].shape;
            let (t, dd) = (sh[sh.len() - 2] as u64, sh[sh.len() - 1] as u64);
            let rows = x[0].len() as u64 / dd.max(1);
            let dx = x[0].buf();
            let mut y = zeros_f32(d, x[0].len())?;
            // (const float* x, float* y, u64 rows, u64 t, u64 d, float lb, int inverse):
            // log(base) once here, not per element.
            let args = &mut [
                Arg::In(dx),
                Arg::Out(&mut y),
                Arg::U64(rows),
                Arg::U64(t),
                Arg::U64(dd),
                Arg::F32(repops::math::log(*base)),
                Arg::I32(i32::from(*inverse)),
            ];
            d.launch("rp_rope", elementwise(rows * (dd / 2)), args)?;
            Ok(y)
        }
        Op::CausalMask { fill } => {
            let t = x[0].last_dim() as u64;
            let fv = match fill {
                MaskFill::NegInf => f32::NEG_INFINITY,
                MaskFill::Zero => 0.0,
            };
            let n = x[0].len() as u64;
            let dx = x[0].buf();
            let mut y = zeros_f32(d, x[0].len())?;
            // (const float* x, float* y, u64 n, u64 t, float fill)
            let args = &mut [
                Arg::In(dx),
                Arg::Out(&mut y),
                Arg::U64(n),
                Arg::U64(t),
                Arg::F32(fv),
            ];
            d.launch("rp_causal_mask", elementwise(n), args)?;
            Ok(y)
        }
        Op::SumAxis0 | Op::MeanAxis0 => {
            let (r, c) = x[0].rows_cols();
            let dx = x[0].buf();
            let mut y = zeros_f32(d, c as usize)?;
            // (const float* x, float* y, u64 rows, u64 cols, int mean, float rf)
            let args = &mut [
                Arg::In(dx),
                Arg::Out(&mut y),
                Arg::U64(r),
                Arg::U64(c),
                Arg::I32(matches!(op, Op::MeanAxis0) as i32),
                Arg::F32(r as f32),
            ];
            d.launch("rp_sum_axis0", columns(c), args)?;
            Ok(y)
        }
        Op::SumLast | Op::MeanLast => {
            let (r, c) = x[0].rows_cols();
            let dx = x[0].buf();
            let mut y = zeros_f32(d, r as usize)?;
            sum_last(d, dx, &mut y, r, c, matches!(op, Op::MeanLast))?;
            Ok(y)
        }
        Op::Transpose => {
            let (r, c) = (x[0].shape[0] as u64, x[0].shape[1] as u64);
            if r.div_ceil(32) > MAX_BLOCKS {
                return Err(d.err(format!("transpose: {r} rows is too many")));
            }
            let dx = x[0].buf();
            let mut y = zeros_f32(d, x[0].len())?;
            let cfg = LaunchConfig {
                grid_dim: (c.div_ceil(32) as u32, r.div_ceil(32) as u32, 1),
                block_dim: (32, 8, 1),
                shared_mem_bytes: 0,
            };
            // (const float* x, float* y, u64 r, u64 c)
            let args = &mut [Arg::In(dx), Arg::Out(&mut y), Arg::U64(r), Arg::U64(c)];
            d.launch("rp_transpose", cfg, args)?;
            Ok(y)
        }
        // Answered in `execute` by sharing the buffer; a copy here for completeness.
        Op::Reshape { .. } => up_f32(d, host(d, &x[0])?.data()),
        Op::Permute { perm } => {
            let s = x[0].shape;
            let rank = s.len();
            let mut in_strides = vec![1u64; rank];
            for k in (0..rank.saturating_sub(1)).rev() {
                in_strides[k] = in_strides[k + 1] * s[k + 1] as u64;
            }
            let mut meta: Vec<u64> = out_shape.iter().map(|&v| v as u64).collect();
            meta.extend(perm.iter().map(|&p| in_strides[p]));
            let n = x[0].len() as u64;
            let (dx, dmeta) = (x[0].buf(), up_u64(d, &meta)?);
            let mut y = zeros_f32(d, x[0].len())?;
            // (const float* x, float* y, const u64* meta, u64 n, int rank)
            let args = &mut [
                Arg::In(dx),
                Arg::Out(&mut y),
                Arg::In(&dmeta),
                Arg::U64(n),
                Arg::I32(rank as i32),
            ];
            d.launch("rp_permute", elementwise(n), args)?;
            Ok(y)
        }
        Op::SgdMomentumBuf { momentum } => {
            map2(d, "rp_sgd_momentum_buf", &x[0], &x[1], *momentum, 0.0)
        }
        Op::SgdUpdate { lr } => map2(d, "rp_sgd_update", &x[0], &x[1], *lr, 0.0),
        Op::AdamM { beta1 } => map2(d, "rp_adam_m", &x[0], &x[1], *beta1, 1.0 - *beta1),
        Op::AdamV { beta2 } => map2(d, "rp_adam_v", &x[0], &x[1], *beta2, 1.0 - *beta2),
        Op::AdamWUpdate {
            lr,
            eps,
            weight_decay,
        } => adamw(d, x, *lr, *eps, *weight_decay),
        // A computed scalar (4 bytes) comes to the host and is passed to the kernel, as
        // the Adam powers are.
        Op::AdamWUpdateLr { eps, weight_decay } => {
            let lr = host(d, &x[5])?.data()[0];
            adamw(d, x, lr, *eps, *weight_decay)
        }
        Op::MulScalar => {
            let s = host(d, &x[1])?.data()[0];
            map1(d, "rp_scale", &x[0], s)
        }
        Op::SgdUpdateLr => {
            let lr = host(d, &x[2])?.data()[0];
            map2(d, "rp_sgd_update", &x[0], &x[1], lr, 0.0)
        }
        Op::Im2Col {
            kh,
            kw,
            stride,
            pad,
        } => {
            let s = x[0].shape;
            let image = [s[1], s[2], s[3]];
            window(
                d,
                "rp_im2col",
                x[0].buf(),
                out_len,
                image,
                [*kh, *kw, *stride, *pad],
            )
        }
        Op::Col2Im {
            channels,
            height,
            width,
            kh,
            kw,
            stride,
            pad,
        } => window(
            d,
            "rp_col2im",
            x[0].buf(),
            out_len,
            [*channels, *height, *width],
            [*kh, *kw, *stride, *pad],
        ),
        Op::MaxLast => {
            let (r, c) = x[0].rows_cols();
            let mut y = zeros_f32(d, r as usize)?;
            let args = &mut [
                Arg::In(x[0].buf()),
                Arg::Out(&mut y),
                Arg::U64(r),
                Arg::U64(c),
            ];
            d.launch("rp_max_last", per_row(r), args)?;
            Ok(y)
        }
        Op::MaxLastBackward => rows2(d, "rp_max_last_backward", &x[0], &x[1]),
    }
}

/// `rp_adamw_update` at learning rate `lr`.
fn adamw<D: Device>(
    d: &D,
    x: &[In<'_, D::Buf>],
    lr: f32,
    eps: f32,
    weight_decay: f32,
) -> R<D::Buf> {
    let n = x[0].len() as u64;
    let ins = [x[0].buf(), x[1].buf(), x[2].buf()];
    let mut y = zeros_f32(d, x[0].len())?;
    // (p, m, v, float* y, u64 n, float bc1, float bc2, float lr, float eps, float wd)
    // with the bias corrections 1 - beta^t in f32, as the CPU.
    let args = &mut [
        Arg::In(ins[0]),
        Arg::In(ins[1]),
        Arg::In(ins[2]),
        Arg::Out(&mut y),
        Arg::U64(n),
        Arg::F32(1.0 - host(d, &x[3])?.data()[0]),
        Arg::F32(1.0 - host(d, &x[4])?.data()[0]),
        Arg::F32(lr),
        Arg::F32(eps),
        Arg::F32(weight_decay),
    ];
    d.launch("rp_adamw_update", elementwise(n), args)?;
    Ok(y)
}

/// `rp_im2col` / `rp_col2im(const float* in, float* y, u64 total, u64 c, u64 h, u64 w,
/// u64 kh, u64 kw, u64 stride, u64 pad, u64 oh, u64 ow)`: one thread per output element
/// of `total`, over images of `[c, h, w]`.
fn window<D: Device>(
    d: &D,
    kernel: &str,
    input: &D::Buf,
    total: usize,
    [c, h, w]: [usize; 3],
    [kh, kw, stride, pad]: [usize; 4],
) -> R<D::Buf> {
    let (oh, ow) = repops::ops::window_outs(h, w, [kh, kw, stride, pad]).unwrap_or((0, 0));
    let (oh, ow) = (oh as u64, ow as u64);
    let mut y = zeros_f32(d, total)?;
    let u = |v: usize| Arg::U64(v as u64);
    let args = &mut [
        Arg::In(input),
        Arg::Out(&mut y),
        u(total),
        u(c),
        u(h),
        u(w),
        u(kh),
        u(kw),
        u(stride),
        u(pad),
        Arg::U64(oh),
        Arg::U64(ow),
    ];
    d.launch(kernel, elementwise(total as u64), args)?;
    Ok(y)
}
