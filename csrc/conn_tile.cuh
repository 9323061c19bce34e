// conn2d on shared-memory tiles (NCHW-like inputs): one block owns P image
// planes (n, c) x a TH x TW tile of outputs. It stages the input rows and
// columns the tile reads (the halo included, zero outside the image) and,
// for a weight shared across positions, each plane's Kh x Kw filter in
// shared memory; each thread then computes R neighbouring outputs of one row.
//
// KF > 0 is the fast path for a KF x KF sliding window with stride 1 and
// dilation 1: per kernel row a thread loads R + KF - 1 inputs and the
// filter row into registers and does R * KF multiply-adds (input reuse
// along the row). KF == 0 handles every window, stride, dilation and kernel
// size at run time, reading the tile through window.h.
//
// FLIP computes conn2d_transpose for a sliding window with stride 1 and a
// weight shared across positions as a forward pass over g with the filter
// flipped (plan.h derives the axes); a tap that falls outside g adds exactly
// 0 then, as in the reference, even for a non-finite weight.
#pragma once

#include "params.h"
#include "plan.h"
#include "portable.h"
#include "stage.cuh"
#include "window.h"

namespace lc {

template <class T, int KF, bool FLIP>
struct ConnTile {
  static constexpr int R = kConnTileR;
  // 3 blocks per SM (<= 80 registers, launch.cuh): without the bound ptxas
  // spills the 3 x 3 path for sm_80; float64 needs 2 (<= 128 registers)
  static constexpr int kMinBlocks = sizeof(acc_t<T>) == 8 ? 2 : 3;
  using A = acc_t<T>;

