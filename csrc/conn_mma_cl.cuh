// conn2d (and the flipped conn2d_transpose) on tensor cores for channels_last input:
// half and bfloat16, a KF x KF kernel (3, 5, 7, 13, 31), stride 1, dilation 1, a weight shared
// across positions (depth-wise, static or dynamic). The sums are conn_mma.cuh's (each
// warp one channel, the same staged tile, Toeplitz blocks, direct path); what differs
// is how the tile gets into shared memory and how the outputs leave it.
//
// Input and result channels_last with every pixel's channels c0..c0 + 7 one aligned
// 16-byte chunk (C % 8 == 0; plan.h's pixels_aligned; other layouts run the strips).
// A block owns kConnMmaClWarps = 8 consecutive channels c0.. of one image and walks
// their planes' tiles together. Staging: each thread takes two neighbouring pixels of
// the tile (two 16-byte loads) and writes one 32-bit word per channel (the two pixels'
// values) into that channel's warp tile (conn_mma.cuh's layout, so ldmatrix reads it
// as before). Output: each warp writes its C fragments as (column pair, channel) words
// into a shared tile, the words of a slot permuted by its column pair (out_word: no
// bank conflicts on either side); then each thread reads one column pair's 8 channels
// (two 16-byte loads, words put back in order with selects) and stores two pixels (16
// bytes each), for each 16-row M tile of the warp tile (13 x 13: two, 72 KB a block by
// opt-in). Three block barriers per tile. 31 x 31 (leads of at most 2): the output tile
// holds one M tile of the two at a time (a fourth barrier; 110 KB a block, which plan.h
// plans only where the device allows it: sm_90, two blocks an SM; else the planes).
#pragma once

#include "conn_mma.cuh"
#include "mma.cuh"
#include "params.h"
#include "plan.h"
#include "portable.h"

namespace lc {

// ConnMmaCl::stage's lanes (row lane & 7, column pair lane >> 3 of a unit) write words in
// distinct banks, for rows `row_words` apart
constexpr bool cl_stage_banks_distinct(int row_words) {
  uint32_t seen = 0;
  for (int lane = 0; lane < 32; ++lane) {
    const int bank = ((lane & 7) * row_words + (lane >> 3)) % 32;
    if ((seen >> bank) & 1u) return false;
    seen |= 1u << bank;
  }
  return true;
}

template <class T, int KF, bool FLIP, int LMAX = 7>
struct ConnMmaCl {
  using Core = ConnMma<T, KF, FLIP, LMAX>;  // (13: the small-lead instance's, as planned)
  using F = float;
  static constexpr int CW = kConnMmaClWarps;   // channels (warps) per block
  static constexpr int TR = Core::TR, TC = Core::TC, IR = Core::IR, SW = Core::SW;
  static constexpr int NCP = Core::NC * 8;     // staged column pairs per row
  static constexpr int OS = kConnMmaClOutStride;  // output tile row stride (words)
  static constexpr int64_t kWarpBytes = Core::kWarpBytes;
  static constexpr int MT = Core::MT;          // 16-row M tiles a warp tile
  static constexpr int OM = conn_mma_cl_out_mtiles(KF);  // M tiles the output tile holds
  static_assert(16 * TC / 2 == kThreads, "a thread per output column pair of an M tile");
  static_assert(CW == 8 && OS == TC / 2 * CW + 4, "plan.h's output tile");
  static_assert(NCP % 4 == 0 && cl_stage_banks_distinct(SW / 2), "stage: distinct banks");
  static_assert(SW == 2 * NCP + 8, "stage: a row's 4 padding pairs (its idle lanes' zeros)");
  static constexpr int kMinBlocks = 2;

