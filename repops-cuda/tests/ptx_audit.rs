//! Compiles every kernel with NVRTC (no GPU needed) and runs the PTX audit
//! (`repops_cuda::ptx`). With `REPOPS_REQUIRE_NVRTC=1` a missing NVRTC fails the test;
//! without it the test prints why it skipped.

use repops_cuda::{probe, ptx, REQUIRE_NVRTC_ENV};

fn nvrtc_or_skip(test: &str) -> bool {
    if probe::nvrtc_available() {
        return true;
    }
    let required = std::env::var(REQUIRE_NVRTC_ENV).is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{REQUIRE_NVRTC_ENV}=1 but NVRTC (libnvrtc.so.13) cannot be loaded: install the PyPI \
         package nvidia-cuda-nvrtc and put its lib directory on LD_LIBRARY_PATH"
    );
    eprintln!(
        "skipped {test}: NVRTC (libnvrtc.so.13) cannot be loaded; set {REQUIRE_NVRTC_ENV}=1 \
         to make this a failure"
    );
    false
}

#[test]
fn all_kernels_compile_to_ieee_only_ptx() {
    if !nvrtc_or_skip("all_kernels_compile_to_ieee_only_ptx") {
        return;
    }
    for arch in ptx::AUDIT_ARCHES {
        let report = ptx::audit(arch).unwrap_or_else(|e| panic!("{arch}: {e}"));
        assert!(
            report.violations.is_empty(),
            "{arch}: PTX audit failed:\n{}",
            report.violations.join("\n")
        );
        let with_fma = report.entries.values().filter(|e| e.fma > 0).count();
        eprintln!(
            "{arch}: {} kernels, {} instructions, {} with source-written fma, no violations",
            report.entries.len(),
            report
                .entries
                .values()
                .map(|e| e.instructions)
                .sum::<usize>(),
            with_fma
        );
        // The GEMMs and the R4 functions must contain fma (the audit is not vacuous).
        for k in ["rp_gemm_128", "rp_gemm_32", "rp_exp_k", "rp_log_softmax"] {
            assert!(report.entries[k].fma > 0, "{arch} {k}: no fma");
            assert!(report.entries[k].fma_markers > 0, "{arch} {k}: no marker");
        }
        for k in ["rp_add", "rp_transpose", "rp_sum_axis0"] {
            assert_eq!(report.entries[k].fma, 0, "{arch} {k}");
        }
    }
}

#[test]
fn a_kernel_using_cuda_math_library_functions_fails_the_audit() {
    if !nvrtc_or_skip("a_kernel_using_cuda_math_library_functions_fails_the_audit") {
        return;
    }
    // What the audit exists to catch: expf/tanhf (approximate or libdevice code with
    // compiler-chosen fmas) and a plain a*b+c, compiled with the production flags.
    let bad = repops_cuda::kernels::Module {
        file: "bad.cu",
        source: r#"
extern "C" __global__ void bad_fast(float* y, const float* x) { y[0] = __expf(x[0]); }
extern "C" __global__ void bad_tanh(float* y, const float* x) { y[0] = tanhf(x[0]); }
extern "C" __global__ void bad_fma(float* y, const float* x) { y[0] = fmaf(x[0], x[1], x[2]); }
extern "C" __global__ void good(float* y, const float* x) { y[0] = FMA(x[0], x[1], x[2]); }
"#,
        entries: &["bad_fast", "bad_tanh", "bad_fma", "good"],
    };
    let report = ptx::audit_modules(&[bad], "compute_90").unwrap();
    eprintln!("{}", report.violations.join("\n"));
    let blamed = |k: &str| report.violations.iter().any(|v| v.contains(k));
    assert!(blamed("bad_fast"), "{:?}", report.violations);
    assert!(blamed("bad_tanh"), "{:?}", report.violations);
    assert!(blamed("bad_fma"), "{:?}", report.violations);
    assert!(!blamed("good "), "{:?}", report.violations);
}

#[test]
fn the_ptx_the_backend_loads_is_audited_for_its_own_architecture() {
    if !nvrtc_or_skip("the_ptx_the_backend_loads_is_audited_for_its_own_architecture") {
        return;
    }
    // An architecture outside ptx::AUDIT_ARCHES (Ada, sm_89): production_ptx audits it
    // before handing it out, and caches it for the process.
    let ptx = repops_cuda::kernels::production_ptx("compute_89").unwrap();
    assert_eq!(ptx.len(), repops_cuda::kernels::MODULES.len());
    let again = repops_cuda::kernels::production_ptx("compute_89").unwrap();
    assert!(std::sync::Arc::ptr_eq(&ptx, &again));
}
