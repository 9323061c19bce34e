// corr2d, the generic path: any result shape (position-specific results of
// attention and involution, static or dynamic, any channel sharing), any
// window. L lanes (a power of two) own one result element
// out[n', g, kh, kw, oh', ow'] and sum a[n, c, o] * b[n, c, i(o, k)] over
// their split of the reduction domain (batch when Nw = 1, the channels of
// group g, rows when Hw = 1, columns when Ww = 1), lane, lane + L, ...;
// a fixed tree in shared memory adds the lanes (deterministic). Taps outside
// the image read b = 0, as the reference's zero padding does.
#pragma once

#include "params.h"
#include "plan.h"
#include "portable.h"
#include "window.h"

namespace lc {

template <class T>
struct CorrElem {
  using A = acc_t<T>;

  static LC_DEVICE void run(unsigned char* smem_raw, const CorrArgs& a, const CorrElemPlan& t) {
    const Problem& p = a.p;
    A* red = reinterpret_cast<A*>(smem_raw);
    const int tid = thread_index();
    const int lane = tid % t.L, slot = tid / t.L;
    int64_t blk = block_index();
    const int64_t split = blk % t.splits;
    const int64_t res = (blk / t.splits) * t.slots + slot;
    const int64_t taps = p.h.k * p.w.k;
    const int64_t numel = a.Nw * a.Cw * taps * a.Hw * a.Ww;

    A acc = A(0);
    if (res < numel) {
      int64_t r = res;
      const int64_t ow_r = r % a.Ww;
      r /= a.Ww;
      const int64_t oh_r = r % a.Hw;
      r /= a.Hw;
      const int64_t kw = r % p.w.k;
      r /= p.w.k;
      const int64_t kh = r % p.h.k;
      r /= p.h.k;
      const int64_t g = r % a.Cw, n_r = r / a.Cw;

      const int64_t rn = a.Nw == 1 ? p.N : 1, rh = a.Hw == 1 ? p.h.out : 1;
      const int64_t rw = a.Ww == 1 ? p.w.out : 1;
      const int64_t total = rn * p.cpg * rh * rw;
      const int64_t q_begin = split * total / t.splits + lane;
      const int64_t q_end = (split + 1) * total / t.splits;
      // the reduction index q as counters (ow, oh, channel, n), advanced by L without a
      // 64-bit division except where a counter wraps
      int64_t u = q_begin, xw = 0, xh = 0, xc = 0, xn = 0;
      if (q_begin < q_end) {
        xw = u % rw;
        u /= rw;
        xh = u % rh;
        u /= rh;
        xc = u % p.cpg;
        xn = u / p.cpg;
      }
      const T* A_ = static_cast<const T*>(a.a);
      const T* B_ = static_cast<const T*>(a.b);
      for (int64_t q = q_begin; q < q_end; q += t.L) {
        const int64_t ow = rw > 1 ? xw : ow_r, oh = rh > 1 ? xh : oh_r;
        const int64_t c = g * p.cpg + xc, n = rn > 1 ? xn : n_r;
        const int64_t ih = input_index(p.h, p.window, oh, kh);
        const int64_t iw = input_index(p.w, p.window, ow, kw);
        const A bv = (ih >= 0 && ih < p.h.in && iw >= 0 && iw < p.w.in)
                         ? load_acc(B_ + n * a.b_s.n + c * a.b_s.c + ih * a.b_s.h + iw * a.b_s.w)
                         : A(0);
        acc += load_acc(A_ + n * a.a_s.n + c * a.a_s.c + oh * a.a_s.h + ow * a.a_s.w) * bv;
        int64_t carry = advance(&xw, rw, t.L);
        carry = advance(&xh, rh, carry);
        carry = advance(&xc, p.cpg, carry);
        xn += carry;
      }
    }
    red[tid] = acc;
    sync_threads();
    for (int stride = t.L / 2; stride > 0; stride /= 2) {
      if (lane < stride) red[tid] += red[tid + stride];
      sync_threads();
    }
    if (lane == 0 && res < numel) {
      if (t.splits == 1)
        store_acc(static_cast<T*>(a.out) + res, red[tid]);
      else
        static_cast<A*>(a.workspace)[split * numel + res] = red[tid];
    }
  }
};

// out[r] = sum over splits s of workspace[s, r], in a fixed order: the splits in
// kReduceParts runs of consecutive ones, each summed in order by its own thread, then the
// runs' sums in order (deterministic). A block takes kThreads / kReduceParts results, its
// threads (part j, result e) reading along the results (coalesced): kReduceParts times
// the threads and loads in flight of a thread a result, whose few blocks had left most
// SMs idle and the DRAM latency exposed (the weight gradients' second launch).
template <class T>
struct ReduceSplits {
  using A = acc_t<T>;
  static constexpr int E = kThreads / kReduceParts;  // results a block

  static LC_DEVICE void run(unsigned char* smem, const CorrArgs& a, int64_t splits, int64_t numel) {
    A* red = reinterpret_cast<A*>(smem);  // [kReduceParts][E]
    const int tid = thread_index(), j = tid / E, e = tid - j * E;
    const int64_t r = block_index() * E + e;
    const int64_t per = (splits + kReduceParts - 1) / kReduceParts;
    const int64_t s1 = min_of(splits, (j + 1) * per);
    const A* ws = static_cast<const A*>(a.workspace);
    A acc = A(0);
    if (r < numel)
      for (int64_t s = j * per; s < s1; ++s) acc += ws[s * numel + r];
    red[tid] = acc;
    sync_threads();
    if (j == 0 && r < numel) {
      A sum = red[e];
LC_UNROLL
      for (int q = 1; q < kReduceParts; ++q) sum += red[q * E + e];
      store_acc(static_cast<T*>(a.out) + r, sum);
    }
  }
};

}  // namespace lc
