// What the depth-wise weight gradient's tensor-core kernels (corr_mma.cuh, corr_taps_mma.cuh)
// share: the walk over a result's items and the store of a tap's sum.
#pragma once

#include "params.h"
#include "portable.h"

namespace lc {

// A result's items in order, (batch index,) column tile, row piece (corr_mma.cuh's 8-row
// segments of G, corr_taps_mma.cuh's bands of 8 X rows; 32-bit: plan.h keeps a result's
// items below 2^31), with the planes of G (a) and X (b) of channel c and batch index n
// (Nw = 1: the item's; else n_res): divisions and multiplications once, then steps.
template <class T>
struct ItemCursor {
  int32_t ct, row;
  const T* g;
  const T* x;
  static LC_DEVICE ItemCursor at(const CorrArgs& a, int64_t col_tiles, int64_t rows, int32_t it,
                                 int64_t n_res, int64_t c) {
    const int32_t per_plane = int32_t(col_tiles * rows);
    const int32_t r = it % per_plane;
    const int64_t n = a.Nw == 1 ? it / per_plane : n_res;
    return ItemCursor{r / int32_t(rows), r % int32_t(rows),
                      static_cast<const T*>(a.a) + n * a.a_s.n + c * a.a_s.c,
                      static_cast<const T*>(a.b) + n * a.b_s.n + c * a.b_s.c};
  }
  LC_DEVICE void next(const CorrArgs& a, int64_t col_tiles, int64_t rows) {
    if (++row < int32_t(rows)) return;
    row = 0;
    if (++ct < int32_t(col_tiles)) return;
    ct = 0;
    g += a.a_s.n;  // the next sample (Nw = 1; past the last item otherwise)
    x += a.b_s.n;
  }
};

// The float32 sum of element `idx` of the result (numel elements): to the result where the
// plan has one split, else to the split's partial for ReduceSplits (no atomics).
template <class T>
LC_DEVICE void put_tap(const CorrArgs& a, int64_t splits, int64_t split, int64_t numel,
                       int64_t idx, float s) {
  if (splits == 1)
    store_acc(static_cast<T*>(a.out) + idx, s);
  else
    static_cast<float*>(a.workspace)[split * numel + idx] = s;
}

}  // namespace lc
