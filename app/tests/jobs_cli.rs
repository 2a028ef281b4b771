//! The job commands of the CLI against a live network (dev chain, solverd and
//! verifierd in this process, over gRPC): `tx tasks submit --wait` follows the
//! job to its end, `model fetch` downloads the model and checks it against the
//! chain, and their failures are clear.
use app::cluster::{Cluster, Timing};
use std::process::Command;

fn veritraind(home: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_veritraind"))
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_wait_follows_the_job_and_model_fetch_checks_it() {
    let dir = tempfile::tempdir().unwrap();
    let timing = Timing {
        block_ms: 100,
        challenge_window_blocks: 50,
        move_blocks: 50,
    };
    let c = Cluster::start(dir.path(), &["submitter", "solver", "verifier"], &timing)
        .await
        .unwrap();
    let v = verifierd::start(c.verifier_config("verifier"))
        .await
        .unwrap();
    let s = solverd::start(c.solver_config("solver")).await.unwrap();
    // The CLI's own home, with the submitter's key in its keyring.
    let home = dir.path().join("cli");
    let secret = std::fs::read_to_string(c.key_file("submitter")).unwrap();
    app::keyring::Keyring::open(&home)
        .import("sub", &secret)
        .unwrap();
    let node = c.node.grpc_url();
    let args = [
        "tx",
        "tasks",
        "submit",
        "--program",
        "mlp-digits",
        "--steps",
        "20",
        "--reward",
        "1000000uvtr",
        "--verification-fee",
        "100000uvtr",
        "--from",
        "sub",
        "--yes",
        "--wait",
        "--node",
        &node,
        "--output",
        "json",
    ];
    let (home2, args2) = (home.clone(), args.map(String::from));
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args2.iter().map(|s| s.as_str()).collect();
        veritraind(&home2, &a)
    })
    .await
    .unwrap();
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let r: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(r["status"], "TASK_STATUS_FINALIZED", "{r:#}");
    let id = r["task_id"].as_u64().unwrap();
    assert_eq!(r["final_state_hash"].as_str().unwrap().len(), 64);
    // `--wait` committed to a seed and revealed it after the commit: the
    // verifiers were drawn from it (the block-hash fallback would have come
    // reveal_blocks later).
    let t = app::follow::task(&c.client, id).await.unwrap();
    assert_eq!(t.seed_commitment.len(), 32);
    assert_eq!(t.selection_seed.len(), 32);

    let model = dir.path().join("model.safetensors");
    let (home2, node2, m2) = (home.clone(), node.clone(), model.clone());
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || {
        veritraind(
            &home2,
            &[
                "model",
                "fetch",
                &id.to_string(),
                "--out",
                m2.to_str().unwrap(),
                "--node",
                &node2,
                "--output",
                "json",
            ],
        )
    })
    .await
    .unwrap();
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let f: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(f["final_state_hash"], r["final_state_hash"]);
    let p = {
        let mut p = train::Program::builtin("mlp-digits").unwrap();
        p.steps = 20;
        p
    };
    let bytes = std::fs::read(&model).unwrap();
    let (step, state) =
        train::checkpoint::decode(&p, &p.graph().unwrap().state_shapes, &bytes).unwrap();
    assert_eq!(step, 20);
    assert_eq!(
        hex::encode(train::state_hash(&state)),
        r["final_state_hash"].as_str().unwrap()
    );

    // Without --wait the submission still commits to a seed: the secret is
    // kept under --home and `tx tasks reveal-seed` draws from it.
    let (home2, node2) = (home.clone(), node.clone());
    let base: Vec<String> = args[..14].iter().map(|s| s.to_string()).collect();
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || {
        let mut a: Vec<&str> = base.iter().map(|s| s.as_str()).collect();
        a.extend(["--node", &node2, "--output", "json"]);
        veritraind(&home2, &a)
    })
    .await
    .unwrap();
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("reveal-seed"), "{stderr}");
    let id = id + 1;
    let kept = home.join("seeds").join(format!("{id}.secret"));
    let secret = hex::decode(std::fs::read_to_string(&kept).unwrap()).unwrap();
    let t = app::follow::task(&c.client, id).await.unwrap();
    assert_eq!(
        t.seed_commitment,
        <sha2::Sha256 as sha2::Digest>::digest(&secret).to_vec()
    );
    let t = loop {
        let t = app::follow::task(&c.client, id).await.unwrap();
        if !t.trace_root.is_empty() {
            break t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        t.selection_seed.is_empty(),
        "nothing drawn before the reveal"
    );
    let (home2, node2) = (home.clone(), node.clone());
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || {
        veritraind(
            &home2,
            &[
                "tx",
                "tasks",
                "reveal-seed",
                &id.to_string(),
                "--from",
                "sub",
                "--yes",
                "--node",
                &node2,
            ],
        )
    })
    .await
    .unwrap();
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let t = app::follow::task(&c.client, id).await.unwrap();
    let mut h = <sha2::Sha256 as sha2::Digest>::new();
    sha2::Digest::update(&mut h, b"veritrain/tasks/selection-revealed");
    sha2::Digest::update(&mut h, &secret);
    sha2::Digest::update(&mut h, &t.trace_root);
    sha2::Digest::update(&mut h, id.to_be_bytes());
    assert_eq!(
        t.selection_seed,
        sha2::Digest::finalize(h).to_vec(),
        "drawn from the revealed secret"
    );

    // Failures say what is wrong.
    let (home2, node2) = (home.clone(), node.clone());
    let (ok, _, stderr) = tokio::task::spawn_blocking(move || {
        veritraind(
            &home2,
            &["model", "fetch", "999", "--out", "/tmp/x", "--node", &node2],
        )
    })
    .await
    .unwrap();
    assert!(!ok);
    assert!(stderr.contains("task 999"), "{stderr}");
    let (home2, node2) = (home.clone(), node.clone());
    let (ok, _, stderr) = tokio::task::spawn_blocking(move || {
        veritraind(
            &home2,
            &[
                "tx",
                "tasks",
                "submit",
                "--program",
                "no-such-program",
                "--reward",
                "1uvtr",
                "--from",
                "sub",
                "--yes",
                "--node",
                &node2,
            ],
        )
    })
    .await
    .unwrap();
    assert!(!ok);
    assert!(stderr.contains("neither a builtin"), "{stderr}");
    s.shutdown().await;
    v.shutdown().await;
    c.shutdown().await;
}
