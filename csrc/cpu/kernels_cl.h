// The channels_last kernels: NHWC tensors, vectorised along the channels (contiguous), a
// weight shared across positions (depth-wise, static or per sample). Included by
// kernels_<isa>.cpp after kernels.h (same namespace and helpers).
//
//  * conn2d: a block of P output pixels x CB channel vectors held in registers across all
//    taps; each tap loads the block's CB filter vectors once (a tap-major copy of the
//    filter, binding.cpp) and one input vector per pixel. A tap on the padding is
//    skipped: the binding sends a filter that is not finite to the NCHW kernels, which
//    form W * 0 as conv2d does.
//  * corr2d: per channel, tasks of (sample, 8 output rows); up to 8 taps of a kernel row
//    accumulate in registers from one load of `a` per pixel; each task's partial sums are
//    added in task order (deterministic for any thread count). A tap on the padding reads
//    zeros (a * 0, as the reference forms it).
#pragma once

namespace lc_cpu {
inline namespace CPU_CAPABILITY {

template <class A, int P, int CB>
inline void conn_cl_block(const ConnCl& p, const A* x, const A* w, const A* bias, const A* zeros,
                          int64_t n, int64_t oh, int64_t ow0, int64_t c0, A* y) {
  using Vec = Vectorized<A>;
  constexpr int64_t L = lanes<A>();
  Vec acc[P][CB];
  for (int v = 0; v < CB; ++v) {
    const int64_t cnt = p.C - c0 - v * L;
    const Vec b0 = bias ? load_n(bias + c0 + v * L, cnt) : Vec(A(0));
    for (int q = 0; q < P; ++q) acc[q][v] = b0;
  }
  for (int64_t kh = 0; kh < p.Kh; ++kh) {
    const int64_t ih = p.rows[kh * p.Ho + oh];
    if (ih < 0) continue;
    const A* xrow = x + ((n * p.H + ih) * p.W) * p.C + c0;
    for (int64_t kw = 0; kw < p.Kw; ++kw) {
      Vec wv[CB];
      const A* wt = w + (kh * p.Kw + kw) * p.C + c0;
      for (int v = 0; v < CB; ++v) wv[v] = Vec::loadu(wt + v * L);  // (slack past the end)
      const int64_t* cols = p.cols + kw * p.Wo + ow0;
      for (int q = 0; q < P; ++q) {
        const A* s = cols[q] < 0 ? zeros : xrow + cols[q] * p.C;
        for (int v = 0; v < CB; ++v)
          acc[q][v] = at::vec::fmadd(wv[v], load_n(s + v * L, p.C - c0 - v * L), acc[q][v]);
      }
    }
  }
  for (int q = 0; q < P; ++q) {
    A* out = y + ((n * p.Ho + oh) * p.Wo + ow0 + q) * p.C + c0;
    for (int v = 0; v < CB; ++v) store_n(acc[q][v], out + v * L, p.C - c0 - v * L);
  }
}

// The register-blocked window (AVX-512, K x K filter, columns sliding with stride 1): a
// block of R output rows x P pixels of one channel vector (R = 2, P = 7: 14 sums). Output
// (r, q) reads pixel j = q + kw of the block's input row i = r + kh, so each of the
// (R + K - 1)(P + K - 1) input vectors is loaded once and feeds every sum that reads it
// (up to R K; two rows read 8 input rows per 2 output rows instead of 7 per 1, which
// halves the input streamed from L2). The filter vectors are memory operands of the FMAs
// (K K 64 bytes, L1-resident): measured on Zen 4 in a standalone loop, this block runs at
// 49-57 G MAC/s on one thread against 45-52 for one row of 16 pixels with the kernel
// row's filter in registers (NOTES.md). C a multiple of the vector length.
// A = float; T = float, or bfloat16 converted in registers (ATen's conversions).
// EDGE: the window crosses the left or right border; its pixels outside the image are
// masked loads that read zeros (no branch, so the sums stay in registers; a block inside
// the image has no test at all).
#if defined(CPU_CAPABILITY_AVX512)
// The 16 values at s as float, or zeros when !ok: a masked load, which reads nothing then.
template <class T>
inline Vectorized<float> load_or_zero(const T* s, bool ok) {
  if constexpr (std::is_same_v<T, float>) {
    return _mm512_maskz_loadu_ps(__mmask16(-int(ok)), s);
  } else {
    static_assert(std::is_same_v<T, c10::BFloat16>, "the row window reads float or bfloat16");
    __m512 v;
    at::vec::cvtbf16_fp32(_mm256_maskz_loadu_epi16(__mmask16(-int(ok)), s), v);
    return v;
  }
}

// v stored at out as T (bfloat16: rounded to nearest even, as ATen converts)
template <class T>
inline void store_as(const Vectorized<float>& v, T* out) {
  if constexpr (std::is_same_v<T, float>)
    v.store(out);
  else
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), at::vec::cvtfp32_bf16(__m512(v)));
}

