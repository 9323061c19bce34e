// Warp-level tensor-core primitives for the 16-bit dtypes, on the GPU (sm_80+:
// ldmatrix and mma.sync) and in the CPU emulator (emulate/emulator.cpp runs a
// warp's 32 fibers to sync_warp() and back, so a warp-collective operation is
// an exchange of the lanes' fragments between two warp barriers).
//
// mma_16816: D (16 x 8, float32) += A (16 x 16) * B (16 x 8), A and B half or
// bfloat16, the products exact and summed in float32 (PTX ISA, "Matrix Fragments
// for mma.m16n8k16"). Lane l (g = l / 4, q = l % 4) holds
//   a[r]: A[g + 8 (r % 2)][8 (r / 2) + 2q + {0, 1}]   (r = 0..3, two values a register)
//   b[r]: B[8 r + 2q + {0, 1}][g]                      (r = 0..1)
//   c[e]: D[g + 8 (e / 2)][2q + e % 2]                 (e = 0..3)
// load_a: A from a 16 x 16 tile of shared memory (rows `stride` values apart,
// 16-byte aligned): ldmatrix.x4 on the GPU, the same four registers read lane by
// lane in the emulator.
#pragma once

#include <cstdint>
#include <type_traits>

#include "portable.h"

namespace lc {

#if defined(__CUDACC__)
LC_DEVICE void sync_warp() { __syncwarp(); }
template <class T> LC_DEVICE uint16_t bits_of(T v);
template <> LC_DEVICE uint16_t bits_of<half_t>(half_t v) { return __half_as_ushort(v); }
template <> LC_DEVICE uint16_t bits_of<bf16_t>(bf16_t v) { return __bfloat16_as_ushort(v); }
template <class T> LC_DEVICE T of_bits(uint16_t b);
template <> LC_DEVICE half_t of_bits<half_t>(uint16_t b) { return __ushort_as_half(b); }
template <> LC_DEVICE bf16_t of_bits<bf16_t>(uint16_t b) { return __ushort_as_bfloat16(b); }
// tensor cores (mma.sync m16n8k16 with these types) from sm_80; older GPUs take the
// kernels' direct path
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
constexpr bool kHaveMma = true;
#else
constexpr bool kHaveMma = false;
#endif
#else
void sync_warp();  // the emulator's warp barrier (emulate/emulator.cpp)
// the emulator's check that a wide access is aligned as the GPU requires (a misaligned
// address fails the launch, as it faults on the GPU): returns `at`
const void* aligned_access(const void* at, int bytes);
template <class T> inline uint16_t bits_of(T v) { return v.bits; }
template <class T> inline T of_bits(uint16_t b) { return T{b}; }
constexpr bool kHaveMma = true;
#endif

// two 16-bit values as one register, `lo` in the low half (the fragments' order)
template <class T>
LC_DEVICE uint32_t pack2(T lo, T hi) {
  return uint32_t(bits_of(lo)) | (uint32_t(bits_of(hi)) << 16);
}

// `v` in a register of its own: the compiler may not merge it with an equal value (mma
// operands are register pairs; two pairs that share a value cost a move per mma)
#if defined(__CUDACC__)
LC_DEVICE uint32_t distinct(uint32_t v) {
  asm volatile("" : "+r"(v));
  return v;
}
#else
inline uint32_t distinct(uint32_t v) { return v; }
#endif

// two float32 values rounded to T as one register (pack2's order): one F2FP on the GPU
#if defined(__CUDACC__)
template <class T>
LC_DEVICE uint32_t pack_floats(float lo, float hi) {
  if constexpr (std::is_same<T, half_t>::value) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  } else {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
}
#else
template <class T>
inline uint32_t pack_floats(float lo, float hi) { return pack2(from_float<T>(lo), from_float<T>(hi)); }
#endif

// the low (high) halves of two registers as one: (lo(a), lo(b)) / (hi(a), hi(b)), one PRMT
#if defined(__CUDACC__)
LC_DEVICE uint32_t low_halves(uint32_t a, uint32_t b) { return __byte_perm(a, b, 0x5410); }
LC_DEVICE uint32_t high_halves(uint32_t a, uint32_t b) { return __byte_perm(a, b, 0x7632); }
#else
inline uint32_t low_halves(uint32_t a, uint32_t b) { return (a & 0xffffu) | (b << 16); }
inline uint32_t high_halves(uint32_t a, uint32_t b) { return (a >> 16) | (b & 0xffff0000u); }
#endif

// true on every lane if `v` holds on every lane of the warp (all lanes call it), through
// `flag`, a word of the warp's shared memory that is 0 on entry and left 0 (lane 0 resets
// it; the warp syncs again before the next call). A shared word rather than a vote: with
// __all_sync ptxas if-converted conn_mma's staging (value-by-value loads issued
// predicated off; model: its 28 x 28 input gradient 21-26 -> 28-34 us).
LC_DEVICE bool warp_all(bool v, volatile uint32_t* flag) {
  if (!v) flag[0] = 1;
  sync_warp();
  const bool all = flag[0] == 0;
  sync_warp();
  if ((thread_index() & 31) == 0) flag[0] = 0;
  return all;
}

// The filter of kernel rows 0..KF - 1 as pairs of 16-bit values, each a B register of the
// tensor-core kernels' Toeplitz blocks: pairs[i (KF + 2) + u] = (w(i, u - 1), w(i, u)) for
// u = 0..KF, zeros outside the filter (u = KF + 1 is the zero pair); w flipped for FLIP
// (w(i, j) = wp[(KF - 1 - i) skh + (KF - 1 - j) skw]). The warp's lanes share the work.
template <class T, int KF, bool FLIP>
LC_DEVICE void filter_pairs(const T* wp, int32_t skh, int32_t skw, uint32_t* pairs, int lane) {
  for (int e = lane; e < KF * (KF + 2); e += 32) {
    const int i = e / (KF + 2), j = e % (KF + 2) - 1;
    const int fi = FLIP ? KF - 1 - i : i;
    const T lo = j >= 0 && j < KF ? wp[fi * skh + (FLIP ? KF - 1 - j : j) * skw] : from_float<T>(0.0f);
    const T hi = j + 1 < KF ? wp[fi * skh + (FLIP ? KF - 2 - j : j + 1) * skw] : from_float<T>(0.0f);
    pairs[e] = pack2(lo, hi);
  }
}

// The slot of filter_pairs' pair u (w(i, u - 1), w(i, u)) in a kernel row: u itself for
// u = 0..KF, else the zero pair (KF + 1).
template <int KF>
LC_DEVICE int pair_slot(int u) { return u >= 0 && u <= KF ? u : KF + 1; }

// 8 values of row `src` from column `col` as four registers (pack2), zeros outside
// columns 0..W or where `row_in` is false: the value-by-value staging of the tensor-core
// kernels (edges, unaligned rows)
template <class T>
LC_DEVICE void gather8(const T* src, int32_t col, int32_t W, bool row_in, uint32_t (&v4)[4]) {
  T v[8];
LC_UNROLL
  for (int j = 0; j < 8; ++j)
    v[j] = row_in && col + j >= 0 && col + j < W ? src[col + j] : from_float<T>(0.0f);
LC_UNROLL
  for (int j = 0; j < 4; ++j) v4[j] = pack2(v[2 * j], v[2 * j + 1]);
}

// two values to a 4-byte aligned address; 16 (8, 4) bytes between registers and memory
// (aligned to as many bytes), each one source line on both targets
#if defined(__CUDACC__)
#define LC_STORE_PAIR(at, lo, hi) (*reinterpret_cast<uint32_t*>(at) = pack2(lo, hi))
#define LC_LOAD_WORDS(u, src)                                      \
  do {                                                              \
    const uint4 v_ = *reinterpret_cast<const uint4*>(src);          \
    u[0] = v_.x, u[1] = v_.y, u[2] = v_.z, u[3] = v_.w;             \
  } while (0)
#define LC_STORE_WORDS(dst, u) (*reinterpret_cast<uint4*>(dst) = make_uint4(u[0], u[1], u[2], u[3]))
// 8 and 4 bytes (aligned) to two registers / one
#define LC_LOAD_WORDS2(u, src)                                     \
  do {                                                              \
    const uint2 v_ = *reinterpret_cast<const uint2*>(src);          \
    (u)[0] = v_.x, (u)[1] = v_.y;                                   \
  } while (0)
#define LC_LOAD_WORD(u, src) ((u) = *reinterpret_cast<const uint32_t*>(src))
// from global memory, read-only for the kernel's life: one ld.global.nc.v4 (also where the
// pointer's address space is not known to the compiler, e.g. after `opaque`; asm rather
// than __ldg, whose SASS line is the CUDA header's: the cost model pairs the GPU's
// instruction with the emulator's access by source line)
#define LC_LOAD_WORDS_GLOBAL(u, src)                                                           \
  asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];\n"                                   \
               : "=r"(u[0]), "=r"(u[1]), "=r"(u[2]), "=r"(u[3]) : "l"(src))
