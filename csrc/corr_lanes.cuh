// corr2d for channels_last inputs whose result is per channel and shared
// across positions (the weight gradient of depth-wise and dynamic depth-wise
// convolution) for the windows corr_rows.cuh has no register path for: any
// window, stride, dilation and kernel size.
//
//   out[n', c, kh, kw] = sum_{n, o} a[n, c, o] * b[n, c, i(o, k)]
//
// A block (corr_channels.cuh) owns 32 channels, kLaneTaps taps (the other
// taps are other blocks) and one split of the positions (batch when Nw = 1,
// rows, columns), shared by 8 position groups that step through it 8
// positions apart. Per position a thread loads a once and b at each of its taps (zero
// outside the image, as the reference's padding), with the window arithmetic
// (window.h) done once per position and axis. The 8 groups are summed in a
// fixed order in shared memory (deterministic, no atomics).
#pragma once

#include "params.h"
#include "plan.h"
#include "corr_channels.cuh"
#include "portable.h"
#include "window.h"

namespace lc {

template <class T>
struct CorrLanes {
  using A = acc_t<T>;

  static LC_DEVICE void run(unsigned char* smem_raw, const CorrArgs& a,
                            const CorrChannelsPlan& t) {
    const Problem& p = a.p;
    const ChannelBlock b = channel_block(p, t);
    const int64_t tap0 = b.chunk * kLaneTaps;  // this block's first tap
    const int64_t taps = p.h.k * p.w.k;

    // this thread's taps, as offsets (kh * d, kw * d) from the window's start
    int64_t off_h[kLaneTaps], off_w[kLaneTaps];
    bool has[kLaneTaps];
    A acc[kLaneTaps];
    LC_UNROLL
    for (int j = 0; j < kLaneTaps; ++j) {
      const int64_t tap = tap0 + j;
      has[j] = tap < taps;
      off_h[j] = has[j] ? (tap / p.w.k) * p.h.d : 0;
      off_w[j] = has[j] ? (tap % p.w.k) * p.w.d : 0;
      acc[j] = A(0);
    }

    const int64_t rn = a.Nw == 1 ? p.N : 1;
    const int64_t total = rn * p.h.out * p.w.out;
    const int64_t q_begin = b.split * total / t.splits + b.group;
    const int64_t q_end = (b.split + 1) * total / t.splits;
    // the position q as counters (ow, oh, n), advanced without a 64-bit division
    // except where a counter wraps
    int64_t xw = 0, xh = 0, xn = 0;
    if (q_begin < q_end) {
      xw = q_begin % p.w.out;
      xh = (q_begin / p.w.out) % p.h.out;
      xn = q_begin / (p.w.out * p.h.out);
    }
    const T* A_ = static_cast<const T*>(a.a);
    const T* B_ = static_cast<const T*>(a.b);
    for (int64_t q = q_begin; q < q_end; q += kCorrRowsGroups) {
      const int64_t n = rn > 1 ? xn : b.n_res;
      const A av = load_acc(A_ + n * a.a_s.n + b.cc * a.a_s.c + xh * a.a_s.h + xw * a.a_s.w);
      const int64_t ih0 = window_start(p.h, p.window, xh);
      const int64_t iw0 = window_start(p.w, p.window, xw);
      const T* bp = B_ + n * a.b_s.n + b.cc * a.b_s.c;
      LC_UNROLL
      for (int j = 0; j < kLaneTaps; ++j) {
        if (!has[j]) continue;
        const int64_t ih = ih0 + off_h[j], iw = iw0 + off_w[j];
        const A bv = (ih >= 0 && ih < p.h.in && iw >= 0 && iw < p.w.in)
                         ? load_acc(bp + ih * a.b_s.h + iw * a.b_s.w)
                         : A(0);
        acc[j] += av * bv;
      }
      int64_t carry = advance(&xw, p.w.out, kCorrRowsGroups);
      carry = advance(&xh, p.h.out, carry);
      xn += carry;
    }

    store_group_sums<T>(smem_raw, a, t, b, acc, int(min_of(int64_t(kLaneTaps), taps - tap0)),
                        tap0);
  }
};

}  // namespace lc
