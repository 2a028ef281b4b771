// R2 matrix products: C[g, i, j] = fold k = 0..K-1 ascending: acc = fma(A(g,i,k), B(g,k,j), acc)
// from acc = +0.0. A tiled shared-memory GEMM: a block computes a BM x BN tile of C, each
// thread owns TM x TN outputs (rows ty + r * BM/TM, columns tx + c * BN/TN) in registers
// and walks K in order, BK values at a time, with one FMA per (output, k). The next K
// tile is fetched into registers while the current one is multiplied (prefetch). No split-K,
// no tensor cores, no reordering of any output's fma chain: the K loop of a tile only
// ever runs over k values that exist (no zero padding in K, which could turn an
// accumulator of -0 into +0).
//
// Operands are addressed by strides, so one kernel serves mat_mul and
// batched_mat_mul with every (ta, tb): A(g,i,k) = a[g*a_g + i*a_i + k*a_k],
// B(g,k,j) = b[g*b_g + k*b_k + j*b_j], C row-major [G, M, N].

template <int BM, int BN, int BK, int TM, int TN>
__device__ __forceinline__ void rp_gemm_tile(const float* __restrict__ a,
                                             const float* __restrict__ b,
                                             float* __restrict__ c, u64 m, u64 n, u64 k,
                                             u64 a_g, u64 a_i, u64 a_k, u64 b_g, u64 b_k,
                                             u64 b_j, u64 g) {
  constexpr int TX = BN / TN;  // threads along N
  constexpr int TY = BM / TM;  // threads along M
  constexpr int THREADS = TX * TY;
  constexpr int LA = BM * BK / THREADS;  // A values each thread stages per tile
  constexpr int LB = BN * BK / THREADS;
  // +1 column of padding: the transposing stores below hit distinct banks.
  __shared__ float as[BK][BM + 1];
  __shared__ float bs[BK][BN + 1];
  const int tid = threadIdx.x;
  const int tx = tid % TX;
  const int ty = tid / TX;
  const u64 i0 = (u64)blockIdx.y * BM;
  const u64 j0 = (u64)blockIdx.x * BN;
  const float* ag = a + g * a_g;
  const float* bg = b + g * b_g;
  // Read along whichever of A's (B's) axes is contiguous: coalesced global loads.
  const bool a_k_fast = a_k == 1;
  const bool b_j_fast = b_j == 1;
  // The tile at k0 is staged in registers (ra, rb) while the previous one is being
  // multiplied from shared memory, then stored. Values outside the matrices are 0 and
  // are never multiplied into an output that exists (the K loop stops at kmax).
  float ra[LA], rb[LB];
  auto load = [&](u64 k0) {
#pragma unroll
    for (int q = 0; q < LA; ++q) {
      int e = tid + q * THREADS;
      int ii = a_k_fast ? e / BK : e % BM;
      int kk = a_k_fast ? e % BK : e / BM;
      u64 gi = i0 + ii, gk = k0 + kk;
      ra[q] = (gi < m && gk < k) ? ag[gi * a_i + gk * a_k] : 0.0f;
    }
#pragma unroll
    for (int q = 0; q < LB; ++q) {
      int e = tid + q * THREADS;
      int jj = b_j_fast ? e % BN : e / BK;
      int kk = b_j_fast ? e / BN : e % BK;
      u64 gj = j0 + jj, gk = k0 + kk;
      rb[q] = (gj < n && gk < k) ? bg[gk * b_k + gj * b_j] : 0.0f;
    }
  };
  auto store = [&]() {
#pragma unroll
    for (int q = 0; q < LA; ++q) {
      int e = tid + q * THREADS;
      as[a_k_fast ? e % BK : e / BM][a_k_fast ? e / BK : e % BM] = ra[q];
    }
#pragma unroll
    for (int q = 0; q < LB; ++q) {
      int e = tid + q * THREADS;
      bs[b_j_fast ? e / BN : e % BK][b_j_fast ? e % BN : e / BK] = rb[q];
    }
  };

  float acc[TM][TN];
#pragma unroll
  for (int r = 0; r < TM; ++r)
#pragma unroll
    for (int q = 0; q < TN; ++q) acc[r][q] = 0.0f;

  if (k > 0) {
    load(0);
    store();
  }
  __syncthreads();
  for (u64 k0 = 0; k0 < k; k0 += BK) {
    const int kmax = (int)((k - k0) < (u64)BK ? (k - k0) : (u64)BK);
    const bool more = k0 + BK < k;
    if (more) load(k0 + BK);
    for (int kk = 0; kk < kmax; ++kk) {
      float av[TM], bv[TN];
#pragma unroll
      for (int r = 0; r < TM; ++r) av[r] = as[kk][ty + r * TY];
#pragma unroll
      for (int q = 0; q < TN; ++q) bv[q] = bs[kk][tx + q * TX];
#pragma unroll
      for (int r = 0; r < TM; ++r)
#pragma unroll
        for (int q = 0; q < TN; ++q) acc[r][q] = FMA(av[r], bv[q], acc[r][q]);
    }
    __syncthreads();
    if (more) store();
    __syncthreads();
  }
  float* cg = c + g * m * n;
#pragma unroll
  for (int r = 0; r < TM; ++r) {
    u64 i = i0 + ty + r * TY;
#pragma unroll
    for (int q = 0; q < TN; ++q) {
      u64 j = j0 + tx + q * TX;
      if (i < m && j < n) cg[i * n + j] = rp_canon(acc[r][q]);
    }
  }
}


