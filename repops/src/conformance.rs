//! The conformance suite, written once next to the op definitions and run on every
//! backend: the committed golden vectors ([`golden`], `golden/ops.json` embedded here, so
//! no backend reads this crate's files) and a random-shape fuzz with raw bit patterns
//! (NaN, infinities, subnormals, -0) over every op ([`fuzz`]). Every comparison is
//! bitwise (R6 hashes), never a tolerance.
//!
//! A backend's tests instantiate it: `repops/tests/conformance.rs` (every CPU kernel at
//! 1-3 threads), repops-cuda's emulator unit tests and `tests/gpu.rs` (the GPU when there
//! is one); training parity over whole runs is `train::conformance`.

use crate::backend::{Backend, CpuBackend};
use crate::golden::{hex, run_case, GoldenFile};
use crate::ops::{MaskFill, Op};
use crate::philox::Philox;
use crate::tensor::Tensor;

/// The committed golden vectors (`repops/golden/ops.json`).
pub const GOLDEN_OPS: &str = include_str!("../golden/ops.json");

/// The committed elementary-function samples (`repops/golden/math_sampled.json`).
pub const MATH_SAMPLED: &str = include_str!("../golden/math_sampled.json");

/// [`GOLDEN_OPS`] parsed.
pub fn golden_file() -> Result<GoldenFile, String> {
    serde_json::from_str(GOLDEN_OPS).map_err(|e| format!("golden/ops.json: {e}"))
}

/// Outcome of one comparison.
#[derive(Clone, Debug)]
pub struct Mismatch {
    /// What was compared (case name, fuzz case, function and input).
    pub what: String,
    /// Expected vs got.
    pub detail: String,
}

/// Run every golden case on `backend`; returns `(cases run, mismatches)`.
pub fn golden(backend: &dyn Backend) -> Result<(usize, Vec<Mismatch>), String> {
    let file = golden_file()?;
    let mut bad = Vec::new();
    for c in &file.cases {
        match run_case(backend, c) {
            Ok((ih, shape, oh)) => {
                if ih != c.input_hashes || shape != c.output_shape || oh != c.output_hash {
                    bad.push(Mismatch {
                        what: c.name.clone(),
                        detail: format!("output hash {oh}, golden {}", c.output_hash),
                    });
                }
            }
            Err(e) => bad.push(Mismatch {
                what: c.name.clone(),
                detail: format!("error: {e}"),
            }),
        }
    }
    Ok((file.cases.len(), bad))
}

/// A counter-based source of random shapes and values (R5 Philox, no other randomness).
struct Rng {
    p: Philox,
    i: u64,
}

impl Rng {
    fn new(seed: u64) -> Self {
        Rng {
            p: Philox::new(seed, 0x6675_7a7a),
            i: 0,
        }
    }
    fn next(&mut self) -> u32 {
        self.i += 1;
        self.p.u32_at(self.i)
    }
    /// Uniform in `lo..=hi`.
    fn int(&mut self, lo: usize, hi: usize) -> usize {
        lo + ((self.next() as u64 * (hi - lo + 1) as u64) >> 32) as usize
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        self.i += 1;
        lo + self.p.uniform_at(self.i) * (hi - lo)
    }
    fn tensor(&mut self, shape: &[usize], lo: f32, hi: f32) -> Tensor {
        let n: usize = shape.iter().product();
        let d = (0..n).map(|_| self.uniform(lo, hi)).collect();
        Tensor::new(shape.to_vec(), d).unwrap_or_else(|_| Tensor::zeros(shape))
    }
    /// Raw bit patterns (NaN, inf, subnormals, -0 included).
    fn bits(&mut self, shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        let d = (0..n).map(|_| f32::from_bits(self.next())).collect();
        Tensor::new(shape.to_vec(), d).unwrap_or_else(|_| Tensor::zeros(shape))
    }
    /// Half the time raw bits, half the time values in `lo..hi`.
    fn values(&mut self, shape: &[usize], lo: f32, hi: f32) -> Tensor {
        if self.coin() {
            self.bits(shape)
        } else {
            self.tensor(shape, lo, hi)
        }
    }
    fn indices(&mut self, shape: &[usize], limit: usize) -> Tensor {
        let n: usize = shape.iter().product();
        let d = (0..n).map(|_| self.int(0, limit - 1) as f32).collect();
        Tensor::new(shape.to_vec(), d).unwrap_or_else(|_| Tensor::zeros(shape))
    }
}