// Input row i of a block of output rows from oh (kernel row i - r of output row oh + r;
// more than one row only where the rows slide), and its storage in x at column iw0 and
// channel c0 (row 0 where the row is outside the image: its loads are masked off then).
template <int K, class T>
inline const T* block_row(const ConnCl& p, const T* x, int64_t n, int64_t oh, int i,
                          int64_t iw0, int64_t c0, bool& row_ok) {
  const int64_t ih = i < K ? p.rows[i * p.Ho + oh] : p.rows[(K - 1) * p.Ho + oh + (i - K + 1)];
  row_ok = ih >= 0;
  return x + ((n * p.H + (row_ok ? ih : 0)) * p.W + iw0) * p.C + c0;
}

template <class A, class T, int K, int R, int P, bool EDGE>
inline void conn_cl_block_k(const ConnCl& p, const T* x, const A* w, const A* bias,
                            int64_t n, int64_t oh, int64_t ow0, int64_t c0, T* y) {
  using Vec = Vectorized<A>;
  Vec acc[R][P];
  const Vec b0 = bias ? Vec::loadu(bias + c0) : Vec(A(0));
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < P; ++q) acc[r][q] = b0;
  const int64_t iw0 = ow0 - p.pad_w, C = p.C, W = p.W;
  const A* wc = w + c0;
  // every loop unrolled (the sums stay in registers); a row above or below the image is a
  // mask of zeros, not a branch
  static_for<R + K - 1>([&](auto i) __attribute__((always_inline)) {
    bool row_ok;
    const T* xrow = block_row<K>(p, x, n, oh, i, iw0, c0, row_ok);
    static_for<P + K - 1>([&](auto j) __attribute__((always_inline)) {
      const bool ok = EDGE ? bool(row_ok & (uint64_t(iw0 + j) < uint64_t(W))) : row_ok;
      const Vec xj = load_or_zero(xrow + j * C, ok);
      if constexpr (i == R + K - 2 && j < P)  // the rows the next task adds, into L2
        for (int r = 1; r <= R; ++r)
          _mm_prefetch(reinterpret_cast<const char*>(xrow + (r * W + j) * C), _MM_HINT_T1);
      static_for<R>([&](auto r) __attribute__((always_inline)) {
        constexpr int kh = int(i) - int(r);
        if constexpr (kh >= 0 && kh < K)
          static_for<P>([&](auto q) __attribute__((always_inline)) {
            constexpr int kw = int(j) - int(q);
            if constexpr (kw >= 0 && kw < K)
              acc[r][q] = at::vec::fmadd(Vec::loadu(wc + (kh * K + kw) * C), xj, acc[r][q]);
          });
      });
    });
  });
  for (int r = 0; r < R; ++r) {
    T* out = y + ((n * p.Ho + oh + r) * p.Wo + ow0) * C + c0;
    for (int q = 0; q < P; ++q) store_as(acc[r][q], out + q * C);
  }
}

#endif  // CPU_CAPABILITY_AVX512

// K when the row window runs this problem (AVX-512, float; a K x K filter, K = 3, 5 or 7,
// sliding with stride 1 along the columns; C whole vectors), else 0. (float and bfloat16
// only, the others through a float copy: each type of the unrolled blocks costs a minute
// of build.)
template <class A>
inline int row_window_k(const ConnCl& p) {
  return kFixedBlocks && std::is_same_v<A, float> && p.cols_slide && p.Kh == p.Kw && p.C % lanes<A>() == 0 &&
                 (p.Kh == 3 || p.Kh == 5 || p.Kh == 7)
             ? int(p.Kh)
             : 0;
}

