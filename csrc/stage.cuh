// Staging image tiles in shared memory, written once for the tile kernels
// (conn_tile.cuh, corr_tile.cuh): P planes x IH rows x IW columns starting at
// input row lo_h and column lo_w, converted to the accumulator type, zero
// outside the image and beyond the tile's own span (ext_h x ext_w).
//
// When the rows are contiguous and 16-byte aligned (plan.h sets `vec`), a
// thread loads 16 bytes at a time (4 floats, 8 halves, 2 doubles) from
// aligned column chunks and scatters the ones inside the tile; chunks that
// cross the image border fall back to guarded scalar loads.
#pragma once

#include "portable.h"

namespace lc {

struct TileSpan {
  int64_t P, IH, IW;         // planes, staged rows and columns (the allocation)
  int64_t lo_h, ext_h;       // first input row, rows this tile reads
  int64_t lo_w, ext_w;       // first input column, columns this tile reads
  int64_t H, W;              // image size
  int64_t sh, sw;            // row and column strides of the source
};

LC_HD int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// 16 bytes from a 16-byte aligned address (one source line on both targets, so
// that the cost model matches the GPU's load with the emulator's).
#if defined(__CUDACC__)
#define LC_COPY16(out, src) (*reinterpret_cast<uint4*>(out) = *reinterpret_cast<const uint4*>(src))
#define LC_COPY8(out, src) (*reinterpret_cast<uint2*>(out) = *reinterpret_cast<const uint2*>(src))
#define LC_COPY4(out, src) \
  (*reinterpret_cast<unsigned*>(out) = *reinterpret_cast<const unsigned*>(src))
#else
#define LC_COPY16(out, src) std::memcpy(out, src, 16)
#define LC_COPY8(out, src) std::memcpy(out, src, 8)
#define LC_COPY4(out, src) std::memcpy(out, src, 4)
#endif
template <class T>
LC_DEVICE void load16(const T* src, T* out) { LC_COPY16(out, src); }

// V values from an address aligned to V * sizeof(T) bytes (V * sizeof(T) in 2..16).
template <class T, int V>
LC_DEVICE void load_chunk(const T* src, T (&out)[V]) {
  if constexpr (V * sizeof(T) == 16) {
    load16(src, out);
  } else {
LC_UNROLL
    for (int j = 0; j < V; ++j) out[j] = src[j];  // nvcc merges aligned neighbours
  }
}

// One input row of a register strip (conn_strip.cuh, corr_strip.cuh): NCH chunks of
// V values from `at` (column stride sw), converted to the accumulator type into
// out[OFF, OFF + NV); chunk ch is loaded where `row_in` and bit ch of `inside` are
// set, else zeros; chunks wholly before OFF are skipped. The address runs from
// chunk to chunk, so no per-column offsets stay live across rows.
template <class T, int V, int OFF, int NV, int NCH>
LC_DEVICE void load_strip_row(const T* at, int32_t sw, bool row_in, uint32_t inside,
                              acc_t<T> (&out)[NCH * V]) {
LC_UNROLL
  for (int ch = 0; ch < NCH; ++ch, at += V * sw) {
    if ((ch + 1) * V <= OFF) continue;  // before the row's first column: unused
    T buf[V];
    if (row_in && ((inside >> ch) & 1)) {
      load_chunk<T, V>(at, buf);
    } else {
LC_UNROLL
      for (int j = 0; j < V; ++j) buf[j] = from_float<T>(0.0f);
    }
LC_UNROLL
    for (int j = 0; j < V; ++j)
      if (ch * V + j >= OFF && ch * V + j < OFF + NV) out[ch * V + j] = acc_t<T>(to_float(buf[j]));
  }
}

// plane_ptr(pl): the source plane of tile plane pl (nullptr: zeros).
template <class T, class PlanePtr>
LC_DEVICE void stage_tile(acc_t<T>* dst, const TileSpan& s, bool vec, PlanePtr plane_ptr) {
  using A = acc_t<T>;
  const int tid = thread_index(), nthreads = block_threads();
  const int64_t plane_elems = s.IH * s.IW;
  if (!vec) {
    for (int64_t e = tid; e < s.P * plane_elems; e += nthreads) {
      const int64_t pl = e / plane_elems, r = (e % plane_elems) / s.IW, col = e % s.IW;
      const int64_t ih = s.lo_h + r, iw = s.lo_w + col;
      const T* src = plane_ptr(pl);
      A v = A(0);
      if (src && r < s.ext_h && col < s.ext_w && ih >= 0 && ih < s.H && iw >= 0 && iw < s.W)
        v = load_acc(src + ih * s.sh + iw * s.sw);
      dst[e] = v;
    }
    return;
  }
  constexpr int V = 16 / sizeof(T);
  const int64_t c0 = floor_div(s.lo_w, V) * V;  // the aligned chunk holding column lo_w
  const int64_t chunks = ceil_div(s.lo_w + s.IW - c0, V);
  for (int64_t e = tid; e < s.P * s.IH * chunks; e += nthreads) {
    const int64_t pl = e / (s.IH * chunks), r = (e / chunks) % s.IH, ch = e % chunks;
    const int64_t ih = s.lo_h + r, iw0 = c0 + ch * V;
    const T* src = plane_ptr(pl);
    const bool row_ok = src && r < s.ext_h && ih >= 0 && ih < s.H;
    T buf[V];
    if (row_ok && iw0 >= 0 && iw0 + V <= s.W) {
      load16(src + ih * s.sh + iw0, buf);
    } else {
      for (int j = 0; j < V; ++j) {
        const int64_t iw = iw0 + j;
        buf[j] = (row_ok && iw >= 0 && iw < s.W) ? src[ih * s.sh + iw] : from_float<T>(0.0f);
      }
    }
    A* out = dst + pl * plane_elems + r * s.IW;
    for (int j = 0; j < V; ++j) {
      const int64_t col = iw0 + j - s.lo_w;
      if (col >= 0 && col < s.IW) out[col] = (row_ok && col < s.ext_w) ? A(to_float(buf[j])) : A(0);
    }
  }
}

// Can a tile's rows be loaded `bytes` (16: rows_vectorizable) at a time? Contiguous
// rows whose every start (plane, row) is aligned: the base pointer and the plane
// and row strides in bytes are multiples of `bytes`.
inline bool rows_aligned(const void* base, int64_t b, int64_t sn, int64_t sc, int64_t sh,
                         int64_t sw, int64_t bytes) {
  return sw == 1 && reinterpret_cast<uintptr_t>(base) % bytes == 0 && (sn * b) % bytes == 0 &&
         (sc * b) % bytes == 0 && (sh * b) % bytes == 0;
}

inline bool rows_vectorizable(const void* base, int64_t b, int64_t sn, int64_t sc, int64_t sh,
                              int64_t sw) {
  return rows_aligned(base, b, sn, sc, sh, sw, 16);
}

}  // namespace lc
