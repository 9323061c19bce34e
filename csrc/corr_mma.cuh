// The depth-wise weight gradient (corr2d with a per-channel result shared across
// positions, static or dynamic) on tensor cores, for half and bfloat16 NCHW-like
// planes: a KF x KF window (3, 5, 7; plan.h sends 13 and 31 to corr_taps_mma.cuh, which
// takes the taps as M: 2.5-4.6x faster there, model; the blocks of 16 X columns and the
// groups of kernel rows below are what those sizes ran here), stride 1, dilation 1, any
// padding:
//
//   dW[i][j] = sum_{n, y, x} G[n, c, y, x] * X[n, c, y + i - ph, x + j - pw]
//
// (G = a, the output gradient; X = b, the input, zero outside the image).
//
// For kernel row i and 16 rows y of G, the 16 x 8 product over the rows
//   P_i[m][n] = sum_y X[y + i - ph][x0 - pw + m] * G[y][x0 + n]      (m < 16, n < 8)
// is one mma.sync m16n8k16 (mma.cuh) with A = X^T (16 staged columns x 16 rows) and
// B = G (16 rows x 8 columns), both read with ldmatrix.trans from rows staged in
// shared memory. Its element (m, n) pairs columns x' - x = m - n - pw, i.e. tap
// j = m - n, and the tap of an element does not depend on x0, so the products of all
// of a warp's column tiles accumulate into the same registers. For KF <= 9 every tap of
// every column n lies in the 16 columns (KF x 4 float32 registers a lane; KF mma per 8
// columns and 16 rows: half the forward pass's count). Larger windows take S =
// corr_mma_blocks(KF) blocks of 16 columns, block s starting 16 s columns on (taps
// j = 16 s + m - n; 65% of the products are taps at 31, 51% at 13), and a warp sums
// RW = corr_mma_rows(KF) of the KF kernel rows (RW x S x 4 registers; the row groups
// are more warps of the same result). Block s of A for tile u is the 16 columns at
// 8 (u + 2 s): each A fragment loaded feeds up to S mma. At the end dW[i][j] is the
// sum of the diagonal 16 s + m - n = j over the blocks of P_i, added in a fixed order
// (deterministic).
//
// The 16 rows are two halves of 8, each any (plane, 8 rows, 64 columns) of the
// result's work: rows of one plane, or two planes of a 7 x 7 image, fill the mma's
// 16 rows alike. Work: a warp takes a result (channel, and batch index for Nw = N), a
// group of RW kernel rows and one of `splits` parts of its halves (pairs of them),
// walks them, and stores its RW x KF sums, or its split's partial for ReduceSplits (no
// atomics).
//
// Staging: X's rows start pw columns left of G's (whose column tiles are aligned),
// so with padding KF / 2 a staged chunk of X is two aligned 16-byte chunks shifted by
// a compile-time number of values (one lane walks a row; no bank conflicts, the 8
// rows of a store phase in distinct bank groups); otherwise, and at the image's
// edges, value by value. A row holds NT + 2 S - 1 chunks of 16 bytes; rows are 9 chunks
// apart (an odd number: ldmatrix's 8 rows fall in distinct banks).
//
// Exactness: G's zeros past its edges multiply staged X values, which matters only
// when X holds an Inf or NaN; a warp whose sums are not all finite recomputes its
// whole part tap by tap from global memory (the reference's products only).
#pragma once

#include "corr_items.cuh"
#include "mma.cuh"
#include "params.h"
#include "plan.h"
#include "portable.h"

