// corr_batch.cuh's weight gradient (the batch as the GEMM's K, one filter the samples
// share) on GW x GW grids: GW = 16 for planes of 9 to 16 columns or rows (DWNet-T's
// 14 x 14 stage, any layout), GW = 32 for NCHW planes of 17 to 32 (its 28 x 28 stage):
// half and bfloat16, a KF x KF kernel (3, 5, 7) with padding KF / 2, stride 1, dilation 1.
//
//   dW[i][j] = sum_{n, py, px} G[n][py][px] X[n][py + i - KF/2][px + j - KF/2]
//
// corr_batch.cuh's full product of every output and input position (64 x 64 on an 8 x 8
// plane) would be 256 x 256 here, nearly all of it off the taps. Instead, for an input
// row qy, an output row py = qy - i + KF/2 and 16 samples s, the 16 x 8 block
//   P[m][n] = sum_s X[s][qy][8u + m - XO] G[s][py][8u + n]      (px = 8u + n)
// is one mma.sync m16n8k16 with A = X^T (16 grid columns 8u.. of input row qy by 16
// samples; X's column 0 sits at grid column XO, KF/2 rounded up to even) and B = G (16
// samples by 8 columns of output row py), both by ldmatrix.trans from the staged grids.
// Its element (m, n) pairs px with input column px + m - n - XO: tap j = m - n - SH
// (SH = XO - KF/2), whatever u, py and the sample group, so every block of kernel row i
// accumulates into the same four registers (KF x 4 a lane); dW[i][j] is the diagonal
// m - n = j + SH of the sum, added once at the end (a shared 16 x 8 area a warp, fixed
// order).
// Per 16 samples and channel: GW / 8 mma per pair of rows (qy, py) within KF/2 of each
// other (172 on a 14 x 14 plane at KF = 7, 736 on 28 x 28), an input row's A loaded once
// (GW / 8 ldmatrix.x4), an output row's B once per warp that meets it (GW / 16).
//
// Staging (batch_stage.cuh): G on a GW x GW grid; X on a GW-row grid GW + 8 values wide,
// its column 0 at grid column XO (zeros before and past it: the reference's padding,
// and every column an A block reads is written). The block zeroes both grids once; then a
// sample group stages the positions inside the planes only (the others never change),
// two columns a 4-byte load and store where the rows allow it (NCHW-like, 4-byte
// aligned, an even width: plan.h CorrBatchPlan::pairs), channels_last G and X of an even
// C a pixel's two channels a 4-byte load (pixel_pairs), else value by value; a sample's
// grid is an odd number of 16-byte units long (ldmatrix's eight rows fall in distinct
// banks).
//
// A block owns plan.h corr_wide_channels(GW) channels (2 on 16-wide grids, 1 on 32-wide
// ones: 16 samples' grids take 74 KB), GW / 4 warps a channel, warp w the input rows
// 4w .. 4w + 3 (a 16-column half of their A registers held while it walks the output rows
// 4w - KF/2 .. 4w + 3 + KF/2 once each), and walks the sample groups of its split
// (ReduceSplits adds the splits' partials when there are several).
//
// Exactness: as corr_batch.cuh. Every value a tap multiplies is staged, finite staged
// values give finite sums, and a non-finite value of G or X inside the planes meets a
// staged value on a tap's diagonal (its own position's tap KF/2, KF/2), so a channel
// with a non-finite sum is summed again tap by tap from global memory (CorrBatch::direct,
// float32, the reference's masking).
#pragma once

#include "batch_stage.cuh"
#include "corr_batch.cuh"
#include "mma.cuh"
#include "params.h"
#include "plan.h"
#include "portable.h"

namespace lc {

template <class T, int KF, int GW>
struct CorrBatchWide {
  static_assert(GW == 16 || GW == 32, "16- or 32-wide grids");
  static constexpr int S = kBatchSamples, CH = corr_wide_channels(GW);
  static constexpr int PD = KF / 2, TAPS = KF * KF;
  static constexpr int XO = PD + PD % 2;  // X's column 0 at grid column XO (even: pairs)
  static constexpr int SH = XO - PD;      // tap j on the blocks' diagonal m - n = j + SH
  // G's and X's grids: a sample's, a channel's (plan.h batch_channel_pad: a channels_last
  // pixel's two channels, 16 positions each, in distinct banks)
  static constexpr int GS = corr_wide_g_stride(GW), GCS = S * GS + batch_channel_pad(CH);
  static constexpr int XS = corr_wide_x_stride(GW), XCS = S * XS + batch_channel_pad(CH);
  static constexpr int XR = GW + 8;          // X's grid row (values)
  static constexpr int RPW = 4;              // input rows a warp
  static constexpr int WPC = GW / RPW;       // warps a channel
  static constexpr int GRW = RPW + 2 * PD;   // output rows a warp walks
  static constexpr int HALVES = GW / 16;     // 16-column halves of a row
  using GGrid = BatchGrid<CH, GW, GW, 0, GS, GCS>;
  using XGrid = BatchGrid<CH, GW, GW, 0, XS, XCS, XR>;  // (staged XO values on)
  static constexpr int PPT = GGrid::kPositions / kThreads;  // positions a thread
  static_assert(CH * WPC == kThreads / 32, "GW / 4 warps a channel");
  static_assert(GGrid::kPositions == PPT * kThreads && XGrid::kPositions == PPT * kThreads,
                "positions a thread");
  static_assert((CH * (GCS + XCS) * sizeof(T)) % 16 == 0, "grids zeroed 16 bytes a store");
  static_assert((GS / 8) % 2 == 1 && (XS / 8) % 2 == 1, "odd numbers of 16-byte units");
  static_assert(CH * TAPS <= kThreads, "a thread per tap in the block pass");
  using F = float;
  static constexpr int kMinBlocks = 2;  // at most 128 registers (at 80, three blocks an SM
                                        // spill: model, 64x384x14x14 float16 9.6-11.1 us)

