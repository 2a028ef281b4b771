//! `vt-train`'s flags: a wrong value is a clear error and exit code 2, never a panic.
use std::process::Command;

#[test]
fn a_checkpoint_interval_of_zero_is_refused_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vt-train"))
        .args([
            "--program",
            "mlp-digits",
            "--steps",
            "2",
            "--checkpoint-every",
            "0",
        ])
        .arg("--checkpoint-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--checkpoint-every"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
