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
    let npanels = n.div_ceil(nr);
    // Pack B: panel p holds columns p*nr.. as [k][nr], zero padded.
    let mut bp = vec![0.0f32; npanels * k * nr];
    let pack_panel = |(p, panel): (usize, &mut [f32])| {
        for kk in 0..k {
            for jj in 0..nr {
                let j = p * nr + jj;
                if j < n {
                    panel[kk * nr + jj] = b.at(kk, j);
                }
            }
        }
    };
    if parallel && npanels > 1 {
        bp.par_chunks_mut(k * nr).enumerate().for_each(pack_panel);
    } else {
        bp.chunks_mut(k * nr).enumerate().for_each(pack_panel);
    }
    let threads = if parallel {
        rayon::current_num_threads()
    } else {
        1
    };
    let mc = m
        .div_ceil(4 * threads)
        .next_multiple_of(mr)
        .clamp(mr, MC_MAX);
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
                for r in 0..mr {
                    let i = s * mr + r;
                    if i < rows {
                        for kk in 0..kc {
                            dst[kk * mr + r] = a.at(i0 + i, k0 + kk);
                        }
                    } else {
                        for kk in 0..kc {
                            dst[kk * mr + r] = 0.0;
                        }
                    }
                }
            }
            for p in 0..npanels {
                let bpanel = &bp[p * k * nr + k0 * nr..p * k * nr + (k0 + kc) * nr];
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
    if parallel && m > mc {
        c.par_chunks_mut(mc * n).enumerate().for_each(task);
    } else {
        c.chunks_mut(mc * n).enumerate().for_each(task);
    }
}

/// One `mr x nr` tile: `C_tile = (first ? 0 : C_tile)` then `kc` fma steps.
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
    let mut tile = [0.0f32; MR_MAX * NR_MAX];
    if !first {
        for r in 0..mv {
            tile[r * nr..r * nr + nv].copy_from_slice(&c[r * ldc..r * ldc + nv]);
        }
    }
    assert!(a.len() >= kc * mr && b.len() >= kc * nr && mr * nr <= tile.len());
    match kind {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => {
            // SAFETY: `Kernel::Avx512` is only selected when `detect()` found AVX-512F
            // (and AVX2+FMA), and then mr = 12, nr = 32; `a` holds kc*12 and `b` kc*32
            // floats (asserted), `tile` holds 12*32 floats.
            unsafe { kernel_avx512(kc, a.as_ptr(), b.as_ptr(), tile.as_mut_ptr()) }
        }
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => {
            // SAFETY: `Kernel::Avx2` is only selected when AVX2 and FMA were detected;
            // `a` holds kc*MR and `b` kc*16 floats (asserted), `tile` holds MR*16 floats (MR = 6).
            unsafe { kernel_avx2(kc, a.as_ptr(), b.as_ptr(), tile.as_mut_ptr()) }
        }
        _ => kernel_portable(mr, nr, kc, a, b, &mut tile),
    }
    for r in 0..mv {
        c[r * ldc..r * ldc + nv].copy_from_slice(&tile[r * nr..r * nr + nv]);
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
unsafe fn kernel_avx512(kc: usize, a: *const f32, b: *const f32, tile: *mut f32) {
    use std::arch::x86_64::*;
    // SAFETY (whole body): the caller guarantees `a` has kc*12, `b` kc*32 and `tile`
    // 12*32 readable/writable floats; unaligned loads/stores are used throughout.
    unsafe {
        let mut acc = [_mm512_setzero_ps(); 2 * MR12];
        for r in 0..MR12 {
            acc[2 * r] = _mm512_loadu_ps(tile.add(r * NR32));
            acc[2 * r + 1] = _mm512_loadu_ps(tile.add(r * NR32 + 16));
        }
        for kk in 0..kc {
            let b0 = _mm512_loadu_ps(b.add(kk * NR32));
            let b1 = _mm512_loadu_ps(b.add(kk * NR32 + 16));
            for r in 0..MR12 {
                let av = _mm512_set1_ps(*a.add(kk * MR12 + r));
                acc[2 * r] = _mm512_fmadd_ps(av, b0, acc[2 * r]);
                acc[2 * r + 1] = _mm512_fmadd_ps(av, b1, acc[2 * r + 1]);
            }
        }
        for r in 0..MR12 {
            _mm512_storeu_ps(tile.add(r * NR32), acc[2 * r]);
            _mm512_storeu_ps(tile.add(r * NR32 + 16), acc[2 * r + 1]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_avx2(kc: usize, a: *const f32, b: *const f32, tile: *mut f32) {
    use std::arch::x86_64::*;
    // SAFETY (whole body): the caller guarantees `a` has kc*MR, `b` kc*NR and `tile`
    // MR*NR readable/writable floats; unaligned loads/stores are used throughout.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 2 * MR];
        for r in 0..MR {
            acc[2 * r] = _mm256_loadu_ps(tile.add(r * NR16));
            acc[2 * r + 1] = _mm256_loadu_ps(tile.add(r * NR16 + 8));
        }
        for kk in 0..kc {
            let b0 = _mm256_loadu_ps(b.add(kk * NR16));
            let b1 = _mm256_loadu_ps(b.add(kk * NR16 + 8));
            for r in 0..MR {
                let av = _mm256_set1_ps(*a.add(kk * MR + r));
                acc[2 * r] = _mm256_fmadd_ps(av, b0, acc[2 * r]);
                acc[2 * r + 1] = _mm256_fmadd_ps(av, b1, acc[2 * r + 1]);
            }
        }
        for r in 0..MR {
            _mm256_storeu_ps(tile.add(r * NR16), acc[2 * r]);
            _mm256_storeu_ps(tile.add(r * NR16 + 8), acc[2 * r + 1]);
        }
    }
}

/// Apply `f` to every element of `x` into `out`, using a copy of the loop compiled with
/// AVX2+FMA when available so that `f32::mul_add` is one instruction instead of a
/// library call. The bits are identical either way (fma is correctly rounded in both).
/// Pass a function item or closure (not a `fn` pointer) so that it is inlined.
#[inline(always)]
pub fn map_slice<F: Fn(f32) -> f32 + Copy>(x: &[f32], out: &mut [f32], f: F) {
    with_fma(|| {
        for (o, v) in out.iter_mut().zip(x) {
            *o = f(*v);
        }
    })
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
    fn blocked_gemm_has_the_bits_of_the_naive_r2_fold_for_all_variants() {
        for &(m, n, k) in &[
            (1, 1, 1),
            (7, 17, 5),
            (13, 33, 300),
            (64, 10, 64),
            (100, 40, 513),
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
