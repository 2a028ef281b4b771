//! Wrong flags get a clear error and a non-zero exit, before anything runs.
use std::process::Command;

fn run(args: &[&str]) -> (bool, String) {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_solverd"))
        .arg("--home")
        .arg(home.path())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_flags_are_refused_with_the_reason() {
    for (args, want) in [
        (
            &["--from", "k", "--inject-fault", "explode"][..],
            "unknown fault",
        ),
        (
            &["--from", "k", "--inject-fault", "corrupt:0:3"][..],
            "steps start at 1",
        ),
        (
            &["--from", "k", "--backend", "gpu"][..],
            "unknown backend \"gpu\"",
        ),
        (
            &["--from", "k", "--capacity", "0"][..],
            "--capacity must be at least 1",
        ),
        (&["--from", "k", "--min-reward", "lots"][..], "--min-reward"),
        (
            &["--from", "k", "--checkpoint-every", "0"][..],
            "--checkpoint-every",
        ),
        (&["--from", "k", "--stake", "1.5uvtr"][..], "whole numbers"),
        (&["--from", "nobody"][..], "no key named \"nobody\""),
        (&[][..], "--from"),
    ] {
        let (ok, err) = run(args);
        assert!(!ok, "{args:?} was accepted");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn cuda_without_a_driver_is_a_clear_error_not_a_panic() {
    let (ok, err) = run(&["--from", "nobody", "--backend", "cuda"]);
    assert!(!ok);
    // Without libcuda the backend is refused; on a GPU machine the key is.
    assert!(
        err.contains("libcuda") || err.contains("no key named"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn an_unreachable_node_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.key");
    std::fs::write(&key, "01".repeat(32)).unwrap();
    let (ok, err) = run(&[
        "--from",
        key.to_str().unwrap(),
        "--node",
        "http://127.0.0.1:1",
    ]);
    assert!(!ok);
    assert!(err.contains("cannot connect to the node"), "{err}");
}

#[test]
fn a_checkpoint_interval_of_zero_is_refused_not_silently_every_step() {
    let (ok, err) = run(&["--from", "k", "--checkpoint-every", "0"]);
    assert!(!ok);
    assert!(err.contains("--checkpoint-every"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // A config built in code gets the same check.
    let mut cfg = solverd::Config::new("http://127.0.0.1:1", "k", std::env::temp_dir());
    cfg.checkpoint_every = 0;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let e = rt.block_on(solverd::start(cfg)).err().unwrap();
    assert!(
        e.to_string()
            .contains("--checkpoint-every must be at least 1"),
        "{e}"
    );
}

#[test]
fn an_empty_or_short_key_file_is_called_what_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.key");
    std::fs::write(&empty, "\n").unwrap();
    let (ok, err) = run(&["--from", empty.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("is empty"), "{err}");
    assert!(!err.contains("scalar"), "{err}");
    let short = dir.path().join("short.key");
    std::fs::write(&short, "abcd").unwrap();
    let (ok, err) = run(&["--from", short.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("2 bytes, expected 32"), "{err}");
}
