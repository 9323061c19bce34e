// conn2d (and the flipped conn2d_transpose) for a channels_last float32 input: the
// register-blocked strips of conn_strip.cuh reading a channels_last band that the
// block stages in shared memory. KF x KF kernel (3, 5, 7), stride 1, dilation 1, the
// column padding KF / 2, a weight shared across positions (depth-wise, static or
// dynamic).
//
// A block owns kBandClChannels (32) consecutive channels of one sample x a band of BR
// row strips (BR * RS output rows) x every column strip (plan.h: at most 8 of them, CS
// columns each, 8 or 7: band_cl_cols picks the width that wastes the fewer columns and
// thread slots, 7 for DWNet's rows of 56, 28, 14 and 7). It
// stages the input rows the band reads as channels_last stores them: position
// (row rr, column col) of the band holds the block's 32 channels, 128 bytes, for
// input column col - KF / 2, zero outside the image and past the last channel. A warp
// copies a row by asynchronous 16-byte copies (4 channels a lane, 4 positions a warp;
// a lane's copies of the row in flight together) where the channels and strides allow
// it (plan.h: vec), else value by value; the border columns and the rows outside the
// image are written as zeros without loads.
// Thread (strip s, lane l) then runs the strip of conn_strip.cuh for channel c0 + l:
// every staged row it reads is NV shared loads of word l of NV consecutive positions
// (a warp's load: one conflict-free wavefront) at compile-time offsets from the row's.
// Against conn_strip.cuh's channels_last rows (every value a global load with its own
// 64-bit address and bounds check, the halo read again by each strip, and ptxas keeping
// the loads in flight in 238 registers: one block of 256 a multiprocessor) the checks
// move to the staging, and two blocks fit a multiprocessor (<= 128 registers). The
// block's 32 filters (dense, plan.h) are copied to shared memory in whole lines while
// the band is staged (stage_filters); a lane loads its channel's taps from there.
//
// The results are stored value by value (a channels_last result: a warp's store is
// 32 consecutive channels of one position, 128 bytes).
//
// PLANES: the input (and the result) in planes, NCHW-like with unit-stride rows. The
// band is the same, a position's channels together, at 33 words a position: each group
// of 8 lanes keeps a channel and walks the band's rows, its lanes along a row (4-byte
// asynchronous copies of consecutive columns: a lane's copies of every row in flight
// together), each value to its channel's word (33 words apart: 32 banks, and the
// strips' loads of a position stay conflict-free). The results go back
// through the same words (the band is read by then) and out a row of a channel at a
// time, 16 bytes a lane: a lane-per-channel store straight to planes would write a
// 32-byte sector for every 4-byte value.
//
// FLIP runs conn2d_transpose as a forward pass over g with the flipped filter. A thread
// whose filter is finite skips the input rows outside the image (g), which only add
// zeros; a flipped pass's staged zeros in the columns outside g are then exact too. A
// filter that is not finite multiplies every staged zero (NaN, as the reference), or
// for FLIP skips the rows and masks the columns outside g (the reference adds none).
#pragma once

#include "conn_strip.cuh"
#include "mma.cuh"
#include "params.h"
#include "plan.h"
#include "portable.h"
#include "stage.cuh"
#include "window.h"

namespace lc {

template <int KF, int CS, bool FLIP, bool PLANES>
struct ConnBandCl {
  using A = float;
  static constexpr int RS = strip_rows(KF);  // output rows per thread
  // CS: output columns per thread (plan.h's band_cl_cols: kStripCols, or 7)
  static constexpr int NV = CS + KF - 1;     // staged positions a strip reads per row
  static constexpr int CH = kBandClChannels;  // channels per block (a warp's lanes)
  // words from a staged position to the next: its CH channels, and for PLANES one more,
  // so that a warp writing along a channel's row (PLANES' staging and results) meets as
  // many banks as a warp reading one position's channels
  static constexpr int PS = PLANES ? CH + 1 : CH;
  // two blocks of 256 threads per SM (<= 128 registers: 49 taps, 32 sums, 14 values)
  static constexpr int kMinBlocks = 2;

