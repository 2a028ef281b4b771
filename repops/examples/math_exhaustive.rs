//! Exhaustive (or sampled) checks of the R4 elementary functions.
//!
//! ```text
//! cargo run --release -p repops --example math_exhaustive -- [--step N] [--ulp] [--hash] [FUNC...]
//! ```
//! `--hash` prints, per function, BLAKE3 over the per-chunk BLAKE3 hashes of the
//! outputs' little-endian bits for inputs `0, N, 2N, ...` below 2^32 (chunks of 2^20
//! consecutive sampled inputs, in order). It evaluates the scalar functions, so a
//! baseline x86-64 build calls glibc `fmaf` where an x86-64-v3 build inlines `vfmadd`.
//! `--ulp` prints the max error in ulps against the f64 reference and the worst input.

use rayon::prelude::*;
use repops::math::{ulp_error, Func};

fn main() {
    let mut step: u64 = 1;
    let mut do_ulp = false;
    let mut do_hash = false;
    let mut funcs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--step" => step = args.next().and_then(|s| s.parse().ok()).unwrap_or(1),
            "--ulp" => do_ulp = true,
            "--hash" => do_hash = true,
            f => match Func::ALL.iter().find(|g| g.name() == f) {
                Some(g) => funcs.push(*g),
                None => {
                    eprintln!("unknown argument {f}");
                    std::process::exit(2);
                }
            },
        }
    }
    if funcs.is_empty() {
        funcs = Func::ALL.to_vec();
    }
    let total: u64 = 1 << 32;
    let count = total.div_ceil(step);
    const CHUNK: u64 = 1 << 20;
    let nchunks = count.div_ceil(CHUNK);
    for f in funcs {
        let t0 = std::time::Instant::now();
        let results: Vec<([u8; 32], f64, u32)> = (0..nchunks)
            .into_par_iter()
            .map(|c| {
                let lo = c * CHUNK;
                let hi = (lo + CHUNK).min(count);
                let mut h = blake3::Hasher::new();
                let mut buf = Vec::with_capacity(((hi - lo) * 4) as usize);
                let mut worst = (0.0f64, 0u32);
                for i in lo..hi {
                    let bits = (i * step) as u32;
                    let x = f32::from_bits(bits);
                    let y = f.eval(x);
                    if do_hash {
                        buf.extend_from_slice(&y.to_bits().to_le_bytes());
                    }
                    if do_ulp {
                        let e = ulp_error(y, f.reference(x as f64));
                        if e > worst.0 || e.is_nan() {
                            worst = (e, bits);
                        }
                    }
                }
                h.update(&buf);
                (*h.finalize().as_bytes(), worst.0, worst.1)
            })
            .collect();
        let mut h = blake3::Hasher::new();
        let mut worst = (0.0f64, 0u32);
        for (ch, e, b) in &results {
            h.update(ch);
            if *e > worst.0 {
                worst = (*e, *b);
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let mut line = format!("{:8} inputs={count} step={step}", f.name());
        if do_hash {
            line += &format!(" hash={}", h.finalize().to_hex());
        }
        if do_ulp {
            let x = f32::from_bits(worst.1);
            line += &format!(
                " max_ulp={:.3} at x={:e} (0x{:08x}) got={:e} want={:e}",
                worst.0,
                x,
                worst.1,
                f.eval(x),
                f.reference(x as f64)
            );
        }
        line += &format!(" secs={secs:.1}");
        println!("{line}");
    }
}
