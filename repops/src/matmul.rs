//! R2 matrix products: a packed, cache-blocked GEMM with an AVX2+FMA micro-kernel.
//!
//! Contract: `C[i,j] = fold k = 0..K-1 ascending: acc = fma(A[i,k], B[k,j], acc)`,
//! `acc` starting at `+0.0`. The blocking never changes that fold:
//! * K is blocked in `KC` steps *sequentially* inside one task: the accumulator of a
//!   `(i, j)` output is stored to `C` (an exact f32 store) after one K block and
//!   reloaded for the next, so the fma chain is unchanged;
//! * parallelism (rayon) is over blocks of output rows only; each output is owned by
//!   exactly one task, so the bits do not depend on the thread count;
//! * the AVX2 kernel computes, per lane, `vfmadd231ps` = one fma with one rounding,
//!   the same operation as the portable kernel's `f32::mul_add`.
//!
//! `unsafe` is allowed in this module only, for `std::arch` intrinsics behind runtime
//! feature detection.
#![allow(unsafe_code)]

use rayon::prelude::*;
use std::sync::atomic::{AtomicU8, Ordering};

/// Sliver height of the portable and AVX2 kernels.
const MR: usize = 6;
/// Sliver height of the AVX-512 kernel.
const MR12: usize = 12;
const MR_MAX: usize = 12;
/// Panel width of the portable and AVX2 kernels.
const NR16: usize = 16;
/// Panel width of the AVX-512 kernel.
const NR32: usize = 32;
const NR_MAX: usize = 32;
const KC: usize = 256;
const MC_MAX: usize = 96;

/// Which micro-kernel runs. All compute the same bits (one fma per step, K ascending).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kernel {
    /// `f32::mul_add` loops (an `fmaf` call when the build target lacks FMA).
    Portable,
    /// 6x16 AVX2+FMA kernel.
    Avx2,
    /// 12x32 AVX-512F kernel.
    Avx512,
}

/// 0 = no cap, 1 = portable, 2 = at most AVX2.
static KERNEL_CAP: AtomicU8 = AtomicU8::new(0);

/// Force the portable (non-SIMD) kernels, e.g. to test that both give the same bits.
pub fn set_force_portable(on: bool) {
    KERNEL_CAP.store(if on { 1 } else { 0 }, Ordering::SeqCst);
}

/// Cap the kernel used (`None`: best available). For tests and benchmarks.
pub fn set_max_kernel(k: Option<Kernel>) {
    let v = match k {
        None | Some(Kernel::Avx512) => 0,
        Some(Kernel::Portable) => 1,
        Some(Kernel::Avx2) => 2,
    };
    KERNEL_CAP.store(v, Ordering::SeqCst);
}

/// The kernel that runs now: the best the CPU supports, capped by the environment
/// (`REPOPS_FORCE_PORTABLE=1`, or `REPOPS_MAX_KERNEL=portable|avx2`) and by
/// [`set_max_kernel`] / [`set_force_portable`].
pub fn kernel() -> Kernel {
    static DETECTED: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
    let best = *DETECTED.get_or_init(|| {
        let env_cap = match std::env::var("REPOPS_MAX_KERNEL").ok().as_deref() {
            Some("portable") => Kernel::Portable,
            Some("avx2") => Kernel::Avx2,
            _ => Kernel::Avx512,
        };
        let forced =
            std::env::var("REPOPS_FORCE_PORTABLE").is_ok_and(|v| !v.is_empty() && v != "0");
        let hw = detect();
        if forced {
            Kernel::Portable
        } else {
            hw.min(env_cap)
        }
    });
    match KERNEL_CAP.load(Ordering::Relaxed) {
        1 => Kernel::Portable,
        2 => best.min(Kernel::Avx2),
        _ => best,
    }
}

fn detect() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx2") && has!("fma") {
            if has!("avx512f") {
                return Kernel::Avx512;
            }
            return Kernel::Avx2;
        }
    }
    Kernel::Portable
}

/// True when AVX2+FMA code paths are used (GEMM and the FMA-compiled loops).
pub fn simd_enabled() -> bool {
    kernel() != Kernel::Portable
}

/// A strided read-only matrix view: element `(i, k)` is `data[i * rs + k * cs]`.
#[derive(Clone, Copy)]
pub struct MatView<'a> {
    /// Backing storage.
    pub data: &'a [f32],
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

