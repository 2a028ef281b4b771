// Elementwise ops: one thread per element (grid-stride). Formulas and operand order are
// those of repops/src/ops.rs `Op::compute`; outputs are stored canonical (rp_canon).

#define MAP1(name, expr)                                                                \
  extern "C" __global__ void name(const float* __restrict__ x, float* __restrict__ y,  \
                                  u64 n, float s) {                                     \
    GRID_STRIDE(i, n) {                                                                 \
      float v = x[i];                                                                   \
      y[i] = rp_canon(expr);                                                            \
    }                                                                                   \
  }

MAP1(rp_scale, FMUL(v, s))
MAP1(rp_add_scalar, FADD(v, s))
MAP1(rp_relu, rp_max(v, 0.0f))
MAP1(rp_gelu_k, rp_gelu(v))
MAP1(rp_tanh_k, rp_tanh(v))
MAP1(rp_sigmoid_k, rp_sigmoid(v))
MAP1(rp_exp_k, rp_exp(v))
MAP1(rp_log_k, rp_log(v))
MAP1(rp_rsqrt_k, rp_rsqrt(v))

// Two inputs of the same shape and up to two scalar parameters s, t.
#define MAP2(name, expr)                                                                \
  extern "C" __global__ void name(const float* __restrict__ a, const float* __restrict__ b, \
                                  float* __restrict__ y, u64 n, float s, float t) {     \
    GRID_STRIDE(i, n) {                                                                 \
      float u = a[i];                                                                   \
      float v = b[i];                                                                   \
      y[i] = rp_canon(expr);                                                            \
    }                                                                                   \
  }

MAP2(rp_add, FADD(u, v))
MAP2(rp_sub, FSUB(u, v))
MAP2(rp_mul, FMUL(u, v))
MAP2(rp_relu_backward, u > 0.0f ? v : 0.0f)
MAP2(rp_gelu_backward, FMUL(v, rp_gelu_grad(u)))
MAP2(rp_tanh_backward, FMUL(v, FSUB(1.0f, FMUL(u, u))))
MAP2(rp_sigmoid_backward, FMUL(v, FMUL(u, FSUB(1.0f, u))))
// s = momentum: mu * buf + g
MAP2(rp_sgd_momentum_buf, FADD(FMUL(s, u), v))
// s = lr: p - lr * buf
MAP2(rp_sgd_update, FSUB(u, FMUL(s, v)))
// s = beta1, t = 1 - beta1 (f32, computed on the host): beta1 * m + c1 * g
MAP2(rp_adam_m, FADD(FMUL(s, u), FMUL(t, v)))
// s = beta2, t = 1 - beta2: beta2 * v + c2 * (g * g)
MAP2(rp_adam_v, FADD(FMUL(s, u), FMUL(t, FMUL(v, v))))

// add_bias: x[.., C] + b[j] (b broadcast over rows).
extern "C" __global__ void rp_add_bias(const float* __restrict__ x, const float* __restrict__ b,
                                       float* __restrict__ y, u64 n, u64 c) {
  GRID_STRIDE(i, n) { y[i] = rp_canon(FADD(x[i], b[i % c])); }
}

// AdamW: bc1 = 1 - beta1^t, bc2 = 1 - beta2^t (f32, computed on the host).
extern "C" __global__ void rp_adamw_update(const float* __restrict__ p, const float* __restrict__ m,
                                           const float* __restrict__ v, float* __restrict__ y,
                                           u64 n, float bc1, float bc2, float lr, float eps,
                                           float wd) {
  GRID_STRIDE(i, n) {
    float mh = FDIV(m[i], bc1);
    float vh = FDIV(v[i], bc2);
    float u = FDIV(mh, FADD(FSQRT(vh), eps));
    y[i] = rp_canon(FSUB(p[i], FMUL(lr, FADD(u, FMUL(wd, p[i])))));
  }
}

// `x[.., i, j] = fill` where j > i, for the last two dims [T, T].
extern "C" __global__ void rp_causal_mask(const float* __restrict__ x, float* __restrict__ y,
                                          u64 n, u64 t, float fill) {
  GRID_STRIDE(idx, n) {
    u64 row = idx / t;
    u64 j = idx - row * t;
    u64 i = row % t;
    y[idx] = rp_canon(j > i ? fill : x[idx]);
  }
}

// Elementary function `f` (0 exp, 1 log, 2 tanh, 3 sigmoid, 4 gelu, 5 rsqrt) of the bit
// patterns start .. start + n: the exhaustive parity check of cuda-parity.
extern "C" __global__ void rp_eval_bits(int f, u32 start, u64 n, float* __restrict__ y) {
  GRID_STRIDE(i, n) {
    float x = __uint_as_float(start + (u32)i);
    float r;
    switch (f) {
      case 0: r = rp_exp(x); break;
      case 1: r = rp_log(x); break;
      case 2: r = rp_tanh(x); break;
      case 3: r = rp_sigmoid(x); break;
      case 4: r = rp_gelu(x); break;
      default: r = rp_rsqrt(x); break;
    }
    y[i] = r;
  }
}

// silu: x * sigmoid(x); silu_backward (x, dy): s = sigmoid(x), dy * (s * (1 + x * (1 - s))).
MAP1(rp_silu_k, FMUL(v, rp_sigmoid(v)))
MAP2(rp_silu_backward,
     FMUL(v, FMUL(rp_sigmoid(u), FADD(1.0f, FMUL(u, FSUB(1.0f, rp_sigmoid(u)))))))

// ops.rs Rope / rope_angles: x[rows, d] with rows = blocks * t; one thread per pair
// (row, j), j < d/2, at position row % t; the angle exactly as rope_angles computes it.
// `lb` is log(base), computed once on the host by math::log (the same bits as rp_log).
extern "C" __global__ void rp_rope(const float* __restrict__ x, float* __restrict__ y, u64 rows,
                                   u64 t, u64 d, float lb, int inverse) {
  u64 h = d / 2;
  GRID_STRIDE(idx, rows * h) {
    u64 row = idx / h;
    u64 j = idx - row * h;
    u64 p = row % t;
    float e = FDIV((float)(2 * j), (float)d);
    float f = rp_exp(-FMUL(e, lb));
    float sn, cs;
    rp_sin_cos(FMUL((float)p, f), &sn, &cs);
    if (inverse) sn = -sn;
    float a = x[row * d + j], b = x[row * d + j + h];
    y[row * d + j] = rp_canon(FSUB(FMUL(a, cs), FMUL(b, sn)));
    y[row * d + j + h] = rp_canon(FADD(FMUL(a, sn), FMUL(b, cs)));
  }
}

// ops.rs Dropout: element i kept when (u >> 8) * 2^-24 >= p, u = Philox(key, stream = the
// bits of step[0]) at counter i; kept: x * (1 / (1 - p)), dropped: +0.
extern "C" __global__ void rp_dropout(const float* __restrict__ x, const float* __restrict__ step,
                                      float* __restrict__ y, u64 n, float p, u32 key_lo,
                                      u32 key_hi) {
  u64 stream = (u64)__float_as_uint(step[0]);
  float scale = FDIV(1.0f, FSUB(1.0f, p));
  GRID_STRIDE(i, n) {
    u32 u = rp_philox_u32(i, stream, key_lo, key_hi);
    float uf = FMUL((float)(u >> 8), rp_c(0x33800000u));
    y[i] = rp_canon(uf >= p ? FMUL(x[i], scale) : 0.0f);
  }
}
