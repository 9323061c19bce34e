// conn2d (and the flipped conn2d_transpose) for NCHW-like inputs: a register-blocked
// sliding window. KF x KF kernel, stride 1, dilation 1, a weight shared across
// positions (depth-wise, static or dynamic).
//
// A thread owns one plane (n, c) and a strip of RS x kStripCols outputs
// (kStripCols consecutive columns of RS consecutive rows). Its filter sits in
// registers (KF * KF values, loaded once). It walks the RS + KF - 1 input rows
// the strip reads, each once, and every (output row, kernel row) pair that
// reads a row uses its values from registers: per output KF * KF FFMA with
// float32 accumulation and (RS + KF - 1)(kStripCols + KF - 1) / (RS kStripCols)
// values loaded; RS * kStripCols independent sums hide the FMA latency; no
// shared memory, no barrier.
//
// Loads: the strips are placed on the *input* row, strip k reading columns
// from kStripCols * k (and writing outputs from there + padding; the first
// strip may start before column 0, its outputs there are not stored), so every
// load is a whole chunk of V values: 16 bytes where the rows are 16-byte
// aligned, else 8 bytes or single values (V, a template parameter, is chosen at
// launch from the rows' alignment). A chunk entirely outside the image is zeros
// without a load, one partly outside (the right edge of a row whose length is
// not a multiple of V) is loaded value by value; which chunk is which is
// decided once per thread. Offsets inside a plane are 32-bit (plan.h sends
// larger planes elsewhere); consecutive threads take consecutive strips of a
// row, so a warp's loads cover contiguous runs of it.
//
// FLIP runs conn2d_transpose as a forward pass over g with the flipped filter
// (plan.h derives the axes); a tap outside g adds exactly 0 (rows are skipped,
// columns masked), as in the reference. Without FLIP a tap on the padding reads
// 0 and is multiplied like any other (so a non-finite weight gives NaN there).
#pragma once

#include "params.h"
#include "plan.h"
#include "portable.h"
#include "stage.cuh"
#include "window.h"

namespace lc {

// V values from an address aligned to V * sizeof(T) bytes (V * sizeof(T) in 2..16).
template <class T, int V>
LC_DEVICE void load_chunk(const T* src, T (&out)[V]) {
  if constexpr (V * sizeof(T) == 16) {
    load16(src, out);
  } else {
LC_UNROLL
    for (int j = 0; j < V; ++j) out[j] = src[j];  // nvcc merges aligned neighbours
  }
}

template <class T, int KF, bool FLIP, int V>
struct ConnStrip {
  static constexpr int RS = strip_rows(KF);  // output rows per thread (plan.h)
  static constexpr int CS = kStripCols;      // output columns per thread
  static constexpr int NV = CS + KF - 1;     // input columns a row of the strip reads
  static constexpr int NCH = (NV + V - 1) / V;  // chunks of V per row
  static constexpr int kMinBlocks = 1;       // registers: the filter and RS * CS sums
  static_assert(CS % V == 0, "strips start on chunk boundaries");
  using A = acc_t<T>;

