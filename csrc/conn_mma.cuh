// conn2d (and the flipped conn2d_transpose) on tensor cores, for half and bfloat16
// NCHW-like planes: a KF x KF kernel (3, 5, 7, 13, 31), stride 1, dilation 1, a
// weight shared across positions (depth-wise, static or dynamic).
//
// Kernel row i of the window is a 1-D convolution along the columns, i.e. a
// product with a Toeplitz matrix: for 16 output rows and 8 output columns,
//   Y[r][o] += sum_k X[r + i][k] * T_i[k][o],  T_i[k][o] = w[i][k - o + p] (0 outside 0..KF)
// over the input columns k, which is mma.sync m16n8k16 (mma.cuh) with A = 16 staged
// input rows x 16 columns and B = a 16 x 8 block of T_i. The staged columns are cut
// into aligned chunks of 16; chunk kc and output tile t (8 columns) meet in the block
// T_i(d) with d = 2 kc - t, which depends on d alone (the lead of the chunks is the
// same for every tile): the B fragments are built once per (i, d) from the filter
// (registers for KF <= 7, from a shared-memory copy of the filter per kernel row
// for 13 and 31) and every chunk's A (ldmatrix.x4) feeds the NT tiles it reaches.
// Which chunks a tile's taps reach depends on the lead: LMAX = 7 covers every lead; the
// instances for 13 and 31 with LMAX = plan.h's conn_mma_lead_max (the centred windows'
// leads, 2 and 1) skip the blocks only larger leads fill and stage a chunk fewer (31:
// 12 mma a kernel row and M tile, not 14; model, float16 64x384x32x32: 168-278 -> 143-179
// us with the plan's blocks of 2 warps). plan.h picks them only for leads <= LMAX.
// Sums are float32 (exact products), as docs/design.md requires.
//
// A warp owns one plane (n, c) and walks its tiles of TR = 16 MT rows x TC = 8 NT
// columns; per tile it stages TR + KF - 1 input rows x 16 NC columns in its own
// shared memory (16-, 8- or 4-byte asynchronous copies, cp.async, where the rows allow:
// all of a tile's copies in flight at once; zeros outside the image), row
// stride SW = 16 NC + 8 values (an odd number of 16-byte units: ldmatrix's eight
// rows fall in distinct banks). Warps never wait for each other (sync_warp only).
//
// Exactness: the Toeplitz zeros multiply every staged value of a chunk, and the
// transpose must add exactly 0 for taps outside g, which holds while the staged tile,
// the filter and the bias are finite. Otherwise some sum of the tile is not finite
// (0 * Inf is NaN, and every staged value and tap meets some sum): the warp checks its
// sums (sum of acc * 0), and a tile with any Inf or NaN among them is recomputed on
// the direct path (each lane sums its outputs' taps from the same staged tile, FFMA,
// with the reference's masking). A GPU without mma.sync (below sm_80) always takes it.
#pragma once

#include "mma.cuh"
#include "params.h"
#include "plan.h"
#include "portable.h"

namespace lc {

template <class T, int KF, bool FLIP, int LMAX = 7, int NTT = kConnMmaNTiles>
struct ConnMma {
  static constexpr int MT = conn_mma_mtiles(KF);  // 16-row M tiles per warp tile
  static constexpr int NT = NTT;                  // 8-column N tiles per warp tile
  static constexpr int TR = 16 * MT, TC = 8 * NT;
  static constexpr int IR = TR + KF - 1;          // staged rows
  static constexpr int NC = conn_mma_chunks(KF, LMAX, NT);  // staged chunks of 16 columns
  static constexpr int SW = 16 * NC + 8;          // staged row stride (values)
  // Chunk kc and N tile n8 meet where the chunk holds some of the tile's taps (staged
  // columns 8 n8 + lead .. 8 n8 + lead + KF + 6) for some lead 0..LMAX (plan.h
  // conn_mma_lead_max: the instances for small leads skip the others)
  static LC_HD constexpr bool meet(int kc, int n8) {
    return 16 * kc <= 8 * n8 + LMAX + KF + 6 && 16 * kc + 15 >= 8 * n8;
  }
  static constexpr int last_block() {
    int d = 0;
    for (int kc = 0; kc < NC; ++kc)
      for (int n8 = 0; n8 < NT; ++n8)
        if (meet(kc, n8) && 2 * kc - n8 > d) d = 2 * kc - n8;
    return d;
  }
  // B blocks T_i(d), d = 2 kc - n8 from D0 (chunk 0 meets tiles 0 and 1)
  static constexpr int D0 = -1, ND = last_block() - D0 + 1;
  static constexpr int64_t kWarpBytes = conn_mma_warp_bytes(KF, LMAX, NT);  // plan.h's, per warp
  static_assert(kWarpBytes >= 16 + IR * SW * 2 + KF * (KF + 2) * 4, "shared memory per warp");
  using F = float;
  // at most 128 registers (two blocks of 256 threads): left to itself ptxas held the 3x3
  // transpose to 64 and spilled
  static constexpr int kMinBlocks = 2;

