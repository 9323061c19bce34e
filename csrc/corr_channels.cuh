// What the channels_last depth-wise weight-gradient kernels (corr_rows.cuh,
// corr_lanes.cuh) share: a block of kThreads threads owns 32 consecutive
// channels (the lanes, so loads are coalesced along the contiguous channels),
// one chunk of the taps and one split of the positions, which its
// kCorrRowsGroups warps (position groups) step through; at the end the groups'
// partial sums are added in a fixed order in shared memory (deterministic,
// no atomics).
#pragma once

#include "params.h"
#include "plan.h"
#include "portable.h"

namespace lc {

struct ChannelBlock {
  int64_t split;   // which split of the positions
  int64_t chunk;   // which chunk of the taps
  int64_t c;       // this lane's channel
  int64_t cc;      // the channel it reads: c, or the last one for an idle lane
  int64_t n_res;   // the result's batch index (0 for a static weight)
  bool c_ok;       // c < C: the lane stores results
  int lane, group;
};

// plan.h's block order: splits fastest, then chunks, channel tiles, results.
LC_DEVICE ChannelBlock channel_block(const Problem& p, const CorrChannelsPlan& t) {
  ChannelBlock b;
  const int tid = thread_index();
  b.lane = tid % 32;
  b.group = tid / 32;
  int64_t blk = block_index();
  b.split = blk % t.splits;
  blk /= t.splits;
  b.chunk = blk % t.chunks;
  blk /= t.chunks;
  const int64_t c_tiles = ceil_div(p.C, 32);
  b.c = (blk % c_tiles) * 32 + b.lane;
  b.n_res = blk / c_tiles;
  b.c_ok = b.c < p.C;
  b.cc = b.c_ok ? b.c : p.C - 1;
  return b;
}

// Adds the position groups' sums acc[0, count) and stores sum j as tap first + j
// of the lane's channel (or in its split's slice of the workspace). `count` is
// the same for the whole block; the loop is unrolled so acc stays in registers.
template <class T, int MAX>
LC_DEVICE void store_group_sums(unsigned char* smem_raw, const CorrArgs& a,
                                const CorrChannelsPlan& t, const ChannelBlock& b,
                                const acc_t<T> (&acc)[MAX], int count, int64_t first) {
  using A = acc_t<T>;
  A* red = reinterpret_cast<A*>(smem_raw);  // [kCorrRowsGroups][32]
  const int tid = b.group * 32 + b.lane;
  const int64_t taps = a.p.h.k * a.p.w.k;
  const int64_t numel = a.Nw * a.p.C * taps;
  LC_UNROLL
  for (int j = 0; j < MAX; ++j) {
    if (j >= count) break;
    sync_threads();
    red[tid] = acc[j];
    sync_threads();
    if (b.group == 0 && b.c_ok) {
      A s = A(0);
      for (int q = 0; q < kCorrRowsGroups; ++q) s += red[q * 32 + b.lane];
      const int64_t idx = (b.n_res * a.p.C + b.c) * taps + first + j;
      if (t.splits == 1)
        store_acc(static_cast<T*>(a.out) + idx, s);
      else
        static_cast<A*>(a.workspace)[b.split * numel + idx] = s;
    }
  }
}

}  // namespace lc
