//! R4 deterministic elementary functions.
//!
//! Every function here uses only R1 primitives (`+ - * /`, `sqrt`, `f32::mul_add`),
//! integer bit manipulation, and comparisons, with constants written as exact
//! `f32::from_bits` patterns. Rust never contracts `a*b+c` into an fma and has no
//! fast-math, so these bodies produce the same bits on every x86-64 level (and on any
//! IEEE-754 machine with a correctly rounded `fmaf`). The CUDA backend ports them line
//! by line using `__fmaf_rn`, `__fadd_rn`, `__fmul_rn`, `__fdiv_rn`, `__fsqrt_rn`.
//!
//! Accuracy against an f64 reference over all 2^32 inputs is recorded in `SPEC.md`.
//! NaN inputs return the canonical quiet NaN.

use crate::tensor::CANONICAL_NAN_BITS;

#[inline(always)]
fn c(bits: u32) -> f32 {
    f32::from_bits(bits)
}

#[inline(always)]
fn nan() -> f32 {
    f32::from_bits(CANONICAL_NAN_BITS)
}

#[inline(always)]
fn fma(a: f32, b: f32, c: f32) -> f32 {
    a.mul_add(b, c)
}

/// R1 `max`: NaN if either is NaN, else the larger; `max(-0, +0) = +0`.
#[inline(always)]
pub fn max(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        nan()
    } else if a > b {
        a
    } else if b > a {
        b
    } else {
        // equal: only ±0 can differ in bits; AND of the sign bits gives +0 if any is +0.
        f32::from_bits(a.to_bits() & b.to_bits())
    }
}

/// R1 `min`: NaN if either is NaN, else the smaller; `min(-0, +0) = -0`.
#[inline(always)]
pub fn min(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        nan()
    } else if a < b {
        a
    } else if b < a {
        b
    } else {
        f32::from_bits(a.to_bits() | b.to_bits())
    }
}

const LOG2E: u32 = 0x3fb8_aa3b; // 1/ln 2
const LN2_HI: u32 = 0x3f31_7218; // ln 2 rounded to f32
const LN2_LO: u32 = 0xb102_e308; // ln 2 - LN2_HI rounded to f32
const SHIFT: u32 = 0x4b40_0000; // 1.5 * 2^23: adding it rounds to an integer (ties to even)
const EXP_OVERFLOW: u32 = 0x42b1_7218; // smallest x with exp(x) rounding to +inf
const EXP_C2: u32 = 0x3f00_0000; // 1/2!
const EXP_C3: u32 = 0x3e2a_aaab; // 1/3!
const EXP_C4: u32 = 0x3d2a_aaab; // 1/4!
const EXP_C5: u32 = 0x3c08_8889; // 1/5!
const EXP_C6: u32 = 0x3ab6_0b61; // 1/6!
const EXP_C7: u32 = 0x3950_0d01; // 1/7!

/// `y * 2^k` for `|y| < 128` and `k` in `-190..=128`, with a single rounding.
#[inline(always)]
fn scale_pow2(y: f32, k: i32) -> f32 {
    if (-126..=127).contains(&k) {
        y * f32::from_bits(((k + 127) as u32) << 23)
    } else if k > 127 {
        (y * f32::from_bits(254 << 23)) * f32::from_bits(((k - 127 + 127) as u32) << 23)
    } else {
        // y * 2^(k+64) is exact and normal; the final * 2^-64 rounds once.
        (y * f32::from_bits(((k + 64 + 127) as u32) << 23)) * f32::from_bits((127 - 64) << 23)
    }
}

/// exp(x). Range reduction `x = k ln2 + r`, `|r| <= ln2/2`, with `k` found by the
/// 1.5*2^23 shifter, `r_hi = fma(-k, LN2_HI, x)` (exact), `r_lo = -k * LN2_LO`;
/// degree-7 Taylor polynomial; `exp(r) = hi + (lo + fma(r*r, q(r), r_lo))` with
/// `hi + lo = 1 + r_hi` exactly (Fast2Sum); scaling by `2^k` with one rounding.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    if x.is_nan() {
        return nan();
    }
    if x >= c(EXP_OVERFLOW) {
        return f32::INFINITY;
    }
    if x < -104.0 {
        return 0.0;
    }
    let (y, k) = exp_core(x);
    scale_pow2(y, k)
}

