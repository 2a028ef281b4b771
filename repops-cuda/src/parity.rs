//! The GPU-only part of parity with the CPU reference: the elementary functions on all
//! 2^32 inputs through the exhaustive-check kernel. The rest of the conformance suite
//! (golden vectors, random-shape fuzz) is `repops::conformance`, and training parity is
//! `train::conformance`; the tests and `cuda-parity` instantiate them with this backend.

use crate::CudaBackend;
use rayon::prelude::*;
use repops::math::Func;

fn canonical(v: f32) -> u32 {
    if v.is_nan() {
        repops::tensor::CANONICAL_NAN_BITS
    } else {
        v.to_bits()
    }
}

/// Bit patterns `start .. start + count` (wrapping at 2^32 is not allowed) of `f` on the
/// GPU vs the CPU; returns `(inputs checked, mismatching inputs (first 10), count)`.
pub fn elementary(
    cuda: &CudaBackend,
    f: Func,
    start: u32,
    count: u64,
) -> Result<(u64, Vec<u32>, u64), String> {
    const CHUNK: u64 = 1 << 24;
    let fi = Func::ALL.iter().position(|g| *g == f).unwrap_or(0) as i32;
    let mut out = cuda
        .alloc_zeros(CHUNK as usize)
        .map_err(|e| e.to_string())?;
    let (mut done, mut bad, mut nbad) = (0u64, Vec::new(), 0u64);
    while done < count {
        let n = (count - done).min(CHUNK);
        let s = start.wrapping_add(done as u32);
        cuda.eval_bits(fi, s, n, &mut out)
            .map_err(|e| e.to_string())?;
        let got = cuda
            .download_f32(&out, n as usize)
            .map_err(|e| e.to_string())?;
        // The CPU side in parallel; the list of mismatching inputs stays in input order.
        let wrong: Vec<u32> = got
            .par_iter()
            .enumerate()
            .filter_map(|(i, g)| {
                let x = s.wrapping_add(i as u32);
                (canonical(*g) != canonical(f.eval(f32::from_bits(x)))).then_some(x)
            })
            .collect();
        nbad += wrong.len() as u64;
        bad.extend(wrong.into_iter().take(10usize.saturating_sub(bad.len())));
        done += n;
    }
    Ok((done, bad, nbad))
}
