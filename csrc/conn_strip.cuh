// conn2d (and the flipped conn2d_transpose) for NCHW-like or channels_last inputs:
// a register-blocked sliding window. KF x KF kernel, stride 1, dilation 1, a weight
// shared across positions (depth-wise, static or dynamic).
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
// channels_last (CL): consecutive threads take consecutive channels of one strip
// (every load coalesced along the contiguous channels), values one by one.
//
// Loads: strip k holds outputs from column kStripCols * k and reads its input
// rows from p columns left of that. With V-value chunks (V > 1: 16 or 8 bytes,
// the rows aligned and a whole number of chunks long, the padding KF / 2) a row
// is loaded from the aligned chunk holding its first column, OFF values before
// it (both compile-time); with V = 1 (any padding, any alignment) value by
// value. A chunk is inside the image or outside it (zeros without a load),
// decided once per thread. Offsets inside a plane are 32-bit (plan.h sends
// larger planes elsewhere); in NCHW consecutive threads take consecutive strips
// of a row, so a warp's loads cover contiguous runs of it.
//
// FLIP runs conn2d_transpose as a forward pass over g with the flipped filter
// (plan.h derives the axes); a tap outside g must add exactly 0, as in the
// reference: rows outside are skipped, and columns outside are zeros, which is
// exact while the filter is finite (checked once per thread); a thread whose
// filter is not masks those products instead. Without FLIP a tap on the padding
// reads 0 and is multiplied like any other (so a non-finite weight gives NaN there).
#pragma once

#include "params.h"
#include "plan.h"
#include "portable.h"
#include "stage.cuh"
#include "window.h"

namespace lc {

// The sliding window of a strip (conn_strip.cuh, conn_band.cuh): input row i of the
// strip (its values v[OFF + col], col = 0 .. CS + KF - 2) feeds output row r with
// kernel row i - r: acc[r][j] += f[i - r][kw] * v[OFF + j + kw]; MASK: columns whose
// bit in `cols` is clear add nothing.
template <bool MASK, int OFF, class A, int RS, int CS, int KF, int N>
LC_DEVICE void strip_row_products(A (&acc)[RS][CS], const A (&f)[KF][KF], const A (&v)[N], int i,
                                  uint64_t cols) {
  static_assert(OFF + CS + KF - 1 <= N, "the row holds every column the strip reads");
LC_UNROLL
  for (int r = 0; r < RS; ++r) {  // output row r reads input row i with kernel row i - r
    const int kh = i - r;
    if (kh < 0 || kh >= KF) continue;
LC_UNROLL
    for (int kw = 0; kw < KF; ++kw)
LC_UNROLL
      for (int j = 0; j < CS; ++j) {
        if (MASK && !column_in(cols, j + kw)) continue;
        acc[r][j] += f[kh][kw] * v[OFF + j + kw];
      }
  }
}

// The strips' filter in registers: f[kh][kw] = the tap at wp + kh skh + kw skw, or at
// (KF - 1 - kh, KF - 1 - kw) for FLIP (32-bit offsets: a filter is small).
template <bool FLIP, class T, class A, int KF>
LC_DEVICE void load_strip_filter(A (&f)[KF][KF], const T* wp, int32_t skh, int32_t skw) {
LC_UNROLL
  for (int kh = 0; kh < KF; ++kh)
LC_UNROLL
    for (int kw = 0; kw < KF; ++kw)
      f[kh][kw] =
          load_acc(wp + (FLIP ? KF - 1 - kh : kh) * skh + (FLIP ? KF - 1 - kw : kw) * skw);
}

// The same for a dense filter (taps KF apart a row, plan.h dense_filter): every tap at a
// constant offset from wp, no address arithmetic
template <bool FLIP, class T, class A, int KF>
LC_DEVICE void load_dense_filter(A (&f)[KF][KF], const T* wp) {
LC_UNROLL
  for (int kh = 0; kh < KF; ++kh)
LC_UNROLL
    for (int kw = 0; kw < KF; ++kw)
      f[kh][kw] = load_acc(wp + (FLIP ? KF - 1 - kh : kh) * KF + (FLIP ? KF - 1 - kw : kw));
}

// The strip's sums, each starting at the bias b0
template <class A, int RS, int CS>
LC_DEVICE void start_sums(A (&acc)[RS][CS], A b0) {
LC_UNROLL
  for (int r = 0; r < RS; ++r)
LC_UNROLL
    for (int j = 0; j < CS; ++j) acc[r][j] = b0;
}

// Is every tap finite? (A flipped pass's zeros outside g then add exactly 0.)
template <class A, int KF>
LC_DEVICE bool taps_finite(const A (&f)[KF][KF]) {
  A probe = A(0);
LC_UNROLL
  for (int kh = 0; kh < KF; ++kh)
LC_UNROLL
    for (int kw = 0; kw < KF; ++kw) probe += f[kh][kw] * A(0);  // NaN if any is not
  return probe == A(0);
}

// A staged band's strip for a flipped pass whose filter is not finite (conn_band.cuh,
// conn_band_cl.cuh; rare): value by value, on loads of its own (a path of its own in the
// SASS, which the cost model's trace can pin), only the input rows set in rows_in and
// the columns set in cols (those inside g). Row i's value col sits at
// rows[i * row_step + col * col_step]; the strip reads columns OFF .. OFF + CS + KF - 2.
template <int OFF, class A, int RS, int CS, int KF>
LC_DEVICE void band_products_masked(A (&acc)[RS][CS], const A (&f)[KF][KF], const float* rows,
                                    int32_t row_step, int32_t col_step, uint32_t rows_in,
                                    uint64_t cols) {
  constexpr int N = OFF + CS + KF - 1;
LC_UNROLL
  for (int i = 0; i < RS + KF - 1; ++i) {
    if (!((rows_in >> i) & 1)) continue;
    A v[N];
LC_UNROLL
    for (int col = 0; col < N; ++col) v[col] = rows[i * row_step + col * col_step];
    strip_row_products<true, OFF>(acc, f, v, i, cols);
  }
}

template <class T, int KF, bool FLIP, int V, bool CL>
struct ConnStrip {
  static constexpr int RS = strip_rows(KF);  // output rows per thread (plan.h)
  static constexpr int CS = kStripCols;      // output columns per thread
  static constexpr int NV = CS + KF - 1;     // input columns a row of the strip reads
  // the row starts OFF values after an aligned chunk: -(KF / 2) mod V
  static constexpr int OFF = V == 1 ? 0 : (V - (KF / 2) % V) % V;
  static constexpr int NCH = (OFF + NV + V - 1) / V;  // chunks of V per row
  // one block of 256 per SM: ptxas hoists the rows' loads and takes 150-250 registers;
  // capped at 128 (two blocks) it spills
  static constexpr int kMinBlocks = 1;
  static_assert(CS % V == 0, "strips start on chunk boundaries");
  static_assert(!CL || V == 1, "channels_last rows are loaded value by value");
  using A = acc_t<T>;