/// `exp(x) = y * 2^k` with `y` in about `[0.7, 1.42]`, for `x` in `[-120, 88.73)`.
#[inline(always)]
fn exp_core(x: f32) -> (f32, i32) {
    let t = fma(x, c(LOG2E), c(SHIFT));
    let kf = t - c(SHIFT);
    let k = t.to_bits() as i32 - c(SHIFT).to_bits() as i32;
    let r_hi = fma(-kf, c(LN2_HI), x); // exact
    let r_lo = -kf * c(LN2_LO);
    let r = r_hi + r_lo;
    let q = fma(
        fma(
            fma(
                fma(fma(c(EXP_C7), r, c(EXP_C6)), r, c(EXP_C5)),
                r,
                c(EXP_C4),
            ),
            r,
            c(EXP_C3),
        ),
        r,
        c(EXP_C2),
    );
    // exp(r) = 1 + r_hi + (r_lo + r^2 q); 1 + r_hi is split exactly (Fast2Sum) so that
    // only the final addition rounds at the result's precision.
    let t = fma(r * r, q, r_lo);
    let hi = 1.0 + r_hi;
    let lo = (1.0 - hi) + r_hi;
    (hi + (lo + t), k)
}

const TWO_OVER_PI: u32 = 0x3f22_f983; // 2/pi
const PIO2_1: u32 = 0x3fc9_0fdb; // pi/2 rounded to f32
const PIO2_2: u32 = 0xb33b_bd2e; // pi/2 - PIO2_1 rounded
const PIO2_3: u32 = 0xa6f7_2ced; // pi/2 - PIO2_1 - PIO2_2 rounded
const SIN_S1: u32 = 0xbe2a_aaa3; // cephes sinf minimax on [-pi/4, pi/4]
const SIN_S2: u32 = 0x3c08_839e;
const SIN_S3: u32 = 0xb94c_a1f9;
const COS_C1: u32 = 0x3d2a_aaa5; // cephes cosf
const COS_C2: u32 = 0xbab6_061a;
const COS_C3: u32 = 0x37cc_f5ce;

/// `(sin x, cos x)`. `k = rint(x * 2/pi)` by the 1.5*2^23 shifter, `r = x - k pi/2`
/// by three fma steps (Cody-Waite with pi/2 split in three f32 parts), then cephes'
/// single-precision polynomials on `|r| <= pi/4` and the quadrant `k mod 4`. Within
/// 2.5 ulp of sine and cosine for `|x| < 2^16` (RoPE's angles: a position times a
/// frequency at most 1); beyond that, still one fixed sequence of R1 operations.
/// NaN and infinities give the canonical NaN; the sign of a zero is not kept.
#[inline(always)]
pub fn sin_cos(x: f32) -> (f32, f32) {
    if !x.is_finite() {
        return (nan(), nan());
    }
    let t = fma(x, c(TWO_OVER_PI), c(SHIFT));
    let kf = t - c(SHIFT);
    let q = (t.to_bits() as i32).wrapping_sub(c(SHIFT).to_bits() as i32) & 3;
    let r = fma(-kf, c(PIO2_1), x);
    let r = fma(-kf, c(PIO2_2), r);
    let r = fma(-kf, c(PIO2_3), r);
    let z = r * r;
    let ps = fma(fma(c(SIN_S3), z, c(SIN_S2)), z, c(SIN_S1));
    let s = fma(r * z, ps, r);
    let pc = fma(fma(c(COS_C3), z, c(COS_C2)), z, c(COS_C1));
    let co = fma(z * z, pc, fma(-0.5, z, 1.0));
    match q {
        0 => (s, co),
        1 => (co, -s),
        2 => (-s, -co),
        _ => (-co, s),
    }
}

const SQRT2: u32 = 0x3fb5_04f3;
const LG1: u32 = 0x3f2a_aaab; // 2/3
const LG2: u32 = 0x3ecc_cccd; // 2/5
const LG3: u32 = 0x3e92_4925; // 2/7
const LG4: u32 = 0x3e63_8e39; // 2/9
const LG5: u32 = 0x3e3a_2e8c; // 2/11