// to global memory: one st.global.v4 (the plain uint4 store above, of words assembled
// from 16-bit halves, reached the PTX as four 32-bit stores: 4x the L1 store sectors)
#define LC_STORE_WORDS_GLOBAL(dst, u)                                                  \
  asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"l"(dst), "r"(u[0]), "r"(u[1]), \
               "r"(u[2]), "r"(u[3]) : "memory")
#else
#define LC_STORE_PAIR(at, lo, hi)                                         \
  do {                                                                    \
    const uint32_t w_ = pack2(lo, hi);                                    \
    std::memcpy(const_cast<void*>(aligned_access(at, 4)), &w_, 4);        \
  } while (0)
#define LC_LOAD_WORDS(u, src) std::memcpy(u, aligned_access(src, 16), 16)
#define LC_LOAD_WORDS2(u, src) std::memcpy(u, aligned_access(src, 8), 8)
#define LC_LOAD_WORD(u, src) std::memcpy(&(u), aligned_access(src, 4), 4)
#define LC_STORE_WORDS(dst, u) std::memcpy(const_cast<void*>(aligned_access(dst, 16)), u, 16)
#define LC_STORE_WORDS_GLOBAL(dst, u) LC_STORE_WORDS(dst, u)
#define LC_LOAD_WORDS_GLOBAL(u, src) LC_LOAD_WORDS(u, src)
#endif

