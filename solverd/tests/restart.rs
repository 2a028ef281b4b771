//! `kill -9` of a solverd process in the middle of training; after a restart
//! it resumes from its newest checkpoint and the job completes with the
//! reference result.
use proto::solver::v1::{solver_client::SolverClient, StatusRequest};
use std::time::Duration;
use tests::proc::{free_port, kill9, spawn};
use tests::{eventually, net, status_name};

const STEPS: u64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn solver_killed_mid_training_resumes_and_the_job_completes() {
    let n = net().await.unwrap();
    let v = verifierd::start(n.c.verifier_config("verifier"))
        .await
        .unwrap();
    let home = n.c.root.join("solver-proc");
    let port = free_port();
    let args: Vec<String> = [
        "--home",
        &home.display().to_string(),
        "--node",
        &n.c.node.grpc_url(),
        "--from",
        &n.c.key_file("solver").display().to_string(),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--stake",
        "5000000uvtr",
        "--checkpoint-every",
        "50",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let log = n.c.root.join("solverd.log");
    let bin = env!("CARGO_BIN_EXE_solverd");
    // The first run trains slowly (20 ms a step), so that the kill lands mid-training.
    let mut slow = args.clone();
    slow.extend(["--inject-fault".to_string(), "slow:20".to_string()]);
    let mut child = spawn(bin, &slow, &log).unwrap();
    let (id, _) = n.submit(STEPS).await.unwrap();
    // Kill it once it is well into training (past a checkpoint, not done).
    let url = format!("http://127.0.0.1:{port}");
    let killed_at = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    eventually(120, "training to reach step 120", || {
        let url = url.clone();
        let killed = killed_at.clone();
        async move {
            let Ok(mut c) = SolverClient::connect(url).await else {
                return Ok(false);
            };
            let Ok(st) = c.status(StatusRequest {}).await else {
                return Ok(false);
            };
            let done = st
                .into_inner()
                .tasks
                .iter()
                .find(|t| t.task_id == id)
                .map(|t| t.steps_done)
                .unwrap_or(0);
            killed.store(done, std::sync::atomic::Ordering::SeqCst);
            Ok(done >= 120)
        }
    })
    .await
    .unwrap();
    kill9(&mut child);
    let killed_at = killed_at.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        killed_at < STEPS,
        "training finished before the kill; make STEPS larger"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut child = spawn(bin, &args, &log).unwrap();
    let t = n.finish(id, 300).await.unwrap();
    kill9(&mut child);
    assert_eq!(status_name(&t), "TASK_STATUS_FINALIZED", "{}", t.note);
    let mut tr = train::Trainer::builtin("mlp-digits").unwrap();
    for s in 1..=STEPS {
        tr.step(s).unwrap();
    }
    assert_eq!(
        t.final_state_hash,
        tr.state_hash().to_vec(),
        "the resumed run is the reference run"
    );
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.contains("resumed from checkpoint"), "{logs}");
    v.shutdown().await;
    n.c.shutdown().await;
}
