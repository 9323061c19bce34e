// conn2d with a position-specific weight (involution; inhomogeneous dynamic depth-wise; the
// weight (Nw, Cw, KF, KF, Ho, Wo) shared by the cpg = C / Cw channels of a group) on tensor
// cores: half and bfloat16, a KF x KF sliding window (3, 5, 7), stride 1, dilation 1, output
// planes of at most 16 x 16 (the DWNet-T stages 3 and 4, where conn_pos.cuh's FFMA issue
// 160-250 instructions an output against a memory roofline of about 20), at least 8
// channels a group, NCHW-like or channels_last images:
//
//   y[n, c, oh, ow] = bias[c] + sum_{kh, kw} W[n, c / cpg, kh, kw, oh, ow] x[n, c, oh - p + kh, ow - p + kw]
//
// A warp owns an M tile of 16 output positions, two rows oh0, oh0 + 1 of 8 columns
// ow0..ow0 + 7, and walks the staged input rows s = oh0 .. oh0 + KF, each read by both
// output rows (kernel row s - oh0 of the first, s - oh0 - 1 of the second): per staged row
// and N tile of 8 channels one mma.sync m16n8k16,
//
//   D[m][n] += sum_k A[m][k] B[k][n],  A[m][k] = W[kh(m), k - j(m), P(m)] (0 outside 0..KF - 1),
//                                      B[k][n] = x[c0 + n, s - p, ow0 - p + k]
//
// (j(m) = m % 8 the position's column in the tile; k = 0..15 the staged columns
// ow0..ow0 + 15). So each position keeps, per kernel row, one 16-value row of A (its KF taps
// at j .. j + KF - 1, zeros around) and one ldmatrix.x4 gives A (the first and last staged
// rows point the missing kernel rows at 16 zero bytes); B is the staged image, channel
// planes 16 x odd bytes apart (ldmatrix.x4: 16 channels x 16 columns). Per M tile and N
// tile KF + 1 mma (16 x 8 x 16 products, KF / 16 of them taps), against 2 KF if each output
// row took its own.
//
// A block walks up to 8 batches of Q whole (n, g) groups (plan.h: iters); its shared
// memory is zeroed once, and each batch rewrites the same slots (the zeros around each
// position's taps, positions past the plane and the image's padding stay 0). Per batch: a
// table of the groups' offsets; a thread a position's KF x KF taps (16-bit loads, stored
// as words from slot j - j % 2), or two neighbouring positions' (one 4-byte load a tap,
// where the weight's strides allow); two lanes a channel's staged row (even and odd
// columns); the bias as float32. Rows of 8 positions are 288 bytes, positions 4..7
// shifted by 16, so that ldmatrix's 8 rows of a matrix fall in distinct banks; output
// rows 2, 3 mod 4 shifted by 16 more, so that a warp's word stores (4 rows x 8 pairs of
// positions) do too.
//
// Exactness: the zeros of A multiply staged inputs of other positions' windows, which is
// exact while the staged image and the weights are finite. Otherwise some sum of the M
// tile is not finite; the warp then recomputes the tile on the direct path (each lane its
// outputs' taps from the same staged values, float32, the padding's zeros multiplied like
// the reference). Sums are float32 (exact products), as docs/design.md requires. A GPU without
// mma.sync (below sm_80) always takes the direct path.
#pragma once

#include "mma.cuh"
#include "params.h"
#include "plan.h"
#include "portable.h"
#include "pos_stage.cuh"
#include "stage.cuh"