/// Natural log. `x = 2^e m`, `m` in `[sqrt(1/2), sqrt(2))`, `f = m - 1` (exact),
/// `s = f/(2+f)`, `log(1+f) = f - (f^2/2 - s (f^2/2 + R(s^2)))` (fdlibm's form, with
/// Taylor coefficients 2/(2i+1)), result `fma(e, LN2_HI, fma(e, LN2_LO, log1p))`.
#[inline(always)]
pub fn log(x: f32) -> f32 {
    // Branch-free main path (selects only) so that loops over `log` vectorize; the
    // special cases are patched in at the end.
    let sub = x.to_bits() < 0x0080_0000; // +0 and positive subnormals
    let xs = if sub { x * c(0x4b00_0000) } else { x }; // exact scaling by 2^23
    let bits = xs.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 127 - if sub { 23 } else { 0 };
    let m0 = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let big = m0 > c(SQRT2);
    let m = if big { m0 * 0.5 } else { m0 };
    e += big as i32;
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let r = z * fma(
        fma(fma(fma(c(LG5), z, c(LG4)), z, c(LG3)), z, c(LG2)),
        z,
        c(LG1),
    );
    let hfsq = 0.5 * f * f;
    let log1p = f - (hfsq - s * (hfsq + r));
    let ef = e as f32;
    let y = fma(ef, c(LN2_HI), fma(ef, c(LN2_LO), log1p));
    if x.is_nan() || x < 0.0 {
        nan()
    } else if x == 0.0 {
        f32::NEG_INFINITY
    } else if x == f32::INFINITY {
        f32::INFINITY
    } else {
        y
    }
}

const TANH_POLY_LIMIT: u32 = 0x3f20_0000; // 0.625
const TANH_C: [u32; 10] = [
    0xbeaa_aaab, // -1/3
    0x3e08_8889, // 2/15
    0xbd5d_0dd1, // -17/315
    0x3cb3_27a4, // 62/2835
    0xbc11_371b,
    0x3b6b_69e8,
    0xbabe_d1b2,
    0x3a1a_ac12,
    0xb97a_bebc,
    0x38cb_3f0c,
];

/// tanh(x). `|x| < 0.625`: odd Taylor polynomial `x + x^3 P(x^2)` (P of degree 9 in
/// x^2, Horner with fma). Otherwise `sign(x) (1 - 2/(exp(2|x|) + 1))` evaluated with
/// error-free transforms (see the body). `|x| < 2^-12` returns `x`.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    // Both paths are evaluated and selected (no branches), so loops vectorize; each
    // region's value is computed exactly as described above.
    let a = f32::from_bits(x.to_bits() & 0x7fff_ffff);
    // polynomial path
    let z = x * x;
    let mut p = c(TANH_C[9]);
    for i in (0..9).rev() {
        p = fma(p, z, c(TANH_C[i]));
    }
    let poly = fma(x * z, p, x);
    // exp path on |x| clamped to the range where it is used (avoids inf - inf)
    let ac = if a < 9.5 { a } else { 9.5 };
    let e = exp(ac + ac);
    let d_hi = e + 1.0;
    let d_lo = (e - d_hi) + 1.0;
    let q = 2.0 / d_hi;
    let r = fma(-q, d_hi, 2.0);
    let q_lo = (r - q * d_lo) / d_hi;
    let s = 1.0 - q;
    let s_err = (1.0 - s) - q;
    let t = s + (s_err - q_lo);
    let big = if a >= 9.5 { 1.0 } else { t };
    let signed = if x < 0.0 { -big } else { big };
    if x.is_nan() {
        nan()
    } else if a < c(0x3980_0000) {
        // |x| < 2^-12: tanh(x) = x (1 - x^2/3 + ...) rounds to x; keeps the sign of -0.
        x
    } else if a < c(TANH_POLY_LIMIT) {
        poly
    } else {
        signed
    }
}

/// `n / (d_hi + d_lo)` with the divisor given as an unevaluated sum (|d_lo| tiny):
/// `q = n / d_hi`, exact remainder `r = fma(-q, d_hi, n)`, `q + (r - q*d_lo) / d_hi`.
#[inline(always)]
fn div_dd(n: f32, d_hi: f32, d_lo: f32) -> f32 {
    let q = n / d_hi;
    let r = fma(-q, d_hi, n);
    q + (r - q * d_lo) / d_hi
}

/// Logistic sigmoid. With `e = exp(-|x|)` (so `e <= 1`) and `1 + e = d_hi + d_lo`
/// exactly (Fast2Sum): `x >= 0`: `div_dd(1, d_hi, d_lo)`; `x < 0`: `div_dd(e, d_hi, d_lo)`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    if x.is_nan() {
        return nan();
    }
    let a = f32::from_bits(x.to_bits() & 0x7fff_ffff);
    let e = exp(-a);
    let d_hi = 1.0 + e;
    let d_lo = (1.0 - d_hi) + e;
    if x >= 0.0 {
        div_dd(1.0, d_hi, d_lo)
    } else {
        div_dd(e, d_hi, d_lo)
    }
}