// The aligned chunk of 8 values of row `src` from column `col` (a multiple of 8) as four
// registers, loaded in pieces of `piece` values (8: one 16-byte load; 4, 2: 8- or 4-byte
// loads; the row's start aligned to as many bytes): the pieces wholly inside columns
// 0..W where `row_in`, zeros elsewhere. A piece the row's end cuts (W not a multiple of
// `piece`) is left zero: gather8 takes such a chunk value by value.
template <class T>
LC_DEVICE void chunk_pieces(const T* src, int32_t col, int32_t W, bool row_in, int32_t piece,
                            uint32_t (&v4)[4]) {
  v4[0] = v4[1] = v4[2] = v4[3] = 0u;
  if (!row_in) return;
  if (piece == 8) {
    if (col >= 0 && col + 8 <= W) LC_LOAD_WORDS(v4, src + col);
  } else if (piece == 4) {
LC_UNROLL
    for (int h = 0; h < 2; ++h)
      if (col + 4 * h >= 0 && col + 4 * h + 4 <= W) LC_LOAD_WORDS2(v4 + 2 * h, src + col + 4 * h);
  } else {
LC_UNROLL
    for (int h = 0; h < 4; ++h)
      if (col + 2 * h >= 0 && col + 2 * h + 2 <= W) LC_LOAD_WORD(v4[h], src + col + 2 * h);
  }
}

