// corr2d for float32 whose result is per channel and shared across positions (the
// weight gradient of depth-wise and dynamic depth-wise convolution) with a KF x KF
// window (3, 5, 7), stride 1, dilation 1, padding KF / 2, on planes at most
// csn x CS = 56 columns wide:
//
//   out[n', c, kh, kw] = sum_{n, oh, ow} a[n, c, oh, ow] * b[n, c, oh - p + kh, ow - p + kw]
//
// corr_strip.cuh's register-blocked strips (a thread holds its channel's KF * KF sums
// and walks strips of RS x CS outputs of a, every row of b it reads feeding each output
// row that needs it) reading a and b from a band the warp has staged in shared memory,
// where corr_strip.cuh reads them from global memory: each strip reads RS + KF - 1 rows
// of b, 8 values of b an output, its lanes' strips rows apart (2.2 sectors an output
// through L2 at DWNet-T's stage 1, against 0.25 for reading a and b once).
//
// A block owns kThreads / 32 = 8 consecutive channels (warp w: channel c0 + w) of one
// result set (the batch index for Nw = N) and one of `splits` parts of its items; an
// item is (sample for Nw = 1, band of `rows` = rsn x RS output rows). For an item, a
// warp's lane (rs, cs) = (lane / csn, lane % csn) takes the strip of output rows
// rs RS.. and columns cs CS..; csn (2, 4, 8) strips of CS = 7 cover the row.
//
// Staging, per warp and item, into one of two buffers (double-buffered: the next
// item's asynchronous copies are in flight while this one's strips run):
//   b's rows oh_band - P .. oh_band + rows + P - 1 (IW words apart, input column iw at
//     word C0 + iw; the P columns either side of the image and the rows outside it
//     zeros), then a's rows (AW words apart, column ow at word ow).
// NCHW planes: each warp copies its own channel (VB = 4, 2 or 1 words a copy; plan.h
// picks the widest that the rows' alignment and the pitch allow) and waits only for
// itself (warp barriers). Channels_last (CL): the block copies its 8 channels together
// (a position's 8 channels are 32 bytes: 8 lanes, 4-byte copies) into each warp's
// buffer, and waits at block barriers.
//
// Banks: lane (rs, cs) reads words 7 cs + rs RS IW + j; plan.h picks IW (and AW) with
// RS IW = csn x (an odd number) mod 32, and 7 cs covers every residue mod csn once, so
// each load of the warp meets the 32 banks once (and a's likewise).
//
// Exactness: a staged zero of b (outside the image) multiplies a, as the reference's
// zero padding does; a strip that overhangs a's bottom or right edge (EDGE) skips the
// products of its missing rows and columns (a zero there times a non-finite b would
// add NaN).
//
// At the end each warp's 32 lanes' sums of a tap are added in lane order through
// shared memory (deterministic, no atomics) and stored, or written to the split's
// slice of the workspace for ReduceSplits.
#pragma once

#include "corr_strip.cuh"
#include "mma.cuh"
#include "params.h"
#include "plan.h"
#include "portable.h"

namespace lc {

template <int KF, bool CL, int VB>
struct CorrBand {
  using A = float;
  static constexpr int RS = kCorrBandRows;  // output rows per strip
  static constexpr int CS = kCorrBandCols;  // output columns per strip
  static constexpr int NV = CS + KF - 1;    // values of b a strip row reads
  static constexpr int P = KF / 2;
  static constexpr int C0 = kCorrBandLead;  // the word of input column 0 in a staged row
  static constexpr int TAPS = KF * KF;
  static constexpr int WARPS = kThreads / 32;  // channels a block
  static constexpr int kMinBlocks = 2;
  static_assert(C0 >= P && C0 % 4 == 0, "the padding's columns before aligned rows");
  static_assert(!CL || VB == 1, "channels_last: a value a copy");

