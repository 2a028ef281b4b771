//! Time per op kind over a few steps of a builtin program.
//! `cargo run --release -p train --example profile_step -- tiny-lm [threads]`

use std::collections::BTreeMap;
use std::time::Instant;
use train::{execute_node, Input, Trainer};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map(String::as_str).unwrap_or("tiny-lm");
    let threads: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let tr = Trainer::builtin(name).unwrap();
        let batch = tr.batch(1).unwrap();
        let mut per: BTreeMap<String, (f64, u64, usize)> = BTreeMap::new();
        let reps = 10;
        for _ in 0..reps {
            let mut outs = Vec::new();
            for node in &tr.graph().nodes {
                let ins: Vec<&repops::Tensor> = node
                    .inputs
                    .iter()
                    .map(|i| match i {
                        Input::State(s) => &tr.state()[s],
                        Input::Batch(s) => &batch[s],
                        Input::Node(n) => &outs[*n],
                    })
                    .collect();
                let t = Instant::now();
                let o = execute_node(node, &ins).unwrap();
                let e = per.entry(node.op.name().to_string()).or_default();
                e.0 += t.elapsed().as_secs_f64();
                e.1 += node.cost().flops;
                e.2 += 1;
                outs.push(o);
            }
        }
        let total: f64 = per.values().map(|v| v.0).sum();
        let mut v: Vec<_> = per.into_iter().collect();
        v.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
        println!("{name}: {:.2} ms/step", total / reps as f64 * 1e3);
        for (k, (t, f, n)) in v {
            println!(
                "{k:28} {:8.3} ms/step {:5.1}%  {:6.2} GFLOP/s  nodes/step {}",
                t / reps as f64 * 1e3,
                100.0 * t / total,
                f as f64 / t / 1e9,
                n / reps
            );
        }
    });
}
