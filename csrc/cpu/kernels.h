// The CPU kernels of the three primitives, vectorised with ATen's Vectorized<A> (A: float
// or double, the accumulator type; 16-bit inputs arrive converted) and parallel over
// planes with at::parallel_for. Included once per instruction set by kernels_<isa>.cpp,
// after the target pragma and `#define CPU_CAPABILITY <isa>`, so every function here lives
// in lc_cpu::<isa> (as ATen's own kernels live in at::vec::<isa>).
//
// The technique (docs/kernels.md, "CPU"): one (n, c) plane at a time, NCHW, vectorised
// along the output row:
//  * each input row the plane's windows read is prepared once: converted into a padded
//    row (the zero padding made explicit, so no tap tests a border), plus, for taps whose
//    columns do not move with the output (strides, neighborhood clamping, blocks), a
//    gathered row; a tap on the padding reads zeros, so W * 0 is formed as in conv2d;
//  * conn2d: a strip of 4 vectors of outputs is held in registers across all Kh * Kw taps
//    (one load and one FMA per vector and tap; the filter tap broadcast, or its row
//    loaded when the weight varies along the columns);
//  * conn2d_transpose: the forward on the flipped filter (binding.cpp), else a scatter of
//    each output row into padded accumulator rows of the plane;
//  * corr2d: a weight shared across positions is a sum of dot products, 8 taps at a time
//    from one load of `a`, one partial sum per plane, then summed over the planes in a
//    fixed order (deterministic, no atomics); a position-specific weight accumulates
//    products row by row, one task per (n', group).
#pragma once

#include <algorithm>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

#include "cpu/plan.h"

