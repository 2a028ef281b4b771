//! Property tests: the fast paths have the bits of the literal contract definitions.

use proptest::prelude::*;
use repops::matmul::{self, gemm, gemm_reference, Kernel, MatView};
use repops::Philox;

fn data(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let p = Philox::new(seed, 7);
    (0..n as u64)
        .map(|i| (p.uniform_at(i) - 0.5) * scale)
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn gemm_equals_the_naive_r2_fold_for_any_shape_layout_and_kernel(
        m in 1usize..40, n in 1usize..70, k in 0usize..600,
        ta: bool, tb: bool, seed: u64, kernel in 0usize..3, par: bool,
    ) {
        let a = data(m * k, seed, 4.0);
        let b = data(k * n, seed ^ 1, 4.0);
        let av = MatView::row_major(&a, if ta { m } else { k }, ta);
        let bv = MatView::row_major(&b, if tb { k } else { n }, tb);
        let mut want = vec![0.0; m * n];
        gemm_reference(m, n, k, av, bv, &mut want);
        matmul::set_max_kernel(Some([Kernel::Portable, Kernel::Avx2, Kernel::Avx512][kernel]));
        let mut got = vec![f32::NAN; m * n];
        gemm(m, n, k, av, bv, &mut got, par);
        matmul::set_max_kernel(None);
        prop_assert_eq!(bits(&got), bits(&want));
    }

    #[test]
    fn r3_sum_equals_the_literal_32_lane_definition(n in 0usize..2000, seed: u64, scale in 1e-3f32..1e6) {
        let x = data(n, seed, scale);
        let mut lane = [0.0f32; 32];
        for (i, v) in x.iter().enumerate() {
            lane[i % 32] += v;
        }
        for s in [16, 8, 4, 2, 1] {
            for l in 0..s {
                lane[l] += lane[l + s];
            }
        }
        prop_assert_eq!(repops::reduce::sum(&x).to_bits(), lane[0].to_bits());
    }
}
