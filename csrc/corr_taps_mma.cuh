// The depth-wise weight gradient of large windows (13 x 13, 31 x 31) on tensor cores with
// the taps as the GEMM's M and the kernel rows as its N, for half and bfloat16 NCHW-like
// planes, stride 1, dilation 1, any padding:
//
//   dW[i][j] = sum_{n, y, x} G[n, c, y, x] * X[n, c, y + i - ph, x + j - pw]
//
// (G = a, the output gradient; X = b, the input, zero outside the image). Grouped by the
// row r = y + i - ph of X that a product reads, for a column tile of 32 G columns x0..:
//
//   dW[i][j] += sum_x A_r[j][x] * B_r[x][i],  A_r[j][x] = X[r][x0 + x + j - pw],
//                                            B_r[x][i] = G[r + ph - i][x0 + x]
//
// one GEMM per X row with M = the taps j (MT tiles of 16), N = the kernel rows i (NI tiles
// of 8), K = the 32 columns: 2 x MT x NI mma.sync m16n8k16 (mma.cuh) an X row, into one
// accumulator that holds the warp's whole result (MT x NI x 4 float32 registers a lane:
// 32 at 31 x 31), no diagonal sums. 94% of the products are taps at 31 (corr_mma.cuh's
// X^T G: 65%).
//
// A_r is a Hankel matrix (its values depend on j + x only), so its fragments come from
// one staged row, not from a tile: lane (g, q) of the fragment for M tile mt and K chunk h
// holds the pairs of values at positions 16 (mt + h) + g + 2q + {0, 8, 8, 16} of the staged
// row (position p: X's column x0 - pw + p), i.e. pairs P[2o], P[2o + 1], P[2o + 1],
// P[2o + 2] of P[k] = (g + 2q + 8k, + 1), o = mt + h: 2 (MT + 2) - 1 32-bit loads an X row
// (7 at 31) feed all 2 x MT x NI mma. A pair starts at an odd position for odd g, so each
// row is staged twice, as is and one value on (copy 1): every pair is one aligned word.
// B_r's fragments are G's rows (ldmatrix, not transposed): one ldmatrix.x4 an N tile and X
// row (the tile's 8 kernel rows x the 32 columns).
//
// Work: a warp per (result, split): result = channel (and batch index for Nw = N), its
// items (batch index, column tile, band of 8 X rows) split into `splits` parts; the warp
// walks its part's bands, staging each band's 8 X rows (both copies) and the G rows the
// band reads that the previous band did not, then stores its taps, or its split's partial
// for ReduceSplits (no atomics: deterministic).
//
// Staging: G's rows live in a ring of 64 rows (row y in row y % 64), rows 0..W - 1 of the
// ring written a second time past its end (W: the window of a band, 8 NI + 7 rows), so a
// band's window is contiguous from its first row and every ldmatrix address is a constant
// offset from one base a band. A band stages 8 new G rows (a lane per row and 16-byte
// chunk), the whole window at the start of a plane or of the warp's part. X's rows: a lane
// per row and 16 positions; with padding KF / 2 and rows 4-byte aligned, three aligned
// chunks of 8 values shifted by a compile-time count, else value by value. Rows are
// 4 words past a multiple of 8 words apart (84, 52 words) and copy 1 sits 8 (or 24) words
// past copy 0: stores and the pairs' loads are free of bank conflicts.
//
// Exactness: X's zeros outside the image multiply staged G values and G's zeros past its
// edges multiply X's, which matters only with an Inf or NaN: a warp whose sums are not
// all finite recomputes its part tap by tap from global memory (the reference's
// products, G's positions inside its plane times X or the padding's zero).
#pragma once

#include "corr_items.cuh"
#include "mma.cuh"
#include "params.h"
#include "plan.h"
#include "portable.h"

