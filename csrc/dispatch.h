// Plan and launch the three primitives: the dtype and kernel switches,
// written once. `Exec` runs one kernel body on a grid; it is the CUDA launch
// (launch.cuh) on the GPU and the fiber emulator (emulate/) on the CPU:
//
//   template <class Body, class... Args>
//   int Exec::launch(const Launch& l, const Args&... args)   // 0 or an error code
#pragma once

#include <type_traits>

#include "conn_band.cuh"
#include "conn_band_cl.cuh"
#include "conn_wide.cuh"
#include "conn_batch.cuh"
#include "conn_batch_wide.cuh"
#include "conn_sample.cuh"
#include "corr_sample.cuh"
#include "conn_elem.cuh"
#include "conn_mma.cuh"
#include "conn_mma_cl.cuh"
#include "conn_pos.cuh"
#include "conn_pos_mma.cuh"
#include "conn_reg.cuh"
#include "conn_rows.cuh"
#include "conn_strip.cuh"
#include "conn_tile.cuh"
#include "corr_batch.cuh"
#include "corr_batch_wide.cuh"
#include "corr_elem.cuh"
#include "corr_lanes.cuh"
#include "corr_mma.cuh"
#include "corr_mma_cl.cuh"
#include "corr_taps_mma.cuh"
#include "corr_taps_mma_cl.cuh"
#include "corr_pos.cuh"
#include "corr_reg.cuh"
#include "corr_rows.cuh"
#include "corr_band.cuh"
#include "corr_strip.cuh"
#include "corr_tile.cuh"
#include "params.h"
#include "plan.h"
#include "planes.cuh"

