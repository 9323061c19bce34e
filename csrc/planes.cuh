// Between channels_last images and NCHW planes: a batched transpose with 16-byte loads
// and stores on both sides and no shared memory,
//   out[n][k][r] = in[n][r][k]   (n < N, r < R, k < K),
// rows of `in` (and of `out`) one value apart along k (along r). channels_last to
// planes: r = pixel, k = channel; planes to channels_last: r = channel, k = pixel.
//
// A thread takes V x V values (V = 16 bytes / value: 8 for 16-bit types, 4 for float32):
// rows r0..r0 + V - 1, one 16-byte load each at column k0, transposed in registers
// (16-bit: one PRMT per output word), stored as rows k0..k0 + V - 1 of `out`, 16 bytes
// each at column r0. A warp is 4 r-blocks x 8 k-blocks, lane = k-block + 8 r-block: its
// loads are 128 contiguous bytes of each of 4 rows, its stores 64 contiguous bytes of
// each of 8 rows of `out`, whole 32-byte sectors on both sides.
//
// Edges (plan.h plan_planes pads the planes): rows r >= R are not read (zeros are stored
// there, in the planes' padding) and rows k >= K are not written; the planes' side is
// padded to whole blocks of V so that every load and store is in bounds and aligned.
#pragma once

#include "mma.cuh"
#include "portable.h"

namespace lc {

struct PlanesArgs {
  const void* src;
  void* dst;
  int64_t N, R, K;          // samples, rows of src (columns of dst), columns of src (rows of dst)
  int64_t src_n, src_r;     // src strides (values; unit along k)
  int64_t dst_n, dst_k;     // dst strides (values; unit along r)
  int64_t r_tiles, k_tiles;  // warp tiles: 4 V rows x 8 V columns
};

template <class T>
struct Planes {
  static constexpr int V = 16 / int(sizeof(T));  // values per 16 bytes
  static constexpr int EW = sizeof(T) >= 4 ? int(sizeof(T)) / 4 : 1;  // words per value (>= 4 bytes)

  static LC_DEVICE void run(unsigned char*, const PlanesArgs& a) {
    const int lane = thread_index() & 31;
    const int64_t task = block_index() * (block_threads() >> 5) + (thread_index() >> 5);
    const int64_t per_sample = a.r_tiles * a.k_tiles;
    if (task >= a.N * per_sample) return;  // the whole warp
    const int64_t n = task / per_sample, rest = task % per_sample;
    const int64_t r0 = (rest / a.k_tiles * 4 + (lane >> 3)) * V;
    const int64_t k0 = (rest % a.k_tiles * 8 + (lane & 7)) * V;
    if (r0 >= a.R || k0 >= a.K) return;
    const T* src = static_cast<const T*>(a.src) + n * a.src_n + r0 * a.src_r + k0;
    T* dst = static_cast<T*>(a.dst) + n * a.dst_n + k0 * a.dst_k + r0;
    uint32_t in[V][4];
LC_UNROLL
    for (int j = 0; j < V; ++j) {
      if (r0 + j < a.R) {
        LC_LOAD_WORDS_GLOBAL(in[j], src + j * a.src_r);
      } else {
        in[j][0] = in[j][1] = in[j][2] = in[j][3] = 0u;
      }
    }
LC_UNROLL
    for (int i = 0; i < V; ++i) {
      if (k0 + i >= a.K) break;
      uint32_t out[4];
      if constexpr (sizeof(T) == 2) {
        // value i of rows 2w, 2w + 1 (word i / 2 of each, its low or high half)
LC_UNROLL
        for (int w = 0; w < 4; ++w)
          out[w] = i % 2 == 0 ? low_halves(in[2 * w][i / 2], in[2 * w + 1][i / 2])
                              : high_halves(in[2 * w][i / 2], in[2 * w + 1][i / 2]);
      } else {
        // value i of row j: words EW i .. EW i + EW - 1 of row j
LC_UNROLL
        for (int w = 0; w < 4; ++w) out[w] = in[w / EW][EW * i + w % EW];
      }
      LC_STORE_WORDS_GLOBAL(dst + i * a.dst_k, out);
    }
  }
};

}  // namespace lc