namespace lc {

template <class T, int KF>
struct CorrTapsMma {
  static constexpr int MT = corr_taps_mtiles(KF);   // M tiles of 16 taps j
  static constexpr int NI = corr_taps_ntiles(KF);   // N tiles of 8 kernel rows i
  static constexpr int KC = 2, CT = 16 * KC;        // K chunks of 16 columns: a tile of 32
  static constexpr int NP = 2 * (KC + MT) - 1;      // pairs a lane loads an X row
  static constexpr int XV = corr_taps_values(KF);   // staged positions of an X row copy
  static constexpr int XS = corr_taps_copy_words(KF);  // words from copy 0 to copy 1
  static constexpr int XRS = corr_taps_row_words(KF);  // words between staged X rows
  static constexpr int BR = 8;                      // X rows a band
  static constexpr int WIN = corr_taps_window(KF);  // G rows a band reads
  static constexpr int RING = kTapsRingRows, GS = kTapsRowValues;
  static constexpr int PW = KF / 2;
  // X's staged position 0 lies E values past an aligned chunk (padding KF / 2: x0 - PW)
  static constexpr int E = (8 - PW % 8) % 8;
  static constexpr int TAPS = KF * KF;
  static constexpr int64_t kWarpBytes = corr_taps_warp_bytes(KF);
  static_assert(WIN <= RING && XV % 16 == 0 && XV / 16 <= 4, "the ring; 4 lanes a row");
  static_assert(XRS % 4 == 0 && (XRS / 4) % 2 == 1 && XS % 4 == 0 && XS % 32 >= 7 &&
                    XS % 32 <= 25 && XS >= XV / 2,
                "staged X rows: 8 rows' chunks and the two copies' pairs in distinct banks");
  static_assert((GS / 8) % 2 == 1 && GS >= CT, "ring rows: 8 rows' chunks in distinct banks");
  static_assert(kWarpBytes >= 16 + BR * XRS * 4 + (RING + WIN) * GS * 2, "shared memory a warp");
  using F = float;
  static constexpr int kMinBlocks = 2;

  // A result's items in order: (batch index,) column tile, band (corr_items.cuh)
  using Cursor = ItemCursor<T>;

  static LC_DEVICE void run(unsigned char* smem, const CorrArgs& a, const CorrTapsPlan& t) {
    const int warp = thread_index() >> 5, lane = thread_index() & 31;
    const int64_t gw = block_index() * (block_threads() >> 5) + warp;
    if (gw >= a.Nw * a.p.C * t.splits) return;  // the whole warp
    const int64_t split = gw % t.splits, res = gw / t.splits;
    const int64_t c = res % a.p.C, n_res = res / a.p.C;
    unsigned char* mine = smem + warp * kWarpBytes;
    uint32_t* xs = reinterpret_cast<uint32_t*>(mine + 16);
    T* gs = reinterpret_cast<T*>(mine + 16 + BR * XRS * 4);
    part(mine, a, t, split, n_res, c, c, lane, [] { sync_warp(); },
         [&](const Cursor& cur, bool full) {
           stage_x(xs, a, t, cur, lane);
           stage_g(gs, a, t, cur, full, lane);
         });
  }

