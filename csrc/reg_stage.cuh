// The staging of the register kernels (corr_reg.cuh, conn_reg.cuh): a sample's plane of
// a block's 32 channels (H rows of W values, W a constant) in shared memory as
// [position][kRegLaneStride] float32 words: channel (lane) l's value at position
// y * W + x is word (y * W + x) * 33 + l, so a warp's lanes reading one position meet 32
// distinct banks, and so do stores in either order below.
//
// A warp's lanes take neighbouring values of the image: channels_last (a pixel's channels
// together) a lane a channel and a warp a row at a time, its pointer stepped along the
// row, or where the pixels' channels are aligned in fours (kPixelQuads) four channels a
// lane and four pixels a warp at a time; NCHW-like planes (rows W values apart) a warp a
// channel at a time, its lanes along the plane, or where the planes are dense and aligned
// (kQuads) four values a lane in one load (8 lanes a channel, a warp 4 channels at a
// time: the lanes' stores of value e of their quads, words (4 q + e) * 33 + channel, meet
// 32 distinct banks; model, float32 14 x 14: about a quarter of a warp's instructions in
// the value-by-value loops were their loads, stores and address steps); other strides
// value by value; conn_reg walks dense 7 x 7 planes of consecutive channels as one run of
// values for all its samples at once (kSpan: RegSpan). Offsets from the block's first
// value (channel c0 of the sample) fit 32 bits (plan.h reg_span_32). Channels past C are
// zeros when staged and skipped when written back.
#pragma once

#include <type_traits>

#include "mma.cuh"
#include "params.h"
#include "plan.h"
#include "portable.h"

