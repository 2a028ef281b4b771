//! Tensor hashing throughput probe: `cargo run --release -p repops --example hash_probe`
use std::time::Instant;
fn main() {
    let n = 350_000;
    let t = repops::Tensor::new(vec![n], (0..n).map(|i| i as f32 * 0.5).collect()).unwrap();
    let bytes: Vec<u8> = t.data().iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut best = (f64::INFINITY, f64::INFINITY);
    for _ in 0..50 {
        let s = Instant::now();
        std::hint::black_box(repops::tensor_hash(&t));
        best.0 = best.0.min(s.elapsed().as_secs_f64());
        let s = Instant::now();
        std::hint::black_box(blake3::hash(&bytes));
        best.1 = best.1.min(s.elapsed().as_secs_f64());
    }
    let mb = (4 * n) as f64 / 1e9;
    println!(
        "tensor_hash {:.2} GB/s, raw blake3 {:.2} GB/s",
        mb / best.0,
        mb / best.1
    );
}