  // KF <= 7: every row's B registers stay in registers for the whole plane (35 for 7x7;
  // the block's occupancy is bound by 128 registers either way); 13, 31: row by row
  static constexpr bool kBInRegisters = KF <= 7;
  using BRegs = uint32_t[kBInRegisters ? KF : 1][ND + 1];

  static LC_DEVICE void run(unsigned char* smem, const ConnArgs& a, const ConnMmaPlan& t) {
    const Problem& p = a.p;
    const int warp = thread_index() >> 5, lane = thread_index() & 31;
    // the warp's task: channel c of samples n0 .. n0 + S - 1 (S = t.samples > 1 only for
    // a filter shared by the samples: its setup is then made once for all of them)
    const int64_t task = block_index() * (block_threads() >> 5) + warp;
    const int64_t S = t.samples;
    if (task >= (p.N + S - 1) / S * p.C) return;  // the whole warp
    const int64_t n0 = task / p.C * S, c = task % p.C;
    unsigned char* mine = smem + warp * kWarpBytes;
    volatile uint32_t* flag = reinterpret_cast<uint32_t*>(mine);  // a tile's sums not finite
    T* tile = reinterpret_cast<T*>(mine + 16);
    uint32_t* pairs = reinterpret_cast<uint32_t*>(tile + IR * SW);  // KF x (KF + 2)
    const int32_t pw = int32_t(p.w.p), ph = int32_t(p.h.p);
    const int lead = lead_of(pw);
    const int g = lane >> 2, q = lane & 3;

    int boff[ND + 1];
    BRegs bpre;
    const F b0 = setup(a, n0, c, flag, pairs, lead, lane, boff, bpre);
    const int32_t H = int32_t(p.h.in), W = int32_t(p.w.in), sh = int32_t(a.src_s.h);
    const int32_t Ho = int32_t(p.h.out), Wo = int32_t(p.w.out), dh = int32_t(a.dst_s.h);
    const int64_t n1 = min_of(n0 + S, p.N);
    for (int64_t n = n0; n < n1; ++n) {
      const T* x = static_cast<const T*>(a.src) + n * a.src_s.n + c * a.src_s.c;
      T* y = static_cast<T*>(a.dst) + n * a.dst_s.n + c * a.dst_s.c;
      // output pairs (even columns) are 4-byte aligned: stored as one 32-bit word
      const bool pair_ok = (reinterpret_cast<uintptr_t>(y) & 3) == 0 && (dh & 1) == 0;
      for (int64_t tt = 0; tt < t.row_tiles * t.col_tiles; ++tt) {
        const int32_t oh0 = int32_t(tt / t.col_tiles) * TR, ow0 = int32_t(tt % t.col_tiles) * TC;
        const int32_t ih0 = oh0 - ph, iw0 = ow0 - pw - lead;  // staged (0, 0)
        sync_warp();  // the previous tile's reads of the staged tile (and of pairs) are done
        stage(tile, x, sh, H, W, ih0, iw0, t.piece, lane);
        LC_COPY_WAIT();  // (stage's asynchronous copies)
        sync_warp();
        const int32_t rows = min_of(Ho - oh0, int32_t(TR)), cols = min_of(Wo - ow0, int32_t(TC));
        F acc[MT][NT][4];
        if (sums(tile, bpre, pairs, boff, b0, flag, acc)) {
          const bool whole = rows == TR && cols == TC && pair_ok;  // no per-value checks
LC_UNROLL
          for (int m = 0; m < MT; ++m)
LC_UNROLL
            for (int n8 = 0; n8 < NT; ++n8)
LC_UNROLL
              for (int h = 0; h < 2; ++h) {
                const int32_t r = 16 * m + g + 8 * h, col = 8 * n8 + 2 * q;
                T* at = y + (oh0 + r) * dh + ow0 + col;
                const T v0 = from_float<T>(acc[m][n8][2 * h]);
                const T v1 = from_float<T>(acc[m][n8][2 * h + 1]);
                if (whole || (r < rows && col + 1 < cols && pair_ok)) {
                  LC_STORE_PAIR(at, v0, v1);
                } else if (r < rows && col < cols) {
                  at[0] = v0;
                  if (col + 1 < cols) at[1] = v1;
                }
              }
        } else {
          direct(tile, lead, pairs, b0, ih0, iw0 + lead, rows, cols, H, W, lane,
                 [&](int32_t r, int32_t o, T v) { y[(oh0 + r) * dh + ow0 + o] = v; });
        }
      }
    }
  }