namespace lc {

template <class T, int KF>
struct CorrMma {
  static constexpr int NT = corr_mma_ntiles(KF);  // 8-column tiles of a half (64 columns; 32)
  static constexpr int S = corr_mma_blocks(KF);  // blocks of 16 X columns a tap lies in
  static constexpr int XC = 2 * (S - 1);     // X chunks staged past G's, beyond one
  static constexpr int RW = corr_mma_rows(KF);   // kernel rows per warp
  static constexpr int RG = corr_mma_row_groups(KF);
  static constexpr int XR = 8 + RW - 1;      // staged X rows per half
  static constexpr int SW = kCorrMmaStride;  // staged row stride (values): 9 chunks
  static constexpr int TAPS = KF * KF;
  static constexpr int PW = KF / 2;          // the padding of the 16-byte X path
  static constexpr int PA = (PW + 7) / 8 * 8;  // X's aligned chunks start PA left of G's
  // values a staged X chunk is shifted by: PA - PW for 3, 5, 7; none for 13 and 31, whose
  // blocks have room for the DE = PA - PW columns more between a tap and its column
  static constexpr int E = KF > 9 ? 0 : PA - PW, DE = PA - PW - E;
  static constexpr int64_t kWarpBytes = corr_mma_warp_bytes(KF);
  static_assert(S * 16 >= KF + 7 + DE, "every tap of a column in one of the S blocks");
  static_assert(2 * XR <= 32, "a lane per staged X row");
  static_assert((SW / 8) % 2 == 1 && SW >= 8 * (NT + XC + 1), "row stride");
  // diag: P_i by G column n (8 rows of the 16 S X columns, DS apart: a warp's word
  // stores of one fragment register land in distinct banks, 2 DS q = 8 q mod 32, and a
  // diagonal's reads n (DS + 1) + j are consecutive words)
  static constexpr int DS = corr_diag_row(S);  // (plan.h: 16 S + 4)
  // finish's kernel rows a pass (two where both rows' taps fit 16 lanes each) and their
  // products DB words apart, 16 mod 32: the two rows' reads fall in distinct banks
  static constexpr int DP = corr_mma_diag_rows(KF), DB = corr_mma_diag_words(KF) / DP;
  static_assert(kWarpBytes >= 16 + (2 * XR + 16) * SW * 2 + DP * DB * 4 && DB >= 8 * DS &&
                    (DP == 1 || (DB % 32 == 16 && KF <= 16)),
                "shared memory per warp; the diagonal passes' banks");
  using F = float;
  static constexpr int kMinBlocks = 2;

  static LC_DEVICE void run(unsigned char* smem, const CorrArgs& a, const CorrMmaPlan& t) {
    const Problem& p = a.p;
    const int warp = thread_index() >> 5, lane = thread_index() & 31;
    const int64_t gw = block_index() * (block_threads() >> 5) + warp;
    const int64_t results = a.Nw * p.C;
    if (gw >= results * t.splits * RG) return;  // the whole warp
    // the row groups of a part side by side (they read the same rows)
    const int64_t part_id = gw / RG, split = part_id % t.splits, res = part_id / t.splits;
    const int i0 = int(gw % RG) * RW;
    const int64_t c = res % p.C, n_res = res / p.C;
    T* xs = reinterpret_cast<T*>(smem + warp * kWarpBytes + 16);
    // (staged X chunks start DE columns left of the taps' first block where aligned)
    const int de = t.piece_b > 1 ? DE : 0;
    part(smem + warp * kWarpBytes, a, t, split, n_res, c, c, i0, de, lane, [] { sync_warp(); },
         [&](const Seg (&h)[2], int nt) {
           stage_x(xs, a, t, h, nt, i0, lane);
           stage_g(xs + 2 * XR * SW, a, t, h, nt, lane);
         });
  }

  // What finish needs of a part; for 13 and 31 parked in the warp's diag area while the
  // part runs (their loop holds 128 registers; these would be spilled), for 3, 5, 7 kept
  // in registers (a per-sample result's part is one or two pairs: the round trip would
  // cost 5-10%, model).
  static constexpr bool kParkId = KF > 9;
  struct PartId {
    int64_t c, n_res, split;
    int32_t lo, hi, i0, de;
  };

