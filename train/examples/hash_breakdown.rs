//! Where the state hash's time goes: `cargo run --release -p train --example hash_breakdown [PROGRAM]`.
use std::hint::black_box;
use std::time::Instant;

fn per_call(reps: usize, mut f: impl FnMut()) -> f64 {
    let s = Instant::now();
    for _ in 0..reps {
        f();
    }
    s.elapsed().as_secs_f64() / reps as f64 * 1e6
}

fn main() {
    let name = std::env::args().nth(1).unwrap_or("mlp-digits".into());
    let tr = train::Trainer::builtin(&name).expect("builtin");
    let reps = 2000;
    let mut total = 0.0;
    for (k, t) in tr.state() {
        let us = per_call(reps, || {
            black_box(repops::tensor_hash(black_box(t)));
        });
        total += us;
        if t.len() >= 64 {
            println!("{k:24} {:7} floats  tensor_hash {us:8.3} us", t.len());
        }
    }
    let hs: Vec<(String, [u8; 32])> = tr
        .state()
        .iter()
        .map(|(k, t)| (k.clone(), repops::tensor_hash(t)))
        .collect();
    let leaves_us = per_call(reps, || {
        for (k, h) in &hs {
            black_box(train::exec::state_leaf(black_box(k), h));
        }
    });
    let leaves: Vec<[u8; 32]> = hs
        .iter()
        .map(|(k, h)| train::exec::state_leaf(k, h))
        .collect();
    let root_us = per_call(reps, || {
        black_box(train::merkle::root(black_box(&leaves)));
    });
    let all_us = per_call(reps, || {
        black_box(tr.state_hash());
    });
    println!(
        "{} tensors: tensor_hash {total:.3} us, state leaves {leaves_us:.3} us, merkle root {root_us:.3} us; state_hash() {all_us:.3} us",
        hs.len()
    );
}