  // A warp's part of result (n_res, c): its split's items (those of channel c_seg's planes)
  // staged by stage(cursor, full) between sync() barriers (the warp's, or the block's where
  // warps stage for each other; full: G's whole window), their products summed, then
  // finish. `mine`: the warp's shared memory (a flag, X's band, G's ring).
  template <class Sync, class Stage>
  static LC_DEVICE void part(unsigned char* mine, const CorrArgs& a, const CorrTapsPlan& t,
                             int64_t split, int64_t n_res, int64_t c_seg, int64_t c, int lane,
                             Sync sync, const Stage& stage) {
    const Problem& p = a.p;
    volatile uint32_t* flag = reinterpret_cast<uint32_t*>(mine);  // warp_all's word
    uint32_t* xs = reinterpret_cast<uint32_t*>(mine + 16);         // BR rows x 2 copies
    T* gs = reinterpret_cast<T*>(mine + 16 + BR * XRS * 4);         // RING + WIN rows
    // (32-bit: plan.h keeps a result's items below 2^31)
    const int32_t lo = int32_t(split * t.items / t.splits);
    const int32_t hi = int32_t((split + 1) * t.items / t.splits);
    F acc[MT][NI][4];
LC_UNROLL
    for (int mt = 0; mt < MT; ++mt)
LC_UNROLL
      for (int nt = 0; nt < NI; ++nt)
LC_UNROLL
        for (int e = 0; e < 4; ++e) acc[mt][nt][e] = F(0);
    if (lane == 0) flag[0] = 0;
    const int g = lane >> 2, q = lane & 3;
    // this lane's pair P[0] in X row 0: copy g % 2, word g / 2 + q
    const SmemAddr xa = smem_addr(xs + (g & 1) * XS + (g >> 1) + q);
    const int32_t ph = int32_t(p.h.p);
    Cursor cur = Cursor::at(a, t.col_tiles, t.bands, lo, n_res, c_seg);
    for (int32_t it = lo; it < hi; ++it, cur.next(a, t.col_tiles, t.bands)) {
      sync();  // the previous band's reads of the staged rows are done
      stage(cur, it == lo || cur.row == 0);
      sync();
      // the band's window: G rows ws.. from ring row ws % 64; this lane's ldmatrix row
      // (X row 0 of the band, N tile 0: G row r0 + ph - (lane % 8)) and 16-byte chunk
      const int32_t ws = cur.row * BR + ph - (8 * NI - 1);
      const SmemAddr ga =
          smem_addr(gs + ((ws & (RING - 1)) + 8 * NI - 1 - (lane & 7)) * GS + 8 * (lane >> 3));
      if (kHaveMma) {
        // the N tiles whose G rows meet the plane for some X row of the band (uniform):
        // tile nt reads G rows r + ph - 8 nt - 7.. r + ph - 8 nt
        const int32_t r1 = min_of(cur.row * BR + BR, int32_t(p.h.in)) - 1 + ph;
        const int32_t r0 = cur.row * BR + ph - 7 - (int32_t(p.h.out) - 1);
        // (three instances for 31 x 31, whose first and last bands skip a tile of four;
        // 13 x 13's two tiles: one, the bands of the large-kernel suite need both)
        const bool first = r0 <= 0, last = r1 >= 8 * (NI - 1);  // tile 0 / NI - 1 meets it
        if constexpr (NI >= 3) {
          if (first && !last)
            products<0, NI - 1>(acc, xa, ga);
          else if (!first && last && r0 <= 8)
            products<1, NI>(acc, xa, ga);
          else
            products<0, NI>(acc, xa, ga);  // (others: the tiles past the plane add zeros)
        } else {
          products<0, NI>(acc, xa, ga);
        }
      }
    }
    finish(a, t, acc, flag, lo, hi, c, n_res, split, n_res * p.C + c, lane);
  }

  // A band's products of N tiles N0..N1 - 1: for each of its X rows rr, the NP pairs, then
  // per N tile the G rows' fragments (both K chunks) and the MT x KC mma.
  template <int N0, int N1>
  static LC_DEVICE void products(F (&acc)[MT][NI][4], SmemAddr xa, SmemAddr ga) {
LC_UNROLL
    for (int rr = 0; rr < BR; ++rr) {
      uint32_t pr[NP];
LC_UNROLL
      for (int k = 0; k < NP; ++k) LC_LOAD_SHARED_U1(pr[k], xa + 4 * (rr * XRS + 4 * k));
LC_UNROLL
      for (int nt = N0; nt < N1; ++nt) {
        uint32_t bf[4];  // (chunk 0: bf[0], bf[1]; chunk 1: bf[2], bf[3])
        LC_LOAD_N4(bf, ga + 2 * GS * (rr - 8 * nt));
LC_UNROLL
        for (int mt = 0; mt < MT; ++mt)
LC_UNROLL
          for (int h = 0; h < KC; ++h) {
            const int o = mt + h;
            const uint32_t af[4] = {pr[2 * o], pr[2 * o + 1], pr[2 * o + 1], pr[2 * o + 2]};
            const uint32_t bh[2] = {bf[2 * h], bf[2 * h + 1]};
            mma_16816<T>(acc[mt][nt], af, bh);
          }
      }
    }
  }

  // 8 values of row `src` from column `col` (a multiple of 8 from the row's start; `piece`:
  // its loads, mma_piece): whole pieces where the chunk lies inside 0..W, value by value
  // where the row's end cuts it or the row is not aligned, zeros outside
  static LC_DEVICE void load_chunk(const T* src, int32_t col, int32_t W, bool row_in,
                                   int32_t piece, uint32_t (&v4)[4]) {
    if (piece == 1 || (col < W && col + 8 > W))
      gather8(src, col, W, row_in, v4);
    else
      chunk_pieces(src, col, W, row_in, piece, v4);
  }