namespace lc {

#define LC_DISPATCH_DTYPE(dtype, T, ...)         \
  switch (dtype) {                               \
    case kFloat32: { using T = float; __VA_ARGS__ } break;    \
    case kFloat16: { using T = half_t; __VA_ARGS__ } break;   \
    case kBFloat16: { using T = bf16_t; __VA_ARGS__ } break;  \
    case kFloat64: { using T = double; __VA_ARGS__ } break;   \
    default: return kBadDType;                   \
  }

template <class T, bool FLIP, class Exec>
int launch_conn_tile(Exec& ex, const Launch& l, const ConnArgs& a) {
  if (l.kernel == kConnTile) return ex.template launch<ConnTile<T, 0, FLIP>>(l, a, l.conn_tile);
  switch (l.kf) {  // 3, 5, 7: conn_strip.cuh (planes past 32-bit offsets: run-time window)
    case 13: return ex.template launch<ConnTile<T, 13, FLIP>>(l, a, l.conn_tile);
    case 31: return ex.template launch<ConnTile<T, 31, FLIP>>(l, a, l.conn_tile);
    default: return ex.template launch<ConnTile<T, 0, FLIP>>(l, a, l.conn_tile);
  }
}

template <class T, bool FLIP, class Exec>
int launch_conn_rows(Exec& ex, const Launch& l, const ConnArgs& a) {
  switch (l.kf) {  // 3, 5, 7: conn_strip.cuh
    case 13: return ex.template launch<ConnRows<T, 13, FLIP>>(l, a, l.conn_rows);
    case 31: return ex.template launch<ConnRows<T, 31, FLIP>>(l, a, l.conn_rows);
    default: return kBadDType;  // plan.h only plans the fixed sizes
  }
}

template <class T, int KF, bool FLIP, class Exec>
int launch_conn_strip_kf(Exec& ex, const Launch& l, const ConnArgs& a) {
  constexpr int V16 = 16 / int(sizeof(T)), V8 = 8 / int(sizeof(T)) > 0 ? 8 / int(sizeof(T)) : 1;
  const int64_t bytes = l.conn_strip.chunk_bytes;
  if (l.conn_strip.channels_last)
    return ex.template launch<ConnStrip<T, KF, FLIP, 1, true>>(l, a, l.conn_strip);
  const ConnStripPlan& t = l.conn_strip;
  if (bytes == 16) return ex.template launch<ConnStrip<T, KF, FLIP, V16, false>>(l, a, t);
  if (bytes == 8) return ex.template launch<ConnStrip<T, KF, FLIP, V8, false>>(l, a, t);
  return ex.template launch<ConnStrip<T, KF, FLIP, 1, false>>(l, a, t);
}

template <class T, bool FLIP, class Exec>
int launch_conn_strip(Exec& ex, const Launch& l, const ConnArgs& a) {
  if constexpr (sizeof(T) == 8) {
    return kBadDType;  // plan.h plans no float64 strips
  } else {
    switch (l.kf) {
      case 3: return launch_conn_strip_kf<T, 3, FLIP>(ex, l, a);
      case 5: return launch_conn_strip_kf<T, 5, FLIP>(ex, l, a);
      case 7: return launch_conn_strip_kf<T, 7, FLIP>(ex, l, a);
      default: return kBadDType;  // plan.h only plans the strip kernel sizes
    }
  }
}

template <class T, bool FLIP, class Exec>
int launch_conn_band(Exec& ex, const Launch& l, const ConnArgs& a) {
  if constexpr (sizeof(T) == 8 || (FLIP && sizeof(T) == 2)) {
    return kBadDType;  // plan.h plans no float64 bands, no 16-bit flipped ones
  } else {
    switch (l.kf) {
      case 3: return ex.template launch<ConnBand<T, 3, FLIP>>(l, a, l.conn_band);
      case 5: return ex.template launch<ConnBand<T, 5, FLIP>>(l, a, l.conn_band);
      case 7: return ex.template launch<ConnBand<T, 7, FLIP>>(l, a, l.conn_band);
      default: return kBadDType;  // plan.h only plans the strip kernel sizes
    }
  }
}

template <class T, bool FLIP, class Exec>
int launch_conn_wide(Exec& ex, const Launch& l, const ConnArgs& a) {
  if constexpr (sizeof(T) != 4) {
    return kBadDType;  // plan.h plans float32 only
  } else {
    switch (l.kf) {
      case 13: return ex.template launch<ConnWide<T, 13, FLIP>>(l, a, l.conn_wide);
      case 31: return ex.template launch<ConnWide<T, 31, FLIP>>(l, a, l.conn_wide);
      default: return kBadDType;  // plan.h only plans the large fixed windows
    }
  }
}

template <int KF, bool FLIP, class Exec>
int launch_conn_band_cl_kf(Exec& ex, const Launch& l, const ConnArgs& a) {
  const ConnBandClPlan& t = l.conn_band_cl;
  const bool narrow = t.cols == 7;  // else kStripCols (plan.h band_cl_cols)
  if (t.planes)
    return narrow ? ex.template launch<ConnBandCl<KF, 7, FLIP, true>>(l, a, t)
                  : ex.template launch<ConnBandCl<KF, kStripCols, FLIP, true>>(l, a, t);
  return narrow ? ex.template launch<ConnBandCl<KF, 7, FLIP, false>>(l, a, t)
                : ex.template launch<ConnBandCl<KF, kStripCols, FLIP, false>>(l, a, t);
}

template <class T, bool FLIP, class Exec>
int launch_conn_band_cl(Exec& ex, const Launch& l, const ConnArgs& a) {
  if constexpr (!std::is_same<T, float>::value) {
    return kBadDType;  // plan.h plans float32 only
  } else {
    switch (l.kf) {
      case 3: return launch_conn_band_cl_kf<3, FLIP>(ex, l, a);
      case 5: return launch_conn_band_cl_kf<5, FLIP>(ex, l, a);
      case 7: return launch_conn_band_cl_kf<7, FLIP>(ex, l, a);
      default: return kBadDType;  // plan.h only plans the strip kernel sizes
    }
  }
}

// conn_batch_wide.cuh on GW-wide grids, TH x GW tiles
template <class T, bool FLIP, int GW, int TH, class Exec>
int launch_batch_wide(Exec& ex, const Launch& l, const ConnArgs& a) {
  switch (l.kf) {
    case 3: return ex.template launch<ConnBatchWide<T, 3, FLIP, GW, TH>>(l, a, l.conn_batch);
    case 5: return ex.template launch<ConnBatchWide<T, 5, FLIP, GW, TH>>(l, a, l.conn_batch);
    case 7: return ex.template launch<ConnBatchWide<T, 7, FLIP, GW, TH>>(l, a, l.conn_batch);
    default: return kBadDType;  // plan.h plans only these
  }
}

template <class T, bool FLIP, class Exec>
int launch_conn_batch(Exec& ex, const Launch& l, const ConnArgs& a) {
  if constexpr (sizeof(T) != 2) {
    return kBadDType;  // plan.h plans tensor cores for half and bfloat16 only
  } else {
    if (l.kernel == kConnBatchWide) return launch_batch_wide<T, FLIP, 16, 16>(ex, l, a);
    if (l.kernel == kConnBatchLarge)
      return l.conn_batch.tile_h == 16 ? launch_batch_wide<T, FLIP, 32, 16>(ex, l, a)
                                       : launch_batch_wide<T, FLIP, 32, 32>(ex, l, a);
    switch (l.kf) {
      case 3: return ex.template launch<ConnBatch<T, 3, FLIP>>(l, a, l.conn_batch);
      case 5: return ex.template launch<ConnBatch<T, 5, FLIP>>(l, a, l.conn_batch);
      case 7: return ex.template launch<ConnBatch<T, 7, FLIP>>(l, a, l.conn_batch);
      default: return kBadDType;  // plan.h plans only these
    }
  }
}

template <class T, bool FLIP, class Exec>
int launch_conn_sample(Exec& ex, const Launch& l, const ConnArgs& a) {
  if constexpr (sizeof(T) != 2) {
    return kBadDType;  // plan.h plans tensor cores for half and bfloat16 only
  } else {
    const bool narrow = batch_narrow(a.p);
    switch (l.kf) {
      case 3: return narrow ? ex.template launch<ConnSample<T, 3, FLIP, 8>>(l, a, l.conn_batch)
                            : ex.template launch<ConnSample<T, 3, FLIP, 16>>(l, a, l.conn_batch);
      case 5: return narrow ? ex.template launch<ConnSample<T, 5, FLIP, 8>>(l, a, l.conn_batch)
                            : ex.template launch<ConnSample<T, 5, FLIP, 16>>(l, a, l.conn_batch);
      case 7: return narrow ? ex.template launch<ConnSample<T, 7, FLIP, 8>>(l, a, l.conn_batch)
                            : ex.template launch<ConnSample<T, 7, FLIP, 16>>(l, a, l.conn_batch);
      default: return kBadDType;  // plan.h plans only these
    }
  }
}

template <class T, class Exec>
int launch_corr_sample(Exec& ex, const Launch& l, const CorrArgs& a) {
  if constexpr (sizeof(T) != 2) {
    return kBadDType;  // plan.h plans tensor cores for half and bfloat16 only
  } else {
    const bool narrow = batch_narrow(a.p);
    switch (l.kf) {
      case 3: return narrow ? ex.template launch<CorrSample<T, 3, 8>>(l, a, l.corr_batch)
                            : ex.template launch<CorrSample<T, 3, 16>>(l, a, l.corr_batch);
      case 5: return narrow ? ex.template launch<CorrSample<T, 5, 8>>(l, a, l.corr_batch)
                            : ex.template launch<CorrSample<T, 5, 16>>(l, a, l.corr_batch);
      case 7: return narrow ? ex.template launch<CorrSample<T, 7, 8>>(l, a, l.corr_batch)
                            : ex.template launch<CorrSample<T, 7, 16>>(l, a, l.corr_batch);
      default: return kBadDType;  // plan.h plans only these
    }
  }
}

// conn_reg.cuh for the planned kernel size and the plane's width (not float64)
template <class T, int KF, bool FLIP, class Exec>
int launch_conn_reg_kf(Exec& ex, const Launch& l, const ConnArgs& a) {
  if (a.p.w.in == 7) return ex.template launch<ConnReg<T, KF, 7, FLIP>>(l, a, l.conn_reg);
  return ex.template launch<ConnReg<T, KF, 14, FLIP>>(l, a, l.conn_reg);
}
template <class T, bool FLIP, class Exec>
int launch_conn_reg(Exec& ex, const Launch& l, const ConnArgs& a) {
  if constexpr (sizeof(T) == 8) {
    return kBadDType;  // plan.h plans it for float32 and 16-bit types only
  } else {
    switch (l.kf) {
      case 3: return launch_conn_reg_kf<T, 3, FLIP>(ex, l, a);
      case 5: return launch_conn_reg_kf<T, 5, FLIP>(ex, l, a);
      case 7: return launch_conn_reg_kf<T, 7, FLIP>(ex, l, a);
      default: return kBadDType;  // plan.h plans only these
    }
  }
}

template <class T, int KF, bool FLIP, class Exec>
int launch_conn_pos_kf(Exec& ex, const Launch& l, const ConnArgs& a) {
  if constexpr (FLIP) {
    return ex.template launch<ConnPos<T, KF, 1, true>>(l, a, l.conn_pos);  // weights one by one
  } else {
    switch (l.conn_pos.V) {
      case 4: return ex.template launch<ConnPos<T, KF, 4, false>>(l, a, l.conn_pos);
      case 2: return ex.template launch<ConnPos<T, KF, 2, false>>(l, a, l.conn_pos);
      default: return ex.template launch<ConnPos<T, KF, 1, false>>(l, a, l.conn_pos);
    }
  }
}

template <class T, bool FLIP, class Exec>
int launch_conn_pos(Exec& ex, const Launch& l, const ConnArgs& a) {
  if constexpr (sizeof(T) == 8) {
    return kBadDType;  // plan.h plans no float64 here
  } else {
    switch (l.kf) {
      case 3: return launch_conn_pos_kf<T, 3, FLIP>(ex, l, a);
      case 5: return launch_conn_pos_kf<T, 5, FLIP>(ex, l, a);
      case 7: return launch_conn_pos_kf<T, 7, FLIP>(ex, l, a);
      default: return kBadDType;  // plan.h plans only these
    }
  }
}

// conn_pos_mma.cuh (half and bfloat16; 3, 5, 7; tiles 8 or 16 columns wide)
template <class T, int KF, class Exec>
int launch_conn_pos_mma_kf(Exec& ex, const Launch& l, const ConnArgs& a) {
  if (l.conn_pos_mma.TW == 16) return ex.template launch<ConnPosMma<T, KF, 16>>(l, a, l.conn_pos_mma);
  return ex.template launch<ConnPosMma<T, KF, 8>>(l, a, l.conn_pos_mma);
}

template <class T, class Exec>
int launch_conn_pos_mma(Exec& ex, const Launch& l, const ConnArgs& a) {
  if constexpr (sizeof(T) != 2) {
    return kBadDType;  // plan.h plans tensor cores for half and bfloat16 only
  } else {
    switch (l.kf) {
      case 3: return launch_conn_pos_mma_kf<T, 3>(ex, l, a);
      case 5: return launch_conn_pos_mma_kf<T, 5>(ex, l, a);
      case 7: return launch_conn_pos_mma_kf<T, 7>(ex, l, a);
      default: return kBadDType;  // plan.h plans only these
    }
  }
}

// conn_mma.cuh, or conn_mma_cl.cuh (3, 5, 7, 13; 31 at small leads) as planned
template <class T, int KF, bool FLIP, class Exec>
int launch_conn_mma_kf(Exec& ex, const Launch& l, const ConnArgs& a) {
  constexpr int kNarrow = conn_mma_lead_max(KF);  // 13, 31: an instance for small leads
  const bool narrow = kNarrow < 7 && l.conn_mma.lead_max == kNarrow;  // (3, 5, 7: one)
  if (l.kernel == kConnMma) {
    if constexpr (KF == 7)  // (plan_conn_mma: 7 x 7 on planes 49..56 wide)
      if (l.conn_mma.ntiles == kConnMmaWideNTiles)
        return ex.template launch<ConnMma<T, 7, FLIP, 7, kConnMmaWideNTiles>>(l, a, l.conn_mma);
    return narrow ? ex.template launch<ConnMma<T, KF, FLIP, kNarrow>>(l, a, l.conn_mma)
                  : ex.template launch<ConnMma<T, KF, FLIP>>(l, a, l.conn_mma);
  }
  if constexpr (KF <= 13)
    return narrow ? ex.template launch<ConnMmaCl<T, KF, FLIP, kNarrow>>(l, a, l.conn_mma)
                  : ex.template launch<ConnMmaCl<T, KF, FLIP>>(l, a, l.conn_mma);
  else  // (31: plan.h plans conn_mma_cl.cuh at small leads only)
    return narrow ? ex.template launch<ConnMmaCl<T, KF, FLIP, kNarrow>>(l, a, l.conn_mma)
                  : kBadDType;
}

template <class T, bool FLIP, class Exec>
int launch_conn_mma(Exec& ex, const Launch& l, const ConnArgs& a) {
  if constexpr (sizeof(T) != 2) {
    return kBadDType;  // plan.h plans tensor cores for half and bfloat16 only
  } else {
    switch (l.kf) {
      case 3: return launch_conn_mma_kf<T, 3, FLIP>(ex, l, a);
      case 5: return launch_conn_mma_kf<T, 5, FLIP>(ex, l, a);
      case 7: return launch_conn_mma_kf<T, 7, FLIP>(ex, l, a);
      case 13: return launch_conn_mma_kf<T, 13, FLIP>(ex, l, a);
      case 31: return launch_conn_mma_kf<T, 31, FLIP>(ex, l, a);
      default: return kBadDType;  // plan.h only plans the fixed sizes
    }
  }
}

// The workspace conn2d (transpose: conn2d_transpose) needs for `a` (bytes; 0 if none).
inline int64_t conn_workspace_bytes(const ConnArgs& a, bool transpose) {
  return plan_planes(a, transpose).bytes;
}

// planes.cuh over a tile of 4 x 8 blocks of 16 bytes a warp
template <class T>
Launch planes_launch(PlanesArgs* g) {
  constexpr int64_t V = Planes<T>::V;
  g->r_tiles = ceil_div(ceil_div(g->R, V), int64_t(4));
  g->k_tiles = ceil_div(ceil_div(g->K, V), int64_t(8));
  Launch l{};
  l.kernel = kConnPlanes;
  l.threads = kThreads;
  l.blocks = ceil_div(g->N * g->r_tiles * g->k_tiles, int64_t(kThreads / 32));
  return l;
}

// conn2d / conn2d_transpose (transpose) through planes (plan.h plan_planes): per chunk of
// samples, a's channels_last input into the workspace's planes, `run` (the primitive on
// NCHW args) from them into the result planes, those into a's channels_last result.
template <class Exec, class Run>
int through_planes(Exec& ex, const ConnArgs& a, bool transpose, const PlanesRoute& r, Run run) {
  if (a.workspace == nullptr) return kNoWorkspace;
  const Problem& p = a.p;
  const int64_t src_px = transpose ? p.h.out * p.w.out : p.h.in * p.w.in;
  const int64_t dst_px = transpose ? p.h.in * p.w.in : p.h.out * p.w.out;
  LC_DISPATCH_DTYPE(p.dtype, T, {
    for (int64_t n0 = 0; n0 < p.N; n0 += r.samples) {
      ConnArgs b = planes_args(a, transpose, r, a.workspace);
      b.p.N = min_of(r.samples, p.N - n0);
      b.weight = static_cast<const T*>(a.weight) + n0 * a.w_s.n;
      PlanesArgs in{static_cast<const T*>(a.src) + n0 * a.src_s.n, const_cast<void*>(b.src), b.p.N,
                    src_px, p.C, a.src_s.n, a.src_s.w, b.src_s.n, b.src_s.c, 0, 0};
      int rc = ex.template launch<Planes<T>>(planes_launch<T>(&in), in);
      if (rc == kOk) rc = run(b);
      PlanesArgs out{b.dst, static_cast<T*>(a.dst) + n0 * a.dst_s.n, b.p.N, p.C, dst_px,
                     b.dst_s.n, b.dst_s.c, a.dst_s.n, a.dst_s.w, 0, 0};
      if (rc == kOk) rc = ex.template launch<Planes<T>>(planes_launch<T>(&out), out);
      if (rc != kOk) return rc;
    }
  })
  return kOk;
}

// conn2d: a.src = x, a.dst = y. *chosen (if given) receives the kernel that ran (kConnPlanes
// for the route through planes, whichever kernel the planes ran).
template <class Exec>
int run_conn(Exec& ex, const ConnArgs& a, int32_t* chosen = nullptr) {
  const PlanesRoute r = plan_planes(a, false);
  if (r.samples > 0) {
    if (chosen) *chosen = kConnPlanes;
    return through_planes(ex, a, false, r, [&](const ConnArgs& b) { return run_conn(ex, b); });
  }
  const Launch l = plan_conn(a);
  if (chosen) *chosen = l.kernel;
  if (l.blocks > kMaxBlocks) return kTooManyBlocks;
  if (l.blocks == 0) return kOk;
  LC_DISPATCH_DTYPE(a.p.dtype, T, {
    if (l.kernel == kConnElem) return ex.template launch<ConnElem<T, false>>(l, a, l.conn_elem);
    if (l.kernel == kConnPos) return launch_conn_pos<T, false>(ex, l, a);
    if (l.kernel == kConnPosMma) return launch_conn_pos_mma<T>(ex, l, a);
    if (l.kernel == kConnRows) return launch_conn_rows<T, false>(ex, l, a);
    if (l.kernel == kConnStrip) return launch_conn_strip<T, false>(ex, l, a);
    if (l.kernel == kConnBand) return launch_conn_band<T, false>(ex, l, a);
    if (l.kernel == kConnBandCl) return launch_conn_band_cl<T, false>(ex, l, a);
    if (l.kernel == kConnWide) return launch_conn_wide<T, false>(ex, l, a);
    if (l.kernel == kConnBatch || l.kernel == kConnBatchWide || l.kernel == kConnBatchLarge)
      return launch_conn_batch<T, false>(ex, l, a);
    if (l.kernel == kConnSample) return launch_conn_sample<T, false>(ex, l, a);
    if (l.kernel == kConnReg) return launch_conn_reg<T, false>(ex, l, a);
    if (l.kernel == kConnMma || l.kernel == kConnMmaCl) return launch_conn_mma<T, false>(ex, l, a);
    return launch_conn_tile<T, false>(ex, l, a);
  })
  return kOk;
}

// conn2d_transpose: a.src = g, a.dst = x-bar.
template <class Exec>
int run_conn_transpose(Exec& ex, const ConnArgs& a, int32_t* chosen = nullptr) {
  const PlanesRoute r = plan_planes(a, true);
  if (r.samples > 0) {
    if (chosen) *chosen = kConnPlanes;
    return through_planes(ex, a, true, r,
                          [&](const ConnArgs& b) { return run_conn_transpose(ex, b); });
  }
  ConnArgs flipped;
  const Launch l = plan_conn_transpose(a, &flipped);
  if (chosen) *chosen = l.kernel;
  if (l.blocks > kMaxBlocks) return kTooManyBlocks;
  if (l.blocks == 0) return kOk;
  LC_DISPATCH_DTYPE(a.p.dtype, T, {
    if (l.kernel == kConnElem) return ex.template launch<ConnElem<T, true>>(l, a, l.conn_elem);
    if (l.kernel == kConnPos) return launch_conn_pos<T, true>(ex, l, a);
    if (l.kernel == kConnRows) return launch_conn_rows<T, true>(ex, l, flipped);
    if (l.kernel == kConnStrip) return launch_conn_strip<T, true>(ex, l, flipped);
    if (l.kernel == kConnBand) return launch_conn_band<T, true>(ex, l, flipped);
    if (l.kernel == kConnBandCl) return launch_conn_band_cl<T, true>(ex, l, flipped);
    if (l.kernel == kConnWide) return launch_conn_wide<T, true>(ex, l, flipped);
    if (l.kernel == kConnBatch || l.kernel == kConnBatchWide || l.kernel == kConnBatchLarge)
      return launch_conn_batch<T, true>(ex, l, flipped);
    if (l.kernel == kConnSample) return launch_conn_sample<T, true>(ex, l, flipped);
    if (l.kernel == kConnReg) return launch_conn_reg<T, true>(ex, l, flipped);
    if (l.kernel == kConnMma || l.kernel == kConnMmaCl)
      return launch_conn_mma<T, true>(ex, l, flipped);
    return launch_conn_tile<T, true>(ex, l, flipped);
  })
  return kOk;
}

template <class T, int KF, class Exec>
int launch_corr_pos_kf(Exec& ex, const Launch& l, const CorrArgs& a) {
  if (l.corr_pos.V == 4) return ex.template launch<CorrPos<T, KF, 4>>(l, a, l.corr_pos);
  return ex.template launch<CorrPos<T, KF, 1>>(l, a, l.corr_pos);
}

template <class T, class Exec>
int launch_corr_pos(Exec& ex, const Launch& l, const CorrArgs& a) {
  if constexpr (sizeof(T) == 8) {
    return kBadDType;  // plan.h plans no float64 here
  } else {
    switch (l.kf) {
      case 3: return launch_corr_pos_kf<T, 3>(ex, l, a);
      case 5: return launch_corr_pos_kf<T, 5>(ex, l, a);
      case 7: return launch_corr_pos_kf<T, 7>(ex, l, a);
      default: return kBadDType;  // plan.h plans only these
    }
  }
}

// corr_rows.cuh with its chunk of kernel rows for this accumulation type
template <class T, int KF, class Exec>
int launch_corr_rows(Exec& ex, const Launch& l, const CorrArgs& a) {
  constexpr int chunk = corr_rows_chunk(KF);
  return ex.template launch<CorrRows<T, KF, chunk>>(l, a, l.corr_channels);
}

template <class T, int KF, class Exec>
int launch_corr_strip_kf(Exec& ex, const Launch& l, const CorrArgs& a) {
  constexpr int V16 = 16 / int(sizeof(T)), V8 = 8 / int(sizeof(T)) > 0 ? 8 / int(sizeof(T)) : 1;
  const int64_t bytes = l.corr_strip.chunk_bytes;
  if (l.corr_strip.channels_last)
    return ex.template launch<CorrStrip<T, KF, 1, true>>(l, a, l.corr_strip);
  if constexpr (sizeof(T) == 2) {
    return kBadDType;  // 16-bit NCHW: corr_mma.cuh takes every problem the strips fit (plan.h)
  } else {
    if (bytes == 16) return ex.template launch<CorrStrip<T, KF, V16, false>>(l, a, l.corr_strip);
    if (bytes == 8) return ex.template launch<CorrStrip<T, KF, V8, false>>(l, a, l.corr_strip);
    return ex.template launch<CorrStrip<T, KF, 1, false>>(l, a, l.corr_strip);
  }
}

// corr_strip.cuh in the chunks plan.h chose
template <class T, class Exec>
int launch_corr_strip(Exec& ex, const Launch& l, const CorrArgs& a) {
  if constexpr (sizeof(T) == 8) {
    return kBadDType;  // plan.h plans no float64 strips
  } else {
    switch (l.kf) {
      case 3: return launch_corr_strip_kf<T, 3>(ex, l, a);
      case 5: return launch_corr_strip_kf<T, 5>(ex, l, a);
      case 7: return launch_corr_strip_kf<T, 7>(ex, l, a);
      default: return kBadDType;  // plan.h plans only these
    }
  }
}

// corr_band.cuh (float32 only) in the layout and copy width plan.h chose
template <class T, int KF, class Exec>
int launch_corr_band_kf(Exec& ex, const Launch& l, const CorrArgs& a) {
  const CorrBandPlan& t = l.corr_band;
  if (t.channels_last) return ex.template launch<CorrBand<KF, true, 1>>(l, a, t);
  if (t.vb == 4) return ex.template launch<CorrBand<KF, false, 4>>(l, a, t);
  if (t.vb == 2) return ex.template launch<CorrBand<KF, false, 2>>(l, a, t);
  return ex.template launch<CorrBand<KF, false, 1>>(l, a, t);
}

template <class T, class Exec>
int launch_corr_band(Exec& ex, const Launch& l, const CorrArgs& a) {
  if constexpr (!std::is_same<T, float>::value) {
    return kBadDType;  // plan.h plans float32 only
  } else {
    switch (l.kf) {
      case 3: return launch_corr_band_kf<T, 3>(ex, l, a);
      case 5: return launch_corr_band_kf<T, 5>(ex, l, a);
      case 7: return launch_corr_band_kf<T, 7>(ex, l, a);
      default: return kBadDType;  // plan.h plans only these
    }
  }
}

template <class T, int KF, class Exec>
int launch_corr_mma_kf(Exec& ex, const Launch& l, const CorrArgs& a) {
  if (l.kernel == kCorrMmaCl) return ex.template launch<CorrMmaCl<T, KF>>(l, a, l.corr_mma);
  return ex.template launch<CorrMma<T, KF>>(l, a, l.corr_mma);
}

// corr_mma.cuh / corr_mma_cl.cuh for the planned kernel size (half and bfloat16 only)
template <class T, class Exec>
int launch_corr_mma(Exec& ex, const Launch& l, const CorrArgs& a) {
  if constexpr (sizeof(T) != 2) {
    return kBadDType;  // plan.h plans tensor cores for half and bfloat16 only
  } else {
    switch (l.kf) {
      case 3: return launch_corr_mma_kf<T, 3>(ex, l, a);
      case 5: return launch_corr_mma_kf<T, 5>(ex, l, a);
      case 7: return launch_corr_mma_kf<T, 7>(ex, l, a);
      default: return kBadDType;  // plan.h plans only these (13, 31: corr_taps_mma.cuh)
    }
  }
}

template <class T, int KF, class Exec>
int launch_corr_taps_kf(Exec& ex, const Launch& l, const CorrArgs& a) {
  if (l.kernel == kCorrTapsMmaCl) return ex.template launch<CorrTapsMmaCl<T, KF>>(l, a, l.corr_taps);
  return ex.template launch<CorrTapsMma<T, KF>>(l, a, l.corr_taps);
}

// corr_taps_mma.cuh / corr_taps_mma_cl.cuh for the planned kernel size (half and bfloat16,
// 13 and 31; 7: channels_last per-sample results)
template <class T, class Exec>
int launch_corr_taps(Exec& ex, const Launch& l, const CorrArgs& a) {
  if constexpr (sizeof(T) != 2) {
    return kBadDType;  // plan.h plans tensor cores for half and bfloat16 only
  } else {
    switch (l.kf) {
      case 7:  // channels_last per-sample results only (plan.h corr_taps_cl_fits)
        return ex.template launch<CorrTapsMmaCl<T, 7>>(l, a, l.corr_taps);
      case 13: return launch_corr_taps_kf<T, 13>(ex, l, a);
      case 31: return launch_corr_taps_kf<T, 31>(ex, l, a);
      default: return kBadDType;  // plan.h plans only these
    }
  }
}

// corr_batch.cuh (corr_batch_wide.cuh on 16- or 32-wide grids) for the planned kernel
// size (half and bfloat16 only)
template <class T, int KF, class Exec>
int launch_corr_batch_kf(Exec& ex, const Launch& l, const CorrArgs& a) {
  if (l.kernel == kCorrBatchWide) return ex.template launch<CorrBatchWide<T, KF, 16>>(l, a, l.corr_batch);
  if (l.kernel == kCorrBatchLarge) return ex.template launch<CorrBatchWide<T, KF, 32>>(l, a, l.corr_batch);
  return ex.template launch<CorrBatch<T, KF>>(l, a, l.corr_batch);
}
template <class T, class Exec>
int launch_corr_batch(Exec& ex, const Launch& l, const CorrArgs& a) {
  if constexpr (sizeof(T) != 2) {
    return kBadDType;  // plan.h plans tensor cores for half and bfloat16 only
  } else {
    switch (l.kf) {
      case 3: return launch_corr_batch_kf<T, 3>(ex, l, a);
      case 5: return launch_corr_batch_kf<T, 5>(ex, l, a);
      case 7: return launch_corr_batch_kf<T, 7>(ex, l, a);
      default: return kBadDType;  // plan.h plans only these
    }
  }
}

// corr_reg.cuh for the planned kernel size and the plane's width (not float64)
template <class T, int KF, class Exec>
int launch_corr_reg_kf(Exec& ex, const Launch& l, const CorrArgs& a) {
  if (a.p.w.in == 7) return ex.template launch<CorrReg<T, KF, 7>>(l, a, l.corr_channels);
  return ex.template launch<CorrReg<T, KF, 14>>(l, a, l.corr_channels);
}
template <class T, class Exec>
int launch_corr_reg(Exec& ex, const Launch& l, const CorrArgs& a) {
  if constexpr (sizeof(T) == 8) {
    return kBadDType;  // plan.h plans it for float32 and 16-bit types only
  } else {
    switch (l.kf) {
      case 3: return launch_corr_reg_kf<T, 3>(ex, l, a);
      case 5: return launch_corr_reg_kf<T, 5>(ex, l, a);
      case 7: return launch_corr_reg_kf<T, 7>(ex, l, a);
      default: return kBadDType;  // plan.h plans only these
    }
  }
}

// The workspace corr2d needs for `a` (bytes; 0 if none): through pixels (plan.h
// plan_pixels), the pixels and then corr_rows' split partials.
inline int64_t corr_workspace_bytes(const CorrArgs& a, int64_t sm_count, int64_t force_splits) {
  const PixelsRoute r = plan_pixels(a);
  if (r.channels > 0)
    return r.a_bytes + r.b_bytes +
           plan_corr(pixels_args(a, r, nullptr), sm_count, force_splits).workspace_bytes;
  return plan_corr(a, sm_count, force_splits).workspace_bytes;
}

template <class Exec>
int run_corr(Exec& ex, const CorrArgs& a, int64_t sm_count, int64_t force_splits,
             int32_t* chosen = nullptr);

// corr2d through pixels (plan.h plan_pixels): a's and b's planes into the workspace's
// channels_last pixels (planes.cuh), then corr2d on them.
template <class Exec>
int corr_through_pixels(Exec& ex, const CorrArgs& a, const PixelsRoute& r, int64_t sm_count,
                        int64_t force_splits) {
  if (a.workspace == nullptr) return kNoWorkspace;
  const Problem& p = a.p;
  const CorrArgs b = pixels_args(a, r, a.workspace);
  LC_DISPATCH_DTYPE(p.dtype, T, {
    // (rows: the channels; columns: the pixels, whole blocks of 16 bytes)
    PlanesArgs pa{a.a, const_cast<void*>(b.a), p.N, p.C, p.h.out * p.w.out, a.a_s.n, a.a_s.c,
                  b.a_s.n, b.a_s.w, 0, 0};
    int rc = ex.template launch<Planes<T>>(planes_launch<T>(&pa), pa);
    PlanesArgs pb{a.b, const_cast<void*>(b.b), p.N, p.C, p.h.in * p.w.in, a.b_s.n, a.b_s.c,
                  b.b_s.n, b.b_s.w, 0, 0};
    if (rc == kOk) rc = ex.template launch<Planes<T>>(planes_launch<T>(&pb), pb);
    return rc == kOk ? run_corr(ex, b, sm_count, force_splits, nullptr) : rc;
  })
  return kOk;
}

// corr2d: a.out contiguous (Nw, Cw, Kh, Kw, Hw, Ww); a.workspace as planned. *chosen (if
// given) receives the kernel that ran (kCorrPixels for the route through pixels).
template <class Exec>
int run_corr(Exec& ex, const CorrArgs& a, int64_t sm_count, int64_t force_splits,
             int32_t* chosen) {
  const PixelsRoute r = plan_pixels(a);
  if (r.channels > 0) {
    if (chosen) *chosen = kCorrPixels;
    return corr_through_pixels(ex, a, r, sm_count, force_splits);
  }
  const Launch l = plan_corr(a, sm_count, force_splits);
  if (chosen) *chosen = l.kernel;
  if (l.blocks > kMaxBlocks) return kTooManyBlocks;
  if (l.blocks == 0) return kOk;
  if (l.workspace_bytes > 0 && a.workspace == nullptr) return kNoWorkspace;
  const int64_t taps = a.p.h.k * a.p.w.k;
  const int64_t numel = a.Nw * a.Cw * taps * a.Hw * a.Ww;
  LC_DISPATCH_DTYPE(a.p.dtype, T, {
    int64_t splits = l.corr_elem.splits;
    int rc;
    if (l.kernel == kCorrTile) {
      splits = l.corr_tile.splits;
      rc = ex.template launch<CorrTile<T>>(l, a, l.corr_tile);
    } else if (l.kernel == kCorrRows) {
      splits = l.corr_channels.splits;
      switch (l.kf) {  // 3, 5, 7: corr_strip.cuh
        case 13: rc = launch_corr_rows<T, 13>(ex, l, a); break;
        case 31: rc = launch_corr_rows<T, 31>(ex, l, a); break;
        default: return kBadDType;  // plan.h plans only these
      }
    } else if (l.kernel == kCorrStrip) {
      splits = l.corr_strip.splits;
      rc = launch_corr_strip<T>(ex, l, a);
    } else if (l.kernel == kCorrBand) {
      splits = l.corr_band.splits;
      rc = launch_corr_band<T>(ex, l, a);
    } else if (l.kernel == kCorrBatch || l.kernel == kCorrBatchWide || l.kernel == kCorrBatchLarge) {
      splits = l.corr_batch.splits;
      rc = launch_corr_batch<T>(ex, l, a);
    } else if (l.kernel == kCorrReg) {
      splits = l.corr_channels.splits;
      rc = launch_corr_reg<T>(ex, l, a);
    } else if (l.kernel == kCorrSample) {
      splits = 1;
      rc = launch_corr_sample<T>(ex, l, a);
    } else if (l.kernel == kCorrTapsMma || l.kernel == kCorrTapsMmaCl) {
      splits = l.corr_taps.splits;
      rc = launch_corr_taps<T>(ex, l, a);
    } else if (l.kernel == kCorrMma || l.kernel == kCorrMmaCl) {
      splits = l.corr_mma.splits;
      rc = launch_corr_mma<T>(ex, l, a);
    } else if (l.kernel == kCorrPos) {
      splits = 1;
      rc = launch_corr_pos<T>(ex, l, a);
    } else if (l.kernel == kCorrLanes) {
      splits = l.corr_channels.splits;
      rc = ex.template launch<CorrLanes<T>>(l, a, l.corr_channels);
    } else {
      rc = ex.template launch<CorrElem<T>>(l, a, l.corr_elem);
    }
    if (rc != kOk || splits == 1) return rc;
    Launch r{};
    r.threads = kThreads;
    r.blocks = ceil_div(numel, int64_t(kThreads / kReduceParts));
    r.smem = kThreads * acc_bytes(a.p.dtype);
    return ex.template launch<ReduceSplits<T>>(r, a, splits, numel);
  })
  return kOk;
}

}  // namespace lc
