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
