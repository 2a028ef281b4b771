//! The operator set of RepOps v1: one definition per op (semantics, shape rule,
//! CPU reference). `SPEC.md` states every formula with its evaluation order; the code
//! below is that statement in executable form.

// Index loops mirror the formulas of SPEC.md one to one.
#![allow(clippy::needless_range_loop)]

use crate::error::{RepOpsError, Result};
use crate::math;
use crate::matmul::{self, MatView};
use crate::reduce;
use crate::tensor::{numel, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Version of every op defined in this build. A change that alters any output bit of an
/// op gets a new version (R7); this build implements version 1 of all ops.
pub const OP_VERSION: u32 = 1;

/// Value written to masked positions by [`Op::CausalMask`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskFill {
    /// `-inf` (before a softmax).
    NegInf,
    /// `+0.0` (the mask's backward).
    Zero,
}

/// One RepOps operator with its parameters. Inputs are positional, see each variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// `(a[M,K] or a[K,M] if ta, b[K,N] or b[N,K] if tb) -> [M,N]`, R2.
    MatMul { ta: bool, tb: bool },
    /// Batched `MatMul` over a leading batch dim: `(a[G,..], b[G,..]) -> [G,M,N]`.
    BatchedMatMul { ta: bool, tb: bool },
    /// `(x[..,D], b[D]) -> x + b` (broadcast over rows).
    AddBias,
    /// `(a, b) -> a + b`, same shapes.
    Add,
    /// `(a, b) -> a - b`, same shapes.
    Sub,
    /// `(a, b) -> a * b`, same shapes.
    Mul,
    /// `(x) -> x * s`.
    Scale { s: f32 },
    /// `(x) -> x + s`.
    AddScalar { s: f32 },
    /// `(x) -> max(x, +0)` (R1 max).
    Relu,
    /// `(x, dy) -> x > 0 ? dy : +0`.
    ReluBackward,
    /// `(x) -> gelu(x)` (tanh form, `math::gelu`).
    Gelu,
    /// `(x, dy) -> dy * gelu'(x)`.
    GeluBackward,
    /// `(x) -> tanh(x)`.
    Tanh,
    /// `(y, dy) -> dy * (1 - y*y)` with `y = tanh(x)`.
    TanhBackward,
    /// `(x) -> sigmoid(x)`.
    Sigmoid,
    /// `(y, dy) -> dy * (y * (1 - y))` with `y = sigmoid(x)`.
    SigmoidBackward,
    /// `(x) -> exp(x)`.
    Exp,
    /// `(x) -> log(x)`.
    Log,
    /// `(x) -> 1/sqrt(x)`.
    Rsqrt,
    /// Softmax over the last axis.
    Softmax,
    /// `(y, dy) -> y * (dy - sum(y*dy))` over the last axis.
    SoftmaxBackward,
    /// Log-softmax over the last axis.
    LogSoftmax,
    /// `(y, dy) -> dy - exp(y) * sum(dy)` over the last axis.
    LogSoftmaxBackward,
    /// `(logits[N,C], labels[N]) -> []`: mean negative log-likelihood.
    CrossEntropy,
    /// `(logits[N,C], labels[N]) -> [N,C]`: `(softmax - onehot) / N`.
    CrossEntropyBackward,
    /// `(x[..,D], gamma[D], beta[D]) -> [..,D]`.
    LayerNorm { eps: f32 },
    /// `(x[..,D], gamma[D], dy[..,D]) -> dx[..,D]`.
    LayerNormBackwardInput { eps: f32 },
    /// `(x[..,D], dy[..,D]) -> dgamma[D]`.
    LayerNormBackwardGamma { eps: f32 },
    /// `(table[V,D], ids[..]) -> [.., D]`.
    Embedding,
    /// `(ids[..], dy[.., D]) -> [vocab, D]`, scatter-add in ascending position order.
    EmbeddingBackward { vocab: usize },
    /// `(x[.., T, T]) -> x` with `x[.., i, j] = fill` where `j > i`.
    CausalMask { fill: MaskFill },
    /// `(x[.., C]) -> [C]`: R3 sum over all leading rows, per column.
    SumAxis0,
    /// `(x[.., C]) -> [..]`: R3 sum over the last axis.
    SumLast,
    /// `SumAxis0 / rows`.
    MeanAxis0,
    /// `SumLast / C`.
    MeanLast,
    /// `(x[R,C]) -> [C,R]`.
    Transpose,
    /// `(x) -> x` viewed as `shape` (same element count).
    Reshape { shape: Vec<usize> },
    /// `(x) -> y` with `y.shape[d] = x.shape[perm[d]]`.
    Permute { perm: Vec<usize> },
    /// `(buf, g) -> momentum * buf + g`.
    SgdMomentumBuf { momentum: f32 },
    /// `(p, buf) -> p - lr * buf`.
    SgdUpdate { lr: f32 },
    /// `(m, g) -> beta1 * m + (1 - beta1) * g`.
    AdamM { beta1: f32 },
    /// `(v, g) -> beta2 * v + (1 - beta2) * (g * g)`.
    AdamV { beta2: f32 },
    /// `(p, m, v, beta1^t[], beta2^t[]) -> p - lr * (mhat / (sqrt(vhat) + eps) + wd * p)`.
    AdamWUpdate {
        lr: f32,
        eps: f32,
        weight_decay: f32,
    },
    /// `(x[N,C,H,W]) -> [N*OH*OW, C*kh*kw]`: row `(n, oh, ow)`, column `(c, i, j)` is
    /// `x[n, c, oh*stride - pad + i, ow*stride - pad + j]`, `+0` outside the image (a
    /// convolution is this and a matrix product). `OH = (H + 2 pad - kh) / stride + 1`.
    Im2Col {
        kh: usize,
        kw: usize,
        stride: usize,
        pad: usize,
    },
    /// The adjoint of [`Op::Im2Col`]: `(cols[N*OH*OW, C*kh*kw]) -> [N, C, H, W]`, each
    /// pixel the f32 sum, from `+0`, of the entries that copied it, in ascending
    /// `(oh, ow)` order.
    Col2Im {
        channels: usize,
        height: usize,
        width: usize,
        kh: usize,
        kw: usize,
        stride: usize,
        pad: usize,
    },
    /// `(x[..,K]) -> [..]`: the R3 `max` of each row (max pooling over windows that
    /// [`Op::Im2Col`] laid out as rows).
    MaxLast,
    /// `(x[..,K], dy[..]) -> [..,K]`: per row, `dy` at the first index whose value
    /// equals the row's `max_last` (the first NaN when that is NaN), `+0` elsewhere.
    MaxLastBackward,
    /// `(x, s[]) -> x * s`: scaling by a computed scalar (gradient clipping).
    MulScalar,
    /// `(p, buf, lr[]) -> p - lr * buf`: `sgd_update` with a computed learning rate
    /// (a schedule).
    SgdUpdateLr,
    /// `(p, m, v, beta1^t[], beta2^t[], lr[])`: `adamw_update` with a computed learning
    /// rate (a schedule).
    AdamWUpdateLr { eps: f32, weight_decay: f32 },
    /// `(x) -> x * sigmoid(x)` (SiLU, swish).
    Silu,
    /// `(x, dy) -> dy * (s * (1 + x * (1 - s)))` with `s = sigmoid(x)`.
    SiluBackward,
    /// `(x[..,D], gamma[D]) -> [..,D]`: per row `r = rsqrt(sum(x*x) / D + eps)`,
    /// `y_j = (x_j * r) * gamma_j` (RMSNorm).
    RmsNorm { eps: f32 },
    /// `(x[..,D], gamma[D], dy[..,D]) -> dx[..,D]`.
    RmsNormBackwardInput { eps: f32 },
    /// `(x[..,D], dy[..,D]) -> dgamma[D]`.
    RmsNormBackwardGamma { eps: f32 },
    /// `(x[.., T, D]) -> [.., T, D]`, `D` even: rotary position embedding (RoPE, the
    /// half-split pairing). Row `t` of each `[T, D]` block is position `t`; pair
    /// `(j, j + D/2)` turns by `theta = t * exp(-(2j / D) * log(base))`:
    /// `y_j = x_j cos - x_{j+D/2} sin`, `y_{j+D/2} = x_j sin + x_{j+D/2} cos`
    /// (`math::sin_cos`). `inverse` turns by `-theta` (the backward).
    Rope { base: f32, inverse: bool },
    /// `(x, step[]) -> y`: inverted dropout. Element `i` is kept when the R5 uniform of
    /// `Philox(key, stream = bits of step)` at counter `i` is `>= p`; a kept element is
    /// `x_i * (1 / (1 - p))`, a dropped one `+0`. Its backward is itself, applied to
    /// `dy` with the same key and step.
    Dropout { p: f32, key: u64 },
}

