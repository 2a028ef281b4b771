// Row ops over the last axis: one warp per row, lane l owns elements l, l+32, l+64, ...
// in ascending order (R3 step 2), then the shuffle tree (R3 step 3). Launch with
// blockDim = (32, ROWS_PER_BLOCK); rows are grid-strided by warps.

#define ROW_LOOP(row, rows)                                                         \
  for (u64 row = (u64)blockIdx.x * blockDim.y + threadIdx.y; row < (rows);          \
       row += (u64)gridDim.x * blockDim.y)

// R3 max of a row held by one warp.
RP_D float rp_row_max(const float* xr, u64 c) {
  float m = -rp_inf();
  for (u64 j = threadIdx.x; j < c; j += 32) m = rp_max(m, xr[j]);
  return rp_warp_max(m);
}

// m = max(x); e_j = exp(x_j - m), stored to yr when yr is not null; returns R3 sum(e).
RP_D float rp_row_exp_sum(const float* xr, float* yr, u64 c, float* m_out) {
  float m = rp_row_max(xr, c);
  float s = 0.0f;
  for (u64 j = threadIdx.x; j < c; j += 32) {
    float e = rp_exp(FSUB(xr[j], m));
    if (yr) yr[j] = e;
    s = FADD(s, e);
  }
  *m_out = m;
  return rp_warp_sum(s);
}

// softmax: m = max(x); e_j = exp(x_j - m); s = sum(e); y_j = e_j / s.
extern "C" __global__ void rp_softmax(const float* __restrict__ x, float* __restrict__ y,
                                      u64 rows, u64 c) {
  const u32 l = threadIdx.x;
  ROW_LOOP(r, rows) {
    float* yr = y + r * c;
    float m;
    float s = rp_row_exp_sum(x + r * c, yr, c, &m);
    for (u64 j = l; j < c; j += 32) yr[j] = rp_canon(FDIV(yr[j], s));
  }
}

// Backward row kernels `(y, dy) -> dx`: acc = R3 sum over the row of `term`, then
// dx_j = `out` (both may use yr[j], dr[j] and, for `out`, acc).
#define ROW_BACKWARD(name, term, out)                                                     \
  extern "C" __global__ void name(const float* __restrict__ y, const float* __restrict__ dy, \
                                  float* __restrict__ dx, u64 rows, u64 c) {              \
    const u32 l = threadIdx.x;                                                            \
    ROW_LOOP(r, rows) {                                                                   \
      const float* yr = y + r * c;                                                        \
      const float* dr = dy + r * c;                                                       \
      float acc = 0.0f;                                                                   \
      for (u64 j = l; j < c; j += 32) acc = FADD(acc, (term));                            \
      acc = rp_warp_sum(acc);                                                             \
      for (u64 j = l; j < c; j += 32) dx[r * c + j] = rp_canon(out);                      \
    }                                                                                     \
  }

// softmax_backward: d = sum(y_j * dy_j); dx_j = y_j * (dy_j - d).
ROW_BACKWARD(rp_softmax_backward, FMUL(yr[j], dr[j]), FMUL(yr[j], FSUB(dr[j], acc)))

// log_softmax_backward: s = sum(dy); dx_j = dy_j - exp(y_j) * s.
ROW_BACKWARD(rp_log_softmax_backward, dr[j], FSUB(dr[j], FMUL(rp_exp(yr[j]), acc)))

// log_softmax: m = max(x); s = sum exp(x_j - m); l = log(s); y_j = (x_j - m) - l.
extern "C" __global__ void rp_log_softmax(const float* __restrict__ x, float* __restrict__ y,
                                          u64 rows, u64 c) {
  const u32 l = threadIdx.x;
  ROW_LOOP(r, rows) {
    const float* xr = x + r * c;
    float m;
    float s = rp_row_exp_sum(xr, 0, c, &m);
    float lg = rp_log(s);
    for (u64 j = l; j < c; j += 32) y[r * c + j] = rp_canon(FSUB(FSUB(xr[j], m), lg));
  }
}

// cross_entropy, per row: L_i = log(s) - (x_label - m). The mean over rows is
// rp_sum_last on the loss vector followed by one division by N (mean = 1).
extern "C" __global__ void rp_cross_entropy_rows(const float* __restrict__ x,
                                                 const u32* __restrict__ labels,
                                                 float* __restrict__ loss, u64 rows, u64 c) {
  const u32 l = threadIdx.x;
  ROW_LOOP(r, rows) {
    const float* xr = x + r * c;
    float m;
    float s = rp_row_exp_sum(xr, 0, c, &m);
    if (l == 0) loss[r] = rp_canon(FSUB(rp_log(s), FSUB(xr[labels[r]], m)));
  }
}

