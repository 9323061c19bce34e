// The depth-wise weight gradient (corr2d) with a result of each sample's own (dynamic
// depth-wise, Nw = N) on tensor cores for small planes: half and bfloat16, planes of at most
// 16 x 16, a KF x KF kernel (3, 5, 7) with padding KF / 2, stride 1, dilation 1, any layout.
// conn_sample.cuh's forward pass, summed the other way.
//
// A plane's 49 sums w'(i, j) = sum_{py, px} G[py][px] X[py + i - KF/2][px + j - KF/2] are a
// GEMM over X's rows: with X staged on a grid with KF/2 zero rows and columns around it
// (grid row r = plane row + KF/2, column likewise),
//   C[j][i] += sum_px X[r][px + j] G[r - i][px]   for every grid row r,
// M = the tap column j (16 rows, KF of them used), N = the tap row i (8), K = the columns
// px: A is a Hankel block of X's row r (lane (g, q)'s register holds X[r][2q + g], + 1: two
// word loads and a PRMT, the lane's word offset fixed), B is G's rows r - i (zero where
// r - i leaves the plane's grid), and the sums stay in the four accumulators of the
// fragment for the whole plane: no diagonal sums. GW = 16: K = 16 columns, one mma per grid
// row (16 + 2 (KF/2) of them); GW = 8: K = the 8 columns of two adjacent grid rows, one mma
// per pair. Lane (g, q) ends with w'(2q + e, g) (e = 0, 1) in acc[e].
//
// A block owns CW channels x kBatchSamples samples (conn_sample.cuh's sample_channels);
// inputs move value by value through shared memory (batch_stage.cuh), each warp takes its
// planes one after another and writes their 49 sums. No splits: a result is one plane's.
//
// Exactness: the products are exact in float32. The GEMM also multiplies G's zero rows and
// columns by X's values, and X's halo zeros by G's values (the reference's zero padding);
// while the plane's G and X are finite the extra products are exactly 0. A plane with a
// non-finite sum is summed again tap by tap from the staged grids (float32, the
// reference's masking: G times the padding's zeros).
#pragma once

#include "batch_stage.cuh"
#include "mma.cuh"
#include "params.h"
#include "plan.h"
#include "portable.h"

namespace lc {

template <class T, int KF, int GW>
struct CorrSample {
  static constexpr int S = kBatchSamples, CW = sample_channels(GW);
  static constexpr bool kWide = GW == 16;
  static constexpr int PD = KF / 2, TAPS = KF * KF;
  // X: GW + 2 PD columns and rows (halo of PD zeros), rows XRS values apart; G: GW x GW
  static constexpr int XW = GW + 2 * PD, XR = GW + 2 * PD, XRS = corr_sample_x_stride(GW);
  static constexpr int XAS = XR * XRS + 8, XCS = S * XAS + batch_channel_pad(CW);
  static constexpr int GRS = sample_row_stride(GW), GAS = GW * GRS + 8,
                       GCS = S * GAS + batch_channel_pad(CW);
  static constexpr int PPW = CW * S / (kThreads / 32);  // planes a warp
  using XGrid = BatchGrid<CW, XW, XR, PD, XAS, XCS, XRS, PD>;
  using GGrid = BatchGrid<CW, GW, GW, 0, GAS, GCS, GRS>;
  static constexpr int kXRounds = (XGrid::kPositions + kThreads - 1) / kThreads;
  static constexpr int kGRounds = (GGrid::kPositions + kThreads - 1) / kThreads;
  static_assert(S % PPW == 0, "a warp's planes are of one channel");
  static_assert(KF <= 8 && XR % 2 == 0, "taps in one M tile; grid rows in pairs");
  static_assert(corr_sample_bytes(KF, GW) == 16 * (kThreads / 32) + 2 * CW * (XCS + GCS),
                "plan.h's shared memory");
  using F = float;
  static constexpr int kMinBlocks = 2;  // at most 128 registers

