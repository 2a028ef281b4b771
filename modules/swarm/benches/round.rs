//! What a swarm round costs each party, in one run: validators (message delivery
//! and end blocks, invariant checks off), contributors (training), evaluators,
//! verifiers (re-executing every task) and reporters (loss proofs), on the
//! runtime's test world with real training (mlp-digits, 4 slots).
//!
//! `cargo bench -p swarm --bench round` (add `-- ROUNDS INNER_STEPS` to change
//! the defaults, 3 rounds of 50 steps; `--average` merges each round in a merge
//! task, whose aggregator's time counts with the evaluators').
#[path = "../tests/world/mod.rs"]
mod world;

use swarm::SwarmRead;
use world::{create_msg, W};

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rounds = args.first().copied().unwrap_or(3);
    let inner = args.get(1).copied().unwrap_or(50);
    let average = std::env::args().any(|a| a == "--average");
    let mut w = W::new();
    w.w.check_every = u64::MAX;
    let mut m = create_msg(w.creator, rounds, 4);
    m.inner_steps = inner;
    m.eval_steps = 4;
    m.eval_batch = 64;
    if average {
        m.outer_lr_bits = 1.0f32.to_bits();
    }
    let id = w.create_with(m);
    println!(
        "swarm round cost: mlp-digits, 4 contributors x {inner} steps, evaluations of 4 x 64 held-out rows, {rounds} rounds, merged by {}",
        if average { "averaging (a merge task)" } else { "selection" }
    );
    println!("round  chain_ms  training_ms  evaluating_ms  verifying_ms  reporting_ms  chain/training  blocks");
    let mut total = world::Spent::default();
    for r in 0..rounds {
        let before = w.spent;
        let h0 = w.w.height;
        let cs = w.contributors.clone();
        for c in cs {
            w.join(c, id).unwrap();
        }
        let settled = w.until_settled(id, r);
        assert!(settled.quality_paid.0 > 0 || r > 0, "{settled:?}");
        let d = |a: std::time::Duration, b: std::time::Duration| (a - b).as_secs_f64() * 1e3;
        let s = w.spent;
        let (chain, training) = (d(s.chain, before.chain), d(s.training, before.training));
        println!(
            "{r:5}  {chain:8.1}  {training:11.1}  {:13.1}  {:12.1}  {:12.1}  {:14.3}  {:6}",
            d(s.evaluating, before.evaluating),
            d(s.verifying, before.verifying),
            d(s.reporting, before.reporting),
            chain / training,
            w.w.height - h0
        );
        total = s;
    }
    let ms = |x: std::time::Duration| x.as_secs_f64() * 1e3;
    println!(
        "total  {:8.1}  {:11.1}  {:13.1}  {:12.1}  {:12.1}  {:14.3}",
        ms(total.chain),
        ms(total.training),
        ms(total.evaluating),
        ms(total.verifying),
        ms(total.reporting),
        ms(total.chain) / ms(total.training)
    );
    assert!(w.w.state.swarm(id).unwrap().done);
}