impl<'a> MatView<'a> {
    /// Row-major `[rows, cols]` matrix, optionally viewed transposed.
    pub fn row_major(data: &'a [f32], cols: usize, transposed: bool) -> Self {
        if transposed {
            MatView {
                data,
                rs: 1,
                cs: cols,
            }
        } else {
            MatView {
                data,
                rs: cols,
                cs: 1,
            }
        }
    }
    #[inline(always)]
    fn at(&self, i: usize, k: usize) -> f32 {
        self.data[i * self.rs + k * self.cs]
    }
}

/// Naive R2 reference (for tests): the literal definition.
pub fn gemm_reference(m: usize, n: usize, k: usize, a: MatView<'_>, b: MatView<'_>, c: &mut [f32]) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for kk in 0..k {
                acc = a.at(i, kk).mul_add(b.at(kk, j), acc);
            }
            c[i * n + j] = acc;
        }
    }
}

/// Products with fewer multiply-adds than this run on one thread: rayon's fork-join
/// costs more than it saves (a 64³ product takes about 3 µs). The bits do not depend on it.
const PAR_MIN_MACS: usize = 1 << 20;

/// `C[m, n] = A[m, k] · B[k, n]` per R2; `c` (row-major, length `m*n`) is overwritten.
/// The caller guarantees the views cover their index ranges. `parallel` uses the
/// current rayon pool; the bits are the same either way.
pub fn gemm(
    m: usize,
    n: usize,
    k: usize,
    a: MatView<'_>,
    b: MatView<'_>,
    c: &mut [f32],
    parallel: bool,
) {
    debug_assert_eq!(c.len(), m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.iter_mut().for_each(|v| *v = 0.0);
        return;
    }
    let kind = kernel();
    let (mr, nr) = if kind == Kernel::Avx512 {
        (MR12, NR32)
    } else {
        (MR, NR16)
    };
    let threads = if parallel && m.saturating_mul(n).saturating_mul(k) >= PAR_MIN_MACS {
        rayon::current_num_threads()
    } else {
        1
    };
    let npanels = n.div_ceil(nr);
    // Pack B: panel p holds columns p*nr.. as [k][nr], zero padded.
    let bp: Vec<Vec<f32>> = if threads > 1 && npanels > 1 {
        (0..npanels)
            .into_par_iter()
            .map(|p| pack_b_panel(b, k, n, nr, p))
            .collect()
    } else {
        (0..npanels).map(|p| pack_b_panel(b, k, n, nr, p)).collect()
    };
    // Row blocks: about four per thread for balance, or the largest on one thread.
    let mc = if threads == 1 {
        MC_MAX
    } else {
        m.div_ceil(4 * threads)
            .next_multiple_of(mr)
            .clamp(mr, MC_MAX)
    };
    let task = |(blk, cblk): (usize, &mut [f32])| {
        let i0 = blk * mc;
        let rows = cblk.len() / n;
        let slivers = rows.div_ceil(mr);
        let mut ap = vec![0.0f32; slivers * mr * KC.min(k)];
        let mut k0 = 0;
        while k0 < k {
            let kc = KC.min(k - k0);
            for s in 0..slivers {
                let dst = &mut ap[s * kc * mr..(s + 1) * kc * mr];
                let (r0, mv) = (s * mr, mr.min(rows - s * mr));
                pack_a_sliver(a, i0 + r0, mv, k0, kc, mr, dst);
            }
            for (p, panel) in bp.iter().enumerate() {
                let bpanel = &panel[k0 * nr..(k0 + kc) * nr];
                let nv = nr.min(n - p * nr);
                for s in 0..slivers {
                    let asl = &ap[s * kc * mr..(s + 1) * kc * mr];
                    let mv = mr.min(rows - s * mr);
                    let coff = s * mr * n + p * nr;
                    tile_kernel(
                        kind,
                        mr,
                        nr,
                        kc,
                        asl,
                        bpanel,
                        &mut cblk[coff..],
                        n,
                        mv,
                        nv,
                        k0 == 0,
                    );
                }
            }
            k0 += kc;
        }
    };
    if threads > 1 && m > mc {
        c.par_chunks_mut(mc * n).enumerate().for_each(task);
    } else {
        c.chunks_mut(mc * n).enumerate().for_each(task);
    }
}