  static LC_DEVICE void run(unsigned char*, const ConnArgs& a, const ConnStripPlan& t) {
    const Problem& p = a.p;
    // which plane, row strip and column strip (column strips fastest)
    int64_t e = block_index() * int64_t(block_threads()) + thread_index();
    const int32_t cs = int32_t(e % t.col_strips);
    e /= t.col_strips;
    const int32_t rs = int32_t(e % t.row_strips);
    const int64_t plane = e / t.row_strips;
    if (plane >= p.N * p.C) return;
    const int64_t n = plane / p.C, c = plane % p.C;
    const int32_t H = int32_t(p.h.in), W = int32_t(p.w.in);
    const int32_t Ho = int32_t(p.h.out), Wo = int32_t(p.w.out);
    const int32_t iw0 = (cs + int32_t(t.first_strip)) * CS, ow0 = iw0 + int32_t(p.w.p);
    const int32_t oh0 = rs * RS, ih0 = oh0 - int32_t(p.h.p);
    const int32_t sh = int32_t(a.src_s.h);

    // the filter, in registers (offsets inside the filter are small: 32-bit)
    const T* wp = static_cast<const T*>(a.weight) + n * a.w_s.n + (c / p.cpg) * a.w_s.g;
    const int32_t skh = int32_t(a.w_s.kh), skw = int32_t(a.w_s.kw);
    A f[KF][KF];
LC_UNROLL
    for (int kh = 0; kh < KF; ++kh)
LC_UNROLL
      for (int kw = 0; kw < KF; ++kw)
        f[kh][kw] = load_acc(wp + (FLIP ? KF - 1 - kh : kh) * skh + (FLIP ? KF - 1 - kw : kw) * skw);
    const A b0 = a.bias ? load_acc(static_cast<const T*>(a.bias) + c * a.bias_s) : A(0);
    A acc[RS][CS];
LC_UNROLL
    for (int r = 0; r < RS; ++r)
LC_UNROLL
      for (int j = 0; j < CS; ++j) acc[r][j] = b0;

    // which chunks of a row are wholly inside the image, and which partly (once)
    uint32_t full = 0, part = 0;
LC_UNROLL
    for (int ch = 0; ch < NCH; ++ch) {
      const int32_t c0 = iw0 + ch * V;
      if (c0 >= 0 && c0 + V <= W) full |= 1u << ch;
      else if (c0 + V > 0 && c0 < W) part |= 1u << ch;
    }
    const uint64_t cols = FLIP ? columns_inside<NV>(iw0, W) : 0;
    const T* x = static_cast<const T*>(a.src) + n * a.src_s.n + c * a.src_s.c + iw0;

LC_UNROLL
    for (int i = 0; i < RS + KF - 1; ++i) {  // input row ih0 + i
      const int32_t ih = ih0 + i;
      const bool row_in = ih >= 0 && ih < H;
      if (FLIP && !row_in) continue;
      A v[NCH * V];
      const T* row = x + ih * sh;
LC_UNROLL
      for (int ch = 0; ch < NCH; ++ch) {
        T buf[V];
        if (row_in && ((full >> ch) & 1)) {
          load_chunk<T, V>(row + ch * V, buf);
        } else if (row_in && ((part >> ch) & 1)) {
LC_UNROLL
          for (int j = 0; j < V; ++j) {
            const int32_t col = iw0 + ch * V + j;
            buf[j] = (col >= 0 && col < W) ? row[ch * V + j] : from_float<T>(0.0f);
          }
        } else {
LC_UNROLL
          for (int j = 0; j < V; ++j) buf[j] = from_float<T>(0.0f);
        }
LC_UNROLL
        for (int j = 0; j < V; ++j) v[ch * V + j] = A(to_float(buf[j]));
      }
LC_UNROLL
      for (int r = 0; r < RS; ++r) {  // output row oh0 + r reads it with kernel row i - r
        const int kh = i - r;
        if (kh < 0 || kh >= KF) continue;
LC_UNROLL
        for (int kw = 0; kw < KF; ++kw)
LC_UNROLL
          for (int j = 0; j < CS; ++j) {
            if (FLIP && !column_in(cols, j + kw)) continue;
            acc[r][j] += f[kh][kw] * v[j + kw];
          }
      }
    }

    T* y = static_cast<T*>(a.dst) + n * a.dst_s.n + c * a.dst_s.c;
    const int32_t dh = int32_t(a.dst_s.h);
LC_UNROLL
    for (int r = 0; r < RS; ++r) {
      const int32_t oh = oh0 + r;
      if (oh >= Ho) break;
      T* yr = y + oh * dh + ow0;
LC_UNROLL
      for (int j = 0; j < CS; ++j)
        if (ow0 + j >= 0 && ow0 + j < Wo) store_acc(yr + j, acc[r][j]);
    }
  }
};

}  // namespace lc
