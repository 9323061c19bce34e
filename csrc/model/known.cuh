// Kernels whose cost is known by construction, for the cost model's own tests
// (tests/test_perfmodel.py): a copy, a chain of multiply-adds, a strided
// shared-memory read, stores with lanes left out, a strided global load,
// asynchronous copies to shared memory, and copies predicated off on every lane. They follow the kernel-body convention of csrc/ (a
// Body::run(smem, args) that launch.cuh wraps for the GPU and the emulator
// runs on the CPU); they are compiled into neither the extension nor the
// tests' emulator, only into the cost model's traced emulator (LC_EMU_TRACE)
// and csrc/model/known.cu.
#pragma once

#include "../mma.cuh"  // sync_warp
#include "../portable.h"

namespace lc {

struct KnownArgs {
  const float* src;
  float* dst;
  int64_t n;       // elements
  int64_t stride;  // Copy: threads in the grid; SharedStride: the read stride in floats
};

// dst[i] = src[i] for i < n, a grid-stride loop: per element one 4-byte load and
// one 4-byte store, fully coalesced.
struct Copy {
  static LC_DEVICE void run(unsigned char*, const KnownArgs& a) {
    for (int64_t i = block_index() * block_threads() + thread_index(); i < a.n; i += a.stride)
      a.dst[i] = a.src[i];
  }
};

// 64 dependent multiply-adds per thread (unrolled), one load and one store.
struct FmaChain {
  static constexpr int kLength = 64;
  static LC_DEVICE void run(unsigned char*, const KnownArgs& a) {
    const int64_t i = block_index() * block_threads() + thread_index();
    float v = a.src[i];
    const float w = a.src[a.n - 1 - i];
LC_UNROLL
    for (int k = 0; k < kLength; ++k) v = v * w + 0.5f;
    a.dst[i] = v;
  }
};

// One warp per block writes 32 * stride floats of shared memory, then lane l
// reads word l * stride: stride 1 is conflict-free (1 wavefront), stride 2 is a
// 2-way conflict, stride 32 puts every lane in bank 0 (32 wavefronts).
struct SharedStride {
  static LC_DEVICE void run(unsigned char* smem, const KnownArgs& a) {
    float* s = reinterpret_cast<float*>(smem);
    const int lane = thread_index();
    for (int64_t k = lane; k < 32 * a.stride; k += 32) s[k] = float(k);
    sync_threads();
    a.dst[block_index() * 32 + lane] = s[lane * a.stride];
  }
};

// One warp per block stages `stride` tiles in turn, each as n = 2 units of 32 floats
// (a loop one store site, as in a staging loop) of which the second leaves out lanes
// 24..31 (a partial row group), a warp barrier after each tile. Lane l's word in unit u
// of tile t is 72 t + 32 u + l: every store's lanes
// fall in distinct banks (1 wavefront). The trace must pair lanes within a tile: taken
// as their second store, lanes 24..31's next tile's first (banks 0..7) would conflict
// with lanes 0..7.
struct PartialUnits {
  static LC_DEVICE void run(unsigned char* smem, const KnownArgs& a) {
    float* s = reinterpret_cast<float*>(smem);
    const int lane = thread_index();
    for (int64_t t = 0; t < a.stride; ++t) {
      for (int64_t u = 0; u < a.n; ++u) {
        if (u == 1 && lane >= 24) continue;
        s[72 * t + 32 * u + lane] = float(t);
      }
      sync_warp();
    }
    a.dst[block_index() * 32 + lane] = s[lane];
  }
};

// One warp per block: lane l loads src[l * stride] (4 bytes) and stores it to
// dst[block * 32 + l]. The load's 32 lanes touch 32 sectors in ceil(32 * stride / 32)
// 128-byte lines when stride <= 8 (one line per lane from stride 32 on): stride 1 is
// one line and 4 sectors, stride 8 is 8 lines and 32 sectors, stride 32 is 32 lines.
struct GlobalStride {
  static LC_DEVICE void run(unsigned char*, const KnownArgs& a) {
    const int lane = thread_index();
    a.dst[block_index() * 32 + lane] = a.src[lane * a.stride];
  }
};

// Each thread copies 8 floats to shared memory with asynchronous copies (cp.async, no
// register between load and store), src[8 T + 32 k + l] for warp T of the grid, lane l,
// k = 0..7, to word 32 k + l of its warp's 256; waits for them; adds the 8 words it
// copied (its own: no barrier needed) and stores the sum to dst[thread]. Per warp: 8
// coalesced 128-byte copies (8 lines, 32 sectors, 8 conflict-free shared stores), all 8
// in flight in one round trip (1024 bytes), 8 conflict-free shared loads, one store.
// PREDICATED: copy and read k only where lane % 8 + 8 k < a.stride (a lane's own
// predicate, as conn_band_cl's copies of a row's columns): for a.stride = 24 copies
// 0..2 on every lane, 3..7 on none. The 8 unrolled copies (and reads) are issued, those
// predicated off on every lane make no request (no sectors, lines or wavefronts).
template <bool PREDICATED>
struct AsyncCopies {
  static LC_DEVICE void run(unsigned char* smem, const KnownArgs& a) {
    float* s = reinterpret_cast<float*>(smem) + 256 * (thread_index() >> 5);
    const int lane = thread_index() & 31;
    const int64_t t = block_index() * block_threads() + thread_index();
    const float* src = a.src + 8 * (t - lane);
LC_UNROLL
    for (int k = 0; k < 8; ++k)
      if (!PREDICATED || (lane & 7) + 8 * k < a.stride)
        LC_COPY_WORD_ASYNC(s + 32 * k + lane, src + 32 * k + lane);
    LC_COPY_WAIT();
    float v = 0.0f;
LC_UNROLL
    for (int k = 0; k < 8; ++k)
      if (!PREDICATED || (lane & 7) + 8 * k < a.stride) v += s[32 * k + lane];
    a.dst[t] = v;
  }
};
using AsyncCopy = AsyncCopies<false>;
using PredicatedCopy = AsyncCopies<true>;

}  // namespace lc