  static LC_DEVICE void run(unsigned char* smem, const CorrArgs& a, const CorrBatchPlan& t) {
    const Problem& p = a.p;
    const int tid = thread_index(), warp = tid >> 5, lane = tid & 31;
    const int64_t n0 = block_index() / t.groups * S, c0 = block_index() % t.groups * CW;
    volatile uint32_t* flag = reinterpret_cast<uint32_t*>(smem + 16 * warp);
    T* xs = reinterpret_cast<T*>(smem + 16 * (kThreads / 32));  // CW x X grids
    T* gs = xs + CW * XCS;                                       // CW x G grids
    const int32_t H = int32_t(p.h.in), W = int32_t(p.w.in);
    const int ns = int(min_of(int64_t(S), p.N - n0));
    if (lane == 0) flag[0] = 0;  // (the block barrier publishes it)

    const T* x = static_cast<const T*>(a.b) + (n0 * a.b_s.n + c0 * a.b_s.c);
    const T* gy = static_cast<const T*>(a.a) + (n0 * a.a_s.n + c0 * a.a_s.c);
LC_UNROLL
    for (int k = 0; k < kXRounds; ++k) {
      const int f = tid + kThreads * k;
      const BatchPos b = batch_pos<XGrid>(f, t.cl_b, H, W, c0, p.C);
      if (f < XGrid::kPositions) batch_load<XGrid>(xs, x, a.b_s, b, ns);
    }
LC_UNROLL
    for (int k = 0; k < kGRounds; ++k) {
      const int f = tid + kThreads * k;
      const BatchPos b = batch_pos<GGrid>(f, t.cl_a, H, W, c0, p.C);
      if (f < GGrid::kPositions) batch_load<GGrid>(gs, gy, a.a_s, b, ns);
    }
    sync_threads();
    const int j = warp * PPW / S;  // the warp's channel in the block
    if (c0 + j >= p.C) return;     // (warp-uniform; no barrier follows)
    const int g = lane >> 2, q = lane & 3;
    for (int k = 0; k < PPW; ++k) {
      const int s = warp * PPW % S + k;
      if (s >= ns) break;
      T* out = static_cast<T*>(a.out) + ((n0 + s) * p.C + c0 + j) * TAPS;
      plane(xs + j * XCS + s * XAS, gs + j * GCS + s * GAS, out, flag, H, W, g, q, lane);
    }
  }

  // One plane: its X grid xp, its G grid gp, its result (KF x KF values).
  static LC_DEVICE void plane(const T* xp, const T* gp, T* out, volatile uint32_t* flag,
                              int32_t H, int32_t W, int g, int q, int lane) {
    F acc[4];
    if (sums(xp, gp, flag, g, q, acc)) {
LC_UNROLL
      for (int e = 0; e < 2; ++e) {  // w'(2q + e, g)
        const int i = 2 * q + e;
        if (g < KF && i < KF) store_acc(out + i * KF + g, acc[e]);
      }
      return;
    }
    for (int tap = lane; tap < TAPS; tap += 32) {
      const int i = tap / KF, jj = tap % KF;
      F s = F(0);
      for (int py = 0; py < H; ++py)
        for (int px = 0; px < W; ++px)  // (the grid's halo: the padding's zeros)
          s += to_float(gp[py * GRS + px]) * to_float(xp[(py + i) * XRS + px + jj]);
      store_acc(out + tap, s);
    }
  }

  // The plane's sums (C[j][i]: lane (g, q) holds j = g + 8 (e / 2), i = 2q + e % 2); false on
  // every lane if any is not finite (or without mma.sync).
  static LC_DEVICE bool sums(const T* xp, const T* gp, volatile uint32_t* flag, int g, int q,
                             F (&acc)[4]) {
    if (!kHaveMma) return false;
LC_UNROLL
    for (int e = 0; e < 4; ++e) acc[e] = F(0);
    // A: X[r][2q + g] and its neighbour (two words, the pair picked by g's parity)
    const uint32_t* xw = reinterpret_cast<const uint32_t*>(xp) + ((2 * q + g) >> 1);
    const bool odd = g & 1;
    const uint32_t* gw = reinterpret_cast<const uint32_t*>(gp) + q;  // G[.][2q]
    constexpr int XWR = XRS / 2, GWR = GRS / 2;  // words a row
    // A's row j = g and B's column i = g hold a tap column / row (the others are zeros: the
    // grid's columns past the window's reach are not staged)
    const bool tap_col = g < KF, tap_row = g < KF;
    constexpr int STEP = kWide ? 1 : 2;
LC_UNROLL
    for (int r = 0; r < XR; r += STEP) {
      uint32_t afr[4], b[2];
      // kWide: K columns 0..7 and 8..15 of row r; else row r's and row r + 1's 8 columns
      constexpr int second = kWide ? 4 : XWR;
      afr[0] = tap_col ? pair_from(xw[r * XWR], xw[r * XWR + 1], odd) : 0u;
      afr[2] = tap_col ? pair_from(xw[r * XWR + second], xw[r * XWR + second + 1], odd) : 0u;
      afr[1] = afr[3] = 0u;  // tap columns 8..15: none
      const int gr0 = r - g, gr1 = kWide ? r - g : r + 1 - g;  // G rows of b[0], b[1]
      b[0] = tap_row && gr0 >= 0 && gr0 < GW ? gw[gr0 * GWR] : 0u;
      b[1] = tap_row && gr1 >= 0 && gr1 < GW ? gw[gr1 * GWR + (kWide ? 4 : 0)] : 0u;
      mma_16816<T>(acc, afr, b);
    }
    F probe = F(0);
LC_UNROLL
    for (int e = 0; e < 4; ++e) probe += acc[e] * F(0);  // NaN if one is not finite
    return warp_all(probe == F(0), flag);
  }
};

}  // namespace lc
