//! Per-step figures of the builtin programs: step time, state-hashing share, trace overhead.
//!
//! ```text
//! cargo bench -p train --bench train_bench -- [--threads N] [--steps S]
//! ```

use std::time::Instant;
use train::Trainer;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |k: &str, d: usize| -> usize {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let threads = get("--threads", 1);
    let steps = get("--steps", 50) as u64;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    pool.install(|| {
        for name in ["mlp-digits", "tiny-lm"] {
            let mut tr = Trainer::builtin(name).expect("builtin");
            let t0 = Instant::now();
            for t in 1..=steps {
                tr.step(t).expect("step");
            }
            let step_s = t0.elapsed().as_secs_f64() / steps as f64;
            let t1 = Instant::now();
            for _ in 0..steps {
                std::hint::black_box(tr.state_hash());
            }
            let hash_s = t1.elapsed().as_secs_f64() / steps as f64;
            // The same work without any hashing: batch assembly + every node.
            let t3 = Instant::now();
            for t in 1..=steps {
                let batch = tr.batch(t).expect("batch");
                std::hint::black_box(
                    train::exec::run_nodes(&tr.graph().nodes, tr.state(), &batch, |_, _| {})
                        .expect("nodes"),
                );
            }
            let compute_s = t3.elapsed().as_secs_f64() / steps as f64;
            let t2 = Instant::now();
            for t in steps + 1..=2 * steps {
                tr.step_traced(t).expect("traced step");
            }
            let traced_s = t2.elapsed().as_secs_f64() / steps as f64;
            let state_bytes: usize = tr.state().values().map(|t| 4 * t.len()).sum();
            println!(
                "{name:10} threads={threads} nodes={} state={} KiB  step {:8.3} ms  unhashed {:8.3} ms (hashing share {:.2}%)  cold state_hash() {:7.4} ms  traced step {:8.3} ms (+{:.1}%)",
                tr.graph().nodes.len(),
                state_bytes / 1024,
                step_s * 1e3,
                compute_s * 1e3,
                100.0 * (step_s - compute_s) / step_s,
                hash_s * 1e3,
                traced_s * 1e3,
                100.0 * (traced_s / step_s - 1.0)
            );
        }
    });
}
