//! `cuda-parity`: the CUDA backend against the CPU reference, bit for bit, on a machine
//! with a GPU. Exits non-zero on any difference.
//!
//! ```text
//! cargo run --release -p repops-cuda --bin cuda-parity -- --all
//! cargo run --release -p repops-cuda --bin cuda-parity -- --golden --fuzz 2000
//! ```

use anyhow::{bail, Context, Result};
use clap::Parser;
use repops::conformance;
use repops::math::Func;
use repops_cuda::{parity, CudaBackend};
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "Bitwise parity of the CUDA backend with the CPU reference")]
struct Args {
    /// Everything: golden, fuzz (default count), exhaustive functions, training.
    #[arg(long)]
    all: bool,
    /// The committed golden vectors (repops/golden/ops.json).
    #[arg(long)]
    golden: bool,
    /// Random-shape cases over every op.
    #[arg(long, value_name = "CASES")]
    fuzz: Option<usize>,
    /// Seed of the fuzz cases.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Every elementary function on all 2^32 inputs.
    #[arg(long)]
    exhaustive: bool,
    /// With --exhaustive: only these functions (default: all six).
    #[arg(long, value_delimiter = ',', value_parser = ["exp", "log", "tanh", "sigmoid", "gelu", "rsqrt"])]
    funcs: Vec<String>,
    /// Train mlp-digits and tiny-lm for this many steps on both backends.
    #[arg(long, value_name = "STEPS")]
    train: Option<u64>,
    /// With --train: only these programs (default: mlp-digits and tiny-lm).
    #[arg(long, value_delimiter = ',', value_parser = ["mlp-digits", "tiny-lm"])]
    programs: Vec<String>,
    /// R6 tensor hashes computed on the device against the host's, on random tensors
    /// up to 256 MiB (with NaN payloads and infinities), and their speed.
    #[arg(long)]
    hashes: bool,
    /// CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    device: usize,
}

fn hex(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// Device digests vs `repops::Digest::of` on random tensors; prints each size's speed.
fn hashes(cuda: &CudaBackend) -> Result<usize> {
    use repops::{Backend, Digest, Tensor};
    let p = repops::Philox::new(11, 0);
    let mut bad = 0;
    let shapes: [&[usize]; 8] = [
        &[],
        &[249],
        &[250],
        &[3, 5, 7, 11],
        &[1000, 1000],
        &[4096, 4096],
        &[64, 1024, 1024],
        &[2, 3, 4, 5, 6, 7],
    ];
    for (k, shape) in shapes.iter().enumerate() {
        let n: usize = shape.iter().product();
        let mut data: Vec<f32> = (0..n)
            .map(|i| f32::from_bits(p.u32_at(i as u64 ^ ((k as u64) << 40)) & 0xbfff_ffff))
            .collect();
        if k % 2 == 1 && n > 2 {
            data[n / 2] = f32::from_bits(0x7fc0_1234);
            data[n - 1] = f32::INFINITY;
        }
        let t = Tensor::new(shape.to_vec(), data)?;
        let d = cuda.upload(&t)?;
        cuda.digests(&[&d])?; // warm-up
        cuda.synchronize()?;
        let t0 = Instant::now();
        let got = cuda.digests(&[&d])?;
        let dev_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let want = Digest::of(&t);
        let host_s = t1.elapsed().as_secs_f64();
        let ok = got.first() == Some(&want);
        bad += usize::from(!ok);
        println!(
            "hash {shape:?}: {}, device {:.3} ms ({:.1} GB/s), host {:.3} ms ({:.1} GB/s)",
            if ok { "identical" } else { "MISMATCH" },
            dev_s * 1e3,
            4.0 * n as f64 / dev_s / 1e9,
            host_s * 1e3,
            4.0 * n as f64 / host_s / 1e9
        );
    }
    Ok(bad)
}

fn main() -> Result<()> {
    let mut a = Args::parse();
    if a.all {
        a.golden = true;
        a.hashes = true;
        a.exhaustive = true;
        a.fuzz = a.fuzz.or(Some(2000));
        a.train = a.train.or(Some(1000));
    }
    if !a.golden && !a.hashes && !a.exhaustive && a.fuzz.is_none() && a.train.is_none() {
        bail!("nothing to do: pass --all or some of --golden --hashes --fuzz N --exhaustive --train N");
    }
    let cuda = Arc::new(CudaBackend::new(a.device).context("opening the CUDA backend")?);
    println!(
        "device: {} ({}), kernels compiled for {}",
        cuda.device_name(),
        repops::Backend::name(&*cuda),
        cuda.arch()
    );
    let mut failures = 0usize;
    if a.golden {
        let (n, bad) = conformance::golden(&*cuda).map_err(anyhow::Error::msg)?;
        println!("golden: {n} cases, {} mismatches", bad.len());
        for m in &bad {
            println!("  {}: {}", m.what, m.detail);
        }
        failures += bad.len();
    }
    if a.hashes {
        failures += hashes(&cuda)?;
    }
    if let Some(cases) = a.fuzz {
        let t = Instant::now();
        let bad = conformance::fuzz(&*cuda, cases, a.seed);
        println!(
            "fuzz: {cases} cases (seed {}), {} mismatches, {:.1}s",
            a.seed,
            bad.len(),
            t.elapsed().as_secs_f64()
        );
        for m in bad.iter().take(50) {
            println!("  {}: {}", m.what, m.detail);
        }
        failures += bad.len();
    }
    if a.exhaustive {
        for f in Func::ALL {
            if !a.funcs.is_empty() && !a.funcs.iter().any(|n| n == f.name()) {
                continue;
            }
            let t = Instant::now();
            let (n, bad, nbad) =
                parity::elementary(&cuda, f, 0, 1u64 << 32).map_err(anyhow::Error::msg)?;
            println!(
                "exhaustive {}: {n} inputs, {nbad} mismatches{}, {:.1}s",
                f.name(),
                if bad.is_empty() {
                    String::new()
                } else {
                    format!(" (first: {bad:08x?})")
                },
                t.elapsed().as_secs_f64()
            );
            failures += nbad as usize;
        }
    }
    if let Some(steps) = a.train {
        let programs = if a.programs.is_empty() {
            vec!["mlp-digits".to_string(), "tiny-lm".to_string()]
        } else {
            a.programs.clone()
        };
        for program in &programs {
            let r = train::conformance::training(cuda.clone(), program, steps)
                .map_err(anyhow::Error::msg)?;
            println!(
                "train {program}: {} steps, cpu trace root {}, gpu trace root {}, {} (cpu {:.1}s, gpu {:.1}s)",
                r.steps,
                hex(&r.cpu_trace_root),
                hex(&r.backend_trace_root),
                match r.first_divergence {
                    None => "identical".to_string(),
                    Some(t) => format!("DIVERGED at step {t}"),
                },
                r.cpu_seconds,
                r.backend_seconds
            );
            failures += r.first_divergence.is_some() as usize;
        }
    }
    if failures > 0 {
        bail!("{failures} differences from the CPU reference");
    }
    println!("all checks identical to the CPU reference");
    Ok(())
}
