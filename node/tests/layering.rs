//! The node links nothing of the daemons or of CUDA: consensus must build
//! and run on any machine, and a validator binary must not carry solver code.
#[test]
fn the_node_depends_on_no_daemon_and_no_cuda() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "veritrain-node",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    for banned in [
        "cudarc ",
        "repops-cuda ",
        "solverd ",
        "verifierd ",
        "agent ",
    ] {
        assert!(
            !tree.lines().any(|l| l.starts_with(banned)),
            "veritrain-node depends on {banned}"
        );
    }
    assert!(
        tree.lines().any(|l| l.starts_with("tendermint-abci ")),
        "{tree}"
    );
}
