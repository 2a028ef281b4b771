//! ns/element of gelu through `map_gelu` (direct) and `map_slice` (through the `Fn` shim):
//! `cargo run --release -p repops --example gelu_probe`.
use std::time::Instant;
fn main() {
    let n = 1 << 20;
    let p = repops::Philox::new(3, 0);
    let xs: Vec<f32> = (0..n as u64)
        .map(|i| (p.uniform_at(i) * 2.0 - 1.0) * 8.0)
        .collect();
    let mut out = vec![0.0f32; n];
    for name in ["map_gelu", "map_slice(gelu)", "map_slice(gelu_grad)"] {
        let mut best = f64::INFINITY;
        for _ in 0..15 {
            let t = Instant::now();
            match name {
                "map_gelu" => repops::matmul::map_gelu(&xs, &mut out),
                "map_slice(gelu)" => repops::matmul::map_slice(&xs, &mut out, repops::math::gelu),
                _ => repops::matmul::map_slice(&xs, &mut out, repops::math::gelu_grad),
            }
            std::hint::black_box(&out);
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("{name:22} {:6.2} ns/elem", best / n as f64 * 1e9);
    }
}