const GELU_K1: u32 = 0x3d37_2713; // 0.044715
const GELU_K2: u32 = 0x3fcc_422a; // 2 sqrt(2/pi)

const GELU_K1_LO: u32 = 0x30d4_801f; // 0.044715 - K1
const GELU_K2_LO: u32 = 0xb342_bc9b; // 2 sqrt(2/pi) - K2

/// `a + b = s + err` exactly (Knuth's TwoSum).
#[inline(always)]
fn two_sum(a: f32, b: f32) -> (f32, f32) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

/// tanh-GELU `0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))` = `x * sigmoid(z)` with
/// `z = K2 x (1 + K1 x^2)`, `K2 = 2 sqrt(2/pi)`. `z` is ill-conditioned to evaluate in
/// f32 for large negative x, so it is carried as a double-f32 `(z_hi, z_lo)` with
/// double-f32 constants, and `exp(z_hi + z_lo)` is taken as `fma(e, z_lo, e)`,
/// `e = exp(z_hi)`. `|x| > 64` returns `x` (x > 0) or `-0`; for `z < -80` the result
/// is `x * e` with `e = y 2^k` from the exp core and one final scaling (see the body).
///
/// Steps: `x2 = x*x`, `x2_lo = fma(x, x, -x2)`; `t = K1*x2`,
/// `t_lo = fma(K1, x2, -t) + (K1_LO*x2 + K1*x2_lo)`; `(a, a_lo) = two_sum(1, t)`,
/// `a_lo += t_lo`; `w = x*a`, `w_lo = fma(x, a, -w) + x*a_lo`; `z = K2*w`,
/// `z_lo = fma(K2, w, -z) + (K2*w_lo + K2_LO*w)`. Then with `E = exp(-|z|)` corrected
/// to `fma(E, -|z|_lo, E)` and `1 + E = d_hi + d_lo` (Fast2Sum): `s = div_dd(1)` for
/// `z >= 0`, `div_dd(E)` otherwise; result `x * s`.
///
/// Every path is evaluated and the result selected (no branches), so loops over it
/// vectorise; each path computes exactly what is described above.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    let (k1, k1l, k2, k2l) = (c(GELU_K1), c(GELU_K1_LO), c(GELU_K2), c(GELU_K2_LO));
    let x2 = x * x;
    let x2_lo = fma(x, x, -x2);
    let t = k1 * x2;
    let t_lo = fma(k1, x2, -t) + (k1l * x2 + k1 * x2_lo);
    let (a, a_lo0) = two_sum(1.0, t);
    let a_lo = a_lo0 + t_lo;
    let w = x * a;
    let w_lo = fma(x, a, -w) + x * a_lo;
    let z = k2 * w;
    let z_lo = fma(k2, w, -z) + (k2 * w_lo + k2l * w);
    // E = exp(-|z|) with the low part applied: exp(-(z + z_lo)) or exp(z + z_lo).
    let pos = z >= 0.0;
    let (zn, zn_lo) = if pos { (-z, -z_lo) } else { (z, z_lo) };
    // Main path (zn >= -80).
    let e0 = exp(zn);
    let e = fma(e0, zn_lo, e0);
    let d_hi = 1.0 + e;
    let d_lo = (1.0 - d_hi) + e;
    let main = x * div_dd(if pos { 1.0 } else { e }, d_hi, d_lo);
    // z < -80 (so x < 0): e < 2^-115, gelu = x * e to far below an ulp; keep e as
    // y * 2^k and round once at the end (the result may be subnormal). Used for
    // -120 <= zn < -80 only; the clamp keeps exp_core in its range elsewhere.
    let zt = if zn < -120.0 { -120.0 } else { zn };
    let (y, k) = exp_core(if zt < -80.0 { zt } else { -80.0 });
    let tiny = scale_pow2(x * fma(y, zn_lo, y), k);
    let r = if zn < -80.0 {
        if pos {
            // sigmoid(z) = 1 - E with E < 2^-115: rounds to 1.
            x
        } else if zn < -120.0 {
            -0.0
        } else {
            tiny
        }
    } else {
        main
    };
    let r = if x < -64.0 { -0.0 } else { r };
    let r = if x > 64.0 { x } else { r };
    if x.is_nan() {
        nan()
    } else {
        r
    }
}

