//! Conformance: every op against the committed golden vectors, on every CPU code path.

use repops::conformance::golden_file;
use repops::golden::{all_op_names, case_specs, run_case, GoldenFile};
use repops::matmul::{self, Kernel};
use repops::CpuBackend;

fn golden() -> GoldenFile {
    golden_file().expect("golden/ops.json parses")
}

#[test]
fn every_op_matches_its_golden_output_hash_with_every_kernel_and_any_thread_count() {
    let g = golden();
    assert_eq!(g.format, "repops-golden/v1");
    let mut failures = Vec::new();
    for kernel in [Kernel::Portable, Kernel::Avx2, Kernel::Avx512] {
        matmul::set_max_kernel(Some(kernel));
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for c in &g.cases {
                let (ih, shape, oh) = pool.install(|| run_case(&CpuBackend, c)).unwrap();
                if ih != c.input_hashes {
                    failures.push(format!("{}: input generation drifted", c.name));
                }
                if shape != c.output_shape || oh != c.output_hash {
                    failures.push(format!(
                        "{} (kernel={kernel:?}, threads={threads}): got {oh}, want {}",
                        c.name, c.output_hash
                    ));
                }
            }
        }
    }
    matmul::set_max_kernel(None);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_golden_file_covers_every_op_and_every_listed_case() {
    let g = golden();
    for name in all_op_names() {
        assert!(
            g.cases.iter().any(|c| c.op.name() == name),
            "no golden case for {name}"
        );
    }
    let listed: Vec<String> = case_specs().into_iter().map(|(n, _, _)| n).collect();
    let have: Vec<String> = g.cases.iter().map(|c| c.name.clone()).collect();
    assert_eq!(listed, have, "golden file is out of date with case_specs()");
}