// Warp-tiled, double-buffered variant (after S. Boehm, "How to optimize a CUDA matmul
// kernel", kernel 10). A block of THREADS computes a BM x BN tile of C; warp w computes a
// WM x WN part of it, made of WMITER x WNITER sub-tiles of WSUBM x WSUBN; in each sub-tile
// lane l owns a contiguous TM x TN block of outputs (TM, TN multiples of 4). A K tile of
// BK values is staged in shared memory as as[BK][BM] (A transposed) and bs[BK][BN], so a
// thread reads its TM rows and TN columns at one k as float4 (LDS.128). Two stages: the
// next K tile is loaded from global memory into registers while the current stage is
// multiplied, then stored into the other stage, with one __syncthreads per K tile.
//
// R2: every output's accumulator starts at +0.0 and receives exactly one FMA per k, for
// k = 0, 1, ..., K-1 in order (a full tile is an unrolled loop of BK steps, the last,
// partial tile a loop of kmax < BK steps): the tiling never reorders, splits or pads an
// output's fma chain. Values outside the matrices are staged as 0 but only ever reach
// outputs that do not exist (rows >= M or columns >= N), never a k >= K.
//
// Global loads are float4 when the operand's fast axis is contiguous (stride 1), its
// extent and the other strides are multiples of 4 and the pointer is 16-byte aligned;
// otherwise the same four values are loaded one by one with bounds checks. C is stored as
// float4 when N is a multiple of 4 and C is 16-byte aligned.
RP_D bool rp_aligned16(const float* p) { return (((u64)p) & 15ull) == 0; }

template <int BM, int BN, int BK, int WM, int WN, int WMITER, int WNITER, int TM, int TN,
          int THREADS>
