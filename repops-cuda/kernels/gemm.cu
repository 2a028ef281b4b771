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
      if (i < m && j < n) cg[i * n + j] = acc[r][q];
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