  // the widest input row (plan.h band_cl_fits: at most kThreads / CH strips of at most
  // kStripCols columns; stride 1, padding KF / 2: input rows as wide as output rows)
  static constexpr int kMaxW = kThreads / CH * kStripCols;
  static constexpr int KK = KF * KF;  // taps a filter (odd: conflict-free lane reads)
  // shared bytes before the band: the block's CH filters (a multiple of 128 bytes, so
  // the band's 16-byte stores stay aligned)
  static constexpr int kFilterBytes = int(band_cl_filter_bytes(KF));

  static LC_DEVICE void run(unsigned char* smem, const ConnArgs& a, const ConnBandClPlan& t) {
    const Problem& p = a.p;
    float* filters = reinterpret_cast<float*>(smem);
    float* band = reinterpret_cast<float*>(smem + kFilterBytes);
    const int tid = thread_index();
    const int32_t IW = int32_t(t.IW), BR = int32_t(t.BR);
    // (sample n, channel group, band): multiply-high divisions (blocks < 2^31, plan.h)
    const int32_t b = int32_t(block_index()), group = t.by_bands.div(b);
    const int32_t band_i = b - group * int32_t(t.bands), n32 = t.by_groups.div(group);
    const int64_t n = n32, c0 = int64_t(group - n32 * int32_t(t.groups)) * CH;
    const int32_t oh_band = band_i * BR * RS;  // the band's first output row
    stage_filters(filters, a, n, c0);  // in flight while the band is staged
    if constexpr (PLANES) {
      stage_planes(band, a, t, n, c0, oh_band - int32_t(p.h.p));
    } else {
      stage(band, a, t, n, c0, oh_band - int32_t(p.h.p));
    }

    // this thread's strip and channel: lanes along the channels, then column strips,
    // then row strips
    const int32_t lane = tid % CH, s = tid / CH, rb = t.by_cols.div(s);
    const int32_t cs = s - rb * int32_t(t.col_strips);
    const int64_t c = c0 + lane;
    const int32_t oh0 = oh_band + rb * RS, ow0 = cs * CS;
    const int32_t Ho = int32_t(p.h.out);
    const bool active = c < p.C && rb < BR && oh0 < Ho;
    if (!PLANES && !active) return;  // (PLANES: every thread reaches store_planes' barriers)

    A acc[RS][CS];
    if (active) {
      // the filter (flipped for FLIP) from its staged copy: taps at constant offsets
      A f[KF][KF];
      load_staged_filter(f, filters + lane * KK);
      const A b0 = a.bias ? load_acc(static_cast<const float*>(a.bias) + c * a.bias_s) : A(0);
      start_sums(acc, b0);

      // the strip's input rows inside the image (g for FLIP): a finite filter skips the
      // others, whose products with the staged zeros are exactly 0 (fewer products on a
      // plane's border strips); else !FLIP multiplies them (NaN, as the reference gives)
      // and FLIP still skips them, masking the columns outside g as well
      const float* rows = band + (rb * RS * IW + ow0) * PS + lane;
      const int32_t ih0 = oh0 - int32_t(p.h.p);
      uint32_t rows_in = 0;
LC_UNROLL
      for (int i = 0; i < RS + KF - 1; ++i)
        if (ih0 + i >= 0 && ih0 + i < int32_t(p.h.in)) rows_in |= 1u << i;
      const bool finite = taps_finite(f);
      if (FLIP && !finite) {
        band_products_masked<0>(acc, f, rows, IW * PS, PS, rows_in,
                                columns_inside<NV>(ow0 - int32_t(p.w.p), p.w.in));
      } else {
        accumulate(acc, f, rows, IW, finite ? rows_in : ~0u);
      }
    }

    if constexpr (PLANES) {
      store_planes(band, acc, active, a, t, n, c0, oh_band, rb * RS * int32_t(t.cols) *
                   int32_t(t.col_strips) + ow0, lane);
    } else {
      store(acc, a, n, c, oh0, ow0);
    }
  }

