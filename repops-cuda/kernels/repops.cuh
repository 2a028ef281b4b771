// RepOps device library: R1 primitives, R1 max/min, R4 elementary functions and the
// R3 warp reductions. Every function is a line-by-line port of repops/src/math.rs and
// repops/src/reduce.rs; read them side by side.
//
// Rules (shared/spec/repops.md R1): every float operation is written as an explicit
// correctly rounded intrinsic (FADD, FSUB, FMUL, FDIV, FSQRT, FMA below), so that the
// compiler has nothing to contract or approximate even if the compile flags were lost.
// FMA stands exactly where the CPU code calls `mul_add`. No CUDA math library function
// (expf, __expf, tanhf, rsqrtf, fmaxf, ...) is used anywhere.
//
// The PTX audit (src/ptx.rs) compiles every kernel a second time with
// REPOPS_PTX_AUDIT defined: FMA then becomes a call of an opaque external function, so
// any `fma` instruction left in that PTX was introduced by the compiler.

typedef unsigned int u32;
typedef unsigned long long u64;

#define RP_D static __device__ __forceinline__

#ifdef REPOPS_PTX_AUDIT
extern "C" __device__ float repops_fma_marker(float a, float b, float c);
#define FMA(a, b, c) repops_fma_marker((a), (b), (c))
#else
#define FMA(a, b, c) __fmaf_rn((a), (b), (c))
#endif
#define FADD(a, b) __fadd_rn((a), (b))
#define FSUB(a, b) __fsub_rn((a), (b))
#define FMUL(a, b) __fmul_rn((a), (b))
#define FDIV(a, b) __fdiv_rn((a), (b))
#define FSQRT(a) __fsqrt_rn((a))

#define FULL_MASK 0xffffffffu

RP_D float rp_c(u32 bits) { return __uint_as_float(bits); }
RP_D float rp_nan() { return __uint_as_float(0x7fc00000u); }
// R1 on the device: a NaN becomes the canonical 0x7fc00000 (the GPU's own NaN is
// 0x7fffffff). Every kernel stores its outputs through this, so an output kept on the
// device feeds the next op exactly as the CPU's canonicalised output. Integer compares.
RP_D float rp_canon(float v) {
  return (__float_as_uint(v) & 0x7fffffffu) > 0x7f800000u ? rp_nan() : v;
}
RP_D float rp_inf() { return __uint_as_float(0x7f800000u); }
RP_D bool rp_isnan(float x) { return x != x; }
RP_D float rp_abs(float x) { return __uint_as_float(__float_as_uint(x) & 0x7fffffffu); }

// R1 max: NaN if either is NaN, else the larger; equal values AND their bits (+0 wins).
RP_D float rp_max(float a, float b) {
  if (rp_isnan(a) || rp_isnan(b)) return rp_nan();
  if (a > b) return a;
  if (b > a) return b;
  return __uint_as_float(__float_as_uint(a) & __float_as_uint(b));
}

// R1 min: mirrors max with OR (-0 wins).
RP_D float rp_min(float a, float b) {
  if (rp_isnan(a) || rp_isnan(b)) return rp_nan();
  if (a < b) return a;
  if (b < a) return b;
  return __uint_as_float(__float_as_uint(a) | __float_as_uint(b));
}

#define LOG2E 0x3fb8aa3bu
#define LN2_HI 0x3f317218u
#define LN2_LO 0xb102e308u
#define SHIFT 0x4b400000u
#define EXP_OVERFLOW 0x42b17218u
#define EXP_C2 0x3f000000u
#define EXP_C3 0x3e2aaaabu
#define EXP_C4 0x3d2aaaabu
#define EXP_C5 0x3c088889u
#define EXP_C6 0x3ab60b61u
#define EXP_C7 0x39500d01u

// math.rs scale_pow2: y * 2^k with one rounding, k in -190..=128.
RP_D float rp_scale_pow2(float y, int k) {
  if (k >= -126 && k <= 127) {
    return FMUL(y, rp_c(((u32)(k + 127)) << 23));
  } else if (k > 127) {
    return FMUL(FMUL(y, rp_c(254u << 23)), rp_c(((u32)(k - 127 + 127)) << 23));
  } else {
    return FMUL(FMUL(y, rp_c(((u32)(k + 64 + 127)) << 23)), rp_c((127u - 64u) << 23));
  }
}