/// One-input elementwise op `i` (mod 9): `Scale` and `AddScalar` (with `s`), `Relu`,
/// `Gelu`, `Tanh`, `Sigmoid`, `Exp`, `Log`, `Rsqrt`. Fuzz kinds 22..=30 here and in the
/// kernels fuzz target.
pub fn unary_op(i: usize, s: f32) -> Op {
    match i % 9 {
        0 => Op::Scale { s },
        1 => Op::AddScalar { s },
        2 => Op::Relu,
        3 => Op::Gelu,
        4 => Op::Tanh,
        5 => Op::Sigmoid,
        6 => Op::Exp,
        7 => Op::Log,
        _ => Op::Rsqrt,
    }
}

/// Number of op kinds [`fuzz_case`] draws from.
pub const FUZZ_KINDS: usize = 49;

/// Fuzz case `kind` (`0..FUZZ_KINDS`, every op of `repops::Op`) with random shapes and
/// inputs drawn from `seed`.
pub fn fuzz_case(kind: usize, seed: u64) -> (Op, Vec<Tensor>) {
    let mut r = Rng::new(seed);
    let rows = r.int(1, 300);
    let cols = r.int(1, 700);
    let n = r.int(1, 20_000);
    let s = r.uniform(-4.0, 4.0);
    let rc = [rows, cols];
    match kind {
        0..=3 => {
            let (ta, tb) = (kind & 1 == 1, kind & 2 == 2);
            let (m, nn, k) = (r.int(1, 300), r.int(1, 300), r.int(0, 700));
            let a = if ta { [k, m] } else { [m, k] };
            let b = if tb { [nn, k] } else { [k, nn] };
            let ins = vec![r.tensor(&a, -2.0, 2.0), r.tensor(&b, -2.0, 2.0)];
            (Op::MatMul { ta, tb }, ins)
        }
        4..=7 => {
            let (ta, tb) = (kind & 1 == 1, kind & 2 == 2);
            let (g, m, nn, k) = (r.int(1, 12), r.int(1, 70), r.int(1, 70), r.int(1, 90));
            let a = if ta { [g, k, m] } else { [g, m, k] };
            let b = if tb { [g, nn, k] } else { [g, k, nn] };
            let ins = vec![r.tensor(&a, -2.0, 2.0), r.tensor(&b, -2.0, 2.0)];
            (Op::BatchedMatMul { ta, tb }, ins)
        }
        8 => (
            Op::AddBias,
            vec![r.values(&rc, -3.0, 3.0), r.values(&[cols], -3.0, 3.0)],
        ),
        9..=21 => {
            let op = [
                Op::Add,
                Op::Sub,
                Op::Mul,
                Op::ReluBackward,
                Op::GeluBackward,
                Op::TanhBackward,
                Op::SigmoidBackward,
                Op::SgdMomentumBuf { momentum: 0.9 },
                Op::SgdUpdate { lr: 0.01 },
                Op::AdamM { beta1: 0.9 },
                Op::AdamV { beta2: 0.999 },
                Op::AdamM { beta1: 0.5 },
                Op::SgdUpdate { lr: s },
            ][kind - 9]
                .clone();
            (
                op,
                vec![r.values(&[n], -5.0, 5.0), r.values(&[n], -5.0, 5.0)],
            )
        }
        22..=30 => {
            let op = unary_op(kind - 22, s);
            (op, vec![r.values(&[n], -30.0, 30.0)])
        }
        31 | 32 => {
            let op = if kind == 31 {
                Op::Softmax
            } else {
                Op::LogSoftmax
            };
            (op, vec![r.values(&rc, -20.0, 20.0)])
        }
        33 | 34 => {
            let op = if kind == 33 {
                Op::SoftmaxBackward
            } else {
                Op::LogSoftmaxBackward
            };
            (op, vec![r.tensor(&rc, 0.0, 1.0), r.values(&rc, -2.0, 2.0)])
        }
        35 | 36 => {
            let op = if kind == 35 {
                Op::CrossEntropy
            } else {
                Op::CrossEntropyBackward
            };
            let logits = r.tensor(&rc, -10.0, 10.0);
            (op, vec![logits, r.indices(&[rows], cols)])
        }
        37 => {
            let eps = 1e-5;
            let (x, g, b) = (
                r.tensor(&rc, -3.0, 3.0),
                r.tensor(&[cols], -2.0, 2.0),
                r.tensor(&[cols], -2.0, 2.0),
            );
            match r.int(0, 2) {
                0 => (Op::LayerNorm { eps }, vec![x, g, b]),
                1 => (
                    Op::LayerNormBackwardInput { eps },
                    vec![x, g, r.tensor(&rc, -1.0, 1.0)],
                ),
                _ => (
                    Op::LayerNormBackwardGamma { eps },
                    vec![x, r.tensor(&rc, -1.0, 1.0)],
                ),
            }
        }
        38 => {
            let (v, d) = (r.int(1, 200), r.int(1, 100));
            if r.coin() {
                let table = r.values(&[v, d], -1.0, 1.0);
                (Op::Embedding, vec![table, r.indices(&[rows], v)])
            } else {
                let ids = r.indices(&[rows], v);
                (
                    Op::EmbeddingBackward { vocab: v },
                    vec![ids, r.values(&[rows, d], -1.0, 1.0)],
                )
            }
        }
        39 => {
            let (b, t) = (r.int(1, 8), r.int(1, 70));
            let fill = if r.coin() {
                MaskFill::NegInf
            } else {
                MaskFill::Zero
            };
            (
                Op::CausalMask { fill },
                vec![r.values(&[b, t, t], -1.0, 1.0)],
            )
        }
        40 => {
            let rows = r.int(1, 2000);
            let op = [Op::SumAxis0, Op::MeanAxis0, Op::SumLast, Op::MeanLast][r.int(0, 3)].clone();
            (op, vec![r.values(&[rows, cols], -100.0, 100.0)])
        }
        41 => {
            let rank = r.int(1, 5);
            let dims: Vec<usize> = (0..rank).map(|_| r.int(1, 9)).collect();
            let mut perm: Vec<usize> = (0..rank).collect();
            for i in (1..rank).rev() {
                perm.swap(i, r.int(0, i));
            }
            match r.int(0, 2) {
                0 => (Op::Transpose, vec![r.bits(&rc)]),
                1 => {
                    let shape = vec![dims.iter().product::<usize>()];
                    (Op::Reshape { shape }, vec![r.bits(&dims)])
                }
                _ => (Op::Permute { perm }, vec![r.bits(&dims)]),
            }
        }
        43 => {
            // A window that fits: side k, padding below k, image at least k - 2 pad.
            let (kh, kw) = (r.int(1, 5), r.int(1, 5));
            let pad = r.int(0, kh.min(kw) - 1);
            let stride = r.int(1, 3);
            let (c, n) = (r.int(1, 4), r.int(1, 3));
            let (h, w) = (
                r.int(kh.saturating_sub(2 * pad).max(1), 12),
                r.int(kw.saturating_sub(2 * pad).max(1), 12),
            );
            if r.int(0, 1) == 0 {
                let op = Op::Im2Col {
                    kh,
                    kw,
                    stride,
                    pad,
                };
                (op, vec![r.bits(&[n, c, h, w])])
            } else {
                let out = |d, k| crate::ops::window_out(d, k, stride, pad).unwrap_or(1);
                let rows = n * out(h, kh) * out(w, kw);
                let op = Op::Col2Im {
                    channels: c,
                    height: h,
                    width: w,
                    kh,
                    kw,
                    stride,
                    pad,
                };
                (op, vec![r.values(&[rows, c * kh * kw], -10.0, 10.0)])
            }
        }
        45 => {
            let n = r.int(1, 20_000);
            let scalar = Tensor::scalar(r.uniform(-2.0, 2.0));
            match r.int(0, 2) {
                0 => (Op::MulScalar, vec![r.bits(&[n]), scalar]),
                1 => (
                    Op::SgdUpdateLr,
                    vec![r.tensor(&[n], -1.0, 1.0), r.tensor(&[n], -1.0, 1.0), scalar],
                ),
                _ => {
                    let op = Op::AdamWUpdateLr {
                        eps: 1e-8,
                        weight_decay: 1e-4,
                    };
                    let ins = vec![
                        r.tensor(&[n], -1.0, 1.0),
                        r.tensor(&[n], -0.1, 0.1),
                        r.tensor(&[n], 0.0, 0.01),
                        Tensor::scalar(r.uniform(0.0, 0.9)),
                        Tensor::scalar(r.uniform(0.0, 0.999)),
                        Tensor::scalar(r.uniform(0.0, 0.01)),
                    ];
                    (op, ins)
                }
            }
        }
        46 => {
            let (rows, d) = (r.int(1, 300), r.int(1, 700));
            let eps = 1e-6;
            match r.int(0, 4) {
                0 => (Op::Silu, vec![r.bits(&[rows, d])]),
                1 => (
                    Op::SiluBackward,
                    vec![r.bits(&[rows, d]), r.tensor(&[rows, d], -1.0, 1.0)],
                ),
                2 => (
                    Op::RmsNorm { eps },
                    vec![r.values(&[rows, d], -4.0, 4.0), r.tensor(&[d], 0.5, 1.5)],
                ),
                3 => (
                    Op::RmsNormBackwardInput { eps },
                    vec![
                        r.values(&[rows, d], -4.0, 4.0),
                        r.tensor(&[d], 0.5, 1.5),
                        r.tensor(&[rows, d], -1.0, 1.0),
                    ],
                ),
                _ => (
                    Op::RmsNormBackwardGamma { eps },
                    vec![
                        r.values(&[rows, d], -4.0, 4.0),
                        r.tensor(&[rows, d], -1.0, 1.0),
                    ],
                ),
            }
        }
        48 => {
            let n = r.int(1, 20_000);
            let p = [0.0, 0.1, 0.5, 0.9][r.int(0, 3)];
            let key = r.int(0, 1 << 30) as u64;
            (Op::Dropout { p, key }, vec![r.bits(&[n]), r.bits(&[])])
        }
        47 => {
            // RoPE over [blocks, t, d]: positions up to 4096 (angles up to ~4096 rad).
            let (b, t, h) = (r.int(1, 4), r.int(1, 4096 / 4), r.int(1, 48));
            let base = [10_000.0, 500_000.0, 2.0][r.int(0, 2)];
            let op = Op::Rope {
                base,
                inverse: r.int(0, 1) == 1,
            };
            let rows = t * r.int(1, 4);
            (op, vec![r.bits(&[b, rows, 2 * h])])
        }
        44 => {
            let (rows, k) = (r.int(1, 500), r.int(1, 70));
            if r.int(0, 1) == 0 {
                (Op::MaxLast, vec![r.bits(&[rows, k])])
            } else {
                let x = r.bits(&[rows, k]);
                (Op::MaxLastBackward, vec![x, r.tensor(&[rows], -1.0, 1.0)])
            }
        }
        _ => {
            let p = r.tensor(&[n], -1.0, 1.0);
            let m = r.tensor(&[n], -0.1, 0.1);
            let v = r.tensor(&[n], 0.0, 0.01);
            let b1 = Tensor::scalar(r.uniform(0.0, 0.9));
            let b2 = Tensor::scalar(r.uniform(0.0, 0.999));
            let op = Op::AdamWUpdate {
                lr: 0.005,
                eps: 1e-8,
                weight_decay: 1e-4,
            };
            (op, vec![p, m, v, b1, b2])
        }
    }
}

