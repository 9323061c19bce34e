// conn_batch.cuh's GEMM (the batch as M) for planes of 9 to 16 columns or rows (DWNet-T's
// 14 x 14 stage): half and bfloat16, a KF x KF kernel (3, 5, 7) with padding KF / 2,
// stride 1, dilation 1, a weight the samples share, any layout.
//
// A sample's plane is staged as a grid 16 values wide, its row qy at grid row qy + KF/2
// (KF/2 zero rows above and below, zeros past its columns; batch_stage.cuh: two columns
// a 4-byte load and store where the images' rows allow it, NCHW-like, 4-byte aligned, of
// an even width, ConnBatchPlan::pairs; else value by value). Output row py
// is two N tiles of 8 columns, and input grid row py + i (kernel row i) is one K tile of
// 16 columns: for 16 samples s,
//   Y[s][py][8h + px] += sum_qx X[s][py + i][qx] w(i, qx - 8h - px + KF/2),
// mma.sync m16n8k16 with A = 16 samples x one grid row (ldmatrix.x4) and B = a 16 x 8
// Toeplitz block of kernel row i: a lane (g, q) holds B rows qx = 2q, 2q + 1 (register 0)
// and 2q + 8, 2q + 9 (register 1) of column px = g, i.e. the filter pairs (w(i, u - 1),
// w(i, u)) with u = 2q + 8 (r - h) - g + KF/2 + 1 (mma.cuh filter_pairs): two register
// pairs per kernel row and half h, built once per channel. Per 16 samples and output
// row: 2 KF mma for 32 columns (16 x 14 outputs of a 14-wide plane).
//
// A block owns 2 channels x 16 samples, four warps a channel, each warp four output rows
// (8 N tiles: 32 sums a lane); it loads the KF + 3 grid rows they read once each. The
// outputs go through a second grid (16 x 16 a sample) to the result. Exactness: as
// conn_batch.cuh (the probe of every sum; a warp with a non-finite one computes its
// outputs tap by tap from the staged grid).
#pragma once

#include "batch_stage.cuh"
#include "conn_batch.cuh"
#include "mma.cuh"
#include "params.h"
#include "plan.h"
#include "portable.h"

namespace lc {

template <class T, int KF, bool FLIP>
struct ConnBatchWide {
  static constexpr int S = kBatchSamples, CW = kBatchWideChannels;
  static constexpr int PD = KF / 2, GR = batch_wide_rows(KF);
  static constexpr int AS = batch_wide_stride(KF), CS = S * AS + batch_channel_pad(CW);  // input grid
  static constexpr int OAS = kBatchWideOutStride, OCS = S * OAS + batch_channel_pad(CW);  // output
  static constexpr int RPW = 4;            // output rows per warp
  static constexpr int WPC = 16 / RPW;     // warps per channel
  static constexpr int64_t kWarpBytes = batch_warp_bytes(KF);
  using In = BatchGrid<CW, 16, GR, PD, AS, CS>;
  using Out = BatchGrid<CW, 16, 16, 0, OAS, OCS>;
  static_assert(CW * WPC == kThreads / 32, "four warps a channel");
  static_assert(In::kPositions <= 3 * kThreads && Out::kPositions == 2 * kThreads &&
                    In::kPositions / 2 <= 2 * kThreads && In::AS % 2 == 0,
                "positions (pairs: two columns each)");
  using F = float;
  static constexpr int kMinBlocks = 2;  // at most 128 registers

  static LC_DEVICE void run(unsigned char* smem, const ConnArgs& a, const ConnBatchPlan& t) {
    const Problem& p = a.p;
    const int tid = thread_index(), warp = tid >> 5, lane = tid & 31;
    const int64_t n0 = block_index() / t.groups * S, c0 = block_index() % t.groups * CW;
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

    uint32_t bp[KF][2][2];  // bp[i][h] = B registers of kernel row i, N tile half h
    F b0 = F(0);
    if (active) b0 = setup(a, c, flag, pairs, lane, bp);
    const T* x = static_cast<const T*>(a.src) + (n0 * a.src_s.n + c0 * a.src_s.c);
    if (t.pairs) {
LC_UNROLL
      for (int k = 0; k < 2; ++k) {  // (In::kPositions / 2 pairs)
        const int f = tid + kThreads * k;
        const BatchPos b = batch_pair_pos<In>(f, H, W, c0, p.C);
        if (b.in)
          batch_load_pairs<In>(xs, x, a.src_s, b, ns);
        else if (f < In::kPositions / 2)
          batch_zero_pairs<In>(xs, b);
      }
    } else {
LC_UNROLL
      for (int k = 0; k < 3; ++k) {
        const BatchPos b = batch_pos<In>(tid + kThreads * k, t.channels_last, H, W, c0, p.C);
        if (tid + kThreads * k < In::kPositions) batch_load<In>(xs, x, a.src_s, b, ns);
      }
    }
    sync_threads();
    if (active) {
      const T* xc = xs + ch * CS;
      T* yc = ys + ch * OCS;
      F acc[RPW][2][4];
      if (sums(xc + RPW * rg * 16, bp, b0, flag, acc)) {
        const int g = lane >> 2, q = lane & 3;
        // word (sample g + 8e, row RPW rg + r, columns 8h + 2q, + 1)
LC_UNROLL
        for (int r = 0; r < RPW; ++r)
LC_UNROLL
          for (int h = 0; h < 2; ++h)
LC_UNROLL
            for (int e = 0; e < 2; ++e)
              *reinterpret_cast<uint32_t*>(yc + (g + 8 * e) * OAS + (RPW * rg + r) * 16 + 8 * h + 2 * q) =
                  pack_floats<T>(acc[r][h][2 * e] + b0, acc[r][h][2 * e + 1] + b0);
      } else {
        direct(xc, yc, pairs, b0, RPW * rg, H, W, lane);
      }
    }
    sync_threads();
    T* y = static_cast<T*>(a.dst) + (n0 * a.dst_s.n + c0 * a.dst_s.c);
    if (t.pairs) {  // (Out::kPositions / 2 = kThreads pairs)
      batch_store_pairs<Out>(y, a.dst_s, ys, batch_pair_pos<Out>(tid, H, W, c0, p.C), ns);
    } else {
LC_UNROLL
      for (int k = 0; k < 2; ++k)
        batch_store<Out>(y, a.dst_s, ys,
                         batch_pos<Out>(tid + kThreads * k, t.channels_last, H, W, c0, p.C), ns);
    }
  }

