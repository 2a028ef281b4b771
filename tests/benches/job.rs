//! End-to-end jobs, split into their parts: training (and the hashing inside
//! it), commitment, verification at each level (full re-execution, the
//! default, and 2% sampling) next to the solver's compute, and a dispute.
//!
//! `cargo bench -p tests --bench job` (`VT_BENCH_STEPS`, default 300).
use agent::exec::Fault;
use std::time::{Duration, Instant};
use tests::{net, status_name};

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let steps: u64 = std::env::var("VT_BENCH_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let n = net().await?;
    let v = verifierd::start(n.c.verifier_config("verifier")).await?;
    let s = solverd::start(n.c.solver_config("solver")).await?;
    let sample_rate = n.c.verifier_config("verifier").sample_rate;

    // 1. An honest job; record when each stage is first seen.
    let t0 = Instant::now();
    let (id, _) = n.submit(steps).await?;
    let mut seen: Vec<(&str, Duration)> = Vec::new();
    loop {
        let t = n.task(id).await?;
        let stage = match (status_name(&t), t.attestations.is_empty()) {
            ("TASK_STATUS_COMMITTED", false) => "attested",
            (s, _) => s,
        };
        if seen.last().map(|x| x.0) != Some(stage) {
            seen.push((stage, t0.elapsed()));
        }
        if stage == "TASK_STATUS_FINALIZED" || stage == "TASK_STATUS_FAILED" {
            break;
        }
        if t0.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("job did not end");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sm = s.metrics();
    let vm = v.metrics();
    let (s_us, s_hash_us) = (sm.counter("compute_us"), sm.counter("hash_us"));
    let (v_us, v_ck_us) = (vm.counter("compute_us"), vm.counter("checkpoint_us"));
    let t = n.task(id).await?;
    // 1b. The same job at the sampled level (2% of the steps per verifier).
    let p = tests::program(steps);
    let id_s = app::follow::submit_at(
        &n.c.client,
        n.c.signer("submitter")?,
        &p,
        None,
        framework::Amount(1_000_000),
        framework::Amount(100_000),
        Some(200),
        None,
    )
    .await?;
    let ts = n.finish(id_s, 600).await?;
    let (s2_us, v2_us, v2_ck_us) = (
        sm.counter("compute_us") - s_us,
        vm.counter("compute_us") - v_us,
        vm.counter("checkpoint_us") - v_ck_us,
    );
    // Commitment: the trace root over h_0..h_T (the solver's whole off-chain cost of it).
    let hashes: Vec<[u8; 32]> = (0..=steps).map(|i| [i as u8; 32]).collect();
    let c0 = Instant::now();
    let reps = 1000;
    for _ in 0..reps {
        std::hint::black_box(train::merkle::root(std::hint::black_box(&hashes)));
    }
    let root_us = c0.elapsed().as_secs_f64() * 1e6 / reps as f64;
    s.shutdown().await;
    v.shutdown().await;

    // 2. A dispute: a cheating solver at the middle step, a whistleblower.
    let p = tests::program(steps);
    let step = steps / 2;
    let node = app::demo::effective_nodes(&p, step)?[0];
    let mut vc = n.c.verifier_config("verifier2");
    vc.whistleblower = true;
    let w = verifierd::start(vc).await?;
    let mut sc = n.c.solver_config("cheater");
    sc.inject_fault = vec![Fault::Corrupt { step, node }];
    let cheat = solverd::start(sc).await?;
    let (id2, _) = n.submit(steps).await?;
    let mut opened = None;
    let d0 = Instant::now();
    let t2 = loop {
        let t2 = n.task(id2).await?;
        if t2.open_dispute != 0 && opened.is_none() {
            opened = Some(d0.elapsed());
        }
        if status_name(&t2) == "TASK_STATUS_FAILED" || status_name(&t2) == "TASK_STATUS_FINALIZED" {
            break t2;
        }
        if d0.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("dispute job did not end");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let resolved = d0.elapsed();
    let d = n
        .dispute_of(id2)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no dispute"))?;
    let cheat_us = cheat.metrics().counter("compute_us");
    let wm = w.metrics();
    let w_us = wm.counter("compute_us");
    cheat.shutdown().await;
    w.shutdown().await;
    n.c.shutdown().await;

    println!("end-to-end job: mlp-digits, {steps} steps, dev chain with 100 ms blocks, solver and verifier in-process over gRPC");
    println!("timeline of the honest job (wall clock from submit):");
    for (stage, at) in &seen {
        println!("  {:<26} {:>8.3} s", stage, at.as_secs_f64());
    }
    println!(
        "solver:   training {:>9.1} ms  (of which state hashing {:>7.1} ms = {:.1}%)",
        s_us as f64 / 1e3,
        s_hash_us as f64 / 1e3,
        100.0 * s_hash_us as f64 / s_us.max(1) as f64
    );
    println!(
        "          commitment (trace root over {} hashes) {:.1} us",
        steps + 1,
        root_us
    );
    println!("verification cost by level (verifier compute next to the solver's, same job):");
    println!("  full (default): verifier re-execution {:>7.1} ms = {:.1}% of the solver's {:.1} ms ({} attestation, evidence from its own run)",
        v_us as f64 / 1e3, 100.0 * v_us as f64 / s_us.max(1) as f64, s_us as f64 / 1e3, t.attestations.len());
    println!("  sampled 2%:     verifier re-execution {:>7.1} ms = {:.2}% of the solver's {:.1} ms; with checkpoint fetch+check {:.2}% ({} attestation, task {})",
        v2_us as f64 / 1e3, 100.0 * v2_us as f64 / s2_us.max(1) as f64, s2_us as f64 / 1e3,
        100.0 * (v2_us + v2_ck_us) as f64 / s2_us.max(1) as f64, ts.attestations.len(), status_name(&ts));
    let _ = sample_rate;
    println!("dispute (fault at step {step} node {node}, {}): opened {:.2} s after submit, resolved {:.2} s after submit, {} moves, {} rounds, outcome: {}",
        d.op_kind, opened.unwrap_or_default().as_secs_f64(), resolved.as_secs_f64(), d.transcript.len(), d.rounds, d.outcome);
    println!("          cheating solver compute {:.1} ms (training + dispute replays), whistleblower {:.1} ms (whole task)",
        cheat_us as f64 / 1e3, w_us as f64 / 1e3);
    println!("          task {}: {}", status_name(&t2), t2.note);
    Ok(())
}