  // !PLANES: the strip's results straight to the result (channels_last: a warp's store
  // is 32 consecutive channels of a position)
  static LC_DEVICE void store(const A (&acc)[RS][CS], const ConnArgs& a, int64_t n, int64_t c,
                              int32_t oh0, int32_t ow0) {
    const int32_t Ho = int32_t(a.p.h.out), Wo = int32_t(a.p.w.out);
    float* y = static_cast<float*>(a.dst) + n * a.dst_s.n + c * a.dst_s.c;
    const int32_t dh = int32_t(a.dst_s.h), dw = int32_t(a.dst_s.w);
LC_UNROLL
    for (int r = 0; r < RS; ++r) {
      const int32_t oh = oh0 + r;
      if (oh >= Ho) break;
      float* yr = y + oh * dh + ow0 * dw;
      const bool whole = ow0 + CS <= Wo;
LC_UNROLL
      for (int j = 0; j < CS; ++j, yr += dw)
        if (whole || ow0 + j < Wo) *yr = acc[r][j];
    }
  }

  // The block's filters to shared memory: filter ch (channel c0 + ch, those below C) at
  // words ch * KK .. ch * KK + KK - 1, tap (kh, kw) at kh * KF + kw (dense, plan.h). The
  // block's threads take consecutive words: a depth-wise filter set (Cw == C, taps
  // together) is one run of CH * KK words, read in whole lines once a block, where each
  // lane loading its own channel's taps made a warp's load touch 32 lines, for each
  // warp of the block (the L1/L2 limit of the kernel, 49 taps x 32 lines a warp).
  // Asynchronous copies: waited for at the band's barrier (stage, stage_planes).
  static LC_DEVICE void stage_filters(float* filters, const ConnArgs& a, int64_t n, int64_t c0) {
    const Problem& p = a.p;
    const int32_t have = int32_t(min_of(int64_t(CH), p.C - c0));
    const float* w = static_cast<const float*>(a.weight) + n * a.w_s.n;
    if (p.cpg == 1 && a.w_s.g == KK) {  // the filters one run of words: word i at i
      const float* from = w + c0 * KK;
      for (int32_t i = thread_index(); i < have * KK; i += block_threads())
        LC_COPY_WORD_ASYNC(filters + i, from + i);
      return;
    }
    for (int32_t i = thread_index(); i < have * KK; i += block_threads()) {
      const int32_t ch = i / KK, tap = i - ch * KK;  // (a constant divisor)
      LC_COPY_WORD_ASYNC(filters + i, w + (c0 + ch) / p.cpg * a.w_s.g + tap);
    }
  }

  // f = the staged filter at fs (flipped for FLIP): KK shared loads at constant offsets
  static LC_DEVICE void load_staged_filter(A (&f)[KF][KF], const float* fs) {
    const SmemAddr at = smem_addr(fs);
LC_UNROLL
    for (int kh = 0; kh < KF; ++kh)
LC_UNROLL
      for (int kw = 0; kw < KF; ++kw)
        LC_LOAD_SHARED_F1(f[kh][kw],
                          at + ((FLIP ? KF - 1 - kh : kh) * KF + (FLIP ? KF - 1 - kw : kw)) * 4);
  }

  // acc += the strip's products from the band: the rows set in rows_in
  static LC_DEVICE void accumulate(A (&acc)[RS][CS], const A (&f)[KF][KF], const float* rows,
                                   int32_t IW, uint32_t rows_in) {
    const SmemAddr at = smem_addr(rows);
LC_UNROLL
    for (int i = 0; i < RS + KF - 1; ++i) {
      if (!((rows_in >> i) & 1)) continue;
      const SmemAddr row = at + i * IW * PS * 4;
      A v[NV];
LC_UNROLL
      for (int col = 0; col < NV; ++col) LC_LOAD_SHARED_F1(v[col], row + col * PS * 4);
      strip_row_products<false, 0>(acc, f, v, i, 0);
    }
  }