/// Panel `p` of B: columns `p*nr..p*nr+nr` as `[k][nr]`, zero padded past `n`.
fn pack_b_panel(b: MatView<'_>, k: usize, n: usize, nr: usize, p: usize) -> Vec<f32> {
    let j0 = p * nr;
    let nv = nr.min(n - j0);
    let mut out = Vec::with_capacity(k * nr);
    if b.cs == 1 && nv == nr {
        // Row-major B: each row of the panel is contiguous.
        for kk in 0..k {
            let at = kk * b.rs + j0;
            out.extend_from_slice(&b.data[at..at + nr]);
        }
    } else {
        for kk in 0..k {
            out.extend((0..nr).map(|jj| if jj < nv { b.at(kk, j0 + jj) } else { 0.0 }));
        }
    }
    out
}

/// Rows `i0..i0+mv` of A, columns `k0..k0+kc`, into `dst` as `[kc][mr]` (rows past `mv`
/// zero).
fn pack_a_sliver(
    a: MatView<'_>,
    i0: usize,
    mv: usize,
    k0: usize,
    kc: usize,
    mr: usize,
    dst: &mut [f32],
) {
    let dst = &mut dst[..kc * mr];
    if mv < mr {
        dst.fill(0.0);
    }
    if a.cs == 1 {
        // Row-major A: read each row contiguously, scatter it into its lane.
        for r in 0..mv {
            let at = (i0 + r) * a.rs + k0;
            let row = &a.data[at..at + kc];
            for (d, v) in dst.chunks_exact_mut(mr).zip(row) {
                d[r] = *v;
            }
        }
    } else if a.rs == 1 {
        // Transposed A: the sliver's rows are contiguous for each k.
        for (kk, d) in dst.chunks_exact_mut(mr).enumerate() {
            let at = (k0 + kk) * a.cs + i0;
            d[..mv].copy_from_slice(&a.data[at..at + mv]);
        }
    } else {
        for (kk, d) in dst.chunks_exact_mut(mr).enumerate() {
            for (r, v) in d[..mv].iter_mut().enumerate() {
                *v = a.at(i0 + r, k0 + kk);
            }
        }
    }
}

/// `f::<R>(args)` for the row count `rows` (one of the listed ones, else `full`).
macro_rules! by_rows {
    ($f:ident, $rows:expr, $full:expr, [$($n:literal),*], $args:tt) => {
        match $rows {
            $($n => $f::<$n> $args,)*
            _ => $f::<$full> $args,
        }
    };
}

/// One `mr x nr` tile of C (rows `ldc` apart, `mv x nv` of it real):
/// `C_tile = (first ? 0 : C_tile)` then `kc` fma steps. Tiles with all `nr` columns
/// are accumulated in place, `mv` rows of them (a kernel per row count); tiles cut by
/// the right edge of C go through a zero-padded copy.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn tile_kernel(
    kind: Kernel,
    mr: usize,
    nr: usize,
    kc: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    ldc: usize,
    mv: usize,
    nv: usize,
    first: bool,
) {
    assert!(a.len() >= kc * mr && b.len() >= kc * nr && mr * nr <= MR_MAX * NR_MAX);
    assert!((1..=mr).contains(&mv) && (1..=nr).contains(&nv));
    let direct = nv == nr && kind != Kernel::Portable;
    let mut tile = [0.0f32; MR_MAX * NR_MAX];
    if direct {
        assert!(c.len() >= (mv - 1) * ldc + nr);
    } else if !first {
        for r in 0..mv {
            tile[r * nr..r * nr + nv].copy_from_slice(&c[r * ldc..r * ldc + nv]);
        }
    }
    // In place: C itself with its row stride, `mv` rows; else the padded copy, all rows.
    let (ptr, ld, rows) = if direct {
        (c.as_mut_ptr(), ldc, mv)
    } else {
        (tile.as_mut_ptr(), nr, mr)
    };
    let load = !first;
    match kind {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => {
            // SAFETY: `Kernel::Avx512` is only selected when `detect()` found AVX-512F
            // (and AVX2+FMA), and then mr = 12, nr = 32; `a` holds kc*12 and `b` kc*32
            // floats (asserted); `ptr` addresses `rows` <= 12 rows of 32 floats `ld`
            // apart: C (length asserted above) or `tile` (12*32 floats, ld = 32).
            unsafe {
                let (a, b) = (a.as_ptr(), b.as_ptr());
                by_rows!(
                    kernel_avx512,
                    rows,
                    MR12,
                    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
                    (kc, a, b, ptr, ld, load)
                )
            }
        }
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => {
            // SAFETY: `Kernel::Avx2` is only selected when AVX2 and FMA were detected;
            // `a` holds kc*6 and `b` kc*16 floats (asserted); `ptr` addresses `rows`
            // <= 6 rows of 16 floats `ld` apart: C (length asserted above) or `tile`
            // (ld = 16).
            unsafe {
                let (a, b) = (a.as_ptr(), b.as_ptr());
                by_rows!(
                    kernel_avx2,
                    rows,
                    MR,
                    [1, 2, 3, 4, 5],
                    (kc, a, b, ptr, ld, load)
                )
            }
        }
        _ => kernel_portable(mr, nr, kc, a, b, &mut tile),
    }
    if !direct {
        for r in 0..mv {
            c[r * ldc..r * ldc + nv].copy_from_slice(&tile[r * nr..r * nr + nv]);
        }
    }
}