  // A warp's part of result (n_res, c), kernel rows i0.. (RW of them, KF at most): its
  // split's pairs of halves (those of channel c_seg's planes) staged by stage(h, nt)
  // between sync() barriers (the warp's, or the block's where warps stage for each
  // other), their products summed, then finish. `mine`: the warp's shared memory (a
  // flag, X's and G's rows, diag); staged X column de + m + 16 s - n is tap m - n of
  // block s.
  template <class Sync, class Stage>
  static LC_DEVICE void part(unsigned char* mine, const CorrArgs& a, const CorrMmaPlan& t,
                             int64_t split, int64_t n_res, int64_t c_seg, int64_t c, int i0,
                             int de, int lane, Sync sync, const Stage& stage) {
    volatile uint32_t* flag = reinterpret_cast<uint32_t*>(mine);  // warp_all's word
    T* xs = reinterpret_cast<T*>(mine + 16);  // 2 halves x XR rows
    T* gs = xs + 2 * XR * SW;                 // 2 halves x 8 rows
    F* diag = reinterpret_cast<F*>(gs + 16 * SW);  // DP products P_i, DB words apart (finish)
    volatile PartId* id = reinterpret_cast<volatile PartId*>(diag);

    // (32-bit: plan.h keeps a result's items below 2^31)
    const int64_t pairs = (t.items + 1) / 2;
    const int32_t lo = int32_t(split * pairs / t.splits), hi = int32_t((split + 1) * pairs / t.splits);
    F acc[RW][S][4];
LC_UNROLL
    for (int i = 0; i < RW; ++i)
LC_UNROLL
      for (int s = 0; s < S; ++s)
LC_UNROLL
        for (int e = 0; e < 4; ++e) acc[i][s][e] = F(0);
    if (lane == 0) flag[0] = 0;
    if (kParkId && lane == 0) {
      id->c = c, id->n_res = n_res, id->split = split;
      id->lo = lo, id->hi = hi, id->i0 = i0, id->de = de;
    }

    // this lane's ldmatrix rows. B (x2): matrices (half 0, half 1) of a G block; A (x4):
    // matrices (block u, half 0), (u + 1, 0), (u, 1), (u + 1, 1) of X's rows i.., the
    // fragment's order (one load per mma: fragments built from shared blocks would cost a
    // register move each)
    const SmemAddr arow =
        smem_addr(xs + (((lane >> 4) & 1) * XR + (lane & 7)) * SW + 8 * ((lane >> 3) & 1));
    const SmemAddr brow = smem_addr(gs + (8 * ((lane >> 3) & 1) + (lane & 7)) * SW);
    Cursor cur = Cursor::at(a, t.col_tiles, t.segments, 2 * lo, n_res, c_seg);
    for (int32_t pr = lo; pr < hi; ++pr) {
      Seg h[2];
      int nt = 0;
LC_UNROLL
      for (int k = 0; k < 2; ++k) {
        h[k] = seg_of(a, t, cur, 2 * pr + k);
        cur.next(a, t.col_tiles, t.segments);
        nt = max_of(nt, h[k].nt);
      }
      sync();  // the previous pair's reads of the staged rows are done
      stage(h, nt);
      sync();
      if (kHaveMma) products_upto<NT>(nt, acc, arow, brow);
    }
    if constexpr (kParkId) {
      sync_warp();  // (lane 0's id written: a part may have no pairs)
      const int64_t c_ = id->c, n_res_ = id->n_res, split_ = id->split;
      const int32_t lo_ = id->lo, hi_ = id->hi, i0_ = id->i0, de_ = id->de;
      sync_warp();  // (read before diag is written)
      finish(a, t, acc, flag, diag, lo_, hi_, c_, n_res_, split_, n_res_ * a.p.C + c_, i0_, de_,
             lane);
    } else {
      finish(a, t, acc, flag, diag, lo, hi, c, n_res, split, n_res * a.p.C + c, i0, de, lane);
    }
  }