// Two neighbouring channels_last pixels' channels c0..c0 + 7 (16 bytes each at src and
// src + sw, where in0 / in1; zeros elsewhere) into v0, v1 (channel pairs of each pixel)
LC_DEVICE void load_pixel_pair(const void* src, int32_t sw_bytes, bool in0, bool in1,
                               uint32_t (&v0)[4], uint32_t (&v1)[4]) {
  const unsigned char* p = static_cast<const unsigned char*>(src);
LC_UNROLL
  for (int j = 0; j < 4; ++j) v0[j] = v1[j] = 0u;
  if (in0) LC_LOAD_WORDS_GLOBAL(v0, p);
  if (in1) LC_LOAD_WORDS_GLOBAL(v1, p + sw_bytes);
}

// load_pixel_pair's v0, v1 as one 32-bit word per channel (the two pixels' values),
// channel k's word to at + k * stride
template <int CW>
LC_DEVICE void store_pixel_pair(const uint32_t (&v0)[4], const uint32_t (&v1)[4], unsigned char* at,
                                int64_t stride) {
  static_assert(CW == 8, "8 channels: two 16-byte loads");
LC_UNROLL
  for (int k = 0; k < CW; ++k) {
    const uint32_t a0 = v0[k >> 1], a1 = v1[k >> 1];
    *reinterpret_cast<uint32_t*>(at + k * stride) =
        (k & 1) ? high_halves(a0, a1) : low_halves(a0, a1);
  }
}

// Both: the staging of the channels_last tensor-core kernels, whose warps each keep one
// channel's rows.
template <int CW>
LC_DEVICE void stage_pixel_pair(const void* src, int32_t sw_bytes, bool in0, bool in1,
                                unsigned char* at, int64_t stride) {
  uint32_t v0[4], v1[4];
  load_pixel_pair(src, sw_bytes, in0, in1, v0, v1);
  store_pixel_pair<CW>(v0, v1, at, stride);
}

// One source line on both targets (the cost model pairs the GPU's instruction with the
// emulator's accesses by line): ldmatrix.x4, lane l giving row l % 8 of matrix l / 8,
// or the emulator's four reads of this lane's registers.
#if defined(__CUDACC__)
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#define LC_LOAD_A(a, tile, stride, lane)                                                       \
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"             \
               : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3])                                 \
               : "r"(static_cast<uint32_t>(__cvta_generic_to_shared(                            \
                   tile + (8 * ((lane >> 3) & 1) + (lane & 7)) * stride + 8 * (lane >> 4)))))
#else
#define LC_LOAD_A(a, tile, stride, lane) (a[0] = a[1] = a[2] = a[3] = 0u)
#endif
#else
#define LC_LOAD_A(a, tile, stride, lane)                                                     \
  for (int r_ = 0; r_ < 4; ++r_)                                                             \
  std::memcpy(&a[r_], tile + ((lane >> 2) + 8 * (r_ & 1)) * stride + 8 * (r_ >> 1) + 2 * (lane & 3), 4)
#endif

// A shared-memory address as ldmatrix takes it (a 32-bit shared-window address on the
// GPU, converted once so that constant offsets fold into the instruction), plus bytes.
#if defined(__CUDACC__)
using SmemAddr = uint32_t;
LC_DEVICE SmemAddr smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
#else
using SmemAddr = const char*;
inline SmemAddr smem_addr(const void* p) { return static_cast<const char*>(p); }
#endif

// Four floats from shared memory at a SmemAddr (16-byte aligned): one ld.shared.v4 whose
// SASS line is the caller's (a plain load's line may go to the instruction that uses
// the values, which unpairs the cost model's anchors); _F1: one float (4-byte aligned).
#if defined(__CUDACC__)
#define LC_LOAD_SHARED_F4(f, at)                                                      \
  asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];\n"                           \
               : "=f"((f)[0]), "=f"((f)[1]), "=f"((f)[2]), "=f"((f)[3])               \
               : "r"(at))
#define LC_LOAD_SHARED_F1(f, at) asm volatile("ld.shared.f32 %0, [%1];\n" : "=f"(f) : "r"(at))
#else
#define LC_LOAD_SHARED_F4(f, at) std::memcpy(f, at, 16)
#define LC_LOAD_SHARED_F1(f, at) std::memcpy(&(f), at, 4)
#endif