/// `adamw_update` of `(p, m, v, beta1^t, beta2^t)` at learning rate `lr`.
fn adamw(x: &[&Tensor], lr: f32, eps: f32, wd: f32) -> Vec<f32> {
    let bc1 = 1.0 - x[3].data()[0];
    let bc2 = 1.0 - x[4].data()[0];
    let (p, m, v) = (x[0].data(), x[1].data(), x[2].data());
    (0..p.len())
        .map(|i| {
            let mh = m[i] / bc1;
            let vh = v[i] / bc2;
            let u = mh / (vh.sqrt() + eps);
            p[i] - lr * (u + wd * p[i])
        })
        .collect()
}

/// `(sin, cos)` of RoPE's angle for position `p` and pair `j` at `[p * D/2 + j]`
/// (negated sines when `inverse`): `theta = p * exp(-(2j / D) * log(base))`, each an
/// R1 operation or an R4 function, in this order (the CUDA kernel repeats it).
pub fn rope_angles(tdim: usize, d: usize, base: f32, inverse: bool) -> Vec<(f32, f32)> {
    let h = d / 2;
    let lb = math::log(base);
    let inv: Vec<f32> = (0..h)
        .map(|j| math::exp(-(((2 * j) as f32 / d as f32) * lb)))
        .collect();
    let mut out = Vec::with_capacity(tdim * h);
    for p in 0..tdim {
        for &f in &inv {
            let (sn, cs) = math::sin_cos(p as f32 * f);
            out.push((if inverse { -sn } else { sn }, cs));
        }
    }
    out
}

/// Largest window side, stride or padding of [`Op::Im2Col`] and [`Op::Col2Im`].
pub const MAX_WINDOW: usize = 64;

/// Output side of a window of `k` at `stride` over `n` cells padded by `pad` each
/// side, or `None` when the window does not fit.
pub fn window_out(n: usize, k: usize, stride: usize, pad: usize) -> Option<usize> {
    let padded = n.checked_add(pad.checked_mul(2)?)?;
    if k == 0 || stride == 0 || k > padded {
        return None;
    }
    Some((padded - k) / stride + 1)
}

/// Output rows and columns of a `kh x kw` window at `stride` over an `h x w` image
/// padded by `pad` ([`window_out`] of each side), or `None` when it does not fit.
pub fn window_outs(
    h: usize,
    w: usize,
    [kh, kw, stride, pad]: [usize; 4],
) -> Option<(usize, usize)> {
    Some((
        window_out(h, kh, stride, pad)?,
        window_out(w, kw, stride, pad)?,
    ))
}

/// Checks [`Op::Im2Col`]'s window parameters.
fn window_params(op: &'static str, kh: usize, kw: usize, stride: usize, pad: usize) -> Result<()> {
    let ok = |v: usize| (1..=MAX_WINDOW).contains(&v);
    if !ok(kh) || !ok(kw) || !ok(stride) || pad >= kh.min(kw) {
        return Err(RepOpsError::Param {
            op,
            detail: format!(
                "kh = {kh}, kw = {kw}, stride = {stride} must be in 1..={MAX_WINDOW} and pad = {pad} below both sides"
            ),
        });
    }
    Ok(())
}

fn shape_err(op: &'static str, detail: String) -> RepOpsError {
    RepOpsError::Shape { op, detail }
}

fn finite_param(op: &'static str, name: &str, v: f32) -> Result<()> {
    if !v.is_finite() {
        return Err(RepOpsError::Param {
            op,
            detail: format!("{name} = {v} is not finite"),
        });
    }
    Ok(())
}

/// `(rows, last)` of a rank >= 1 tensor.
fn rows_cols(t: &Tensor) -> (usize, usize) {
    let c = t.last_dim();
    let r = t.len().checked_div(c).unwrap_or(0);
    (r, c)
}

/// An index input (embedding id, class label) as `usize`: it must be an exact integer in
/// `0..limit` (NaN is rejected). Other backends check their index inputs with this.
/// One row's cross-entropy loss: `log Σ exp(x - max) - (x[label] - max)` (R3 max and
/// sum); the op sums these over rows in R3 order and divides by the row count.
pub(crate) fn cross_entropy_row(xr: &[f32], label: usize) -> f32 {
    let m = reduce::max(xr);
    let s = reduce::sum_map(xr.len(), |j| math::exp(xr[j] - m));
    math::log(s) - (xr[label] - m)
}

pub fn index(op: &'static str, v: f32, pos: usize, limit: usize) -> Result<usize> {
    if v >= 0.0 && v < limit as f32 && v == (v as usize) as f32 {
        Ok(v as usize)
    } else {
        Err(RepOpsError::Index {
            op,
            pos,
            value: v,
            limit,
        })
    }
}

const PAR_MIN: usize = 1 << 15;

fn map1(x: &Tensor, f: impl Fn(f32) -> f32 + Sync + Send) -> Tensor {
    let mut out = vec![0.0f32; x.len()];
    if x.len() >= PAR_MIN {
        out.par_chunks_mut(4096)
            .zip(x.data().par_chunks(4096))
            .for_each(|(o, i)| o.iter_mut().zip(i).for_each(|(o, v)| *o = f(*v)));
    } else {
        out.iter_mut().zip(x.data()).for_each(|(o, v)| *o = f(*v));
    }
    Tensor::new(x.shape().to_vec(), out).unwrap_or_else(|_| unreachable_tensor())
}