namespace lc {

enum class RegOrder { kPixels, kPixelQuads, kPlanes, kQuads, kValues, kSpan };

// How an image's values are walked (the orders above), for every sample of a block whose
// first value is `at` (planes H x W): kQuads where the planes are dense and every quad of
// 4 values of every sample and channel is aligned for one load or store; kPixelQuads where
// every pixel's channels come 4 at a time so
template <class T>
LC_DEVICE RegOrder reg_order(const Image& s, int64_t C, int W, int32_t H, const T* at,
                             bool span = false) {
  const bool at_quad = reinterpret_cast<uintptr_t>(at) % (4 * sizeof(T)) == 0;
  if (C > 1 && s.c == 1)  // (plan.h channels_last_image)
    return C % 4 == 0 && s.w % 4 == 0 && s.h % 4 == 0 && s.n % 4 == 0 && at_quad
               ? RegOrder::kPixelQuads : RegOrder::kPixels;
  if (s.h != W * s.w) return RegOrder::kValues;
  // dense 7 x 7 planes of consecutive channels, where the caller walks them as one run of
  // values (conn_reg: reg_span_stage / reg_span_unstage; the weight gradient's corr_reg
  // stages its two planes a sample at a time, where the walk's setup did not pay: model,
  // float32 7 x 7 NCHW, 10.68 -> 11.11 us with a spill)
  if (span && W == 7 && H == W && s.w == 1 && s.c == W * W) return RegOrder::kSpan;
  // (planes 7 wide, the 7 x 7 stages: never, and no code for it)
  const bool quads = W % 2 == 0 && s.w == 1 && (H * W) % 4 == 0 && s.c % 4 == 0 &&
                     s.n % 4 == 0 && at_quad;
  return quads ? RegOrder::kQuads : RegOrder::kPlanes;
}

// the quad at `at` (4 values: one 16- or 8-byte load) as float32, or into it
template <class T>
LC_DEVICE void load_quad(const T* at, float (&v)[4]) {
  if constexpr (sizeof(T) == 4) {
    uint32_t u[4];
    LC_LOAD_WORDS(u, at);
LC_UNROLL
    for (int e = 0; e < 4; ++e) v[e] = word_float(u[e]);
  } else {
    uint32_t u[2];
    LC_LOAD_WORDS2(u, at);
LC_UNROLL
    for (int e = 0; e < 4; ++e) v[e] = to_float(of_bits<T>(uint16_t(u[e / 2] >> (16 * (e % 2)))));
  }
}
template <class T>
LC_DEVICE void store_quad(T* at, const float (&v)[4]) {
  if constexpr (sizeof(T) == 4) {
    uint32_t u[4];
LC_UNROLL
    for (int e = 0; e < 4; ++e) u[e] = float_word(v[e]);
    LC_STORE_WORDS(at, u);
  } else {
    const uint32_t u[2] = {pack2(from_float<T>(v[0]), from_float<T>(v[1])),
                           pack2(from_float<T>(v[2]), from_float<T>(v[3]))};
    LC_STORE_WORDS2(at, u);
  }
}

// kPixelQuads' walk: f(offset of the quad from the block's first value, staged word of its
// first value, whether its channels are < chans) for lane 8 p + m's quads: channels
// 4 m .. 4 m + 3 of pixel x0 + p (x0 = 0, 4, ..) of the warp's rows; value e of the
// lanes' quads is staged at words (y W + x) * 33 + 4 m + e, 32 distinct banks
template <int W, class Fn>
LC_DEVICE void reg_pixel_quads(const Image& s, int32_t chans, int32_t H, Fn&& f) {
  const int lane = thread_index() & 31, warp = thread_index() >> 5;
  const int m = lane & 7, pl = lane >> 3;
  const int32_t sh = int32_t(s.h), sw = int32_t(s.w);
  for (int32_t y = warp; y < H; y += kThreads / 32) {
LC_UNROLL
    for (int x0 = 0; x0 < W; x0 += 4) {
      const int x = x0 + pl;
      if (W % 4 != 0 && x >= W) break;
      // (chans % 4 == 0: a quad's channels are all inside or all past them)
      f(y * sh + x * sw + 4 * m, (y * W + x) * kRegLaneStride + 4 * m, 4 * m < chans);
    }
  }
}

// kSpan's walk (planes 7 x 7, dense and consecutive: the block's 32 channels are 32 x 49
// values in a row; the kPlanes walk leaves 15 of 32 lanes idle in every plane's second
// pass and steps two loops a plane): thread tid takes the values e = tid + 256 k (k =
// 0..6, the last for warp 0 only), coalesced; value e is channel e / 49's position
// e % 49, staged at word (e % 49) * 33 + e / 49. As 256 = 5 x 49 + 11, the k-th word is
// the thread's first + 368 k - 1616 m, m = (pos0 + 11 k) / 49 the planes' ends passed: a
// compare a step, made once for every image staged with it (a staged plane's words are
// constants here, so the images' offsets are immediates). Lanes of a warp that straddle
// two planes may meet in a bank: at most 2-way.
template <int W>
struct RegSpan {
  static constexpr int32_t HW = W * W, N = 32 * HW, LS = kRegLaneStride, PLANE = HW * LS;
  static constexpr int K = (N + kThreads - 1) / kThreads;  // steps
  static constexpr int32_t TAIL = N - (K - 1) * kThreads;  // threads in the last step
  static constexpr int32_t DP = kThreads % HW, DC = kThreads / HW;  // (7 x 7: 11, 5)
  static_assert(DP < HW && DC >= 1 && TAIL % 32 == 0, "a plane's end a step; whole warps");
  int32_t tid, word[K];  // the staged word of value tid + 256 k
  LC_DEVICE RegSpan() : tid(thread_index()) {
    const int32_t ch0 = tid / HW, pos0 = tid - ch0 * HW;
LC_UNROLL
    for (int k = 0; k < K; ++k) {
      const int32_t q = DP * k / HW, r = DP * k % HW;  // (constants)
      const int32_t m = q + (pos0 >= HW - r ? 1 : 0);
      word[k] = pos0 * LS + ch0 + k * (DP * LS + DC) - m * (HW * LS - 1);
    }
  }
  LC_DEVICE bool has(int k) const { return k < K - 1 || tid < TAIL; }  // (warp-uniform)
};

// kSpan: f(i, e, word, in) for images i < count (at most I) and the thread's values: e
// the value's offset from the image block's first value, `word` its staged word in plane
// PSTEP i, `in` whether its channel is < chans (the compare only where chans < 32)
template <int W, int I, int PSTEP, class Fn>
LC_DEVICE void reg_span_each(int32_t chans, int count, Fn&& f) {
  using S = RegSpan<W>;
  const S sp;
  const int32_t n = chans * S::HW;
  auto walk = [&](auto all) {
LC_UNROLL
    for (int i = 0; i < I; ++i) {
      if (i >= count) break;
LC_UNROLL
      for (int k = 0; k < S::K; ++k)
        if (sp.has(k))
          f(i, sp.tid + k * kThreads, i * PSTEP * S::PLANE + sp.word[k],
            decltype(all)::value || sp.tid + k * kThreads < n);
    }
  };
  if (chans == 32) walk(std::true_type{}); else walk(std::false_type{});
}

// kSpan: images i < count into staged planes PSTEP i (src_of(i): image i's block's first
// value), channels past chans zeros; and back, planes PSTEP i -> dst_of(i), channels < chans
template <int W, int I, int PSTEP, class SrcOf>
LC_DEVICE void reg_span_stage(float* to, int32_t chans, int count, SrcOf&& src_of) {
  reg_span_each<W, I, PSTEP>(chans, count, [&](int i, int32_t e, int32_t word, bool in) {
    to[word] = in ? load_acc(src_of(i) + e) : 0.0f;
  });
}
template <int W, int I, int PSTEP, class DstOf>
LC_DEVICE void reg_span_unstage(const float* from, int32_t chans, int count, DstOf&& dst_of) {
  reg_span_each<W, I, PSTEP>(chans, count, [&](int i, int32_t e, int32_t word, bool in) {
    if (in) store_acc(dst_of(i) + e, from[word]);
  });
}

// image -> staged plane (`src`: the block's first value)
template <int W, class T>
LC_DEVICE void reg_stage(float* to, const T* src, const Image& s, RegOrder order, int32_t chans,
                         int32_t H) {
  constexpr int LS = kRegLaneStride;
  const int tid = thread_index(), lane = tid & 31, warp = tid >> 5;
  const int32_t HW = H * W;
  const int64_t sw = s.w;
  if (order == RegOrder::kPixels) {
    const bool in = lane < chans;
    for (int32_t y = warp; y < H; y += kThreads / 32) {
      const T* at = src + (lane * s.c + y * s.h);
      float* out = to + y * W * LS + lane;
LC_UNROLL
      for (int x = 0; x < W; ++x, at += sw) out[x * LS] = in ? load_acc(at) : 0.0f;
    }
  } else if (order == RegOrder::kPixelQuads) {
    reg_pixel_quads<W>(s, chans, H, [&](int32_t at, int32_t word, bool in) {
      float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      if (in) load_quad(src + at, v);
LC_UNROLL
      for (int e = 0; e < 4; ++e) to[word + e] = v[e];
    });
  } else if (W % 2 == 0 && order == RegOrder::kQuads) {
    const int32_t Q = HW / 4, sc = int32_t(s.c);  // quads a plane
    for (int32_t ch = 4 * warp + (lane >> 3); ch < 32; ch += kThreads / 8) {
      const bool in = ch < chans;
      const T* at = src + ch * sc;
      for (int32_t q = lane & 7; q < Q; q += 8) {
        float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        if (in) load_quad(at + 4 * q, v);
LC_UNROLL
        for (int e = 0; e < 4; ++e) to[(4 * q + e) * LS + ch] = v[e];
      }
    }
  } else if (order == RegOrder::kPlanes) {
    for (int32_t ch = warp; ch < 32; ch += kThreads / 32) {
      const bool in = ch < chans;
      const T* at = src + (ch * s.c + lane * sw);
      for (int32_t pos = lane; pos < HW; pos += 32, at += 32 * sw)
        to[pos * LS + ch] = in ? load_acc(at) : 0.0f;
    }
  } else {
    for (int32_t f = tid; f < 32 * HW; f += kThreads) {
      const int32_t ch = f / HW, pos = f % HW, y = pos / W, x = pos % W;
      to[pos * LS + ch] = ch < chans ? load_acc(src + (ch * s.c + y * s.h + x * sw)) : 0.0f;
    }
  }
}

// staged plane -> image (`dst`: the block's first value), channels < chans only
template <int W, class T>
LC_DEVICE void reg_unstage(T* dst, const float* from, const Image& s, RegOrder order,
                           int32_t chans, int32_t H) {
  constexpr int LS = kRegLaneStride;
  const int tid = thread_index(), lane = tid & 31, warp = tid >> 5;
  const int32_t HW = H * W;
  const int64_t sw = s.w;
  if (order == RegOrder::kPixels) {
    if (lane >= chans) return;
    for (int32_t y = warp; y < H; y += kThreads / 32) {
      T* at = dst + (lane * s.c + y * s.h);
      const float* in = from + y * W * LS + lane;
LC_UNROLL
      for (int x = 0; x < W; ++x, at += sw) store_acc(at, in[x * LS]);
    }
  } else if (order == RegOrder::kPixelQuads) {
    if (4 * (lane & 7) >= chans) return;  // (the lane's quads all past the channels)
    reg_pixel_quads<W>(s, chans, H, [&](int32_t at, int32_t word, bool) {
      float v[4];
LC_UNROLL
      for (int e = 0; e < 4; ++e) v[e] = from[word + e];
      store_quad(dst + at, v);
    });
  } else if (W % 2 == 0 && order == RegOrder::kQuads) {
    const int32_t Q = HW / 4, sc = int32_t(s.c);
    for (int32_t ch = 4 * warp + (lane >> 3); ch < chans; ch += kThreads / 8) {
      T* at = dst + ch * sc;
      for (int32_t q = lane & 7; q < Q; q += 8) {
        float v[4];
LC_UNROLL
        for (int e = 0; e < 4; ++e) v[e] = from[(4 * q + e) * LS + ch];
        store_quad(at + 4 * q, v);
      }
    }
  } else if (order == RegOrder::kPlanes) {
    for (int32_t ch = warp; ch < chans; ch += kThreads / 32) {
      T* at = dst + (ch * s.c + lane * sw);
      for (int32_t pos = lane; pos < HW; pos += 32, at += 32 * sw) store_acc(at, from[pos * LS + ch]);
    }
  } else {
    for (int32_t f = tid; f < 32 * HW; f += kThreads) {
      const int32_t ch = f / HW, pos = f % HW, y = pos / W, x = pos % W;
      if (ch < chans) store_acc(dst + (ch * s.c + y * s.h + x * sw), from[pos * LS + ch]);
    }
  }
}

// f(y, H) for the rows y = part, part + R, .. of a plane H rows high (R a power of 2): a
// square plane 7 wide (the 7 x 7 stages) unrolled, y and H constants, so that the kernel
// rows inside the plane and the staged rows' offsets fold at compile time (no branch a
// kernel row, immediate shared-memory offsets); other planes a loop (14 x 14 unrolled
// would be ~8k instructions a body).
template <int W, class Fn>
LC_DEVICE void reg_rows(int part, int R, int32_t H, Fn&& f) {
  if constexpr (W == 7) {
    if (H == W) {
LC_UNROLL
      for (int y = 0; y < W; ++y)
        if ((y & (R - 1)) == part) f(y, W);  // (warp-uniform)
      return;
    }
  }
  for (int32_t y = part; y < H; y += R) f(y, H);
}

// Output row y's products (the register kernels' inner loop): for each kernel row i whose
// input row y + i - KF/2 lies in the plane, its W values loaded once from the staged
// plane (`x_at`: the lane's value at position 0), then f(i, j, x, value at column
// x + j - KF/2) for every pair (x, j) whose column lies in the plane, chosen at compile
// time: no masks, no padding products.
template <int KF, int W, class Fn>
LC_DEVICE void reg_row_pairs(const float* x_at, int32_t y, int32_t H, Fn&& f) {
  constexpr int PD = KF / 2;
LC_UNROLL
  for (int i = 0; i < KF; ++i) {
    const int32_t r = y + i - PD;
    if (r < 0 || r >= H) continue;  // (warp-uniform)
    float v[W];
LC_UNROLL
    for (int q = 0; q < W; ++q) v[q] = x_at[(r * W + q) * kRegLaneStride];
LC_UNROLL
    for (int j = 0; j < KF; ++j)
LC_UNROLL
      for (int x = 0; x < W; ++x) {
        const int q = x + j - PD;
        if (q >= 0 && q < W) f(i, j, x, v[q]);
      }
  }
}

}  // namespace lc