  // the chunks start `lead` columns before the first output's first tap (tiles start on
  // multiples of TC, so the lead is the same for all): aligned chunks
  static LC_DEVICE int lead_of(int32_t pw) { return conn_mma_lead(pw); }  // (plan.h)

  // The warp's filter for plane (n, c), all lanes: `pairs` (its shared copy), this lane's
  // B offsets `boff` and (KF <= 7) registers `bpre`; returns the bias. `flag` reset.
  static LC_DEVICE F setup(const ConnArgs& a, int64_t n, int64_t c, volatile uint32_t* flag,
                           uint32_t* pairs, int lead, int lane, int (&boff)[ND + 1], BRegs& bpre) {
    const T* wp = static_cast<const T*>(a.weight) + n * a.w_s.n + (c / a.p.cpg) * a.w_s.g;
    const int32_t skh = int32_t(a.w_s.kh), skw = int32_t(a.w_s.kw);
    const int g = lane >> 2, q = lane & 3;
    if (lane == 0) flag[0] = 0;
    filter_pairs<T, KF, FLIP>(wp, skh, skw, pairs, lane);
    // this lane's B registers of kernel row i are pairs[i][boff[k]], k = 0..ND: register h
    // of T_i(d) is pair k = d - D0 + h, starting at column j = 8 (d + h) + 2q - g - lead
LC_UNROLL
    for (int k = 0; k <= ND; ++k) {
      const int j = 8 * (D0 + k) + 2 * q - g - lead;
      boff[k] = pair_slot<KF>(j + 1);
    }
    sync_warp();  // the pairs are in
    if constexpr (kBInRegisters) {
LC_UNROLL
      for (int i = 0; i < KF; ++i)
LC_UNROLL
        for (int k = 0; k <= ND; ++k) bpre[i][k] = pairs[i * (KF + 2) + boff[k]];
    }
    return a.bias ? load_acc(static_cast<const T*>(a.bias) + c * a.bias_s) : F(0);
  }