// The tasks and blocks of the row window: tasks of (sample, two output rows) where the
// rows slide (stride 1, no dilation; one row for the last of an odd count), else (sample,
// one row); per task, each channel vector's rows in blocks of 7 pixels, then single pixels
// (56, 28, 14 and 7 are whole blocks). block(K, R, P, EDGE, n, oh, ow0, c0) runs one
// block, its sizes and EDGE (its window leaves the row) as std::integral_constant.
template <class Block>
void row_window_tasks(const ConnCl& p, int k, const Block& block) {
  constexpr int64_t L = 16;  // (float lanes of AVX-512)
  using I1 = std::integral_constant<int, 1>;
  using I2 = std::integral_constant<int, 2>;
  using I7 = std::integral_constant<int, 7>;
  const int64_t step = p.rows_slide ? 2 : 1, tasks = (p.Ho + step - 1) / step;
  auto rows = [&](auto kc, auto rc, int64_t n, int64_t oh) __attribute__((always_inline)) {
    auto one = [&](auto pc, int64_t ow0, int64_t c0) __attribute__((always_inline)) {
      const int64_t iw0 = ow0 - p.pad_w;
      if (iw0 >= 0 && iw0 + decltype(pc)::value + decltype(kc)::value - 1 <= p.W)
        block(kc, rc, pc, std::false_type{}, n, oh, ow0, c0);
      else
        block(kc, rc, pc, std::true_type{}, n, oh, ow0, c0);
    };
    for (int64_t c0 = 0; c0 < p.C; c0 += L) {
      int64_t ow0 = 0;
      for (; ow0 + 7 <= p.Wo; ow0 += 7) one(I7{}, ow0, c0);
      for (; ow0 < p.Wo; ++ow0) one(I1{}, ow0, c0);
    }
  };
  auto run = [&](auto kc, int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / tasks, oh = task % tasks * step;
      if (step == 2 && oh + 1 < p.Ho) rows(kc, I2{}, n, oh);
      else rows(kc, I1{}, n, oh);
    }
  };
  at::parallel_for(0, p.N * tasks, 1, [&](int64_t begin, int64_t end) {
    if (k == 3) run(std::integral_constant<int, 3>{}, begin, end);
    else if (k == 5) run(std::integral_constant<int, 5>{}, begin, end);
    else run(std::integral_constant<int, 7>{}, begin, end);
  });
}

// The forward through the row window, x and y in T (A, or bfloat16).
template <class A, class T>
void conn2d_cl_window(const ConnCl& p, int k) {
#if defined(CPU_CAPABILITY_AVX512)
  const T* x = static_cast<const T*>(p.x);
  T* y = static_cast<T*>(p.y);
  const A* bias = static_cast<const A*>(p.bias);
  row_window_tasks(p, k, [&](auto kc, auto rc, auto pc, auto ec, int64_t n, int64_t oh,
                             int64_t ow0, int64_t c0) __attribute__((always_inline)) {
    constexpr int K = decltype(kc)::value, R = decltype(rc)::value, P = decltype(pc)::value;
    const A* w = static_cast<const A*>(p.w) + n * p.w_n;
    conn_cl_block_k<A, T, K, R, P, decltype(ec)::value>(p, x, w, bias, n, oh, ow0, c0, y);
  });
#else
  (void)p, (void)k;
#endif
}

template <class A>
void conn2d_cl(const ConnCl& p) {
  constexpr int64_t L = lanes<A>();
  constexpr int P = lanes<A>() * int64_t(sizeof(A)) >= 64 ? 8 : 4;  // (16 or 8 sums)
  if constexpr (std::is_same_v<A, float>)
    if (const int k = row_window_k<A>(p)) return conn2d_cl_window<A, A>(p, k);
  const A* x = static_cast<const A*>(p.x);
  A* y = static_cast<A*>(p.y);
  const A* bias = static_cast<const A*>(p.bias);
  const int64_t vectors = (p.C + L - 1) / L;
  at::parallel_for(0, p.N * p.Ho, 1, [&](int64_t begin, int64_t end) {
    Scratch<A> zeros(p.C + 2 * kSlack);
    std::fill(zeros.p, zeros.p + p.C + 2 * kSlack, A(0));
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / p.Ho, oh = task % p.Ho;
      const A* w = static_cast<const A*>(p.w) + n * p.w_n;
      for (int64_t c0 = 0; c0 < p.C; c0 += 2 * L) {
        const bool two = c0 / L + 1 < vectors;
        int64_t ow0 = 0;
        for (; ow0 + P <= p.Wo; ow0 += P) {
          if (two) conn_cl_block<A, P, 2>(p, x, w, bias, zeros.p, n, oh, ow0, c0, y);
          else conn_cl_block<A, P, 1>(p, x, w, bias, zeros.p, n, oh, ow0, c0, y);
        }
        for (; ow0 < p.Wo; ++ow0) {
          if (two) conn_cl_block<A, 1, 2>(p, x, w, bias, zeros.p, n, oh, ow0, c0, y);
          else conn_cl_block<A, 1, 1>(p, x, w, bias, zeros.p, n, oh, ow0, c0, y);
        }
      }
    }
  });
}

