//! Wrong flags get a clear error and a non-zero exit, before anything runs.
use std::process::Command;

#[test]
fn bad_flags_are_refused_with_the_reason() {
    for (args, want) in [
        (
            &["--from", "k", "--sample-rate", "0"][..],
            "--sample-rate must be in (0, 1]",
        ),
        (
            &["--from", "k", "--sample-rate", "1.5"][..],
            "--sample-rate must be in (0, 1]",
        ),
        (&["--from", "k", "--bond", "much"][..], "--bond"),
        (
            &["--from", "k", "--inject-fault", "skip:x"][..],
            "not a number",
        ),
        (&["--from", "nobody"][..], "no key named \"nobody\""),
    ] {
        let home = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_verifierd"))
            .arg("--home")
            .arg(home.path())
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