  // The sums of a staged tile (acc, b0 first) on tensor cores; false on every lane if any
  // is not finite (or without mma.sync): the warp then takes the direct path.
  static LC_DEVICE bool sums(const T* tile, const BRegs& bpre, const uint32_t* pairs,
                             const int (&boff)[ND + 1], F b0, volatile uint32_t* flag,
                             F (&acc)[MT][NT][4]) {
    if (!kHaveMma) return false;
LC_UNROLL
    for (int m = 0; m < MT; ++m)
LC_UNROLL
      for (int n8 = 0; n8 < NT; ++n8)
LC_UNROLL
        for (int e = 0; e < 4; ++e) acc[m][n8][e] = b0;
    // every chunk, M tile and N tile, also past a partial tile's edge: the products
    // there are exact zeros or outputs nobody stores (no branch per mma)
    // (13, 31: one kernel row at a time, or ptxas hoists every row's loads and spills)
LC_UNROLL_N(KF <= 7 ? KF : 1)
    for (int i = 0; i < KF; ++i) {
      uint32_t breg[ND + 1];  // T_i(d) = {breg[d], breg[d + 1]}
LC_UNROLL
      for (int k = 0; k <= ND; ++k)
        breg[k] = kBInRegisters ? bpre[kBInRegisters ? i : 0][k] : pairs[i * (KF + 2) + boff[k]];
LC_UNROLL
      for (int m = 0; m < MT; ++m) {
LC_UNROLL
        for (int kc = 0; kc < NC; ++kc) {
          uint32_t afr[4];
          load_a(tile + (16 * m + i) * SW + 16 * kc, SW, afr);
LC_UNROLL
          for (int n8 = 0; n8 < NT; ++n8) {
            const int d = 2 * kc - n8 - D0;
            if (!meet(kc, n8)) continue;  // compile-time
            const uint32_t b[2] = {breg[d], breg[d + 1]};  // (ptxas: a move, pairs overlap)
            mma_16816<T>(acc[m][n8], afr, b);
          }
        }
      }
    }
    // any sum not finite (an Inf or NaN staged, in the filter or the bias, or an
    // overflow): the whole warp recomputes the tile on the direct path
    F probe = F(0);
LC_UNROLL
    for (int m = 0; m < MT; ++m)
LC_UNROLL
      for (int n8 = 0; n8 < NT; ++n8)
LC_UNROLL
        for (int e = 0; e < 4; ++e) probe += acc[m][n8][e] * F(0);  // NaN if one is not
    return warp_all(probe == F(0), flag);
  }

  // Stage input rows ih0.. (IR) and columns iw0.. (16 NC) of plane x into the tile, zeros
  // outside the image: in 16-byte chunks (rows aligned to them) or pieces of 4 or 2
  // values (8-, 4-byte loads, plan.h mma_piece), value by value where rows are not
  // aligned or where the row's end cuts through a chunk or piece. (Two loops, each on
  // its own source lines: with the narrow pieces' branches in the 16-byte loop ptxas
  // predicated them there, model: 56 x 56 25-31 -> 27-34 us; template instances of one
  // loop would share lines, which the cost model cannot tell apart.)
  static LC_DEVICE void stage(T* tile, const T* x, int32_t sh, int32_t H, int32_t W,
                             int32_t ih0, int32_t iw0, int32_t piece, int lane) {
    // 8 lanes per chunk column, a lane per row of 8: a phase of a 16-byte store (8 lanes)
    // writes one chunk of 8 consecutive rows, in 8 distinct bank groups (the row stride
    // is an odd number of 16-byte units), as ldmatrix reads them
    constexpr int CH = 2 * NC;  // chunks per staged row
    const int rl = lane & 7;
    if (piece == 4 || piece == 2) {
      stage_pieces(tile, x, sh, H, W, ih0, iw0, piece, lane);
      return;
    }
LC_UNROLL
    for (int c0 = 0; c0 < CH; c0 += 4) {
      const int ch = c0 + (lane >> 3);
      if (ch >= CH) break;
      const int32_t iw = iw0 + 8 * ch;
      const bool col_in = iw + 8 > 0 && iw < W;                   // some of the chunk is inside
      const bool col_vec = piece == 8 && iw >= 0 && iw + 8 <= W;  // all of it, aligned
      const T* src = x + (ih0 + rl) * sh + iw;  // formed for every row, read inside only
      T* out = tile + rl * SW + 8 * ch;
LC_UNROLL
      for (int r = rl; r < IR; r += 8, src += 8 * sh, out += 8 * SW) {
        const int32_t ih = ih0 + r;
        const bool row_in = col_in && ih >= 0 && ih < H;
        if (row_in && col_vec) {
          LC_COPY_WORDS_ASYNC(out, src);  // (no register: the tile's copies in flight at once)
        } else if (row_in) {
          uint32_t v4[4];
          gather8(src - iw, iw, W, true, v4);
          LC_STORE_WORDS(out, v4);
        } else {  // (zeros: a path of their own, without gather8's predicated loads to wait on)
          const uint32_t zero[4] = {0, 0, 0, 0};
          LC_STORE_WORDS(out, zero);
        }
      }
    }
  }

