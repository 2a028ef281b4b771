//! One training step of each builtin program against PyTorch on the CPU, same threads.
//!
//! ```text
//! cargo bench -p train --bench vs_torch -- [--threads K] [--steps S] [--rounds R]
//!     [--program NAME] [--adamw default|single|foreach|fused] [--python python3]
//! ```
//!
//! Runs `train/benches/torch_step.py --serve` (the same model, batch and optimizer in
//! PyTorch, `torch.set_num_threads(K)`) as a child process and interleaves its rounds
//! with ours: each round times `S` steps of [`Trainer::step`] (hashing included) on a
//! `K`-thread rayon pool, then asks PyTorch for `S` steps (the order alternates round by
//! round). Prints the median seconds per step of each and the median of the per-round
//! time ratios (ours / PyTorch; the goal is ≤ 1.3), of wall time and of process CPU
//! time (steadier on a busy machine; counts spinning workers on both sides). The child
//! gets `OMP_WAIT_POLICY=PASSIVE` unless the environment sets a policy (see below). PyTorch is a benchmark-only
//! dependency (`python3 -m pip install torch`); without it the bench says so and exits 0.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Instant;
use train::Trainer;

mod common;
use common::{cpu_seconds, median, Args};

fn main() {
    let args = Args::from_env();
    let get = |k: &str, d: usize| args.number(k, d);
    let arg = |k: &str| args.value(k);
    let threads = get("--threads", 1);
    let rounds = get("--rounds", 15);
    let python = arg("--python").unwrap_or_else(|| "python3".into());
    let adamw = arg("--adamw").unwrap_or_else(|| "default".into());
    let programs = args.programs();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_step.py");
    // OpenMP threads that spin while they wait (the default) take the cores from our
    // rounds in between, and lose whole scheduler slices at every barrier when another
    // job holds a core: on this shared 2-core machine torch's 2-thread LM step went from
    // ~9 ms to 60-140 ms. Passive waiting unless the caller chose a policy.
    let omp_policy = std::env::var("OMP_WAIT_POLICY").unwrap_or_else(|_| "PASSIVE".into());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    for name in &programs {
        // About 2 ms of work per round and side for the MLP, 100 ms for the LM.
        let steps = get("--steps", if name == "tiny-lm" { 10 } else { 20 }) as u64;
        let child = Command::new(&python)
            .env("OMP_WAIT_POLICY", &omp_policy)
            .args(["-W", "ignore", script, "--serve", "--program", name])
            .args(["--threads", &threads.to_string(), "--adamw", &adamw])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                println!("{name}: cannot run {python} {script}: {e}; skipped");
                continue;
            }
        };
        let mut to_py = child.stdin.take().expect("stdin");
        let mut from_py = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let mut read_json = |line: &mut String| -> Option<serde_json::Value> {
            line.clear();
            from_py.read_line(line).ok()?;
            serde_json::from_str(line).ok()
        };
        let Some(ready) = read_json(&mut line) else {
            println!("{name}: {python} {script} did not start (is torch installed?); skipped");
            let _ = child.kill();
            let _ = child.wait();
            continue;
        };
        // (wall, CPU) seconds per step.
        let mut py_steps = |n: u64, line: &mut String| -> (f64, f64) {
            writeln!(to_py, "{n}").expect("write to python");
            to_py.flush().expect("flush");
            let v = read_json(line).expect("python answer");
            let get = |k: &str| v[k].as_f64().expect("python answer");
            (get("seconds_per_step"), get("cpu_seconds_per_step"))
        };
        let (ours, theirs, ratio, cpu_ratio) = pool.install(|| {
            let mut tr = Trainer::builtin(name).expect("builtin");
            let mut t = 0u64;
            let mut ours_round = |tr: &mut Trainer| {
                let (c0, t0) = (cpu_seconds(), Instant::now());
                for _ in 0..steps {
                    t += 1;
                    tr.step(t).expect("step");
                }
                let n = steps as f64;
                (t0.elapsed().as_secs_f64() / n, (cpu_seconds() - c0) / n)
            };
            ours_round(&mut tr); // warm-up
            let (mut ours, mut theirs, mut ratio, mut cpu_ratio) = (vec![], vec![], vec![], vec![]);
            for r in 0..rounds {
                let (a, b) = if r % 2 == 0 {
                    let a = ours_round(&mut tr);
                    (a, py_steps(steps, &mut line))
                } else {
                    let b = py_steps(steps, &mut line);
                    (ours_round(&mut tr), b)
                };
                ours.push(a.0);
                theirs.push(b.0);
                ratio.push(a.0 / b.0);
                cpu_ratio.push(a.1 / b.1);
            }
            (
                median(&mut ours),
                median(&mut theirs),
                median(&mut ratio),
                median(&mut cpu_ratio),
            )
        });
        drop(to_py);
        let _ = child.wait();
        println!(
            "{name:10} threads={threads}  repops step {:8.4} ms  torch {} (adamw {}, OMP_WAIT_POLICY={omp_policy}) {:8.4} ms  \
             time ratio repops/torch {ratio:.2} (CPU time {cpu_ratio:.2}; medians of {rounds} rounds of {steps} steps)",
            ours * 1e3,
            ready["torch"].as_str().unwrap_or("?"),
            ready["adamw"].as_str().unwrap_or("?"),
            theirs * 1e3,
        );
    }
}