  static LC_DEVICE void run(unsigned char* smem, const ConnArgs& a, const ConnMmaPlan& t) {
    const Problem& p = a.p;
    const int tid = thread_index(), warp = tid >> 5, lane = tid & 31;
    // channels c0.. of samples n0 .. n0 + S - 1 (S = t.samples > 1 only for a filter the
    // samples share: its setup is made once for all of them)
    const int64_t groups = p.C / CW;  // (plan.h: C % 8 == 0)
    const int64_t S = t.samples;
    const int64_t n0 = block_index() / groups * S, c0 = block_index() % groups * CW;
    unsigned char* mine = smem + warp * kWarpBytes;
    volatile uint32_t* flag = reinterpret_cast<uint32_t*>(mine);
    T* tile = reinterpret_cast<T*>(mine + 16);
    uint32_t* pairs = reinterpret_cast<uint32_t*>(tile + IR * SW);
    uint32_t* out = reinterpret_cast<uint32_t*>(smem + CW * kWarpBytes);  // 16 OM x OS words
    const int32_t pw = int32_t(p.w.p), ph = int32_t(p.h.p);
    const int lead = Core::lead_of(pw);
    const int g = lane >> 2, q = lane & 3;

    int boff[Core::ND + 1];
    typename Core::BRegs bpre;
    const F b0 = Core::setup(a, n0, c0 + warp, flag, pairs, lead, lane, boff, bpre);
    const int32_t H = int32_t(p.h.in), W = int32_t(p.w.in);
    const int32_t Ho = int32_t(p.h.out), Wo = int32_t(p.w.out);
    const int64_t n1 = min_of(n0 + S, p.N);
    for (int64_t n = n0; n < n1; ++n) {
      const T* x = opaque(static_cast<const T*>(a.src) + n * a.src_s.n + c0 * a.src_s.c);
      T* y = opaque(static_cast<T*>(a.dst) + n * a.dst_s.n + c0 * a.dst_s.c);
      for (int64_t tt = 0; tt < t.row_tiles * t.col_tiles; ++tt) {
        const int32_t oh0 = int32_t(tt / t.col_tiles) * TR, ow0 = int32_t(tt % t.col_tiles) * TC;
        const int32_t ih0 = oh0 - ph, iw0 = ow0 - pw - lead;  // staged (0, 0)
        sync_threads();  // the previous tile's reads of the staged tiles and outputs are done
        stage(smem, x, a.src_s, H, W, ih0, iw0, tid);
        sync_threads();
        F acc[MT][Core::NT][4];
        const bool fine = Core::sums(tile, bpre, pairs, boff, b0, flag, acc);
LC_UNROLL
        for (int m0 = 0; m0 < MT; m0 += OM) {  // the output tile holds OM M tiles
          if (m0 > 0) sync_threads();  // the previous M tiles' outputs are read
          if (fine) {
            // word (row 16 m + g + 8h, column pair 4 n8 + q, channel warp) (out_word)
LC_UNROLL
            for (int m = 0; m < OM; ++m)
LC_UNROLL
              for (int n8 = 0; n8 < Core::NT; ++n8)
LC_UNROLL
                for (int h = 0; h < 2; ++h)
                  out[out_word(16 * m + g + 8 * h, 4 * n8 + q, warp)] =
                      pack2(from_float<T>(acc[m0 + m][n8][2 * h]),
                            from_float<T>(acc[m0 + m][n8][2 * h + 1]));
          } else {  // (rows 16 m0.. of the warp tile; none where the plane ends before them)
            const int32_t rows = min_of(Ho - oh0 - 16 * m0, int32_t(16 * OM));
            const int32_t cols = min_of(Wo - ow0, int32_t(TC));
            T* out16 = reinterpret_cast<T*>(out);
            Core::direct(tile + 16 * m0 * SW, lead, pairs, b0, ih0 + 16 * m0, iw0 + lead,
                         rows, cols, H, W, lane,
                         [&](int32_t r, int32_t o, T v) {
                           out16[2 * out_word(r, o >> 1, warp) + (o & 1)] = v;
                         });
          }
          sync_threads();
LC_UNROLL
          for (int m = 0; m < OM; ++m)
            store(out, y, a.dst_s, Ho, Wo, oh0 + 16 * m0, ow0, 16 * m, tid);
        }
      }
    }
  }

  // The output tile's word (row r, column pair cp, channel k): the slot of (r, cp) holds
  // its 8 channels, channel k in word k ^ (cp % 8). With rows OS = 4 (mod 32) words apart,
  // a warp's 32 words of a fragment (rows g, pairs q) fall in distinct banks, and so do
  // the 16-byte reads of `store` (eight lanes: 8 consecutive slots of a row, the half of
  // each that holds its channels 0..3, or 4..7).
  static LC_DEVICE int out_word(int r, int cp, int k) { return r * OS + cp * CW + (k ^ (cp & 7)); }

  // Input rows ih0.. (IR) and columns iw0.. (16 NC) of channels c0.. (x) into every
  // warp's tile, zeros outside the image: a thread per column pair and row (two 16-byte
  // loads, 8 channels each), one 32-bit word (the pair) per channel. A warp takes 8 rows
  // x 4 column pairs at a time, lane = row + 8 x pair: its 32 words of a channel fall in
  // distinct banks (rows SW / 2 words apart: 28, 36 for 13 x 13; cl_stage_banks_distinct).