  static LC_DEVICE void run(unsigned char* smem_raw, const ConnArgs& a, const ConnTilePlan& t) {
    const Problem& p = a.p;
    A* tile = reinterpret_cast<A*>(smem_raw);
    A* filt = tile + t.P * t.IH * t.IW;
    const int tid = thread_index(), nthreads = block_threads();

    // which planes and which output tile
    int64_t b = block_index();
    const int64_t col_tile = b % t.col_tiles;
    b /= t.col_tiles;
    const int64_t row_tile = b % t.row_tiles;
    const int64_t plane0 = (b / t.row_tiles) * t.P;
    const int64_t planes = p.N * p.C;
    const int64_t oh0 = row_tile * t.TH, ow0 = col_tile * t.TW;
    const int64_t oh1 = min_of(oh0 + t.TH, p.h.out) - 1, ow1 = min_of(ow0 + t.TW, p.w.out) - 1;
    int64_t lo_h, ext_h, lo_w, ext_w;
    input_span(p.h, p.window, oh0, oh1, &lo_h, &ext_h);
    input_span(p.w, p.window, ow0, ow1, &lo_w, &ext_w);

    // stage the input tile (zero outside the image and beyond this tile's span)
    const T* src = static_cast<const T*>(a.src);
    const int64_t tile_elems = t.IH * t.IW;
    const TileSpan span{t.P, t.IH, t.IW, lo_h, ext_h, lo_w, ext_w, p.h.in, p.w.in,
                        a.src_s.h, a.src_s.w};
    stage_tile<T>(tile, span, t.vec, [&](int64_t pl) -> const T* {
      const int64_t plane = plane0 + pl;
      if (plane >= planes) return nullptr;
      return src + (plane / p.C) * a.src_s.n + (plane % p.C) * a.src_s.c;
    });
    // stage the filters of a weight shared across positions
    const T* w = static_cast<const T*>(a.weight);
    const int64_t taps = p.h.k * p.w.k;
    if (!a.pos_h && !a.pos_w) {
      for (int64_t e = tid; e < t.P * taps; e += nthreads) {
        const int64_t plane = min_of(plane0 + e / taps, planes - 1);
        int64_t kh = (e % taps) / p.w.k, kw = e % p.w.k;
        if (FLIP) {
          kh = p.h.k - 1 - kh;
          kw = p.w.k - 1 - kw;
        }
        const int64_t n = plane / p.C, c = plane % p.C;
        filt[e] = load_acc(w + n * a.w_s.n + (c / p.cpg) * a.w_s.g + kh * a.w_s.kh +
                           kw * a.w_s.kw);
      }
    }
    sync_threads();

    const int per_plane = t.TH * t.GW;
    const int64_t pl = tid / per_plane;
    const int64_t oh = oh0 + (tid % per_plane) / t.GW;
    const int64_t owr = ow0 + int64_t(tid % t.GW) * R;  // first of this thread's R outputs
    const int64_t plane = plane0 + pl;
    if (pl >= t.P || plane >= planes || oh > oh1 || owr > ow1) return;
    const int64_t n = plane / p.C, c = plane % p.C;
    const A* tp = tile + pl * tile_elems;
    const A* fp = filt + pl * taps;

    A acc[R];
    const A b0 = a.bias ? load_acc(static_cast<const T*>(a.bias) + c * a.bias_s) : A(0);
    for (int r = 0; r < R; ++r) acc[r] = b0;

    if constexpr (KF > 0) {
      // sliding, stride 1, dilation 1, KF x KF, weight shared across positions
      const int64_t row0 = (oh - p.h.p) - lo_h, col0 = (owr - p.w.p) - lo_w;
      const uint64_t cols = FLIP ? columns_inside<R + KF - 1>(owr - p.w.p, p.w.in) : 0;
      for (int kh = 0; kh < KF; ++kh) {
        const A* row = tp + (row0 + kh) * t.IW + col0;
        bool row_ok = true;
        if (FLIP) row_ok = oh - p.h.p + kh >= 0 && oh - p.h.p + kh < p.h.in;
        if (!row_ok) continue;
        A v[R + KF - 1];
        A wr[KF];
LC_UNROLL
        for (int j = 0; j < R + KF - 1; ++j) v[j] = row[j];
LC_UNROLL
        for (int kw = 0; kw < KF; ++kw) wr[kw] = fp[kh * KF + kw];
LC_UNROLL
        for (int kw = 0; kw < KF; ++kw)
LC_UNROLL
          for (int r = 0; r < R; ++r) {
            if (FLIP && !column_in(cols, r + kw)) continue;
            acc[r] += wr[kw] * v[r + kw];
          }
      }
    } else {
      // any window, stride, dilation; weight shared or position-specific
      const int64_t row0 = window_start(p.h, p.window, oh) - lo_h;
      int64_t ow[R], col0[R];
      for (int r = 0; r < R; ++r) {
        ow[r] = min_of(owr + r, ow1);  // past the tile: recomputes ow1, not stored
        col0[r] = window_start(p.w, p.window, ow[r]) - lo_w;
      }
      const T* wb = w + n * a.w_s.n + (c / p.cpg) * a.w_s.g + oh * a.w_s.h;
      for (int64_t kh = 0; kh < p.h.k; ++kh) {
        const int64_t rr = row0 + kh * p.h.d;
        if (FLIP) {
          const int64_t ih = lo_h + rr;
          if (ih < 0 || ih >= p.h.in) continue;
        }
        const A* row = tp + rr * t.IW;
        for (int64_t kw = 0; kw < p.w.k; ++kw) {
          for (int r = 0; r < R; ++r) {
            const int64_t cc = col0[r] + kw * p.w.d;
            if (FLIP) {
              const int64_t iw = lo_w + cc;
              if (iw < 0 || iw >= p.w.in) continue;
            }
            A wv;
            if (!a.pos_h && !a.pos_w) {
              wv = fp[kh * p.w.k + kw];
            } else {
              wv = load_acc(wb + kh * a.w_s.kh + kw * a.w_s.kw + ow[r] * a.w_s.w);
            }
            acc[r] += wv * row[cc];
          }
        }
      }
    }

    T* dst = static_cast<T*>(a.dst) + n * a.dst_s.n + c * a.dst_s.c + oh * a.dst_s.h;
    for (int r = 0; r < R; ++r)
      if (owr + r <= ow1) store_acc(dst + (owr + r) * a.dst_s.w, acc[r]);
  }
};

}  // namespace lc
