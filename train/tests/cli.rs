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

/// `--to-graph` prints the program with its model as a graph: it parses, validates,
/// and (being the same model) has the same initial state hash as the builtin.
#[test]
fn to_graph_prints_a_program_that_trains_the_same_model() {
    let out = Command::new(env!("CARGO_BIN_EXE_vt-train"))
        .args(["--program", "tiny-lm", "--to-graph"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let g = train::Program::from_json(&text).unwrap();
    assert!(matches!(g.model, train::program::Model::Graph { .. }));
    let p = train::Program::builtin("tiny-lm").unwrap();
    let h = |p: &train::Program| train::state_hash(&train::trainer::initial_state(p).unwrap());
    assert_eq!(h(&g), h(&p));
}