__device__ __forceinline__ void rp_gemm_warp_tile(const float* __restrict__ a,
                                                  const float* __restrict__ b,
                                                  float* __restrict__ c, u64 m, u64 n, u64 k,
                                                  u64 a_g, u64 a_i, u64 a_k, u64 b_g,
                                                  u64 b_k, u64 b_j, u64 g) {
  constexpr int WSUBM = WM / WMITER;
  constexpr int WSUBN = WN / WNITER;
  constexpr int TRS = WSUBM / TM;  // lanes along M in a sub-tile
  constexpr int TCS = WSUBN / TN;  // lanes along N in a sub-tile
  constexpr int WARPS_N = BN / WN;
  static_assert(TRS * TCS == 32, "a sub-tile is one warp");
  static_assert((BM / WM) * (BN / WN) * 32 == THREADS, "one warp per warp tile");
  static_assert(TM % 4 == 0 && TN % 4 == 0 && BK % 4 == 0, "float4 granularity");
  constexpr int QA = BM * BK / 4 / THREADS;  // quads of A each thread stages per K tile
  constexpr int QB = BN * BK / 4 / THREADS;
  static_assert(QA * 4 * THREADS == BM * BK && QB * 4 * THREADS == BN * BK, "whole quads");
  // Rows padded by 4 floats (keeps float4 alignment; spreads the transposing stores).
  constexpr int PM = BM + 4;
  constexpr int PN = BN + 4;
  __shared__ __align__(16) float as[2][BK][PM];
  __shared__ __align__(16) float bs[2][BK][PN];

  const int tid = threadIdx.x;
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int wm0 = (warp / WARPS_N) * WM;  // warp tile origin in the block tile
  const int wn0 = (warp % WARPS_N) * WN;
  const int tr = lane / TCS;
  const int tc = lane % TCS;
  const u64 i0 = (u64)blockIdx.y * BM;
  const u64 j0 = (u64)blockIdx.x * BN;
  const float* ag = a + g * a_g;
  const float* bg = b + g * b_g;

  // Which axis of A (of B) is contiguous, and whether its quads are float4 loads.
  const bool a_kf = a_k == 1;  // else A(i, k) is contiguous along i (a transposed A)
  const bool b_jf = b_j == 1;  // else B(k, j) is contiguous along k (a transposed B)
  const bool a_vec = rp_aligned16(ag) && a_g % 4 == 0 &&
                     (a_kf ? a_i % 4 == 0 && k % 4 == 0 : a_i == 1 && a_k % 4 == 0 && m % 4 == 0);
  const bool b_vec = rp_aligned16(bg) && b_g % 4 == 0 &&
                     (b_jf ? b_k % 4 == 0 && n % 4 == 0 : b_k == 1 && b_j % 4 == 0 && k % 4 == 0);
  const float4 zero4 = make_float4(0.0f, 0.0f, 0.0f, 0.0f);

  // Quad q of this thread: 4 consecutive values along the fast axis. For A with k fast:
  // row ii, k = 4 kq .. 4 kq + 3; with i fast: k = kk, rows 4 iq .. 4 iq + 3.
  float4 ra[QA], rb[QB];
  auto load = [&](u64 k0) {
#pragma unroll
    for (int q = 0; q < QA; ++q) {
      const int e = tid + q * THREADS;
      const int r0 = a_kf ? e / (BK / 4) : (e % (BM / 4)) * 4;  // row in the tile
      const int c0 = a_kf ? (e % (BK / 4)) * 4 : e / (BM / 4);  // k in the tile
      const u64 gi = i0 + r0, gk = k0 + c0;
      const float* p = ag + gi * a_i + gk * a_k;
      if (a_vec) {
        ra[q] = (gi < m && gk < k) ? *reinterpret_cast<const float4*>(p) : zero4;
      } else {
        const u64 step = a_kf ? a_k : a_i;
        float v[4];
#pragma unroll
        for (int t = 0; t < 4; ++t) {
          const u64 ti = a_kf ? gi : gi + t, tk = a_kf ? gk + t : gk;
          v[t] = (ti < m && tk < k) ? p[t * step] : 0.0f;
        }
        ra[q] = make_float4(v[0], v[1], v[2], v[3]);
      }
    }
#pragma unroll
    for (int q = 0; q < QB; ++q) {
      const int e = tid + q * THREADS;
      const int c0 = b_jf ? (e % (BN / 4)) * 4 : e / (BK / 4);  // column in the tile
      const int r0 = b_jf ? e / (BN / 4) : (e % (BK / 4)) * 4;  // k in the tile
      const u64 gj = j0 + c0, gk = k0 + r0;
      const float* p = bg + gk * b_k + gj * b_j;
      if (b_vec) {
        rb[q] = (gj < n && gk < k) ? *reinterpret_cast<const float4*>(p) : zero4;
      } else {
        const u64 step = b_jf ? b_j : b_k;
        float v[4];
#pragma unroll
        for (int t = 0; t < 4; ++t) {
          const u64 tj = b_jf ? gj + t : gj, tk = b_jf ? gk : gk + t;
          v[t] = (tj < n && tk < k) ? p[t * step] : 0.0f;
        }
        rb[q] = make_float4(v[0], v[1], v[2], v[3]);
      }
    }
  };
  auto store = [&](int s) {
#pragma unroll
    for (int q = 0; q < QA; ++q) {
      const int e = tid + q * THREADS;
      if (a_kf) {
        const int r0 = e / (BK / 4), c0 = (e % (BK / 4)) * 4;
        as[s][c0 + 0][r0] = ra[q].x;
        as[s][c0 + 1][r0] = ra[q].y;
        as[s][c0 + 2][r0] = ra[q].z;
        as[s][c0 + 3][r0] = ra[q].w;
      } else {
        const int r0 = (e % (BM / 4)) * 4, c0 = e / (BM / 4);
        *reinterpret_cast<float4*>(&as[s][c0][r0]) = ra[q];
      }
    }
#pragma unroll
    for (int q = 0; q < QB; ++q) {
      const int e = tid + q * THREADS;
      if (b_jf) {
        const int c0 = (e % (BN / 4)) * 4, r0 = e / (BN / 4);
        *reinterpret_cast<float4*>(&bs[s][r0][c0]) = rb[q];
      } else {
        const int c0 = e / (BK / 4), r0 = (e % (BK / 4)) * 4;
        bs[s][r0 + 0][c0] = rb[q].x;
        bs[s][r0 + 1][c0] = rb[q].y;
        bs[s][r0 + 2][c0] = rb[q].z;
        bs[s][r0 + 3][c0] = rb[q].w;
      }
    }
  };

  float acc[WMITER * TM][WNITER * TN];
#pragma unroll
  for (int r = 0; r < WMITER * TM; ++r)
#pragma unroll
    for (int q = 0; q < WNITER * TN; ++q) acc[r][q] = 0.0f;

  // One k step: this thread's TM x TN outputs of every sub-tile get their fma for k = kk.
  auto step = [&](int s, int kk) {
    float av[WMITER * TM], bv[WNITER * TN];
#pragma unroll
    for (int mi = 0; mi < WMITER; ++mi)
#pragma unroll
      for (int r = 0; r < TM; r += 4) {
        const int col = wm0 + mi * WSUBM + tr * TM + r;
        const float4 v = *reinterpret_cast<const float4*>(&as[s][kk][col]);
        av[mi * TM + r + 0] = v.x;
        av[mi * TM + r + 1] = v.y;
        av[mi * TM + r + 2] = v.z;
        av[mi * TM + r + 3] = v.w;
      }
#pragma unroll
    for (int ni = 0; ni < WNITER; ++ni)
#pragma unroll
      for (int q = 0; q < TN; q += 4) {
        const int col = wn0 + ni * WSUBN + tc * TN + q;
        const float4 v = *reinterpret_cast<const float4*>(&bs[s][kk][col]);
        bv[ni * TN + q + 0] = v.x;
        bv[ni * TN + q + 1] = v.y;
        bv[ni * TN + q + 2] = v.z;
        bv[ni * TN + q + 3] = v.w;
      }
#pragma unroll
    for (int r = 0; r < WMITER * TM; ++r)
#pragma unroll
      for (int q = 0; q < WNITER * TN; ++q) acc[r][q] = FMA(av[r], bv[q], acc[r][q]);
  };

  if (k > 0) {
    load(0);
    store(0);
  }
  __syncthreads();
  int s = 0;
  for (u64 k0 = 0; k0 < k; k0 += BK) {
    const bool more = k0 + BK < k;
    if (more) load(k0 + BK);  // global loads in flight during the products below
    if (k - k0 >= (u64)BK) {
#pragma unroll
      for (int kk = 0; kk < BK; ++kk) step(s, kk);
    } else {
      const int kmax = (int)(k - k0);  // the last, partial tile: only k values that exist
#pragma unroll 1
      for (int kk = 0; kk < kmax; ++kk) step(s, kk);
    }
    // The other stage was last read before the previous barrier: safe to overwrite.
    if (more) store(s ^ 1);
    __syncthreads();
    s ^= 1;
  }

  float* cg = c + g * m * n;
  const bool c_vec = rp_aligned16(cg) && n % 4 == 0;
#pragma unroll
  for (int mi = 0; mi < WMITER; ++mi)
#pragma unroll
    for (int r = 0; r < TM; ++r) {
      const u64 i = i0 + wm0 + mi * WSUBM + tr * TM + r;
      if (i >= m) continue;
      float* row = cg + i * n;
#pragma unroll
      for (int ni = 0; ni < WNITER; ++ni)
#pragma unroll
        for (int q = 0; q < TN; q += 4) {
          const u64 j = j0 + wn0 + ni * WSUBN + tc * TN + q;
          const float* o = &acc[mi * TM + r][ni * TN + q];
          if (c_vec) {
            if (j < n) *reinterpret_cast<float4*>(row + j) =
                make_float4(rp_canon(o[0]), rp_canon(o[1]), rp_canon(o[2]), rp_canon(o[3]));
          } else {
#pragma unroll
            for (int t = 0; t < 4; ++t)
              if (j + t < n) row[j + t] = rp_canon(o[t]);
          }
        }
    }
}