// ldmatrix.x2.trans / .x4.trans: two (four) 8 x 8 matrices, lanes 8m..8m + 7 giving the
// rows of matrix m (`row_`: this lane's row, a SmemAddr, 16-byte aligned); lane l receives
// r_m = (M_m[2q][g], M_m[2q + 1][g]) (g = l / 4, q = l % 4), the transposed fragment: the
// A or B register of mma_16816 whose two values lie in one column of the stored rows.
// The emulator exchanges the lanes' row addresses, then each lane reads the 4 bytes
// (row l % 8, word l / 8) of every matrix, as the hardware's phases read them, and the
// words are redistributed between warp barriers.
#if defined(__CUDACC__)
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#define LC_LOAD_T2(r, row_)                                                               \
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"          \
               : "=r"(r[0]), "=r"(r[1])                                                   \
               : "r"(row_))
#define LC_LOAD_T4(r, row_)                                                               \
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"  \
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])                           \
               : "r"(row_))
#else
#define LC_LOAD_T2(r, row_) (r[0] = r[1] = 0u)
#define LC_LOAD_T4(r, row_) (r[0] = r[1] = r[2] = r[3] = 0u)
#endif
#else
struct LdsmLane {
  const void* addr;
  uint32_t w[4];
};
inline LdsmLane g_ldsm_lanes[1024];  // one block's lanes

// the lane's M registers from the words its warp read (rows 2q, 2q + 1, column g)
template <int M>
inline void ldsm_trans_pick(uint32_t* out) {
  const int t = thread_index(), lane = t & 31, w0 = t - lane, g = lane >> 2, q = lane & 3;
  sync_warp();  // every lane's words are in
  uint32_t r[M];
  for (int m = 0; m < M; ++m) {
    const uint32_t lo = g_ldsm_lanes[w0 + 2 * q + 8 * (g >> 1)].w[m];
    const uint32_t hi = g_ldsm_lanes[w0 + 2 * q + 1 + 8 * (g >> 1)].w[m];
    r[m] = ((lo >> (16 * (g & 1))) & 0xffffu) | (((hi >> (16 * (g & 1))) & 0xffffu) << 16);
  }
  sync_warp();  // no lane overwrites its words before every lane has read them
  for (int m = 0; m < M; ++m) out[m] = r[m];
}

#define LC_LOAD_TN(M, r, row_)                                                                 \
  do {                                                                                         \
    const int t_ = thread_index(), l_ = t_ & 31;                                               \
    g_ldsm_lanes[t_].addr = static_cast<const void*>(row_);                                    \
    sync_warp();                                                                               \
    for (int m_ = 0; m_ < M; ++m_)                                                             \
      std::memcpy(&g_ldsm_lanes[t_].w[m_], static_cast<const char*>(g_ldsm_lanes[t_ - l_ + 8 * m_ + (l_ & 7)].addr) + 4 * (l_ >> 3), 4); \
    ldsm_trans_pick<M>(r);                                                                     \
  } while (0)
#define LC_LOAD_T2(r, row_) LC_LOAD_TN(2, r, row_)
#define LC_LOAD_T4(r, row_) LC_LOAD_TN(4, r, row_)
#endif

// ldmatrix.x4 (not transposed): four 8 x 8 matrices, lanes 8m..8m + 7 giving the rows of
// matrix m (`row_`: this lane's row, a SmemAddr, 16-byte aligned); lane l receives
// r_m = (M_m[g][2q], M_m[g][2q + 1]) (g = l / 4, q = l % 4): the A or B register of
// mma_16816 whose two values lie in one stored row. The emulator reads as LC_LOAD_TN
// (the hardware's phases) and hands lane l the word (row g, word q) of every matrix.
#if defined(__CUDACC__)
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#define LC_LOAD_N4(r, row_)                                                               \
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"        \
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])                           \
               : "r"(row_))
