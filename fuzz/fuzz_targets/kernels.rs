//! Differential: every RepOps op on the CPU's fastest kernels (AVX-512 or
//! AVX2 with FMA where the machine has them) against the portable kernels
//! (`f32::mul_add` loops, `REPOPS_MAX_KERNEL=portable`), with random shapes
//! (including empty inner dimensions and shapes that do not fit), fuzzed
//! parameters, and fills that are often NaN (both signs, signalling),
//! infinities, zeros of both signs, subnormals and extremes.
//!
//! Invariants:
//! - both kernels give the same outcome: the same error, or outputs of the
//!   same shape and the same bits (no tolerance anywhere);
//! - every output is canonical: the only NaN is `0x7fc00000` (SPEC.md);
//! - an op is a function: running it again gives the same bits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use repops::matmul::{set_max_kernel, Kernel};
use repops::{MaskFill, Op, Tensor};
use veritrain_fuzz::Reader;

fn tensor(r: &mut Reader<'_>, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let data = (0..n).map(|_| r.f32()).collect();
    Tensor::new(shape.to_vec(), data).expect("shape and data agree")
}

fn indices(r: &mut Reader<'_>, shape: &[usize], limit: usize) -> Tensor {
    let n: usize = shape.iter().product();
    // Mostly valid indices; sometimes anything (out of range, NaN, fractions).
    let data = (0..n)
        .map(|_| {
            if r.u8() < 240 {
                (r.u8() as usize % limit.max(1)) as f32
            } else {
                r.f32()
            }
        })
        .collect();
    Tensor::new(shape.to_vec(), data).expect("shape and data agree")
}

