//! The GPU check script's CPU-side checks (`gpu/check.py`): its parsers hold on recorded
//! output, and on a machine without a GPU it runs the kit's binaries, records every
//! step's clean failure and writes its JSON document, without a crash. Needs python3 (a
//! skip without it).

use std::path::Path;
use std::process::Command;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/gpu/check.py");

fn python() -> Option<&'static str> {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: no python3");
    }
    ok.then_some("python3")
}

#[test]
fn the_check_scripts_parsers_read_recorded_output() {
    let Some(py) = python() else { return };
    let out = Command::new(py)
        .args([SCRIPT, "--self-test"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn without_a_gpu_the_check_script_records_clean_failures() {
    let Some(py) = python() else { return };
    if repops_cuda::CudaBackend::new(0).is_ok() {
        eprintln!("skipped: a GPU is present (run the kit itself: gpu/prepare.sh)");
        return;
    }
    // A kit of this build's binaries (the release kit holds the same programs).
    let kit = tempfile::tempdir().unwrap();
    for bin in [
        env!("CARGO_BIN_EXE_cuda-parity"),
        env!("CARGO_BIN_EXE_cuda-bench"),
    ] {
        let name = Path::new(bin).file_name().unwrap();
        std::os::unix::fs::symlink(bin, kit.path().join(name)).unwrap();
    }
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/bench/torch_step.py"),
        kit.path().join("torch_step.py"),
    )
    .unwrap();
    let json = kit.path().join("out.json");
    let out = Command::new(py)
        .arg(SCRIPT)
        .args(["--quick", "--budget-s", "120", "--kit"])
        .arg(kit.path())
        .args(["--skip", "device conformance tests", "--out"])
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "parity cannot pass without a GPU"
    );
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(doc["parity_passed"], false);
    let steps = doc["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    for want in [
        "golden + hashes + fuzz",
        "train mlp-digits",
        "train tiny-lm",
        "cuda-bench",
        "exhaustive elementary functions",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for s in steps {
        let name = s["name"].as_str().unwrap();
        let tail = s["output_tail"].as_str().unwrap_or("");
        assert!(!tail.contains("panicked"), "{name}: {tail}");
        if name.starts_with("./") || s["cmd"].as_str().unwrap_or("").starts_with("./") {
            // The binaries say why, in the backend's words, and exit non-zero.
            assert_eq!(s["rc"], 1, "{name}: {tail}");
            assert!(tail.contains("opening the CUDA backend"), "{name}: {tail}");
        }
    }
}
