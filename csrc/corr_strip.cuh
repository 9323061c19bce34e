// corr2d for NCHW-like inputs whose result is per channel and shared across
// positions (the weight gradient of depth-wise and dynamic depth-wise
// convolution) with a KF x KF sliding window, stride 1, dilation 1:
//
//   out[n', c, kh, kw] = sum_{n, oh, ow} a[n, c, oh, ow] * b[n, c, oh - p + kh, ow - p + kw]
//
// A register-blocked sliding window, the transpose of conn_strip.cuh's: a
// thread keeps all KF * KF sums of its channel in registers and takes strips
// of RS x kStripCols outputs of a: it loads the strip's a values once, then
// walks the RS + KF - 1 rows of b the strip reads, each once, and every
// (output row, kernel row) pair that reads a row adds its products from
// registers. Per output: KF * KF FFMA with float32 accumulation and
// (RS + KF - 1)(kStripCols + KF - 1) / (RS kStripCols) values of b loaded.
//
// Strips sit on a's columns (strip k: outputs from kStripCols * k), so a's
// rows load in aligned chunks; b's rows start p columns left of them: with
// V-value chunks (V > 1, 16 bytes) the padding is KF / 2 and the row is
// loaded from the aligned chunk holding its first column, OFF values before
// it (both compile-time); with V = 1, any padding, value by value. Rows of b
// are a whole number of chunks (plan.h), so a chunk is inside the image or
// outside (zeros, no load): one mask per strip, one predicate per row. A strip
// that overhangs a's bottom or right edge (EDGE) skips the products of its
// missing rows and columns rather than zeroing them (a zero times a non-finite
// b would add NaN); a plane's edge strips are numbered after its whole ones, so
// only a few warps take that path, and whole strips test nothing.
//
// Work: a block takes `slots` results (channel, and batch index for Nw = N)
// and one of `splits` parts of each result's items (plane strips over the
// batch for Nw = 1); its threads for a result step through the part. NCHW: a
// result's tpr threads are consecutive; channels_last (CL): a warp holds 32
// results (consecutive channels: every load coalesced along them, values one
// by one) and each result has one thread in each of the block's 8 warps. At the
// end each result's thread sums are added by a fixed-order tree in shared
// memory (deterministic, no atomics), a chunk of taps at a time, and stored,
// or written to the split's slice of the workspace for ReduceSplits.
#pragma once

#include "params.h"
#include "plan.h"
#include "portable.h"
#include "stage.cuh"
#include "window.h"

namespace lc {

// A strip's products with b's strip row i (values bv[OFF..]): every output row r of the
// strip that reads it does so with kernel row kh = i - r, adding a[r][j] * b[OFF + j + kw]
// to tap (kh, kw); EDGE: only a's first `rows` rows and `cols` columns (the products of
// missing outputs are skipped, not zeroed: a zero times a non-finite b would add NaN).
// (corr_strip.cuh, corr_band.cuh; i is a constant once the caller's row loop unrolls.)
template <int KF, int OFF, bool EDGE, class A, int RS, int CS, int NB>
LC_DEVICE void corr_row_products(A (&acc)[KF * KF], const A (&av)[RS][CS], const A (&bv)[NB],
                                 int i, int32_t rows, int32_t cols) {
  static_assert(OFF + CS + KF - 1 <= NB, "the row's values cover every tap of the strip");
LC_UNROLL
  for (int r = 0; r < RS; ++r) {
    const int kh = i - r;
    if (kh < 0 || kh >= KF || (EDGE && r >= rows)) continue;
LC_UNROLL
    for (int kw = 0; kw < KF; ++kw)
LC_UNROLL
      for (int j = 0; j < CS; ++j) {
        if (EDGE && j >= cols) continue;
        acc[kh * KF + kw] += av[r][j] * bv[OFF + j + kw];
      }
  }
}

template <class T, int KF, int V, bool CL>
struct CorrStrip {
  static constexpr int RS = corr_strip_rows(KF, CL);  // output rows per strip (plan.h)
  static constexpr int CS = kStripCols;           // output columns per strip
  static constexpr int NV = CS + KF - 1;          // columns of b a strip row reads
  // b's row starts OFF values after an aligned chunk: -(KF / 2) mod V
  static constexpr int OFF = V == 1 ? 0 : (V - (KF / 2) % V) % V;
  static constexpr int NCH = (OFF + NV + V - 1) / V;  // chunks of b per row
  static constexpr int NA = CS / (V < CS ? V : CS);   // chunks of a per strip row
  static constexpr int TAPS = KF * KF;
  using A = acc_t<T>;
  static constexpr int TC = kCorrStripRedBytes / (kThreads * int(sizeof(A)));  // taps per chunk
  // plan.h's blocks per SM (two for float32 7 x 7: at most 128 registers)
  static constexpr int kMinBlocks = corr_strip_blocks_per_sm(int(sizeof(T)), KF);
  static_assert(CS % V == 0 || V == 1, "a strip starts on a chunk boundary");
  static_assert(!CL || V == 1, "channels_last rows are loaded value by value");
  // a result's threads: consecutive (NCHW), or kThreads / 32 apart (CL: 32 results,
  // consecutive channels, per warp)
  static constexpr int kLaneStride = CL ? 32 : 1;

