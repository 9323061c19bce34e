// conn_batch.cuh's GEMM (the batch as M) on grids GW wide: GW = 16 for planes of 9 to 16
// columns or rows (DWNet-T's 14 x 14 stage), GW = 32 for planes of 17 to 32 (its 28 x 28
// stage) and, as tiles, larger ones (its 56 x 56 stage); any layout: half and bfloat16, a
// KF x KF kernel (3, 5, 7) with padding
// KF / 2, stride 1, dilation 1, a weight the samples share.
//
// A sample's plane is staged as a grid, its row qy at grid row qy + KF/2 (KF/2 zero rows
// above and below) and its column qx at grid column qx + CO, zeros before and past its
// columns (batch_stage.cuh: two columns a 4-byte asynchronous copy, cp.async, where the
// images' rows allow it, NCHW-like, 4-byte aligned, of an even width,
// ConnBatchPlan::pairs: a thread's copies of the whole grid in flight at once, the filter's
// loads during the same round trip; else value by value through registers). Output row
// py is GW / 8 N tiles of 8 columns; for N tile h, the K tile of kernel row i is the 16
// grid columns KB(h) .. of input grid row py + i: for 16 samples s,
//   Y[s][py][8h + px] += sum_k X[s][py + i][KB(h) + k] w(i, KB(h) + k - CO - 8h - px + KF/2),
// mma.sync m16n8k16 with A = 16 samples x those 16 grid columns (ldmatrix.x4) and B = a
// 16 x 8 Toeplitz block of kernel row i: a lane (g, q) holds B rows k = 2q, 2q + 1
// (register 0) and 2q + 8, 2q + 9 (register 1) of column px = g, i.e. the filter pairs
// (w(i, u - 1), w(i, u)) with u = 2q + 8 r - g + KB(h) - CO - 8h + KF/2 + 1 (mma.cuh
// filter_pairs), built once per channel.
// - GW = 16: the grid is 16 wide (CO = 0) and both N tiles read the whole row (KB = 0):
//   an input row's A is one ldmatrix.x4, and the two halves' B differ (two register pairs
//   per kernel row and half).
// - GW = 32: an N tile's taps span 8 + KF - 1 <= 14 columns, so with the plane at CO = 4
//   the 16 columns at KB(h) = 8h hold them all and every half has the same B (one pair of
//   registers per kernel row); the grid is 40 wide, and the four tiles' A are the 16-column
//   windows at 0, 8, 16, 24 (three ldmatrix.x4: the one at 8 is the halves of 0 and 16).
// Per 16 samples and output row: GW / 8 x KF mma (16 x 28 outputs of a 28-wide plane at
// GW = 32, 16 x 14 of a 14-wide one at 16).
//
// A block owns plan.h batch_wide_channels(GW, TH) channels x 16 samples x a TH x GW tile of
// the output plane: 2 channels of a 16 x 16 grid; at GW 32 one channel of a 32 x 32 tile
// (16 samples' grids take 82 KB), or, for channels_last images (TH 16), two channels of a
// 16 x 32 tile (92 KB). Channels_last grids of two channels move a pixel's two values as
// one 4-byte load or store a sample where plan.h batch_pixel_pairs holds (even C,
// aligned pixels), else by neighbouring lanes, 2 bytes each. The grid holds
// the tile's input rows and columns with their halo (KF/2 rows above and below, 4 columns
// left and right) from the plane where they lie inside it; a plane's tiles are
// neighbouring blocks, so that their halos meet in L2. TH / 4 warps a channel, each warp
// four output rows (GW / 2 N tiles: 32 or 64 sums a lane; a warp whose rows are all past
// the plane skips its GEMM); it loads the KF + 3 grid rows they read once each. The
// outputs go through a
// second grid (TH x GW a sample) to the result. Exactness: as conn_batch.cuh (the probe of
// every sum; a warp with a non-finite one computes its outputs tap by tap from the staged
// grid).
#pragma once

#include "batch_stage.cuh"
#include "conn_batch.cuh"
#include "mma.cuh"
#include "params.h"
#include "plan.h"
#include "portable.h"

