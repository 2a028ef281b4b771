//! The conformance suite (`repops::conformance`) instantiated for the CPU reference:
//! every GEMM kernel at 1, 2 and 3 threads gives the bits of the portable kernel on one
//! thread, for random shapes of every op with NaN, infinity and subnormal fills. (The
//! golden vectors over the same configurations are `tests/golden.rs`.)

use repops::conformance::{compare, fuzz_outcomes, FUZZ_KINDS};
use repops::matmul::{self, Kernel};
use repops::CpuBackend;

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

#[test]
fn random_shapes_give_the_same_bits_with_every_kernel_and_any_thread_count() {
    let cases = 2 * FUZZ_KINDS;
    matmul::set_max_kernel(Some(Kernel::Portable));
    let want = pool(1).install(|| fuzz_outcomes(&CpuBackend, cases, 3));
    let mut failures = Vec::new();
    for kernel in [Kernel::Portable, Kernel::Avx2, Kernel::Avx512] {
        matmul::set_max_kernel(Some(kernel));
        for threads in [1, 2, 3] {
            let bad = pool(threads).install(|| compare(&want, &CpuBackend, cases, 3));
            failures.extend(
                bad.into_iter()
                    .map(|m| format!("{kernel:?} x{threads}: {}: {}", m.what, m.detail)),
            );
        }
    }
    matmul::set_max_kernel(None);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