#else
#define LC_LOAD_N4(r, row_) (r[0] = r[1] = r[2] = r[3] = 0u)
#endif
#else
inline void ldsm_pick4(uint32_t* out) {
  const int t = thread_index(), lane = t & 31, w0 = t - lane, g = lane >> 2, q = lane & 3;
  sync_warp();  // every lane's words are in
  uint32_t r[4];
  for (int m = 0; m < 4; ++m) r[m] = g_ldsm_lanes[w0 + g + 8 * q].w[m];
  sync_warp();  // no lane overwrites its words before every lane has read them
  for (int m = 0; m < 4; ++m) out[m] = r[m];
}
#define LC_LOAD_N4(r, row_)                                                                    \
  do {                                                                                         \
    const int t_ = thread_index(), l_ = t_ & 31;                                               \
    g_ldsm_lanes[t_].addr = static_cast<const void*>(row_);                                    \
    sync_warp();                                                                               \
    for (int m_ = 0; m_ < 4; ++m_)                                                             \
      std::memcpy(&g_ldsm_lanes[t_].w[m_], static_cast<const char*>(g_ldsm_lanes[t_ - l_ + 8 * m_ + (l_ & 7)].addr) + 4 * (l_ >> 3), 4); \
    ldsm_pick4(r);                                                                             \
  } while (0)
#endif

template <class T>
LC_DEVICE void load_a(const T* tile, int stride, uint32_t (&a)[4]) {
  const int lane = thread_index() & 31;
  LC_LOAD_A(a, tile, stride, lane);
}

#if defined(__CUDACC__)
template <class T>
LC_DEVICE void mma_16816(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  if constexpr (std::is_same<T, half_t>::value) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
#endif
}
#else
struct MmaLane {
  uint32_t a[4], b[2];
};
inline MmaLane g_mma_lanes[1024];  // one block's lanes (fibers run one at a time)

template <class T>
inline void mma_16816(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  const int t = thread_index(), lane = t & 31, w0 = t - lane, g = lane >> 2, q = lane & 3;
  MmaLane& mine = g_mma_lanes[t];
  std::memcpy(mine.a, a, sizeof mine.a);
  std::memcpy(mine.b, b, sizeof mine.b);
  sync_warp();  // every lane's fragments are in
  auto value = [](uint32_t reg, int k) { return to_float(T{uint16_t(reg >> (16 * (k & 1)))}); };
  for (int e = 0; e < 4; ++e) {
    const int row = g + 8 * (e >> 1), col = 2 * q + (e & 1);
    float sum = 0.0f;
    for (int k = 0; k < 16; ++k) {
      const MmaLane& la = g_mma_lanes[w0 + (row & 7) * 4 + ((k & 7) >> 1)];
      const MmaLane& lb = g_mma_lanes[w0 + col * 4 + ((k & 7) >> 1)];
      sum += value(la.a[(row >> 3) + 2 * (k >> 3)], k) * value(lb.b[k >> 3], k);
    }
    c[e] += sum;
  }
  sync_warp();  // no lane overwrites its fragments before every lane has read them
}
#endif

// the two 16-bit values at value 2w + odd of the words w, w + 1 (`lo`, `hi`) as one register:
// `lo` itself, or (hi(lo), lo(hi)) for an odd offset (one PRMT)
#if defined(__CUDACC__)
LC_DEVICE uint32_t pair_from(uint32_t lo, uint32_t hi, bool odd) {
  return __byte_perm(lo, hi, odd ? 0x5432 : 0x3210);
}
#else
inline uint32_t pair_from(uint32_t lo, uint32_t hi, bool odd) { return odd ? (lo >> 16) | (hi << 16) : lo; }
#endif

// a word to a 4-byte aligned address
#if defined(__CUDACC__)
#define LC_STORE_WORD(dst, u) (*reinterpret_cast<uint32_t*>(dst) = (u))
#else
#define LC_STORE_WORD(dst, u)                                             \
  do {                                                                    \
    const uint32_t w_ = (u);                                              \
    std::memcpy(const_cast<void*>(aligned_access(dst, 4)), &w_, 4);       \
  } while (0)