  static LC_DEVICE void run(unsigned char* smem_raw, const CorrArgs& a, const CorrStripPlan& t) {
    const Problem& p = a.p;
    const int tid = thread_index();
    const int slot = CL ? tid % 32 : tid / int(t.tpr), lane = CL ? tid / 32 : tid % int(t.tpr);
    int64_t blk = block_index();
    const int64_t split = blk % t.splits;
    const int64_t res = (blk / t.splits) * (kThreads / t.tpr) + slot;
    const bool res_ok = res < a.Nw * p.C;  // idle slots still take part in the reduction
    const int64_t c = res_ok ? res % p.C : 0, n_res = res_ok ? res / p.C : 0;

    A acc[TAPS];
LC_UNROLL
    for (int k = 0; k < TAPS; ++k) acc[k] = A(0);
    const int64_t strips = t.row_strips * t.col_strips;
    const int64_t items = (a.Nw == 1 ? p.N : 1) * strips;
    const int64_t end = res_ok ? (split + 1) * items / t.splits : 0;
    // 32-bit item numbers (plan.h): whole strips first (row-major), then the edge ones
    const int32_t whole = int32_t(t.full_rows * t.full_cols);
    const int32_t edge_cols = int32_t(t.col_strips - t.full_cols);  // 0 or 1
    for (int32_t it = int32_t(split * items / t.splits) + lane; it < int32_t(end);
         it += int32_t(t.tpr)) {
      const int32_t n = a.Nw == 1 ? it / int32_t(strips) : int32_t(n_res);
      const int32_t s = a.Nw == 1 ? it % int32_t(strips) : it;
      const T* ap = static_cast<const T*>(a.a) + n * a.a_s.n + c * a.a_s.c;
      const T* bp = static_cast<const T*>(a.b) + n * a.b_s.n + c * a.b_s.c;
      if (s < whole) {
        strip<false>(acc, p, a, ap, bp, s / int32_t(t.full_cols), s % int32_t(t.full_cols));
      } else {
        const int32_t e = s - whole, right = int32_t(t.full_rows) * edge_cols;
        if (e < right) strip<true>(acc, p, a, ap, bp, e, int32_t(t.full_cols));
        else strip<true>(acc, p, a, ap, bp, int32_t(t.full_rows), e - right);
      }
    }
    reduce_and_store(smem_raw, a, t, acc, slot, lane, res_ok, split, n_res * p.C + c);
  }