namespace lc_cpu {
inline namespace CPU_CAPABILITY {

using at::vec::Vectorized;

template <class A> constexpr int64_t lanes() { return int64_t(Vectorized<A>::size()); }

// A whole vector when n >= lanes(), else n elements under a mask (AVX-512) / through a copy
template <class A>
inline Vectorized<A> load_n(const A* p, int64_t n) {
  return n >= lanes<A>() ? Vectorized<A>::loadu(p) : Vectorized<A>::loadu(p, n);
}
template <class A>
inline void store_n(const Vectorized<A>& v, A* p, int64_t n) {
  if (n >= lanes<A>()) v.store(p);
  else v.store(p, int(n));
}

// n bfloat16 values at s as float at d, and back (rounded to nearest even): whole vectors
// and one partial vector under a mask (ATen's own loop converts a tail one value at a
// time, which on a 14-wide row is every value)
inline void bf16_to_float(const c10::BFloat16* s, float* d, int64_t n) {
  using VB = Vectorized<c10::BFloat16>;
  constexpr int64_t LB = VB::size(), LF = Vectorized<float>::size();
  for (int64_t i = 0; i < n; i += LB) {
    const int64_t m = std::min(LB, n - i);
    const auto [a, b] = at::vec::convert_bfloat16_float(m == LB ? VB::loadu(s + i) : VB::loadu(s + i, m));
    store_n(a, d + i, m);
    if (m > LF) store_n(b, d + i + LF, m - LF);
  }
}
inline void float_to_bf16(const float* s, c10::BFloat16* d, int64_t n) {
  using VB = Vectorized<c10::BFloat16>;
  using VF = Vectorized<float>;
  constexpr int64_t LB = VB::size(), LF = VF::size();
  for (int64_t i = 0; i < n; i += LB) {
    const int64_t m = std::min(LB, n - i);
    const VB v = at::vec::convert_float_bfloat16(load_n(s + i, m), m > LF ? load_n(s + i + LF, m - LF) : VF(0.f));
    if (m == LB) v.store(d + i);
    else v.store(d + i, int(m));
  }
}

// A buffer of n elements of A, 64-byte aligned (freed at the end of the scope).
template <class A>
struct Scratch {
  A* p;
  explicit Scratch(int64_t n)
      : p(static_cast<A*>(::operator new(size_t(std::max<int64_t>(n, 1)) * sizeof(A),
                                         std::align_val_t(64)))) {}
  ~Scratch() { ::operator delete(p, std::align_val_t(64)); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

// Rows [r0, r1) of one input plane, prepared (see the file comment): input row ih at
// buf + (ih - r0) * row_len: its padded copy (Wp elements: lpad zeros, the W values,
// zeros), which an affine tap reads at + off[kw], then one gathered slot of Wv elements
// (Wo rounded up to whole vectors) per tap that is not affine.
inline int64_t slot_len(int64_t Wo) { return (Wo + kSlack - 1) / kSlack * kSlack; }

template <class A>
inline int64_t row_len(const Columns& c, int64_t, int64_t Wo) {
  return c.Wp + c.n_gather * slot_len(Wo);
}

template <class A, class T = A>
void prepare_rows(const Columns& c, int64_t W, int64_t Kw, int64_t Wo, const T* plane,
                  int64_t sh, int64_t sw, int64_t r0, int64_t r1, A* buf) {
  const int64_t Wv = slot_len(Wo), len = row_len<A>(c, Kw, Wo);
  for (int64_t ih = r0; ih < r1; ++ih) {
    const T* in = plane + ih * sh;
    A* r = buf + (ih - r0) * len;
    // short rows: vector copies, no library call per row (zeros over the whole row first)
    using Vec = Vectorized<A>;
    constexpr int64_t L = lanes<A>();
    for (int64_t i = 0; i < c.Wp; i += L) Vec(A(0)).store(r + i);  // (slack past Wp)
    if (sw != 1) {
      for (int64_t iw = 0; iw < W; ++iw) r[c.lpad + iw] = A(in[iw * sw]);
    } else if constexpr (!std::is_same_v<T, A>) {
      bf16_to_float(in, r + c.lpad, W);
    } else {
      int64_t iw = 0;
      for (; iw + L <= W; iw += L) Vec::loadu(in + iw).store(r + c.lpad + iw);
      if (iw < W) Vec::loadu(in + iw, W - iw).store(r + c.lpad + iw, int(W - iw));
    }
    for (int64_t kw = 0; kw < Kw && c.n_gather > 0; ++kw) {
      if (c.gather[kw] < 0) continue;
      A* slot = r + c.Wp + c.gather[kw] * Wv;
      const int64_t* idx = c.idx + kw * Wo;
      const A* valid = r + c.lpad;
      for (int64_t ow = 0; ow < Wo; ++ow) slot[ow] = idx[ow] < 0 ? A(0) : valid[idx[ow]];
      for (int64_t ow = Wo; ow < Wv; ++ow) slot[ow] = A(0);
    }
  }
}

// The source of tap kw for one output row: Wo values, column ow at [ow].
template <class A>
inline const A* tap_source(const Columns& c, int64_t Wo, const A* row, int64_t kw) {
  return c.gather[kw] < 0 ? row + c.off[kw] : row + c.Wp + c.gather[kw] * slot_len(Wo);
}

// The taps of one block of output rows: output row oh's input row for kernel row kh is
// base + rowoff[oh * Kh + kh] (a prepared row, or the zero row), tap kw's columns start
// at + cols[kw]; its weight is w + oh * wh + kh * wkh + kw * wkw (+ ow where the weight
// varies along the columns). Offsets made once per call, the same for every plane.
template <class A>
struct BlockTaps {
  int64_t Kh, Kw;
  const A* base;
  const int64_t* rowoff;
  const int64_t* cols;
  const A* w;
  int64_t wh, wkh, wkw;
};

// A block of RB output rows x RV vectors held in registers across all taps: acc[r][v] +=
// w * src[ow0 + v L ..]. One load and one FMA per vector and tap (plus one broadcast per
// tap, per row if the weight varies along rows), RB * RV independent sums (an FMA's
// latency hidden). Every source row has at least one vector of slack past Wo (plan.h),
// so the last vector loads whole; only `last` of its lanes are stored.
template <class A, int RB, int RV, bool POS, bool ROWW>
inline void conn_block(const BlockTaps<A>& b, int64_t oh, int64_t ow0, const A bias,
                       A* const* out, int64_t last) {
  using Vec = Vectorized<A>;
  constexpr int64_t L = lanes<A>();
  Vec acc[RB][RV];
  for (int r = 0; r < RB; ++r)
    for (int v = 0; v < RV; ++v) acc[r][v] = Vec(bias);
  const int64_t* rowoff = b.rowoff + oh * b.Kh;
  for (int64_t kh = 0; kh < b.Kh; ++kh) {
    const A* row[RB];
    const A* wk[RB];
    for (int r = 0; r < RB; ++r) {
      row[r] = b.base + rowoff[r * b.Kh + kh] + ow0;
      wk[r] = b.w + (oh + r) * b.wh + kh * b.wkh + (POS ? ow0 : 0);
    }
    for (int64_t kw = 0; kw < b.Kw; ++kw) {
      const int64_t col = b.cols[kw], wo = kw * b.wkw;
      for (int r = 0; r < RB; ++r) {
        const A* s = row[r] + col;
        if (POS) {  // (the weight is the caller's: its last vector loads only `last` lanes)
          const A* w = wk[r] + wo;
          for (int v = 0; v + 1 < RV; ++v)
            acc[r][v] = at::vec::fmadd(Vec::loadu(w + v * L), Vec::loadu(s + v * L), acc[r][v]);
          acc[r][RV - 1] = at::vec::fmadd(load_n(w + (RV - 1) * L, last),
                                          Vec::loadu(s + (RV - 1) * L), acc[r][RV - 1]);
        } else {  // one broadcast for the block unless the weight varies along rows (ROWW)
          const Vec w(wk[ROWW ? r : 0][wo]);
          for (int v = 0; v < RV; ++v) acc[r][v] = at::vec::fmadd(w, Vec::loadu(s + v * L), acc[r][v]);
        }
      }
    }
  }
  for (int r = 0; r < RB; ++r) {
    for (int v = 0; v + 1 < RV; ++v) acc[r][v].store(out[r] + ow0 + v * L);
    if (last == L) acc[r][RV - 1].store(out[r] + ow0 + (RV - 1) * L);
    else acc[r][RV - 1].store(out[r] + ow0 + (RV - 1) * L, int(last));
  }
}

// conn_block<RB, RV> for run-time RV in 1..4
template <class A, int RB, bool POS, bool ROWW>
inline void conn_block_v(int rv, const BlockTaps<A>& b, int64_t oh, int64_t ow0, A bias,
                         A* const* out, int64_t last) {
  switch (rv) {
    case 1: conn_block<A, RB, 1, POS, ROWW>(b, oh, ow0, bias, out, last); break;
    case 2: conn_block<A, RB, 2, POS, ROWW>(b, oh, ow0, bias, out, last); break;
    case 3: conn_block<A, RB, 3, POS, ROWW>(b, oh, ow0, bias, out, last); break;
    default: conn_block<A, RB, 4, POS, ROWW>(b, oh, ow0, bias, out, last); break;
  }
}

// rb (1, 2, 4 or 8) output rows from oh: strips of up to rv_max vectors
template <class A, bool POS, bool ROWW>
void conn_rows(int rb, int rv_max, const BlockTaps<A>& b, int64_t oh, int64_t Wo, A bias,
               A* const* out) {
  constexpr int64_t L = lanes<A>();
  const int64_t vectors = (Wo + L - 1) / L;
  for (int64_t v0 = 0; v0 < vectors; v0 += rv_max) {
    const int rv = int(std::min<int64_t>(rv_max, vectors - v0));
    const int64_t last = (v0 + rv == vectors) ? Wo - (vectors - 1) * L : L;
    const int64_t ow0 = v0 * L;
    switch (rb) {
      case 1: conn_block_v<A, 1, POS, ROWW>(rv, b, oh, ow0, bias, out, last); break;
      case 2: conn_block_v<A, 2, POS, ROWW>(rv, b, oh, ow0, bias, out, last); break;
      case 4: conn_block_v<A, 4, POS, ROWW>(rv, b, oh, ow0, bias, out, last); break;
      default: conn_block_v<A, 8, POS, ROWW>(rv, b, oh, ow0, bias, out, last); break;
    }
  }
}

// ---- the register-blocked sliding window (K x K, stride 1 along rows, no row dilation, a
// weight shared across positions): output row oh + r reads input row j = r + kh of the
// block's window, so each input row's shifted vector is loaded once per block and feeds
// every output row whose window holds it (up to K of them): RB + K - 1 loads per K * RB
// FMAs instead of one load per FMA. The loops are unrolled at compile time (K, RB, RV are
// template arguments), so which (j, r) pairs meet is decided by the compiler, and each
// filter tap is an FMA's broadcast memory operand.
template <int... I, class F>
__attribute__((always_inline)) inline void static_for_impl(std::integer_sequence<int, I...>, F&& f) {
  (f(std::integral_constant<int, I>{}), ...);
}
template <int N, class F>
__attribute__((always_inline)) inline void static_for(F&& f) { static_for_impl(std::make_integer_sequence<int, N>{}, f); }

template <class A, int K, int RB, int RV>
inline void conn_block_k(const BlockTaps<A>& b, int64_t oh, int64_t ow0, const A bias,
                         A* const* out, int64_t last) {
  using Vec = Vectorized<A>;
  constexpr int64_t L = lanes<A>();
  Vec acc[RB][RV];
  for (int r = 0; r < RB; ++r)
    for (int v = 0; v < RV; ++v) acc[r][v] = Vec(bias);
  const int64_t* rowoff = b.rowoff + oh * K;
  const A* w = b.w;
  const int64_t wkh = b.wkh, wkw = b.wkw;
  static_for<RB + K - 1>([&](auto j) __attribute__((always_inline)) {
    constexpr int r_rep = j < RB ? int(j) : RB - 1;
    const A* row = b.base + rowoff[r_rep * K + (j - r_rep)] + ow0;
    static_for<K>([&](auto kw) __attribute__((always_inline)) {
      Vec src[RV];
      for (int v = 0; v < RV; ++v) src[v] = Vec::loadu(row + b.cols[kw] + v * L);
      static_for<RB>([&](auto r) __attribute__((always_inline)) {
        constexpr int kh = int(j) - int(r);
        if constexpr (kh >= 0 && kh < K) {
          const Vec wv(w[kh * wkh + kw * wkw]);
          for (int v = 0; v < RV; ++v) acc[r][v] = at::vec::fmadd(wv, src[v], acc[r][v]);
        }
      });
    });
  });
  for (int r = 0; r < RB; ++r) {
    for (int v = 0; v + 1 < RV; ++v) acc[r][v].store(out[r] + ow0 + v * L);
    if (last == L) acc[r][RV - 1].store(out[r] + ow0 + (RV - 1) * L);
    else acc[r][RV - 1].store(out[r] + ow0 + (RV - 1) * L, int(last));
  }
}

// 8, 4 or 2 (7x7, one vector: also 14) output rows from oh through conn_block_k: strips of
// rv_max (1 or 2) vectors
template <class A, int K>
void conn_rows_k(int rb, int rv_max, const BlockTaps<A>& b, int64_t oh, int64_t Wo, A bias,
                 A* const* out) {
  constexpr int64_t L = lanes<A>();
  const int64_t vectors = (Wo + L - 1) / L;
  for (int64_t v0 = 0; v0 < vectors; v0 += rv_max) {
    const int rv = int(std::min<int64_t>(rv_max, vectors - v0));
    const int64_t last = (v0 + rv == vectors) ? Wo - (vectors - 1) * L : L;
    const int64_t ow0 = v0 * L;
    if constexpr (K == 7)  // a whole 14-row plane of 7x7 at once (DWNet's stage 3)
      if (rb == 14 && rv == 1) {
        conn_block_k<A, K, 14, 1>(b, oh, ow0, bias, out, last);
        continue;
      }
    if (rb == 8 && rv == 1) conn_block_k<A, K, 8, 1>(b, oh, ow0, bias, out, last);
    else if (rb == 8) conn_block_k<A, K, 8, 2>(b, oh, ow0, bias, out, last);
    else if (rb == 4 && rv == 1) conn_block_k<A, K, 4, 1>(b, oh, ow0, bias, out, last);
    else if (rb == 4) conn_block_k<A, K, 4, 2>(b, oh, ow0, bias, out, last);
    else if (rv == 1) conn_block_k<A, K, 2, 1>(b, oh, ow0, bias, out, last);
    else conn_block_k<A, K, 2, 2>(b, oh, ow0, bias, out, last);
  }
}

// Which register-blocked window conn2d runs: none (0) or K = 3, 5, 7 for a K x K filter
// shared across positions whose rows slide (stride 1, no dilation).
// AVX-512 only: its FMAs take the filter tap as a broadcast memory operand; with AVX2 the
// compiler keeps the K * K broadcast taps in 16 registers and spills (measured 5x slower)
#if defined(CPU_CAPABILITY_AVX512)
constexpr bool kFixedBlocks = true;
#else
constexpr bool kFixedBlocks = false;
#endif

inline int fixed_kernel(const Conn& p) {
#if !defined(CPU_CAPABILITY_AVX512)
  (void)p;
  return 0;
#else
  const bool ok = p.rows_slide && p.Kh == p.Kw && (p.Kh == 3 || p.Kh == 5 || p.Kh == 7) &&
                  !p.w.pos_w && p.w.h == 0;
  return ok ? int(p.Kh) : 0;
#endif
}

// Tasks over (plane, row chunk): the planes, each split into row chunks when there are
// fewer planes than twice the threads (a batch of 1 with few channels). first[chunk],
// last[chunk]: the input rows the chunk reads; rowoff[oh * Kh + kh]: where output row oh
// finds its input row kh in the chunk's prepared rows (H * len: the zero row).
template <class A>
struct Tasks {
  int64_t chunks, rows_per;
  Scratch<int64_t> first, last, rowoff;
  Tasks(int64_t planes, const int64_t* rows, int64_t H, int64_t Ho, int64_t Kh, int64_t len)
      : chunks(0), rows_per(1), first(Ho), last(Ho), rowoff(Ho * Kh) {
    if (Ho == 0 || planes == 0) return;  // no output rows: no tasks
    const int64_t threads = at::get_num_threads();
    chunks = std::min<int64_t>(Ho, std::max<int64_t>(1, (2 * threads + planes - 1) / planes));
    rows_per = (Ho + chunks - 1) / chunks;
    chunks = (Ho + rows_per - 1) / rows_per;
    for (int64_t ch = 0; ch < chunks; ++ch) {
      const int64_t oh0 = ch * rows_per, oh1 = std::min(Ho, oh0 + rows_per);
      int64_t lo = INT64_MAX, hi = -1;
      for (int64_t oh = oh0; oh < oh1; ++oh)
        for (int64_t kh = 0; kh < Kh; ++kh) {
          const int64_t ih = rows[kh * Ho + oh];
          if (ih >= 0) { lo = std::min(lo, ih); hi = std::max(hi, ih); }
        }
      first.p[ch] = hi < 0 ? 0 : lo;
      last.p[ch] = hi < 0 ? 0 : hi + 1;
      for (int64_t oh = oh0; oh < oh1; ++oh)
        for (int64_t kh = 0; kh < Kh; ++kh) {
          const int64_t ih = rows[kh * Ho + oh];
          rowoff.p[oh * Kh + kh] = ih < 0 ? H * len : (ih - first.p[ch]) * len;
        }
    }
  }
};

// y[n, c, oh, ow] = bias[c] + sum_k W[n', g, kh, kw, oh', ow'] x[n, c, rows(kh, oh), cols(kw, ow)]
// x and y in T: A, or bfloat16 for A = float (converted as the rows are prepared, and as
// each block of output rows is stored)
template <class A, class T = A>
void conn2d(const Conn& p) {
  constexpr int64_t L = lanes<A>();
  const int64_t planes = p.N * p.C;
  const int64_t len = row_len<A>(p.cols, p.Kw, p.Wo);
  const Tasks<A> tasks(planes, p.rows, p.H, p.Ho, p.Kh, len);
  // a block of rb rows x rv vectors: about 8 independent sums (an FMA's latency x its
  // throughput), fewer rows at the bottom of a chunk (8, 4, 2, 1)
  const int64_t vectors = (p.Wo + L - 1) / L;
  const int rv = int(std::min<int64_t>(4, vectors));
  const int rb = rv == 1 ? 8 : rv == 2 ? 4 : 2;
  // the register-blocked sliding window (conn_block_k): output row oh + r reads input row
  // oh + r + kh - p, and one weight per tap
  // the register-blocked window: 16 accumulators with 32 vector registers (AVX-512), else 8
  const int fixed = fixed_kernel(p);
  constexpr int kAcc = lanes<A>() * int64_t(sizeof(A)) >= 64 ? 16 : 8;
  const int rv_k = vectors >= 2 ? 2 : 1, rb_k = kAcc / rv_k >= 8 ? 8 : 4;
  constexpr bool kSame = std::is_same_v<T, A>;
  const T* x = static_cast<const T*>(p.src.data);
  T* y = static_cast<T*>(p.dst.data);
  const A* w = static_cast<const A*>(p.w.data);
  const A* bias = static_cast<const A*>(p.bias);
  at::parallel_for(0, planes * tasks.chunks, 1, [&](int64_t begin, int64_t end) {
    // the prepared rows, then the zero row (a tap on the padding reads zeros)
    Scratch<A> rows((p.H + 1) * len + kSlack), out(14 * (vectors * L));
    Scratch<int64_t> cols(p.Kw);
    Scratch<A*> dst(14);
    std::fill(rows.p + p.H * len, rows.p + (p.H + 1) * len + kSlack, A(0));
    for (int64_t kw = 0; kw < p.Kw; ++kw) cols.p[kw] = tap_source<A>(p.cols, p.Wo, rows.p, kw) - rows.p;
    BlockTaps<A> taps{p.Kh, p.Kw, rows.p, tasks.rowoff.p, cols.p, nullptr, p.w.h, p.w.kh, p.w.kw};
    for (int64_t task = begin; task < end; ++task) {
      const int64_t plane = task / tasks.chunks, chunk = task % tasks.chunks;
      const int64_t n = plane / p.C, c = plane % p.C;
      const int64_t oh0 = chunk * tasks.rows_per, oh1 = std::min(p.Ho, oh0 + tasks.rows_per);
      prepare_rows<A, T>(p.cols, p.W, p.Kw, p.Wo, x + n * p.src.n + c * p.src.c, p.src.h,
                         p.src.w, tasks.first.p[chunk], tasks.last.p[chunk], rows.p);
      taps.w = w + (p.w.n ? n * p.w.n : 0) + (c / p.cpg) * p.w.g;
      const A b = bias ? bias[c] : A(0);
      T* yp = y + n * p.dst.n + c * p.dst.c;
      // (a 7x7 filter on 14 rows of one vector: the 14 rows as one block, 20 loads per 98
      // FMAs a kernel column, instead of blocks of 8, 4 and 2 rows)
      const bool rows14 = fixed == 7 && rv_k == 1 && oh1 - oh0 == 14;
      for (int64_t oh = oh0, nb = rows14 ? 14 : fixed ? rb_k : rb; oh < oh1; oh += nb) {
        while (nb > oh1 - oh) nb /= 2;
        for (int r = 0; r < nb; ++r) {
          if constexpr (kSame)
            dst.p[r] = p.dst.w == 1 ? yp + (oh + r) * p.dst.h : out.p + r * vectors * L;
          else
            dst.p[r] = out.p + r * vectors * L;
        }
        const bool blocked = fixed && nb >= 2;  // (one row left: the general blocks)
        if constexpr (kFixedBlocks) {
          if (blocked && fixed == 3) conn_rows_k<A, 3>(int(nb), rv_k, taps, oh, p.Wo, b, dst.p);
          else if (blocked && fixed == 5) conn_rows_k<A, 5>(int(nb), rv_k, taps, oh, p.Wo, b, dst.p);
          else if (blocked && fixed == 7) conn_rows_k<A, 7>(int(nb), rv_k, taps, oh, p.Wo, b, dst.p);
        }
        if (blocked) {
        } else if (p.w.pos_w) conn_rows<A, true, true>(int(nb), rv, taps, oh, p.Wo, b, dst.p);
        else if (p.w.h) conn_rows<A, false, true>(int(nb), rv, taps, oh, p.Wo, b, dst.p);
        else conn_rows<A, false, false>(int(nb), rv, taps, oh, p.Wo, b, dst.p);
        if constexpr (!kSame)
          if (p.dst.w == 1)
            for (int r = 0; r < nb; ++r) float_to_bf16(dst.p[r], yp + (oh + r) * p.dst.h, p.Wo);
        if (p.dst.w != 1)
          for (int r = 0; r < nb; ++r)
            for (int64_t ow = 0; ow < p.Wo; ++ow)
              yp[(oh + r) * p.dst.h + ow * p.dst.w] = T(dst.p[r][ow]);
      }
    }
  });
}

// ------------------------------------------------------------------ conn2d_transpose

// x-bar[n, c, i] = sum_{o, k : i(o, k) = i} W[.., k, o'] g[n, c, o]: each output row of g
// scattered into the plane's padded accumulator rows (a tap outside the input is dropped,
// never multiplied). One task per plane. src = g (N, C, Ho, Wo), dst = x-bar (N, C, H, W).
template <class A>
void conn2d_transpose_scatter(const Conn& p) {
  using Vec = Vectorized<A>;
  constexpr int64_t L = lanes<A>();
  const int64_t planes = p.N * p.C;
  const Columns& cols = p.cols;
  const A* g = static_cast<const A*>(p.src.data);
  A* xb = static_cast<A*>(p.dst.data);
  const A* w = static_cast<const A*>(p.w.data);
  at::parallel_for(0, planes, 1, [&](int64_t begin, int64_t end) {
    Scratch<A> acc(p.H * cols.Wp + kSlack), gbuf(p.Ho * p.Wo);
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t n = plane / p.C, c = plane % p.C;
      std::fill(acc.p, acc.p + p.H * cols.Wp, A(0));
      const A* gp = g + n * p.src.n + c * p.src.c;
      int64_t gh = p.src.h;
      if (p.src.w != 1) {  // rows of g made contiguous once
        for (int64_t oh = 0; oh < p.Ho; ++oh)
          for (int64_t ow = 0; ow < p.Wo; ++ow) gbuf.p[oh * p.Wo + ow] = gp[oh * p.src.h + ow * p.src.w];
        gp = gbuf.p;
        gh = p.Wo;
      }
      const A* wp = w + (p.w.n ? n * p.w.n : 0) + (c / p.cpg) * p.w.g;
      // tap by tap, each over all output rows: consecutive read-modify-writes land on
      // different rows, never on the shifted columns the previous tap just stored (a
      // store-to-load forwarding stall each time)
      for (int64_t kh = 0; kh < p.Kh; ++kh) {
        for (int64_t kw = 0; kw < p.Kw; ++kw) {
          for (int64_t oh = 0; oh < p.Ho; ++oh) {
            const int64_t ih = p.rows[kh * p.Ho + oh];
            if (ih < 0) continue;
            A* arow = acc.p + ih * cols.Wp;
            const A* gr = gp + oh * gh;
            const A* wt = wp + kh * p.w.kh + kw * p.w.kw + oh * p.w.h;
            if (cols.gather[kw] < 0) {
              // d[ow] += w[ow] g[ow] a whole vector at a time: past Wo the g and w lanes
              // are zeros and add 0 to what d holds there (an input column for a tap left
              // of the centre: a filter value that is not finite must not meet those
              // zeros), so no masked store (slow), and a row of 14 is one vector, not 14
              // scalars (the accumulator rows have slack)
              A* d = arow + cols.off[kw];
              for (int64_t ow = 0; ow < p.Wo; ow += L) {
                const int64_t m = std::min<int64_t>(L, p.Wo - ow);
                const Vec wv = p.w.pos_w ? load_n(wt + ow, m)
                               : m < L  ? Vec::set(Vec(A(0)), Vec(*wt), m)
                                        : Vec(*wt);
                at::vec::fmadd(wv, load_n(gr + ow, m), Vec::loadu(d + ow)).store(d + ow);
              }
            } else {
              const int64_t* idx = cols.idx + kw * p.Wo;
              A* valid = arow + cols.lpad;
              for (int64_t ow = 0; ow < p.Wo; ++ow)
                if (idx[ow] >= 0) valid[idx[ow]] += (p.w.pos_w ? wt[ow] : *wt) * gr[ow];
            }
          }
        }
      }
      A* xp = xb + n * p.dst.n + c * p.dst.c;
      for (int64_t ih = 0; ih < p.H; ++ih) {
        const A* a = acc.p + ih * cols.Wp + cols.lpad;
        A* d = xp + ih * p.dst.h;
        if (p.dst.w == 1) std::memcpy(d, a, size_t(p.W) * sizeof(A));
        else for (int64_t iw = 0; iw < p.W; ++iw) d[iw * p.dst.w] = a[iw];
      }
    }
  });
}

// ------------------------------------------------------------------ corr2d

// One a row (converted if strided) as a contiguous pointer.
template <class A>
inline const A* a_row(const Plane4& a, const A* plane, int64_t oh, int64_t Wo, A* buf) {
  const A* r = plane + oh * a.h;
  if (a.w == 1) return r;
  for (int64_t ow = 0; ow < Wo; ++ow) buf[ow] = r[ow * a.w];
  return buf;
}

// acc[j] += sum_ow a[ow] * s_j[ow] for NK taps, from one load of a per vector.
template <class A, int NK>
inline void dot_taps(const A* ar, const A* const* s, int64_t nk, int64_t Wo, Vectorized<A>* acc) {
  using Vec = Vectorized<A>;
  constexpr int64_t L = lanes<A>();
  int64_t ow = 0;
  for (; ow + L <= Wo; ow += L) {
    const Vec av = Vec::loadu(ar + ow);
    for (int j = 0; j < NK; ++j)
      if (j < nk) acc[j] = at::vec::fmadd(av, Vec::loadu(s[j] + ow), acc[j]);
  }
  if (ow < Wo) {
    const Vec av = Vec::loadu(ar + ow, Wo - ow);
    for (int j = 0; j < NK; ++j)
      if (j < nk) acc[j] = at::vec::fmadd(av, Vec::loadu(s[j] + ow, Wo - ow), acc[j]);
  }
}

// A weight shared across positions: partial[plane][kh, kw] = sum_o a[o] b[i(o, k)], then
// out[n', g, k] = the partials of its planes summed in plane order.
template <class A>
void corr2d_shared(const Corr& p) {
  using Vec = Vectorized<A>;
  constexpr int64_t L = lanes<A>();
  constexpr int NK = 8;
  const int64_t planes = p.N * p.C, T = p.Kh * p.Kw;
  const int64_t len = row_len<A>(p.cols, p.Kw, p.Wo);
  const A* a = static_cast<const A*>(p.a.data);
  const A* b = static_cast<const A*>(p.b.data);
  A* part = static_cast<A*>(p.partial);
  at::parallel_for(0, planes, 1, [&](int64_t begin, int64_t end) {
    Scratch<A> rows(p.H * len + kSlack), zero(len + kSlack), abuf(p.Ho * p.Wo);
    Scratch<const A*> arows(p.Ho);
    std::fill(zero.p, zero.p + len + kSlack, A(0));
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t n = plane / p.C, c = plane % p.C;
      prepare_rows<A>(p.cols, p.W, p.Kw, p.Wo, b + n * p.b.n + c * p.b.c, p.b.h, p.b.w, 0, p.H,
                      rows.p);
      const A* ap = a + n * p.a.n + c * p.a.c;
      for (int64_t oh = 0; oh < p.Ho; ++oh) arows.p[oh] = a_row<A>(p.a, ap, oh, p.Wo, abuf.p + oh * p.Wo);
      A* out = part + plane * T;
      for (int64_t kh = 0; kh < p.Kh; ++kh) {
        for (int64_t kw0 = 0; kw0 < p.Kw; kw0 += NK) {
          const int64_t nk = std::min<int64_t>(NK, p.Kw - kw0);
          Vec acc[NK];
          for (int j = 0; j < NK; ++j) acc[j] = Vec(A(0));
          const A* s[NK];
          for (int64_t oh = 0; oh < p.Ho; ++oh) {
            const int64_t ih = p.rows[kh * p.Ho + oh];
            const A* row = ih < 0 ? zero.p : rows.p + ih * len;
            for (int64_t j = 0; j < nk; ++j) s[j] = tap_source<A>(p.cols, p.Wo, row, kw0 + j);
            dot_taps<A, NK>(arows.p[oh], s, nk, p.Wo, acc);
          }
          // each tap's lanes summed by shuffles (a fixed order: deterministic)
          for (int64_t j = 0; j < nk; ++j)
            out[kh * p.Kw + kw0 + j] = at::vec::vec_reduce_all<A>(
                [](const Vec& x, const Vec& y) { return x + y; }, acc[j]);
        }
      }
    }
  });
  // out[n', g, t]: the planes of (n', g) in order (batch first when the weight is shared)
  A* out = static_cast<A*>(p.out);
  at::parallel_for(0, p.Nw * p.G, 1, [&](int64_t begin, int64_t end) {
    for (int64_t ng = begin; ng < end; ++ng) {
      const int64_t nw = ng / p.G, g = ng % p.G;
      A* o = out + ng * T;
      std::fill(o, o + T, A(0));
      for (int64_t n = (p.Nw == 1 ? 0 : nw); n < (p.Nw == 1 ? p.N : nw + 1); ++n)
        for (int64_t c = g * p.cpg; c < (g + 1) * p.cpg; ++c) {
          const A* q = part + (n * p.C + c) * T;
          for (int64_t t = 0; t < T; ++t) o[t] += q[t];
        }
    }
  });
}

// A position-specific weight: out[n', g, kh, kw, oh, ow] = sum a[n, c, oh, ow] b[n, c, i]
// over the group's channels (and the batch when Nw == 1). One task per (n', g, row
// chunk): the group's channels prepared together, then for each output vector and kernel
// row, the Kw taps' sums in registers over the channels, from one load of `a` per channel
// (no read-modify-write per product); each sample's sums added to the result in order.
template <class A>
void corr2d_positions(const Corr& p) {
  using Vec = Vectorized<A>;
  constexpr int64_t L = lanes<A>();
  constexpr int NK = 8;
  const int64_t T = p.Kh * p.Kw;
  const int64_t len = row_len<A>(p.cols, p.Kw, p.Wo);
  const Tasks<A> tasks(p.Nw * p.G, p.rows, p.H, p.Ho, p.Kh, len);
  const A* a = static_cast<const A*>(p.a.data);
  const A* b = static_cast<const A*>(p.b.data);
  A* out = static_cast<A*>(p.out);
  at::parallel_for(0, p.Nw * p.G * tasks.chunks, 1, [&](int64_t begin, int64_t end) {
    // per channel of the group: its prepared rows, then the zero row
    const int64_t plane_len = (p.H + 1) * len;
    Scratch<A> rows(p.cpg * plane_len + kSlack), abuf(p.cpg * p.Wo + kSlack);
    Scratch<const A*> arow(p.cpg);
    for (int64_t c = 0; c < p.cpg; ++c)
      std::fill(rows.p + c * plane_len + p.H * len, rows.p + (c + 1) * plane_len, A(0));
    for (int64_t task = begin; task < end; ++task) {
      const int64_t ng = task / tasks.chunks, chunk = task % tasks.chunks;
      const int64_t nw = ng / p.G, g = ng % p.G;
      const int64_t oh0 = chunk * tasks.rows_per, oh1 = std::min(p.Ho, oh0 + tasks.rows_per);
      const int64_t r0 = tasks.first.p[chunk], r1 = tasks.last.p[chunk];
      A* o = out + ng * T * p.Ho * p.Wo;
      const int64_t n_lo = p.Nw == 1 ? 0 : nw, n_hi = p.Nw == 1 ? p.N : nw + 1;
      for (int64_t n = n_lo; n < n_hi; ++n) {
        for (int64_t c = 0; c < p.cpg; ++c) {
          const int64_t ch = g * p.cpg + c;
          prepare_rows<A>(p.cols, p.W, p.Kw, p.Wo, b + n * p.b.n + ch * p.b.c, p.b.h, p.b.w,
                          r0, r1, rows.p + c * plane_len);
        }
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          for (int64_t c = 0; c < p.cpg; ++c)
            arow.p[c] = a_row<A>(p.a, a + n * p.a.n + (g * p.cpg + c) * p.a.c, oh, p.Wo,
                                 abuf.p + c * p.Wo);
          for (int64_t kh = 0; kh < p.Kh; ++kh) {
            const int64_t off = tasks.rowoff.p[oh * p.Kh + kh];
            for (int64_t kw0 = 0; kw0 < p.Kw; kw0 += NK) {
              const int64_t nk = std::min<int64_t>(NK, p.Kw - kw0);
              int64_t col[NK];
              for (int64_t j = 0; j < nk; ++j)
                col[j] = tap_source<A>(p.cols, p.Wo, rows.p, kw0 + j) - rows.p;
              for (int64_t ow = 0; ow < p.Wo; ow += L) {
                const int64_t cnt = std::min<int64_t>(L, p.Wo - ow);
                Vec acc[NK];
                for (int j = 0; j < NK; ++j) acc[j] = Vec(A(0));
                for (int64_t c = 0; c < p.cpg; ++c) {
                  const Vec av = load_n(arow.p[c] + ow, cnt);
                  const A* src = rows.p + c * plane_len + off + ow;  // (slack past Wo)
                  for (int j = 0; j < NK; ++j)
                    if (j < nk) acc[j] = at::vec::fmadd(av, Vec::loadu(src + col[j]), acc[j]);
                }
                for (int64_t j = 0; j < nk; ++j) {
                  A* d = o + ((kh * p.Kw + kw0 + j) * p.Ho + oh) * p.Wo + ow;
                  store_n(n == n_lo ? acc[j] : acc[j] + load_n(d, cnt), d, cnt);
                }
              }
            }
          }
        }
      }
    }
  });
}

}  // namespace CPU_CAPABILITY
}  // namespace lc_cpu
