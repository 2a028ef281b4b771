//! Golden vectors (R7): the contract in executable form.
//!
//! A [`Case`] names an op, and describes its inputs by shape and a generator driven
//! by Philox (input `j` of a case uses `Philox::new(case.seed, j)`), plus the R6 hashes
//! of the inputs and of the expected output. The committed file
//! `repops/golden/ops.json` is produced once by
//! `cargo run -p repops --example gen_golden -- repops/golden/ops.json`; the conformance
//! suite ([`crate::conformance`], which embeds the file) regenerates the inputs on any
//! backend, runs the op and compares hashes.

use crate::backend::Backend;
use crate::error::Result;
use crate::ops::{MaskFill, Op};
use crate::philox::Philox;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// How the elements of one input are drawn (`u_i` = R5 uniform of element `i`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Gen {
    /// `lo + u_i * (hi - lo)` in f32 (product rounded, then sum rounded).
    Uniform { lo: f32, hi: f32 },
    /// `below(limit)` as f32: `(u32_i * limit) >> 32`.
    Index { limit: u32 },
    /// Raw bit patterns: element `i` is `f32::from_bits(u32_i)`, except that the first
    /// elements are the specials listed in [`SPECIALS`].
    Bits,
}

/// Special values that lead every `Bits` input.
pub const SPECIALS: [u32; 16] = [
    0x0000_0000,
    0x8000_0000,
    0x7f80_0000,
    0xff80_0000,
    0x7fc0_0000,
    0x0000_0001,
    0x8000_0001,
    0x007f_ffff,
    0x0080_0000,
    0x7f7f_ffff,
    0xff7f_ffff,
    0x3f80_0000,
    0xbf80_0000,
    0x42b1_7218,
    0xc2ce_8ed0,
    0x3400_0000,
];

/// One input of a case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// Shape.
    pub shape: Vec<usize>,
    /// Generator.
    #[serde(flatten)]
    pub gen: Gen,
}

/// One golden vector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// Unique case name.
    pub name: String,
    /// The op.
    pub op: Op,
    /// Op version the expectation is for.
    pub version: u32,
    /// Philox seed of the inputs.
    pub seed: u64,
    /// Inputs.
    pub inputs: Vec<InputSpec>,
    /// R6 hashes of the generated inputs (hex), pinning the generator.
    pub input_hashes: Vec<String>,
    /// Expected output shape.
    pub output_shape: Vec<usize>,
    /// Expected R6 output hash (hex).
    pub output_hash: String,
}

/// The golden file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GoldenFile {
    /// Format tag `repops-golden/v1`.
    pub format: String,
    /// Command that produced the file.
    pub generator: String,
    /// Cases.
    pub cases: Vec<Case>,
}

/// Generate the tensor of one input spec.
pub fn generate(seed: u64, j: usize, spec: &InputSpec) -> Result<Tensor> {
    let n: usize = spec.shape.iter().product();
    let p = Philox::new(seed, j as u64);
    let data: Vec<f32> = (0..n as u64)
        .map(|i| match spec.gen {
            Gen::Uniform { lo, hi } => lo + p.uniform_at(i) * (hi - lo),
            Gen::Index { limit } => p.below_at(i, limit) as f32,
            Gen::Bits => {
                if (i as usize) < SPECIALS.len() {
                    f32::from_bits(SPECIALS[i as usize])
                } else {
                    f32::from_bits(p.u32_at(i))
                }
            }
        })
        .collect();
    Tensor::new(spec.shape.clone(), data)
}

/// Generate all inputs of a case.
pub fn case_inputs(c: &Case) -> Result<Vec<Tensor>> {
    c.inputs
        .iter()
        .enumerate()
        .map(|(j, s)| generate(c.seed, j, s))
        .collect()
}