/// d gelu / dx = `s + x s (1-s) K2 (1 + 3 K1 x^2)` with `s = sigmoid(z)` as in [`gelu`];
/// evaluated as `fma(x * (s * (1 - s)), K2 * fma(3*K1, x*x, 1), s)` where `3*K1` is the f32 product.
#[inline(always)]
pub fn gelu_grad(x: f32) -> f32 {
    if x.is_nan() {
        return nan();
    }
    let x2 = x * x;
    let z = c(GELU_K2) * (x * fma(c(GELU_K1), x2, 1.0));
    let s = sigmoid(z);
    let k3 = 3.0 * c(GELU_K1);
    let dz = c(GELU_K2) * fma(k3, x2, 1.0);
    let r = fma(x * (s * (1.0 - s)), dz, s);
    if r.is_nan() {
        // x = ±inf: 0 * inf; the limit is 1 for +inf and 0 for -inf.
        return if x > 0.0 { 1.0 } else { 0.0 };
    }
    r
}

/// `1 / sqrt(x)`. For finite `x > 0`: `s = sqrt(x)`, `sqrt(x) = s + s_lo` with
/// `s_lo = fma(-s, s, x) / (s + s)`, result `div_dd(1, s, s_lo)`. Otherwise (0, inf,
/// negative, NaN) `1 / sqrt(x)` with IEEE semantics. `x < 2^-100` is scaled by 2^24
/// first and the result by 2^12 (both exact). Faithful, not correctly rounded: 132
/// inputs misround (worst 0.50013 ulp, at `0x00000211`), where `fma(-s, s, x)` is
/// subnormal; see `SPEC.md` §4.
#[inline(always)]
pub fn rsqrt(x: f32) -> f32 {
    if x.is_nan() || x <= 0.0 || x == f32::INFINITY {
        let r = 1.0 / x.sqrt();
        return if r.is_nan() { nan() } else { r };
    }
    if x < c(0x0d80_0000) {
        // tiny (below 2^-100, incl. subnormal): rsqrt(x) = rsqrt(x * 2^24) * 2^12, both exact
        return rsqrt_normal(x * c(0x4b80_0000)) * c(0x4580_0000);
    }
    rsqrt_normal(x)
}

#[inline(always)]
fn rsqrt_normal(x: f32) -> f32 {
    let s = x.sqrt();
    let s_lo = fma(-s, s, x) / (s + s);
    div_dd(1.0, s, s_lo)
}

/// The elementary functions by name, for tests, golden vectors and benches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    /// [`exp`]
    Exp,
    /// [`log`]
    Log,
    /// [`tanh`]
    Tanh,
    /// [`sigmoid`]
    Sigmoid,
    /// [`gelu`]
    Gelu,
    /// [`rsqrt`]
    Rsqrt,
}

impl Func {
    /// All functions in a fixed order.
    pub const ALL: [Func; 6] = [
        Func::Exp,
        Func::Log,
        Func::Tanh,
        Func::Sigmoid,
        Func::Gelu,
        Func::Rsqrt,
    ];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Func::Exp => "exp",
            Func::Log => "log",
            Func::Tanh => "tanh",
            Func::Sigmoid => "sigmoid",
            Func::Gelu => "gelu",
            Func::Rsqrt => "rsqrt",
        }
    }

    /// Evaluate the RepOps f32 function.
    #[inline(always)]
    pub fn eval(self, x: f32) -> f32 {
        match self {
            Func::Exp => exp(x),
            Func::Log => log(x),
            Func::Tanh => tanh(x),
            Func::Sigmoid => sigmoid(x),
            Func::Gelu => gelu(x),
            Func::Rsqrt => rsqrt(x),
        }
    }

    /// The float64 reference (std f64 functions) of the same mathematical function.
    pub fn reference(self, x: f64) -> f64 {
        match self {
            Func::Exp => x.exp(),
            Func::Log => x.ln(),
            Func::Tanh => x.tanh(),
            Func::Sigmoid => {
                if x >= 0.0 {
                    1.0 / (1.0 + (-x).exp())
                } else {
                    let e = x.exp();
                    e / (1.0 + e)
                }
            }
            Func::Gelu => {
                if x == f64::NEG_INFINITY {
                    return -0.0; // the limit; x * s would be -inf * 0
                }
                let z = 2.0 * (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
                let s = if z >= 0.0 {
                    1.0 / (1.0 + (-z).exp())
                } else {
                    let e = z.exp();
                    e / (1.0 + e)
                };
                x * s
            }
            Func::Rsqrt => 1.0 / x.sqrt(),
        }
    }
}

