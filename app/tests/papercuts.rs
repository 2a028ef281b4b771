//! What a new user hits first, each fixed and kept fixed: a closed pipe, wrong
//! amounts, a missing home, an empty secret, impossible demo cheats, hex app
//! hashes, `--home` reaching its node, logs without colour codes off a terminal.
use app::testkit::free_port;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_veritraind"));
    c.env_remove("VERITRAIND_NODE")
        .env_remove("VERITRAIND_HOME");
    c
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "veritraind dev did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `veritraind dev` on `home` with the given extra flags; stderr to `log`.
fn dev(home: &Path, grpc_port: u16, extra: &[&str], log: &Path) -> Node {
    let child = bin()
        .args(["dev", "--home"])
        .arg(home)
        .args(["--block-ms", "50"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    wait_port(grpc_port);
    Node(child)
}

#[test]
fn a_closed_pipe_ends_the_output_quietly_instead_of_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _n = dev(
        dir.path(),
        port,
        &[
            "--grpc-address",
            &format!("127.0.0.1:{port}"),
            "--no-explorer",
            "--no-metrics",
        ],
        &dir.path().join("node.log"),
    );
    // `| head -1` that has already gone: the read end is closed before the first write.
    for args in [
        &["query", "tasks", "list"][..],
        &["status"][..],
        &["keys", "list"][..],
    ] {
        let (r, w) = std::io::pipe().unwrap();
        drop(r);
        let out = bin()
            .arg("--home")
            .arg(dir.path())
            .env("VERITRAIND_NODE", format!("http://127.0.0.1:{port}"))
            .args(args)
            .stdout(Stdio::from(w))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let (_, err) = text(&out);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(out.status.success(), "{args:?}: {:?} {err}", out.status);
    }
}

#[test]
fn amounts_with_a_decimal_point_too_large_or_in_another_unit_say_so() {
    for (s, want) in [
        ("1.5uvtr", "whole numbers"),
        ("1,000uvtr", "whole numbers"),
        ("340282366920938463463374607431768211456uvtr", "too large"),
        ("5atom", "unknown denomination \"atom\""),
        ("uvtr", "expected a whole number"),
        ("-3uvtr", "expected a whole number"),
    ] {
        let e = app::cli::parse_amount(s).unwrap_err().to_string();
        assert!(e.contains(want), "{s}: {e}");
        assert!(!e.contains("\".5uvtr\""), "{s}: {e}");
    }
    assert_eq!(app::cli::parse_amount("1500uvtr").unwrap().0, 1500);
    assert_eq!(app::cli::parse_amount(" 7 ").unwrap().0, 7);
    assert_eq!(
        app::cli::parse_amount("340282366920938463463374607431768211455uvtr")
            .unwrap()
            .0,
        u128::MAX
    );
    // And through the command line, before anything is dialled.
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_str().unwrap();
    assert!(bin()
        .args(["--home", home, "keys", "add", "k"])
        .output()
        .unwrap()
        .status
        .success());
    let out = bin()
        .args([
            "--home",
            home,
            "tx",
            "tasks",
            "submit",
            "--program",
            "mlp-digits",
        ])
        .args(["--reward", "1.5uvtr", "--from", "k", "--yes"])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(err.contains("whole numbers"), "{err}");
}

#[test]
fn listing_keys_of_a_home_that_does_not_exist_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nonexistent");
    let out = bin()
        .arg("--home")
        .arg(&missing)
        .args(["keys", "list"])
        .output()
        .unwrap();
    let (stdout, err) = text(&out);
    assert!(!out.status.success());
    assert!(err.contains("does not exist"), "{err}");
    assert!(stdout.trim().is_empty(), "{stdout:?}");
    // An existing home without keys says so rather than printing a blank line.
    std::fs::create_dir_all(&missing).unwrap();
    let out = bin()
        .arg("--home")
        .arg(&missing)
        .args(["keys", "list"])
        .output()
        .unwrap();
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert!(stdout.contains("no keys"), "{stdout:?}");
}

#[test]
fn importing_an_empty_secret_says_it_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .arg("--home")
        .arg(dir.path())
        .args(["keys", "import", "k", ""])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(err.contains("empty"), "{err}");
    assert!(!err.contains("scalar"), "{err}");
}

