//! Conformance of the CUDA backend on a real device: golden vectors, random-shape
//! parity, sampled elementary functions, and short training runs, all bitwise against
//! the CPU reference. Without a usable device every test prints why and passes; with
//! `REPOPS_REQUIRE_CUDA=1` a missing device fails them. The long versions (2^32 inputs,
//! 1,000 steps) are `cargo run --release -p repops-cuda --bin cuda-parity -- --all`.

use repops::conformance;
use repops::math::Func;
use repops_cuda::{parity, CudaBackend};
use std::sync::{Arc, OnceLock};

fn device(test: &str) -> Option<Arc<CudaBackend>> {
    static DEV: OnceLock<Result<Arc<CudaBackend>, String>> = OnceLock::new();
    let d = DEV.get_or_init(|| CudaBackend::new(0).map(Arc::new).map_err(|e| e.to_string()));
    match d {
        Ok(b) => Some(b.clone()),
        Err(e) => {
            let required = std::env::var("REPOPS_REQUIRE_CUDA").is_ok_and(|v| v == "1");
            assert!(!required, "REPOPS_REQUIRE_CUDA=1 but no CUDA device: {e}");
            eprintln!("skipped {test}: no CUDA device: {e}");
            None
        }
    }
}

fn report(bad: &[conformance::Mismatch]) -> String {
    bad.iter()
        .take(20)
        .map(|m| format!("{}: {}", m.what, m.detail))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_golden_vector_has_the_same_hash_on_the_gpu() {
    let Some(cuda) = device("every_golden_vector_has_the_same_hash_on_the_gpu") else {
        return;
    };
    let (n, bad) = conformance::golden(&*cuda).unwrap();
    assert!(n >= 58);
    assert!(bad.is_empty(), "{}", report(&bad));
}

#[test]
fn random_shapes_give_the_cpu_bits_for_every_op() {
    let Some(cuda) = device("random_shapes_give_the_cpu_bits_for_every_op") else {
        return;
    };
    let bad = conformance::fuzz(&*cuda, 4 * conformance::FUZZ_KINDS, 1);
    assert!(bad.is_empty(), "{}", report(&bad));
}

#[test]
fn elementary_functions_match_the_cpu_on_a_sample_of_every_exponent() {
    let Some(cuda) = device("elementary_functions_match_the_cpu_on_a_sample_of_every_exponent")
    else {
        return;
    };
    for f in Func::ALL {
        // 2^16 consecutive patterns at 256 starts spread over the whole range.
        for s in 0..256u32 {
            let (_, bad, n) = parity::elementary(&cuda, f, s << 24, 1 << 16).unwrap();
            assert_eq!(n, 0, "{} differs at {bad:08x?}", f.name());
        }
    }
}

#[test]
fn both_model_families_train_to_the_cpu_state_hashes_on_the_gpu() {
    let Some(cuda) = device("both_model_families_train_to_the_cpu_state_hashes_on_the_gpu") else {
        return;
    };
    for program in ["mlp-digits", "tiny-lm"] {
        let r = train::conformance::training(cuda.clone(), program, 10).unwrap();
        assert_eq!(r.first_divergence, None, "{program}");
        assert_eq!(r.cpu_trace_root, r.backend_trace_root, "{program}");
    }
}
