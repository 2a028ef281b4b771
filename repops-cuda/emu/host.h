// The CUDA float intrinsics the kernels use, as the IEEE binary32 host operations they
// are (compile with -ffp-contract=off and without fast-math). Shared by the host
// emulation (emu.cpp) and the host check of the math port (tests/host_port.rs).
#pragma once
#include <cmath>
#include <cstring>

static inline float __uint_as_float(unsigned int u) { float f; std::memcpy(&f, &u, 4); return f; }
static inline unsigned int __float_as_uint(float f) { unsigned int u; std::memcpy(&u, &f, 4); return u; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fsqrt_rn(float a) { return std::sqrt(a); }
static inline float __fmaf_rn(float a, float b, float c) { return std::fmaf(a, b, c); }
static inline float __int2float_rn(int i) { return (float)i; }

#define __device__
#define __forceinline__ inline