#[inline(always)]
fn kernel_portable(
    mr: usize,
    nr: usize,
    kc: usize,
    a: &[f32],
    b: &[f32],
    tile: &mut [f32; MR_MAX * NR_MAX],
) {
    for kk in 0..kc {
        let brow = &b[kk * nr..kk * nr + nr];
        for r in 0..mr {
            let av = a[kk * mr + r];
            for j in 0..nr {
                tile[r * nr + j] = av.mul_add(brow[j], tile[r * nr + j]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)] // rows of C, A and acc move together
unsafe fn kernel_avx512<const R: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    load: bool,
) {
    use std::arch::x86_64::*;
    // SAFETY (whole body): the caller guarantees R <= 12, that `a` has kc*12 and `b`
    // kc*32 readable floats and `c` R rows of 32 read/writable floats `ldc` apart;
    // unaligned loads/stores are used throughout.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        if load {
            for r in 0..R {
                acc[r][0] = _mm512_loadu_ps(c.add(r * ldc));
                acc[r][1] = _mm512_loadu_ps(c.add(r * ldc + 16));
            }
        }
        for kk in 0..kc {
            let b0 = _mm512_loadu_ps(b.add(kk * NR32));
            let b1 = _mm512_loadu_ps(b.add(kk * NR32 + 16));
            for r in 0..R {
                let av = _mm512_set1_ps(*a.add(kk * MR12 + r));
                acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
            }
        }
        for r in 0..R {
            _mm512_storeu_ps(c.add(r * ldc), acc[r][0]);
            _mm512_storeu_ps(c.add(r * ldc + 16), acc[r][1]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)] // rows of C, A and acc move together
unsafe fn kernel_avx2<const R: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    load: bool,
) {
    use std::arch::x86_64::*;
    // SAFETY (whole body): the caller guarantees R <= MR, that `a` has kc*MR and `b`
    // kc*16 readable floats and `c` R rows of 16 read/writable floats `ldc` apart;
    // unaligned loads/stores are used throughout.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        if load {
            for r in 0..R {
                acc[r][0] = _mm256_loadu_ps(c.add(r * ldc));
                acc[r][1] = _mm256_loadu_ps(c.add(r * ldc + 8));
            }
        }
        for kk in 0..kc {
            let b0 = _mm256_loadu_ps(b.add(kk * NR16));
            let b1 = _mm256_loadu_ps(b.add(kk * NR16 + 8));
            for r in 0..R {
                let av = _mm256_set1_ps(*a.add(kk * MR + r));
                acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
            }
        }
        for r in 0..R {
            _mm256_storeu_ps(c.add(r * ldc), acc[r][0]);
            _mm256_storeu_ps(c.add(r * ldc + 8), acc[r][1]);
        }
    }
}

/// Apply `f` to every element of `x` into `out`, using a copy of the loop compiled with
/// AVX2+FMA when available so that `f32::mul_add` is one instruction instead of a
/// library call. The bits are identical either way (fma is correctly rounded in both).
/// Pass a function item or closure (not a `fn` pointer) so that it is inlined.
#[inline(always)]
pub fn map_slice<F: Fn(f32) -> f32 + Copy>(x: &[f32], out: &mut [f32], f: F) {
    #[cfg(target_arch = "x86_64")]
    if simd_enabled() {
        // SAFETY: AVX2 and FMA were detected at run time by `simd_enabled`.
        return unsafe { map_slice_fma(x, out, f) };
    }
    map_loop(x, out, f)
}

#[inline(always)]
fn map_loop<F: Fn(f32) -> f32>(x: &[f32], out: &mut [f32], f: F) {
    for (o, v) in out.iter_mut().zip(x) {
        *o = f(*v);
    }
}