// math.rs exp_core: exp(x) = y * 2^k.
RP_D float rp_exp_core(float x, int* k_out) {
  float t = FMA(x, rp_c(LOG2E), rp_c(SHIFT));
  float kf = FSUB(t, rp_c(SHIFT));
  int k = (int)__float_as_uint(t) - (int)SHIFT;
  float r_hi = FMA(-kf, rp_c(LN2_HI), x);
  float r_lo = FMUL(-kf, rp_c(LN2_LO));
  float r = FADD(r_hi, r_lo);
  float q = FMA(
      FMA(FMA(FMA(FMA(rp_c(EXP_C7), r, rp_c(EXP_C6)), r, rp_c(EXP_C5)), r, rp_c(EXP_C4)), r,
          rp_c(EXP_C3)),
      r, rp_c(EXP_C2));
  float t2 = FMA(FMUL(r, r), q, r_lo);
  float hi = FADD(1.0f, r_hi);
  float lo = FADD(FSUB(1.0f, hi), r_hi);
  *k_out = k;
  return FADD(hi, FADD(lo, t2));
}

// math.rs exp
RP_D float rp_exp(float x) {
  if (rp_isnan(x)) return rp_nan();
  if (x >= rp_c(EXP_OVERFLOW)) return rp_inf();
  if (x < -104.0f) return 0.0f;
  int k;
  float y = rp_exp_core(x, &k);
  return rp_scale_pow2(y, k);
}

// philox.rs: one Philox4x32-10 block at counter (i, stream) under key (k0, k1); word 0.
RP_D u32 rp_philox_u32(u64 i, u64 stream, u32 k0, u32 k1) {
  u32 c0 = (u32)i, c1 = (u32)(i >> 32), c2 = (u32)stream, c3 = (u32)(stream >> 32);
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    u64 p0 = (u64)0xD2511F53u * (u64)c0;
    u64 p1 = (u64)0xCD9E8D57u * (u64)c2;
    u32 hi0 = (u32)(p0 >> 32), lo0 = (u32)p0, hi1 = (u32)(p1 >> 32), lo1 = (u32)p1;
    u32 n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
  }
  return c0;
}

#define TWO_OVER_PI 0x3f22f983u
#define PIO2_1 0x3fc90fdbu
#define PIO2_2 0xb33bbd2eu
#define PIO2_3 0xa6f72cedu
#define SIN_S1 0xbe2aaaa3u
#define SIN_S2 0x3c08839eu
#define SIN_S3 0xb94ca1f9u
#define COS_C1 0x3d2aaaa5u
#define COS_C2 0xbab6061au
#define COS_C3 0x37ccf5ceu

// math.rs sin_cos: (sin x, cos x) through *s and *c.
RP_D void rp_sin_cos(float x, float* s_out, float* c_out) {
  if (rp_isnan(x) || rp_abs(x) == rp_inf()) {
    *s_out = rp_nan();
    *c_out = rp_nan();
    return;
  }
  float t = FMA(x, rp_c(TWO_OVER_PI), rp_c(SHIFT));
  float kf = FSUB(t, rp_c(SHIFT));
  int q = (int)(__float_as_uint(t) - SHIFT) & 3;
  float r = FMA(-kf, rp_c(PIO2_1), x);
  r = FMA(-kf, rp_c(PIO2_2), r);
  r = FMA(-kf, rp_c(PIO2_3), r);
  float z = FMUL(r, r);
  float ps = FMA(FMA(rp_c(SIN_S3), z, rp_c(SIN_S2)), z, rp_c(SIN_S1));
  float s = FMA(FMUL(r, z), ps, r);
  float pc = FMA(FMA(rp_c(COS_C3), z, rp_c(COS_C2)), z, rp_c(COS_C1));
  float co = FMA(FMUL(z, z), pc, FMA(-0.5f, z, 1.0f));
  switch (q) {
    case 0: *s_out = s; *c_out = co; break;
    case 1: *s_out = co; *c_out = -s; break;
    case 2: *s_out = -s; *c_out = -co; break;
    default: *s_out = -co; *c_out = s; break;
  }
}

#define SQRT2 0x3fb504f3u
#define LG1 0x3f2aaaabu
#define LG2 0x3ecccccdu
#define LG3 0x3e924925u
#define LG4 0x3e638e39u
#define LG5 0x3e3a2e8cu

