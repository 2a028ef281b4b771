// A host emulation of the CUDA execution model, for testing the kernels without a GPU.
//
// The kernel sources (repops.cuh + kernels/*.cu) are compiled for the host with the CUDA
// built-ins defined below: every CUDA thread of a block is a std::thread, blocks run one
// after another (so `__shared__` becomes a function-local `static`, shared by the
// block's threads), `__syncthreads` is a barrier of the block, and warp shuffles exchange
// values through a per-warp buffer between two barriers of the warp. The float
// intrinsics are the IEEE host operations (`-ffp-contract=off`). This checks indexing,
// reduction order, synchronisation and argument passing; it says nothing about what
// NVRTC/ptxas/the GPU do (the PTX audit and the GPU tests cover that).
//
// Protocol (little-endian), one launch per process: stdin = u32 name length, name,
// u32 grid[3], u32 block[3], u32 nargs, then per argument a tag byte and its payload:
// 'B' u64 nbytes + bytes (a buffer), 'Q' u64, 'I' i32, 'U' u32, 'F' f32. stdout = the
// bytes of every 'B' argument after the kernel ran, in order.

#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
};
static dim3 gridDim, blockDim;
static thread_local dim3 blockIdx, threadIdx;
static thread_local unsigned int emu_tid;  // linear thread index in the block

struct Warp {
  float buf[32];
  std::unique_ptr<std::barrier<>> bar;
};
static std::unique_ptr<std::barrier<>> emu_block_bar;
static std::vector<Warp> emu_warps;

static inline void __syncthreads() { emu_block_bar->arrive_and_wait(); }

static inline float emu_exchange(float v, unsigned int src_lane_or_self, bool use_src) {
  Warp& w = emu_warps[emu_tid / 32];
  unsigned int lane = emu_tid % 32;
  w.buf[lane] = v;
  w.bar->arrive_and_wait();
  float r = use_src ? w.buf[src_lane_or_self] : v;
  w.bar->arrive_and_wait();
  return r;
}
static inline float __shfl_down_sync(unsigned, float v, int s) {
  unsigned int lane = emu_tid % 32;
  return emu_exchange(v, lane + s, lane + s < 32);
}
static inline float __shfl_sync(unsigned, float v, int src) { return emu_exchange(v, src, true); }

#include "host.h"
#include <atomic>
static inline unsigned int atomicOr(unsigned int* p, unsigned int v) {
  return std::atomic_ref<unsigned int>(*p).fetch_or(v);
}
#define __global__
#define __shared__ static
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

// CUDA's float4: 16-byte aligned, so that reinterpret_cast loads and stores of it behave
// as LDS.128/LDG.128 do (the kernels only form them at 16-byte aligned addresses).
struct alignas(16) float4 {
  float x, y, z, w;
};
static inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

#include "../kernels/repops.cuh"
#include "../kernels/elementwise.cu"
#include "../kernels/rows.cu"
#include "../kernels/gemm.cu"
#include "../kernels/layout.cu"
#include "../kernels/hash.cu"

struct Arg {
  char tag = 0;
  std::vector<unsigned char> bytes;
  uint64_t q = 0;
  int32_t i = 0;
  uint32_t u = 0;
  float f = 0;
};

template <class T>
static T get(Arg& a) {
  if constexpr (std::is_pointer_v<T>) {
    return reinterpret_cast<T>(a.bytes.data());
  } else if constexpr (std::is_same_v<T, uint64_t> || std::is_same_v<T, u64>) {
    return (T)a.q;
  } else if constexpr (std::is_same_v<T, int>) {
    return a.i;
  } else if constexpr (std::is_same_v<T, unsigned int>) {
    return a.u;
  } else {
    static_assert(std::is_same_v<T, float>);
    return a.f;
  }
}

template <class... A, size_t... I>
static void call(void (*k)(A...), std::vector<Arg>& args, std::index_sequence<I...>) {
  k(get<A>(args[I])...);
}

template <class... A>
static std::function<void(std::vector<Arg>&)> kernel(void (*k)(A...)) {
  return [k](std::vector<Arg>& args) {
    if (args.size() != sizeof...(A)) {
      std::fprintf(stderr, "emu: expected %zu arguments, got %zu\n", sizeof...(A), args.size());
      std::exit(2);
    }
    call(k, args, std::index_sequence_for<A...>{});
  };
}

#define K(name) {#name, kernel(name)}