fn map_fn<F: Fn(f32) -> f32 + Copy + Send + Sync>(x: &Tensor, f: F) -> Tensor {
    map_chunks(x, |i, o| matmul::map_slice(i, o, f))
}

/// `out = g(x)` by chunks of 4096 (in parallel for large tensors); `g` maps a slice.
fn map_chunks(x: &Tensor, g: impl Fn(&[f32], &mut [f32]) + Sync) -> Tensor {
    let mut out = vec![0.0f32; x.len()];
    if x.len() >= PAR_MIN {
        out.par_chunks_mut(4096)
            .zip(x.data().par_chunks(4096))
            .for_each(|(o, i)| g(i, o));
    } else {
        g(x.data(), &mut out);
    }
    Tensor::new(x.shape().to_vec(), out).unwrap_or_else(|_| unreachable_tensor())
}

fn map2(a: &Tensor, b: &Tensor, f: impl Fn(f32, f32) -> f32 + Sync + Send) -> Tensor {
    let out: Vec<f32> = if a.len() >= PAR_MIN {
        a.data()
            .par_iter()
            .zip(b.data().par_iter())
            .map(|(x, y)| f(*x, *y))
            .collect()
    } else {
        a.data()
            .iter()
            .zip(b.data())
            .map(|(x, y)| f(*x, *y))
            .collect()
    };
    Tensor::new(a.shape().to_vec(), out).unwrap_or_else(|_| unreachable_tensor())
}

// Lengths are established before every call of `Tensor::new` in this module; this is
// only reachable through a bug, and returns an empty tensor rather than panicking.
fn unreachable_tensor() -> Tensor {
    Tensor::zeros(&[0])
}

/// Apply `f(row_index, out_row)` to every row of a `[rows, cols]` output.
fn by_rows(rows: usize, cols: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) -> Vec<f32> {
    let mut out = vec![0.0f32; rows * cols];
    if cols == 0 {
        return out;
    }
    // One call site of `f` (inside `with_fma`), so that it is inlined into the
    // FMA-enabled copy of the loop.
    let rows_per_task = (PAR_MIN / cols).max(1);
    let task = |(t, block): (usize, &mut [f32])| {
        matmul::with_fma(|| {
            for (r, o) in block.chunks_mut(cols).enumerate() {
                f(t * rows_per_task + r, o);
            }
        })
    };
    if rows * cols >= PAR_MIN {
        out.par_chunks_mut(cols * rows_per_task)
            .enumerate()
            .for_each(task);
    } else {
        task((0, &mut out[..]));
    }
    out
}

#[inline(always)]
fn softmax_row(x: &[f32], y: &mut [f32]) {
    let m = reduce::max(x);
    for (o, v) in y.iter_mut().zip(x) {
        *o = math::exp(*v - m);
    }
    let s = reduce::sum(y);
    for o in y.iter_mut() {
        *o /= s;
    }
}

/// `(mean, rstd)` of a layer-norm row.
#[inline(always)]
fn ln_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let d = x.len() as f32;
    let mean = reduce::sum(x) / d;
    let var = reduce::sum_map(x.len(), |i| {
        let t = x[i] - mean;
        t * t
    }) / d;
    (mean, math::rsqrt(var + eps))
}

/// RMSNorm's `rsqrt(sum(x*x) / D + eps)` of one row (R3 sum of the squares).
fn rms_rstd(x: &[f32], eps: f32) -> f32 {
    let ms = reduce::sum_map(x.len(), |i| x[i] * x[i]) / x.len() as f32;
    math::rsqrt(ms + eps)
}

