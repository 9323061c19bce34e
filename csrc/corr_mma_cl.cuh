// The depth-wise weight gradient on tensor cores for channels_last a (G) and b (X):
// half and bfloat16, a KF x KF window (3, 5, 7, 13, 31), stride 1, dilation 1, any padding,
// static or dynamic, every pixel's channels c0..c0 + 7 one aligned 16-byte chunk
// (plan.h's pixels_aligned; other layouts run the strips). The products and sums are
// corr_mma.cuh's (each warp one channel, the same staged rows, P_i = X_i^T G on
// mma.sync, diagonal sums, direct path); what differs is how the rows get into shared
// memory.
//
// A block owns kConnMmaClWarps = 8 consecutive channels c0.. of one result (batch index
// for Nw = N), one split and one group of kernel rows (13, 31), and walks their pairs
// of halves together (the halves do not depend on the channel). Staging, per pair: each
// thread takes two neighbouring pixels of a staged row (two 16-byte loads, 8 channels
// each) and writes one 32-bit word per channel (the two pixels' values) into that
// channel's warp rows, X's rows starting pw columns left of G's (no alignment needed
// along the row); a warp takes 8
// rows x 4 column pairs at a time, lane = row + 8 x pair, so a channel's 32 words fall
// in distinct banks (rows 36 words apart). Two block barriers per pair.
#pragma once

#include "corr_mma.cuh"
#include "mma.cuh"
#include "params.h"
#include "plan.h"
#include "portable.h"

namespace lc {

template <class T, int KF>
struct CorrMmaCl {
  using Core = CorrMma<T, KF>;
  using F = float;
  using Seg = typename Core::Seg;
  static constexpr int CW = kConnMmaClWarps;  // channels (warps) per block
  static constexpr int NT = Core::NT, XR = Core::XR, SW = Core::SW, XC = Core::XC;
  static constexpr int RG = Core::RG, RW = Core::RW;
  static constexpr int64_t kWarpBytes = Core::kWarpBytes;
  static_assert(SW % 64 == 8, "staged rows 36 words apart: 8 rows x 4 pairs in distinct banks");
  static constexpr int kMinBlocks = 2;

  static LC_DEVICE void run(unsigned char* smem, const CorrArgs& a, const CorrMmaPlan& t) {
    const int warp = thread_index() >> 5, lane = thread_index() & 31;
    const int64_t groups = a.p.C / CW;  // (plan.h: C % 8 == 0)
    // (the row groups of a part side by side: they read the same rows)
    const int64_t part = block_index() / RG;
    const int i0 = int(block_index() % RG) * RW;
    const int64_t split = part % t.splits, rg = part / t.splits;
    const int64_t n_res = rg / groups, c0 = rg % groups * CW;
    Core::part(smem + warp * kWarpBytes, a, t, split, n_res, c0, c0 + warp, i0, 0, lane,
               [] { sync_threads(); },
               [&](const Seg (&h)[2], int nt) { stage(smem, a, h, nt, i0, warp, lane); });
  }

  // X's rows (2 x XR: half, row y0 - ph + i0 + rr) at columns x0 - pw + m,
  // m < 8 (nt + XC + 1), and G's (2 x 8: half, row y0 + rl) at columns x0 + m, m < 8 nt,
  // of channels c0.. into every warp's rows, zeros outside the planes: warp units of 8
  // rows x 4 column pairs, X's first.
  static LC_DEVICE void stage(unsigned char* smem, const CorrArgs& a, const Seg (&h)[2], int nt,
                              int i0, int warp, int lane) {
    constexpr int WARPS = kThreads / 32, RGX = (2 * XR + 7) / 8;
    const int qx = nt + XC + 1, ux = RGX * qx, units = ux + 2 * nt;  // quads: 4 pairs, 8 columns
    const int32_t H = int32_t(a.p.h.in), W = int32_t(a.p.w.in);
    const int32_t Ho = int32_t(a.p.h.out), Wo = int32_t(a.p.w.out);
    const int32_t ph = int32_t(a.p.h.p), pw = int32_t(a.p.w.p);
    const int rl = lane & 7, pl = lane >> 3;
    // this warp's units wu = warp + 8 j, decoded by steps: (row group, quad) of X, then of G
    int rg = 0, qd = warp;
    while (qd >= qx && rg < RGX) qd -= qx, ++rg;
    for (int wu = warp; wu < units; wu += WARPS) {
      const bool is_x = wu < ux;
      int row, half;
      int32_t y, x;
      bool row_in;
      const T* base;
      int32_t sh, sw;
      if (is_x) {
        row = rg * 8 + rl;
        half = row >= XR ? 1 : 0;
        const Seg hf = Core::pick(h, half != 0);
        y = hf.y0 - ph + i0 + (row - half * XR);
        x = hf.x0 - pw + 2 * (qd * 4 + pl);
        row_in = row < 2 * XR && hf.nt > 0 && uint32_t(y) < uint32_t(H);
        base = hf.x;
        sh = int32_t(a.b_s.h), sw = int32_t(a.b_s.w);
      } else {
        const int gu = wu - ux, gq = gu % nt;  // (G: one division per unit, at most 2 nt)
        row = gu / nt * 8 + rl;
        half = row >> 3;
        const Seg hf = Core::pick(h, half != 0);
        y = hf.y0 + rl;
        x = hf.x0 + 2 * (gq * 4 + pl);
        row_in = hf.nt > 0 && y < Ho;
        base = hf.g;
        sh = int32_t(a.a_s.h), sw = int32_t(a.a_s.w);
        qd = gq;
      }
      const int32_t lim = is_x ? W : Wo;
      const bool in0 = row_in && uint32_t(x) < uint32_t(lim);
      const bool in1 = row_in && uint32_t(x + 1) < uint32_t(lim);
      const T* src = base + (y * sh + x * sw);  // formed for every unit, read inside only
      if (!is_x || row < 2 * XR)  // warp 0's X rows, then its G rows; the other warps' after
        stage_pixel_pair<CW>(src, sw * int32_t(sizeof(T)), in0, in1,
                             smem + 16 + ((is_x ? row : 2 * XR + row) * SW + 2 * (qd * 4 + pl)) * 2,
                             kWarpBytes);
      if (is_x) {  // the next X unit: 8 quads on
        qd += WARPS;
        while (qd >= qx && rg < RGX) qd -= qx, ++rg;
      }
    }
  }
};

}  // namespace lc