  static LC_DEVICE void run(unsigned char* smem, const CorrArgs& a, const CorrBatchPlan& t) {
    const Problem& p = a.p;
    const int tid = thread_index(), warp = tid >> 5, lane = tid & 31;
    const int64_t c0 = block_index() % t.groups * CH, split = block_index() / t.groups;
    const int ch = warp / WPC, qy0 = RPW * (warp % WPC);
    uint32_t* flags = reinterpret_cast<uint32_t*>(smem);  // a channel's sums not finite
    T* gs = reinterpret_cast<T*>(smem + 16);              // CH channels x S G grids
    T* xs = gs + CH * GCS;                                // CH channels x S X grids
    // a warp's 16 x 8 block by G column, rows kCorrDiagRow apart (corr_mma.cuh's DS)
    F* diag = reinterpret_cast<F*>(xs + CH * XCS) + warp * 8 * kCorrDiagRow;
    F* red = reinterpret_cast<F*>(xs + CH * XCS) + (kThreads / 32) * 8 * kCorrDiagRow;  // [warp][tap]
    if (tid < CH) flags[tid] = 0;
    const uint32_t z4[4] = {0u, 0u, 0u, 0u};
    for (int u = tid; u < int(CH * (GCS + XCS) * sizeof(T) / 16); u += kThreads)
      LC_STORE_WORDS(gs + 8 * u, z4);
    const int32_t H = int32_t(p.h.in), W = int32_t(p.w.in);

    // ldmatrix rows. A (X^T) matrix m: samples r + 8 (m / 2), grid columns 8 (m % 2) of
    // the block; B (G) matrix m: samples r + 8 (m % 2), columns 8 (m / 2) (both u)
    const int r = lane & 7, m = lane >> 3;
    const SmemAddr arow = smem_addr(xs + ch * XCS + (r + 8 * (m >> 1)) * XS + 8 * (m & 1));
    const SmemAddr brow = smem_addr(gs + ch * GCS + (r + 8 * (m & 1)) * GS + 8 * (m >> 1));
    F acc[KF][4];
LC_UNROLL
    for (int i = 0; i < KF; ++i)
LC_UNROLL
      for (int e = 0; e < 4; ++e) acc[i][e] = F(0);
    const int64_t groups = ceil_div(p.N, int64_t(S));
    for (int64_t grp = split; grp < groups; grp += t.splits) {
      const int64_t n0 = grp * S;
      const int ns = int(min_of(int64_t(S), p.N - n0));
      sync_threads();  // the previous group's reads of the staged grids (the zeros) done
      const T* g = static_cast<const T*>(a.a) + (n0 * a.a_s.n + c0 * a.a_s.c);
      const T* x = static_cast<const T*>(a.b) + (n0 * a.b_s.n + c0 * a.b_s.c);
      // (the positions found again each group: held across it, sm_80 spilled them at KF 3)
      if (t.pairs) {
LC_UNROLL
        for (int k = 0; k < PPT / 2; ++k) {
          const BatchPos pg = batch_pair_pos<GGrid>(tid + kThreads * k, H, W, c0, p.C);
          if (pg.in) batch_load_pairs<GGrid>(gs, g, a.a_s, pg, ns);
          const BatchPos px = batch_pair_pos<XGrid>(tid + kThreads * k, H, W, c0, p.C);
          if (px.in) batch_load_pairs<XGrid>(xs + XO, x, a.b_s, px, ns);
        }
      } else if (CH == 2 && t.pixel_pairs) {  // (GGrid::kPositions / 2 pixels)
LC_UNROLL
        for (int k = 0; k < PPT / 2; ++k) {
          const BatchPos pg = batch_pixel_pos<GGrid>(tid + kThreads * k, H, W, c0, p.C);
          if (pg.in) batch_load_pixel<GGrid>(gs, g, a.a_s, pg, ns);
          const BatchPos px = batch_pixel_pos<XGrid>(tid + kThreads * k, H, W, c0, p.C);
          if (px.in) batch_load_pixel<XGrid>(xs + XO, x, a.b_s, px, ns);
        }
      } else {
LC_UNROLL
        for (int k = 0; k < PPT; ++k) {
          const BatchPos pg = batch_pos<GGrid>(tid + kThreads * k, t.cl_a, H, W, c0, p.C);
          if (pg.in) batch_load<GGrid>(gs, g, a.a_s, pg, ns);
          const BatchPos px = batch_pos<XGrid>(tid + kThreads * k, t.cl_b, H, W, c0, p.C);
          if (px.in) batch_load<XGrid>(xs + XO, x, a.b_s, px, ns);
        }
      }
      sync_threads();
      if (kHaveMma)
LC_UNROLL
        for (int h = 0; h < HALVES; ++h) products(acc, arow, brow, qy0, h, H, W);
    }

    // the warp's taps: diagonal j of each kernel row's block, through `diag`
    F probe = F(0);
LC_UNROLL
    for (int i = 0; i < KF; ++i)
LC_UNROLL
      for (int e = 0; e < 4; ++e) probe += acc[i][e] * F(0);  // NaN if one is not finite
    if (!kHaveMma || !(probe == F(0))) flags[ch] = 1;
    const int g8 = lane >> 2, q = lane & 3;
LC_UNROLL
    for (int i = 0; i < KF; ++i) {
LC_UNROLL
      for (int e = 0; e < 4; ++e) diag[(2 * q + (e & 1)) * kCorrDiagRow + g8 + 8 * (e >> 1)] = acc[i][e];
      sync_warp();
      if (lane < KF) {  // row n + j, column n
        F sum = F(0);
LC_UNROLL
        for (int n = 0; n < 8; ++n) sum += diag[n * (kCorrDiagRow + 1) + lane + SH];
        red[warp * TAPS + i * KF + lane] = sum;
      }
      sync_warp();
    }
    sync_threads();
    // a thread per (channel, tap): its four warps' sums in order
    if (tid >= CH * TAPS) return;
    const int c_in = tid / TAPS, tap = tid % TAPS;
    const int64_t c = c0 + c_in;
    if (c >= p.C) return;
    F s = F(0);
    if (flags[c_in] == 0) {
LC_UNROLL
      for (int w = 0; w < WPC; ++w) s += red[(c_in * WPC + w) * TAPS + tap];
    } else {
      s = CorrBatch<T, KF>::direct(a, t, c, split, tap / KF, tap % KF);
    }
    const int64_t numel = p.C * TAPS, idx = c * TAPS + tap;
    if (t.splits == 1)
      store_acc(static_cast<T*>(a.out) + idx, s);
    else
      static_cast<F*>(a.workspace)[split * numel + idx] = s;
  }