#endif

// 8 bytes (aligned) from two registers; a float32 as its word and back
#if defined(__CUDACC__)
#define LC_STORE_WORDS2(dst, u) (*reinterpret_cast<uint2*>(dst) = make_uint2((u)[0], (u)[1]))
LC_DEVICE uint32_t float_word(float v) { return __float_as_uint(v); }
LC_DEVICE float word_float(uint32_t u) { return __uint_as_float(u); }
#else
#define LC_STORE_WORDS2(dst, u) std::memcpy(const_cast<void*>(aligned_access(dst, 8)), u, 8)
inline uint32_t float_word(float v) { return float_to_bits(v); }
inline float word_float(uint32_t u) { return bits_to_float(u); }
#endif

// One 32-bit word from shared memory at a SmemAddr (4-byte aligned): one ld.shared.b32
// whose SASS line is the caller's (constant offsets from one address fold into it)
#if defined(__CUDACC__)
#define LC_LOAD_SHARED_U1(u, at) asm volatile("ld.shared.b32 %0, [%1];\n" : "=r"(u) : "r"(at))
#else
#define LC_LOAD_SHARED_U1(u, at) std::memcpy(&(u), aligned_access(at, 4), 4)
#endif

// A 4-byte word (8, 16 bytes: WORDS2, WORDS) copied from global memory (`src`, aligned to
// as many bytes, read-only for the kernel's life) to shared memory (`dst`, aligned) without
// a register: one cp.async (LDGSTS, sm_80 on), so a thread may have every copy of a tile
// in flight at once instead of the few words its registers hold between a load and its
// store. LC_COPY_WAIT() waits for this thread's copies; a barrier after it (the block's,
// or the warp's for a warp's own tile) publishes them. Double buffering: LC_COPY_COMMIT()
// closes the thread's copies issued so far into a group, LC_COPY_WAIT_GROUPS(n) waits
// until at most n (a constant) of its groups are still in flight (the newest).
// Each is one source line on both targets (the emulator copies at once, waits for
// nothing).
#if defined(__CUDACC__) && (!defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800)
#define LC_COPY_WORD_ASYNC(dst, src)                                                        \
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(smem_addr(dst)), "l"(src) \
               : "memory")
#define LC_COPY_WORDS2_ASYNC(dst, src)                                                      \
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8;\n" ::"r"(smem_addr(dst)), "l"(src) \
               : "memory")
#define LC_COPY_WORDS_ASYNC(dst, src)                                                        \
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(dst)), "l"(src) \
               : "memory")
#define LC_COPY_WAIT() asm volatile("cp.async.wait_all;\n" ::: "memory")
#define LC_COPY_COMMIT() asm volatile("cp.async.commit_group;\n" ::: "memory")
#define LC_COPY_WAIT_GROUPS(n) asm volatile("cp.async.wait_group %0;\n" ::"n"(n) : "memory")
#elif defined(__CUDACC__)  // (older GPUs: a load and a store)
#define LC_COPY_WORD_ASYNC(dst, src) \
  (*reinterpret_cast<uint32_t*>(dst) = *reinterpret_cast<const uint32_t*>(src))
#define LC_COPY_WORDS2_ASYNC(dst, src) \
  (*reinterpret_cast<uint2*>(dst) = *reinterpret_cast<const uint2*>(src))
#define LC_COPY_WORDS_ASYNC(dst, src) \
  (*reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src))
#define LC_COPY_WAIT() ((void)0)
#define LC_COPY_COMMIT() ((void)0)
#define LC_COPY_WAIT_GROUPS(n) ((void)0)
#else
#define LC_COPY_BYTES_(dst, src, n)                                         \
  do {                                                                      \
    uint32_t w_[4];                                                         \
    std::memcpy(w_, aligned_access(src, n), n);                             \
    std::memcpy(const_cast<void*>(aligned_access(dst, n)), w_, n);          \
  } while (0)
