// The staging of the batch-as-M tensor-core kernels (conn_batch.cuh, corr_batch.cuh):
// each sample's plane of a channel in shared memory as one row of a grid, GW values wide
// (8 or 16) and GR rows high, the plane's row qy at grid row qy + RO (rows above and
// below it zero: the kernels' padding), zeros past its columns too. A channel's sample
// rows are AS values apart (an odd number of 16-byte units: ldmatrix's eight rows fall
// in distinct banks), its channels CS apart.
//
// A grid row may be RS > GW values apart (the columns past GW are never read), and the
// plane's columns may start at grid column CO (CO zero columns first).
//
// Values move one by one, coalesced and without alignment needs (where rows are aligned,
// two columns a word: the pair functions below): a thread takes a grid
// position (channel j, row, column) and walks the block's samples. The positions of CH
// channels are numbered in a plane's row order (position fastest), or, for a
// channels_last tensor, with a pixel's channels together (channel fastest), so that a
// warp's lanes read neighbouring values either way. Offsets are 32-bit from the block's
// first value (plan.h batch_span_32).
#pragma once

#include "mma.cuh"
#include "params.h"
#include "plan.h"
#include "portable.h"

namespace lc {

template <int CH_, int GW_, int GR_, int RO_, int AS_, int CS_, int RS_ = GW_, int CO_ = 0>
struct BatchGrid {
  static constexpr int CH = CH_, GW = GW_, GR = GR_, RO = RO_, AS = AS_, CS = CS_;
  static constexpr int RS = RS_;  // a grid row's stride (values; GW, or more for ldmatrix's banks)
  static constexpr int CO = CO_;  // the plane's column 0 at grid column CO (zeros before it)
  static constexpr int kPositions = CH * GR * GW;  // of the block's channels
};

struct BatchPos {
  int j, qy, qx;  // channel in the block, row and column in the plane
  int slot;       // offset of sample 0's value in the staged rows
  bool in;        // inside the plane and the channels
};

// Position f (0 .. G::kPositions - 1) of the block's channels c0.. of (H x W) planes (the
// grid's row 0 and column 0 at the plane's y0, x0: conn_batch_wide.cuh's tiles)
template <class G>
LC_DEVICE BatchPos batch_pos(int f, bool channels_last, int32_t H, int32_t W, int64_t c0,
                             int64_t C, int32_t y0 = 0, int32_t x0 = 0) {
  BatchPos b;
  const int pos = channels_last ? f / G::CH : f % (G::GR * G::GW);
  b.j = channels_last ? f % G::CH : f / (G::GR * G::GW);
  const int gr = pos / G::GW, gc = pos % G::GW;
  b.qy = gr - G::RO + y0;
  b.qx = gc - G::CO + x0;
  b.slot = b.j * G::CS + gr * G::RS + gc;
  b.in = f < G::kPositions && b.qy >= 0 && b.qy < H && b.qx >= 0 && b.qx < W && c0 + b.j < C;
  return b;
}

// The offset of position b from the block's first value (channel c0, sample n0).
LC_DEVICE int32_t batch_offset(const Image& s, const BatchPos& b) {
  return b.j * int32_t(s.c) + b.qy * int32_t(s.h) + b.qx * int32_t(s.w);
}

// Position b of the block's samples (ns of kBatchSamples) from `base` (the block's first
// value) into the staged rows, zeros outside the plane, the channels and the batch (a
// position of every sample: no check per value).
template <class G, class T>
LC_DEVICE void batch_load(T* rows, const T* base, const Image& s, const BatchPos& b, int ns) {
  constexpr int S = kBatchSamples;
  const int32_t sn = int32_t(s.n);
  int32_t at = batch_offset(s, b);  // (formed for every position, read inside only)
  T* dst = rows + b.slot;
  if (!b.in) {  // (the grid's padding: stores only)
LC_UNROLL
    for (int r = 0; r < S; ++r) dst[r * G::AS] = from_float<T>(0.0f);
  } else if (ns == S) {
LC_UNROLL
    for (int r = 0; r < S; ++r, at += sn) dst[r * G::AS] = base[at];
  } else {
LC_UNROLL
    for (int r = 0; r < S; ++r, at += sn) dst[r * G::AS] = r < ns ? base[at] : from_float<T>(0.0f);
  }
}

// Pairs of columns (conn_batch_wide.cuh and corr_batch_wide.cuh where plan.h batch_pairs
// holds): pair f (0 .. G::kPositions / 2 - 1) of the block's channels, in a plane's row
// order, its columns qx and qx + 1 (qx even) both inside the plane or both outside. A grid's rows and a sample's grid are an even
// number of values apart (4-byte stores). y0, x0 (x0 even): as batch_pos.
template <class G>
LC_DEVICE BatchPos batch_pair_pos(int f, int32_t H, int32_t W, int64_t c0, int64_t C,
                                  int32_t y0 = 0, int32_t x0 = 0) {
  constexpr int PW = G::GW / 2;  // pairs a grid row
  BatchPos b;
  const int pos = f % (G::GR * PW);
  b.j = f / (G::GR * PW);
  const int gr = pos / PW, gc = 2 * (pos % PW);
  b.qy = gr - G::RO + y0;
  b.qx = gc - G::CO + x0;
  b.slot = b.j * G::CS + gr * G::RS + gc;
  b.in = f < G::kPositions / 2 && b.qy >= 0 && b.qy < H && b.qx >= 0 && b.qx < W && c0 + b.j < C;
  return b;
}

// The block's samples (ns of kBatchSamples) of a 4-byte word from `src` (samples `sn`
// values apart) into v, zeros past the batch: one 4-byte load a sample.
template <class T>
LC_DEVICE void batch_words(const T* src, int64_t sn, int ns, uint32_t (&v)[kBatchSamples]) {
  constexpr int S = kBatchSamples;  // (a pointer stepped a sample at a time: one 64-bit add a load)
  if (ns == S) {
LC_UNROLL
    for (int r = 0; r < S; ++r, src += sn) LC_LOAD_WORD(v[r], src);
  } else {
LC_UNROLL
    for (int r = 0; r < S; ++r, src += sn) {
      v[r] = 0u;
      if (r < ns) LC_LOAD_WORD(v[r], src);
    }
  }
}

// Pair b (inside) of the block's samples (ns of kBatchSamples) from `base` into the staged
// rows: a 4-byte load and store a sample (zeros past the batch), the loads first.
template <class G, class T>
LC_DEVICE void batch_load_pairs(T* rows, const T* base, const Image& s, const BatchPos& b, int ns) {
  constexpr int S = kBatchSamples;
  static_assert(G::AS % 2 == 0 && G::RS % 2 == 0 && G::CS % 2 == 0, "4-byte aligned pairs");
  uint32_t v[S];
  batch_words(base + batch_offset(s, b), s.n, ns, v);
  T* dst = rows + b.slot;
LC_UNROLL
  for (int r = 0; r < S; ++r) LC_STORE_WORD(dst + r * G::AS, v[r]);
}

// Pair b (inside) of the block's samples (ns of kBatchSamples) from `base` into the staged
// rows as asynchronous copies (mma.cuh LC_COPY_WORD_ASYNC: no register holds them, so a
// thread's copies of all its pairs are in flight together; zeros past the batch). The
// caller waits (LC_COPY_WAIT) before the barrier that publishes the grid.
template <class G, class T>
LC_DEVICE void batch_copy_pairs(T* rows, const T* base, const Image& s, const BatchPos& b, int ns) {
  constexpr int S = kBatchSamples;
  static_assert(G::AS % 2 == 0 && G::RS % 2 == 0 && G::CS % 2 == 0, "4-byte aligned pairs");
  const T* src = base + batch_offset(s, b);  // (a pointer stepped a sample at a time)
  T* dst = rows + b.slot;
  if (ns == S) {
LC_UNROLL
    for (int r = 0; r < S; ++r, src += s.n) LC_COPY_WORD_ASYNC(dst + r * G::AS, src);
  } else {
LC_UNROLL
    for (int r = 0; r < S; ++r, src += s.n) {
      if (r < ns)
        LC_COPY_WORD_ASYNC(dst + r * G::AS, src);
      else
        LC_STORE_WORD(dst + r * G::AS, 0u);
    }
  }
}

// The block's samples (ns) of a 4-byte word, word(r) for sample r, stored to `dst` (samples
// `sn` values apart).
template <class T, class Word>
LC_DEVICE void batch_store_words(T* dst, int64_t sn, int ns, const Word& word) {
  if (ns == kBatchSamples) {
LC_UNROLL
    for (int r = 0; r < kBatchSamples; ++r, dst += sn) LC_STORE_WORD(dst, word(r));
  } else {
    for (int r = 0; r < ns; ++r, dst += sn) LC_STORE_WORD(dst, word(r));
  }
}

// A pixel's two channels (channels_last, grids of two channels (G::CH == 2): plan.h
// batch_pixel_pairs): pixel f (0 .. G::kPositions / 2 - 1) of the grid, in its row order,
// channel 0's slot (channel 1's: G::CS on).
template <class G>
LC_DEVICE BatchPos batch_pixel_pos(int f, int32_t H, int32_t W, int64_t c0, int64_t C,
                                   int32_t y0 = 0, int32_t x0 = 0) {
  BatchPos b;
  const int gr = f / G::GW, gc = f % G::GW;
  b.j = 0;
  b.qy = gr - G::RO + y0;
  b.qx = gc - G::CO + x0;
  b.slot = gr * G::RS + gc;
  b.in = f < G::kPositions / 2 && b.qy >= 0 && b.qy < H && b.qx >= 0 && b.qx < W && c0 < C;
  return b;
}

// Pixel b (of the grid: f < G::kPositions / 2) of the block's samples (ns) from `base` into
// both channels' staged rows: one 4-byte load a sample (channel 0 in its low half), zeros
// outside the plane and the batch.
template <class G, class T>
LC_DEVICE void batch_load_pixel(T* rows, const T* base, const Image& s, const BatchPos& b, int ns) {
  constexpr int S = kBatchSamples;
  uint32_t v[S];
  batch_words(base + batch_offset(s, b), s.n, b.in ? ns : 0, v);  // (formed for every pixel)
  T* dst = rows + b.slot;
LC_UNROLL
  for (int r = 0; r < S; ++r) {
    dst[r * G::AS] = of_bits<T>(uint16_t(v[r]));
    dst[G::CS + r * G::AS] = of_bits<T>(uint16_t(v[r] >> 16));
  }
}

// Pixel b (if inside) of the block's samples (ns) from both channels' staged rows to
// `base`: one 4-byte store a sample.
template <class G, class T>
LC_DEVICE void batch_store_pixel(T* base, const Image& s, const T* rows, const BatchPos& b, int ns) {
  if (!b.in) return;
  const T* from = rows + b.slot;
  batch_store_words(base + batch_offset(s, b), s.n, ns, [&](int r) {
    return uint32_t(bits_of<T>(from[r * G::AS])) | uint32_t(bits_of<T>(from[G::CS + r * G::AS])) << 16;
  });
}

// Pair b's samples zeroed in the staged rows (a grid's padding: stores only)
template <class G, class T>
LC_DEVICE void batch_zero_pairs(T* rows, const BatchPos& b) {
  T* dst = rows + b.slot;
LC_UNROLL
  for (int r = 0; r < kBatchSamples; ++r) LC_STORE_WORD(dst + r * G::AS, 0u);
}

// Pair b (if inside) of the block's samples (ns) from the staged rows to `base`: a 4-byte
// load and store a sample.
template <class G, class T>
LC_DEVICE void batch_store_pairs(T* base, const Image& s, const T* rows, const BatchPos& b, int ns) {
  if (!b.in) return;
  const T* from = rows + b.slot;
  batch_store_words(base + batch_offset(s, b), s.n, ns, [&](int r) {
    uint32_t v;
    LC_LOAD_WORD(v, from + r * G::AS);
    return v;
  });
}

// Position b of the block's samples (ns) from the staged rows to `base`, if inside.
template <class G, class T>
LC_DEVICE void batch_store(T* base, const Image& s, const T* rows, const BatchPos& b, int ns) {
  constexpr int S = kBatchSamples;
  if (!b.in) return;
  const int32_t sn = int32_t(s.n);
  int32_t at = batch_offset(s, b);
  const T* from = rows + b.slot;
  if (ns == S) {
LC_UNROLL
    for (int r = 0; r < S; ++r, at += sn) base[at] = from[r * G::AS];
  } else {
    for (int r = 0; r < ns; ++r, at += sn) base[at] = from[r * G::AS];
  }
}

}  // namespace lc