#define GEMM_PARAMS                                                                     \
  const float *__restrict__ a, const float *__restrict__ b, float *__restrict__ c, u64 m, \
      u64 n, u64 k, u64 batches, u64 a_g, u64 a_i, u64 a_k, u64 b_g, u64 b_k, u64 b_j

// 128 x 128 tiles, 8 x 8 outputs per thread, 256 threads: large outputs.
extern "C" __global__ void __launch_bounds__(256) rp_gemm_128(GEMM_PARAMS) {
  for (u64 g = blockIdx.z; g < batches; g += gridDim.z)
    rp_gemm_tile<128, 128, 16, 8, 8>(a, b, c, m, n, k, a_g, a_i, a_k, b_g, b_k, b_j, g);
}

// 32 x 32 tiles, 2 x 2 outputs per thread, 256 threads: small outputs (more blocks).
extern "C" __global__ void __launch_bounds__(256) rp_gemm_32(GEMM_PARAMS) {
  for (u64 g = blockIdx.z; g < batches; g += gridDim.z)
    rp_gemm_tile<32, 32, 32, 2, 2>(a, b, c, m, n, k, a_g, a_i, a_k, b_g, b_k, b_j, g);
}

// Warp-tiled kernels (rp_gemm_warp_tile above). Template arguments: BM, BN, BK, WM, WN,
// WMITER, WNITER, TM, TN, THREADS. Which one runs for a shape is exec.rs's GEMM_KERNELS.
#define RP_GEMM_WARP(name, THREADS, MINB, ...)                                   \
  extern "C" __global__ void __launch_bounds__(THREADS, MINB) name(GEMM_PARAMS) { \
    for (u64 g = blockIdx.z; g < batches; g += gridDim.z)                        \
      rp_gemm_warp_tile<__VA_ARGS__, THREADS>(a, b, c, m, n, k, a_g, a_i, a_k, b_g, b_k, \
                                              b_j, g);                           \
  }

