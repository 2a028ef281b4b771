//! Peak memory of one AdamW step of a GPT-2-small-shaped program (124,439,808
//! parameters, `train::program::gpt2_small_on_random_tokens`) on the CPU, as a multiple of its state
//! (parameters and both Adam moments). The issue's bound: below 4x.
//!
//! ```text
//! cargo bench -p train --bench memory -- [--layers 12] [--tokens 128] [--threads 2]
//! ```
//!
//! Reads the kernel's accounting (`/proc/self/status`: VmRSS, and VmHWM after
//! resetting it through `/proc/self/clear_refs`), so it measures every allocation
//! of the step: activations, gradients, the new state, the state hash. With torch
//! installed it runs `torch_memory.py` on the same shapes as the baseline (PyTorch's
//! AdamW step, its peak RSS over its own state).

use std::process::Command;
use std::time::Instant;
use train::program::gpt2_small_on_random_tokens;
use train::Trainer;

// Only the argument parser of the shared bench helpers.
#[allow(dead_code)]
mod common;
use common::Args;

/// A `/proc/self/status` field, in bytes.
fn status(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn main() {
    let args = Args::from_env();
    let layers = args.number("--layers", 12);
    let ctx = args.number("--tokens", 128);
    let threads = args.number("--threads", 2);
    let (p, dataset) = gpt2_small_on_random_tokens(ctx, layers).expect("the program");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    pool.install(|| {
        let planned = p.graph().expect("graph").planned_peak_bytes();
        let mut tr = Trainer::new(p.clone(), dataset).expect("trainer");
        let state: u64 = tr.state().values().map(|t| 4 * t.len() as u64).sum();
        let params: usize = tr
            .state()
            .iter()
            .filter(|(k, _)| !k.starts_with("opt.") && k.as_str() != "loss")
            .map(|(_, t)| t.len())
            .sum();
        // Step 1 once to reach the steady state (allocator pools, rayon), then
        // measure step 2 from a reset peak.
        let t0 = Instant::now();
        tr.step(1).expect("step 1");
        let first = t0.elapsed().as_secs_f64();
        let before = status("VmRSS:");
        let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let t0 = Instant::now();
        let out = tr.step(2).expect("step 2");
        let secs = t0.elapsed().as_secs_f64();
        let peak = status("VmHWM:");
        println!(
            "gpt2-shaped: {layers} layers, {params} parameters, 1 x {ctx} tokens, AdamW, {threads} threads"
        );
        println!(
            "  state {:.0} MiB (params + m + v); step 1 {first:.1} s, step 2 {secs:.1} s, loss {}",
            mib(state),
            out.loss
        );
        println!(
            "  RSS before step 2 {:.0} MiB ({:.2}x state); peak during it {:.0} MiB ({:.2}x state){}",
            mib(before),
            before as f64 / state as f64,
            mib(peak),
            peak as f64 / state as f64,
            if reset { "" } else { " [peak not reset: includes earlier]" }
        );
        println!(
            "  planned peak (StepGraph::planned_peak_bytes) {:.0} MiB ({:.2}x state)",
            mib(planned),
            planned as f64 / state as f64
        );
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_memory.py");
    let out = Command::new("python3")
        .args(["-W", "ignore", script])
        .args([
            "--layers",
            &layers.to_string(),
            "--tokens",
            &ctx.to_string(),
        ])
        .args(["--threads", &threads.to_string()])
        .output();
    match out {
        Ok(o) if o.status.success() => print!("{}", String::from_utf8_lossy(&o.stdout)),
        _ => println!("  PyTorch baseline: not run (python3 -m pip install torch)"),
    }
}