#define LC_COPY_WORD_ASYNC(dst, src) LC_COPY_BYTES_(dst, src, 4)
#define LC_COPY_WORDS2_ASYNC(dst, src) LC_COPY_BYTES_(dst, src, 8)
#define LC_COPY_WORDS_ASYNC(dst, src) LC_COPY_BYTES_(dst, src, 16)
#define LC_COPY_WAIT() ((void)0)
#define LC_COPY_COMMIT() ((void)0)
#define LC_COPY_WAIT_GROUPS(n) ((void)0)
#endif

// LC_COPY_WORD_ASYNC to the shared address `at` (a SmemAddr: one computed per run of
// copies, the others at constant offsets from it) where `pred` holds: one predicated
// cp.async, never a branch (unrolled copies of which the last few may fall outside a
// row: those predicated off on every lane make no request).
#if defined(__CUDACC__) && (!defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800)
#define LC_COPY_WORD_ASYNC_IF(at, src, pred)                                                  \
  asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %2, 0;\n"                              \
               " @p cp.async.ca.shared.global [%0], [%1], 4;\n}\n" ::"r"(at), "l"(src),     \
               "r"(int(pred))                                                                \
               : "memory")
#elif defined(__CUDACC__)
#define LC_COPY_WORD_ASYNC_IF(at, src, pred)                                                  \
  asm volatile("{\n .reg .pred p;\n .reg .b32 v;\n setp.ne.b32 p, %2, 0;\n"               \
               " @p ld.global.b32 v, [%1];\n @p st.shared.b32 [%0], v;\n}\n" ::"r"(at),     \
               "l"(src), "r"(int(pred))                                                      \
               : "memory")
#else
#define LC_COPY_WORD_ASYNC_IF(at, src, pred) \
  do {                                       \
    if (pred) LC_COPY_BYTES_(at, src, 4);    \
  } while (0)
#endif

// A copy of BYTES (4, 8 or 16: a constant) to the shared address `at` (a SmemAddr) where
// `pred` holds: from `src` where `fill` holds, else BYTES zeros without a read (cp.async's
// source size 0; `src` should still point into the tensor). One predicated cp.async, no
// branch: rows outside an image staged as zeros by the same instruction as the others.
#if defined(__CUDACC__) && (!defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800)
#define LC_COPY_ASYNC_FILL_IF(at, src, BYTES, pred, fill)                                     \
  asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %2, 0;\n"                              \
               " @p cp.async.ca.shared.global [%0], [%1], %3, %4;\n}\n" ::"r"(at), "l"(src), \
               "r"(int(pred)), "n"(BYTES), "r"((fill) ? (BYTES) : 0)                        \
               : "memory")
#elif defined(__CUDACC__)  // (older GPUs: loads and shared stores)
template <int BYTES>
LC_DEVICE void copy_fill_sync(SmemAddr at, const void* src, bool fill) {
  uint32_t w[BYTES / 4];
  for (int i = 0; i < BYTES / 4; ++i) w[i] = fill ? static_cast<const uint32_t*>(src)[i] : 0u;
  for (int i = 0; i < BYTES / 4; ++i)
    asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(at + 4 * i), "r"(w[i]) : "memory");
}
#define LC_COPY_ASYNC_FILL_IF(at, src, BYTES, pred, fill)      \
  do {                                                        \
    if (pred) copy_fill_sync<BYTES>(at, src, bool(fill));     \
  } while (0)
#else
#define LC_COPY_ASYNC_FILL_IF(at, src, BYTES, pred, fill)                      \
  do {                                                                        \
    if (pred) {                                                               \
      if (fill) {                                                             \
        LC_COPY_BYTES_(at, src, BYTES);                                       \
      } else {                                                                \
        const uint32_t z_[4] = {0u, 0u, 0u, 0u};                              \
        std::memcpy(const_cast<void*>(aligned_access(at, BYTES)), z_, BYTES); \
      }                                                                       \
    }                                                                         \
  } while (0)
#endif

}  // namespace lc