// math.rs log
RP_D float rp_log(float x) {
  bool sub = __float_as_uint(x) < 0x00800000u;
  float xs = sub ? FMUL(x, rp_c(0x4b000000u)) : x;
  u32 bits = __float_as_uint(xs);
  int e = (int)((bits >> 23) & 0xffu) - 127 - (sub ? 23 : 0);
  float m0 = __uint_as_float((bits & 0x007fffffu) | 0x3f800000u);
  bool big = m0 > rp_c(SQRT2);
  float m = big ? FMUL(m0, 0.5f) : m0;
  e += big ? 1 : 0;
  float f = FSUB(m, 1.0f);
  float s = FDIV(f, FADD(2.0f, f));
  float z = FMUL(s, s);
  float r = FMUL(z, FMA(FMA(FMA(FMA(rp_c(LG5), z, rp_c(LG4)), z, rp_c(LG3)), z, rp_c(LG2)), z,
                        rp_c(LG1)));
  float hfsq = FMUL(FMUL(0.5f, f), f);
  float log1p = FSUB(f, FSUB(hfsq, FMUL(s, FADD(hfsq, r))));
  float ef = __int2float_rn(e);
  float y = FMA(ef, rp_c(LN2_HI), FMA(ef, rp_c(LN2_LO), log1p));
  if (rp_isnan(x) || x < 0.0f) return rp_nan();
  if (x == 0.0f) return -rp_inf();
  if (x == rp_inf()) return rp_inf();
  return y;
}

// math.rs tanh
RP_D float rp_tanh(float x) {
  const u32 TC[10] = {0xbeaaaaabu, 0x3e088889u, 0xbd5d0dd1u, 0x3cb327a4u, 0xbc11371bu,
                      0x3b6b69e8u, 0xbabed1b2u, 0x3a1aac12u, 0xb97abebcu, 0x38cb3f0cu};
  float a = rp_abs(x);
  float z = FMUL(x, x);
  float p = rp_c(TC[9]);
#pragma unroll
  for (int i = 8; i >= 0; --i) p = FMA(p, z, rp_c(TC[i]));
  float poly = FMA(FMUL(x, z), p, x);
  float ac = a < 9.5f ? a : 9.5f;
  float e = rp_exp(FADD(ac, ac));
  float d_hi = FADD(e, 1.0f);
  float d_lo = FADD(FSUB(e, d_hi), 1.0f);
  float q = FDIV(2.0f, d_hi);
  float r = FMA(-q, d_hi, 2.0f);
  float q_lo = FDIV(FSUB(r, FMUL(q, d_lo)), d_hi);
  float s = FSUB(1.0f, q);
  float s_err = FSUB(FSUB(1.0f, s), q);
  float t = FADD(s, FSUB(s_err, q_lo));
  float big = a >= 9.5f ? 1.0f : t;
  float sgn = x < 0.0f ? -big : big;
  if (rp_isnan(x)) return rp_nan();
  if (a < rp_c(0x39800000u)) return x;
  if (a < rp_c(0x3f200000u)) return poly;
  return sgn;
}

// math.rs div_dd: n / (d_hi + d_lo).
RP_D float rp_div_dd(float n, float d_hi, float d_lo) {
  float q = FDIV(n, d_hi);
  float r = FMA(-q, d_hi, n);
  return FADD(q, FDIV(FSUB(r, FMUL(q, d_lo)), d_hi));
}

// math.rs sigmoid
RP_D float rp_sigmoid(float x) {
  if (rp_isnan(x)) return rp_nan();
  float a = rp_abs(x);
  float e = rp_exp(-a);
  float d_hi = FADD(1.0f, e);
  float d_lo = FADD(FSUB(1.0f, d_hi), e);
  if (x >= 0.0f) return rp_div_dd(1.0f, d_hi, d_lo);
  return rp_div_dd(e, d_hi, d_lo);
}

#define GELU_K1 0x3d372713u
#define GELU_K2 0x3fcc422au
#define GELU_K1_LO 0x30d4801fu
#define GELU_K2_LO 0xb342bc9bu