// Per-channel sums of up to NK taps (kw0 ..) of kernel row kh over output rows [oh0, oh1)
// of sample n, for channels [c0, c0 + CB L): acc[j][v].
template <class A, int NK, int CB>
inline void corr_cl_taps(const CorrCl& p, const A* a, const A* b, const A* zeros, int64_t n,
                         int64_t oh0, int64_t oh1, int64_t kh, int64_t kw0, int64_t nk,
                         int64_t c0, Vectorized<A> (*acc)[CB]) {
  using Vec = Vectorized<A>;
  constexpr int64_t L = lanes<A>();
  for (int j = 0; j < NK; ++j)
    for (int v = 0; v < CB; ++v) acc[j][v] = Vec(A(0));
  for (int64_t oh = oh0; oh < oh1; ++oh) {
    const int64_t ih = p.rows[kh * p.Ho + oh];
    const A* brow = ih < 0 ? nullptr : b + ((n * p.H + ih) * p.W) * p.C + c0;
    const A* arow = a + ((n * p.Ho + oh) * p.Wo) * p.C + c0;
    for (int64_t ow = 0; ow < p.Wo; ++ow) {
      Vec av[CB];
      for (int v = 0; v < CB; ++v) av[v] = load_n(arow + ow * p.C + v * L, p.C - c0 - v * L);
      for (int j = 0; j < NK; ++j) {
        if (j >= nk) break;
        const int64_t iw = p.cols[(kw0 + j) * p.Wo + ow];
        const A* s = (brow == nullptr || iw < 0) ? zeros : brow + iw * p.C;
        for (int v = 0; v < CB; ++v)
          acc[j][v] = at::vec::fmadd(av[v], load_n(s + v * L, p.C - c0 - v * L), acc[j][v]);
      }
    }
  }
}

template <class A>
void corr2d_cl(const CorrCl& p) {
  constexpr int64_t L = lanes<A>();
  constexpr int NK = 7;  // a 7-wide kernel row at once (14 sums with two channel vectors)
  constexpr int64_t kRows = 8;  // output rows a task: fixed, so the sums' order is too
  const int64_t chunks = (p.Ho + kRows - 1) / kRows, T = p.Kh * p.Kw;
  const A* a = static_cast<const A*>(p.a);
  const A* b = static_cast<const A*>(p.b);
  const int64_t vectors = (p.C + L - 1) / L;
  Scratch<A> part(p.N * chunks * T * p.C);
  at::parallel_for(0, p.N * chunks, 1, [&](int64_t begin, int64_t end) {
    Scratch<A> zeros(p.C + 2 * kSlack);
    std::fill(zeros.p, zeros.p + p.C + 2 * kSlack, A(0));
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / chunks, ch = task % chunks;
      const int64_t oh0 = ch * kRows, oh1 = std::min(p.Ho, oh0 + kRows);
      A* out = part.p + task * T * p.C;
      for (int64_t c0 = 0; c0 < p.C; c0 += 2 * L) {
        const bool two = c0 / L + 1 < vectors;
        for (int64_t kh = 0; kh < p.Kh; ++kh)
          for (int64_t kw0 = 0; kw0 < p.Kw; kw0 += NK) {
            const int64_t nk = std::min<int64_t>(NK, p.Kw - kw0);
            A* o = out + (kh * p.Kw + kw0) * p.C + c0;
            if (two) {
              Vectorized<A> acc[NK][2];
              corr_cl_taps<A, NK, 2>(p, a, b, zeros.p, n, oh0, oh1, kh, kw0, nk, c0, acc);
              for (int64_t j = 0; j < nk; ++j) {
                acc[j][0].store(o + j * p.C);
                store_n(acc[j][1], o + j * p.C + L, p.C - c0 - L);
              }
            } else {
              Vectorized<A> acc[NK][1];
              corr_cl_taps<A, NK, 1>(p, a, b, zeros.p, n, oh0, oh1, kh, kw0, nk, c0, acc);
              for (int64_t j = 0; j < nk; ++j) store_n(acc[j][0], o + j * p.C, p.C - c0);
            }
          }
      }
    }
  });
  // out[n', t, c] = the partials of its tasks in task order
  A* out = static_cast<A*>(p.out);
  const int64_t per = p.Nw == 1 ? p.N * chunks : chunks;
  at::parallel_for(0, p.Nw * T, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t nw = i / T, t = i % T;
      A* o = out + i * p.C;
      std::fill(o, o + p.C, A(0));
      for (int64_t k = 0; k < per; ++k) {
        const A* q = part.p + ((nw * (p.Nw == 1 ? 0 : chunks) + k) * T + t) * p.C;
        for (int64_t c = 0; c < p.C; ++c) o[c] += q[c];
      }
    }
  });
}

}  // namespace CPU_CAPABILITY
}  // namespace lc_cpu