  // A warp's part done: if every sum of its kernel rows is finite (no Inf or NaN in the
  // X and G they read), the taps as diagonal sums of acc (through `diag`, fixed order);
  // else the whole part tap by tap (direct). To the result, or to the split's partial.
  // (Rows past KF of the last group were summed too, from staged rows no tap reads:
  // left out.)
  static LC_DEVICE void finish(const CorrArgs& a, const CorrMmaPlan& t,
                               const F (&acc)[RW][S][4], volatile uint32_t* flag, F* diag,
                               int32_t lo, int32_t hi, int64_t c, int64_t n_res, int64_t split,
                               int64_t res, int i0, int de, int lane) {
    const int g = lane >> 2, q = lane & 3;
    F probe = F(0);
LC_UNROLL
    for (int i = 0; i < RW; ++i)
LC_UNROLL
      for (int s = 0; s < S; ++s)
LC_UNROLL
        for (int e = 0; e < 4; ++e) probe += i0 + i < KF ? acc[i][s][e] * F(0) : F(0);
    const bool mma_ok = warp_all(kHaveMma && probe == F(0), flag);
    const int64_t numel = a.Nw * a.p.C * TAPS;
    const int64_t out0 = res * TAPS;
    if (mma_ok) {
      // kernel rows i + r (r < DP) a pass: row r's taps on lanes 16 r .. 16 r + KF - 1
      const int r = DP > 1 ? lane >> 4 : 0, j = DP > 1 ? lane & 15 : lane;
LC_UNROLL
      for (int i = 0; i < RW; i += DP) {
        if (RW * RG > KF && i0 + i >= KF) break;  // (the last group's, uniform)
LC_UNROLL
        for (int rr = 0; rr < DP && i + rr < RW; ++rr)
LC_UNROLL
          for (int s = 0; s < S; ++s)
LC_UNROLL
            for (int e = 0; e < 4; ++e)
              diag[rr * DB + (2 * q + (e & 1)) * DS + 16 * s + g + 8 * (e >> 1)] = acc[i + rr][s][e];
        sync_warp();
        // block (de + j + n) / 16, row (de + j + n) % 16, column n of row i + r's product
        if (j < KF && i + r < RW && (RW * RG <= KF || i0 + i + r < KF)) {
          F sum = F(0);
LC_UNROLL
          for (int n = 0; n < 8; ++n) sum += diag[r * DB + n * DS + n + j + de];
          put_tap<T>(a, t.splits, split, numel, out0 + (i0 + i + r) * KF + j, sum);
        }
        sync_warp();
      }
    } else {
      direct(a, t, lo, hi, c, n_res, split, numel, out0, i0, lane);
    }
  }

  // The products of a staged pair for its nt tiles (1..NT), each count unrolled (no
  // branch per mma): acc[i][s] += block s of P_i over the tiles.
  template <int NU>
  static LC_DEVICE void products_upto(int nt, F (&acc)[RW][S][4], SmemAddr arow,
                                      SmemAddr brow) {
    if (nt == NU) {
      products<NU>(acc, arow, brow);
    } else if constexpr (NU > 1) {
      products_upto<NU - 1>(nt, acc, arow, brow);
    }
  }

  template <int NU>
  static LC_DEVICE void products(F (&acc)[RW][S][4], SmemAddr arow, SmemAddr brow) {
    uint32_t bf[NU][2];  // G's tiles (8 columns each), both halves
LC_UNROLL
    for (int u = 0; u < NU; ++u) LC_LOAD_T2(bf[u], brow + 16 * u);
LC_UNROLL
    for (int i = 0; i < RW; ++i)
LC_UNROLL
      for (int v = 0; v < NU + XC; ++v) {
        uint32_t af[4];  // X's rows i.. of both halves, columns 8v..8v + 15
        LC_LOAD_T4(af, arow + 2 * (i * SW + 8 * v));
LC_UNROLL
        for (int s = 0; s < S; ++s)  // block s of tile u = v - 2 s
          if (v - 2 * s >= 0 && v - 2 * s < NU) mma_16816<T>(acc[i][s], af, bf[v - 2 * s]);
      }
  }

  // A result's halves in order: (batch index,) column tile, 8-row segment (corr_items.cuh)
  using Cursor = ItemCursor<T>;

  // One half: 8 rows (y0..) and up to 64 columns (x0..) of a plane of G (and X's rows
  // and columns the taps read), or none (past the result's items).
  struct Seg {
    const T* g;
    const T* x;
    int32_t y0, x0;
    int nt;  // 8-column tiles with columns of G inside (0: none)
  };

  // item `it`, at `cur` (nt = 0 past the result's items: its pointers are not read)
  static LC_DEVICE Seg seg_of(const CorrArgs& a, const CorrMmaPlan& t, const Cursor& cur,
                              int32_t it) {
    const int32_t x0 = cur.ct * (8 * NT);
    const int nt = it < t.items ? min_of(NT, (int32_t(a.p.w.out) - x0 + 7) >> 3) : 0;
    return Seg{cur.g, cur.x, cur.row * 8, x0, nt};
  }