/// Error of `got` against the f64 reference `want`, in units of the f32 ulp at `want`
/// (subnormal spacing below 2^-126). Returns 0 when both are the same non-finite
/// value or both NaN, and `f64::INFINITY` for a mismatch in kind.
pub fn ulp_error(got: f32, want: f64) -> f64 {
    if want.is_nan() {
        return if got.is_nan() { 0.0 } else { f64::INFINITY };
    }
    if got.is_nan() {
        return f64::INFINITY;
    }
    let g = got as f64;
    if want.is_infinite() || g.is_infinite() {
        // a reference beyond f32 range rounds to inf when >= MAX + ulp/2
        let w = want.clamp(-(f32::MAX as f64) * 2.0, f32::MAX as f64 * 2.0);
        if g == w || (g.is_infinite() && w.abs() >= f32::MAX as f64 + 2f64.powi(103)) {
            return 0.0;
        }
        if g.is_infinite() {
            return (w.abs() - f32::MAX as f64) / 2f64.powi(104) + 1.0;
        }
        return (f32::MAX as f64 - g.abs()) / 2f64.powi(104) + 1.0;
    }
    let a = want.abs();
    let e = if a < 2f64.powi(-126) {
        -149
    } else {
        a.log2().floor() as i32 - 23
    };
    (g - want).abs() / 2f64.powi(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_follows_r1_for_nan_and_signed_zero() {
        assert_eq!(max(-0.0, 0.0).to_bits(), 0);
        assert_eq!(max(0.0, -0.0).to_bits(), 0);
        assert_eq!(min(0.0, -0.0).to_bits(), 0x8000_0000);
        assert_eq!(max(f32::NAN, 1.0).to_bits(), CANONICAL_NAN_BITS);
        assert_eq!(max(1.0, f32::NAN).to_bits(), CANONICAL_NAN_BITS);
    }

    #[test]
    fn special_values_have_the_ieee_results() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(log(1.0), 0.0);
        assert_eq!(log(0.0), f32::NEG_INFINITY);
        assert_eq!(log(-1.0).to_bits(), CANONICAL_NAN_BITS);
        assert_eq!(tanh(f32::INFINITY), 1.0);
        assert_eq!(tanh(f32::NEG_INFINITY), -1.0);
        assert_eq!(tanh(-0.0).to_bits(), 0x8000_0000);
        assert_eq!(sigmoid(0.0), 0.5);
        assert_eq!(sigmoid(f32::NEG_INFINITY), 0.0);
        assert_eq!(sigmoid(f32::INFINITY), 1.0);
        assert_eq!(gelu(f32::INFINITY), f32::INFINITY);
        assert_eq!(rsqrt(4.0), 0.5);
        assert_eq!(rsqrt(0.0), f32::INFINITY);
        assert_eq!(sin_cos(0.0), (0.0, 1.0));
        for v in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let (s, c) = sin_cos(v);
            assert_eq!(
                (s.to_bits(), c.to_bits()),
                (CANONICAL_NAN_BITS, CANONICAL_NAN_BITS)
            );
        }
    }

    /// Every 97th f32 in `[-2^16, 2^16]`: within 2.5 ulp of f64's sine and cosine
    /// (measured: 2.05, near 51137), and within 2^-33 absolute where the result is
    /// near 0 (the reduced argument's rounding).
    #[test]
    fn sin_cos_are_within_two_ulp_on_ropes_angles() {
        let (mut worst, mut at) = (0.0f64, 0.0f32);
        let hi = 65536.0f32.to_bits();
        for bits in (0..=hi).step_by(97) {
            for x in [f32::from_bits(bits), -f32::from_bits(bits)] {
                let (s, c) = sin_cos(x);
                for (got, want) in [(s, (x as f64).sin()), (c, (x as f64).cos())] {
                    let err = if want.abs() < 1e-3 {
                        (got as f64 - want).abs() / 2f64.powi(-34)
                    } else {
                        ulp_error(got, want)
                    };
                    if err > worst {
                        (worst, at) = (err, x);
                    }
                }
            }
        }
        assert!(worst <= 2.5, "{worst} ulp at {at}");
    }
}