namespace lc {

template <class T, int KF, bool FLIP, int GW, int TH = GW>
struct ConnBatchWide {
  static_assert((GW == 16 && TH == 16) || (GW == 32 && (TH == 32 || TH == 16)),
                "16 x 16 grids, 32 x 32 or 16 x 32 tiles");
  static constexpr bool kLarge = GW == 32;
  static constexpr int S = kBatchSamples, CW = batch_wide_channels(GW, TH);
  static constexpr int PD = KF / 2, GR = batch_wide_rows(KF, TH);
  static constexpr int RS = batch_wide_cols(GW);  // a grid row (values)
  static constexpr int CO = kLarge ? 4 : 0;       // the plane's column 0 (even: pairs)
  static constexpr int AS = batch_wide_stride(KF, GW, TH), CS = S * AS + batch_channel_pad(CW);  // input grid
  static constexpr int OAS = batch_wide_out_stride(GW, TH), OCS = S * OAS + batch_channel_pad(CW);  // output
  static constexpr int RPW = 4;            // output rows per warp
  static constexpr int WPC = TH / RPW;     // warps per channel
  static constexpr int NT = GW / 8;        // N tiles an output row
  static constexpr int NB = kLarge ? 1 : 2;  // B register sets a kernel row (by half at 16)
  static constexpr int64_t kWarpBytes = batch_warp_bytes(KF);
  using In = BatchGrid<CW, RS, GR, PD, AS, CS, RS, CO>;  // (every column staged: zeros past)
  using Out = BatchGrid<CW, GW, TH, 0, OAS, OCS>;
  static constexpr int kInPos = (In::kPositions + kThreads - 1) / kThreads;  // a thread's
  static constexpr int kInPairs = (In::kPositions / 2 + kThreads - 1) / kThreads;
  static constexpr int kOutPos = Out::kPositions / kThreads;
  static_assert(CW * WPC == kThreads / 32, "TH / 4 warps a channel");
  static_assert(Out::kPositions % (2 * kThreads) == 0 && In::AS % 2 == 0 && RS % 8 == 0 &&
                    (AS / 8) % 2 == 1 && (OAS / 8) % 2 == 1,
                "positions (pairs: two columns each), odd numbers of 16-byte units");
  static_assert(!kLarge || (CO >= PD && CO + 7 + PD <= 15), "an N tile's taps in its K tile");
  using F = float;
  static constexpr int kMinBlocks = 2;  // at most 128 registers
  // the filter set up before the staging (sm_80: ptxas spilled 12 bytes with it after the
  // copies), else after the copies are issued (its loads' round trip is theirs)
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
  static constexpr bool kFilterFirst = true;
#else
  static constexpr bool kFilterFirst = false;
#endif

