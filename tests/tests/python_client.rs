//! The Python client (clients/python, generated from proto/ with grpcio-tools)
//! submits a job to a live network and follows it to its verified end.
//! Needs python3 with grpcio, grpcio-tools, protobuf and ecdsa (`.ci/run`
//! installs them); without them the test says so and passes, unless
//! `VT_REQUIRE_PYTHON=1`, which CI sets.
use std::process::Command;
use tests::net;

fn python_ready() -> Result<(), String> {
    let out = Command::new("python3")
        .args(["-c", "import grpc, grpc_tools, google.protobuf, ecdsa"])
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_submits_a_job_and_follows_it_to_the_end() {
    if let Err(why) = python_ready() {
        if std::env::var("VT_REQUIRE_PYTHON").as_deref() == Ok("1") {
            panic!("VT_REQUIRE_PYTHON=1 but the Python client's packages are missing: {why}");
        }
        eprintln!(
            "skipping: python3 with grpcio, grpcio-tools, protobuf, ecdsa is not available ({why})"
        );
        return;
    }
    let n = net().await.unwrap();
    let v = verifierd::start(n.c.verifier_config("verifier"))
        .await
        .unwrap();
    let s = solverd::start(n.c.solver_config("solver")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let prog = dir.path().join("program.json");
    std::fs::write(&prog, serde_json_vec(&tests::program(20))).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("clients/python/examples/submit_and_follow.py");
    let node = n.c.node.grpc_url();
    let key = n.c.key_file("submitter");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .args(["--node", &node, "--key"])
            .arg(key)
            .arg("--program")
            .arg(prog)
            .args(["--timeout", "120"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("TASK_STATUS_FINALIZED"), "{stdout}");
    assert!(
        stdout.contains(&format!("as {}", n.addr("submitter"))),
        "the Python client derives the same address: {stdout}"
    );
    s.shutdown().await;
    v.shutdown().await;
    n.c.shutdown().await;
}

fn serde_json_vec(p: &train::Program) -> Vec<u8> {
    serde_json::to_vec(p).unwrap()
}
