// conn2d for channels_last inputs on the register fast path: a KF x KF sliding
// window with stride 1 and dilation 1 and a weight shared across positions
// (depth-wise, static or dynamic). One thread owns one channel and R
// neighbouring outputs of a row; consecutive threads take consecutive
// channels, so every load of x is coalesced along the contiguous channels.
// Per kernel row a thread loads R + KF - 1 inputs into registers and does
// R * KF multiply-adds (input reuse along the row), reading its channel's
// filter row (cached: every position of the channel reads it).
//
// FLIP runs conn2d_transpose the way conn_tile.cuh does (a forward pass over g
// with the flipped filter on the axes plan.h derives); taps outside g add
// exactly 0. Without FLIP a tap in the padding reads 0, as in the reference.
#pragma once

#include "params.h"
#include "plan.h"
#include "portable.h"
#include "window.h"

namespace lc {

template <class T, int KF, bool FLIP>
struct ConnRows {
  static constexpr int R = kConnTileR;
  using A = acc_t<T>;

  static LC_DEVICE void run(unsigned char*, const ConnArgs& a, const ConnRowsPlan& t) {
    const Problem& p = a.p;
    int64_t e = block_index() * block_threads() + thread_index();
    const int64_t c = e % p.C;
    e /= p.C;
    const int64_t owr = (e % t.row_groups) * R;
    e /= t.row_groups;
    const int64_t oh = e % p.h.out, n = e / p.h.out;
    if (n >= p.N) return;

    const T* x = static_cast<const T*>(a.src) + n * a.src_s.n + c * a.src_s.c;
    const T* w = static_cast<const T*>(a.weight) + n * a.w_s.n + (c / p.cpg) * a.w_s.g;
    A acc[R];
    const A b0 = a.bias ? load_acc(static_cast<const T*>(a.bias) + c * a.bias_s) : A(0);
    for (int r = 0; r < R; ++r) acc[r] = b0;
    const int64_t iw0 = owr - p.w.p;
    const uint64_t cols = columns_inside<R + KF - 1>(iw0, p.w.in);
    for (int kh = 0; kh < KF; ++kh) {
      const int64_t ih = oh - p.h.p + kh;
      const bool row_in = ih >= 0 && ih < p.h.in;
      if (FLIP && !row_in) continue;
      const T* xr = x + ih * a.src_s.h;
      A v[R + KF - 1];
      LC_UNROLL
      for (int j = 0; j < R + KF - 1; ++j)
        v[j] = (row_in && column_in(cols, j)) ? load_acc(xr + (iw0 + j) * a.src_s.w) : A(0);
      const int fh = FLIP ? KF - 1 - kh : kh;
      LC_UNROLL
      for (int kw = 0; kw < KF; ++kw) {
        const int fw = FLIP ? KF - 1 - kw : kw;
        const A wv = load_acc(w + fh * a.w_s.kh + fw * a.w_s.kw);
        LC_UNROLL
        for (int r = 0; r < R; ++r) {
          if (FLIP && !column_in(cols, r + kw)) continue;
          acc[r] += wv * v[r + kw];
        }
      }
    }
    T* y = static_cast<T*>(a.dst) + n * a.dst_s.n + c * a.dst_s.c + oh * a.dst_s.h;
    for (int r = 0; r < R; ++r)
      if (owr + r < p.w.out) store_acc(y + (owr + r) * a.dst_s.w, acc[r]);
  }
};

}  // namespace lc