fn case(r: &mut Reader<'_>) -> (Op, Vec<Tensor>) {
    let kind = r.u8() % 44;
    let d = |r: &mut Reader<'_>| r.range(0, 9);
    let d1 = |r: &mut Reader<'_>| r.range(1, 9);
    match kind {
        0..=3 => {
            let (ta, tb) = (kind & 1 == 1, kind & 2 == 2);
            let (m, n, k) = (r.range(1, 40), r.range(1, 40), r.range(0, 40));
            let a = if ta { [k, m] } else { [m, k] };
            // Sometimes an inner dimension that does not match.
            let kb = if r.u8() == 0 { k + 1 } else { k };
            let b = if tb { [n, kb] } else { [kb, n] };
            (Op::MatMul { ta, tb }, vec![tensor(r, &a), tensor(r, &b)])
        }
        4..=7 => {
            let (ta, tb) = (kind & 1 == 1, kind & 2 == 2);
            let (g, m, n, k) = (
                r.range(1, 4),
                r.range(1, 20),
                r.range(1, 20),
                r.range(0, 20),
            );
            let a = if ta { [g, k, m] } else { [g, m, k] };
            let b = if tb { [g, n, k] } else { [g, k, n] };
            (
                Op::BatchedMatMul { ta, tb },
                vec![tensor(r, &a), tensor(r, &b)],
            )
        }
        8 => {
            let (rows, cols) = (d1(r), d1(r));
            (
                Op::AddBias,
                vec![tensor(r, &[rows, cols]), tensor(r, &[cols])],
            )
        }
        9..=21 => {
            let p = r.f32();
            let op = match kind {
                9 => Op::Add,
                10 => Op::Sub,
                11 => Op::Mul,
                12 => Op::ReluBackward,
                13 => Op::GeluBackward,
                14 => Op::TanhBackward,
                15 => Op::SigmoidBackward,
                16 => Op::SgdMomentumBuf { momentum: p },
                17 => Op::SgdUpdate { lr: p },
                18 => Op::AdamM { beta1: p },
                19 => Op::AdamV { beta2: p },
                20 => Op::SgdMomentumBuf { momentum: 0.9 },
                _ => Op::AdamV { beta2: 0.999 },
            };
            let n = r.range(0, 70);
            (op, vec![tensor(r, &[n]), tensor(r, &[n])])
        }
        22..=30 => {
            let s = r.f32();
            let op = repops::conformance::unary_op(kind as usize - 22, s);
            let n = r.range(0, 70);
            (op, vec![tensor(r, &[n])])
        }
        31..=34 => {
            let (rows, cols) = (d1(r), d1(r));
            let op = [
                Op::Softmax,
                Op::LogSoftmax,
                Op::SoftmaxBackward,
                Op::LogSoftmaxBackward,
            ][kind as usize - 31]
                .clone();
            let mut ins = vec![tensor(r, &[rows, cols])];
            if kind >= 33 {
                ins.push(tensor(r, &[rows, cols]));
            }
            (op, ins)
        }
        35 | 36 => {
            let (rows, cols) = (d1(r), d1(r));
            let op = if kind == 35 {
                Op::CrossEntropy
            } else {
                Op::CrossEntropyBackward
            };
            (
                op,
                vec![tensor(r, &[rows, cols]), indices(r, &[rows], cols)],
            )
        }
        37 => {
            let (rows, cols) = (d1(r), d1(r));
            let eps = if r.bool() { 1e-5 } else { r.f32() };
            let x = tensor(r, &[rows, cols]);
            match r.u8() % 3 {
                0 => (
                    Op::LayerNorm { eps },
                    vec![x, tensor(r, &[cols]), tensor(r, &[cols])],
                ),
                1 => (
                    Op::LayerNormBackwardInput { eps },
                    vec![x, tensor(r, &[cols]), tensor(r, &[rows, cols])],
                ),
                _ => (
                    Op::LayerNormBackwardGamma { eps },
                    vec![x, tensor(r, &[rows, cols])],
                ),
            }
        }
        38 => {
            let (v, dd, rows) = (d1(r), d1(r), d(r));
            if r.bool() {
                (
                    Op::Embedding,
                    vec![tensor(r, &[v, dd]), indices(r, &[rows], v)],
                )
            } else {
                (
                    Op::EmbeddingBackward { vocab: v },
                    vec![indices(r, &[rows], v), tensor(r, &[rows, dd])],
                )
            }
        }
        39 => {
            let (b, t) = (r.range(1, 3), d1(r));
            let fill = if r.bool() {
                MaskFill::NegInf
            } else {
                MaskFill::Zero
            };
            (Op::CausalMask { fill }, vec![tensor(r, &[b, t, t])])
        }
        40 => {
            let (rows, cols) = (r.range(1, 40), d1(r));
            let op = [Op::SumAxis0, Op::MeanAxis0, Op::SumLast, Op::MeanLast][r.u8() as usize % 4]
                .clone();
            (op, vec![tensor(r, &[rows, cols])])
        }
        41 => {
            let rank = r.range(1, 4);
            let dims: Vec<usize> = (0..rank).map(|_| r.range(1, 4)).collect();
            let mut perm: Vec<usize> = (0..rank).collect();
            for i in (1..rank).rev() {
                perm.swap(i, r.range(0, i));
            }
            match r.u8() % 3 {
                0 => {
                    let (a, b) = (d1(r), d1(r));
                    (Op::Transpose, vec![tensor(r, &[a, b])])
                }
                1 => {
                    let n: usize = dims.iter().product();
                    let shape = if r.u8() == 0 { vec![n + 1] } else { vec![n] };
                    (Op::Reshape { shape }, vec![tensor(r, &dims)])
                }
                _ => (Op::Permute { perm }, vec![tensor(r, &dims)]),
            }
        }
        _ => {
            let n = r.range(0, 40);
            let (lr, eps, weight_decay) = (r.f32(), r.f32(), r.f32());
            let ins = vec![
                tensor(r, &[n]),
                tensor(r, &[n]),
                tensor(r, &[n]),
                tensor(r, &[]),
                tensor(r, &[]),
            ];
            (
                Op::AdamWUpdate {
                    lr,
                    eps,
                    weight_decay,
                },
                ins,
            )
        }
    }
}

fn outcome(op: &Op, ins: &[&Tensor], k: Option<Kernel>) -> Result<(Vec<usize>, Vec<u32>), String> {
    set_max_kernel(k);
    let r = op.execute(ins);
    set_max_kernel(None);
    r.map(|t| {
        (
            t.shape().to_vec(),
            t.data().iter().map(|v| v.to_bits()).collect(),
        )
    })
    .map_err(|e| e.to_string())
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let (op, ins) = case(&mut r);
    let refs: Vec<&Tensor> = ins.iter().collect();
    let fast = outcome(&op, &refs, None);
    let shapes: Vec<&[usize]> = ins.iter().map(|t| t.shape()).collect();
    for k in [Kernel::Avx2, Kernel::Portable] {
        let other = outcome(&op, &refs, Some(k));
        assert_eq!(
            fast, other,
            "{op:?} on {shapes:?}: the fastest kernel and {k:?} disagree"
        );
    }
    if let Ok((_, bits)) = &fast {
        assert!(
            bits.iter()
                .all(|&b| !f32::from_bits(b).is_nan() || b == 0x7fc0_0000),
            "{op:?}: non-canonical NaN"
        );
        assert_eq!(outcome(&op, &refs, None), fast, "{op:?} is not a function");
    }
});