namespace lc {

// A position's kernel row as (KF + 1) / 2 words from slot j - j % 2 (`odd`: j % 2): word m
// holds taps 2m - 1, 2m (odd j) or 2m, 2m + 1, zeros past both ends. Loads and stores on
// one line (the cost model pairs nvcc's lines with the emulator's accesses).
template <class T, int KF>
LC_DEVICE void pos_mma_row(unsigned char* words, const T* src, int32_t skw, bool odd) {
  uint32_t v[KF + 2];  // taps -1 .. KF as 16-bit patterns
  // clang-format off
  v[0] = v[KF + 1] = 0u; LC_UNROLL for (int kw = 0; kw < KF; ++kw) { v[kw + 1] = bits_of<T>(src[kw * skw]); } LC_UNROLL for (int m = 0; m < (KF + 1) / 2; ++m) { LC_STORE_WORD(words + 4 * m, odd ? v[2 * m] | (v[2 * m + 1] << 16) : v[2 * m + 1] | (v[2 * m + 2] << 16)); }
  // clang-format on
}

// pos_mma_row for two neighbouring positions, columns j (even) and j + 1, from one 4-byte
// load a tap (both columns' values): j's words to `even`, j + 1's to `odd`.
template <class T, int KF>
LC_DEVICE void pos_mma_row2(unsigned char* even, unsigned char* odd, const T* src, int32_t skw) {
  uint32_t v[KF + 2];  // taps -1 .. KF: column j's in the low halves, j + 1's in the high
  // clang-format off
  v[0] = v[KF + 1] = 0u; LC_UNROLL for (int kw = 0; kw < KF; ++kw) { LC_COPY4(&v[kw + 1], src + kw * skw); } LC_UNROLL for (int m = 0; m < (KF + 1) / 2; ++m) { LC_STORE_WORD(even + 4 * m, (v[2 * m + 1] & 0xffffu) | (v[2 * m + 2] << 16)); LC_STORE_WORD(odd + 4 * m, (v[2 * m] >> 16) | (v[2 * m + 1] & 0xffff0000u)); }
  // clang-format on
}

// a block's (n, g) group q: its offsets in the weight, the image and the result, and its
// first channel (g cpg; -1 for a group past the batch)
struct PosMmaGroup {
  int64_t w, x, y, c;
};

template <class T, int KF, int TW>
struct ConnPosMma {
  using F = float;
  static constexpr int NB = 2;               // N tiles a pass (one ldmatrix.x4 of the image)
  static constexpr int SEGS = TW / 8;        // M tiles along a row pair
  static constexpr int SW = TW + 8;          // staged row stride (values)
  static constexpr int LW = TW == 16 ? 4 : 3;
  static constexpr int kMinBlocks = 2;
  static_assert(TW == 8 || TW == 16, "planes of at most 16 columns");

  // byte offset of kernel row kh's position (r, col)'s 16-value row in a group's weights
  static LC_DEVICE int32_t wrow(const ConnPosMmaPlan& t, int kh, int r, int col) {
    return ((kh * 2 * t.RT + r) * SEGS + (col >> 3)) * kPosMmaRowBytes + (col & 7) * 32 +
           ((col & 7) >> 2) * 16 + ((r >> 1) & 1) * 16;
  }

