//! Time per op kind over a few steps: `cargo run --release -p train --example node_profile [PROGRAM] [THREADS]`.
use std::collections::BTreeMap;
use std::time::Instant;

fn main() {
    let name = std::env::args().nth(1).unwrap_or("tiny-lm".into());
    let threads: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    pool.install(|| {
        let tr = train::Trainer::builtin(&name).expect("builtin");
        let batch = tr.batch(1).expect("batch");
        let mut per: BTreeMap<String, (f64, usize)> = BTreeMap::new();
        let steps = 20;
        for _ in 0..steps {
            let mut last = Instant::now();
            train::exec::run_nodes(&tr.graph().nodes, tr.state(), &batch, |i, _| {
                let now = Instant::now();
                let n = &tr.graph().nodes[i];
                let key = format!("{} {:?}", n.op.name(), n.shape);
                let e = per.entry(key).or_default();
                e.0 += (now - last).as_secs_f64();
                e.1 += 1;
                last = now;
            })
            .expect("nodes");
        }
        let mut v: Vec<_> = per.into_iter().collect();
        v.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
        let total: f64 = v.iter().map(|x| x.1 .0).sum();
        println!("total {:.3} ms/step", total / steps as f64 * 1e3);
        for (k, (t, c)) in v.iter().take(30) {
            println!(
                "{:7.3} ms/step {:5.1}%  x{:3}  {k}",
                t / steps as f64 * 1e3,
                100.0 * t / total,
                c / steps
            );
        }
    });
}
