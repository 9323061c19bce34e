// The window index arithmetic of docs/design.md section 3, written once for the
// CUDA backend (device code and the CPU emulator alike). Along one axis:
//
//   forward  i(o, k) = start(o) + k * d, with
//     sliding:      start(o) = o * s - p
//     neighborhood: start(o) = r + d * clamp(o / d - K / 2, 0, Lr - K),
//                   r = o mod d, Lr = ceil((L - r) / d)
//     block:        start(o) = (o / K) * K
//   inverse  the (o, k) pairs with i(o, k) = i, numbered by a candidate j:
//     sliding:      k = j, o = (i + p - j d) / s when divisible, 0 <= o < Lo
//     block:        o = (i / K) * K + j, k = i mod K
//     neighborhood: o = i + j d, k = (i - start(o)) / d when 0 <= k < K
//
// Only non-negative numbers are divided.
#pragma once

#include "params.h"
#include "portable.h"

namespace lc {

LC_HD int64_t window_start(const Axis& a, int32_t window, int64_t o) {
  if (window == kSliding) return o * a.s - a.p;
  if (window == kBlock) return (o / a.k) * a.k;
  if (a.d == 1) return min_of(max_of(o - a.k / 2, int64_t(0)), a.in - a.k);  // no 64-bit division
  const int64_t r = o % a.d;
  const int64_t group_len = (a.in - r + a.d - 1) / a.d;
  const int64_t q = min_of(max_of(o / a.d - a.k / 2, int64_t(0)), group_len - a.k);
  return r + a.d * q;
}

LC_HD int64_t input_index(const Axis& a, int32_t window, int64_t o, int64_t k) {
  return window_start(a, window, o) + k * a.d;
}

// Candidate numbers j to try for input i: [*lo, *hi].
LC_HD void candidate_range(const Axis& a, int32_t window, int64_t i, int64_t* lo, int64_t* hi) {
  if (window != kNeighborhood) {
    *lo = 0;
    *hi = a.k - 1;
    return;
  }
  if (a.d == 1) {
    const int64_t q_lo = (i - a.k + 1 <= 0) ? 0 : i - a.k + 1 + a.k / 2;
    const int64_t q_hi = (i >= a.in - a.k) ? a.in - 1 : i + a.k / 2;
    *lo = q_lo - i;
    *hi = q_hi - i;
    return;
  }
  // outputs o = r + q d of i's dilation group whose window holds i
  const int64_t r = i % a.d, u = i / a.d;
  const int64_t group_len = (a.in - r + a.d - 1) / a.d;
  const int64_t q_lo = (u - a.k + 1 <= 0) ? 0 : u - a.k + 1 + a.k / 2;
  const int64_t q_hi = (u >= group_len - a.k) ? group_len - 1 : u + a.k / 2;
  *lo = q_lo - u;
  *hi = q_hi - u;
}

// Candidate j of input i: true and (o, k) with i(o, k) = i, or false.
LC_HD bool candidate(const Axis& a, int32_t window, int64_t i, int64_t j, int64_t* o,
                     int64_t* k) {
  if (window == kSliding) {
    const int64_t num = i + a.p - j * a.d;
    if (num < 0) return false;
    if (a.s == 1) {  // the common case, without a 64-bit division
      *o = num;
      *k = j;
      return *o < a.out;
    }
    if (num % a.s != 0) return false;
    *o = num / a.s;
    *k = j;
    return *o < a.out;
  }
  if (window == kBlock) {
    const int64_t first = (i / a.k) * a.k;
    *o = first + j;
    *k = i - first;
    return *o < a.out;
  }
  *o = i + j * a.d;
  if (*o < 0 || *o >= a.in) return false;
  const int64_t diff = i - window_start(a, window, *o);
  if (a.d == 1) {
    *k = diff;
    return diff >= 0 && diff < a.k;
  }
  if (diff < 0 || diff % a.d != 0) return false;
  *k = diff / a.d;
  return *k < a.k;
}

// The input span [*lo, *lo + extent) read by outputs [o0, o1] (o0 <= o1):
// start(o + d) >= start(o) for every window, so the smallest start is among
// the first d outputs and the largest among the last d.
LC_HD void input_span(const Axis& a, int32_t window, int64_t o0, int64_t o1, int64_t* lo,
                      int64_t* extent) {
  int64_t s_lo = window_start(a, window, o0), s_hi = window_start(a, window, o1);
  for (int64_t o = o0 + 1; o <= min_of(o0 + a.d - 1, o1); ++o)
    s_lo = min_of(s_lo, window_start(a, window, o));
  for (int64_t o = max_of(o1 - a.d + 1, o0); o < o1; ++o)
    s_hi = max_of(s_hi, window_start(a, window, o));
  *lo = s_lo;
  *extent = s_hi - s_lo + (a.k - 1) * a.d + 1;
}

// The register fast paths read BITS consecutive columns i0, i0 + 1, ... of a
// row of length n: bit j of the result is set when column i0 + j is inside
// [0, n). Computed once per thread, tested with constant shifts once the
// loops are unrolled (no 64-bit compare per tap).
template <int BITS>
LC_HD uint64_t columns_inside(int64_t i0, int64_t n) {
  static_assert(BITS > 0 && BITS <= 64, "a column mask holds at most 64 columns");
  const int64_t lo = max_of(-i0, int64_t(0)), hi = min_of(n - i0, int64_t(BITS));
  if (hi <= lo) return 0;
  const uint64_t below_hi = hi == 64 ? ~uint64_t(0) : (uint64_t(1) << hi) - 1;
  return below_hi & ~((uint64_t(1) << lo) - 1);
}

LC_HD bool column_in(uint64_t mask, int j) { return (mask >> j) & 1; }

}  // namespace lc