// cross_entropy_backward: softmax row y; y_label -= 1; every y_j /= N.
extern "C" __global__ void rp_cross_entropy_backward(const float* __restrict__ x,
                                                     const u32* __restrict__ labels,
                                                     float* __restrict__ y, u64 rows, u64 c,
                                                     float nf) {
  const u32 l = threadIdx.x;
  ROW_LOOP(r, rows) {
    float* yr = y + r * c;
    float m;
    float s = rp_row_exp_sum(x + r * c, yr, c, &m);
    u64 lab = labels[r];
    for (u64 j = l; j < c; j += 32) {
      float v = FDIV(yr[j], s);
      if (j == lab) v = FSUB(v, 1.0f);
      yr[j] = rp_canon(FDIV(v, nf));
    }
  }
}

// sum_last / mean_last: R3 sum of each row; mean != 0 divides by c (as f32).
extern "C" __global__ void rp_sum_last(const float* __restrict__ x, float* __restrict__ y,
                                       u64 rows, u64 c, int mean, float cf) {
  const u32 l = threadIdx.x;
  ROW_LOOP(r, rows) {
    const float* xr = x + r * c;
    float s = 0.0f;
    for (u64 j = l; j < c; j += 32) s = FADD(s, xr[j]);
    s = rp_warp_sum(s);
    if (l == 0) y[r] = rp_canon(mean ? FDIV(s, cf) : s);
  }
}

// Layer-norm statistics of one row held by one warp (ops.rs ln_stats):
// mean = sum(x) / d; var = sum((x_j - mean) * (x_j - mean)) / d; rstd = rsqrt(var + eps).
RP_D void rp_ln_stats(const float* xr, u64 d, float df, float eps, float* mean, float* rstd) {
  const u32 l = threadIdx.x;
  float s = 0.0f;
  for (u64 j = l; j < d; j += 32) s = FADD(s, xr[j]);
  float mu = FDIV(rp_warp_sum(s), df);
  float v = 0.0f;
  for (u64 j = l; j < d; j += 32) {
    float t = FSUB(xr[j], mu);
    v = FADD(v, FMUL(t, t));
  }
  float var = FDIV(rp_warp_sum(v), df);
  *mean = mu;
  *rstd = rp_rsqrt(FADD(var, eps));
}

// layer_norm: y_j = ((x_j - mean) * rstd) * gamma_j + beta_j.
extern "C" __global__ void rp_layer_norm(const float* __restrict__ x, const float* __restrict__ g,
                                         const float* __restrict__ b, float* __restrict__ y,
                                         u64 rows, u64 d, float df, float eps) {
  const u32 l = threadIdx.x;
  ROW_LOOP(r, rows) {
    const float* xr = x + r * d;
    float mean, rstd;
    rp_ln_stats(xr, d, df, eps, &mean, &rstd);
    for (u64 j = l; j < d; j += 32)
      y[r * d + j] = rp_canon(FADD(FMUL(FMUL(FSUB(xr[j], mean), rstd), g[j]), b[j]));
  }
}

// layer_norm_backward_input: xh_j = (x_j - mean) * rstd, g_j = dy_j * gamma_j;
// a = sum(g) / d; b = sum(g_j * xh_j) / d; dx_j = ((g_j - a) - xh_j * b) * rstd.
extern "C" __global__ void rp_layer_norm_backward_input(
    const float* __restrict__ x, const float* __restrict__ gamma, const float* __restrict__ dy,
    float* __restrict__ dx, u64 rows, u64 d, float df, float eps) {
  const u32 l = threadIdx.x;
  ROW_LOOP(r, rows) {
    const float* xr = x + r * d;
    const float* dr = dy + r * d;
    float mean, rstd;
    rp_ln_stats(xr, d, df, eps, &mean, &rstd);
    float sa = 0.0f, sb = 0.0f;
    for (u64 j = l; j < d; j += 32) {
      float gg = FMUL(dr[j], gamma[j]);
      float xh = FMUL(FSUB(xr[j], mean), rstd);
      sa = FADD(sa, gg);
      sb = FADD(sb, FMUL(gg, xh));
    }
    float a = FDIV(rp_warp_sum(sa), df);
    float bq = FDIV(rp_warp_sum(sb), df);
    for (u64 j = l; j < d; j += 32) {
      float gg = FMUL(dr[j], gamma[j]);
      float xh = FMUL(FSUB(xr[j], mean), rstd);
      dx[r * d + j] = rp_canon(FMUL(FSUB(FSUB(gg, a), FMUL(xh, bq)), rstd));
    }
  }
}