fn outcome(r: crate::Result<Tensor>) -> String {
    match r {
        Ok(t) => format!("{:?} {}", t.shape(), hex(&t.hash())),
        Err(e) => format!("error: {e}"),
    }
}

/// Seed of fuzz case `i` of a run seeded `seed`.
fn case_seed(seed: u64, i: usize) -> u64 {
    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(i as u64)
}

/// `cases` random-shape cases (cycling through every op kind) on `backend` vs the CPU
/// reference run in the same context.
pub fn fuzz(backend: &dyn Backend, cases: usize, seed: u64) -> Vec<Mismatch> {
    compare(
        &fuzz_outcomes(&CpuBackend, cases, seed),
        backend,
        cases,
        seed,
    )
}

/// The outcome (output shape and R6 hash, or the error) of each of `cases` fuzz cases on
/// `backend`, labelled by case: what another configuration is compared with.
pub fn fuzz_outcomes(backend: &dyn Backend, cases: usize, seed: u64) -> Vec<(String, String)> {
    (0..cases)
        .map(|i| {
            let s = case_seed(seed, i);
            let (op, ins) = fuzz_case(i % FUZZ_KINDS, s);
            let refs: Vec<&Tensor> = ins.iter().collect();
            let shapes: Vec<&[usize]> = ins.iter().map(|t| t.shape()).collect();
            let what = format!("fuzz #{i} {} {shapes:?} (seed {s})", op.name());
            (what, outcome(backend.execute_host(&op, &refs)))
        })
        .collect()
}