  static LC_DEVICE void run(unsigned char* smem, const CorrArgs& a, const CorrBandPlan& t) {
    const Problem& p = a.p;
    const int tid = thread_index(), warp = tid >> 5, lane = tid & 31;
    const int32_t blk = int32_t(block_index()), splits = int32_t(t.splits);
    const int32_t split = blk % splits, set = blk / splits;
    const int32_t groups = int32_t(t.groups), n_res = set / groups;
    const int32_t c0 = (set - n_res * groups) * WARPS;
    const bool active = c0 + warp < p.C;
    const int32_t bw = int32_t(t.buf_words);
    float* mine = reinterpret_cast<float*>(smem) + warp * 2 * bw;  // this warp's 2 buffers

    // zeros everywhere once: the border columns are never copied to
    for (int32_t i = lane; i < 2 * bw; i += 32) mine[i] = 0.f;
    sync();

    // this lane's strip of every item: rows rs RS.., columns cs CS.. of the band
    const int32_t csn = int32_t(t.csn), cs = lane & (csn - 1), rs = lane / csn;
    const int32_t IW = int32_t(t.IW), AW = int32_t(t.AW), R = int32_t(t.rows);
    const int32_t cols = int32_t(p.w.out) - cs * CS, Ho = int32_t(p.h.out);
    const int32_t b_off = rs * RS * IW + C0 - P + cs * CS;
    const int32_t a_off = (R + KF - 1) * IW + rs * RS * AW + cs * CS;

    // items lo .. hi - 1; the cursor (sample, first output row) of the item staged next
    const int32_t items = int32_t(t.items), bands = int32_t(t.bands);
    const int32_t lo = int32_t(int64_t(split) * items / splits);
    const int32_t hi = int32_t(int64_t(split + 1) * items / splits);
    int32_t n = a.Nw == 1 ? lo / bands : n_res;
    int32_t oh = (a.Nw == 1 ? lo - n * bands : lo) * R;
    A acc[TAPS];
LC_UNROLL
    for (int k = 0; k < TAPS; ++k) acc[k] = A(0);
    if (lo < hi) stage(smem, a, t, c0, n, oh, 0);
    LC_COPY_COMMIT();
    for (int32_t it = lo, k = 0; it < hi; ++it, k ^= 1) {
      const int32_t rows = Ho - oh - rs * RS;  // this strip's rows of a (if <= 0: none)
      oh += R;  // the next item
      if (oh >= Ho) {
        oh = 0;
        ++n;
      }
      if (it + 1 < hi) {
        stage(smem, a, t, c0, n, oh, k ^ 1);
        LC_COPY_COMMIT();
        LC_COPY_WAIT_GROUPS(1);  // item it's copies are in (it + 1's may not be)
      } else {
        LC_COPY_WAIT_GROUPS(0);
      }
      sync();
      if (active && rows > 0 && cols > 0) {
        const float* buf = mine + k * bw;
        if (rows >= RS && cols >= CS) {
          strip<false>(acc, buf + b_off, buf + a_off, IW, AW, RS, CS);
        } else {
          LC_RARE_PATH();
          strip<true>(acc, buf + b_off, buf + a_off, IW, AW, rows, cols);
        }
      }
      sync();  // buffer k is read: item it + 2 may be staged there
    }
    reduce_and_store(mine, a, t, acc, lane, active, split, int64_t(n_res) * p.C + c0 + warp);
  }

  // the barrier between staging and reading: the warp's own (NCHW), or the block's (CL:
  // every warp's buffers are staged by the whole block)
  static LC_DEVICE void sync() {
    if constexpr (CL) {
      sync_threads();
    } else {
      sync_warp();
    }
  }