// Layer-norm (mean, rstd) of every row, for layer_norm_backward_gamma.
extern "C" __global__ void rp_layer_norm_stats(const float* __restrict__ x,
                                               float* __restrict__ mean_out,
                                               float* __restrict__ rstd_out, u64 rows, u64 d,
                                               float df, float eps) {
  ROW_LOOP(r, rows) {
    float mean, rstd;
    rp_ln_stats(x + r * d, d, df, eps, &mean, &rstd);
    if (threadIdx.x == 0) {
      mean_out[r] = rp_canon(mean);
      rstd_out[r] = rp_canon(rstd);
    }
  }
}

// max_last: the R3 max of each row.
extern "C" __global__ void rp_max_last(const float* __restrict__ x, float* __restrict__ y,
                                       u64 rows, u64 c) {
  ROW_LOOP(r, rows) {
    float m = rp_row_max(x + r * c, c);
    if (threadIdx.x == 0) y[r] = rp_canon(m);
  }
}

// max_last_backward: dy[r] at the first index of row r equal to its R3 max (the first
// NaN when that is NaN), +0 elsewhere. The warp takes the max; lane 0 scans the row in
// index order, as the CPU does.
extern "C" __global__ void rp_max_last_backward(const float* __restrict__ x,
                                                const float* __restrict__ dy,
                                                float* __restrict__ dx, u64 rows, u64 c) {
  ROW_LOOP(r, rows) {
    const float* xr = x + r * c;
    float m = rp_row_max(xr, c);
    if (threadIdx.x == 0) {
      bool nan = m != m, found = false;
      for (u64 j = 0; j < c; ++j) {
        float v = xr[j];
        bool hit = !found && (nan ? v != v : v == m);
        dx[r * c + j] = hit ? rp_canon(dy[r]) : 0.0f;
        found = found || hit;
      }
    }
  }
}

// RMSNorm's r = rsqrt(sum(x*x) / d + eps) of a row held by one warp (R3 sum).
RP_D float rp_rms_rstd(const float* xr, u64 d, float df, float eps) {
  float s = 0.0f;
  for (u64 j = threadIdx.x; j < d; j += 32) s = FADD(s, FMUL(xr[j], xr[j]));
  return rp_rsqrt(FADD(FDIV(rp_warp_sum(s), df), eps));
}

// rms_norm: y_j = (x_j * r) * gamma_j.
extern "C" __global__ void rp_rms_norm(const float* __restrict__ x, const float* __restrict__ g,
                                       float* __restrict__ y, u64 rows, u64 d, float df,
                                       float eps) {
  const u32 l = threadIdx.x;
  ROW_LOOP(r, rows) {
    const float* xr = x + r * d;
    float rs = rp_rms_rstd(xr, d, df, eps);
    for (u64 j = l; j < d; j += 32) y[r * d + j] = rp_canon(FMUL(FMUL(xr[j], rs), g[j]));
  }
}

// rms_norm_backward_input: xh_j = x_j * r, g_j = dy_j * gamma_j; b = sum(g_j * xh_j) / d;
// dx_j = (g_j - xh_j * b) * r.
extern "C" __global__ void rp_rms_norm_backward_input(
    const float* __restrict__ x, const float* __restrict__ gamma, const float* __restrict__ dy,
    float* __restrict__ dx, u64 rows, u64 d, float df, float eps) {
  const u32 l = threadIdx.x;
  ROW_LOOP(r, rows) {
    const float* xr = x + r * d;
    const float* dr = dy + r * d;
    float rs = rp_rms_rstd(xr, d, df, eps);
    float sb = 0.0f;
    for (u64 j = l; j < d; j += 32)
      sb = FADD(sb, FMUL(FMUL(dr[j], gamma[j]), FMUL(xr[j], rs)));
    float b = FDIV(rp_warp_sum(sb), df);
    for (u64 j = l; j < d; j += 32) {
      float gg = FMUL(dr[j], gamma[j]);
      dx[r * d + j] = rp_canon(FMUL(FSUB(gg, FMUL(FMUL(xr[j], rs), b)), rs));
    }
  }
}

// Per-row statistics for rms_norm_backward_gamma, in layer_norm_stats' layout: mean 0
// (x - 0 is x, bit for bit) and r, so rp_layer_norm_backward_gamma sums dy * (x * r).
extern "C" __global__ void rp_rms_stats(const float* __restrict__ x, float* __restrict__ mean,
                                        float* __restrict__ rstd, u64 rows, u64 d, float df,
                                        float eps) {
  ROW_LOOP(r, rows) {
    float rs = rp_rms_rstd(x + r * d, d, df, eps);
    if (threadIdx.x == 0) {
      mean[r] = 0.0f;
      rstd[r] = rs;
    }
  }
}