  static LC_DEVICE void run(unsigned char* smem, const ConnArgs& a, const ConnBatchPlan& t) {
    const Problem& p = a.p;
    const int tid = thread_index(), warp = tid >> 5, lane = tid & 31;
    // (GW 32: a block per 32 x 32 tile of the output plane, a plane's tiles neighbours)
    // (block indices fit 32 bits: plan.h kMaxBlocks)
    const uint32_t bi = uint32_t(block_index()), tiles = kLarge ? uint32_t(t.tiles) : 1u;
    const int64_t blk = kLarge ? int64_t(bi / tiles) : block_index();
    const int tile = kLarge ? int(bi % tiles) : 0;
    const int32_t y0 = kLarge ? TH * (tile / t.tiles_w) : 0;
    const int32_t x0 = kLarge ? GW * (tile % t.tiles_w) : 0;
    const int64_t n0 = blk / t.groups * S, c0 = blk % t.groups * CW;
    const int ch = warp / WPC, rg = warp % WPC;  // channel, output rows RPW rg..
    const int64_t c = c0 + ch;
    const bool active = c < p.C;  // (warp-uniform; every warp meets the barriers)
    unsigned char* mine = smem + warp * kWarpBytes;
    volatile uint32_t* flag = reinterpret_cast<uint32_t*>(mine);
    uint32_t* pairs = reinterpret_cast<uint32_t*>(mine + 16);
    T* xs = reinterpret_cast<T*>(smem + (kThreads / 32) * kWarpBytes);  // CW x In rows
    T* ys = xs + CW * CS;                                                  // CW x Out rows
    const int32_t H = int32_t(p.h.in), W = int32_t(p.w.in);
    const int ns = int(min_of(int64_t(S), p.N - n0));

    uint32_t bp[KF][NB][2];  // bp[i][h] = B registers of kernel row i (GW 16: N tile half h)
    F b0 = F(0);
    if (kFilterFirst && active) b0 = setup(a, c, flag, pairs, lane, bp);
    const T* x = static_cast<const T*>(a.src) + (n0 * a.src_s.n + c0 * a.src_s.c);
    if (t.pairs) {
LC_UNROLL
      for (int k = 0; k < kInPairs; ++k) {  // (In::kPositions / 2 pairs)
        const int f = tid + kThreads * k;
        const BatchPos b = batch_pair_pos<In>(f, H, W, c0, p.C, y0, x0);
        if (b.in)
          batch_copy_pairs<In>(xs, x, a.src_s, b, ns);
        else if (f < In::kPositions / 2)
          batch_zero_pairs<In>(xs, b);
      }
    } else if (CW == 2 && t.pixel_pairs) {
LC_UNROLL
      for (int k = 0; k < kInPairs; ++k) {  // (In::kPositions / 2 pixels)
        const int f = tid + kThreads * k;
        if (f < In::kPositions / 2)
          batch_load_pixel<In>(xs, x, a.src_s, batch_pixel_pos<In>(f, H, W, c0, p.C, y0, x0), ns);
      }
    } else {
LC_UNROLL
      for (int k = 0; k < kInPos; ++k) {
        const BatchPos b = batch_pos<In>(tid + kThreads * k, t.channels_last, H, W, c0, p.C, y0, x0);
        if (tid + kThreads * k < In::kPositions) batch_load<In>(xs, x, a.src_s, b, ns);
      }
    }
    // the filter while the pairs' asynchronous copies are in flight, then the wait for them
    if (!kFilterFirst && active) b0 = setup(a, c, flag, pairs, lane, bp);
    LC_COPY_WAIT();
    sync_threads();
    if (active && (!kLarge || y0 + RPW * rg < H)) {  // (GW 32: warps of rows in the plane)
      const T* xc = xs + ch * CS;
      T* yc = ys + ch * OCS;
      F acc[RPW][NT][4];
      if (sums(xc + RPW * rg * RS, bp, b0, flag, acc)) {
        const int g = lane >> 2, q = lane & 3;
        // word (sample g + 8e, row RPW rg + r, columns 8h + 2q, + 1)
LC_UNROLL
        for (int r = 0; r < RPW; ++r)
LC_UNROLL
          for (int h = 0; h < NT; ++h)
LC_UNROLL
            for (int e = 0; e < 2; ++e)
              *reinterpret_cast<uint32_t*>(yc + (g + 8 * e) * OAS + (RPW * rg + r) * GW + 8 * h + 2 * q) =
                  pack_floats<T>(acc[r][h][2 * e] + b0, acc[r][h][2 * e + 1] + b0);
      } else {
        direct(xc, yc, pairs, b0, RPW * rg, H, W, y0, x0, lane);
      }
    }
    sync_threads();
    T* y = static_cast<T*>(a.dst) + (n0 * a.dst_s.n + c0 * a.dst_s.c);
    if (t.pairs) {
LC_UNROLL
      for (int k = 0; k < kOutPos / 2; ++k)  // (Out::kPositions / 2 pairs)
        batch_store_pairs<Out>(y, a.dst_s, ys,
                               batch_pair_pos<Out>(tid + kThreads * k, H, W, c0, p.C, y0, x0), ns);
    } else if (CW == 2 && t.pixel_pairs) {
LC_UNROLL
      for (int k = 0; k < kOutPos / 2; ++k)  // (Out::kPositions / 2 pixels)
        batch_store_pixel<Out>(y, a.dst_s, ys,
                               batch_pixel_pos<Out>(tid + kThreads * k, H, W, c0, p.C, y0, x0), ns);
    } else {
LC_UNROLL
      for (int k = 0; k < kOutPos; ++k)
        batch_store<Out>(y, a.dst_s, ys,
                         batch_pos<Out>(tid + kThreads * k, t.channels_last, H, W, c0, p.C, y0, x0),
                         ns);
    }
  }

