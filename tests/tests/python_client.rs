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
    // The job's level and what it guarantees reach Python too.
    assert!(
        stdout.contains("verification: full re-execution"),
        "{stdout}"
    );
    // It committed to a seed and revealed it after the commit.
    assert!(
        stdout.contains("verifiers drawn from the revealed seed"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("as {}", n.addr("submitter"))),
        "the Python client derives the same address: {stdout}"
    );
    s.shutdown().await;
    v.shutdown().await;
    n.c.shutdown().await;
}

/// The swarm leaderboard reaches Python: a one-round swarm with one contributor
/// settles over real gRPC, and the client reads the round and the ranking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_reads_a_swarm_round_and_its_leaderboard() {
    if let Err(why) = python_ready() {
        if std::env::var("VT_REQUIRE_PYTHON").as_deref() == Ok("1") {
            panic!("VT_REQUIRE_PYTHON=1 but the Python client's packages are missing: {why}");
        }
        eprintln!("skipping: python3 with the client's packages is not available ({why})");
        return;
    }
    let n = net().await.unwrap();
    let v = verifierd::start(n.c.verifier_config("verifier"))
        .await
        .unwrap();
    n.create_swarm(1, 1, 6, 1_000_000).await.unwrap();
    let mut sc = n.c.solver_config("solver");
    sc.swarm = vec![1];
    let s = solverd::start(sc).await.unwrap();
    let mut q = n.c.client.swarm();
    tests::eventually(240, "the swarm ends", || {
        let mut q = q.clone();
        async move {
            let sw = q
                .swarm(proto::swarm::v1::QuerySwarmRequest { swarm_id: 1 })
                .await?
                .into_inner()
                .swarm
                .unwrap_or_default();
            Ok(sw.status == proto::swarm::v1::SwarmStatus::Done as i32)
        }
    })
    .await
    .unwrap();
    let _ = q
        .params(proto::swarm::v1::QueryParamsRequest {})
        .await
        .unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let code = r#"
import sys
sys.path.insert(0, sys.argv[2])
from veritrain_client.client import Client
c = Client(sys.argv[1])
r = c.swarm_round(1, 0)
print("round", r.round, "base loss", r.base.loss_fixed, "contributions", len(r.contributions))
for e in c.swarm_leaderboard(1):
    print("rank", e.address, e.quality, e.contributions)
print("swarm done", c.swarm(1).status)
"#;
    let (node, py) = (n.c.node.grpc_url(), root.join("clients/python"));
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(["-c", code, &node])
            .arg(py)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("contributions 1"), "{stdout}");
    assert!(
        stdout.contains(&format!("rank {} ", n.addr("solver"))),
        "{stdout}"
    );
    s.shutdown().await;
    v.shutdown().await;
    n.c.shutdown().await;
}

fn serde_json_vec(p: &train::Program) -> Vec<u8> {
    serde_json::to_vec(p).unwrap()
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "_gen" || name == "__pycache__" || name == "build" {
            continue;
        }
        let (src, dst) = (e.path(), to.join(&name));
        if src.is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

#[test]
fn pip_installs_the_python_client_with_its_generated_typed_code_built_at_install_time() {
    let require = std::env::var("VT_REQUIRE_PYTHON").as_deref() == Ok("1");
    if let Err(why) = python_ready() {
        assert!(
            !require,
            "VT_REQUIRE_PYTHON=1 but packages are missing: {why}"
        );
        eprintln!("skipping: python3 with grpcio, grpcio-tools, protobuf, ecdsa is not available");
        return;
    }
    // The repository's layout in a scratch directory, so the build leaves no files behind.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    copy_dir(&root.join("clients/python"), &src.join("clients/python"));
    copy_dir(&root.join("proto/veritrain"), &src.join("proto/veritrain"));
    let venv = dir.path().join("venv");
    let ok = Command::new("python3")
        .args(["-m", "venv", "--system-site-packages"])
        .arg(&venv)
        .status()
        .unwrap()
        .success();
    assert!(ok, "python3 -m venv failed");
    let pip = |extra: &[&str]| {
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(extra)
            .arg(src.join("clients/python"))
            .output()
            .unwrap()
    };
    // pip fetches the build requirements; offline, the installed ones will do.
    let mut out = pip(&[]);
    if !out.status.success() {
        out = pip(&["--no-build-isolation"]);
    }
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!require, "pip install ./clients/python failed:\n{why}");
        eprintln!("skipping: pip cannot build here (offline?):\n{why}");
        return;
    }
    // Importing needs no grpcio-tools and generates nothing: the code is installed.
    let out = Command::new(venv.join("bin/python"))
        .current_dir(dir.path())
        .args([
            "-c",
            "import sys; sys.modules['grpc_tools'] = None\n\
             import veritrain_client\n\
             from veritrain_client.client import node_pb2\n\
             print(node_pb2.__file__)",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("site-packages"), "{stdout}");
    let gen = std::path::Path::new(&stdout).parent().unwrap();
    assert!(
        gen.join("node_pb2.pyi").exists(),
        "no type stubs in {}",
        gen.display()
    );
    assert!(gen.join("py.typed").exists());
    let pkg = gen
        .ancestors()
        .find(|p| p.ends_with("veritrain_client"))
        .unwrap();
    assert!(pkg.join("py.typed").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pythons_stock_reflection_client_lists_and_describes_the_node_services() {
    let ready = Command::new("python3")
        .args([
            "-c",
            "import grpc, grpc_reflection.v1alpha.proto_reflection_descriptor_database",
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ready {
        assert!(
            std::env::var("VT_REQUIRE_PYTHON").as_deref() != Ok("1"),
            "VT_REQUIRE_PYTHON=1 but grpcio-reflection is missing"
        );
        eprintln!("skipping: python3 with grpcio-reflection is not available");
        return;
    }
    let n = net().await.unwrap();
    let target = n.c.node.grpc_addr.to_string();
    let script = "import sys, grpc\n\
        from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase\n\
        from google.protobuf.descriptor_pool import DescriptorPool\n\
        db = ProtoReflectionDescriptorDatabase(grpc.insecure_channel(sys.argv[1]))\n\
        print(' '.join(sorted(db.get_services())))\n\
        pool = DescriptorPool(db)\n\
        print(' '.join(m.name for m in pool.FindServiceByName('veritrain.tasks.v1.Query').methods))\n";
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(["-c", script, &target])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "veritrain.node.v1.Node",
        "grpc.health.v1.Health",
        "Leaderboard",
    ] {
        assert!(stdout.contains(want), "{want}: {stdout}");
    }
    assert!(!stdout.contains("veritrain.solver"), "{stdout}");
    n.c.shutdown().await;
}