  // stage()'s loop for rows aligned to pieces of 4 or 2 values
  static LC_DEVICE void stage_pieces(T* tile, const T* x, int32_t sh, int32_t H, int32_t W,
                                     int32_t ih0, int32_t iw0, int32_t piece, int lane) {
    constexpr int CH = 2 * NC;
    const int rl = lane & 7;
LC_UNROLL
    for (int c0 = 0; c0 < CH; c0 += 4) {
      const int ch = c0 + (lane >> 3);
      if (ch >= CH) break;
      const int32_t iw = iw0 + 8 * ch;  // a multiple of 8: pieces start aligned
      const bool col_in = iw + 8 > 0 && iw < W;
      // this chunk's loads: `piece` values, or one where the row's end cuts a piece
      const int32_t pc = iw + 8 <= W || (W & (piece - 1)) == 0 ? piece : 1;  // (powers of 2)
      const T* src = x + (ih0 + rl) * sh + iw;
      T* out = tile + rl * SW + 8 * ch;
LC_UNROLL
      for (int r = rl; r < IR; r += 8, src += 8 * sh, out += 8 * SW) {
        const int32_t ih = ih0 + r;
        const bool row_in = col_in && ih >= 0 && ih < H;
        if (row_in && pc == 4) {  // (a piece that starts inside ends inside; copies, zeros)
          const uint32_t zero[2] = {0, 0};
LC_UNROLL
          for (int h = 0; h < 2; ++h)
            if (iw + 4 * h >= 0 && iw + 4 * h < W)
              LC_COPY_WORDS2_ASYNC(out + 4 * h, src + 4 * h);
            else
              LC_STORE_WORDS2(out + 4 * h, zero);
          continue;
        }
        if (row_in && pc == 2) {
LC_UNROLL
          for (int h = 0; h < 4; ++h)
            if (iw + 2 * h >= 0 && iw + 2 * h < W)
              LC_COPY_WORD_ASYNC(out + 2 * h, src + 2 * h);
            else
              LC_STORE_WORD(out + 2 * h, 0u);
          continue;
        }
        uint32_t v4[4] = {0, 0, 0, 0};
        if (row_in) {  // value by value (else zeros)
          T v[8];
LC_UNROLL
          for (int j = 0; j < 8; ++j)
            v[j] = (iw + j >= 0 && iw + j < W) ? src[j] : from_float<T>(0.0f);
LC_UNROLL
          for (int j = 0; j < 4; ++j) v4[j] = pack2(v[2 * j], v[2 * j + 1]);
        }
        LC_STORE_WORDS(out, v4);
      }
    }
  }

  // The tile's outputs tap by tap from the staged values (float32 sums), for a tile or
  // filter that is not finite: the transpose skips taps outside g, the forward pass
  // multiplies the padding's zeros like the reference. (ih0, iw0): the input position
  // of output (oh0, ow0)'s first tap, staged at row 0, column `lead`; put(r, o, v)
  // stores output (oh0 + r, ow0 + o).
  template <class Put>
  static LC_DEVICE void direct(const T* tile, int lead, const uint32_t* pairs, F b0, int32_t ih0,
                               int32_t iw0, int32_t rows, int32_t cols, int32_t H, int32_t W,
                               int lane, const Put& put) {
    for (int e = lane; e < rows * cols; e += 32) {
      const int32_t r = e / cols, o = e % cols;
      F s = b0;
      for (int i = 0; i < KF; ++i) {
        const int32_t ih = ih0 + r + i;
        if (FLIP && (ih < 0 || ih >= H)) continue;
        for (int j = 0; j < KF; ++j) {
          const int32_t iw = iw0 + o + j;
          if (FLIP && (iw < 0 || iw >= W)) continue;
          const T wv = of_bits<T>(uint16_t(pairs[i * (KF + 2) + j + 1]));  // the pair's low value
          s += to_float(wv) * to_float(tile[(r + i) * SW + lead + o + j]);
        }
      }
      put(r, o, from_float<T>(s));
    }
  }
};

}  // namespace lc
