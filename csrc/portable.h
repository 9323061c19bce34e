// What the kernels need from the machine, for nvcc (the GPU) and for a plain
// C++ compiler (the CPU emulator in emulate/): qualifiers, thread and block
// indices, the block barrier, and the storage types of the four dtypes with
// their float conversions. Nothing here knows about PyTorch.
#pragma once

#include <cstdint>

#include "params.h"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#define LC_HD __host__ __device__ __forceinline__
#define LC_DEVICE __device__ __forceinline__
#define LC_RESTRICT __restrict__
#define LC_UNROLL _Pragma("unroll")
#define LC_PRAGMA(x) _Pragma(#x)
#define LC_UNROLL_N(n) LC_PRAGMA(unroll(n))  // n: a constant expression (template arguments too)
#else
#include <cstring>
#if defined(LC_EMU_TRACE)  // the cost model's traced emulator inlines like nvcc (source lines match)
#define LC_HD inline __attribute__((always_inline))
#define LC_DEVICE inline __attribute__((always_inline))
#else
#define LC_HD inline
#define LC_DEVICE inline
#endif
#define LC_RESTRICT
#define LC_UNROLL
#define LC_UNROLL_N(n)
#endif

namespace lc {

// ---------------------------------------------------------------- thread indices
#if defined(__CUDACC__)
LC_DEVICE int64_t block_index() { return blockIdx.x; }
LC_DEVICE int thread_index() { return threadIdx.x; }
LC_DEVICE int block_threads() { return blockDim.x; }
LC_DEVICE void sync_threads() { __syncthreads(); }
#else
// The CPU emulator (emulate/emulator.cpp) defines these for the fiber it runs.
int64_t block_index();
int thread_index();
int block_threads();
void sync_threads();
#endif

// In a rare branch's body: the compiler may not run the body on every pass and select its
// results (if-conversion), which it does for short side-effect-free arithmetic, nor reuse
// values loaded before it (so the body's own loads stay: the cost model's traced anchors).
// The emulator counts the lanes that enter one, so tests can tell a fallback that gave
// the right answer from the fast path (tests/cuda_emulator.py rare_paths).
#if defined(__CUDACC__)
#define LC_RARE_PATH() asm volatile("" ::: "memory")
#else
void note_rare_path();  // emulate/emulator.cpp
#define LC_RARE_PATH() note_rare_path()
#endif

// ---------------------------------------------------------------- dtypes

#if defined(__CUDACC__)
using half_t = __half;
using bf16_t = __nv_bfloat16;
LC_HD float to_float(half_t v) { return __half2float(v); }
LC_HD float to_float(bf16_t v) { return __bfloat162float(v); }
template <class T> LC_HD T from_float(float v);
template <> LC_HD half_t from_float<half_t>(float v) { return __float2half_rn(v); }
template <> LC_HD bf16_t from_float<bf16_t>(float v) { return __float2bfloat16_rn(v); }
#else
// 16-bit storage types for the emulator, rounding to nearest even like the GPU.
struct half_t { uint16_t bits; };
struct bf16_t { uint16_t bits; };

inline float bits_to_float(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline uint32_t float_to_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

inline float to_float(bf16_t v) { return bits_to_float(uint32_t(v.bits) << 16); }
inline float to_float(half_t v) {
  const uint32_t sign = uint32_t(v.bits & 0x8000u) << 16;
  const uint32_t exp = (v.bits >> 10) & 0x1fu, man = v.bits & 0x3ffu;
  if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | (man << 13));  // Inf / NaN
  if (exp != 0) return bits_to_float(sign | ((exp + 112u) << 23) | (man << 13));
  // subnormal: man * 2^-24
  const float mag = float(man) * 5.9604644775390625e-08f;
  return sign ? -mag : mag;
}
template <class T> T from_float(float v);
template <> inline bf16_t from_float<bf16_t>(float v) {
  uint32_t u = float_to_bits(v);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16_t{uint16_t((u >> 16) | 0x40u)};  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16_t{uint16_t(u >> 16)};
}
template <> inline half_t from_float<half_t>(float v) {
  const uint32_t u = float_to_bits(v);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return half_t{uint16_t(sign | 0x7e00u)};          // NaN
  if (a >= 0x477ff000u) return half_t{uint16_t(sign | 0x7c00u)};         // rounds to Inf
  if (a < 0x38800000u) {                                                  // subnormal or 0
    // value / 2^-24, rounded to nearest even, is the subnormal mantissa
    const float m = bits_to_float(a) * 16777216.0f;
    float r = float(int64_t(m));
    const float frac = m - r;
    if (frac > 0.5f || (frac == 0.5f && (int64_t(r) & 1))) r += 1.0f;
    return half_t{uint16_t(sign | uint16_t(r))};
  }
  uint32_t h = ((a >> 13) - (112u << 10));
  const uint32_t rest = a & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h += 1;
  return half_t{uint16_t(sign | h)};
}
#endif

LC_HD float to_float(float v) { return v; }
LC_HD double to_float(double v) { return v; }
template <> LC_HD float from_float<float>(float v) { return v; }
template <> LC_HD double from_float<double>(float v) { return v; }

// The accumulator of a dtype: double for double, float for the rest.
template <class T> struct Acc { using type = float; };
template <> struct Acc<double> { using type = double; };
template <class T> using acc_t = typename Acc<T>::type;

template <class T> LC_HD acc_t<T> load_acc(const T* p) { return acc_t<T>(to_float(*p)); }
template <class T> LC_HD void store_acc(T* p, acc_t<T> v) { *p = from_float<T>(float(v)); }
template <> LC_HD void store_acc<double>(double* p, double v) { *p = v; }

// `p` as a value the compiler cannot see into: a base pointer kept in a register, so that
// `base + int32 offset` is one wide multiply-add instead of 64-bit index arithmetic
// redone (and the parameter reloaded) at every access
template <class T>
LC_HD T* opaque(T* p) {
#if defined(__CUDA_ARCH__)
  asm("" : "+l"(p));
#endif
  return p;
}

template <class T> LC_HD T min_of(T a, T b) { return a < b ? a : b; }
template <class T> LC_HD T max_of(T a, T b) { return a > b ? a : b; }
LC_HD int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// n / d for 0 <= n < 2^31 and 1 <= d < 2^31 as a multiply-high, an add and a shift: the
// divisor's magic number m and shift s are made once, on the host (round-up method:
// s = ceil(log2 d), m = 2^32 (2^s - d) / d + 1, n / d = (mulhi(n, m) + n) >> s)
struct FastDiv {
  uint32_t m, s;
  static FastDiv of(uint32_t d) {
    uint32_t s = 0;
    while ((uint64_t(1) << s) < d) ++s;
    const uint64_t m = (uint64_t(1) << 32) * ((uint64_t(1) << s) - d) / d + 1;
    return FastDiv{uint32_t(m), s};
  }
  LC_HD int32_t div(int32_t n) const {
#if defined(__CUDA_ARCH__)
    const uint32_t hi = __umulhi(uint32_t(n), m);
#else
    const uint32_t hi = uint32_t((uint64_t(uint32_t(n)) * m) >> 32);
#endif
    return int32_t((hi + uint32_t(n)) >> s);
  }
};

// counter += step in [0, extent); returns how often it wrapped (no division unless it did)
LC_HD int64_t advance(int64_t* counter, int64_t extent, int64_t step) {
  if (extent == 1 || step == 0) return extent == 1 ? step : 0;
  *counter += step;
  if (*counter < extent) return 0;
  const int64_t wraps = *counter / extent;
  *counter -= wraps * extent;
  return wraps;
}

}  // namespace lc
