// Fused local attention on the CPU, forward and backward (plan.h's Attn): the softmax over
// each query's window is formed in registers and a per-thread scratch of Kh * Kw floats,
// never as a (B, heads, Kh, Kw, H, W) map in memory. Included once per instruction set by
// kernels_<isa>.cpp, like kernels.h.
//
// The technique: pixel-major (B, H, W, C) float32 images, so a head's D channels of a pixel
// are contiguous; one query at a time, vectorised along the head dim:
//  * the query's keys: the valid rows times the valid columns of its window (per axis: in
//    the image, and for Swin's shifted blocks in the query's region), so masked taps are
//    never visited (they would be -inf: excluded exactly);
//  * logits, a dot product of length D per key: a vector of partial products per key, then
//    one transpose-and-add network sums a vector's lanes for a whole vector of keys at once
//    (lane_sums: 45 shuffles and adds for 16 keys on AVX-512, instead of 16 reductions);
//  * the softmax in float32 over the window (one pass: max, exp, sum), the log-sum-exp kept
//    for the backward; the output a weighted sum of value rows with two accumulator chains;
//  * backward (flash-attention's, per query): the probabilities recomputed from the
//    logits and the saved lse, dP = dout . v, dS = P (dP - dout . out), dq = scale dS k,
//    and dk += scale dS q, dv += P dout, drpb += dS accumulated in place. One task per
//    (batch, head, dilation group): the keys a group's queries read belong to that group,
//    so the tasks' writes never overlap and every sum runs in a fixed order
//    (deterministic, no atomics); the bias gradient's partial sum per task is reduced by
//    the caller in a fixed order.
// The forward's tasks are rows of queries (one (batch, row) each), its heads in turn on the
// keys found once per query.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <utility>
#include <vector>

#include "cpu/plan.h"