impl Op {
    /// Stable snake_case name.
    pub fn name(&self) -> &'static str {
        match self {
            Op::MatMul { .. } => "mat_mul",
            Op::BatchedMatMul { .. } => "batched_mat_mul",
            Op::AddBias => "add_bias",
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::Scale { .. } => "scale",
            Op::AddScalar { .. } => "add_scalar",
            Op::Relu => "relu",
            Op::ReluBackward => "relu_backward",
            Op::Gelu => "gelu",
            Op::GeluBackward => "gelu_backward",
            Op::Tanh => "tanh",
            Op::TanhBackward => "tanh_backward",
            Op::Sigmoid => "sigmoid",
            Op::SigmoidBackward => "sigmoid_backward",
            Op::Exp => "exp",
            Op::Log => "log",
            Op::Rsqrt => "rsqrt",
            Op::Softmax => "softmax",
            Op::SoftmaxBackward => "softmax_backward",
            Op::LogSoftmax => "log_softmax",
            Op::LogSoftmaxBackward => "log_softmax_backward",
            Op::CrossEntropy => "cross_entropy",
            Op::CrossEntropyBackward => "cross_entropy_backward",
            Op::LayerNorm { .. } => "layer_norm",
            Op::LayerNormBackwardInput { .. } => "layer_norm_backward_input",
            Op::LayerNormBackwardGamma { .. } => "layer_norm_backward_gamma",
            Op::Embedding => "embedding",
            Op::EmbeddingBackward { .. } => "embedding_backward",
            Op::CausalMask { .. } => "causal_mask",
            Op::SumAxis0 => "sum_axis0",
            Op::SumLast => "sum_last",
            Op::MeanAxis0 => "mean_axis0",
            Op::MeanLast => "mean_last",
            Op::Transpose => "transpose",
            Op::Reshape { .. } => "reshape",
            Op::Permute { .. } => "permute",
            Op::SgdMomentumBuf { .. } => "sgd_momentum_buf",
            Op::SgdUpdate { .. } => "sgd_update",
            Op::AdamM { .. } => "adam_m",
            Op::AdamV { .. } => "adam_v",
            Op::AdamWUpdate { .. } => "adamw_update",
            Op::Im2Col { .. } => "im2col",
            Op::Col2Im { .. } => "col2im",
            Op::MaxLast => "max_last",
            Op::MaxLastBackward => "max_last_backward",
            Op::MulScalar => "mul_scalar",
            Op::SgdUpdateLr => "sgd_update_lr",
            Op::AdamWUpdateLr { .. } => "adamw_update_lr",
            Op::Silu => "silu",
            Op::SiluBackward => "silu_backward",
            Op::RmsNorm { .. } => "rms_norm",
            Op::RmsNormBackwardInput { .. } => "rms_norm_backward_input",
            Op::RmsNormBackwardGamma { .. } => "rms_norm_backward_gamma",
            Op::Rope { inverse: false, .. } => "rope",
            Op::Rope { inverse: true, .. } => "rope_inverse",
            Op::Dropout { .. } => "dropout",
        }
    }

    /// Version of this op's definition (R7).
    pub fn version(&self) -> u32 {
        OP_VERSION
    }

    /// Number of inputs.
    pub fn arity(&self) -> usize {
        match self {
            Op::AdamWUpdateLr { .. } => 6,
            Op::AdamWUpdate { .. } => 5,
            Op::SgdUpdateLr => 3,
            Op::LayerNorm { .. }
            | Op::LayerNormBackwardInput { .. }
            | Op::RmsNormBackwardInput { .. } => 3,
            Op::MatMul { .. }
            | Op::BatchedMatMul { .. }
            | Op::AddBias
            | Op::Add
            | Op::Sub
            | Op::Mul
            | Op::ReluBackward
            | Op::GeluBackward
            | Op::TanhBackward
            | Op::SigmoidBackward
            | Op::SoftmaxBackward
            | Op::LogSoftmaxBackward
            | Op::CrossEntropy
            | Op::CrossEntropyBackward
            | Op::LayerNormBackwardGamma { .. }
            | Op::Embedding
            | Op::EmbeddingBackward { .. }
            | Op::SgdMomentumBuf { .. }
            | Op::SgdUpdate { .. }
            | Op::AdamM { .. }
            | Op::AdamV { .. }
            | Op::MaxLastBackward
            | Op::MulScalar
            | Op::SiluBackward
            | Op::RmsNorm { .. }
            | Op::RmsNormBackwardGamma { .. }
            | Op::Dropout { .. } => 2,
            _ => 1,
        }
    }

    /// Output shape from input shapes, checking every shape rule. This is what a
    /// program expansion uses, and what `execute` checks first.
    pub fn output_shape(&self, s: &[&[usize]]) -> Result<Vec<usize>> {
        let name = self.name();
        if s.len() != self.arity() {
            return Err(RepOpsError::Arity {
                op: name,
                want: self.arity(),
                got: s.len(),
            });
        }
        let rank = |i: usize, r: usize| -> Result<()> {
            if s[i].len() != r {
                return Err(shape_err(
                    name,
                    format!("input {i} must have rank {r}, got {:?}", s[i]),
                ));
            }
            Ok(())
        };
        let at_least = |i: usize, r: usize| -> Result<()> {
            if s[i].len() < r {
                return Err(shape_err(
                    name,
                    format!("input {i} must have rank >= {r}, got {:?}", s[i]),
                ));
            }
            Ok(())
        };
        let same = |i: usize, j: usize| -> Result<()> {
            if s[i] != s[j] {
                return Err(shape_err(
                    name,
                    format!("inputs {i} and {j} differ: {:?} vs {:?}", s[i], s[j]),
                ));
            }
            Ok(())
        };
        let last = |i: usize| s[i].last().copied().unwrap_or(1);
        // (m, n) of a product over the last two dims, transposed as asked.
        let contract = |a: &[usize], b: &[usize], ta: bool, tb: bool| -> Result<(usize, usize)> {
            let two = |x: &[usize], t: bool| {
                let (r, c) = (x[x.len() - 2], x[x.len() - 1]);
                if t {
                    (c, r)
                } else {
                    (r, c)
                }
            };
            let ((m, k), (k2, n)) = (two(a, ta), two(b, tb));
            if k != k2 {
                return Err(shape_err(
                    name,
                    format!("contracted dims differ: {a:?} (ta={ta}) vs {b:?} (tb={tb})"),
                ));
            }
            Ok((m, n))
        };
        let vec_of = |i: usize, d: usize| -> Result<()> {
            if s[i] != [d] {
                return Err(shape_err(
                    name,
                    format!("input {i} must have shape [{d}], got {:?}", s[i]),
                ));
            }
            Ok(())
        };
        Ok(match self {
            Op::MatMul { ta, tb } => {
                rank(0, 2)?;
                rank(1, 2)?;
                let (m, n) = contract(s[0], s[1], *ta, *tb)?;
                vec![m, n]
            }
            Op::BatchedMatMul { ta, tb } => {
                rank(0, 3)?;
                rank(1, 3)?;
                if s[0][0] != s[1][0] {
                    return Err(shape_err(
                        name,
                        format!("batch dims differ: {:?} vs {:?}", s[0], s[1]),
                    ));
                }
                let (m, n) = contract(s[0], s[1], *ta, *tb)?;
                vec![s[0][0], m, n]
            }
            Op::AddBias => {
                at_least(0, 1)?;
                vec_of(1, last(0))?;
                s[0].to_vec()
            }
            Op::Add
            | Op::Sub
            | Op::Mul
            | Op::ReluBackward
            | Op::GeluBackward
            | Op::TanhBackward
            | Op::SigmoidBackward
            | Op::SiluBackward
            | Op::SgdMomentumBuf { .. }
            | Op::SgdUpdate { .. }
            | Op::AdamM { .. }
            | Op::AdamV { .. } => {
                same(0, 1)?;
                s[0].to_vec()
            }
            Op::SoftmaxBackward | Op::LogSoftmaxBackward => {
                at_least(0, 1)?;
                same(0, 1)?;
                s[0].to_vec()
            }
            Op::Scale { .. }
            | Op::AddScalar { .. }
            | Op::Relu
            | Op::Gelu
            | Op::Tanh
            | Op::Sigmoid
            | Op::Silu
            | Op::Exp
            | Op::Log
            | Op::Rsqrt => s[0].to_vec(),
            Op::Softmax | Op::LogSoftmax => {
                at_least(0, 1)?;
                s[0].to_vec()
            }
            Op::CrossEntropy | Op::CrossEntropyBackward => {
                rank(0, 2)?;
                vec_of(1, s[0][0])?;
                if s[0][1] == 0 || s[0][0] == 0 {
                    return Err(shape_err(name, format!("empty logits {:?}", s[0])));
                }
                if matches!(self, Op::CrossEntropy) {
                    vec![]
                } else {
                    s[0].to_vec()
                }
            }
            Op::LayerNorm { .. } => {
                at_least(0, 1)?;
                vec_of(1, last(0))?;
                vec_of(2, last(0))?;
                s[0].to_vec()
            }
            Op::LayerNormBackwardInput { .. } | Op::RmsNormBackwardInput { .. } => {
                at_least(0, 1)?;
                vec_of(1, last(0))?;
                same(0, 2)?;
                s[0].to_vec()
            }
            Op::LayerNormBackwardGamma { .. } | Op::RmsNormBackwardGamma { .. } => {
                at_least(0, 1)?;
                same(0, 1)?;
                vec![last(0)]
            }
            Op::RmsNorm { .. } => {
                at_least(0, 1)?;
                vec_of(1, last(0))?;
                s[0].to_vec()
            }
            Op::Embedding => {
                rank(0, 2)?;
                let mut o = s[1].to_vec();
                o.push(s[0][1]);
                o
            }
            Op::EmbeddingBackward { vocab } => {
                at_least(1, 1)?;
                let mut lead = s[1].to_vec();
                let d = lead.pop().unwrap_or(0);
                if lead != s[0] {
                    return Err(shape_err(
                        name,
                        format!("ids {:?} do not match gradient rows {:?}", s[0], s[1]),
                    ));
                }
                vec![*vocab, d]
            }
            Op::CausalMask { .. } => {
                at_least(0, 2)?;
                let r = s[0].len();
                if s[0][r - 1] != s[0][r - 2] {
                    return Err(shape_err(
                        name,
                        format!("last two dims must be equal, got {:?}", s[0]),
                    ));
                }
                s[0].to_vec()
            }
            Op::SumAxis0 | Op::MeanAxis0 => {
                at_least(0, 1)?;
                vec![last(0)]
            }
            Op::SumLast | Op::MeanLast => {
                at_least(0, 1)?;
                s[0][..s[0].len() - 1].to_vec()
            }
            Op::Transpose => {
                rank(0, 2)?;
                vec![s[0][1], s[0][0]]
            }
            Op::Reshape { shape } => {
                if numel(shape) != numel(s[0]) {
                    return Err(shape_err(
                        name,
                        format!("cannot view {:?} as {:?}", s[0], shape),
                    ));
                }
                shape.clone()
            }
            Op::Permute { perm } => {
                let r = s[0].len();
                let mut seen = vec![false; r];
                if perm.len() != r
                    || perm
                        .iter()
                        .any(|&p| p >= r || std::mem::replace(&mut seen[p], true))
                {
                    return Err(RepOpsError::Param {
                        op: name,
                        detail: format!("{perm:?} is not a permutation of 0..{r}"),
                    });
                }
                perm.iter().map(|&p| s[0][p]).collect()
            }
            Op::AdamWUpdate { .. } => {
                same(0, 1)?;
                same(0, 2)?;
                rank(3, 0)?;
                rank(4, 0)?;
                s[0].to_vec()
            }
            Op::Im2Col {
                kh,
                kw,
                stride,
                pad,
            } => {
                rank(0, 4)?;
                window_params(name, *kh, *kw, *stride, *pad)?;
                let [n, c, h, w] = [s[0][0], s[0][1], s[0][2], s[0][3]];
                let (oh, ow) = match window_outs(h, w, [*kh, *kw, *stride, *pad]) {
                    Some(o) => o,
                    None => {
                        return Err(shape_err(
                            name,
                            format!("a {kh}x{kw} window does not fit {:?} padded by {pad}", s[0]),
                        ))
                    }
                };
                match (
                    n.checked_mul(oh).and_then(|v| v.checked_mul(ow)),
                    c.checked_mul(kh * kw),
                ) {
                    (Some(rows), Some(cols)) => vec![rows, cols],
                    _ => return Err(shape_err(name, format!("{:?} has too many patches", s[0]))),
                }
            }
            Op::Col2Im {
                channels,
                height,
                width,
                kh,
                kw,
                stride,
                pad,
            } => {
                rank(0, 2)?;
                window_params(name, *kh, *kw, *stride, *pad)?;
                let dims_ok = [*channels, *height, *width]
                    .iter()
                    .all(|&d| (1..=1 << 16).contains(&d));
                let (oh, ow) = match window_outs(*height, *width, [*kh, *kw, *stride, *pad]) {
                    Some(o) if dims_ok => o,
                    _ => {
                        return Err(shape_err(
                            name,
                            format!(
                                "a {kh}x{kw} window does not fit {height}x{width} padded by {pad}"
                            ),
                        ))
                    }
                };
                let per_image = oh * ow;
                if s[0][1] != channels * kh * kw || !s[0][0].is_multiple_of(per_image) {
                    return Err(shape_err(
                        name,
                        format!(
                            "cols {:?} are not [N*{per_image}, {}] patches of {channels}x{height}x{width}",
                            s[0],
                            channels * kh * kw
                        ),
                    ));
                }
                vec![s[0][0] / per_image, *channels, *height, *width]
            }
            Op::MaxLast => {
                at_least(0, 1)?;
                if last(0) == 0 {
                    return Err(shape_err(name, "rows must not be empty".into()));
                }
                s[0][..s[0].len() - 1].to_vec()
            }
            Op::MulScalar | Op::Dropout { .. } => {
                rank(1, 0)?;
                s[0].to_vec()
            }
            Op::SgdUpdateLr => {
                same(0, 1)?;
                rank(2, 0)?;
                s[0].to_vec()
            }
            Op::AdamWUpdateLr { .. } => {
                same(0, 1)?;
                same(0, 2)?;
                rank(3, 0)?;
                rank(4, 0)?;
                rank(5, 0)?;
                s[0].to_vec()
            }
            Op::Rope { .. } => {
                at_least(0, 2)?;
                let d = last(0);
                if d == 0 || d % 2 != 0 {
                    return Err(shape_err(
                        name,
                        format!("the last dim must be even and > 0, got {:?}", s[0]),
                    ));
                }
                s[0].to_vec()
            }
            Op::MaxLastBackward => {
                at_least(0, 1)?;
                if s[1] != &s[0][..s[0].len() - 1] {
                    return Err(shape_err(
                        name,
                        format!("dy {:?} must be x {:?} without its last dim", s[1], s[0]),
                    ));
                }
                s[0].to_vec()
            }
        })
    }

    /// Check the op's parameters (finite; `eps > 0`), as `execute` does.
    pub fn check_params(&self) -> Result<()> {
        let n = self.name();
        match self {
            Op::Scale { s } | Op::AddScalar { s } => finite_param(n, "s", *s),
            Op::LayerNorm { eps }
            | Op::LayerNormBackwardInput { eps }
            | Op::LayerNormBackwardGamma { eps }
            | Op::RmsNorm { eps }
            | Op::RmsNormBackwardInput { eps }
            | Op::RmsNormBackwardGamma { eps } => {
                finite_param(n, "eps", *eps)?;
                if *eps <= 0.0 {
                    return Err(RepOpsError::Param {
                        op: n,
                        detail: format!("eps = {eps} must be > 0"),
                    });
                }
                Ok(())
            }
            Op::SgdMomentumBuf { momentum } => finite_param(n, "momentum", *momentum),
            Op::SgdUpdate { lr } => finite_param(n, "lr", *lr),
            Op::AdamM { beta1 } => finite_param(n, "beta1", *beta1),
            Op::AdamV { beta2 } => finite_param(n, "beta2", *beta2),
            Op::AdamWUpdate {
                lr,
                eps,
                weight_decay,
            } => {
                finite_param(n, "lr", *lr)?;
                finite_param(n, "eps", *eps)?;
                finite_param(n, "weight_decay", *weight_decay)
            }
            Op::AdamWUpdateLr { eps, weight_decay } => {
                finite_param(n, "eps", *eps)?;
                finite_param(n, "weight_decay", *weight_decay)
            }
            Op::Dropout { p, .. } => {
                if !(0.0..1.0).contains(p) {
                    return Err(RepOpsError::Param {
                        op: n,
                        detail: format!("p = {p} must be in [0, 1)"),
                    });
                }
                Ok(())
            }
            Op::Rope { base, .. } => {
                finite_param(n, "base", *base)?;
                if *base <= 1.0 {
                    return Err(RepOpsError::Param {
                        op: n,
                        detail: format!("base = {base} must be > 1"),
                    });
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Everything `execute` checks before computing (arity, shapes, parameters; index
    /// values are checked where they are read, see [`index`]); returns the output shape.
    /// Other backends call this first so that bad input gives the same error everywhere.
    pub fn check(&self, inputs: &[&Tensor]) -> Result<Vec<usize>> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape()).collect();
        let out_shape = self.output_shape(&shapes)?;
        self.check_params()?;
        Ok(out_shape)
    }

    /// Run the op on the CPU reference. Checks arity, shapes, parameters and indices;
    /// output NaNs are canonical.
    pub fn execute(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let out_shape = self.check(inputs)?;
        let mut out = self.compute(inputs, out_shape)?;
        out.canonicalize();
        Ok(out)
    }

    fn compute(&self, x: &[&Tensor], out_shape: Vec<usize>) -> Result<Tensor> {
        let name = self.name();
        let t = |data: Vec<f32>| Tensor::new(out_shape.clone(), data);
        match self {
            Op::MatMul { ta, tb } => {
                let (m, n) = (out_shape[0], out_shape[1]);
                let k = if *ta {
                    x[0].shape()[0]
                } else {
                    x[0].shape()[1]
                };
                let a = MatView::row_major(x[0].data(), x[0].shape()[1], *ta);
                let b = MatView::row_major(x[1].data(), x[1].shape()[1], *tb);
                let mut c = vec![0.0f32; m * n];
                matmul::gemm(m, n, k, a, b, &mut c, true);
                t(c)
            }
            Op::BatchedMatMul { ta, tb } => {
                let (g, m, n) = (out_shape[0], out_shape[1], out_shape[2]);
                let (sa, sb) = (x[0].shape(), x[1].shape());
                let k = if *ta { sa[1] } else { sa[2] };
                let (la, lb) = (sa[1] * sa[2], sb[1] * sb[2]);
                let mut c = vec![0.0f32; g * m * n];
                if m * n == 0 {
                    return t(c);
                }
                let one = |(bi, cb): (usize, &mut [f32]), par: bool| {
                    let a = MatView::row_major(&x[0].data()[bi * la..(bi + 1) * la], sa[2], *ta);
                    let b = MatView::row_major(&x[1].data()[bi * lb..(bi + 1) * lb], sb[2], *tb);
                    matmul::gemm(m, n, k, a, b, cb, par);
                };
                if g >= 2 * rayon::current_num_threads() {
                    c.par_chunks_mut(m * n)
                        .enumerate()
                        .for_each(|p| one(p, false));
                } else {
                    c.chunks_mut(m * n).enumerate().for_each(|p| one(p, true));
                }
                t(c)
            }
            Op::AddBias => {
                let (r, cdim) = rows_cols(x[0]);
                let b = x[1].data();
                let xd = x[0].data();
                t(by_rows(r, cdim, |i, o| {
                    for j in 0..cdim {
                        o[j] = xd[i * cdim + j] + b[j];
                    }
                }))
            }
            Op::Add => Ok(map2(x[0], x[1], |a, b| a + b)),
            Op::Sub => Ok(map2(x[0], x[1], |a, b| a - b)),
            Op::Mul => Ok(map2(x[0], x[1], |a, b| a * b)),
            Op::Scale { s } => {
                let s = *s;
                Ok(map1(x[0], move |v| v * s))
            }
            Op::AddScalar { s } => {
                let s = *s;
                Ok(map1(x[0], move |v| v + s))
            }
            Op::Relu => Ok(map1(x[0], |v| math::max(v, 0.0))),
            Op::ReluBackward => Ok(map2(x[0], x[1], |v, dy| if v > 0.0 { dy } else { 0.0 })),
            Op::Gelu => Ok(map_chunks(x[0], matmul::map_gelu)),
            Op::GeluBackward => {
                let g = map_fn(x[0], math::gelu_grad);
                Ok(map2(&g, x[1], |g, dy| dy * g))
            }
            Op::Tanh => Ok(map_fn(x[0], math::tanh)),
            Op::TanhBackward => Ok(map2(x[0], x[1], |y, dy| dy * (1.0 - y * y))),
            Op::Sigmoid => Ok(map_fn(x[0], math::sigmoid)),
            Op::SigmoidBackward => Ok(map2(x[0], x[1], |y, dy| dy * (y * (1.0 - y)))),
            Op::Silu => Ok(map_fn(x[0], |v| v * math::sigmoid(v))),
            Op::Dropout { p, key } => {
                let ph = crate::Philox::new(*key, x[1].data()[0].to_bits() as u64);
                let scale = 1.0 / (1.0 - *p);
                let o: Vec<f32> = x[0]
                    .data()
                    .par_iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        if ph.uniform_at(i as u64) >= *p {
                            v * scale
                        } else {
                            0.0
                        }
                    })
                    .collect();
                t(o)
            }
            Op::Rope { base, inverse } => {
                let sh = x[0].shape();
                let (tdim, d) = (sh[sh.len() - 2], sh[sh.len() - 1]);
                let h = d / 2;
                let angles = rope_angles(tdim, d, *base, *inverse);
                let mut o = x[0].data().to_vec();
                o.par_chunks_mut(d).enumerate().for_each(|(r, row)| {
                    let p = r % tdim;
                    for j in 0..h {
                        let (sn, cs) = angles[p * h + j];
                        let (a, b) = (row[j], row[j + h]);
                        row[j] = a * cs - b * sn;
                        row[j + h] = a * sn + b * cs;
                    }
                });
                t(o)
            }
            Op::SiluBackward => Ok(map2(x[0], x[1], |v, dy| {
                let s = math::sigmoid(v);
                dy * (s * (1.0 + v * (1.0 - s)))
            })),
            Op::RmsNorm { eps } => {
                let (r, d) = rows_cols(x[0]);
                let (xd, g) = (x[0].data(), x[1].data());
                t(by_rows(r, d, |i, o| {
                    let xr = &xd[i * d..(i + 1) * d];
                    let rstd = rms_rstd(xr, *eps);
                    for j in 0..d {
                        o[j] = (xr[j] * rstd) * g[j];
                    }
                }))
            }
            Op::RmsNormBackwardInput { eps } => {
                let (r, d) = rows_cols(x[0]);
                let (xd, g, dy) = (x[0].data(), x[1].data(), x[2].data());
                let df = d as f32;
                t(by_rows(r, d, |i, o| {
                    let xr = &xd[i * d..(i + 1) * d];
                    let dr = &dy[i * d..(i + 1) * d];
                    let rstd = rms_rstd(xr, *eps);
                    let xh = |j: usize| xr[j] * rstd;
                    let gg = |j: usize| dr[j] * g[j];
                    let b = reduce::sum_map(d, |j| gg(j) * xh(j)) / df;
                    for j in 0..d {
                        o[j] = (gg(j) - xh(j) * b) * rstd;
                    }
                }))
            }
            Op::RmsNormBackwardGamma { eps } => {
                let (r, d) = rows_cols(x[0]);
                let (xd, dy) = (x[0].data(), x[1].data());
                let rstd: Vec<f32> = (0..r)
                    .map(|i| rms_rstd(&xd[i * d..(i + 1) * d], *eps))
                    .collect();
                t(reduce::sum_axis0_map(r, d, |i, j| {
                    dy[i * d + j] * (xd[i * d + j] * rstd[i])
                }))
            }
            Op::Exp => Ok(map_fn(x[0], math::exp)),
            Op::Log => Ok(map_fn(x[0], math::log)),
            Op::Rsqrt => Ok(map_fn(x[0], math::rsqrt)),
            Op::Softmax => {
                let (r, cdim) = rows_cols(x[0]);
                let xd = x[0].data();
                t(by_rows(r, cdim, |i, o| {
                    softmax_row(&xd[i * cdim..(i + 1) * cdim], o)
                }))
            }
            Op::SoftmaxBackward => {
                let (r, cdim) = rows_cols(x[0]);
                let (y, dy) = (x[0].data(), x[1].data());
                t(by_rows(r, cdim, |i, o| {
                    let yr = &y[i * cdim..(i + 1) * cdim];
                    let dr = &dy[i * cdim..(i + 1) * cdim];
                    let d = reduce::sum_map(cdim, |j| yr[j] * dr[j]);
                    for j in 0..cdim {
                        o[j] = yr[j] * (dr[j] - d);
                    }
                }))
            }
            Op::LogSoftmax => {
                let (r, cdim) = rows_cols(x[0]);
                let xd = x[0].data();
                t(by_rows(r, cdim, |i, o| {
                    let xr = &xd[i * cdim..(i + 1) * cdim];
                    let m = reduce::max(xr);
                    let s = reduce::sum_map(cdim, |j| math::exp(xr[j] - m));
                    let l = math::log(s);
                    for j in 0..cdim {
                        o[j] = (xr[j] - m) - l;
                    }
                }))
            }
            Op::LogSoftmaxBackward => {
                let (r, cdim) = rows_cols(x[0]);
                let (y, dy) = (x[0].data(), x[1].data());
                t(by_rows(r, cdim, |i, o| {
                    let yr = &y[i * cdim..(i + 1) * cdim];
                    let dr = &dy[i * cdim..(i + 1) * cdim];
                    let s = reduce::sum(dr);
                    for j in 0..cdim {
                        o[j] = dr[j] - math::exp(yr[j]) * s;
                    }
                }))
            }
            Op::CrossEntropy | Op::CrossEntropyBackward => {
                let (n, cdim) = (x[0].shape()[0], x[0].shape()[1]);
                let labels: Vec<usize> = x[1]
                    .data()
                    .iter()
                    .enumerate()
                    .map(|(i, v)| index(name, *v, i, cdim))
                    .collect::<Result<_>>()?;
                let xd = x[0].data();
                let nf = n as f32;
                if matches!(self, Op::CrossEntropy) {
                    let losses = by_rows(n, 1, |i, o| {
                        o[0] = cross_entropy_row(&xd[i * cdim..(i + 1) * cdim], labels[i]);
                    });
                    t(vec![reduce::sum(&losses) / nf])
                } else {
                    t(by_rows(n, cdim, |i, o| {
                        softmax_row(&xd[i * cdim..(i + 1) * cdim], o);
                        o[labels[i]] -= 1.0;
                        for v in o.iter_mut() {
                            *v /= nf;
                        }
                    }))
                }
            }
            Op::LayerNorm { eps } => {
                let (r, d) = rows_cols(x[0]);
                let (xd, g, b) = (x[0].data(), x[1].data(), x[2].data());
                t(by_rows(r, d, |i, o| {
                    let xr = &xd[i * d..(i + 1) * d];
                    let (mean, rstd) = ln_stats(xr, *eps);
                    for j in 0..d {
                        o[j] = ((xr[j] - mean) * rstd) * g[j] + b[j];
                    }
                }))
            }
            Op::LayerNormBackwardInput { eps } => {
                let (r, d) = rows_cols(x[0]);
                let (xd, g, dy) = (x[0].data(), x[1].data(), x[2].data());
                let df = d as f32;
                t(by_rows(r, d, |i, o| {
                    let xr = &xd[i * d..(i + 1) * d];
                    let dr = &dy[i * d..(i + 1) * d];
                    let (mean, rstd) = ln_stats(xr, *eps);
                    let xh = |j: usize| (xr[j] - mean) * rstd;
                    let gg = |j: usize| dr[j] * g[j];
                    let a = reduce::sum_map(d, gg) / df;
                    let b = reduce::sum_map(d, |j| gg(j) * xh(j)) / df;
                    for j in 0..d {
                        o[j] = ((gg(j) - a) - xh(j) * b) * rstd;
                    }
                }))
            }
            Op::LayerNormBackwardGamma { eps } => {
                let (r, d) = rows_cols(x[0]);
                let (xd, dy) = (x[0].data(), x[1].data());
                let stats: Vec<(f32, f32)> = (0..r)
                    .map(|i| ln_stats(&xd[i * d..(i + 1) * d], *eps))
                    .collect();
                t(reduce::sum_axis0_map(r, d, |i, j| {
                    let (mean, rstd) = stats[i];
                    dy[i * d + j] * ((xd[i * d + j] - mean) * rstd)
                }))
            }
            Op::Embedding => {
                let (v, d) = (x[0].shape()[0], x[0].shape()[1]);
                let ids: Vec<usize> = x[1]
                    .data()
                    .iter()
                    .enumerate()
                    .map(|(i, id)| index(name, *id, i, v))
                    .collect::<Result<_>>()?;
                let tab = x[0].data();
                t(by_rows(ids.len(), d, |i, o| {
                    o.copy_from_slice(&tab[ids[i] * d..(ids[i] + 1) * d])
                }))
            }
            Op::EmbeddingBackward { vocab } => {
                let d = *out_shape.get(1).unwrap_or(&0);
                let ids: Vec<usize> = x[0]
                    .data()
                    .iter()
                    .enumerate()
                    .map(|(i, id)| index(name, *id, i, *vocab))
                    .collect::<Result<_>>()?;
                let dy = x[1].data();
                let mut o = vec![0.0f32; vocab * d];
                for (i, &id) in ids.iter().enumerate() {
                    let row = &mut o[id * d..(id + 1) * d];
                    for j in 0..d {
                        row[j] += dy[i * d + j];
                    }
                }
                t(o)
            }
            Op::CausalMask { fill } => {
                let tdim = x[0].last_dim();
                let fv = match fill {
                    MaskFill::NegInf => f32::NEG_INFINITY,
                    MaskFill::Zero => 0.0,
                };
                let mut o = x[0].data().to_vec();
                for (r, row) in o.chunks_mut(tdim.max(1)).enumerate() {
                    let i = r % tdim.max(1);
                    for v in row.iter_mut().skip(i + 1) {
                        *v = fv;
                    }
                }
                t(o)
            }
            Op::SumAxis0 | Op::MeanAxis0 => {
                let (r, cdim) = rows_cols(x[0]);
                let mut s = reduce::sum_axis0(x[0].data(), r, cdim);
                if matches!(self, Op::MeanAxis0) {
                    let rf = r as f32;
                    s.iter_mut().for_each(|v| *v /= rf);
                }
                t(s)
            }
            Op::SumLast | Op::MeanLast => {
                let (r, cdim) = rows_cols(x[0]);
                let xd = x[0].data();
                let cf = cdim as f32;
                let mean = matches!(self, Op::MeanLast);
                let r = if cdim == 0 {
                    numel(&out_shape).unwrap_or(0)
                } else {
                    r
                };
                t(by_rows(r, 1, |i, o| {
                    let s = reduce::sum(&xd[i * cdim..(i + 1) * cdim]);
                    o[0] = if mean { s / cf } else { s };
                }))
            }
            Op::Transpose => {
                let (r, cdim) = (x[0].shape()[0], x[0].shape()[1]);
                let xd = x[0].data();
                t(by_rows(cdim, r, |j, o| {
                    for i in 0..r {
                        o[i] = xd[i * cdim + j];
                    }
                }))
            }
            Op::Reshape { .. } => t(x[0].data().to_vec()),
            Op::Permute { perm } => {
                let s = x[0].shape();
                let r = s.len();
                let mut in_strides = vec![1usize; r];
                for d in (0..r.saturating_sub(1)).rev() {
                    in_strides[d] = in_strides[d + 1] * s[d + 1];
                }
                let n = x[0].len();
                let xd = x[0].data();
                let mut o = Vec::with_capacity(n);
                if n == 0 || r == 0 {
                    return t(xd.to_vec());
                }
                // Copy runs of the last axis when it stays last.
                let (inner, outer_dims) = if perm[r - 1] == r - 1 {
                    (s[r - 1], r - 1)
                } else {
                    (1, r)
                };
                let mut idx = vec![0usize; outer_dims];
                for _ in 0..n / inner {
                    let off: usize = (0..outer_dims).map(|d| idx[d] * in_strides[perm[d]]).sum();
                    if inner == 1 {
                        o.push(xd[off]);
                    } else {
                        o.extend_from_slice(&xd[off..off + inner]);
                    }
                    for d in (0..outer_dims).rev() {
                        idx[d] += 1;
                        if idx[d] < out_shape[d] {
                            break;
                        }
                        idx[d] = 0;
                    }
                }
                t(o)
            }
            Op::SgdMomentumBuf { momentum } => {
                let mu = *momentum;
                Ok(map2(x[0], x[1], move |b, g| mu * b + g))
            }
            Op::SgdUpdate { lr } => {
                let lr = *lr;
                Ok(map2(x[0], x[1], move |p, b| p - lr * b))
            }
            Op::AdamM { beta1 } => {
                let (b1, c1) = (*beta1, 1.0 - *beta1);
                Ok(map2(x[0], x[1], move |m, g| b1 * m + c1 * g))
            }
            Op::AdamV { beta2 } => {
                let (b2, c2) = (*beta2, 1.0 - *beta2);
                Ok(map2(x[0], x[1], move |v, g| b2 * v + c2 * (g * g)))
            }
            Op::AdamWUpdate {
                lr,
                eps,
                weight_decay,
            } => t(adamw(x, *lr, *eps, *weight_decay)),
            Op::AdamWUpdateLr { eps, weight_decay } => {
                t(adamw(x, x[5].data()[0], *eps, *weight_decay))
            }
            Op::Im2Col {
                kh,
                kw,
                stride,
                pad,
            } => {
                let sh = x[0].shape();
                let (c, h, w) = (sh[1], sh[2], sh[3]);
                // Checked by `check`: the window fits.
                let (oh, ow) = window_outs(h, w, [*kh, *kw, *stride, *pad]).unwrap_or((0, 0));
                let (cols, xd) = (c * kh * kw, x[0].data());
                let (kh, kw, st, pad) = (*kh, *kw, *stride as isize, *pad as isize);
                t(by_rows(out_shape[0], cols, |r, o| {
                    let (n, p) = (r / (oh * ow), r % (oh * ow));
                    let (y0, x0) = ((p / ow) as isize * st - pad, (p % ow) as isize * st - pad);
                    for ci in 0..c {
                        for i in 0..kh {
                            for j in 0..kw {
                                let (y, xx) = (y0 + i as isize, x0 + j as isize);
                                let inside =
                                    y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < w;
                                o[(ci * kh + i) * kw + j] = if inside {
                                    xd[((n * c + ci) * h + y as usize) * w + xx as usize]
                                } else {
                                    0.0
                                };
                            }
                        }
                    }
                }))
            }
            Op::Col2Im {
                channels,
                height,
                width,
                kh,
                kw,
                stride,
                pad,
            } => {
                let (c, h, w) = (*channels, *height, *width);
                // Checked by `check`: the window fits.
                let (oh, ow) = window_outs(h, w, [*kh, *kw, *stride, *pad]).unwrap_or((0, 0));
                let (kh, kw, st, pad) = (*kh, *kw, *stride, *pad);
                let (cd, cols) = (x[0].data(), c * kh * kw);
                // One row per (image, channel, pixel row): each pixel sums the patch
                // entries that copied it, (oh, ow) ascending.
                t(by_rows(out_shape[0] * c * h, w, |r, o| {
                    let (n, ci, y) = (r / (c * h), (r / h) % c, r % h);
                    for (xx, v) in o.iter_mut().enumerate() {
                        let mut acc = 0.0f32;
                        for a in 0..oh {
                            let Some(i) = (y + pad).checked_sub(a * st).filter(|&i| i < kh) else {
                                continue;
                            };
                            for b in 0..ow {
                                let Some(j) = (xx + pad).checked_sub(b * st).filter(|&j| j < kw)
                                else {
                                    continue;
                                };
                                acc += cd[((n * oh + a) * ow + b) * cols + (ci * kh + i) * kw + j];
                            }
                        }
                        *v = acc;
                    }
                }))
            }
            Op::MulScalar => {
                let s = x[1].data()[0];
                Ok(map1(x[0], move |v| v * s))
            }
            Op::SgdUpdateLr => {
                let lr = x[2].data()[0];
                Ok(map2(x[0], x[1], move |p, b| p - lr * b))
            }
            Op::MaxLast => {
                let (r, k) = rows_cols(x[0]);
                let xd = x[0].data();
                t(by_rows(r, 1, |i, o| {
                    o[0] = reduce::max(&xd[i * k..(i + 1) * k])
                }))
            }
            Op::MaxLastBackward => {
                let (r, k) = rows_cols(x[0]);
                let (xd, dy) = (x[0].data(), x[1].data());
                t(by_rows(r, k, |i, o| {
                    let row = &xd[i * k..(i + 1) * k];
                    let m = reduce::max(row);
                    let at = if m.is_nan() {
                        row.iter().position(|v| v.is_nan())
                    } else {
                        row.iter().position(|&v| v == m)
                    };
                    o.fill(0.0);
                    if let Some(a) = at {
                        o[a] = dy[i];
                    }
                }))
            }
        }
    }
}