  static LC_DEVICE void run(unsigned char* smem, const ConnArgs& a, const ConnPosMmaPlan& t) {
    const Problem& p = a.p;
    const int tid = thread_index(), nthreads = block_threads();
    const int cpg = int(p.cpg), G = int(p.C / p.cpg);
    const int64_t groups = p.N * G;
    // after the groups: the table, the warps' flags (warp_all) and 16 zero bytes
    PosMmaGroup* table = reinterpret_cast<PosMmaGroup*>(smem + t.Q * t.gbytes);
    uint32_t* flags = reinterpret_cast<uint32_t*>(table + t.Q);
    // zeros everywhere once: the slots around each position's taps, positions past the
    // plane, the image's padding stay 0 over the block's batches (staging rewrites the
    // same slots each time)
    for (int e = tid; e < t.Q * (t.gbytes >> 4); e += nthreads) {
      const uint32_t z[4] = {0u, 0u, 0u, 0u};
      LC_COPY16(smem + 16 * e, z);
    }
    if (tid < kThreads / 32 + 4) flags[tid] = 0u;
    const int warp = tid >> 5, warps = nthreads >> 5;
    const int tasks = t.RT * SEGS;
    for (int it = 0; it < t.iters; ++it) {  // batches of Q groups
      const int64_t g0 = (block_index() * t.iters + it) * t.Q;
      if (g0 >= groups) break;  // the whole block
      if (tid < t.Q) {
        const int64_t gi = g0 + tid;
        const uint32_t n32 = uint32_t(gi) / uint32_t(G);  // N * G < 2^31 (plan.h)
        const int64_t n = n32, g = uint32_t(gi) - n32 * uint32_t(G);
        table[tid] = gi < groups ? PosMmaGroup{n * a.w_s.n + g * a.w_s.g,
                                               n * a.src_s.n + g * cpg * a.src_s.c,
                                               n * a.dst_s.n + g * cpg * a.dst_s.c, g * cpg}
                                 : PosMmaGroup{0, 0, 0, -1};
      }
      sync_threads();  // the zeros and the table in; the previous batch's sums done
      stage_weights(smem, a, t, table, int(p.h.out), int(p.w.out));
      stage_bias(smem, a, t, table);
      stage_image(smem, a, t, table, int(p.h.in), int(p.w.in), int(p.h.p), int(p.w.p));
      sync_threads();
      for (int task = warp; task < t.Q * tasks; task += warps) {
        const int q = pos_div(task, t.inv_tasks), mt = task - q * tasks;
        const PosMmaGroup grp = table[q];
        if (grp.c < 0) break;  // the whole warp; later tasks are past the batch too
        for (int nt0 = 0; nt0 < t.NT; nt0 += 2) tile(smem, a, t, grp, q, mt, nt0, flags);
      }
      sync_threads();  // the table and the staged values are read before the next batch's
    }
  }

  // M tile mt of group q, N tiles nt0 and nt0 + 1 (if any): sums, then stores.
  static LC_DEVICE void tile(unsigned char* smem, const ConnArgs& a, const ConnPosMmaPlan& t,
                             const PosMmaGroup& grp, int q, int mt, int nt0, uint32_t* flags) {
    const int cpg = int(a.p.cpg), lane = thread_index() & 31;
    const int gq = lane >> 2, qq = lane & 3, i = lane & 7, mat = lane >> 3;
    const int rp = mt / SEGS, seg = mt - rp * SEGS;
    const int oh0 = 2 * rp, ow0 = 8 * seg;
    unsigned char* wq = smem + q * t.gbytes;
    unsigned char* xq = wq + t.wbytes;
    F acc[NB][4];
    {  // the sums start at the bias (staged as float32, zeros past the group's channels)
      const SmemAddr bias =
          smem_addr(xq + cpg * t.CS + 4 * (8 * nt0 + 2 * qq));  // (ld.shared: the line's own)
LC_UNROLL
      for (int u = 0; u < NB; ++u) {
        LC_LOAD_SHARED_F1(acc[u][0], bias + 32 * u);
        LC_LOAD_SHARED_F1(acc[u][1], bias + 32 * u + 4);
        acc[u][2] = acc[u][0];
        acc[u][3] = acc[u][1];
      }
    }
    bool ok = kHaveMma;
    if (kHaveMma) {
      // this lane's ldmatrix rows: A, matrix mat = (output row oh0 + mat % 2, half mat / 2)
      // of position column ow0 + i; B, channel i of N tile mat / 2 of a pair, staged columns
      // ow0 + 8 (mat % 2)
      const SmemAddr zeros = smem_addr(flags + kThreads / 32);
      const SmemAddr a_row =
          smem_addr(wq + wrow(t, 0, oh0 + (mat & 1), ow0 + i) + 16 * (mat >> 1));
      const int32_t a_kh = 2 * t.RT * SEGS * kPosMmaRowBytes;  // one kernel row to the next
      const int32_t b_lane = (oh0 * SW + ow0 + 8 * (mat & 1)) * 2;
      const SmemAddr b_row =
          smem_addr(xq + min_of(8 * (nt0 + (mat >> 1)) + i, cpg - 1) * t.CS + b_lane);
      const bool two = nt0 + 1 < t.NT;  // the second N tile
LC_UNROLL
      for (int st = 0; st <= KF; ++st) {  // staged row oh0 + st
        // kernel row st of output row oh0, st - 1 of oh0 + 1 (none: zeros)
        const bool none = (mat & 1) ? st == 0 : st == KF;
        uint32_t a4[4];
        LC_LOAD_N4(a4, none ? zeros : a_row + (st - (mat & 1)) * a_kh);
        uint32_t x4[4];
        LC_LOAD_N4(x4, b_row + st * SW * 2);
        const uint32_t b0[2] = {x4[0], x4[1]}, b1[2] = {x4[2], x4[3]};
        mma_16816<T>(acc[0], a4, b0);
        if (two) mma_16816<T>(acc[1], a4, b1);
      }
      F probe = F(0);
LC_UNROLL
      for (int u = 0; u < NB; ++u)
LC_UNROLL
        for (int e = 0; e < 4; ++e) probe += acc[u][e] * F(0);  // NaN if one is not finite
      ok = warp_all(probe == F(0), flags + (thread_index() >> 5));
    }
    if (!ok) {  // an Inf or NaN staged or among the weights (or no mma.sync)
LC_UNROLL
      for (int u = 0; u < NB; ++u)
LC_UNROLL
        for (int e = 0; e < 4; ++e) {
          const int c = min_of(8 * (nt0 + u) + 2 * qq + (e & 1), cpg - 1);
          acc[u][e] = direct(a, t, wq, xq, grp.c + c, c, oh0 + (e >> 1), ow0 + gq);
        }
    }
    // lane (gq, qq)'s outputs: position (oh0 + e / 2, ow0 + gq), channel 8 (nt0 + u) + 2 qq + e % 2
    const int32_t sc = int32_t(a.dst_s.c), sh = int32_t(a.dst_s.h);
    T* y0 = static_cast<T*>(a.dst) + grp.y +
            ((8 * nt0 + 2 * qq) * sc + oh0 * sh + (ow0 + gq) * int32_t(a.dst_s.w));
    const int32_t o[4] = {0, sc, sh, sh + sc};
    const bool col_in = ow0 + gq < int(a.p.w.out), row1_in = oh0 + 1 < int(a.p.h.out);
    const int cl = cpg - 8 * nt0 - 2 * qq;  // the lane's channels left from N tile nt0
LC_UNROLL
    for (int u = 0; u < NB; ++u)
LC_UNROLL
      for (int e = 0; e < 4; ++e) {
        const T v = from_float<T>(acc[u][e]);
        if (col_in && 8 * u + (e & 1) < cl && (e < 2 || row1_in)) y0[o[e] + 8 * u * sc] = v;
      }
  }