  // h[1] or h[0], field by field (a run-time index would put h in local memory)
  static LC_DEVICE Seg pick(const Seg (&h)[2], bool second) {
    return Seg{second ? h[1].g : h[0].g, second ? h[1].x : h[0].x, second ? h[1].y0 : h[0].y0,
               second ? h[1].x0 : h[0].x0, second ? h[1].nt : h[0].nt};
  }

  // Staged chunks u0..u1 (clamped to 0..last) of a row whose chunk u starts at column
  // col0 + 8u, value by value: the chunks that read the aligned chunk the row's end cuts
  // through a piece (W not a multiple of the piece), which chunk_pieces left zero there.
  static LC_DEVICE void fix_up(T* out, const T* src, int32_t col0, int32_t W, int u0, int u1,
                               int last) {
    // (its own loop rather than gather8: the cost model pools a helper's source lines
    // over its call sites, and this one runs once a row at most)
    for (int u = max_of(u0, 0); u <= min_of(u1, last); ++u) {
      const int32_t col = col0 + 8 * u;
      for (int j = 0; j < 8; ++j)
        out[8 * u + j] = col + j >= 0 && col + j < W ? src[col + j] : from_float<T>(0.0f);
    }
  }

  // X rows y0 - ph + i0 .. (XR per half), columns x0 - pw + 8k, k = 0..nt + XC: a lane
  // per row
  static LC_DEVICE void stage_x(T* xs, const CorrArgs& a, const CorrMmaPlan& t,
                                const Seg (&h)[2], int nt, int i0, int lane) {
    if (lane >= 2 * XR) return;
    const int rr = lane % XR;
    const Seg hf = pick(h, lane >= XR);
    const int32_t H = int32_t(a.p.h.in), W = int32_t(a.p.w.in);
    const int32_t y = hf.y0 - int32_t(a.p.h.p) + i0 + rr;
    const bool row_in = hf.nt > 0 && y >= 0 && y < H;
    const T* src = hf.x + y * int32_t(a.b_s.h);  // formed for every row, read inside only
    T* out = xs + lane * SW;
    const int32_t pb = t.piece_b;
    if (pb > 1) {  // padding KF / 2, aligned rows: shifted aligned chunks
      int32_t col = hf.x0 - PA;
      uint32_t prev[4];
      chunk_pieces(src, col, W, row_in, pb, prev);
LC_UNROLL
      for (int u = 0; u <= NT + XC; ++u) {
        if (u > nt + XC) break;
        uint32_t v4[4];
        if constexpr (E == 0) {
LC_UNROLL
          for (int j = 0; j < 4; ++j) v4[j] = prev[j];
          if (u < nt + XC) chunk_pieces(src, col + 8 * (u + 1), W, row_in, pb, prev);
        } else {
          uint32_t next[4];
          chunk_pieces(src, col + 8 * (u + 1), W, row_in, pb, next);
LC_UNROLL
          for (int j = 0; j < 4; ++j) {  // values E + 2j, E + 2j + 1 of prev ++ next
            constexpr int w0 = E / 2;
            const uint32_t lo = w0 + j < 4 ? prev[w0 + j] : next[w0 + j - 4];
            const uint32_t hi = w0 + j + 1 < 4 ? prev[w0 + j + 1] : next[w0 + j - 3];
            v4[j] = E % 2 == 0 ? lo : (lo >> 16) | (hi << 16);
          }
LC_UNROLL
          for (int j = 0; j < 4; ++j) prev[j] = next[j];
        }
        LC_STORE_WORDS(out + 8 * u, v4);
      }
      // the aligned chunk k the row's end cuts feeds staged chunks k - 1 (E > 0) and k
      const int32_t cut = (W & ~7) - col;
      if ((W & (pb - 1)) != 0 && row_in && cut >= 0)  // (pb a power of 2)
        fix_up(out, src, hf.x0 - PA + E, W, cut / 8 - (E > 0 ? 1 : 0), cut / 8, nt + XC);
    } else {
      const int32_t col = hf.x0 - int32_t(a.p.w.p);
      for (int u = 0; u <= nt + XC; ++u) {
        uint32_t v4[4];
        gather8(src, col + 8 * u, W, row_in, v4);
        LC_STORE_WORDS(out + 8 * u, v4);
      }
    }
  }