  // The block's band: input rows ih0 .. ih0 + IH - 1 (warp w takes rows w, w + warps,
  // ...), positions col = 0 .. W + KF - 2 of its rows of IW (input column col - KF / 2),
  // of sample n's channels c0 .. c0 + CH - 1 (those below C); zeros outside the image and
  // past C.
  static LC_DEVICE void stage(float* band, const ConnArgs& a, const ConnBandClPlan& t, int64_t n,
                              int64_t c0, int32_t ih0) {
    const Problem& p = a.p;
    const int tid = thread_index(), warps = block_threads() / 32;
    const int32_t IH = int32_t(t.IH), IW = int32_t(t.IW), H = int32_t(p.h.in),
                  W = int32_t(p.w.in), sh = int32_t(a.src_s.h), sw = int32_t(a.src_s.w);
    const int32_t have = int32_t(min_of(int64_t(CH), p.C - c0));  // channels here
    const float* x = static_cast<const float*>(a.src) + n * a.src_s.n + c0;  // unit channel stride
    constexpr int P = KF / 2;  // band column of input column 0
    // a lane copies 4 channels (vec: 8 lanes a position, 4 positions a warp) or 1 (32
    // lanes a position, one a warp): channel ch of positions first, first + step, ...
    const int lane = tid % 32, lg = t.vec ? 3 : 5;  // log2 of the lanes a position
    const int32_t ch = (lane & ((1 << lg) - 1)) << (t.vec ? 2 : 0), first = lane >> lg,
                  step = 32 >> lg;
    const bool ch_in = ch < have;
    for (int32_t rr = tid / 32; rr < IH; rr += warps) {
      const int32_t ih = ih0 + rr;
      float* dst = band + rr * IW * CH + ch;
      const bool row_in = ih >= 0 && ih < H;
      // zeros: the border columns (the whole row outside the image or past C), those a
      // stored output reads (columns from W + 2P on feed only the last strip's sums past
      // Wo, which are not stored: left as they are)
      const bool copy = row_in && ch_in;
      const int32_t zeros = copy ? 2 * P : W + 2 * P;  // (W + 2P <= IW, plan.h)
      for (int32_t j = first; j < zeros; j += step) {
        const int32_t col = !copy || j < P ? j : W + j;
        if (t.vec) {
          const float z[4] = {0.f, 0.f, 0.f, 0.f};
          LC_COPY16(dst + col * CH, z);
        } else {
          dst[col * CH] = 0.f;
        }
      }
      if (!copy) continue;
      // the row's values: input column iw at band column iw + P
      const float* from = x + ih * sh + ch + first * sw;
      float* to = dst + (first + P) * CH;
      const int32_t jump = step * sw;
      // (asynchronous copies: a thread's copies of a row in flight together)
      if (t.vec) {
LC_UNROLL_N(2)
        for (int32_t iw = first; iw < W; iw += step, from += jump, to += step * CH)
          LC_COPY_WORDS_ASYNC(to, from);
      } else {
        for (int32_t iw = 0; iw < W; ++iw, from += sw, to += CH) LC_COPY_WORD_ASYNC(to, from);
      }
    }
    LC_COPY_WAIT();  // the row copies and stage_filters'
    sync_threads();
  }

