//! Per-step figures of the builtin programs: step time, state-hashing overhead, trace
//! overhead, each as a ratio against an unhashed step measured in the same run.
//!
//! ```text
//! cargo bench -p train --bench train_bench -- [--threads N] [--steps S] [--rounds R] [--program NAME]
//! ```
//!
//! Three trainers of the same program advance in lockstep (they compute the same bits):
//! one with [`Trainer::step`] (hashes the new state, `h_t`), one with
//! `Trainer::step_unhashed` (the same step with no hashing at all) and one with
//! [`Trainer::step_traced`]. Each round times `S` steps of each, in rotating order, so
//! that machine noise hits all three alike; the figures are medians over the rounds.

use std::time::Instant;
use train::Trainer;

mod common;
use common::{cpu_seconds, median, Args};

fn main() {
    let args = Args::from_env();
    let get = |k: &str, d: usize| args.number(k, d);
    let threads = get("--threads", 1);
    let steps = get("--steps", 20) as u64;
    let rounds = get("--rounds", 15);
    let programs = args.programs();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    pool.install(|| {
        for name in &programs {
            let mut trs: Vec<Trainer> = (0..3)
                .map(|_| Trainer::builtin(name).expect("builtin"))
                .collect();
            let run = |tr: &mut Trainer, kind: usize, t: u64| match kind {
                0 => drop(tr.step(t).expect("step")),
                1 => drop(tr.step_unhashed(t).expect("step")),
                _ => drop(tr.step_traced(t).expect("step")),
            };
            // Warm-up: one round of each.
            let mut t = 0u64;
            for _ in 0..steps.min(5) {
                t += 1;
                for (k, tr) in trs.iter_mut().enumerate() {
                    run(tr, k, t);
                }
            }
            let (mut hashed, mut plain, mut traced) = (vec![], vec![], vec![]);
            let (mut r_hash, mut r_trace, mut r_hash_cpu) = (vec![], vec![], vec![]);
            for round in 0..rounds {
                let mut secs = [0.0f64; 3];
                let mut cpu = [0.0f64; 3];
                for j in 0..3 {
                    let k = (round + j) % 3;
                    let c0 = cpu_seconds();
                    let t0 = Instant::now();
                    for s in 1..=steps {
                        run(&mut trs[k], k, t + s);
                    }
                    secs[k] = t0.elapsed().as_secs_f64() / steps as f64;
                    cpu[k] = cpu_seconds() - c0;
                }
                t += steps;
                hashed.push(secs[0]);
                plain.push(secs[1]);
                traced.push(secs[2]);
                r_hash.push(secs[0] / secs[1]);
                r_trace.push(secs[2] / secs[1]);
                r_hash_cpu.push(cpu[0] / cpu[1]);
            }
            let h_ok = trs[0].state_hash() == trs[2].state_hash();
            let tr = &trs[0];
            let state_bytes: usize = tr.state().values().map(|t| 4 * t.len()).sum();
            let t_cold = Instant::now();
            for _ in 0..steps {
                std::hint::black_box(tr.state_hash());
            }
            let cold = t_cold.elapsed().as_secs_f64() / steps as f64;
            println!(
                "{name:10} threads={threads} nodes={} state={} KiB  step {:8.4} ms  unhashed {:8.4} ms  \
                 hashing overhead {:+.2}% (CPU time {:+.2}%; medians of {rounds} per-round ratios)  \
                 traced {:8.4} ms ({:+.1}%)  cold state_hash() {:.4} ms  same_h_t={h_ok}",
                tr.graph().nodes.len(),
                state_bytes / 1024,
                median(&mut hashed) * 1e3,
                median(&mut plain) * 1e3,
                100.0 * (median(&mut r_hash) - 1.0),
                100.0 * (median(&mut r_hash_cpu) - 1.0),
                median(&mut traced) * 1e3,
                100.0 * (median(&mut r_trace) - 1.0),
                cold * 1e3,
            );
        }
    });
}
