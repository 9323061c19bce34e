// corr_taps_mma.cuh's weight gradient (13, 31; 7 per sample, plan.h) for channels_last a (G)
// and b (X): half and bfloat16, stride 1, dilation 1, any padding, static or dynamic,
// every pixel's channels c0..c0 + 7 one aligned 16-byte chunk (plan.h's pixels_aligned).
// The products, sums and direct path are corr_taps_mma.cuh's (each warp one channel, the
// same staged layout: X's band in two copies, G's rows in a ring); what differs is how the
// rows get into shared memory.
//
// A block owns kConnMmaClWarps = 8 consecutive channels c0.. of one result (batch index for
// Nw = N) and one split, and walks their items together (the items do not depend on the
// channel). Staging, a band: each thread takes a word of a staged row, i.e. two
// neighbouring pixels (16-byte loads of 8 channels), and writes that word into every
// channel's warp rows; X's copy 1 is the word one pixel on. A warp's 32 words of X are
// one row's consecutive words, of G 8 rows x 4 words (rows 20 words apart): no bank
// conflicts. Two block barriers a band.
#pragma once

#include "corr_taps_mma.cuh"
#include "mma.cuh"
#include "params.h"
#include "plan.h"
#include "portable.h"

namespace lc {

template <class T, int KF>
struct CorrTapsMmaCl {
  using Core = CorrTapsMma<T, KF>;
  using Cursor = typename Core::Cursor;
  static constexpr int CW = kConnMmaClWarps;  // channels (warps) per block
  static constexpr int BR = Core::BR, XV = Core::XV, XS = Core::XS, XRS = Core::XRS;
  static constexpr int NI = Core::NI, CT = Core::CT, RING = Core::RING, GS = Core::GS;
  static constexpr int WIN = Core::WIN;
  static constexpr int64_t kWarpBytes = Core::kWarpBytes;
  static constexpr int kMinBlocks = 2;
  static_assert(CW == 8 && kThreads == 32 * CW && kCorrTapsWarps == CW,
                "a warp per channel of a pixel's 16 bytes (plan.h's blocks)");
  static_assert(XV / 2 <= 32 && (GS / 2) % 32 == 20,
                "a warp's X words one row; G rows 20 words apart");

  static LC_DEVICE void run(unsigned char* smem, const CorrArgs& a, const CorrTapsPlan& t) {
    const int warp = thread_index() >> 5, lane = thread_index() & 31;
    const int64_t groups = a.p.C / CW;  // (plan.h: C % 8 == 0)
    const int64_t split = block_index() % t.splits, rg = block_index() / t.splits;
    const int64_t n_res = rg / groups, c0 = rg % groups * CW;
    Core::part(smem + warp * kWarpBytes, a, t, split, n_res, c0, c0 + warp, lane,
               [] { sync_threads(); },
               [&](const Cursor& cur, bool full) { stage(smem, a, cur, full); });
  }

  // Pixels (col, col + 1) of a row (`src` at column col, `sw` values apart; zeros outside
  // 0..lim or where !row_in) as one word per channel: pair[k] = (channel k of col, of col + 1);
  // mma.cuh's stage_pixel_pair loads alike, but see NOTES.md 2026-12-03 (14) before sharing it
  static LC_DEVICE void pixel_words(const T* src, int32_t sw, int32_t col, int32_t lim,
                                    bool row_in, uint32_t (&pair)[CW]) {
    uint32_t v0[4] = {0, 0, 0, 0}, v1[4] = {0, 0, 0, 0};
    if (row_in && uint32_t(col) < uint32_t(lim)) LC_LOAD_WORDS_GLOBAL(v0, src);
    if (row_in && uint32_t(col + 1) < uint32_t(lim)) LC_LOAD_WORDS_GLOBAL(v1, src + sw);
LC_UNROLL
    for (int k = 0; k < CW; ++k)
      pair[k] = (k & 1) ? high_halves(v0[k >> 1], v1[k >> 1]) : low_halves(v0[k >> 1], v1[k >> 1]);
  }

  // The band's X rows (both copies) and G's new rows (where `full`, its whole window) of
  // channels c0.. into every warp's rows, zeros outside the planes: X's word w of row rr
  // (copy 0: columns x0 - pw + 2w, + 1; copy 1: one on) by thread rr x 32 + w, then G's
  // word w of ring row y % 64 (and its mirror) by unit (8 rows) x 128 + (w / 4) x 32 +
  // (w % 4) x 8 + row % 8.
  static LC_DEVICE void stage(unsigned char* smem, const CorrArgs& a, const Cursor& cur,
                              bool full) {
    const int th = thread_index();
    const int32_t H = int32_t(a.p.h.in), W = int32_t(a.p.w.in);
    const int32_t Ho = int32_t(a.p.h.out), Wo = int32_t(a.p.w.out);
    const int32_t sxh = int32_t(a.b_s.h), sxw = int32_t(a.b_s.w);
    const int32_t sgh = int32_t(a.a_s.h), sgw = int32_t(a.a_s.w);
    if (th < BR * 32 && (th & 31) < XV / 2) {
      const int rr = th >> 5, w = th & 31;
      const int32_t y = cur.row * BR + rr, col = cur.ct * CT - int32_t(a.p.w.p) + 2 * w;
      const bool row_in = y < H;
      const T* src = cur.x + (y * sxh + col * sxw);  // formed for every word, read inside only
      uint32_t c0[CW], c1[CW];
      pixel_words(src, sxw, col, W, row_in, c0);
      pixel_words(src + sxw, sxw, col + 1, W, row_in, c1);
      unsigned char* at = smem + 16 + (rr * XRS + w) * 4;
LC_UNROLL
      for (int k = 0; k < CW; ++k) {
        LC_STORE_WORD(at + k * kWarpBytes, c0[k]);
        LC_STORE_WORD(at + k * kWarpBytes + XS * 4, c1[k]);
      }
    }
    const int units = (full ? NI + 1 : 1) * 128;
    for (int u = th; u < units; u += kThreads) {
      const int k8 = u >> 7, l = u & 31, w = 4 * ((u >> 5) & 3) + (l >> 3);
      const int32_t y = cur.row * BR + int32_t(a.p.h.p) + (l & 7) - 8 * (full ? NI - k8 : 0);
      const int32_t x = cur.ct * CT + 2 * w;
      const bool row_in = y >= 0 && y < Ho;
      uint32_t gw[CW];
      pixel_words(cur.g + (y * sgh + x * sgw), sgw, x, Wo, row_in, gw);
      const int slot = y & (RING - 1);
      unsigned char* at = smem + 16 + BR * XRS * 4 + (slot * GS + 2 * w) * 2;
LC_UNROLL
      for (int k = 0; k < CW; ++k) {
        LC_STORE_WORD(at + k * kWarpBytes, gw[k]);
        if (slot < WIN) LC_STORE_WORD(at + k * kWarpBytes + RING * GS * 2, gw[k]);
      }
    }
  }
};

}  // namespace lc