  // The warp's filter (channel c): `pairs`, this lane's B registers bp[i][h] (register r:
  // pairs[i][u], u = 2q + 8 r - g + KB(h) - CO - 8h + KF/2 + 1, the zero pair outside
  // 0..KF; GW 16: KB = CO = 0, a set per half; 32: KB(h) = 8h, one set). Returns the
  // bias; `flag` reset.
  static LC_DEVICE F setup(const ConnArgs& a, int64_t c, volatile uint32_t* flag, uint32_t* pairs,
                           int lane, uint32_t (&bp)[KF][NB][2]) {
    const F bias = batch_filter<T, KF, FLIP>(a, c, flag, pairs, lane);
    const int g = lane >> 2, q = lane & 3;
    if constexpr (kLarge) {
LC_UNROLL
      for (int r = 0; r < 2; ++r) {
        const int at = pair_slot<KF>(2 * q + 8 * r - g - CO + PD + 1);
LC_UNROLL
        for (int i = 0; i < KF; ++i) bp[i][0][r] = distinct(pairs[i * (KF + 2) + at]);
      }
    } else {
      int at[3];  // by r - h + 1
LC_UNROLL
      for (int d = 0; d < 3; ++d) at[d] = pair_slot<KF>(2 * q + 8 * (d - 1) - g + PD + 1);
LC_UNROLL
      for (int i = 0; i < KF; ++i)
LC_UNROLL
        for (int h = 0; h < 2; ++h)
LC_UNROLL
          for (int r = 0; r < 2; ++r) bp[i][h][r] = distinct(pairs[i * (KF + 2) + at[r - h + 1]]);
    }
    return bias;
  }

  // The warp's sums (acc[r][h]; b0 is added when they are stored) for output rows py0 + r
  // from grid rows py0 + r + i (xr: grid row py0); false on every lane if any is not finite.
  static LC_DEVICE bool sums(const T* xr, const uint32_t (&bp)[KF][NB][2], F b0,
                             volatile uint32_t* flag, F (&acc)[RPW][NT][4]) {
    if (!kHaveMma) return false;
LC_UNROLL
    for (int r = 0; r < RPW; ++r)
LC_UNROLL
      for (int h = 0; h < NT; ++h)
LC_UNROLL
        for (int e = 0; e < 4; ++e) acc[r][h][e] = F(0);
LC_UNROLL
    for (int k = 0; k < RPW + KF - 1; ++k) {  // grid row py0 + k, once
      uint32_t afr[kLarge ? NT : 1][4];  // the K tile of N tile h (GW 16: one for both)
      load_a(xr + RS * k, AS, afr[0]);
      if constexpr (kLarge) {  // the tile at 8: the right half of 0's, the left of 16's
        load_a(xr + RS * k + 16, AS, afr[2]);
        load_a(xr + RS * k + 24, AS, afr[3]);
        afr[1][0] = afr[0][2], afr[1][1] = afr[0][3], afr[1][2] = afr[2][0], afr[1][3] = afr[2][1];
      }
LC_UNROLL
      for (int r = 0; r < RPW; ++r) {
        const int i = k - r;
        if (i < 0 || i >= KF) continue;  // compile-time
LC_UNROLL
        for (int h = 0; h < NT; ++h)
          mma_16816<T>(acc[r][h], afr[kLarge ? h : 0], bp[i >= 0 && i < KF ? i : 0][kLarge ? 0 : h]);
      }
    }
    F probe = b0 * F(0);  // (the bias joins the sums in the epilogue)
LC_UNROLL
    for (int r = 0; r < RPW; ++r)
LC_UNROLL
      for (int h = 0; h < NT; ++h)
LC_UNROLL
        for (int e = 0; e < 4; ++e) probe += acc[r][h][e] * F(0);  // NaN if one is not finite
    return warp_all(probe == F(0), flag);
  }

  // The lane's fragment outputs (rows py0..) tap by tap (conn_batch.cuh batch_direct), for
  // a warp whose sums are not all finite.
  static LC_DEVICE void direct(const T* xc, T* yc, const uint32_t* pairs, F b0, int py0,
                               int32_t H, int32_t W, int32_t y0, int32_t x0, int lane) {
    const int g = lane >> 2, q = lane & 3;
    for (int e = 0; e < 4 * RPW * NT; ++e) {  // (row r, N tile h, sample half, column parity)
      const int r = e / (4 * NT), h = (e >> 2) % NT, s = g + 8 * ((e >> 1) & 1);
      const int py = py0 + r, px = 8 * h + 2 * q + (e & 1);
      if (y0 + py >= H || x0 + px >= W) continue;
      yc[s * OAS + py * GW + px] = from_float<T>(batch_direct<T, KF, FLIP, RS, PD, CO>(
          xc + s * AS, pairs, b0, py, px, H, W, y0, x0));
    }
  }
};

}  // namespace lc