  // Output (c, oh, ow) (channel cg of the image) from the staged weights and image, tap by
  // tap; positions past the plane read the staged zeros.
  static LC_DEVICE F direct(const ConnArgs& a, const ConnPosMmaPlan& t, const unsigned char* wq,
                            const unsigned char* xq, int64_t cg, int c, int oh, int ow) {
    F s = a.bias ? load_acc(static_cast<const T*>(a.bias) + cg * a.bias_s) : F(0);
    const T* xc = reinterpret_cast<const T*>(xq + c * t.CS);
LC_UNROLL_N(1)
    for (int kh = 0; kh < KF; ++kh) {
      const T* wr = reinterpret_cast<const T*>(wq + wrow(t, kh, oh, ow)) + (ow & 7);
LC_UNROLL_N(1)
      for (int kw = 0; kw < KF; ++kw)
        s += to_float(wr[kw]) * to_float(xc[(oh + kh) * SW + ow + kw]);
    }
    return s;
  }

  // A unit a position of the 2 RT x TW tile: its KF x KF taps from global memory into
  // slots j .. j + KF - 1 of its kernel rows (j = the column % 8), as (KF + 1) / 2 words
  // from slot j - j % 2 (a zero beside the taps where it falls in a word of them);
  // positions outside the plane and groups past the batch are left as they are.
  static LC_DEVICE void stage_weights(unsigned char* smem, const ConnArgs& a,
                                      const ConnPosMmaPlan& t, const PosMmaGroup* table, int Ho,
                                      int Wo) {
    const int TH2 = 2 * t.RT, units = t.Q * TH2 * TW;
    const int32_t skh = int32_t(a.w_s.kh), skw = int32_t(a.w_s.kw), sh = int32_t(a.w_s.h),
                  sw = int32_t(a.w_s.w);
    const int32_t a_kh = TH2 * SEGS * kPosMmaRowBytes;  // one kernel row to the next
    // a unit: one column, or two (col even) where the weight's rows load in aligned pairs
    const int pl = t.pairs ? 1 : 0;
    for (int u = thread_index(); u < units >> pl; u += block_threads()) {
      const int col = (u & ((TW >> pl) - 1)) << pl, qr = u >> (LW - pl);
      const int q = pos_div(qr, t.inv_th2), r = qr - q * TH2;
      const PosMmaGroup grp = table[q];
      if (grp.c < 0 || r >= Ho || col >= Wo) continue;
      const T* src = static_cast<const T*>(a.weight) + grp.w + (r * sh + col * sw);
      unsigned char* words = smem + q * t.gbytes + wrow(t, 0, r, col) + 4 * ((col & 7) >> 1);
      if (pl && col + 1 < Wo) {  // (the last column of an odd width alone)
LC_UNROLL
        for (int kh = 0; kh < KF; ++kh)
          pos_mma_row2<T, KF>(words + kh * a_kh, words + kh * a_kh + 32, src + kh * skh, skw);
      } else {
LC_UNROLL
        for (int kh = 0; kh < KF; ++kh)
          pos_mma_row<T, KF>(words + kh * a_kh, src + kh * skh, skw, col & 1);
      }
    }
  }