  static LC_DEVICE void run(unsigned char*, const ConnArgs& a, const ConnStripPlan& t) {
    const Problem& p = a.p;
    // which plane, row strip and column strip: column strips fastest (NCHW), or
    // channels fastest, then column strips (CL)
    int64_t e = block_index() * int64_t(block_threads()) + thread_index();
    int64_t c = 0;
    if (CL) {
      c = e % p.C;
      e /= p.C;
    }
    const int32_t cs = int32_t(e % t.col_strips);
    e /= t.col_strips;
    const int32_t rs = int32_t(e % t.row_strips);
    e /= t.row_strips;
    if (!CL) {
      c = e % p.C;
      e /= p.C;
    }
    const int64_t n = e;
    if (n >= p.N) return;
    const int32_t ow0 = cs * CS, oh0 = rs * RS;

    // the filter, in registers (offsets inside the filter are small: 32-bit)
    const T* wp = static_cast<const T*>(a.weight) + n * a.w_s.n + (c / p.cpg) * a.w_s.g;
    const int32_t skh = int32_t(a.w_s.kh), skw = int32_t(a.w_s.kw);
    A f[KF][KF];
    load_strip_filter<FLIP>(f, wp, skh, skw);
    const A b0 = a.bias ? load_acc(static_cast<const T*>(a.bias) + c * a.bias_s) : A(0);
    A acc[RS][CS];
    start_sums(acc, b0);

    const T* x = static_cast<const T*>(a.src) + n * a.src_s.n + c * a.src_s.c;
    const bool finite = !FLIP || taps_finite(f);  // FLIP: zeros outside g are then exact
    if (finite) accumulate<false>(acc, f, p, a, x, oh0, ow0);
    else accumulate<true>(acc, f, p, a, x, oh0, ow0);

    T* y = static_cast<T*>(a.dst) + n * a.dst_s.n + c * a.dst_s.c;
    const int32_t Ho = int32_t(p.h.out), Wo = int32_t(p.w.out), dh = int32_t(a.dst_s.h);
    const int32_t dw = CL ? int32_t(a.dst_s.w) : 1;
LC_UNROLL
    for (int r = 0; r < RS; ++r) {
      const int32_t oh = oh0 + r;
      if (oh >= Ho) break;
      T* yr = y + oh * dh + ow0 * dw;
LC_UNROLL
      for (int j = 0; j < CS; ++j)
        if (ow0 + j < Wo) store_acc(yr + j * dw, acc[r][j]);
    }
  }

  // acc[r][j] += the strip's products; MASK: skip taps on columns outside the input.
  template <bool MASK>
  static LC_DEVICE void accumulate(A (&acc)[RS][CS], const A (&f)[KF][KF], const Problem& p,
                                   const ConnArgs& a, const T* x, int32_t oh0, int32_t ow0) {
    const int32_t H = int32_t(p.h.in), W = int32_t(p.w.in), sh = int32_t(a.src_s.h);
    const int32_t sw = CL ? int32_t(a.src_s.w) : 1;
    const int32_t iw0 = ow0 - int32_t(p.w.p) - OFF, ih0 = oh0 - int32_t(p.h.p);
    uint32_t inside = 0;  // which chunks of a row are inside the image
LC_UNROLL
    for (int ch = 0; ch < NCH; ++ch)
      if (iw0 + ch * V >= 0 && iw0 + ch * V < W) inside |= 1u << ch;
    const uint64_t cols = MASK ? columns_inside<NV>(iw0 + OFF, W) : 0;
LC_UNROLL
    for (int i = 0; i < RS + KF - 1; ++i) {  // input row ih0 + i
      const int32_t ih = ih0 + i;
      const bool row_in = ih >= 0 && ih < H;
      if (FLIP && !row_in) continue;
      A v[NCH * V];
      load_strip_row<T, V, OFF, NV, NCH>(x + ih * sh + iw0 * sw, sw, row_in, inside, v);
      strip_row_products<MASK, OFF>(acc, f, v, i, cols);
    }
  }
};

}  // namespace lc