// math.rs gelu
RP_D float rp_gelu(float x) {
  if (rp_isnan(x)) return rp_nan();
  if (x > 64.0f) return x;
  if (x < -64.0f) return -0.0f;
  float k1 = rp_c(GELU_K1), k1l = rp_c(GELU_K1_LO), k2 = rp_c(GELU_K2), k2l = rp_c(GELU_K2_LO);
  float x2 = FMUL(x, x);
  float x2_lo = FMA(x, x, -x2);
  float t = FMUL(k1, x2);
  float t_lo = FADD(FMA(k1, x2, -t), FADD(FMUL(k1l, x2), FMUL(k1, x2_lo)));
  // two_sum(1, t)
  float a = FADD(1.0f, t);
  float bb = FSUB(a, 1.0f);
  float a_lo0 = FADD(FSUB(1.0f, FSUB(a, bb)), FSUB(t, bb));
  float a_lo = FADD(a_lo0, t_lo);
  float w = FMUL(x, a);
  float w_lo = FADD(FMA(x, a, -w), FMUL(x, a_lo));
  float z = FMUL(k2, w);
  float z_lo = FADD(FMA(k2, w, -z), FADD(FMUL(k2, w_lo), FMUL(k2l, w)));
  float zn = z >= 0.0f ? -z : z;
  float zn_lo = z >= 0.0f ? -z_lo : z_lo;
  if (zn < -80.0f) {
    if (z >= 0.0f) return x;
    if (zn < -120.0f) return -0.0f;
    int k;
    float y = rp_exp_core(zn, &k);
    return rp_scale_pow2(FMUL(x, FMA(y, zn_lo, y)), k);
  }
  float e0 = rp_exp(zn);
  float e = FMA(e0, zn_lo, e0);
  float d_hi = FADD(1.0f, e);
  float d_lo = FADD(FSUB(1.0f, d_hi), e);
  float s = z >= 0.0f ? rp_div_dd(1.0f, d_hi, d_lo) : rp_div_dd(e, d_hi, d_lo);
  return FMUL(x, s);
}

// math.rs gelu_grad
RP_D float rp_gelu_grad(float x) {
  if (rp_isnan(x)) return rp_nan();
  float x2 = FMUL(x, x);
  float z = FMUL(rp_c(GELU_K2), FMUL(x, FMA(rp_c(GELU_K1), x2, 1.0f)));
  float s = rp_sigmoid(z);
  float k3 = FMUL(3.0f, rp_c(GELU_K1));
  float dz = FMUL(rp_c(GELU_K2), FMA(k3, x2, 1.0f));
  float r = FMA(FMUL(x, FMUL(s, FSUB(1.0f, s))), dz, s);
  if (rp_isnan(r)) return x > 0.0f ? 1.0f : 0.0f;
  return r;
}

// math.rs rsqrt_normal
RP_D float rp_rsqrt_normal(float x) {
  float s = FSQRT(x);
  float s_lo = FDIV(FMA(-s, s, x), FADD(s, s));
  return rp_div_dd(1.0f, s, s_lo);
}

// math.rs rsqrt
RP_D float rp_rsqrt(float x) {
  if (rp_isnan(x) || x <= 0.0f || x == rp_inf()) {
    float r = FDIV(1.0f, FSQRT(x));
    return rp_isnan(r) ? rp_nan() : r;
  }
  if (x < rp_c(0x0d800000u)) {
    return FMUL(rp_rsqrt_normal(FMUL(x, rp_c(0x4b800000u))), rp_c(0x45800000u));
  }
  return rp_rsqrt_normal(x);
}

// R3 tree on one warp: lane l of the warp holds lane[l] of the canonical order; for
// s = 16, 8, 4, 2, 1: lane[l] = op(lane[l], lane[l + s]). The result is broadcast from
// lane 0 to the whole warp. The whole warp must call these.
RP_D float rp_warp_sum(float v) {
#pragma unroll
  for (int s = 16; s > 0; s >>= 1) v = FADD(v, __shfl_down_sync(FULL_MASK, v, s));
  return __shfl_sync(FULL_MASK, v, 0);
}

RP_D float rp_warp_max(float v) {
#pragma unroll
  for (int s = 16; s > 0; s >>= 1) v = rp_max(v, __shfl_down_sync(FULL_MASK, v, s));
  return __shfl_sync(FULL_MASK, v, 0);
}

// Grid-stride loop over 0..n (64-bit indices).
#define GRID_STRIDE(i, n)                                                           \
  for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                 \
       i += (u64)blockDim.x * gridDim.x)