/// Run a case on a backend; returns `(input hashes, output shape, output hash)`.
pub fn run_case(b: &dyn Backend, c: &Case) -> Result<(Vec<String>, Vec<usize>, String)> {
    let ins = case_inputs(c)?;
    let refs: Vec<&Tensor> = ins.iter().collect();
    let out = b.execute_host(&c.op, &refs)?;
    Ok((
        ins.iter().map(|t| hex(&t.hash())).collect(),
        out.shape().to_vec(),
        hex(&out.hash()),
    ))
}

pub(crate) fn hex(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn u(shape: &[usize], lo: f32, hi: f32) -> InputSpec {
    InputSpec {
        shape: shape.to_vec(),
        gen: Gen::Uniform { lo, hi },
    }
}
fn idx(shape: &[usize], limit: u32) -> InputSpec {
    InputSpec {
        shape: shape.to_vec(),
        gen: Gen::Index { limit },
    }
}
fn bits(shape: &[usize]) -> InputSpec {
    InputSpec {
        shape: shape.to_vec(),
        gen: Gen::Bits,
    }
}

/// The case list (without expectations). Sizes are chosen to cross the GEMM's blocking
/// (K > 256, M and N not multiples of 6 and 16) and the 32 reduction lanes.
pub fn case_specs() -> Vec<(String, Op, Vec<InputSpec>)> {
    let mut v: Vec<(String, Op, Vec<InputSpec>)> = Vec::new();
    let mut add = |name: &str, op: Op, ins: Vec<InputSpec>| v.push((name.to_string(), op, ins));
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        let a = if ta { [300, 37] } else { [37, 300] };
        let b = if tb { [45, 300] } else { [300, 45] };
        add(
            &format!("mat_mul_ta{}_tb{}", ta as u8, tb as u8),
            Op::MatMul { ta, tb },
            vec![u(&a, -2.0, 2.0), u(&b, -2.0, 2.0)],
        );
    }
    add(
        "mat_mul_small",
        Op::MatMul {
            ta: false,
            tb: false,
        },
        vec![u(&[1, 3], -1.0, 1.0), u(&[3, 1], -1.0, 1.0)],
    );
    for (ta, tb) in [(false, false), (false, true), (true, false)] {
        let a = if ta { [5, 33, 19] } else { [5, 19, 33] };
        let b = if tb { [5, 17, 33] } else { [5, 33, 17] };
        add(
            &format!("batched_mat_mul_ta{}_tb{}", ta as u8, tb as u8),
            Op::BatchedMatMul { ta, tb },
            vec![u(&a, -2.0, 2.0), u(&b, -2.0, 2.0)],
        );
    }
    add(
        "add_bias",
        Op::AddBias,
        vec![u(&[37, 45], -3.0, 3.0), u(&[45], -3.0, 3.0)],
    );
    add(
        "add",
        Op::Add,
        vec![u(&[17, 9], -3.0, 3.0), u(&[17, 9], -3.0, 3.0)],
    );
    add(
        "sub",
        Op::Sub,
        vec![u(&[17, 9], -3.0, 3.0), u(&[17, 9], -3.0, 3.0)],
    );
    add(
        "mul",
        Op::Mul,
        vec![u(&[17, 9], -3.0, 3.0), u(&[17, 9], -3.0, 3.0)],
    );
    add("scale", Op::Scale { s: 0.3 }, vec![u(&[100], -3.0, 3.0)]);
    add(
        "add_scalar",
        Op::AddScalar { s: 1.0 },
        vec![u(&[100], -3.0, 3.0)],
    );
    add("relu", Op::Relu, vec![u(&[100], -3.0, 3.0)]);
    add(
        "relu_backward",
        Op::ReluBackward,
        vec![u(&[100], -3.0, 3.0), u(&[100], -3.0, 3.0)],
    );
    add(
        "gelu_backward",
        Op::GeluBackward,
        vec![u(&[1000], -8.0, 8.0), u(&[1000], -3.0, 3.0)],
    );
    add(
        "tanh_backward",
        Op::TanhBackward,
        vec![u(&[100], -1.0, 1.0), u(&[100], -3.0, 3.0)],
    );
    add(
        "sigmoid_backward",
        Op::SigmoidBackward,
        vec![u(&[100], 0.0, 1.0), u(&[100], -3.0, 3.0)],
    );
    for (name, op, uniform) in [
        ("exp", Op::Exp, true),
        ("log", Op::Log, true),
        ("tanh", Op::Tanh, true),
        ("sigmoid", Op::Sigmoid, true),
        ("gelu", Op::Gelu, true),
        ("rsqrt", Op::Rsqrt, true),
        ("relu", Op::Relu, false),
        ("gelu_backward", Op::GeluBackward, false),
    ] {
        let n = op.arity();
        add(&format!("{name}_bits"), op.clone(), vec![bits(&[8192]); n]);
        if uniform {
            let (lo, hi) = if name == "log" || name == "rsqrt" {
                (0.0, 100.0)
            } else {
                (-20.0, 20.0)
            };
            add(&format!("{name}_uniform"), op, vec![u(&[4096], lo, hi)]);
        }
    }
    add("softmax", Op::Softmax, vec![u(&[7, 70], -10.0, 10.0)]);
    add(
        "softmax_backward",
        Op::SoftmaxBackward,
        vec![u(&[7, 70], 0.0, 0.05), u(&[7, 70], -1.0, 1.0)],
    );
    add(
        "log_softmax",
        Op::LogSoftmax,
        vec![u(&[7, 70], -10.0, 10.0)],
    );
    add(
        "log_softmax_backward",
        Op::LogSoftmaxBackward,
        vec![u(&[7, 70], -6.0, -1.0), u(&[7, 70], -1.0, 1.0)],
    );
    add(
        "cross_entropy",
        Op::CrossEntropy,
        vec![u(&[70, 11], -5.0, 5.0), idx(&[70], 11)],
    );
    add(
        "cross_entropy_backward",
        Op::CrossEntropyBackward,
        vec![u(&[70, 11], -5.0, 5.0), idx(&[70], 11)],
    );
    add(
        "layer_norm",
        Op::LayerNorm { eps: 1e-5 },
        vec![
            u(&[9, 70], -4.0, 6.0),
            u(&[70], 0.5, 1.5),
            u(&[70], -0.5, 0.5),
        ],
    );
    add(
        "layer_norm_backward_input",
        Op::LayerNormBackwardInput { eps: 1e-5 },
        vec![
            u(&[9, 70], -4.0, 6.0),
            u(&[70], 0.5, 1.5),
            u(&[9, 70], -1.0, 1.0),
        ],
    );
    add(
        "layer_norm_backward_gamma",
        Op::LayerNormBackwardGamma { eps: 1e-5 },
        vec![u(&[70, 9], -4.0, 6.0), u(&[70, 9], -1.0, 1.0)],
    );
    add(
        "embedding",
        Op::Embedding,
        vec![u(&[13, 8], -1.0, 1.0), idx(&[5, 7], 13)],
    );
    add(
        "embedding_backward",
        Op::EmbeddingBackward { vocab: 13 },
        vec![idx(&[5, 7], 13), u(&[5, 7, 8], -1.0, 1.0)],
    );
    add(
        "causal_mask_neg_inf",
        Op::CausalMask {
            fill: MaskFill::NegInf,
        },
        vec![u(&[3, 9, 9], -1.0, 1.0)],
    );
    add(
        "causal_mask_zero",
        Op::CausalMask {
            fill: MaskFill::Zero,
        },
        vec![u(&[3, 9, 9], -1.0, 1.0)],
    );
    add("sum_axis0", Op::SumAxis0, vec![u(&[100, 7], -10.0, 10.0)]);
    add("sum_last", Op::SumLast, vec![u(&[7, 100], -10.0, 10.0)]);
    add("mean_axis0", Op::MeanAxis0, vec![u(&[100, 7], -10.0, 10.0)]);
    add("mean_last", Op::MeanLast, vec![u(&[7, 100], -10.0, 10.0)]);
    add("transpose", Op::Transpose, vec![u(&[7, 11], -1.0, 1.0)]);
    add(
        "reshape",
        Op::Reshape { shape: vec![11, 7] },
        vec![u(&[7, 11], -1.0, 1.0)],
    );
    add(
        "permute",
        Op::Permute {
            perm: vec![0, 2, 1, 3],
        },
        vec![u(&[2, 3, 4, 5], -1.0, 1.0)],
    );
    add(
        "sgd_momentum_buf",
        Op::SgdMomentumBuf { momentum: 0.9 },
        vec![u(&[100], -1.0, 1.0), u(&[100], -1.0, 1.0)],
    );
    add(
        "sgd_update",
        Op::SgdUpdate { lr: 0.01 },
        vec![u(&[100], -1.0, 1.0), u(&[100], -1.0, 1.0)],
    );
    add(
        "adam_m",
        Op::AdamM { beta1: 0.9 },
        vec![u(&[100], -1.0, 1.0), u(&[100], -1.0, 1.0)],
    );
    add(
        "adam_v",
        Op::AdamV { beta2: 0.999 },
        vec![u(&[100], 0.0, 1.0), u(&[100], -1.0, 1.0)],
    );
    add(
        "adamw_update",
        Op::AdamWUpdate {
            lr: 0.001,
            eps: 1e-8,
            weight_decay: 0.01,
        },
        vec![
            u(&[100], -1.0, 1.0),
            u(&[100], -0.1, 0.1),
            u(&[100], 0.0, 0.01),
            u(&[], 0.1, 0.9),
            u(&[], 0.5, 0.999),
        ],
    );
    add(
        "im2col",
        Op::Im2Col {
            kh: 3,
            kw: 3,
            stride: 1,
            pad: 1,
        },
        vec![u(&[2, 3, 7, 6], -1.0, 1.0)],
    );
    add(
        "im2col_strided",
        Op::Im2Col {
            kh: 2,
            kw: 3,
            stride: 2,
            pad: 0,
        },
        vec![bits(&[2, 2, 9, 8])],
    );
    add(
        "col2im",
        Op::Col2Im {
            channels: 3,
            height: 7,
            width: 6,
            kh: 3,
            kw: 3,
            stride: 1,
            pad: 1,
        },
        vec![u(&[84, 27], -1.0, 1.0)],
    );
    add("max_last", Op::MaxLast, vec![bits(&[64, 4])]);
    add(
        "max_last_backward",
        Op::MaxLastBackward,
        vec![bits(&[64, 4]), u(&[64], -1.0, 1.0)],
    );
    add(
        "mul_scalar",
        Op::MulScalar,
        vec![bits(&[100]), u(&[], -2.0, 2.0)],
    );
    add(
        "sgd_update_lr",
        Op::SgdUpdateLr,
        vec![u(&[100], -1.0, 1.0), u(&[100], -1.0, 1.0), u(&[], 0.0, 0.1)],
    );
    add(
        "adamw_update_lr",
        Op::AdamWUpdateLr {
            eps: 1e-8,
            weight_decay: 0.01,
        },
        vec![
            u(&[100], -1.0, 1.0),
            u(&[100], -0.1, 0.1),
            u(&[100], 0.0, 0.01),
            u(&[], 0.1, 0.9),
            u(&[], 0.5, 0.999),
            u(&[], 0.0, 0.01),
        ],
    );
    add("silu", Op::Silu, vec![bits(&[300])]);
    add(
        "silu_backward",
        Op::SiluBackward,
        vec![u(&[300], -8.0, 8.0), u(&[300], -1.0, 1.0)],
    );
    add(
        "rms_norm",
        Op::RmsNorm { eps: 1e-6 },
        vec![u(&[9, 70], -4.0, 6.0), u(&[70], 0.5, 1.5)],
    );
    add(
        "rms_norm_backward_input",
        Op::RmsNormBackwardInput { eps: 1e-6 },
        vec![
            u(&[9, 70], -4.0, 6.0),
            u(&[70], 0.5, 1.5),
            u(&[9, 70], -1.0, 1.0),
        ],
    );
    add(
        "rms_norm_backward_gamma",
        Op::RmsNormBackwardGamma { eps: 1e-6 },
        vec![u(&[70, 9], -4.0, 6.0), u(&[70, 9], -1.0, 1.0)],
    );
    add(
        "rope",
        Op::Rope {
            base: 10_000.0,
            inverse: false,
        },
        vec![u(&[2, 37, 16], -2.0, 2.0)],
    );
    add(
        "rope_inverse",
        Op::Rope {
            base: 500_000.0,
            inverse: true,
        },
        vec![bits(&[3, 9, 6])],
    );
    add(
        "dropout",
        Op::Dropout { p: 0.25, key: 42 },
        vec![bits(&[500]), idx(&[], 1000)],
    );
    v
}