  // Adds the products of one strip (rows RS * rs.., columns CS * cs..) to acc.
  template <bool EDGE>
  static LC_DEVICE void strip(A (&acc)[TAPS], const Problem& p, const CorrArgs& a, const T* ap,
                              const T* bp, int32_t rs, int32_t cs) {
    const int32_t Ho = int32_t(p.h.out), Wo = int32_t(p.w.out);
    const int32_t H = int32_t(p.h.in), W = int32_t(p.w.in);
    const int32_t oh0 = rs * RS, ow0 = cs * CS;
    const int32_t cols = EDGE ? Wo - ow0 : CS;  // a's columns (and rows) in this strip
    const int32_t rows = EDGE ? Ho - oh0 : RS;
    const int32_t sah = int32_t(a.a_s.h), sbh = int32_t(a.b_s.h);
    const int32_t saw = CL ? int32_t(a.a_s.w) : 1, sbw = CL ? int32_t(a.b_s.w) : 1;

    // a: the strip's RS x CS values (rows below a's end and missing columns: 0, unused)
    A av[RS][CS];
LC_UNROLL
    for (int r = 0; r < RS; ++r) {
      const bool row_in = !EDGE || r < rows;
      const T* at = ap + (oh0 + r) * sah + ow0 * saw;  // a running address, as for b
LC_UNROLL
      for (int q = 0; q < NA; ++q) {
        constexpr int VA = CS / NA;
        T buf[VA];
        if (!EDGE) {
          load_chunk<T, VA>(at, buf);
          at += VA * saw;
        } else {
LC_UNROLL
          for (int j = 0; j < VA; ++j, at += saw)
            buf[j] = (row_in && q * VA + j < cols) ? *at : from_float<T>(0.0f);
        }
LC_UNROLL
        for (int j = 0; j < VA; ++j) av[r][q * VA + j] = A(to_float(buf[j]));
      }
    }

    // b's chunks inside the image (once per strip)
    const int32_t iw0 = ow0 - int32_t(p.w.p) - OFF;  // column of b's first chunk
    uint32_t inside = 0;
LC_UNROLL
    for (int ch = 0; ch < NCH; ++ch)
      if (iw0 + ch * V >= 0 && iw0 + ch * V < W) inside |= 1u << ch;
    const int32_t ih0 = oh0 - int32_t(p.h.p);
LC_UNROLL
    for (int i = 0; i < RS + KF - 1; ++i) {  // b's row ih0 + i
      const int32_t ih = ih0 + i;
      const bool row_in = ih >= 0 && ih < H;
      A bv[NCH * V];
      load_strip_row<T, V, OFF, NV, NCH>(bp + ih * sbh + iw0 * sbw, sbw, row_in, inside, bv);
      corr_row_products<KF, OFF, EDGE>(acc, av, bv, i, rows, cols);
    }
  }

  // Sums acc over each slot's tpr threads (a fixed-order tree, TC taps at a time) and
  // stores tap k of result `out_row` (n' * C + c), or its split's partial.
  static LC_DEVICE void reduce_and_store(unsigned char* smem_raw, const CorrArgs& a,
                                         const CorrStripPlan& t, const A (&acc)[TAPS], int slot,
                                         int lane, bool res_ok, int64_t split, int64_t out_row) {
    A* red = reinterpret_cast<A*>(smem_raw);  // [TC][kThreads]
    const int tid = thread_index();
    const int64_t numel = a.Nw * a.p.C * TAPS;
LC_UNROLL
    for (int k0 = 0; k0 < TAPS; k0 += TC) {
      sync_threads();
LC_UNROLL
      for (int k = 0; k < TC; ++k)
        if (k0 + k < TAPS) red[k * kThreads + tid] = acc[k0 + k];
      sync_threads();
      for (int half = int(t.tpr) / 2; half >= 1; half /= 2) {
        if (lane < half) {
          for (int k = 0; k < TC && k0 + k < TAPS; ++k)
            red[k * kThreads + tid] += red[k * kThreads + tid + half * kLaneStride];
        }
        sync_threads();
      }
      // the slot's thread `lane` stores taps k0 + lane, k0 + lane + tpr, ...
      const int first = CL ? slot : slot * int(t.tpr);  // the slot's lane 0
      for (int k = lane; k < TC && k0 + k < TAPS; k += int(t.tpr)) {
        if (!res_ok) break;
        const A s = red[k * kThreads + first];
        const int64_t idx = out_row * TAPS + k0 + k;
        if (t.splits == 1)
          store_acc(static_cast<T*>(a.out) + idx, s);
        else
          static_cast<A*>(a.workspace)[split * numel + idx] = s;
      }
    }
  }
};

}  // namespace lc