  // The warp's filter (channel c): `pairs`, this lane's B registers bp[i][h] (register r of
  // half h: pairs[i][u], u = 2q + 8 (r - h) - g + KF/2 + 1, the zero pair outside 0..KF).
  // Returns the bias; `flag` reset.
  static LC_DEVICE F setup(const ConnArgs& a, int64_t c, volatile uint32_t* flag, uint32_t* pairs,
                           int lane, uint32_t (&bp)[KF][2][2]) {
    const F bias = batch_filter<T, KF, FLIP>(a, c, flag, pairs, lane);
    const int g = lane >> 2, q = lane & 3;
    int at[3];  // by r - h + 1
LC_UNROLL
    for (int d = 0; d < 3; ++d) at[d] = pair_slot<KF>(2 * q + 8 * (d - 1) - g + PD + 1);
LC_UNROLL
    for (int i = 0; i < KF; ++i)
LC_UNROLL
      for (int h = 0; h < 2; ++h)
LC_UNROLL
        for (int r = 0; r < 2; ++r) bp[i][h][r] = distinct(pairs[i * (KF + 2) + at[r - h + 1]]);
    return bias;
  }

  // The warp's sums (acc[r][h]; b0 is added when they are stored) for output rows py0 + r
  // from grid rows py0 + r + i (xr: grid row py0); false on every lane if any is not finite.
  static LC_DEVICE bool sums(const T* xr, const uint32_t (&bp)[KF][2][2], F b0,
                             volatile uint32_t* flag, F (&acc)[RPW][2][4]) {
    if (!kHaveMma) return false;
LC_UNROLL
    for (int r = 0; r < RPW; ++r)
LC_UNROLL
      for (int h = 0; h < 2; ++h)
LC_UNROLL
        for (int e = 0; e < 4; ++e) acc[r][h][e] = F(0);
LC_UNROLL
    for (int k = 0; k < RPW + KF - 1; ++k) {  // grid row py0 + k, once
      uint32_t afr[4];
      load_a(xr + 16 * k, AS, afr);
LC_UNROLL
      for (int r = 0; r < RPW; ++r) {
        const int i = k - r;
        if (i < 0 || i >= KF) continue;  // compile-time
LC_UNROLL
        for (int h = 0; h < 2; ++h) mma_16816<T>(acc[r][h], afr, bp[i >= 0 && i < KF ? i : 0][h]);
      }
    }
    F probe = b0 * F(0);  // (the bias joins the sums in the epilogue)
LC_UNROLL
    for (int r = 0; r < RPW; ++r)
LC_UNROLL
      for (int h = 0; h < 2; ++h)
LC_UNROLL
        for (int e = 0; e < 4; ++e) probe += acc[r][h][e] * F(0);  // NaN if one is not finite
    return warp_all(probe == F(0), flag);
  }

  // The lane's fragment outputs (rows py0..) tap by tap (conn_batch.cuh batch_direct), for
  // a warp whose sums are not all finite.
  static LC_DEVICE void direct(const T* xc, T* yc, const uint32_t* pairs, F b0, int py0,
                               int32_t H, int32_t W, int lane) {
    const int g = lane >> 2, q = lane & 3;
    for (int e = 0; e < 4 * RPW * 2; ++e) {  // (row r, half h, sample half, column parity)
      const int r = e >> 3, h = (e >> 2) & 1, s = g + 8 * ((e >> 1) & 1);
      const int py = py0 + r, px = 8 * h + 2 * q + (e & 1);
      if (py >= H || px >= W) continue;
      yc[s * OAS + py * 16 + px] = from_float<T>(batch_direct<T, KF, FLIP, 16, PD>(
          xc + s * AS, pairs, b0, py, px, H, W));
    }
  }
};

}  // namespace lc