/// The fuzz cases on `backend` against `want` (from [`fuzz_outcomes`] with the same
/// `cases` and `seed`, on the reference configuration).
pub fn compare(
    want: &[(String, String)],
    backend: &dyn Backend,
    cases: usize,
    seed: u64,
) -> Vec<Mismatch> {
    fuzz_outcomes(backend, cases, seed)
        .into_iter()
        .zip(want)
        .filter(|((_, got), (_, w))| got != w)
        .map(|((what, got), (_, w))| Mismatch {
            what,
            detail: format!("reference {w}, {} {got}", backend.name()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_harness_passes_the_cpu_reference_against_itself() {
        let (n, bad) = golden(&CpuBackend).unwrap();
        assert!(n >= 58 && bad.is_empty(), "{bad:?}");
    }

    #[test]
    fn every_fuzz_kind_builds_inputs_the_cpu_accepts() {
        for kind in 0..FUZZ_KINDS {
            for seed in 0..2 {
                let (op, ins) = fuzz_case(kind, seed);
                let refs: Vec<&Tensor> = ins.iter().collect();
                if let Err(e) = CpuBackend.execute_host(&op, &refs) {
                    panic!("kind {kind} seed {seed} {}: {e}", op.name());
                }
            }
        }
    }
}

/// The CPU reference posing as a device that hashes its own tensors
/// ([`Backend::digests_on_device`]), for testing the callers that keep a state on a
/// device: counts the elements that "come down", and can be told to fail every download
/// (a device gone).
#[derive(Debug, Default)]
pub struct HashingDevice {
    /// Elements downloaded so far.
    pub downloaded: std::sync::atomic::AtomicU64,
    /// While set, every download fails.
    pub broken: std::sync::atomic::AtomicBool,
}

impl Backend for HashingDevice {
    fn name(&self) -> &str {
        "hashing-device"
    }
    fn upload(&self, t: &Tensor) -> crate::Result<crate::DeviceTensor> {
        CpuBackend.upload(t)
    }
    fn execute(
        &self,
        op: &Op,
        inputs: &[&crate::DeviceTensor],
    ) -> crate::Result<crate::DeviceTensor> {
        CpuBackend.execute(op, inputs)
    }
    fn download(&self, t: &crate::DeviceTensor) -> crate::Result<Tensor> {
        use std::sync::atomic::Ordering;
        if self.broken.load(Ordering::Relaxed) {
            return Err(crate::RepOpsError::Device {
                backend: self.name().into(),
                detail: "the device is gone".into(),
            });
        }
        self.downloaded.fetch_add(t.len() as u64, Ordering::Relaxed);
        CpuBackend.download(t)
    }
    fn digests_on_device(&self) -> bool {
        true
    }
    fn digests(&self, ts: &[&crate::DeviceTensor]) -> crate::Result<Vec<crate::Digest>> {
        ts.iter()
            .map(|t| {
                t.as_host()
                    .map(crate::Digest::of)
                    .ok_or_else(|| crate::RepOpsError::Device {
                        backend: self.name().into(),
                        detail: "not this device's tensor".into(),
                    })
            })
            .collect()
    }
}