namespace lc_cpu {
inline namespace CPU_CAPABILITY {

namespace attn {

using VecF = Vectorized<float>;
constexpr int64_t L = VecF::size();

inline VecF load(const float* p, int64_t n) { return n >= L ? VecF::loadu(p) : VecF::loadu(p, n); }

// r[t] = the sum of the lanes of s[t], for t < L (one vector of L dot products)
inline VecF lane_sums(const VecF* s) {
#if defined(CPU_CAPABILITY_AVX512)
  __m512 u[8], w[4], z[2];
  for (int i = 0; i < 8; ++i) {  // per 128-bit lane: s[2i] at 0, 2 and s[2i + 1] at 1, 3
    const __m512 a = s[2 * i], b = s[2 * i + 1];
    u[i] = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
  }
  for (int i = 0; i < 4; ++i)  // per 128-bit lane: s[4i .. 4i + 3]
    w[i] = _mm512_add_ps(_mm512_shuffle_ps(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  for (int i = 0; i < 2; ++i)  // 128-bit lanes: (s[8i..], s[8i..], s[8i + 4..], s[8i + 4..])
    z[i] = _mm512_add_ps(_mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_add_ps(_mm512_shuffle_f32x4(z[0], z[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(z[0], z[1], _MM_SHUFFLE(3, 1, 3, 1)));
#elif defined(CPU_CAPABILITY_AVX2)
  __m256 u[4], w[2];
  for (int i = 0; i < 4; ++i) {
    const __m256 a = s[2 * i], b = s[2 * i + 1];
    u[i] = _mm256_add_ps(_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
  }
  for (int i = 0; i < 2; ++i)
    w[i] = _mm256_add_ps(_mm256_shuffle_ps(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm256_shuffle_ps(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  return _mm256_add_ps(_mm256_permute2f128_ps(w[0], w[1], 0x20),
                       _mm256_permute2f128_ps(w[0], w[1], 0x31));
#else
  float buf[L], r[L];
  for (int64_t t = 0; t < L; ++t) {
    s[t].store(buf);
    float acc = 0.f;
    for (int64_t i = 0; i < L; ++i) acc += buf[i];
    r[t] = acc;
  }
  return VecF::loadu(r);
#endif
}

// The last vector of an n-element row of NV vectors: whole, or its first lanes only (a
// head's channels end there; what follows may be another head's, or past the tensor)
template <int NV>
inline VecF load_last(const float* row, int64_t n) { return load(row + (NV - 1) * L, n - (NV - 1) * L); }

// a . row over the n elements of NV vectors (qa: a's vectors, zero past n)
template <int NV>
inline VecF products(const VecF* qa, const float* row, int64_t n) {
  VecF acc = qa[0] * (NV == 1 ? load_last<1>(row, n) : VecF::loadu(row));
#pragma GCC unroll 8
  for (int j = 1; j < NV - 1; ++j) acc = at::vec::fmadd(qa[j], VecF::loadu(row + j * L), acc);
  if constexpr (NV > 1) acc = at::vec::fmadd(qa[NV - 1], load_last<NV>(row, n), acc);
  return acc;
}

// y += a x (n elements)
inline void add_scaled(float* y, float a, const float* x, int64_t n) {
  const VecF va(a);
  for (int64_t c = 0; c < n; c += L) {
    const VecF r = at::vec::fmadd(va, load(x + c, n - c), load(y + c, n - c));
    if (n - c >= L) r.store(y + c);
    else r.store(y + c, int(n - c));
  }
}

inline float dot(const float* a, const float* b, int64_t n) {
  VecF acc(0.f);
  for (int64_t c = 0; c < n; c += L) acc = at::vec::fmadd(load(a + c, n - c), load(b + c, n - c), acc);
  return at::vec::vec_reduce_all<float>([](const VecF& x, const VecF& y) { return x + y; }, acc);
}

// Rows of one head's channels at the pixels of a query's keys: key t's row at
// base + pix[t] * stride (read: Rows; written by add_rows: OutRows)
template <class T>
struct RowsOf {
  T* base;
  const int64_t* pix;
  int64_t stride;
  T* operator[](int64_t t) const { return base + pix[t] * stride; }
};
using Rows = RowsOf<const float>;
using OutRows = RowsOf<float>;

// d[t] = a . rows[t] over n elements (NV vectors; 0: any n), for t < m: whole vectors of L
// keys through lane_sums, held in registers (L products, then the network), and a short
// rest one key at a time
template <int NV>
void dots(const float* a, Rows rows, int64_t m, int64_t n, float* d) {
  if constexpr (NV == 0) {
    VecF s[L];
    for (int64_t t0 = 0; t0 < m; t0 += L) {
      const int64_t mm = std::min(L, m - t0);
      for (int64_t t = 0; t < L; ++t) {
        VecF acc(0.f);
        if (t < mm)
          for (int64_t c = 0; c < n; c += L)
            acc = at::vec::fmadd(load(a + c, n - c), load(rows[t0 + t] + c, n - c), acc);
        s[t] = acc;
      }
      const VecF r = lane_sums(s);
      if (mm == L) r.store(d + t0);
      else r.store(d + t0, int(mm));
    }
  } else {
    VecF qa[NV];
    for (int j = 0; j < NV - 1; ++j) qa[j] = VecF::loadu(a + j * L);
    qa[NV - 1] = load_last<NV>(a, n);
    int64_t t0 = 0;
    const int64_t whole = m % L > L / 2 ? m : m - m % L;  // a long rest: one more vector
    for (; t0 < whole; t0 += L) {
      VecF s[L];
#pragma GCC unroll 16
      for (int t = 0; t < L; ++t) s[t] = products<NV>(qa, rows[std::min(t0 + t, m - 1)], n);
      const VecF r = lane_sums(s);
      if (m - t0 >= L) r.store(d + t0);
      else r.store(d + t0, int(m - t0));
    }
    for (; t0 < m; ++t0)
      d[t0] = at::vec::vec_reduce_all<float>([](const VecF& x, const VecF& y) { return x + y; },
                                             products<NV>(qa, rows[t0], n));
  }
}

// y = sum over t < m of w[t] rows[t] (n elements of NV vectors; 0: any n, 4 vectors at a
// time), the taps in two accumulator chains
template <int NV>
void weighted_sum(const float* w, Rows rows, int64_t m, int64_t n, float* y) {
  constexpr int B = NV == 0 ? 4 : NV;
  const int64_t step = NV == 0 ? B * L : n;
  for (int64_t c0 = 0; c0 < n; c0 += step) {
    const int64_t nv = NV == 0 ? std::min<int64_t>(B, (n - c0 + L - 1) / L) : NV;
    VecF a[B], b[B];
    for (int j = 0; j < B; ++j) a[j] = b[j] = VecF(0.f);
    int64_t t = 0;
    for (; t + 2 <= m; t += 2) {
      const VecF w0(w[t]), w1(w[t + 1]);
      const float *r0 = rows[t] + c0, *r1 = rows[t + 1] + c0;
#pragma GCC unroll 8
      for (int64_t j = 0; j < nv; ++j) {
        const int64_t c = j * L, left = n - c0 - c;
        a[j] = at::vec::fmadd(w0, load(r0 + c, left), a[j]);
        b[j] = at::vec::fmadd(w1, load(r1 + c, left), b[j]);
      }
    }
    if (t < m)
      for (int64_t j = 0; j < nv; ++j)
        a[j] = at::vec::fmadd(VecF(w[t]), load(rows[t] + c0 + j * L, n - c0 - j * L), a[j]);
    for (int64_t j = 0; j < nv; ++j) {
      const int64_t c = c0 + j * L;
      const VecF r = a[j] + b[j];
      if (n - c >= L) r.store(y + c);
      else r.store(y + c, int(n - c));
    }
  }
}

// rows[t] += w[t] x for t < m (n elements of NV vectors; 0: any n): x held in registers
template <int NV>
void add_rows(const float* w, OutRows rows, int64_t m, int64_t n, const float* x) {
  if constexpr (NV == 0) {
    for (int64_t t = 0; t < m; ++t) add_scaled(rows[t], w[t], x, n);
  } else {
    VecF xv[NV];
    for (int j = 0; j < NV - 1; ++j) xv[j] = VecF::loadu(x + j * L);
    xv[NV - 1] = load_last<NV>(x, n);
    const int64_t tail = n - (NV - 1) * L;
    for (int64_t t = 0; t < m; ++t) {
      float* r = rows[t];
      const VecF wt(w[t]);
#pragma GCC unroll 8
      for (int j = 0; j < NV - 1; ++j)
        at::vec::fmadd(wt, xv[j], VecF::loadu(r + j * L)).store(r + j * L);
      const VecF last = at::vec::fmadd(wt, xv[NV - 1], load_last<NV>(r, n));
      if (tail == L) last.store(r + (NV - 1) * L);
      else last.store(r + (NV - 1) * L, int(tail));
    }
  }
}

using DotsFn = void (*)(const float*, Rows, int64_t, int64_t, float*);
using AddRowsFn = void (*)(const float*, OutRows, int64_t, int64_t, const float*);

// The instances of add_rows for rows of n elements
inline AddRowsFn add_rows_kernel(int64_t n) {
  switch ((n + L - 1) / L) {
    case 1: return add_rows<1>;
    case 2: return add_rows<2>;
    case 3: return add_rows<3>;
    case 4: return add_rows<4>;
    case 5: return add_rows<5>;
    case 6: return add_rows<6>;
    case 7: return add_rows<7>;
    case 8: return add_rows<8>;
    default: return add_rows<0>;
  }
}

// The instances of dots and weighted_sum for rows of n elements
inline std::pair<DotsFn, DotsFn> row_kernels(int64_t n) {
  switch ((n + L - 1) / L) {
    case 1: return {dots<1>, weighted_sum<1>};
    case 2: return {dots<2>, weighted_sum<2>};
    case 3: return {dots<3>, weighted_sum<3>};
    case 4: return {dots<4>, weighted_sum<4>};
    case 5: return {dots<5>, weighted_sum<5>};
    case 6: return {dots<6>, weighted_sum<6>};
    case 7: return {dots<7>, weighted_sum<7>};
    case 8: return {dots<8>, weighted_sum<8>};
    default: return {dots<0>, weighted_sum<0>};
  }
}

// The first key (group units) of the window of query i on an axis of length len
inline int64_t window_start(int64_t i, int64_t len, int64_t K, int64_t window) {
  switch (window) {
    case 1: return i - (K - 1);  // causal
    case 2: return i - K / 2;    // sliding
    case 3: return (i / K) * K;  // block
    default: return std::min(std::max<int64_t>(i - K / 2, 0), len - K);
  }
}

// Swin's region of position x of a shifted axis: the slices (0:-K, -K:-s, -s:)
inline int64_t swin_region(int64_t x, int64_t len, int64_t K, int64_t s) {
  return int64_t(x >= len - K) + int64_t(x >= len - s);
}

// The keys of query i along one axis, in order (group units): their count
inline int64_t axis_keys(int64_t i, int64_t len, int64_t K, int64_t window, int64_t shift,
                         int64_t* key) {
  const int64_t s = window_start(i, len, K, window);
  int64_t n = 0;
  for (int64_t kk = 0; kk < K; ++kk) {
    const int64_t j = s + kk;
    if (j < 0 || j >= len) continue;
    if (window == 3 && swin_region(j, len, K, shift) != swin_region(i, len, K, shift)) continue;
    key[n++] = j;
  }
  return n;
}

// One thread's scratch: a query's keys (at most Kh * Kw), their logits and weights
struct Query {
  const Attn& p;
  int64_t C, Cv, bias_w, bias_plane;
  std::vector<int64_t> rk, ck, pix, bidx;
  std::vector<float> lg, w, dp;
  int64_t n = 0;
  DotsFn dots_q, wsum_q, dots_v, wsum_v;  // rows of D and of Dv elements
  AddRowsFn add_q, add_v;

  explicit Query(const Attn& a)
      : p(a), C(a.heads * a.D), Cv(a.heads * a.Dv), bias_w(2 * a.Kw - 1),
        bias_plane((2 * a.Kh - 1) * (2 * a.Kw - 1)), rk(size_t(a.Kh)), ck(size_t(a.Kw)) {
    std::tie(dots_q, wsum_q) = row_kernels(a.D);
    std::tie(dots_v, wsum_v) = row_kernels(a.Dv);
    add_q = add_rows_kernel(a.D);
    add_v = add_rows_kernel(a.Dv);
    const size_t T = size_t(a.Kh * a.Kw) + size_t(L);
    pix.resize(T), bidx.resize(T), lg.resize(T), w.resize(T), dp.resize(T);
  }

  // The keys of query (b, y, x) (pixels and bias offsets), given its row keys (the first
  // nr of rk, in group units) and its group's column length lx
  void keys(int64_t b, int64_t y, int64_t iy, int64_t nr, int64_t x, int64_t lx) {
    const int64_t gy = y % p.dh, gx = x % p.dw, ix = x / p.dw;
    const int64_t nc = axis_keys(ix, lx, p.Kw, p.window, p.shift_w, ck.data());
    n = 0;
    for (int64_t a = 0; a < nr; ++a) {
      const int64_t row = (b * p.H + gy + p.dh * rk[a]) * p.W + gx;
      const int64_t brow = (rk[a] - iy + p.Kh - 1) * bias_w + p.Kw - 1 - ix;
      for (int64_t c = 0; c < nc; ++c, ++n) {
        pix[n] = row + p.dw * ck[c];
        bidx[n] = brow + ck[c];
      }
    }
  }

  Rows krows(int64_t h) const { return {p.k + h * p.D, pix.data(), C}; }
  Rows vrows(int64_t h) const { return {p.v + h * p.Dv, pix.data(), Cv}; }

  // The logits of head h of the query at q into lg
  void logits(int64_t h, const float* q) {
    dots_q(q, krows(h), n, p.D, lg.data());
    const VecF scale(p.scale);
    for (int64_t t = 0; t < n; t += L) {  // (the slack past n: lg holds n + L floats)
      VecF l = VecF::loadu(lg.data() + t) * scale;
      l.store(lg.data() + t);
    }
    if (p.rpb) {
      const float* bias = p.rpb + h * bias_plane;
      for (int64_t t = 0; t < n; ++t) lg[t] += bias[bidx[t]];
    }
  }

  // w[t] = exp(lg[t] - m) for t < n: their sum
  float exps(float m) {
    VecF sum(0.f);
    const VecF vm(m);
    for (int64_t t = 0; t < n; t += L) {
      const int64_t c = std::min(L, n - t);
      const VecF e = (VecF::loadu(lg.data() + t, c) - vm).exp_u20();
      const VecF keep = c == L ? e : VecF::set(VecF(0.f), e, c);
      keep.store(w.data() + t);
      sum = sum + keep;
    }
    return at::vec::vec_reduce_all<float>([](const VecF& a, const VecF& b) { return a + b; }, sum);
  }

  float largest() const {
    const float lowest = -std::numeric_limits<float>::infinity();
    VecF m(lowest);
    for (int64_t t = 0; t < n; t += L) {
      const int64_t c = std::min(L, n - t);
      m = at::vec::maximum(m, c == L ? VecF::loadu(lg.data() + t)
                                     : VecF::set(VecF(lowest), VecF::loadu(lg.data() + t, c), c));
    }
    return at::vec::vec_reduce_all<float>([](const VecF& a, const VecF& b) { return at::vec::maximum(a, b); }, m);
  }
};

inline int64_t group_len(int64_t len, int64_t g, int64_t d) { return (len - g + d - 1) / d; }

}  // namespace attn

inline void attention_forward(const Attn& p) {
  using namespace attn;
  at::parallel_for(0, p.B * p.H, 1, [&](int64_t begin, int64_t end) {
    Query qr(p);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t y = task % p.H, b = task / p.H;
      const int64_t gy = y % p.dh, iy = y / p.dh, ly = group_len(p.H, gy, p.dh);
      const int64_t nr = axis_keys(iy, ly, p.Kh, p.window, p.shift_h, qr.rk.data());
      for (int64_t x = 0; x < p.W; ++x) {
        qr.keys(b, y, iy, nr, x, group_len(p.W, x % p.dw, p.dw));
        const int64_t pix = (b * p.H + y) * p.W + x;
        for (int64_t h = 0; h < p.heads; ++h) {  // the same keys for every head
          qr.logits(h, p.q + pix * qr.C + h * p.D);
          const float m = qr.largest(), l = qr.exps(m), inv = 1.f / l;
          for (int64_t t = 0; t < qr.n; ++t) qr.w[t] *= inv;
          qr.wsum_v(qr.w.data(), qr.vrows(h), qr.n, p.Dv, p.out + pix * qr.Cv + h * p.Dv);
          p.lse[((b * p.heads + h) * p.H + y) * p.W + x] = m + std::log(l);
        }
      }
    }
  });
}

inline void attention_backward(const Attn& p) {
  using namespace attn;
  const int64_t groups = p.dh * p.dw;
  at::parallel_for(0, p.B * p.heads * groups, 1, [&](int64_t begin, int64_t end) {
    Query qr(p);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t g = task % groups, h = (task / groups) % p.heads, b = task / (groups * p.heads);
      const int64_t gy = g / p.dw, gx = g % p.dw;
      const int64_t ly = group_len(p.H, gy, p.dh), lx = group_len(p.W, gx, p.dw);
      float* drpb = p.drpb ? p.drpb + ((b * groups + g) * p.heads + h) * qr.bias_plane : nullptr;
      if (drpb) std::fill(drpb, drpb + qr.bias_plane, 0.f);
      for (int64_t iy = 0; iy < ly; ++iy)  // this task's keys: the group's pixels
        for (int64_t ix = 0; ix < lx; ++ix) {
          const int64_t pix = (b * p.H + gy + p.dh * iy) * p.W + gx + p.dw * ix;
          std::fill_n(p.dk + pix * qr.C + h * p.D, p.D, 0.f);
          std::fill_n(p.dv + pix * qr.Cv + h * p.Dv, p.Dv, 0.f);
        }
      const Rows krows = qr.krows(h), vrows = qr.vrows(h);
      for (int64_t iy = 0; iy < ly; ++iy) {
        const int64_t y = gy + p.dh * iy;
        const int64_t nr = axis_keys(iy, ly, p.Kh, p.window, p.shift_h, qr.rk.data());
        for (int64_t ix = 0; ix < lx; ++ix) {
          const int64_t x = gx + p.dw * ix, pix = (b * p.H + y) * p.W + x;
          const float* q = p.q + pix * qr.C + h * p.D;
          qr.keys(b, y, iy, nr, x, lx);
          qr.logits(h, q);
          qr.exps(p.lse[((b * p.heads + h) * p.H + y) * p.W + x]);  // probabilities
          const float* dout = p.dout + pix * qr.Cv + h * p.Dv;
          const float delta = dot(dout, p.o + pix * qr.Cv + h * p.Dv, p.Dv);
          const int64_t n = qr.n;
          qr.dots_v(dout, vrows, n, p.Dv, qr.dp.data());
          for (int64_t t = 0; t < n; ++t) {  // dp := dS, lg := scale dS
            qr.dp[t] = qr.w[t] * (qr.dp[t] - delta);
            qr.lg[t] = p.scale * qr.dp[t];
          }
          qr.wsum_q(qr.lg.data(), krows, n, p.D, p.dq + pix * qr.C + h * p.D);
          qr.add_q(qr.lg.data(), {p.dk + h * p.D, qr.pix.data(), qr.C}, n, p.D, q);
          qr.add_v(qr.w.data(), {p.dv + h * p.Dv, qr.pix.data(), qr.Cv}, n, p.Dv, dout);
          if (drpb)
            for (int64_t t = 0; t < n; ++t) drpb[qr.bidx[t]] += qr.dp[t];
        }
      }
    }
  });
}

}  // namespace CPU_CAPABILITY
}  // namespace lc_cpu
