//! RepOps benchmarks with in-run baselines. Prints one line per figure.
//!
//! ```text
//! cargo bench -p repops --bench repops_bench -- [--threads N] [--quick] [--gemm-only]
//! ```
//! * GEMM GFLOP/s (R2 packed kernel, via the `mat_mul` op) vs `matrixmultiply::sgemm`
//!   with the same thread count (MATMUL_NUM_THREADS);
//! * elementary functions ns/element vs the platform libm (`f32::exp`, `ln`, `tanh`).
//!
//! GEMM figures are medians of interleaved samples (ratios per sample, then the median);
//! elementary-function figures are the best of several repetitions.

use repops::{matmul, Op, Philox, Tensor};
use std::time::Instant;

fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn rand(n: usize, seed: u64) -> Vec<f32> {
    let p = Philox::new(seed, 0);
    (0..n as u64).map(|i| p.uniform_at(i) * 2.0 - 1.0).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args
        .iter()
        .position(|a| a == "--threads")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let quick = args.iter().any(|a| a == "--quick");
    // matrixmultiply reads this once, at its first threaded call.
    std::env::set_var("MATMUL_NUM_THREADS", threads.to_string());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    println!("threads={threads} simd={}", matmul::simd_enabled());

    let sizes: &[usize] = if quick {
        &[128, 256]
    } else {
        &[64, 128, 256, 512, 1024]
    };
    for &n in sizes {
        let (m, k) = (n, n);
        let a = Tensor::new(vec![m, k], rand(m * k, 1)).expect("a");
        let b = Tensor::new(vec![k, n], rand(k * n, 2)).expect("b");
        let flops = 2.0 * (m * n * k) as f64;
        // Each sample runs `iters` products (about 2 ms of work); samples of the three
        // contenders are interleaved in rotating order so that noise hits all alike.
        let iters = ((2e-3 * 100e9 / flops) as usize).max(1);
        let samples = if quick { 7 } else { 21 };
        let op = Op::MatMul {
            ta: false,
            tb: false,
        };
        let mut c = vec![0.0f32; m * n];
        let mut t = [vec![], vec![], vec![]];
        let (mut r_raw, mut r_op) = (vec![], vec![]);
        // Everything runs on a thread of the pool (rayon calls from outside it pay a
        // cross-thread hand-off each); matrixmultiply then runs there too.
        pool.install(|| {
            for s in 0..samples {
                let mut secs = [0.0f64; 3];
                for j in 0..3 {
                    let which = (s + j) % 3;
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        match which {
                            0 => matmul::gemm(
                                m,
                                n,
                                k,
                                matmul::MatView::row_major(a.data(), k, false),
                                matmul::MatView::row_major(b.data(), n, false),
                                &mut c,
                                true,
                            ),
                            1 => {
                                std::hint::black_box(op.execute(&[&a, &b]).expect("matmul"));
                            }
                            _ => baseline_sgemm(m, k, n, a.data(), b.data(), &mut c),
                        }
                    }
                    secs[which] = t0.elapsed().as_secs_f64() / iters as f64;
                }
                for w in 0..3 {
                    t[w].push(secs[w]);
                }
                r_raw.push(secs[2] / secs[0]);
                r_op.push(secs[2] / secs[1]);
            }
        });
        let gf = |v: &mut Vec<f64>| flops / median(v) / 1e9;
        println!(
            "gemm n={n:5}  repops raw {:7.2} GFLOP/s  op {:7.2} GFLOP/s  matrixmultiply {:7.2} GFLOP/s  \
             raw/mm {:.2}  op/mm {:.2}  (medians of {samples} interleaved samples)",
            gf(&mut t[0]),
            gf(&mut t[1]),
            gf(&mut t[2]),
            median(&mut r_raw),
            median(&mut r_op),
        );
    }

    if args.iter().any(|a| a == "--gemm-only") {
        return;
    }
    let n = if quick { 1 << 20 } else { 1 << 24 };
    let xs: Vec<f32> = rand(n, 3).iter().map(|v| v * 40.0).collect();
    let pos: Vec<f32> = rand(n, 4).iter().map(|v| v.abs() * 100.0 + 1e-3).collect();
    let mut out = vec![0.0f32; n];
    // Function items (not fn pointers) so that both sides inline into their loops; ours
    // runs in the FMA-compiled loop of `map_slice`, libm's in a plain loop.
    fn bench_one<A: Fn(f32) -> f32 + Copy, B: Fn(f32) -> f32 + Copy>(
        name: &str,
        input: &[f32],
        out: &mut [f32],
        ours: A,
        libm: B,
    ) {
        let n = input.len();
        let t_ours = best_of(7, || matmul::map_slice(input, out, ours));
        let t_libm = best_of(7, || {
            for (o, x) in out.iter_mut().zip(input.iter()) {
                *o = libm(*x);
            }
            std::hint::black_box(&out);
        });
        println!(
            "math {name:8} repops {:6.2} ns/elem  libm {:6.2} ns/elem  time ratio {:.2}",
            t_ours / n as f64 * 1e9,
            t_libm / n as f64 * 1e9,
            t_ours / t_libm
        );
    }
    bench_one("exp", &xs, &mut out, repops::math::exp, f32::exp);
    bench_one("log", &pos, &mut out, repops::math::log, f32::ln);
    bench_one("tanh", &xs, &mut out, repops::math::tanh, f32::tanh);
    bench_one("sigmoid", &xs, &mut out, repops::math::sigmoid, |x: f32| {
        1.0 / (1.0 + (-x).exp())
    });
    bench_one("rsqrt", &pos, &mut out, repops::math::rsqrt, |x: f32| {
        1.0 / x.sqrt()
    });
}

/// Baseline: `matrixmultiply::sgemm`, an `unsafe fn` over raw pointers (the crate has no
/// safe entry point), hence the local allow.
#[allow(unsafe_code)]
fn baseline_sgemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    // SAFETY: the asserted lengths cover row-major m×k, k×n and m×n with the strides given.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}