  // PLANES' band: the same positions and zeros as stage(), from planes (unit-stride
  // rows): a warp's lanes in 4 groups of 8, group g of warp w taking channels 8 g + w,
  // 8 g + w + warps, ... below 8 (g + 1), and, for each, the band's rows in turn, its 8
  // lanes along the row (columns q, q + 8, ...: a warp's copy reads 32 bytes of each of
  // its 4 channels' rows). Each value goes by a 4-byte asynchronous copy to its
  // channel's word of its position: PS = 33 words apart, so a copy's 8 columns x 4
  // channels 8 apart meet the 32 banks once.
  static LC_DEVICE void stage_planes(float* band, const ConnArgs& a, const ConnBandClPlan& t,
                                     int64_t n, int64_t c0, int32_t ih0) {
    const Problem& p = a.p;
    const int tid = thread_index(), lane = tid % 32, q0 = lane & 7;
    const int32_t IH = int32_t(t.IH), IW = int32_t(t.IW), H = int32_t(p.h.in),
                  W = int32_t(p.w.in), sh = int32_t(a.src_s.h);
    const int32_t have = int32_t(min_of(int64_t(CH), p.C - c0));  // channels here
    const float* x = static_cast<const float*>(a.src) + n * a.src_s.n + c0 * a.src_s.c;
    constexpr int P = KF / 2;  // band column of input column 0
    static_assert(2 * P <= 8, "a row's border columns: one store of the row's 8 lanes");
    static_assert(CH == 32, "4 groups of 8 channels");
    const int32_t warps = block_threads() / 32, base = (lane >> 3) * 8;
    for (int32_t ch = base + tid / 32; ch < base + 8; ch += warps) {
      const float* xc = x + ch * a.src_s.c;
      float* to = band + P * PS + ch;  // row 0, input column 0
      int32_t ro = ih0 * sh;           // row offset in the plane
      for (int32_t ih = ih0; ih < ih0 + IH; ++ih, to += IW * PS, ro += sh) {
        if (ch >= have || ih < 0 || ih >= H) {  // the whole row: zeros
          for (int32_t col = q0 - P; col < W + P; col += 8) to[col * PS] = 0.f;
          continue;
        }
        if (q0 < 2 * P) to[(q0 < P ? q0 - P : W + q0 - P) * PS] = 0.f;  // the borders
        const float* xr = xc + (ro + q0);
        const SmemAddr tr = smem_addr(to + q0 * PS);
LC_UNROLL  // (at most kMaxW / 8 copies: constant offsets, a predicate each)
        for (int j = 0; j < kMaxW / 8; ++j)
          LC_COPY_WORD_ASYNC_IF(tr + 8 * j * PS * 4, xr + 8 * j, q0 + 8 * j < W);
      }
    }
    LC_COPY_WAIT();  // the row copies and stage_filters'
    sync_threads();
  }

  // PLANES' results: every strip's sums into the band's words (the band is read by then;
  // result position (row, column) of the block at (row * OW + column) * PS + channel, OW
  // = the strips' columns; `at`: this thread's first), then written out the way
  // stage_planes reads: a channel a lane group, its rows in turn, 8 lanes along a row,
  // 16 bytes a lane where t.vec_out.
  static LC_DEVICE void store_planes(float* band, const A (&acc)[RS][CS], bool active,
                                     const ConnArgs& a, const ConnBandClPlan& t, int64_t n,
                                     int64_t c0, int32_t oh_band, int32_t at, int lane) {
    const Problem& p = a.p;
    const int32_t OW = int32_t(t.cols * t.col_strips);
    sync_threads();  // every strip has read the band
    if (active) {
      float* o = band + at * PS + lane;
LC_UNROLL
      for (int r = 0; r < RS; ++r)
LC_UNROLL
        for (int j = 0; j < CS; ++j) o[(r * OW + j) * PS] = acc[r][j];
    }
    sync_threads();
    const int tid = thread_index(), q0 = lane & 7;
    const int32_t Wo = int32_t(p.w.out), dh = int32_t(a.dst_s.h);
    const int32_t rows = int32_t(min_of(t.BR * RS, p.h.out - oh_band));
    const int32_t have = int32_t(min_of(int64_t(CH), p.C - c0));
    float* y = static_cast<float*>(a.dst) + n * a.dst_s.n + c0 * a.dst_s.c + oh_band * dh;
    const int32_t groups = block_threads() / 8;
    for (int32_t ch = tid / 32 * 4 + (lane >> 3); ch < have; ch += groups) {
      float* yc = y + ch * a.dst_s.c;
      const float* from = band + ch;
      for (int32_t r = 0, ro = 0; r < rows; ++r, ro += dh, from += OW * PS) {
        if (t.vec_out) {
          for (int32_t ow = 4 * q0; ow < Wo; ow += 32) {
            float v[4];
LC_UNROLL
            for (int k = 0; k < 4; ++k) v[k] = from[(ow + k) * PS];
            LC_COPY16(yc + (ro + ow), v);
          }
        } else {
          for (int32_t ow = q0; ow < Wo; ow += 8) yc[ro + ow] = from[ow * PS];
        }
      }
    }
  }
};

}  // namespace lc