  // acc += the products of the staged group for the warp's input rows qy0.. (those inside
  // the plane) and the output rows they meet (inside too), output columns 16 h .. 16 h + 15
  // (none past the plane): A of each input row loaded once and held, B of each output row
  // loaded once
  static LC_DEVICE void products(F (&acc)[KF][4], SmemAddr arow, SmemAddr brow, int qy0, int h,
                                 int32_t H, int32_t W) {
    if (16 * h >= W) return;  // (warp-uniform)
    uint32_t af[RPW][2][4];
LC_UNROLL
    for (int k = 0; k < RPW; ++k)
LC_UNROLL
      for (int u = 0; u < 2; ++u) {  // (rows past the plane: staged zeros, not used)
        LC_LOAD_T4(af[k][u], arow + 2 * ((qy0 + k) * XR + 16 * h + 8 * u));
      }
LC_UNROLL
    for (int d = 0; d < GRW; ++d) {  // output row py = qy0 - PD + d
      const int py = qy0 - PD + d;
      if (py < 0 || py >= H) continue;  // (warp-uniform)
      uint32_t b4[4];
      LC_LOAD_T4(b4, brow + 2 * (GW * py + 16 * h));
      const uint32_t b[2][2] = {{b4[0], b4[1]}, {b4[2], b4[3]}};
LC_UNROLL
      for (int k = 0; k < RPW; ++k) {
        const int i = k - d + 2 * PD;  // qy - py + PD (compile-time)
        if (i < 0 || i >= KF) continue;
        if (qy0 + k >= H) break;  // (warp-uniform)
LC_UNROLL
        for (int u = 0; u < 2; ++u) mma_16816<T>(acc[i >= 0 && i < KF ? i : 0], af[k][u], b[u]);
      }
    }
  }
};

}  // namespace lc