  // The group's bias as float32 (8 NT values, zeros past its channels or without a bias)
  static LC_DEVICE void stage_bias(unsigned char* smem, const ConnArgs& a,
                                   const ConnPosMmaPlan& t, const PosMmaGroup* table) {
    const int cpg = int(a.p.cpg), per_q = 8 * t.NT;
    for (int u = thread_index(); u < t.Q * per_q; u += block_threads()) {
      const int q = pos_div(u, t.inv_bias), c = u - q * per_q;
      const PosMmaGroup grp = table[q];
      float b = 0.0f;
      if (a.bias && grp.c >= 0 && c < cpg)
        b = to_float(static_cast<const T*>(a.bias)[(grp.c + c) * a.bias_s]);
      reinterpret_cast<float*>(smem + q * t.gbytes + t.wbytes + cpg * t.CS)[c] = b;
    }
  }

  // Two units (neighbouring lanes) a channel's staged row, the even and the odd columns
  // (the two halves of each word: one bank conflict fewer): staged row r, column s hold
  // x[r - ph, s - pw]; the padding keeps its zeros.
  static LC_DEVICE void stage_image(unsigned char* smem, const ConnArgs& a,
                                    const ConnPosMmaPlan& t, const PosMmaGroup* table, int H,
                                    int W, int ph, int pw) {
    const int cpg = int(a.p.cpg), units = 2 * t.Q * cpg * t.IH;
    const int32_t sc = int32_t(a.src_s.c), sh = int32_t(a.src_s.h), sw = int32_t(a.src_s.w);
    for (int u = thread_index(); u < units; u += block_threads()) {
      const int half = u & 1, row = u >> 1;
      const int qc = pos_div(row, t.inv_ih), r = row - qc * t.IH;
      const int q = pos_div(qc, t.inv_cpg), c = qc - q * cpg;
      const PosMmaGroup grp = table[q];
      const int ih = r - ph;
      if (grp.c < 0 || ih < 0 || ih >= H) continue;
      const T* src = static_cast<const T*>(a.src) + grp.x + (c * sc + ih * sh + half * sw);
      T* vals = reinterpret_cast<T*>(smem + q * t.gbytes + t.wbytes + c * t.CS + r * SW * 2) +
                pw + half;
      const int nv = (W - half + 1) >> 1;  // this lane's columns half, half + 2, ..
      const int32_t step = 2 * sw;
      for (int v = 0; v < nv; ++v) vals[2 * v] = src[v * step];  // W <= SW - pw (plan.h)
    }
  }
};

}  // namespace lc