static void launch(dim3 grid, dim3 block, const std::function<void()>& body) {
  gridDim = grid;
  blockDim = block;
  unsigned int n = block.x * block.y * block.z;
  for (unsigned int bz = 0; bz < grid.z; ++bz)
    for (unsigned int by = 0; by < grid.y; ++by)
      for (unsigned int bx = 0; bx < grid.x; ++bx) {
        emu_block_bar = std::make_unique<std::barrier<>>(n);
        emu_warps = std::vector<Warp>((n + 31) / 32);
        for (unsigned int w = 0; w < emu_warps.size(); ++w) {
          unsigned int size = std::min(32u, n - 32 * w);
          emu_warps[w].bar = std::make_unique<std::barrier<>>(size);
        }
        std::vector<std::thread> threads;
        threads.reserve(n);
        for (unsigned int t = 0; t < n; ++t) {
          threads.emplace_back([&, t, bx, by, bz] {
            emu_tid = t;
            threadIdx.x = t % block.x;
            threadIdx.y = (t / block.x) % block.y;
            threadIdx.z = t / (block.x * block.y);
            blockIdx.x = bx;
            blockIdx.y = by;
            blockIdx.z = bz;
            body();
          });
        }
        for (auto& th : threads) th.join();
      }
}

static void read(void* p, size_t n) {
  if (std::fread(p, 1, n, stdin) != n) {
    std::fprintf(stderr, "emu: short input\n");
    std::exit(2);
  }
}

int main() {
  std::map<std::string, std::function<void(std::vector<Arg>&)>> kernels = {
      K(rp_scale), K(rp_add_scalar), K(rp_relu), K(rp_gelu_k), K(rp_tanh_k), K(rp_sigmoid_k),
      K(rp_exp_k), K(rp_log_k), K(rp_rsqrt_k), K(rp_add), K(rp_sub), K(rp_mul),
      K(rp_relu_backward), K(rp_gelu_backward), K(rp_tanh_backward), K(rp_sigmoid_backward),
      K(rp_sgd_momentum_buf), K(rp_sgd_update), K(rp_adam_m), K(rp_adam_v), K(rp_add_bias),
      K(rp_adamw_update), K(rp_causal_mask), K(rp_eval_bits), K(rp_softmax),
      K(rp_softmax_backward), K(rp_log_softmax), K(rp_log_softmax_backward),
      K(rp_cross_entropy_rows), K(rp_cross_entropy_backward), K(rp_sum_last), K(rp_layer_norm),
      K(rp_layer_norm_backward_input), K(rp_layer_norm_stats), K(rp_gemm_128), K(rp_gemm_32),
      K(rp_gemm_w128_k8), K(rp_gemm_w128_k16), K(rp_gemm_w128_t128), K(rp_gemm_w128x64),
      K(rp_gemm_w64),
      K(rp_sum_axis0), K(rp_layer_norm_backward_gamma), K(rp_embedding),
      K(rp_embedding_backward), K(rp_transpose), K(rp_permute), K(rp_im2col), K(rp_col2im),
      K(rp_max_last), K(rp_max_last_backward), K(rp_silu_k), K(rp_silu_backward), K(rp_rope), K(rp_dropout),
      K(rp_rms_norm), K(rp_rms_norm_backward_input), K(rp_rms_stats),
      K(rp_blake3_chunks), K(rp_blake3_tree),
  };
  uint32_t len;
  read(&len, 4);
  std::string name(len, '\0');
  read(name.data(), len);
  dim3 grid, block;
  read(&grid, 12);
  read(&block, 12);
  uint32_t nargs;
  read(&nargs, 4);
  std::vector<Arg> args(nargs);
  for (auto& a : args) {
    read(&a.tag, 1);
    switch (a.tag) {
      case 'B': {
        uint64_t nb;
        read(&nb, 8);
        a.bytes.resize(nb < 16 ? 16 : nb);
        read(a.bytes.data(), nb);
        a.bytes.resize(nb);
        break;
      }
      case 'Q': read(&a.q, 8); break;
      case 'I': read(&a.i, 4); break;
      case 'U': read(&a.u, 4); break;
      case 'F': read(&a.f, 4); break;
      default: std::fprintf(stderr, "emu: bad tag %d\n", a.tag); return 2;
    }
  }
  auto it = kernels.find(name);
  if (it == kernels.end()) {
    std::fprintf(stderr, "emu: unknown kernel %s\n", name.c_str());
    return 2;
  }
  auto& k = it->second;
  launch(grid, block, [&] { k(args); });
  for (auto& a : args)
    if (a.tag == 'B') std::fwrite(a.bytes.data(), 1, a.bytes.size(), stdout);
  return 0;
}
