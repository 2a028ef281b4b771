//! Quick GEMM probe: `cargo run --release -p repops --example gemm_probe -- N`
use repops::matmul::{gemm, MatView};
use std::time::Instant;
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(512);
    let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut c = vec![0.0f32; n * n];
    for par in [false, true] {
        let mut best = f64::INFINITY;
        for _ in 0..10 {
            let t = Instant::now();
            gemm(
                n,
                n,
                n,
                MatView::row_major(&a, n, false),
                MatView::row_major(&b, n, false),
                &mut c,
                par,
            );
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "n={n} par={par} {:.1} GFLOP/s",
            2.0 * (n * n * n) as f64 / best / 1e9
        );
    }
    let p = repops::Philox::new(1, 0);
    let ar: Vec<f32> = (0..(n * n) as u64)
        .map(|i| p.uniform_at(i) * 2.0 - 1.0)
        .collect();
    let ta = repops::Tensor::new(vec![n, n], ar.clone()).unwrap();
    let tb = repops::Tensor::new(vec![n, n], b.clone()).unwrap();
    let op = repops::Op::MatMul {
        ta: false,
        tb: false,
    };
    let pool1 = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for label in ["op", "raw-random", "raw-random-seq", "op-pool1"] {
        let mut best = f64::INFINITY;
        for _ in 0..10 {
            let t = Instant::now();
            if label == "op" {
                std::hint::black_box(op.execute(&[&ta, &tb]).unwrap());
            } else if label == "op-pool1" {
                pool1.install(|| std::hint::black_box(op.execute(&[&ta, &tb]).unwrap()));
            } else if label == "raw-random-seq" {
                gemm(
                    n,
                    n,
                    n,
                    MatView::row_major(&ar, n, false),
                    MatView::row_major(&b, n, false),
                    &mut c,
                    false,
                );
            } else {
                gemm(
                    n,
                    n,
                    n,
                    MatView::row_major(&ar, n, false),
                    MatView::row_major(&b, n, false),
                    &mut c,
                    true,
                );
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "n={n} {label} {:.1} GFLOP/s",
            2.0 * (n * n * n) as f64 / best / 1e9
        );
    }
}
