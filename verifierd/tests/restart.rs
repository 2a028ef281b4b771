//! `kill -9` of a verifierd process in the middle of a dispute; after a
//! restart it rebuilds its view from the chain and wins the dispute.
use agent::exec::Fault;
use std::time::Duration;
use tests::proc::{free_port, kill9, spawn};
use tests::{eventually, net, status_name};

const STEPS: u64 = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifier_killed_mid_dispute_resumes_and_wins() {
    let n = net().await.unwrap();
    let p = tests::program(STEPS);
    let (step, node) = (37, app::demo::effective_nodes(&p, 37).unwrap()[0]);
    let mut sc = n.c.solver_config("cheater");
    sc.inject_fault = vec![Fault::Corrupt { step, node }];
    let s = solverd::start(sc).await.unwrap();
    let home = n.c.root.join("verifier-proc");
    let args: Vec<String> = [
        "--home",
        &home.display().to_string(),
        "--node",
        &n.c.node.grpc_url(),
        "--from",
        &n.c.key_file("verifier").display().to_string(),
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
        "--stake",
        "1000000uvtr",
        "--whistleblower",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let log = n.c.root.join("verifierd.log");
    let bin = env!("CARGO_BIN_EXE_verifierd");
    let mut child = spawn(bin, &args, &log).unwrap();
    let (id, _) = n.submit(STEPS).await.unwrap();
    eventually(120, "a dispute to open", || async {
        Ok(n.task(id).await?.open_dispute != 0)
    })
    .await
    .unwrap();
    kill9(&mut child);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut child = spawn(bin, &args, &log).unwrap();
    let t = n.finish(id, 300).await.unwrap();
    kill9(&mut child);
    assert_eq!(status_name(&t), "TASK_STATUS_FAILED", "{}", t.note);
    let d = n.dispute_of(id).await.unwrap().expect("a dispute");
    assert!(d.outcome.starts_with("challenger wins"), "{}", d.outcome);
    assert_eq!((d.hi, d.node), (step, node as u64), "{:#?}", d.transcript);
    s.shutdown().await;
    n.c.shutdown().await;
}