/// Every op name of this build, for the coverage check.
pub fn all_op_names() -> Vec<&'static str> {
    vec![
        "mat_mul",
        "batched_mat_mul",
        "add_bias",
        "add",
        "sub",
        "mul",
        "scale",
        "add_scalar",
        "relu",
        "relu_backward",
        "gelu",
        "gelu_backward",
        "tanh",
        "tanh_backward",
        "sigmoid",
        "sigmoid_backward",
        "exp",
        "log",
        "rsqrt",
        "softmax",
        "softmax_backward",
        "log_softmax",
        "log_softmax_backward",
        "cross_entropy",
        "cross_entropy_backward",
        "layer_norm",
        "layer_norm_backward_input",
        "layer_norm_backward_gamma",
        "embedding",
        "embedding_backward",
        "causal_mask",
        "sum_axis0",
        "sum_last",
        "mean_axis0",
        "mean_last",
        "transpose",
        "reshape",
        "permute",
        "sgd_momentum_buf",
        "sgd_update",
        "adam_m",
        "adam_v",
        "adamw_update",
        "im2col",
        "col2im",
        "max_last",
        "max_last_backward",
        "mul_scalar",
        "sgd_update_lr",
        "adamw_update_lr",
        "silu",
        "silu_backward",
        "rms_norm",
        "rms_norm_backward_input",
        "rms_norm_backward_gamma",
        "rope",
        "rope_inverse",
        "dropout",
    ]
}