  // The item of sample n whose band starts at output row oh: its rows of a and b into
  // buffer k of each warp the caller stages for, rows of b outside the image as zeros
  // (the same copies, reading nothing). NCHW: the warp's own channel, lpr lanes along a
  // row's chunks, 32 / lpr rows a pass. CL: the block's 8 channels, a thread (channel
  // ch, position q) copying positions q and q + 32 of every row (rows of at most 64).
  static LC_DEVICE void stage(unsigned char* smem, const CorrArgs& a, const CorrBandPlan& t,
                              int32_t c0, int32_t n, int32_t oh, int k) {
    const Problem& p = a.p;
    const int32_t H = int32_t(p.h.in), W = int32_t(p.w.in), Ho = int32_t(p.h.out);
    const int32_t rows = min_of(int32_t(t.rows), Ho - oh);  // a's rows here
    const int32_t rows_b = rows + KF - 1, ih0 = oh - P;
    const int32_t IW = int32_t(t.IW), AW = int32_t(t.AW), bw = int32_t(t.buf_words);
    const int32_t a_base = (int32_t(t.rows) + KF - 1) * IW;  // (after the full band's b rows)
    const int32_t sbh = int32_t(a.b_s.h), sah = int32_t(a.a_s.h);
    const int tid = thread_index();
    const int ch = CL ? tid & (WARPS - 1) : tid >> 5;  // the channel (warp) staged for
    if (c0 + ch >= p.C) return;
    const SmemAddr buf = smem_addr(reinterpret_cast<float*>(smem) + (ch * 2 + k) * bw);
    if constexpr (!CL) {
      const int lane = tid & 31;
      const float* bp = static_cast<const float*>(a.b) + n * a.b_s.n + (c0 + ch) * a.b_s.c;
      const float* ap = static_cast<const float*>(a.a) + n * a.a_s.n + (c0 + ch) * a.a_s.c;
      const int32_t chunks = W / VB, lpr = int32_t(t.lanes_per_row), q0 = lane & (lpr - 1);
      const int32_t r0 = lane / lpr, step = 32 / lpr;
      for (int32_t r = r0; r < rows_b; r += step) {
        const int32_t ih = ih0 + r;
        const bool in = ih >= 0 && ih < H;
        const float* from = bp + (in ? ih : 0) * sbh;
        const SmemAddr to = buf + (r * IW + C0) * 4;
        for (int32_t q = q0; q < chunks; q += lpr)
          LC_COPY_ASYNC_FILL_IF(to + q * VB * 4, from + q * VB, VB * 4, true, in);
      }
      for (int32_t r = r0; r < rows; r += step) {
        const float* from = ap + (oh + r) * sah;
        const SmemAddr to = buf + (a_base + r * AW) * 4;
        for (int32_t q = q0; q < chunks; q += lpr)
          LC_COPY_ASYNC_FILL_IF(to + q * VB * 4, from + q * VB, VB * 4, true, true);
      }
    } else {
      static_assert(kCorrBandMaxStrips * CS <= 64, "two positions a thread a row");
      const int32_t q = tid / WARPS;  // 0..31
      const int32_t sbw = int32_t(a.b_s.w), saw = int32_t(a.a_s.w);
      const float* bp = static_cast<const float*>(a.b) + n * a.b_s.n + (c0 + ch) + q * sbw;
      const float* ap = static_cast<const float*>(a.a) + n * a.a_s.n + (c0 + ch) + q * saw;
      const bool q1 = q + 32 < W, q0 = q < W;
      const int32_t jb = 32 * sbw, ja = 32 * saw;
      for (int32_t r = 0; r < rows_b; ++r) {
        const int32_t ih = ih0 + r;
        const bool in = ih >= 0 && ih < H;
        const float* from = bp + (in ? ih : 0) * sbh;
        const SmemAddr to = buf + (r * IW + C0 + q) * 4;
        LC_COPY_ASYNC_FILL_IF(to, from, 4, q0, in);
        LC_COPY_ASYNC_FILL_IF(to + 128, from + jb, 4, q1, in);
      }
      for (int32_t r = 0; r < rows; ++r) {
        const float* from = ap + (oh + r) * sah;
        const SmemAddr to = buf + (a_base + r * AW + q) * 4;
        LC_COPY_ASYNC_FILL_IF(to, from, 4, q0, true);
        LC_COPY_ASYNC_FILL_IF(to + 128, from + ja, 4, q1, true);
      }
    }
  }

  // acc += the products of one strip: a's RS x CS values at `as` (rows AW apart), b's
  // RS + KF - 1 rows of NV values at `bs` (IW apart); EDGE: only a's first `rows` rows
  // and `cols` columns
  template <bool EDGE>
  static LC_DEVICE void strip(A (&acc)[TAPS], const float* bs, const float* as, int32_t IW,
                              int32_t AW, int32_t rows, int32_t cols) {
    A av[RS][CS];
    const SmemAddr at = smem_addr(as);
LC_UNROLL
    for (int r = 0; r < RS; ++r)
LC_UNROLL
      for (int j = 0; j < CS; ++j) {
        if (EDGE && (r >= rows || j >= cols)) {
          av[r][j] = A(0);
          continue;
        }
        LC_LOAD_SHARED_F1(av[r][j], at + (r * AW + j) * 4);
      }
    SmemAddr row = smem_addr(bs);
LC_UNROLL
    for (int i = 0; i < RS + KF - 1; ++i, row += IW * 4) {
      A bv[NV];
LC_UNROLL
      for (int col = 0; col < NV; ++col) LC_LOAD_SHARED_F1(bv[col], row + col * 4);
      corr_row_products<KF, 0, EDGE>(acc, av, bv, i, rows, cols);
    }
  }

  // The warp's 32 lanes' sums of each tap, added in lane order (through the warp's own
  // buffers: tap k of lane l at word l TAPS + k, an odd stride), stored as tap k of
  // result `out_row` (n' C + c), or its split's partial.
  static LC_DEVICE void reduce_and_store(float* mine, const CorrArgs& a, const CorrBandPlan& t,
                                         const A (&acc)[TAPS], int lane, bool active,
                                         int32_t split, int64_t out_row) {
    if (!active) return;  // (no barrier below is the block's)
LC_UNROLL
    for (int k = 0; k < TAPS; ++k) mine[lane * TAPS + k] = acc[k];
    sync_warp();
    const int64_t numel = a.Nw * a.p.C * TAPS;
    for (int k = lane; k < TAPS; k += 32) {
      A s = A(0);
      for (int l = 0; l < 32; ++l) s += mine[l * TAPS + k];
      const int64_t idx = out_row * TAPS + k;
      if (t.splits == 1)
        static_cast<float*>(a.out)[idx] = s;
      else
        static_cast<float*>(a.workspace)[split * numel + idx] = s;
    }
  }
};

}  // namespace lc
