//! R3 reductions: the canonical 32-lane order.
//!
//! `lane[i % 32] = op(lane[i % 32], x[i])` for `i` ascending, then the tree
//! `s = 16, 8, 4, 2, 1: lane[l] = op(lane[l], lane[l + s])`, result `lane[0]`.
//! The lane loop is written over whole 32-element chunks so that the compiler keeps
//! the lanes in vector registers; each lane is still an ascending sequential fold,
//! so the bits are those of the definition on every ISA.

use crate::math;

/// Number of lanes of the canonical reduction.
pub const LANES: usize = 32;

#[inline(always)]
fn tree(mut lane: [f32; LANES], op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut s = LANES / 2;
    while s > 0 {
        for l in 0..s {
            lane[l] = op(lane[l], lane[l + s]);
        }
        s /= 2;
    }
    lane[0]
}

/// R3 sum of `x` (identity `+0.0`).
pub fn sum(x: &[f32]) -> f32 {
    let mut lane = [0.0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for ch in &mut chunks {
        for l in 0..LANES {
            lane[l] += ch[l];
        }
    }
    for (l, v) in chunks.remainder().iter().enumerate() {
        lane[l] += *v;
    }
    tree(lane, |a, b| a + b)
}

/// R3 sum of `f(x[i])` without materialising the mapped vector.
#[inline(always)]
pub fn sum_map(n: usize, f: impl Fn(usize) -> f32) -> f32 {
    let mut lane = [0.0f32; LANES];
    for i in 0..n {
        lane[i % LANES] += f(i);
    }
    tree(lane, |a, b| a + b)
}

/// R3 max of `x` (identity `-inf`, R1 `max`).
pub fn max(x: &[f32]) -> f32 {
    let mut lane = [f32::NEG_INFINITY; LANES];
    for (i, v) in x.iter().enumerate() {
        lane[i % LANES] = math::max(lane[i % LANES], *v);
    }
    tree(lane, math::max)
}

/// `mean = sum / n` (one IEEE division by `n` as f32).
pub fn mean(x: &[f32]) -> f32 {
    sum(x) / (x.len() as f32)
}

/// Column sums of a row-major `[rows, cols]` matrix: for every column `j` the R3 sum of
/// `x[0, j], x[1, j], ..., x[rows-1, j]` (rows ascending). Row `i` goes to lane `i % 32`.
pub fn sum_axis0(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    sum_axis0_map(rows, cols, |i, j| x[i * cols + j])
}

/// Column sums of `f(i, j)` over rows in R3 order (see [`sum_axis0`]).
pub fn sum_axis0_map(rows: usize, cols: usize, f: impl Fn(usize, usize) -> f32) -> Vec<f32> {
    let mut lanes = vec![0.0f32; LANES * cols];
    for i in 0..rows {
        let l = i % LANES;
        let lane = &mut lanes[l * cols..(l + 1) * cols];
        for (j, v) in lane.iter_mut().enumerate() {
            *v += f(i, j);
        }
    }
    combine_lanes(lanes, cols)
}

/// R3 steps 3 and 4 for `cols` columns at once: `lanes` holds the 32 lanes
/// lane-major (`lanes[l * cols + j]`); lane `l` gets lane `l + s` added for `s` in
/// 16, 8, 4, 2, 1; the result is lane 0 (also what a referee finishes a column
/// reduction's folded lanes with, `tile::finish`).
pub fn combine_lanes(mut lanes: Vec<f32>, cols: usize) -> Vec<f32> {
    let mut s = LANES / 2;
    while s > 0 {
        for l in 0..s {
            let (lo, hi) = lanes.split_at_mut((l + s) * cols);
            let dst = &mut lo[l * cols..(l + 1) * cols];
            let src = &hi[..cols];
            for j in 0..cols {
                dst[j] += src[j];
            }
        }
        s /= 2;
    }
    lanes.truncate(cols);
    lanes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference_sum(x: &[f32]) -> f32 {
        let mut lane = [0.0f32; 32];
        for (i, v) in x.iter().enumerate() {
            lane[i % 32] += v;
        }
        for s in [16, 8, 4, 2, 1] {
            for l in 0..s {
                lane[l] += lane[l + s];
            }
        }
        lane[0]
    }

    #[test]
    fn chunked_sum_has_the_bits_of_the_literal_r3_definition() {
        let p = crate::philox::Philox::new(1, 2);
        for n in [0usize, 1, 5, 31, 32, 33, 100, 1000, 4097] {
            let x: Vec<f32> = (0..n as u64)
                .map(|i| (p.uniform_at(i) - 0.5) * 1000.0)
                .collect();
            assert_eq!(sum(&x).to_bits(), reference_sum(&x).to_bits(), "n={n}");
            let cols = 3;
            let rows = n / cols;
            let cs = sum_axis0(&x[..rows * cols], rows, cols);
            for j in 0..cols {
                let col: Vec<f32> = (0..rows).map(|i| x[i * cols + j]).collect();
                assert_eq!(cs[j].to_bits(), reference_sum(&col).to_bits());
            }
        }
    }

    #[test]
    fn max_of_an_empty_slice_is_minus_infinity() {
        assert_eq!(max(&[]), f32::NEG_INFINITY);
        assert_eq!(max(&[-0.0, 0.0]).to_bits(), 0);
    }
}