/// Stride of the sampled elementary-function check run in CI.
pub const MATH_SAMPLE_STEP: u64 = 4099;

/// Outputs of `f` on the sampled inputs: the bit patterns `0, step, 2*step, ...` below
/// 2^32, then [`SPECIALS`]. Returns `(BLAKE3 hex over the outputs' LE bits, max ulp
/// error against the f64 reference, worst input bits, number of inputs)`.
pub fn math_sample(f: crate::math::Func, step: u64) -> (String, f64, u32, usize) {
    let mut h = blake3::Hasher::new();
    let mut worst = (0.0f64, 0u32);
    let mut n = 0usize;
    let inputs = (0..(1u64 << 32))
        .step_by(step.max(1) as usize)
        .map(|b| b as u32)
        .chain(SPECIALS);
    for bits in inputs {
        let x = f32::from_bits(bits);
        let y = f.eval(x);
        h.update(&y.to_bits().to_le_bytes());
        let e = crate::math::ulp_error(y, f.reference(x as f64));
        if e > worst.0 {
            worst = (e, bits);
        }
        n += 1;
    }
    (hex(h.finalize().as_bytes()), worst.0, worst.1, n)
}

/// One function's entry in `golden/math_sampled.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MathSample {
    /// Function name.
    pub func: String,
    /// Number of inputs.
    pub inputs: usize,
    /// BLAKE3 over the outputs.
    pub hash: String,
    /// Max ulp error measured on these inputs when the file was generated.
    pub max_ulp: f64,
}