// 128 x 128, K tiles of 8, 256 threads (8 warps of 64 x 32), 8 x 8 outputs per thread.
RP_GEMM_WARP(rp_gemm_w128_k8, 256, 2, 128, 128, 8, 64, 32, 2, 2, 4, 4)
// 128 x 128, K tiles of 16, 256 threads, 8 x 8 outputs per thread.
RP_GEMM_WARP(rp_gemm_w128_k16, 256, 2, 128, 128, 16, 64, 32, 2, 2, 4, 4)
// 128 x 128, K tiles of 16, 128 threads (4 warps of 64 x 64), 8 x 16 outputs per thread.
RP_GEMM_WARP(rp_gemm_w128_t128, 128, 1, 128, 128, 16, 64, 64, 1, 4, 8, 4)
// 128 x 64, K tiles of 16, 256 threads (8 warps of 32 x 32), 8 x 4 outputs per thread.
RP_GEMM_WARP(rp_gemm_w128x64, 256, 2, 128, 64, 16, 32, 32, 2, 1, 4, 4)
// 64 x 64, K tiles of 16, 128 threads (4 warps of 32 x 32), 8 x 4 outputs per thread.
RP_GEMM_WARP(rp_gemm_w64, 128, 4, 64, 64, 16, 32, 32, 2, 1, 4, 4)