/// The loop of [`map_slice`] compiled with AVX2+FMA. It is a function of its own, not
/// a closure passed to [`with_fma`]: LLVM declines to inline a closure with a body as
/// large as `gelu`'s into the `target_feature` function, and the loop then runs scalar
/// with an `fmaf` call per fma.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn map_slice_fma<F: Fn(f32) -> f32>(x: &[f32], out: &mut [f32], f: F) {
    map_loop(x, out, f)
}

/// `out[i] = math::gelu(x[i])`, vectorised with AVX2+FMA when available. Same bits as
/// `map_slice(x, out, math::gelu)`, but `map_slice` reaches its function through the
/// `Fn::call` shim, which LLVM does not inline when the body is as large as gelu's
/// (two exps and a double-f32 division): that loop ran scalar with an `fmaf` call per
/// fma, 50 ns per element instead of about 2. Here the call is direct.
pub fn map_gelu(x: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn fast(x: &[f32], out: &mut [f32]) {
        for (o, v) in out.iter_mut().zip(x) {
            *o = crate::math::gelu(*v);
        }
    }
    #[cfg(target_arch = "x86_64")]
    if simd_enabled() {
        // SAFETY: AVX2 and FMA were detected at run time by `simd_enabled`.
        return unsafe { fast(x, out) };
    }
    for (o, v) in out.iter_mut().zip(x) {
        *o = crate::math::gelu(*v);
    }
}

/// Run `f` inside a function compiled with AVX2+FMA when the CPU has them (and the
/// portable mode is not forced), so that inlined `f32::mul_add` calls become `vfmadd`.
/// Semantics are unchanged: only the instruction selection differs.
#[inline(always)]
pub fn with_fma<R, F: FnOnce() -> R>(f: F) -> R {
    #[cfg(target_arch = "x86_64")]
    if simd_enabled() {
        // SAFETY: AVX2 and FMA were detected at run time by `simd_enabled`.
        return unsafe { with_fma_impl(f) };
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn with_fma_impl<R, F: FnOnce() -> R>(f: F) -> R {
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::philox::Philox;

    fn rand(n: usize, seed: u64) -> Vec<f32> {
        let p = Philox::new(seed, 0);
        (0..n as u64).map(|i| p.uniform_at(i) * 2.0 - 1.0).collect()
    }

    #[test]
    fn vectorised_gelu_has_the_bits_of_scalar_gelu_on_every_4099th_pattern() {
        let xs: Vec<f32> = (0..=u32::MAX / 4099)
            .map(|i| f32::from_bits(i * 4099))
            .chain([
                0.0,
                -0.0,
                f32::INFINITY,
                f32::NEG_INFINITY,
                f32::NAN,
                64.0,
                -64.0,
            ])
            .chain([-80.0, -120.0, 1e-40, -1e-40, -9.0, -9.5, -10.0])
            .collect();
        let want: Vec<u32> = xs.iter().map(|&x| crate::math::gelu(x).to_bits()).collect();
        for kern in [Kernel::Portable, Kernel::Avx2] {
            set_max_kernel(Some(kern));
            let mut out = vec![0.0f32; xs.len()];
            map_gelu(&xs, &mut out);
            let got: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
            set_max_kernel(None);
            assert!(got == want, "{kern:?}");
        }
    }

    #[test]
    fn blocked_gemm_has_the_bits_of_the_naive_r2_fold_for_all_variants() {
        for &(m, n, k) in &[
            (1, 1, 1),
            (7, 17, 5),
            (13, 33, 300),
            (64, 10, 64),
            (100, 40, 513),
            // Threaded (over PAR_MIN_MACS), whole panels, a 10-row edge sliver.
            (130, 64, 160),
        ] {
            for ta in [false, true] {
                for tb in [false, true] {
                    let a = rand(m * k, 1);
                    let b = rand(k * n, 2);
                    let av = MatView::row_major(&a, if ta { m } else { k }, ta);
                    let bv = MatView::row_major(&b, if tb { k } else { n }, tb);
                    let mut want = vec![0.0; m * n];
                    gemm_reference(m, n, k, av, bv, &mut want);
                    for kern in [Kernel::Portable, Kernel::Avx2, Kernel::Avx512] {
                        set_max_kernel(Some(kern));
                        let simd = kern;
                        for par in [false, true] {
                            let mut got = vec![1.0; m * n];
                            gemm(m, n, k, av, bv, &mut got, par);
                            let gb: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                            let wb: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
                            assert_eq!(gb, wb, "m={m} n={n} k={k} ta={ta} tb={tb} simd={simd:?}");
                        }
                    }
                    set_max_kernel(None);
                }
            }
        }
    }
}