  static LC_DEVICE void stage(unsigned char* smem, const T* x, const Image& s, int32_t H, int32_t W,
                              int32_t ih0, int32_t iw0, int tid) {
    constexpr int QD = NCP / 4, UNITS = (IR + 7) / 8 * QD;  // warp units: 8 rows x 4 pairs
    constexpr int WARPS = kThreads / 32, UPW = (UNITS + WARPS - 1) / WARPS;  // units per warp
    // units whose loads are in flight together (registers: 8 a unit), a divisor of UPW
    // where one is at hand (7 x 7: 3 of 3; 13 x 13: 3 of 6; 31 x 31: 2 of 10)
    constexpr int GU = UPW <= 3 ? UPW : UPW % 3 == 0 ? 3 : UPW % 2 == 0 ? 2 : 3;
    const int32_t sh = int32_t(s.h), sw = int32_t(s.w);
    const int warp = tid >> 5, lane = tid & 31;
    const int32_t t0 = ih0 * sh + iw0 * sw;  // staged (0, 0) (32-bit: plan.h's plane_fits_32)
LC_UNROLL
    for (int k0 = 0; k0 < UPW; k0 += GU) {
      // GU units' loads first, then their stores, with no branch between (units past the
      // last and rows past the tile store zeros into the rows' padding columns, past the
      // 16 NC that ldmatrix reads, without loading): a warp's 6 loads of 16 bytes a lane in
      // flight together (branches that skipped them let each unit be stored before the
      // next one's loads: ~0.9 KB a warp, model)
      uint32_t v[GU][2][4];
      int32_t slot[GU];
LC_UNROLL
      for (int u = 0; u < GU; ++u) {
        const int wu = warp + WARPS * (k0 + u);
        int r = wu / QD * 8 + (lane & 7), cp = wu % QD * 4 + (lane >> 3);
        const bool real = k0 + u < UPW && wu < UNITS && r < IR;
        if (!real) r = lane & 7, cp = NCP + (lane >> 3);  // (the padding: SW = 16 NC + 8)
        const uint32_t ih = uint32_t(ih0 + r), iw = uint32_t(iw0 + 2 * cp);  // < 0: huge
        const bool row_in = real && ih < uint32_t(H);
        const bool in0 = row_in && iw < uint32_t(W), in1 = row_in && iw + 1 < uint32_t(W);
        // (r sh + 2 cp sw: the same for every tile, hoisted)
        const T* src = x + (t0 + (r * sh + 2 * cp * sw));  // formed for every unit, read inside only
        load_pixel_pair(src, sw * int32_t(sizeof(T)), in0, in1, v[u][0], v[u][1]);
        slot[u] = 16 + (r * SW + 2 * cp) * 2;
      }
LC_UNROLL
      for (int u = 0; u < GU; ++u)  // (warp 0's tile, ...)
        store_pixel_pair<CW>(v[u][0], v[u][1], smem + slot[u], kWarpBytes);
    }
  }

  // w[j] = w[j ^ t] (t = 0..3): two rounds of selects
  static LC_DEVICE void unswizzle(uint32_t (&w)[4], int t) {
    const bool x1 = t & 1, x2 = t & 2;
    const uint32_t a0 = x1 ? w[1] : w[0], a1 = x1 ? w[0] : w[1];
    const uint32_t a2 = x1 ? w[3] : w[2], a3 = x1 ? w[2] : w[3];
    w[0] = x2 ? a2 : a0, w[1] = x2 ? a3 : a1, w[2] = x2 ? a0 : a2, w[3] = x2 ? a1 : a3;
  }

  // The output tile's column pair tid % 16 of row r0 + tid / 16, channels c0.. (y): 16
  // bytes a pixel.
  static LC_DEVICE void store(const uint32_t* out, T* y, const Image& s, int32_t Ho, int32_t Wo,
                              int32_t oh0, int32_t ow0, int r0, int tid) {
    const int r = r0 + tid / (TC / 2), cp = tid % (TC / 2);
    const int32_t oh = oh0 + r, ow = ow0 + 2 * cp;
    if (oh >= Ho || ow >= Wo) return;
    const int key = cp & 7;  // channel k is word k ^ key of the slot (out_word)
    uint32_t lo[4], hi[4];  // channels 0..3, 4..7, word j: channel j ^ (key & 3)
    LC_LOAD_WORDS(lo, out + r * OS + cp * CW + (key & 4));
    LC_LOAD_WORDS(hi, out + r * OS + cp * CW + 4 - (key & 4));
    unswizzle(lo, key & 3);
    unswizzle(hi, key & 3);
    uint32_t e[4], o[4];  // the two pixels' channel pairs
LC_UNROLL
    for (int j = 0; j < 4; ++j) {
      const uint32_t w0 = j < 2 ? lo[2 * j] : hi[2 * j - 4], w1 = j < 2 ? lo[2 * j + 1] : hi[2 * j - 3];
      e[j] = low_halves(w0, w1);
      o[j] = high_halves(w0, w1);
    }
    const int32_t sw = int32_t(s.w);
    T* at = y + oh * int32_t(s.h) + ow * sw;
    LC_STORE_WORDS_GLOBAL(at, e);
    if (ow + 1 < Wo) LC_STORE_WORDS_GLOBAL(at + sw, o);
  }
};

}  // namespace lc