  // The band's X rows r0 + rr (zeros past the image), positions 16 part.. of both copies:
  // lane = rr + 8 part (parts past XV / 16 idle). Copy 0 holds X's column x0 - pw + p at
  // position p, copy 1 column x0 - pw + p + 1.
  static LC_DEVICE void stage_x(uint32_t* xs, const CorrArgs& a, const CorrTapsPlan& t,
                                const Cursor& cur, int lane) {
    const int rr = lane & 7, part = lane >> 3;
    if (part >= XV / 16) return;
    const int32_t H = int32_t(a.p.h.in), W = int32_t(a.p.w.in);
    const int32_t y = cur.row * BR + rr;
    const bool row_in = y < H;
    const T* src = cur.x + y * int32_t(a.b_s.h);  // formed for every row, read inside only
    const int32_t col = cur.ct * CT - int32_t(a.p.w.p) + 16 * part;  // position 16 part
    uint32_t c0[2][4], c1[2][4];  // copy 0 / copy 1: positions 16 part + 8 h..
    if (t.fast_x) {  // col - E is a multiple of 8: three aligned chunks
      uint32_t v[3][4];
LC_UNROLL
      for (int k = 0; k < 3; ++k) load_chunk(src, col - E + 8 * k, W, row_in, t.piece_b, v[k]);
LC_UNROLL
      for (int h = 0; h < 2; ++h)
LC_UNROLL
        for (int j = 0; j < 4; ++j) {  // values E + 8h + 2j (copy 0), one on (copy 1)
          constexpr int w0 = E / 2, w1 = (E + 1) / 2;
          const int a0 = w0 + 4 * h + j, a1 = w1 + 4 * h + j;
          c0[h][j] = pair_from(v[a0 / 4][a0 % 4], v[(a0 + 1) / 4 % 3][(a0 + 1) % 4], E % 2 == 1);
          c1[h][j] = pair_from(v[a1 / 4][a1 % 4], v[(a1 + 1) / 4 % 3][(a1 + 1) % 4], E % 2 == 0);
        }
    } else {
LC_UNROLL
      for (int h = 0; h < 2; ++h) {
        gather8(src, col + 8 * h, W, row_in, c0[h]);
        gather8(src, col + 8 * h + 1, W, row_in, c1[h]);
      }
    }
    uint32_t* out = xs + rr * XRS + 8 * part;
LC_UNROLL
    for (int h = 0; h < 2; ++h) {
      LC_STORE_WORDS(out + 4 * h, c0[h]);
      LC_STORE_WORDS(out + XS + 4 * h, c1[h]);
    }
  }

  // G rows into the ring (row y at ring row y % 64, and at 64 + y % 64 too where y % 64 <
  // WIN), columns x0.. (32, zeros outside the plane): the band's 8 new rows r0 + ph..
  // (a lane per row and chunk), and where `full` the NI groups of 8 below them as well.
  static LC_DEVICE void stage_g(T* gs, const CorrArgs& a, const CorrTapsPlan& t,
                                const Cursor& cur, bool full, int lane) {
    const int32_t Ho = int32_t(a.p.h.out), Wo = int32_t(a.p.w.out);
    const int rl = lane & 7, u = lane >> 3;
    const int32_t top = cur.row * BR + int32_t(a.p.h.p) + rl, x = cur.ct * CT + 8 * u;
    for (int k = full ? NI : 0; k >= 0; --k) {
      const int32_t y = top - 8 * k;
      const bool row_in = y >= 0 && y < Ho;
      const T* src = cur.g + y * int32_t(a.a_s.h);  // formed for every row, read inside only
      uint32_t v4[4];
      load_chunk(src, x, Wo, row_in, t.piece_a, v4);
      const int slot = y & (RING - 1);
      LC_STORE_WORDS(gs + slot * GS + 8 * u, v4);
      if (slot < WIN) LC_STORE_WORDS(gs + (slot + RING) * GS + 8 * u, v4);
    }
  }