/// Attestation evidence and seed reveals by hand: a proof missing for a
/// hash, or a reveal with no kept secret, says what is wrong before anything
/// is sent.
#[test]
fn mismatched_evidence_flags_and_a_missing_seed_secret_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = bin()
            .arg("--home")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap();
        (out.status.success(), text(&out).1)
    };
    assert!(run(&["keys", "add", "v"]).0);
    let proof = dir.path().join("proof.json");
    std::fs::write(&proof, r#"{"index":1,"leaf_count":2,"siblings":[]}"#).unwrap();
    let p = proof.to_str().unwrap();
    let h = "00".repeat(32);
    let (ok, err) = run(&[
        "tx",
        "tasks",
        "attest",
        "1",
        "--evidence-hash",
        &h,
        "--evidence-hash",
        &h,
        "--evidence-proof",
        p,
        "--from",
        "v",
        "--yes",
    ]);
    assert!(!ok);
    assert!(
        err.contains("2 --evidence-hash but 1 --evidence-proof"),
        "{err}"
    );
    let (ok, err) = run(&["tx", "tasks", "reveal-seed", "5", "--from", "v", "--yes"]);
    assert!(!ok);
    assert!(err.contains("no kept secret for task 5"), "{err}");
    let (ok, err) = run(&[
        "tx",
        "tasks",
        "reveal-seed",
        "5",
        "--secret",
        "abc",
        "--from",
        "v",
        "--yes",
    ]);
    assert!(!ok);
    assert!(err.contains("32 bytes of hex"), "{err}");
}

#[test]
fn impossible_demo_cheats_are_refused_before_anything_runs() {
    for (args, want) in [
        (
            &["--cheat-step", "301"][..],
            "--cheat-step 301 is not a step",
        ),
        (&["--cheat-step", "0"][..], "--cheat-step 0 is not a step"),
        (
            &["--cheat-node", "29"][..],
            "--cheat-node 29 does not exist",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let out = bin()
            .arg("demo")
            .arg("--dir")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap();
        let (_, err) = text(&out);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("did not end as expected"), "{err}");
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{args:?} ran the demo"
        );
    }
}

#[test]
fn home_alone_reaches_its_node_on_non_default_ports_and_status_prints_hex() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("node");
    let out = bin()
        .arg("--home")
        .arg(&home)
        .args(["init", "--chain-id", "papercut-1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(home.join("config/client.toml").exists());
    // Non-default ports, set where a user sets them: app.toml.
    let (grpc, explorer, metrics) = (free_port(), free_port(), free_port());
    let cfg = std::fs::read_to_string(home.join("config/app.toml")).unwrap();
    let cfg = cfg
        .replace("127.0.0.1:9090", &format!("127.0.0.1:{grpc}"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{explorer}"))
        .replace("127.0.0.1:26660", &format!("127.0.0.1:{metrics}"));
    std::fs::write(home.join("config/app.toml"), cfg).unwrap();
    let log = dir.path().join("node.log");
    let n = dev(&home, grpc, &[], &log);
    wait_port(explorer);
    let out = bin()
        .arg("--home")
        .arg(&home)
        .args(["status", "--output", "json"])
        .output()
        .unwrap();
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["chain_id"], "papercut-1");
    let h = v["app_hash"].as_str().expect("app hash as a string");
    assert_eq!(h.len(), 64, "{h}");
    assert!(h.chars().all(|c| c.is_ascii_hexdigit()), "{h}");
    drop(n);
    // Logs written to a file carry no colour codes.
    let mut s = String::new();
    std::fs::File::open(&log)
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert!(!s.contains('\u{1b}'), "{s}");

    // A port given only on the command line: the running node records it.
    let other = free_port();
    let _n = dev(
        &home,
        other,
        &[
            "--grpc-address",
            &format!("127.0.0.1:{other}"),
            "--no-explorer",
            "--no-metrics",
        ],
        &log,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(home.join("data/grpc.url"))
        .unwrap_or_default()
        .contains(&other.to_string())
    {
        assert!(
            Instant::now() < deadline,
            "data/grpc.url does not name the new node"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = bin()
        .arg("--home")
        .arg(&home)
        .args(["status"])
        .output()
        .unwrap();
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(stdout.contains("papercut-1"), "{stdout}");
}
