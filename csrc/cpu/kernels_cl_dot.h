// The channels_last bfloat16 forward on AVX512-BF16's dot product (Zen 4, Cooper Lake,
// Sapphire Rapids): vdpbf16ps adds a0 b0 + a1 b1 of two bfloat16 pairs to a float32 lane,
// so each instruction does two taps of one channel where an FMA does one. Included by
// kernels_avx512.cpp under its own target pragma (avx512bf16); run only where the CPU has
// it (binding.cpp: bf16_dot()).
//
// The taps of a kernel row are paired along the columns, (0, 1), (2, 3), ... and, for an
// odd K, (K - 1, nothing): the filter pairs p.wpairs[n'][kh][m][c] = (w[2m], w[2m + 1] or
// 0) as bfloat16, 32 values (64 bytes) a channel vector. The input pair of pixels (j,
// j + 1) of one channel vector is z[j] | z[j + 1] << 16, z the 16 bfloat16 zero-extended
// to 32 bits (one load-extend, one shift, one or per pixel); the last tap of an odd K
// reads z[j] alone (its pair's upper half is 0 in both operands, so a value that is not
// finite in the pixel after it cannot leak in). Blocks, borders and tasks as the float
// row window (kernels_cl.h). Sums in float32; the dot product rounds like two FMAs in a
// row, and treats bfloat16 subnormal inputs as zero (as oneDNN's bfloat16 kernels do).
#pragma once

namespace lc_cpu {
inline namespace CPU_CAPABILITY {

#if defined(CPU_CAPABILITY_AVX512)
// static_for (kernels.h) again under this target: a template takes the target of where it
// is defined, and a function may inline only what needs no more than its own
template <class F, int... I>
__attribute__((always_inline)) inline void dot_for_impl(std::integer_sequence<int, I...>, F&& f) {
  (f(std::integral_constant<int, I>{}), ...);
}
template <int N, class F>
__attribute__((always_inline)) inline void dot_for(F&& f) { dot_for_impl(std::make_integer_sequence<int, N>{}, f); }

// the 16 bfloat16 at s zero-extended into 32-bit lanes, or zeros when !ok (a masked load)
inline __m512i load_zext(const c10::BFloat16* s, bool ok) {
  return _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(__mmask16(-int(ok)), s));
}

inline __m512 dot2(__m512 acc, __m512i a, const c10::BFloat16* b) {
  return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)_mm512_loadu_si512(b));
}

template <int K, int R, int P, bool EDGE>
inline void conn_cl_dot_block(const ConnCl& p, const c10::BFloat16* x, const c10::BFloat16* wp,
                              const float* bias, int64_t n, int64_t oh, int64_t ow0, int64_t c0,
                              c10::BFloat16* y) {
  constexpr int NP = (K + 1) / 2, FULL = K / 2;  // pairs, of which whole
  __m512 acc[R][P];
  const __m512 b0 = bias ? _mm512_loadu_ps(bias + c0) : _mm512_setzero_ps();
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < P; ++q) acc[r][q] = b0;
  const int64_t iw0 = ow0 - p.pad_w, C = p.C, W = p.W;
  const c10::BFloat16* wc = wp + 2 * c0;  // + (kh NP + m) 2C: the pair vector
  dot_for<R + K - 1>([&](auto i) __attribute__((always_inline)) {
    bool row_ok;
    const c10::BFloat16* xrow = block_row<K>(p, x, n, oh, i, iw0, c0, row_ok);
    __m512i prev = _mm512_setzero_si512();
    dot_for<P + K - 1>([&](auto j) __attribute__((always_inline)) {
      const bool ok = EDGE ? bool(row_ok & (uint64_t(iw0 + j) < uint64_t(W))) : row_ok;
      const __m512i z = load_zext(xrow + j * C, ok);
      if constexpr (i == R + K - 2 && j < P)  // the rows the next task adds, into L2
        for (int r = 1; r <= R; ++r)
          _mm_prefetch(reinterpret_cast<const char*>(xrow + (r * W + j) * C), _MM_HINT_T1);
      // pixels (j - 1, j) as pairs: tap pair m of output q = j - 1 - 2m
      const __m512i pair = _mm512_or_si512(prev, _mm512_slli_epi32(z, 16));
      dot_for<R>([&](auto r) __attribute__((always_inline)) {
        constexpr int kh = int(i) - int(r);
        if constexpr (kh >= 0 && kh < K) {
          if constexpr (j >= 1) {
            dot_for<FULL>([&](auto m) __attribute__((always_inline)) {
              constexpr int q = int(j) - 1 - 2 * int(m);
              if constexpr (q >= 0 && q < P)
                acc[r][q] = dot2(acc[r][q], pair, wc + (kh * NP + m) * 2 * C);
            });
          }
          if constexpr (K % 2 == 1) {  // pixel j alone: the last tap of output j - (K - 1)
            constexpr int q = int(j) - (K - 1);
            if constexpr (q >= 0 && q < P)
              acc[r][q] = dot2(acc[r][q], z, wc + (kh * NP + FULL) * 2 * C);
          }
        }
      });
      prev = z;
    });
  });
  for (int r = 0; r < R; ++r) {
    c10::BFloat16* out = y + ((n * p.Ho + oh + r) * p.Wo + ow0) * C + c0;
    for (int q = 0; q < P; ++q) store_as(Vectorized<float>(acc[r][q]), out + q * C);
  }
}

// The row window (row_window_tasks, kernels_cl.h) on the dot product.
__attribute__((noinline)) void conn2d_cl_window_dot(const ConnCl& p, int k) {
  const auto* x = static_cast<const c10::BFloat16*>(p.x);
  auto* y = static_cast<c10::BFloat16*>(p.y);
  const auto* bias = static_cast<const float*>(p.bias);
  // (not inlined into row_window_tasks, which is compiled without AVX512-BF16: one call a block)
  row_window_tasks(p, k, [&](auto kc, auto rc, auto pc, auto ec, int64_t n, int64_t oh,
                             int64_t ow0, int64_t c0) {
    constexpr int K = decltype(kc)::value, R = decltype(rc)::value, P = decltype(pc)::value;
    const auto* wp = static_cast<const c10::BFloat16*>(p.wpairs) + n * p.wpairs_n;
    conn_cl_dot_block<K, R, P, decltype(ec)::value>(p, x, wp, bias, n, oh, ow0, c0, y);
  });
}
#endif  // CPU_CAPABILITY_AVX512

}  // namespace CPU_CAPABILITY
}  // namespace lc_cpu