  // The warp's part done: if every sum is finite, acc's element (tap j = 16 mt + g +
  // 8 (e / 2), kernel row i = 8 nt + 2q + e % 2) is dW[i][j]; else the part tap by tap.
  static LC_DEVICE void finish(const CorrArgs& a, const CorrTapsPlan& t,
                               const F (&acc)[MT][NI][4], volatile uint32_t* flag, int32_t lo,
                               int32_t hi, int64_t c, int64_t n_res, int64_t split, int64_t res,
                               int lane) {
    const int g = lane >> 2, q = lane & 3;
    F probe = F(0);
LC_UNROLL
    for (int mt = 0; mt < MT; ++mt)
LC_UNROLL
      for (int nt = 0; nt < NI; ++nt)
LC_UNROLL
        for (int e = 0; e < 4; ++e) probe += acc[mt][nt][e] * F(0);
    const bool mma_ok = warp_all(kHaveMma && probe == F(0), flag);
    const int64_t numel = a.Nw * a.p.C * TAPS, out0 = res * TAPS;
    if (mma_ok) {
LC_UNROLL
      for (int mt = 0; mt < MT; ++mt)
LC_UNROLL
        for (int nt = 0; nt < NI; ++nt)
LC_UNROLL
          for (int e = 0; e < 4; ++e) {
            const int j = 16 * mt + g + 8 * (e >> 1), i = 8 * nt + 2 * q + (e & 1);
            if (i < KF && j < KF)
              put_tap<T>(a, t.splits, split, numel, out0 + i * KF + j, acc[mt][nt][e]);
          }
    } else {
      LC_RARE_PATH();
      direct(a, t, lo, hi, c, n_res, split, numel, out0, lane);
    }
  }

  // The part's sums tap by tap from global memory (float32, the reference's products):
  // for tap (i, j) and item (column tile, band), G's rows y whose X row y + i - ph, clamped
  // to the image, lies in the band (so every product is some item's), every column of
  // the tile inside G, times X or the padding's zero.
  static LC_DEVICE void direct(const CorrArgs& a, const CorrTapsPlan& t, int32_t lo, int32_t hi,
                               int64_t c, int64_t n_res, int64_t split, int64_t numel,
                               int64_t out0, int lane) {
    const int32_t H = int32_t(a.p.h.in), W = int32_t(a.p.w.in);
    const int32_t Ho = int32_t(a.p.h.out), Wo = int32_t(a.p.w.out);
    const int32_t ph = int32_t(a.p.h.p), pw = int32_t(a.p.w.p);
    const int32_t sgh = int32_t(a.a_s.h), sxh = int32_t(a.b_s.h);
    const int32_t sgw = int32_t(a.a_s.w), sxw = int32_t(a.b_s.w);  // 1 but channels_last
    const int32_t last = int32_t(t.bands) - 1;
    for (int tap = lane; tap < TAPS; tap += 32) {
      const int i = tap / KF, j = tap % KF;
      F s = F(0);
      Cursor cur = Cursor::at(a, t.col_tiles, t.bands, lo, n_res, c);
      for (int32_t it = lo; it < hi; ++it, cur.next(a, t.col_tiles, t.bands)) {
        const int32_t r0 = cur.row * BR, x0 = cur.ct * CT;
        const int32_t y0 = cur.row == 0 ? 0 : max_of(r0 + ph - i, 0);
        const int32_t y1 = cur.row == last ? Ho : min_of(r0 + BR + ph - i, Ho);
        for (int32_t y = y0; y < y1; ++y) {
          const int32_t iy = y + i - ph;
          const bool rin = iy >= 0 && iy < H;
          for (int32_t x = x0; x < min_of(x0 + CT, Wo); ++x) {
            const int32_t ix = x + j - pw;
            const F xv = rin && ix >= 0 && ix < W ? to_float(cur.x[iy * sxh + ix * sxw]) : F(0);
            s += to_float(cur.g[y * sgh + x * sgw]) * xv;
          }
        }
      }
      put_tap<T>(a, t.splits, split, numel, out0 + tap, s);
    }
  }
};

}  // namespace lc
