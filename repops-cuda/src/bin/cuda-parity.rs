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
    /// Train mlp-digits and tiny-lm for this many steps on both backends.
    #[arg(long, value_name = "STEPS")]
    train: Option<u64>,
    /// With --train: only these programs (default: mlp-digits and tiny-lm).
    #[arg(long, value_delimiter = ',', value_parser = ["mlp-digits", "tiny-lm"])]
    programs: Vec<String>,
    /// CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    device: usize,
}

fn hex(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn main() -> Result<()> {
    let mut a = Args::parse();
    if a.all {
        a.golden = true;
        a.exhaustive = true;
        a.fuzz = a.fuzz.or(Some(2000));
        a.train = a.train.or(Some(1000));
    }
    if !a.golden && !a.exhaustive && a.fuzz.is_none() && a.train.is_none() {
        bail!("nothing to do: pass --all or some of --golden --fuzz N --exhaustive --train N");
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
