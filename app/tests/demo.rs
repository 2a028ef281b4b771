//! `veritraind demo --output json` end to end: the honest job is finalised
//! with held-out accuracy >= 0.95 and the cheat is localised to the injected
//! (step, node) with the solver slashed.
use std::process::Command;

#[test]
fn demo_reports_a_verified_job_and_a_localised_slashed_cheat() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_veritraind"))
        .args(["demo", "--output", "json", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let r: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let honest = &r["honest_job"];
    assert_eq!(honest["status"], "TASK_STATUS_FINALIZED", "{r:#}");
    assert!(honest["test_accuracy"].as_f64().unwrap() >= 0.95, "{r:#}");
    // The reference result of 300 steps of mlp-digits (repops/BENCHMARKS.md).
    assert_eq!(
        honest["model_hash"],
        "038b8cca3cb28546e2473b7eda689b5c169896438d74499913ff678139ab59f8"
    );
    // The job states its level and what it guarantees; honesty cost nothing.
    assert_eq!(honest["verification_level"], "full", "{r:#}");
    assert!(
        honest["guarantee"]
            .as_str()
            .unwrap()
            .contains("full re-execution"),
        "{r:#}"
    );
    assert_eq!(r["honest_parties_slashed"], serde_json::json!([]), "{r:#}");
    assert_eq!(honest["draw"], "revealed seed", "{r:#}");
    let cheat = &r["cheating_job"];
    assert_eq!(cheat["status"], "TASK_STATUS_FAILED", "{r:#}");
    assert_eq!(cheat["localised_to_injected_fault"], true, "{r:#}");
    let d = &cheat["dispute"];
    assert_eq!(d["step"], cheat["injected"]["step"]);
    assert_eq!(d["node"], cheat["injected"]["node"]);
    assert!(d["slashed"].as_str().unwrap().parse::<u128>().unwrap() > 0);
    assert!(d["moves"].as_u64().unwrap() >= 3);
    assert!(!d["op_kind"].as_str().unwrap().is_empty());
}
