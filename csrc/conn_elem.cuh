// conn2d and conn2d_transpose, one thread per result element: the generic
// path for any layout (threads follow the result's memory order, so
// channels_last results tile over the contiguous channels), any window,
// stride, dilation, kernel size and weight strides.
//
//   conn2d:           dst[n, c, o] = bias[c] + sum_k W[n', g, k, o'] src[n, c, i(o, k)]
//                     (a tap outside the image reads 0, as the reference's padding)
//   conn2d_transpose: dst[n, c, i] = sum_{(o, k) : i(o, k) = i} W[n', g, k, o'] src[n, c, o]
//                     (only the valid candidates of window.h are added)
#pragma once

#include "params.h"
#include "plan.h"
#include "portable.h"
#include "window.h"

namespace lc {

// The (n, c, h, w) of element e of an (N, C, rows, cols) result, in the
// result's memory order (channels fastest when channels_last).
LC_HD void element_coords(int64_t e, int64_t C, int64_t rows, int64_t cols, bool channels_last,
                          int64_t* n, int64_t* c, int64_t* h, int64_t* w) {
  if (channels_last) {
    *c = e % C;
    e /= C;
    *w = e % cols;
    e /= cols;
    *h = e % rows;
    *n = e / rows;
  } else {
    *w = e % cols;
    e /= cols;
    *h = e % rows;
    e /= rows;
    *c = e % C;
    *n = e / C;
  }
}

template <class T, bool TRANSPOSE>
struct ConnElem {
  using A = acc_t<T>;

  static LC_DEVICE void run(unsigned char*, const ConnArgs& a, const ConnElemPlan& t) {
    const Problem& p = a.p;
    const int64_t e = block_index() * block_threads() + thread_index();
    const int64_t rows = TRANSPOSE ? p.h.in : p.h.out, cols = TRANSPOSE ? p.w.in : p.w.out;
    if (e >= p.N * p.C * rows * cols) return;
    int64_t n, c, h, w;
    element_coords(e, p.C, rows, cols, t.channels_last, &n, &c, &h, &w);

    const T* src = static_cast<const T*>(a.src) + n * a.src_s.n + c * a.src_s.c;
    const T* wt = static_cast<const T*>(a.weight) + n * a.w_s.n + (c / p.cpg) * a.w_s.g;
    A acc = (!TRANSPOSE && a.bias) ? load_acc(static_cast<const T*>(a.bias) + c * a.bias_s)
                                   : A(0);
    if (!TRANSPOSE) {
      const int64_t sh = window_start(p.h, p.window, h), sw = window_start(p.w, p.window, w);
      const T* wo = wt + h * a.w_s.h + w * a.w_s.w;
      for (int64_t kh = 0; kh < p.h.k; ++kh) {
        const int64_t ih = sh + kh * p.h.d;
        const bool row_in = ih >= 0 && ih < p.h.in;
        for (int64_t kw = 0; kw < p.w.k; ++kw) {
          const int64_t iw = sw + kw * p.w.d;
          const A x = (row_in && iw >= 0 && iw < p.w.in)
                          ? load_acc(src + ih * a.src_s.h + iw * a.src_s.w)
                          : A(0);
          acc += load_acc(wo + kh * a.w_s.kh + kw * a.w_s.kw) * x;
        }
      }
    } else {
      int64_t jh_lo, jh_hi, jw_lo, jw_hi;
      candidate_range(p.h, p.window, h, &jh_lo, &jh_hi);
      candidate_range(p.w, p.window, w, &jw_lo, &jw_hi);
      for (int64_t jh = jh_lo; jh <= jh_hi; ++jh) {
        int64_t oh, kh;
        if (!candidate(p.h, p.window, h, jh, &oh, &kh)) continue;
        for (int64_t jw = jw_lo; jw <= jw_hi; ++jw) {
          int64_t ow, kw;
          if (!candidate(p.w, p.window, w, jw, &ow, &kw)) continue;
          acc += load_acc(wt + kh * a.w_s.kh + kw * a.w_s.kw + oh * a.w_s.h + ow * a.w_s.w) *
                 load_acc(src + oh * a.src_s.h + ow * a.src_s.w);
        }
      }
    }
    store_acc(static_cast<T*>(a.dst) + n * a.dst_s.n + c * a.dst_s.c + h * a.dst_s.h +
                  w * a.dst_s.w,
              acc);
  }
};

}  // namespace lc