  // G rows y0.. (8 per half), columns x0 + 8u, u < nt: 8 lanes per chunk, a lane per row
  // (a store phase writes 8 rows of a chunk, in distinct bank groups)
  static LC_DEVICE void stage_g(T* gs, const CorrArgs& a, const CorrMmaPlan& t,
                                const Seg (&h)[2], int nt, int lane) {
    const int32_t Ho = int32_t(a.p.h.out), Wo = int32_t(a.p.w.out);
    const int rl = lane & 7;
LC_UNROLL
    for (int k = 0; k < 2; ++k) {
      const Seg& hf = h[k];
      const int32_t y = hf.y0 + rl;
      const bool row_in = hf.nt > 0 && y < Ho;
      const T* src = hf.g + y * int32_t(a.a_s.h);  // formed for every row, read inside only
      T* out = gs + (8 * k + rl) * SW;
      for (int u = lane >> 3; u < nt; u += 4) {
        uint32_t v4[4];
        if (t.piece_a > 1)
          chunk_pieces(src, hf.x0 + 8 * u, Wo, row_in, t.piece_a, v4);
        else
          gather8(src, hf.x0 + 8 * u, Wo, row_in, v4);
        LC_STORE_WORDS(out + 8 * u, v4);
      }
      // the chunk the row's end cuts (Wo not a multiple of 8), if it is this lane's
      const int32_t cut = ((Wo & ~7) - hf.x0) / 8;
      if (t.piece_a > 1 && (Wo & (t.piece_a - 1)) != 0 && row_in && cut >= 0 && cut < nt &&
          (cut & 3) == (lane >> 3))
        fix_up(out, src, hf.x0, Wo, cut, cut, nt - 1);
    }
  }


  // The part's sums (kernel rows i0..) tap by tap from global memory (float32, the
  // reference's products: G's positions inside its plane only, X's zeros outside the
  // image): for a part whose tensor-core sums are not finite, or a GPU without mma.sync.
  static LC_DEVICE void direct(const CorrArgs& a, const CorrMmaPlan& t, int32_t lo, int32_t hi,
                               int64_t c, int64_t n_res, int64_t split, int64_t numel,
                               int64_t out0, int i0, int lane) {
    const int32_t H = int32_t(a.p.h.in), W = int32_t(a.p.w.in);
    const int32_t Ho = int32_t(a.p.h.out), Wo = int32_t(a.p.w.out);
    const int32_t ph = int32_t(a.p.h.p), pw = int32_t(a.p.w.p);
    const int32_t sgh = int32_t(a.a_s.h), sxh = int32_t(a.b_s.h);
    const int32_t sgw = int32_t(a.a_s.w), sxw = int32_t(a.b_s.w);  // 1 but channels_last
    for (int tap = i0 * KF + lane; tap < min_of(i0 + RW, KF) * KF; tap += 32) {
      const int i = tap / KF, j = tap % KF;
      F s = F(0);
      Cursor cur = Cursor::at(a, t.col_tiles, t.segments, 2 * lo, n_res, c);
      for (int32_t it = 2 * lo; it < 2 * hi; ++it, cur.next(a, t.col_tiles, t.segments)) {
        const Seg hf = seg_of(a, t, cur, it);
        for (int32_t y = hf.y0; y < min_of(hf.y0 + 8, Ho) && hf.nt > 0; ++y) {
          const int32_t iy = y + i - ph;
          for (int32_t x = hf.x0; x < min_of(hf.x0 + 8 * NT, Wo); ++x) {
            const int32_t ix = x + j - pw;
            const bool in = iy >= 0 && iy < H && ix >= 0 && ix < W;
            const F xv = in ? to_float(hf.x[iy * sxh + ix * sxw]) : F(0);
            s += to_float(hf.g[y * sgh + x * sgw]) * xv;
          }
        }
      }
      put_tap<T>(a, t.splits, split, numel, out0 + tap, s);
    }
  }
};

}  // namespace lc
