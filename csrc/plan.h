// Host-side planning: which kernel runs a problem, with which tile, how many
// blocks and threads and how much shared memory. Used by the CUDA launchers
// (dispatch.h, compiled by nvcc) and by the CPU emulator alike, so the
// emulator tests the plans the GPU runs.
#pragma once

#include <cstdint>

#include "params.h"
#include "portable.h"
#include "stage.cuh"
#include "window.h"

namespace lc {

constexpr int kConnTileR = 4;        // outputs per thread along a row (conn_tile.cuh)
constexpr int kCorrTaps = 4;         // taps per thread at most (corr_tile.cuh)
constexpr int kThreads = 256;        // threads per block
constexpr int kCorrRowsGroups = kThreads / 32;  // position groups of corr_rows.cuh
// corr_rows.cuh keeps KHC x KF sums per thread in registers: KHC kernel rows
// per block, the other rows in other blocks: 3 rows of 13 (39 sums), 1 row of 31
// (3, 5, 7: corr_strip.cuh).
constexpr int corr_rows_chunk(int kf) { return kf == 13 ? 3 : 1; }
constexpr int kLaneTaps = 8;         // taps per thread (corr_lanes.cuh)
constexpr int kStripCols = 8;        // output columns per thread (conn_strip.cuh)
// output rows per thread of conn_strip.cuh: the KF * KF filter and rows * 8 sums
// stay in registers (7x7: 49 + 32)
constexpr int strip_rows(int kf) { return kf <= 5 ? 8 : 4; }
// conn_band_cl.cuh: channels a block (a warp's lanes)
constexpr int kBandClChannels = 32;
// conn_band.cuh: input column 0 at this float of a staged row (one 16-byte chunk of
// the source, so staged chunks are aligned on both sides), and the floats a strip's
// shared loads reach from its first output column (16-byte loads from an aligned
// start, KF / 2 columns of padding)
constexpr int band_lead(int elem_bytes) { return 16 / elem_bytes; }
constexpr int band_reach(int kf, int elem_bytes) {
  return (band_lead(elem_bytes) - kf / 2) / 4 * 4 +
         ((band_lead(elem_bytes) - kf / 2) % 4 + 8 + kf - 1 + 3) / 4 * 4;
}
// conn_wide.cuh (float32 13 x 13 and 31 x 31): a thread's strip of kWideCols outputs of a
// row; input column 0 at float wide_lead(kf) of a staged row (kf / 2 zeros before it,
// rounded up to a 16-byte chunk); wide_chunks(kf) 16-byte loads cover a strip's
// kWideCols + kf - 1 values a row; filter rows of wide_filter_stride(kf) floats
constexpr int kWideCols = 8;
constexpr int wide_lead(int kf) { return (kf / 2 + 3) / 4 * 4; }
constexpr int wide_chunks(int kf) { return (wide_lead(kf) - kf / 2 + kWideCols + kf - 1 + 3) / 4; }
constexpr int wide_filter_stride(int kf) { return (kf + 3) / 4 * 4; }
// its shared memory: P planes' kWideTable entries (offsets, a finite flag), the filters,
// the band
constexpr int kWideTable = 5;
LC_HD constexpr int64_t wide_table_bytes(int64_t P) { return (8 * kWideTable * P + 15) / 16 * 16; }
inline int64_t wide_smem(int64_t P, int64_t IH, int64_t IW, int kf) {
  return wide_table_bytes(P) + 4 * P * (kf * wide_filter_stride(kf) + IH * IW);
}
// conn_band.cuh's shared memory: P planes' kBandTable offsets, then the band
constexpr int kBandTable = 4;
LC_HD constexpr int64_t band_table_bytes(int64_t P) { return 8 * kBandTable * P; }
inline int64_t band_smem(int64_t P, int64_t IH, int64_t IW) {
  return band_table_bytes(P) + P * IH * IW * 4;
}
// the kernel sizes conn_strip.cuh and corr_strip.cuh are instantiated for
inline bool strip_kernel(int64_t k) { return k == 3 || k == 5 || k == 7; }
// output rows per strip of corr_strip.cuh (channels_last: cl): KF * KF sums and
// rows * 8 values of a in registers without spilling (ptxas hoists b's row loads)
constexpr int corr_strip_rows(int kf, bool cl) { return kf <= 5 ? (cl ? 4 : 8) : 2; }
// shared memory of corr_strip.cuh's reduction: a chunk of taps x kThreads sums
constexpr int kCorrStripRedBytes = 25 * 1024;
// corr_strip.cuh's blocks of kThreads an SM: two (at most 128 registers a thread, 16 warps
// an SM) for float32 7 x 7, rather than one block of 240-250 registers, whose 8 warps
// leave each scheduler two to hide latency with. ptxas then keeps a few loop values in
// local memory (32-116 bytes of spill loads a thread; .ci/cuda-resources accepts it for
// this kernel alone): a few local loads a strip of 16 outputs against 784 FFMA. One block
// elsewhere (16-bit values and 3 x 3 / 5 x 5's taller strips need more registers: capped
// at 128 they spill in the hot loop).
constexpr int corr_strip_blocks_per_sm(int elem_bytes, int kf) {
  return elem_bytes == 4 && kf == 7 ? 2 : 1;
}
// corr_band.cuh (the float32 weight gradient on a staged band): strips of
// kCorrBandRows x kCorrBandCols outputs (7 columns: an odd stride between lanes' strips,
// conflict-free; 2 rows: 49 sums, 14 values of a and 13 of b within 128 registers), an
// input row's column 0 at word kCorrBandLead of its staged row (16-byte aligned copies
// with the padding's zeros before them), rows at most kCorrBandMaxStrips strips wide
constexpr int kCorrBandRows = 2;
constexpr int kCorrBandCols = 7;
constexpr int kCorrBandLead = 4;
constexpr int kCorrBandMaxStrips = 8;
// conn_mma.cuh: a warp's tile is conn_mma_mtiles(kf) x 16 rows by kConnMmaNTiles x 8
// columns (two M tiles share the B fragments built per kernel row for 13 and 31); it
// stages the tile's rows in chunks of 16 columns (a lead of up to `lmax` columns first:
// 7 covers every padding, conn_mma_lead_max's instances only the small leads)
constexpr int conn_mma_mtiles(int kf) { return kf >= 13 ? 2 : 1; }
constexpr int kConnMmaNTiles = 4, kConnMmaWideNTiles = 7;  // (wide: 7 x 7 on 49..56 columns)
constexpr int conn_mma_chunks(int kf, int lmax = 7, int nt = kConnMmaNTiles) {
  return (lmax + 8 * nt + kf - 1 + 15) / 16;
}
// The largest lead at which every 8-column N tile's taps (8 + kf - 1 columns from lead or
// lead + 8) touch the fewest 16-column chunks, ceil((kf + 7) / 16): for 13 (lead <= 4) and
// 31 (lead <= 2) conn_mma.cuh has instances of its own, which skip the blocks that only a
// larger lead fills (13: 8 mma a row and M tile, not 10; 31: 12, not 14) and stage a
// chunk fewer. The centred windows' leads are 2 (13, padding 6) and 1 (31, padding 15).
// 3, 5, 7: the centred leads (7, 6, 5) fill every block; no instance of their own (7).
constexpr int conn_mma_lead_max(int kf) { return kf >= 13 ? 16 * ((kf + 22) / 16) - kf - 15 : 7; }
// the lead itself: the staged columns start it before the first output's first tap, so
// that they start on a multiple of 8 (tiles start on multiples of 8 columns)
LC_HD constexpr int conn_mma_lead(int64_t pw) { return int(((-pw) % 8 + 8) % 8); }
// shared memory per warp: flags, the staged rows (stride 16 chunks + 8 values), the
// filter as kf x (kf + 2) pairs of 16-bit values, rounded to 16 bytes
constexpr int64_t conn_mma_warp_bytes(int kf, int lmax = 7, int nt = kConnMmaNTiles) {
  return (16 + int64_t(16 * conn_mma_mtiles(kf) + kf - 1) * (16 * conn_mma_chunks(kf, lmax, nt) + 8) * 2 +
          kf * (kf + 2) * 4 + 15) / 16 * 16;
}
// conn_mma_cl.cuh (channels_last input): a block is this many warps, one channel each,
// plus a shared output tile of conn_mma_cl_out_mtiles x 16 rows x kConnMmaNTiles * 4
// column pairs x 8 channels (32-bit words, 16 bytes of padding a row): the warp tile's
// rows, but for 31 x 31 one M tile of its two at a time (a barrier more a tile; 110 KB a
// block, not 118, so that two blocks fit an sm_90 SM)
constexpr int kConnMmaClWarps = 8;
constexpr int kConnMmaClOutStride = 4 * kConnMmaNTiles * kConnMmaClWarps + 4;
constexpr int conn_mma_cl_out_mtiles(int kf) { return kf > 13 ? 1 : conn_mma_mtiles(kf); }
constexpr int64_t conn_mma_cl_bytes(int kf, int lmax = 7) {
  return kConnMmaClWarps * conn_mma_warp_bytes(kf, lmax) +
         16 * conn_mma_cl_out_mtiles(kf) * kConnMmaClOutStride * 4;
}
// corr_mma.cuh: a half is 8 rows x corr_mma_ntiles(kf) x 8 columns of G (64 columns; 32
// for 13 and 31). A tap lies in one of corr_mma_blocks(kf) blocks of 16 staged X columns
// (1 for 3, 5, 7; 2 for 13, 3 for 31); a warp sums corr_mma_rows(kf) kernel rows (all of
// 3, 5, 7; 4 of 13, 3 of 31): its sums are rows x blocks x 4 float32 registers, and with
// 64 columns or more rows ptxas spills past 128 registers in some of the instances (the
// model, 13 NCHW: 3 rows 145-181 us, 4 rows 112-139, 5 rows 103-128 but spilled). A staged row holds tiles + 2 blocks
// - 1 chunks of 16 bytes (9, 7, 9); rows are kCorrMmaStride values apart (9 chunks: an
// odd number, and 8 words past a multiple of 64 for corr_mma_cl.cuh)
constexpr int corr_mma_ntiles(int kf) { return kf <= 9 ? 8 : 4; }
constexpr int corr_mma_blocks(int kf) { return (kf + 6) / 16 + 1; }
constexpr int corr_mma_rows(int kf) { return kf <= 9 ? kf : kf <= 13 ? 4 : 3; }
constexpr int corr_mma_row_groups(int kf) { return (kf + corr_mma_rows(kf) - 1) / corr_mma_rows(kf); }
constexpr int kCorrMmaStride = 72;
// corr_taps_mma.cuh (13, 31): a warp's taps j as M tiles of 16, kernel rows i as N tiles of 8;
// an X row staged as positions 0..corr_taps_values - 1 twice (as is, one value on), the copies
// corr_taps_copy_words apart (the pairs a warp loads in distinct banks), rows
// corr_taps_row_words apart (an odd number of 16-byte units: 8 rows' stores in distinct
// banks), 8 rows a band; G's rows in a ring of kTapsRingRows rows of kTapsRowValues
// values (5 units), the first corr_taps_window (a band's window) mirrored past its end
constexpr int corr_taps_mtiles(int kf) { return (kf + 15) / 16; }
constexpr int corr_taps_ntiles(int kf) { return (kf + 7) / 8; }
constexpr int corr_taps_values(int kf) { return 16 * (2 + corr_taps_mtiles(kf)); }
constexpr int corr_taps_copy_words(int kf) {
  return corr_taps_values(kf) / 2 % 32 >= 7 && corr_taps_values(kf) / 2 % 32 <= 25
             ? corr_taps_values(kf) / 2
             : corr_taps_values(kf) / 2 + 8;
}
constexpr int corr_taps_row_words(int kf) { return 2 * corr_taps_copy_words(kf) + 4; }
constexpr int corr_taps_window(int kf) { return 8 * corr_taps_ntiles(kf) + 7; }
constexpr int kTapsRingRows = 64, kTapsRowValues = 40;
constexpr int64_t corr_taps_warp_bytes(int kf) {
  return (16 + 8 * 4 * int64_t(corr_taps_row_words(kf)) +
          int64_t(kTapsRingRows + corr_taps_window(kf)) * kTapsRowValues * 2 + 15) / 16 * 16;
}
constexpr int kCorrTapsWarps = 8;  // warps a block (87.5 KB at 31, 69 KB at 13)
// corr_mma.cuh's diagonal sums: the kernel rows of a pass (two where a row's taps fit 16
// lanes and the warp has two rows) and the words of their 16 x 8 S products (by G column,
// rows of 16 S + 4 words; a second row's 16 mod 32 words on)
constexpr int corr_diag_row(int blocks) { return 16 * blocks + 4; }
constexpr int corr_mma_diag_rows(int kf) { return kf <= 16 && corr_mma_rows(kf) > 1 ? 2 : 1; }
constexpr int corr_mma_diag_words(int kf) {
  return corr_mma_diag_rows(kf) == 1
             ? 8 * corr_diag_row(corr_mma_blocks(kf))
             : 2 * ((8 * corr_diag_row(corr_mma_blocks(kf)) + 15) / 32 * 32 + 16);
}
// shared memory per warp: a flag, 2 x (8 + rows - 1) rows of X and 16 rows of G, the
// diagonal sums' products (float32)
constexpr int64_t corr_mma_warp_bytes(int kf) {
  return (16 + int64_t(2 * (8 + corr_mma_rows(kf) - 1) + 16) * kCorrMmaStride * 2 +
          corr_mma_diag_words(kf) * 4 + 15) / 16 * 16;
}
// conn_batch.cuh (planes of at most 8 x 8 on tensor cores, the batch as M): a block is
// kBatchChannels warps (a channel each) x kBatchSamples samples; a sample's plane is staged
// as a row of 8 x 8 values, rows kBatchStride values apart (9 16-byte units, an odd number:
// ldmatrix's eight rows fall in distinct banks), a channel's 16 rows kBatchChannelStride
// apart (8 more: the channels of a channels_last pixel fall in distinct banks)
constexpr int kBatchSamples = 16;
// A channel's grids start batch_channel_pad(ch) values past its samples' (16 sample grids,
// each an odd number of 16-byte units: a multiple of 64 values in all): a channels_last
// warp stages ch channels x 32 / ch positions a store, runs of 64 / ch bytes that then
// fill the 32 banks once (2 channels 16 values on: with 8, their runs overlapped by half)
constexpr int batch_channel_pad(int ch) { return 32 / ch; }
constexpr int kBatchChannels = 8;
constexpr int kBatchStride = 72;
constexpr int kBatchChannelStride = kBatchSamples * kBatchStride + 8;
// per warp a flag and the filter as kf x (kf + 2) pairs; then the staged inputs and the
// outputs (kBatchChannels x kBatchChannelStride values each)
// corr_batch.cuh: a block is kBatchCorrChannels channels (two warps each); shared memory:
// flags, the staged G and X rows, the lanes' tap sums (8 warps x kf x 2 x 32 floats)
constexpr int kBatchCorrChannels = 4;
constexpr int64_t corr_batch_bytes(int kf) {
  return 16 + 2 * int64_t(kBatchCorrChannels) * kBatchChannelStride * 2 + 8 * int64_t(kf) * 2 * 32 * 4;
}
constexpr int64_t batch_warp_bytes(int kf) { return (16 + int64_t(kf) * (kf + 2) * 4 + 15) / 16 * 16; }
constexpr int64_t conn_batch_bytes(int kf) {
  return kBatchChannels * batch_warp_bytes(kf) + 2 * int64_t(kBatchChannels) * kBatchChannelStride * 2;
}
// conn_batch_wide.cuh on grids gw wide (gw 16: planes of up to 16 x 16; 32: th x 32 tiles,
// th 32 or 16, of larger planes; any layout): a block is batch_wide_channels(gw, th)
// channels x kBatchSamples samples; the input grid is batch_wide_cols(gw) values wide (gw
// 32: the tile's column 0 at grid column 4, its halo or zeros before and past it) and
// batch_wide_rows(kf, th) rows high (the tile's th rows and kf / 2 rows above and below),
// a sample's rows batch_wide_stride(kf, gw, th) values apart (an odd number of 16-byte
// units); the output grid th x gw, batch_wide_out_stride(gw, th) apart
constexpr int kBatchWideChannels = 2;
constexpr int batch_wide_channels(int gw, int th = 16) { return gw == 16 ? kBatchWideChannels : 32 / th; }
constexpr int batch_wide_cols(int gw) { return gw == 16 ? 16 : gw + 8; }
constexpr int batch_wide_rows(int kf, int th = 16) { return th + 2 * (kf / 2); }
constexpr int batch_wide_stride(int kf, int gw = 16, int th = 16) {
  return batch_wide_cols(gw) * batch_wide_rows(kf, th) + 8;
}
constexpr int batch_wide_out_stride(int gw, int th) { return th * gw + 8; }
constexpr int64_t conn_batch_wide_bytes(int kf, int gw = 16, int th = 16) {
  return (kThreads / 32) * batch_warp_bytes(kf) +
         int64_t(batch_wide_channels(gw, th)) * 2 *
             ((kBatchSamples * batch_wide_stride(kf, gw, th) + batch_channel_pad(batch_wide_channels(gw, th))) +
              (kBatchSamples * batch_wide_out_stride(gw, th) + batch_channel_pad(batch_wide_channels(gw, th))));
}
// The weight-gradient kernels' diagonal sums (corr_mma.cuh, corr_batch_wide.cuh): a 16 x 8
// float32 product in shared memory by G column, rows of 16 X columns + 4 words apart (a
// fragment register's word stores in distinct banks, a diagonal's reads consecutive)
constexpr int kCorrDiagRow = corr_diag_row(1);
// corr_batch_wide.cuh (its weight gradient) on gw x gw grids (gw 16: planes of up to
// 16 x 16; 32: NCHW planes of up to 32 x 32, DWNet-T's 28 x 28 stage): a block is
// corr_wide_channels(gw) channels x kBatchSamples samples, G on gw x gw grids and X on
// gw x (gw + 8) grids (kf / 2, rounded up to even, zero columns first), a sample's grids an odd number of
// 16-byte units apart; then the warps' 16 x 8 diagonal areas and their tap sums (floats)
constexpr int corr_wide_channels(int gw) { return gw == 16 ? kBatchWideChannels : 1; }
constexpr int corr_wide_g_stride(int gw) { return gw * gw + 8; }
constexpr int corr_wide_x_stride(int gw) { return gw * (gw + 8) + 8; }
constexpr int64_t corr_batch_wide_bytes(int kf, int gw) {
  return 16 +
         2 * int64_t(corr_wide_channels(gw)) *
             ((kBatchSamples * corr_wide_g_stride(gw) + batch_channel_pad(corr_wide_channels(gw))) +
              (kBatchSamples * corr_wide_x_stride(gw) + batch_channel_pad(corr_wide_channels(gw)))) +
         4 * int64_t(kThreads / 32) * (8 * kCorrDiagRow + kf * kf);
}
// conn_sample.cuh (planes of up to 16 x 16, a filter of each sample's own): a block is
// sample_channels(gw) channels x kBatchSamples samples on grids gw values wide (16; 8 for
// planes of at most 8 x 8): sample_grid_rows(kf, gw) staged rows (the plane's rows, kf / 2
// zero rows above and the rest below), a sample's grid sample_stride(kf, gw) values apart
// (gw = 8: room for the rows 8..15 its A loads read past the plane), the output grid
// gw x gw, sample_out_stride(gw) apart (a channel's grids batch_channel_pad more). Shared memory:
// the warps' flags, every plane's filter pairs (kf x (kf + 2) words), the input grids,
// the output grids.
constexpr int sample_channels(int gw) { return gw == 16 ? 2 : 4; }
constexpr int sample_grid_rows(int kf, int gw) { return gw == 16 ? 16 + 2 * (kf / 2) : 8 + kf; }
// a grid row's stride: 16-wide rows 48 bytes apart (32 put ldmatrix's eight rows in four
// distinct 16-byte bank groups: two wavefronts a matrix; model, 64x384x14x14 float16:
// shared-bound at 13-15 us)
constexpr int sample_row_stride(int gw) { return gw == 16 ? 24 : 8; }
constexpr int sample_stride(int kf, int gw) {
  return gw == 16 ? sample_row_stride(gw) * sample_grid_rows(kf, gw) + 8 : 8 * (16 + kf);
}
constexpr int sample_out_stride(int gw) { return gw * gw + 8; }
constexpr int64_t conn_sample_bytes(int kf, int gw) {
  return 16 * (kThreads / 32) +
         int64_t(sample_channels(gw)) *
             (4 * kBatchSamples * kf * (kf + 2) +
              2 * (kBatchSamples * sample_stride(kf, gw) + batch_channel_pad(sample_channels(gw))) +
              2 * (kBatchSamples * sample_out_stride(gw) + batch_channel_pad(sample_channels(gw))));
}
// corr_sample.cuh (its weight gradient): X on a grid with kf / 2 zero rows and columns
// around the plane, rows corr_sample_x_stride(gw) values apart; G on a gw x gw grid, rows
// sample_row_stride(gw) apart; a channel's grids batch_channel_pad more than its samples'
constexpr int corr_sample_x_stride(int gw) { return gw == 16 ? 24 : 16; }
constexpr int64_t corr_sample_bytes(int kf, int gw) {
  return 16 * (kThreads / 32) +
         2 * int64_t(sample_channels(gw)) *
             ((kBatchSamples * ((gw + 2 * (kf / 2)) * corr_sample_x_stride(gw) + 8) +
               batch_channel_pad(sample_channels(gw))) +
              (kBatchSamples * (gw * sample_row_stride(gw) + 8) + batch_channel_pad(sample_channels(gw))));
}
// conn_pos.cuh (a position-specific weight): a thread's channels at most (its sums and a
// kernel row's weights within 80 registers: three blocks an SM; V: the weight's values a
// load, one by one keeps 3 offsets live; flip: conn2d_transpose, whose weights keep KF + 3
// clamped column offsets live), and the shared table of the staged planes'
// image offsets (then the staged rows)
constexpr int pos_channels(int kf, int v, bool flip = false) {
  return flip ? (kf >= 7 ? 4 : kf >= 5 ? 5 : 8) : kf >= 7 ? (v == 1 ? 5 : 6) : 8;
}
LC_HD constexpr int64_t pos_table_bytes(int64_t planes) { return (8 * planes + 15) / 16 * 16; }
constexpr int64_t kMaxSmem = 48 * 1024;  // shared memory per block without opt-in
// with opt-in (launch.cuh): every GPU with mma.sync (sm_80 on) has at least 99 KB
constexpr int64_t kMaxSmemOptIn = 99 * 1024;
// a block's shared memory at most on the device `a` runs on: the caller's figure
// (binding.cpp asks the device; sm_90: 227 KB), else kMaxSmemOptIn
inline int64_t smem_optin(const ConnArgs& a) {
  return a.smem_optin > kMaxSmemOptIn ? a.smem_optin : kMaxSmemOptIn;
}
static_assert(conn_batch_bytes(7) <= kMaxSmem && corr_batch_bytes(7) <= kMaxSmem &&
                  conn_batch_wide_bytes(7) <= kMaxSmem && corr_batch_wide_bytes(7, 16) <= kMaxSmem &&
                  conn_batch_wide_bytes(7, 32, 32) <= kMaxSmemOptIn &&
                  conn_batch_wide_bytes(7, 32, 16) <= kMaxSmemOptIn &&
                  corr_batch_wide_bytes(7, 32) <= kMaxSmemOptIn &&
                  conn_sample_bytes(7, 16) <= kMaxSmemOptIn &&
                  conn_sample_bytes(7, 8) <= kMaxSmem && corr_sample_bytes(7, 16) <= kMaxSmemOptIn &&
                  corr_sample_bytes(7, 8) <= kMaxSmem,
              "the batch kernels' blocks fit");
static_assert(kConnMmaClWarps * corr_mma_warp_bytes(7) <= kMaxSmemOptIn &&
              conn_mma_cl_bytes(7) <= kMaxSmem && conn_mma_cl_bytes(13) <= kMaxSmemOptIn,
              "the channels_last tensor-core blocks fit");
constexpr int64_t kMaxBlocks = (int64_t(1) << 31) - 1;
// bytes of a workspace at most: corr2d's split partials, conn2d's planes (plan_planes)
constexpr int64_t kMaxWorkspace = int64_t(1) << 28;
// ReduceSplits (corr_elem.cuh): runs of consecutive splits a result, one thread each
constexpr int kReduceParts = 4;

struct ConnTilePlan {
  int64_t P, TH, TW, GW;         // planes, output rows, output columns, column groups
  int64_t IH, IW;                // staged input rows and columns (largest span over tiles)
  int64_t row_tiles, col_tiles;
  bool vec;                      // stage rows with 16-byte loads (stage.cuh)
};

struct ConnPosPlan {
  int32_t Q, TH, GW, S, cpt;  // groups, output rows, strips of 4 a row, slices, channels a slice
  int32_t IH, IW;             // staged rows and columns (a multiple of 4)
  int64_t tiles_h, tiles_w;
  float inv_ih;               // 1 / IH (pos_stage.cuh pos_div)
  int32_t V;                  // weight values a load (4, 2, 1)
  bool channels_last;         // staging order: a pixel's channels together (any strides)
};

// conn_pos_mma.cuh: bytes of 8 positions' 16-value weight rows (the last 4 shifted by
// 16; output rows 2, 3 mod 4 by 16 more)
constexpr int32_t kPosMmaRowBytes = 288;

struct ConnPosMmaPlan {
  int32_t Q, iters;         // (n, g) groups a batch, batches a block
  int32_t RT, TW;           // output row pairs, columns (8 or 16)
  int32_t IH, CS;           // staged rows (of TW + 8 values), channel stride (bytes)
  int32_t NT;               // N tiles of 8 channels
  int32_t wbytes, gbytes;   // a group's weight bytes; its weight and image bytes
  // 1 / (2 RT), 1 / IH, 1 / cpg, 1 / (RT TW / 8), 1 / (8 NT)
  float inv_th2, inv_ih, inv_cpg, inv_tasks, inv_bias;
  bool pairs;  // the weight's rows in aligned 4-byte pairs of columns (a load per 2 taps)
};
// after the groups: their table (4 x 8 bytes each), the warps' flags, 16 zero bytes
constexpr int64_t pos_mma_tail(int64_t Q) { return 32 * Q + 4 * (kThreads / 32) + 16; }

struct CorrPosPlan {
  int32_t Q, TH, GW, cc;      // groups, rows, strips of 4 a row, channels a staging run
  int32_t IH, IW;             // b's staged rows and columns (a multiple of 4)
  int64_t tiles_h, tiles_w;
  float inv_th, inv_ih;       // 1 / TH, 1 / IH (pos_stage.cuh pos_div)
  float inv_strips, inv_gw;   // 1 / (TH GW), 1 / GW
  int32_t V;                  // values a store (4, 1)
  bool rows_a, rows_b;        // unit-stride rows (pos_stage.cuh)
};

struct ConnElemPlan {
  bool channels_last;  // threads follow the result's channels_last order
};

struct ConnRowsPlan {
  int64_t row_groups;  // groups of kConnTileR outputs per row
};

struct ConnMmaPlan {
  int64_t row_tiles, col_tiles;  // a plane's warp tiles (conn_mma.cuh, conn_mma_cl.cuh)
  int32_t piece;                 // conn_mma.cuh: staged in loads of `piece` values (mma_piece)
  int32_t samples;               // conn_mma.cuh: samples per warp (one filter setup for all)
  int32_t lead_max, ntiles;      // conn_mma.cuh: its instance's largest lead (7: any), N tiles
};

struct ConnBatchPlan {
  int64_t groups;      // blocks along the channels (of kBatchChannels)
  bool channels_last;  // staging order: a pixel's channels together (else a plane's rows)
  bool pairs;          // conn_batch_wide.cuh: images staged two columns a load (NCHW-like
                       // rows, 4-byte aligned, of an even width)
  bool pixel_pairs;    // ... channels_last images staged a pixel's two channels a load
  int32_t tile_h;      // conn_batch_wide.cuh on grids 32 wide: the output tiles' rows (32, 16)
  int32_t tiles_w;     // ... a plane's tiles across
  int32_t tiles;       // ... and in all
};

struct ConnRegPlan {
  int64_t samples;  // conn_reg.cuh: samples a block stages at once (1, 2, 4: reg_samples)
};

struct ConnStripPlan {
  int64_t row_strips, col_strips;  // strips of strip_rows(kf) rows, kStripCols columns
  int64_t chunk_bytes;             // loads of 16, 8 bytes, or one value (strip_chunk_bytes)
  bool channels_last;              // threads along the channels (else along the strips)
};

struct ConnBandPlan {
  int64_t P, BR;         // planes and row strips (of strip_rows(kf) rows) per block
  int64_t bands;         // blocks per plane (bands of BR row strips)
  int64_t col_strips;    // a row's strips of kStripCols columns (all in the block)
  int64_t IH, IW;        // staged rows per plane, floats per staged row
  FastDiv by_chunks, by_rows;  // division by the chunks of a staged row, by IH
  FastDiv by_cols, by_br;      // division by col_strips, by BR (a thread's strip)
  bool vec;              // input rows 16-byte aligned, whole chunks: 16-byte loads
  bool vec_out;          // result rows the same: whole strips stored 16 bytes at a time
};

struct ConnWidePlan {
  int64_t P, BR;         // planes and output rows per block
  int64_t bands;         // blocks per plane (bands of BR rows)
  int64_t col_strips;    // a row's strips of kWideCols columns (all in the block)
  int64_t IH, IW;        // staged rows per plane, floats per staged row
};

struct ConnBandClPlan {
  int64_t groups;        // blocks along a sample's channels (kBandClChannels each)
  int64_t BR, bands;     // row strips per block, blocks per (sample, channel group)
  int64_t cols;          // a strip's columns: kStripCols, or 7 (band_cl_cols)
  int64_t col_strips;    // a row's strips of cols columns (all in the block)
  int64_t IH, IW;        // staged rows, positions a row (kBandClChannels floats each)
  FastDiv by_bands, by_groups, by_cols;  // division by bands, groups, col_strips
  bool planes;           // the input in planes (NCHW-like): staged across, results staged
  bool vec;              // channels_last: 16-byte pieces of 4 channels (pixels_aligned);
                         // planes are staged by 4-byte copies
  bool vec_out;          // planes: the result's rows in 16-byte pieces of 4 columns (rows
                         // 16-byte aligned, whole pieces)
};

struct CorrStripPlan {
  int64_t row_strips, col_strips;  // strips of a plane (the last row, column may overhang)
  int64_t full_rows, full_cols;    // row and column strips wholly inside a
  int64_t tpr;                     // threads per result (a power of two, <= kThreads)
  bool channels_last;              // 32 results (channels) per warp, 8 threads each
  int64_t splits;                  // parts of each result's items (ReduceSplits adds them)
  int64_t chunk_bytes;             // loads of 16, 8 bytes, or one value (strip_chunk_bytes)
};

struct CorrBandPlan {
  int64_t groups;         // blocks of kThreads / 32 channels a result set (ceil(C / 8))
  int64_t splits;         // parts of each block's items (ReduceSplits adds them)
  int64_t items;          // (sample for Nw = 1,) band of `rows` output rows
  int64_t bands, rows;    // bands a plane, output rows a band (32 / csn strips of 2)
  int64_t csn;            // strips along a row: 2, 4, 8 (a power of two: lane = rs csn + cs)
  int64_t IW, AW;         // staged row pitches (words) of b and a (corr_band_pitch)
  int64_t buf_words;      // a buffer: (rows + KF - 1) rows of b, then rows of a
  int64_t lanes_per_row;  // staging: lanes (positions for CL) a row, 32 / it rows a pass
  int64_t vb;             // NCHW: words a copy (4, 2, 1); channels_last: 1
  bool channels_last;     // a and b channels_last (the block stages its channels together)
};

struct CorrMmaPlan {
  int64_t items;               // a result's halves: (batch index,) column tile, 8-row segment
  int64_t col_tiles, segments;  // per plane: column tiles of 64, segments of 8 rows
  int64_t splits;              // parts of each result's pairs of halves (ReduceSplits adds them)
  int32_t piece_a, piece_b;    // staging loads (mma_piece): a's rows; b's (1 unless padding KF / 2)
};

struct CorrTapsPlan {
  int64_t items;               // a result's items: (batch index,) column tile of 32, band of 8 X rows
  int64_t col_tiles, bands;    // per plane
  int64_t splits;              // parts of each result's items (ReduceSplits adds them)
  int32_t piece_a, piece_b;    // staging loads (mma_piece) of a's (G's) rows and b's (X's)
  bool fast_x;                 // padding KF / 2 and X's rows 4-byte aligned: aligned chunks
};

struct CorrBatchPlan {
  int64_t groups;      // blocks along the channels (of kBatchCorrChannels)
  int64_t splits;      // parts of the batch's sample groups (ReduceSplits adds them)
  bool cl_a, cl_b;     // staging order of a (G) and b (X): channels_last or not
  bool pairs;          // wide planes: G and X staged two columns a load (NCHW-like rows,
                       // 4-byte aligned, of an even width)
  bool pixel_pairs;    // ... channels_last G and X staged a pixel's two channels a load
};

struct CorrTilePlan {
  int64_t TH, TW, IH, IW, row_tiles, col_tiles;
  int64_t L, slots, taps_per_thread, splits;
  bool vec_a, vec_b;  // stage a / b rows with 16-byte loads (stage.cuh)
};

// corr_rows.cuh and corr_lanes.cuh (corr_channels.cuh)
struct CorrChannelsPlan {
  int64_t splits;
  int64_t chunks;  // blocks along the taps: corr_rows_chunk kernel rows / kLaneTaps taps each
  int64_t samples;  // corr_reg.cuh: samples a block stages at once (1, 2, 4; per-sample
                    // results: its warps' slots, and its blocks along the batch)
};

struct CorrElemPlan {
  int64_t L, slots, splits;
};

// corr_reg.cuh (the depth-wise weight gradient of planes 7 or 14 wide): a block's
// two staged planes (G, X) of 32 channels, a position's lanes kRegLaneStride words apart
constexpr int kRegLaneStride = 33;
LC_HD constexpr int64_t reg_plane_words(int64_t h, int64_t w) { return h * w * kRegLaneStride; }
constexpr int64_t kRegMaxRows = 16;
// taps a round of the warps' reduction ([32][8 x RT + 1] words)
LC_HD constexpr int reg_reduce_taps(int kf) { return kf * kf <= 25 ? kf * kf : 25; }
LC_HD constexpr int64_t reg_reduce_bytes(int kf) { return 4 * 32 * (8 * reg_reduce_taps(kf) + 1); }
inline bool reg_width(int64_t w) { return w == 7 || w == 14; }

// Which kernel a primitive runs (reported to Python for tests and benchmarks).
enum Kernel : int32_t {
  kConnTile = 0,      // conn_tile.cuh, run-time window
  kConnTileFixed = 1, // conn_tile.cuh, register fast path (KF = kernel size)
  kConnElem = 2,      // conn_elem.cuh
  kCorrTile = 3,      // corr_tile.cuh
  kCorrElem = 4,      // corr_elem.cuh
  kConnRows = 5,      // conn_rows.cuh (channels_last register fast path, KF = kernel size)
  kCorrRows = 6,      // corr_rows.cuh (channels_last depth-wise weight gradient, KF)
  kCorrLanes = 7,     // corr_lanes.cuh (channels_last depth-wise weight gradient, any window)
  kConnStrip = 8,     // conn_strip.cuh (register-blocked strips, KF = 3, 5, 7, both layouts)
  kCorrStrip = 9,     // corr_strip.cuh (depth-wise weight gradient on strips, KF = 3, 5, 7)
  kConnMma = 10,      // conn_mma.cuh (tensor cores, 16-bit NCHW, KF = 3, 5, 7, 13, 31)
  kCorrMma = 11,      // corr_mma.cuh (depth-wise weight gradient on tensor cores, KF = 3, 5, 7)
  kConnMmaCl = 12,    // conn_mma_cl.cuh (tensor cores, 16-bit channels_last, KF = 3, 5, 7)
  kCorrMmaCl = 13,    // corr_mma_cl.cuh (its weight gradient)
  kConnBand = 14,     // conn_band.cuh (strips on a staged band, NCHW, KF = 3, 5, 7)
  kConnBatch = 15,    // conn_batch.cuh (tensor cores, planes of at most 8 x 8, KF = 3, 5, 7)
  kCorrBatch = 16,    // corr_batch.cuh (its weight gradient)
  kConnBatchWide = 17,  // conn_batch_wide.cuh (the same for planes of up to 16 x 16)
  kConnPos = 18,      // conn_pos.cuh (a position-specific weight, KF = 3, 5, 7)
  kCorrPos = 19,      // corr_pos.cuh (its weight gradient)
  kConnPlanes = 20,   // planes.cuh (channels_last images to NCHW planes and back)
  kCorrPixels = 21,   // planes.cuh (NCHW images to channels_last pixels for corr_rows.cuh)
  kConnSample = 22,   // conn_sample.cuh (tensor cores, planes of up to 16 x 16, per-sample filters)
  kCorrSample = 23,   // corr_sample.cuh (its weight gradient)
  kCorrBatchWide = 24,  // corr_batch_wide.cuh (corr_batch.cuh for planes of up to 16 x 16)
  kCorrBatchLarge = 25,  // corr_batch_wide.cuh on 32 x 32 grids (NCHW planes of up to 32 x 32)
  kCorrReg = 26,      // corr_reg.cuh (depth-wise weight gradient, planes 7 or 14 wide)
  kConnReg = 27,      // conn_reg.cuh (depth-wise conn2d, planes 7 or 14 wide)
  kConnBandCl = 28,   // conn_band_cl.cuh (strips on a staged channels_last band, float32)
  kConnWide = 29,     // conn_wide.cuh (float32 13 x 13 and 31 x 31 on a staged band)
  kConnPosMma = 30,   // conn_pos_mma.cuh (conn_pos on tensor cores: 16-bit, planes <= 16 x 16)
  kConnBatchLarge = 31,  // conn_batch_wide.cuh on grids 32 wide (planes past 16 x 16, tiled past 32)
  kCorrTapsMma = 32,  // corr_taps_mma.cuh (16-bit NCHW 13 x 13 / 31 x 31 weight gradient, taps as M)
  kCorrTapsMmaCl = 33,  // corr_taps_mma_cl.cuh (its channels_last version)
  kCorrBand = 34,     // corr_band.cuh (float32 depth-wise weight gradient on a staged band)
};

struct Launch {
  int32_t kernel;
  int64_t blocks;
  int32_t threads;
  int64_t smem;
  int32_t kf;                 // kConnTileFixed: the kernel size
  ConnTilePlan conn_tile;
  ConnElemPlan conn_elem;
  ConnRowsPlan conn_rows;
  ConnStripPlan conn_strip;
  ConnBandPlan conn_band;
  ConnBandClPlan conn_band_cl;
  ConnWidePlan conn_wide;
  ConnMmaPlan conn_mma;
  ConnBatchPlan conn_batch;
  ConnPosPlan conn_pos;
  ConnPosMmaPlan conn_pos_mma;
  ConnRegPlan conn_reg;
  CorrTilePlan corr_tile;
  CorrStripPlan corr_strip;
  CorrBandPlan corr_band;
  CorrMmaPlan corr_mma;
  CorrTapsPlan corr_taps;
  CorrBatchPlan corr_batch;
  CorrChannelsPlan corr_channels;  // kCorrRows, kCorrLanes
  CorrElemPlan corr_elem;
  CorrPosPlan corr_pos;
  int64_t workspace_bytes;    // corr2d: split partial sums
};

inline int64_t acc_bytes(int32_t dtype) { return dtype == kFloat64 ? 8 : 4; }
inline int64_t elem_bytes(int32_t dtype) {
  return dtype == kFloat64 ? 8 : (dtype == kFloat32 ? 4 : 2);
}
inline bool image_rows_vectorizable(const void* base, const Image& s, int32_t dtype) {
  return rows_vectorizable(base, elem_bytes(dtype), s.n, s.c, s.h, s.w);
}

inline int64_t next_pow2(int64_t v) {
  int64_t p = 1;
  while (p < v) p *= 2;
  return p;
}

// The largest input span any output tile of `tile` outputs reads along an axis.
inline int64_t max_span(const Axis& a, int32_t window, int64_t tile) {
  int64_t best = 0;
  for (int64_t o0 = 0; o0 < a.out; o0 += tile) {
    int64_t lo, ext;
    input_span(a, window, o0, min_of(o0 + tile, a.out) - 1, &lo, &ext);
    best = max_of(best, ext);
  }
  if (window == kSliding)  // a partial last tile's threads still read a full tile's span
    best = max_of(best, (tile - 1) * a.s + (a.k - 1) * a.d + 1);
  return best;
}

inline bool channels_last_image(const Image& s, int64_t C) { return C > 1 && s.c == 1; }

// Unit-stride rows of an image (pos_stage.cuh's four columns a thread; else a pixel's
// channels a thread, with 32-bit channel offsets inside a group)
inline bool pos_image_rows(const Image& s, int64_t C) {
  return s.w == 1 && !channels_last_image(s, C);
}
// ... and an image pos_stage.cuh can stage with cpg channels a group
inline bool pos_image_fits(const Image& s, int64_t C, int64_t cpg) {
  return s.c >= 0 && (pos_image_rows(s, C) || s.c * cpg < (int64_t(1) << 31));
}

// The fixed kernel sizes of the register fast path (compile time matters: a few only).
inline bool fixed_kernel(int64_t k) { return k == 3 || k == 5 || k == 7 || k == 13 || k == 31; }

// A KF x KF sliding window with stride 1 and dilation 1 (the register fast paths;
// 3, 5, 7 on strips, conn_strip.cuh / corr_strip.cuh, elsewhere with run-time windows).
inline bool fixed_window(const Problem& p) {
  return p.window == kSliding && p.h.s == 1 && p.w.s == 1 && p.h.d == 1 && p.w.d == 1 &&
         p.h.k == p.w.k && fixed_kernel(p.h.k);
}

// A fixed window the strips (3, 5, 7) do not take: 13, 31 (conn_rows, corr_rows,
// conn_tile's register path).
inline bool large_fixed_window(const Problem& p) {
  return fixed_window(p) && !strip_kernel(p.h.k);
}

// channels_last rows: one thread per channel and kConnTileR outputs of a row.
inline Launch plan_conn_rows(const ConnArgs& a) {
  const Problem& p = a.p;
  Launch l{};
  l.kernel = kConnRows;
  l.kf = int32_t(p.h.k);
  l.threads = kThreads;
  l.conn_rows.row_groups = ceil_div(p.w.out, kConnTileR);
  l.blocks = ceil_div(p.N * p.h.out * l.conn_rows.row_groups * p.C, kThreads);
  return l;
}

// Offsets inside an image plane of `rows` rows (row stride sh) and `cols` columns
// (column stride sw) fit 32 bits, with room for the strips' rows and columns past
// its edges (whose addresses are formed but never dereferenced).
inline bool plane_fits_32(int64_t rows, int64_t sh, int64_t cols, int64_t sw = 1) {
  const int64_t lim = (int64_t(1) << 31) - 4096;
  return sh >= 0 && sw >= 0 && (rows + 64) * sh + (cols + 64) * sw < lim;
}

// The chunks conn_strip.cuh / corr_strip.cuh load rows in: 16 or 8 bytes where the
// padding is KF / 2 (the chunk offset is then compile-time) and the rows of `in` (and
// of `out`, if given) are aligned and a whole number of chunks long; else one value.
inline int64_t strip_chunk_bytes(const Problem& p, const void* in, const Image& in_s,
                                 const void* out, const Image& out_s) {
  const int64_t b = elem_bytes(p.dtype);
  if (p.w.p != p.w.k / 2) return b;
  for (const int64_t bytes : {int64_t(16), int64_t(8)}) {
    if (bytes > b && p.w.in % (bytes / b) == 0 &&
        rows_aligned(in, b, in_s.n, in_s.c, in_s.h, in_s.w, bytes) &&
        (out == nullptr || rows_aligned(out, b, out_s.n, out_s.c, out_s.h, out_s.w, bytes)))
      return bytes;
  }
  return b;
}

// Register-blocked strips (conn_strip.cuh), if the problem fits them: a fixed 3/5/7
// window; NCHW-like with unit-stride rows, or a channels_last input; offsets
// inside an image plane within 32 bits; not float64 (its filter and sums would
// spill: it runs the run-time window kernels).
inline bool strip_fits(const ConnArgs& a) {
  const Problem& p = a.p;
  const bool cl = channels_last_image(a.src_s, p.C);  // the result in any layout
  const bool nchw = a.src_s.w == 1 && a.dst_s.w == 1 && !channels_last_image(a.dst_s, p.C);
  return fixed_window(p) && strip_kernel(p.h.k) && p.dtype != kFloat64 && (cl || nchw) &&
         plane_fits_32(p.h.in, a.src_s.h, p.w.in, a.src_s.w) &&
         plane_fits_32(p.h.out, a.dst_s.h, p.w.out, a.dst_s.w);
}

inline Launch plan_conn_strip(const ConnArgs& a) {
  const Problem& p = a.p;
  Launch l{};
  l.kernel = kConnStrip;
  l.kf = int32_t(p.h.k);
  l.threads = kThreads;
  ConnStripPlan& t = l.conn_strip;
  t.row_strips = ceil_div(p.h.out, strip_rows(int(p.h.k)));
  t.col_strips = ceil_div(p.w.out, kStripCols);
  t.channels_last = channels_last_image(a.src_s, p.C);
  t.chunk_bytes = t.channels_last ? elem_bytes(p.dtype)
                                  : strip_chunk_bytes(p, a.src, a.src_s, nullptr, Image{});
  l.blocks = ceil_div(p.N * p.C * t.row_strips * t.col_strips, kThreads);
  return l;
}

// A filter whose taps sit KF apart a row and 1 apart a column (every filter the
// operator makes; a slice of a wider one is not): the band kernels load its taps at
// constant offsets (load_dense_filter), others run the strips
inline bool dense_filter(const ConnArgs& a) { return a.w_s.kw == 1 && a.w_s.kh == a.p.w.k; }

// Strips on a staged band (conn_band.cuh), if the problem fits them: the strips' NCHW
// problems (strip_fits without a channels_last input: unit-stride rows both sides)
// with the column padding KF / 2, a dense filter, and a block that fits (plan_conn_band:
// blocks > 0).
inline bool band_fits(const ConnArgs& a) {
  return strip_fits(a) && !channels_last_image(a.src_s, a.p.C) && a.p.w.p == a.p.w.k / 2 &&
         dense_filter(a);
}

// P planes x a band of BR row strips x every column strip per block (about kThreads
// strips), the band's rows staged as float32 within kMaxSmem (fewer planes, then
// fewer rows until it fits; blocks == 0 if one row strip does not).
inline Launch plan_conn_band(const ConnArgs& a) {
  const Problem& p = a.p;
  const int kf = int(p.h.k), eb = int(elem_bytes(p.dtype)), L = band_lead(eb);
  const int64_t RS = strip_rows(kf), planes = p.N * p.C;
  Launch l{};
  l.kernel = kConnBand;
  l.kf = kf;
  ConnBandPlan& t = l.conn_band;
  t.col_strips = ceil_div(p.w.out, kStripCols);
  if (t.col_strips > kThreads) return Launch{};
  const int64_t row_strips = ceil_div(p.h.out, RS);
  t.IW = ceil_div(max_of(kStripCols * (t.col_strips - 1) + band_reach(kf, eb), L + p.w.in), L) * L;
  int64_t BR = min_of(row_strips, max_of(int64_t(1), kThreads / t.col_strips));
  for (;;) {
    t.bands = ceil_div(row_strips, BR);
    t.BR = ceil_div(row_strips, t.bands);  // the rows split evenly
    t.IH = t.BR * RS + kf - 1;
    t.P = t.bands == 1 ? min_of(planes, max_of(int64_t(1), kThreads / (t.BR * t.col_strips))) : 1;
    while (t.P > 1 && band_smem(t.P, t.IH, t.IW) > kMaxSmem) --t.P;
    l.smem = band_smem(t.P, t.IH, t.IW);
    if (l.smem <= kMaxSmem) break;
    if (BR == 1) return Launch{};
    BR = t.BR - 1;
  }
  t.by_chunks = FastDiv::of(uint32_t(t.IW / L));
  t.by_rows = FastDiv::of(uint32_t(t.IH));
  t.by_cols = FastDiv::of(uint32_t(t.col_strips));
  t.by_br = FastDiv::of(uint32_t(t.BR));
  t.vec = p.w.in % L == 0 &&
          rows_aligned(a.src, eb, a.src_s.n, a.src_s.c, a.src_s.h, a.src_s.w, 16);
  t.vec_out = p.w.out % L == 0 &&
              rows_aligned(a.dst, eb, a.dst_s.n, a.dst_s.c, a.dst_s.h, a.dst_s.w, 16);
  l.threads = int32_t(ceil_div(t.P * t.BR * t.col_strips, 32) * 32);
  l.blocks = ceil_div(planes, t.P) * t.bands;
  return l;
}

// float32 13 x 13 and 31 x 31 on a staged band (conn_wide.cuh): a fixed window, a weight
// shared across positions, the column padding KF / 2, input and result in planes
// (NCHW-like, any strides; channels_last images come through planes), offsets inside a
// plane within 32 bits, a block that fits (plan_conn_wide: blocks > 0).
inline bool wide_fits(const ConnArgs& a) {
  const Problem& p = a.p;
  return large_fixed_window(p) && p.dtype == kFloat32 && !a.pos_h && !a.pos_w &&
         p.w.p == p.w.k / 2 && !channels_last_image(a.src_s, p.C) &&
         !channels_last_image(a.dst_s, p.C) &&
         plane_fits_32(p.h.in, a.src_s.h, p.w.in, a.src_s.w) &&
         plane_fits_32(p.h.out, a.dst_s.h, p.w.out, a.dst_s.w) &&
         a.w_s.kh >= 0 && a.w_s.kw >= 0 && (p.h.k - 1) * (a.w_s.kh + a.w_s.kw) < (int64_t(1) << 31);
}

// P planes x a band of BR output rows x every column strip per block (about kThreads
// strips), the band and the planes' filters within kMaxSmem (fewer planes, then fewer
// rows until it fits; blocks == 0 if one row does not).
inline Launch plan_conn_wide(const ConnArgs& a) {
  const Problem& p = a.p;
  const int kf = int(p.h.k);
  const int64_t planes = p.N * p.C;
  Launch l{};
  l.kernel = kConnWide;
  l.kf = kf;
  ConnWidePlan& t = l.conn_wide;
  t.col_strips = ceil_div(p.w.out, int64_t(kWideCols));
  if (t.col_strips > kThreads) return Launch{};
  // (4 mod 8 floats: a quarter warp's 16-byte loads from two rows conflict-free)
  t.IW = ceil_div(max_of(kWideCols * (t.col_strips - 1) + 4 * int64_t(wide_chunks(kf)),
                         wide_lead(kf) + p.w.in) - 4, int64_t(8)) * 8 + 4;
  int64_t BR = min_of(p.h.out, max_of(int64_t(1), kThreads / t.col_strips));
  for (;;) {
    t.bands = ceil_div(p.h.out, BR);
    t.BR = ceil_div(p.h.out, t.bands);  // the rows split evenly
    t.IH = t.BR + kf - 1;
    t.P = t.bands == 1 ? min_of(planes, max_of(int64_t(1), kThreads / (t.BR * t.col_strips))) : 1;
    while (t.P > 1 && wide_smem(t.P, t.IH, t.IW, kf) > kMaxSmem) --t.P;
    l.smem = wide_smem(t.P, t.IH, t.IW, kf);
    if (l.smem <= kMaxSmem) break;
    if (BR == 1) return Launch{};
    BR = t.BR - 1;
  }
  l.threads = int32_t(ceil_div(t.P * t.BR * t.col_strips, 32) * 32);
  l.blocks = ceil_div(planes, t.P) * t.bands;
  return l;
}

// conn_mma.cuh's 3/5/7 output planes: 16 x 16 at least, or 14 x 14 for a filter the
// samples share (two samples a warp, conn_mma_samples). Its warp tile is 16 x 32; on
// smaller planes and per-sample 14 x 14 ones the band / strips are predicted as fast
// or faster (model, float16 14 x 14: static 19-24 us here against 21-26 on the band,
// per-sample 25-30 against 21-26; 7 x 7 42-53 against 15-23; NOTES.md).
inline bool mma_plane(const ConnArgs& a) {
  const Problem& p = a.p;
  const int64_t least = a.w_s.n == 0 ? 14 : 16;
  return p.h.out >= least && p.w.out >= least;
}

// Tensor cores (conn_mma.cuh), if the problem fits them: a fixed window (3, 5, 7, 13,
// 31), half or bfloat16, NCHW-like input and result with unit-stride rows, offsets
// inside a plane within 32 bits; for 3, 5, 7 an output plane mma_plane takes.
inline bool mma_fits(const ConnArgs& a) {
  const Problem& p = a.p;
  return fixed_window(p) && (p.dtype == kFloat16 || p.dtype == kBFloat16) &&
         (p.h.k >= 13 || mma_plane(a)) && a.src_s.w == 1 &&
         a.dst_s.w == 1 && !channels_last_image(a.src_s, p.C) &&
         !channels_last_image(a.dst_s, p.C) && plane_fits_32(p.h.in, a.src_s.h, p.w.in) &&
         plane_fits_32(p.h.out, a.dst_s.h, p.w.out);
}

// The warp-per-task tensor-core kernels: as many warps per block as kMaxSmem holds
// with `per_warp` bytes each (8 at most); sets threads and smem, returns the warps.
inline int64_t warp_blocks(Launch* l, int64_t per_warp) {
  const int64_t warps = min_of(int64_t(kThreads / 32), kMaxSmem / per_warp);
  l->threads = int32_t(32 * warps);
  l->smem = warps * per_warp;
  return warps;
}

// conn_mma.cuh's blocks: warp_blocks's, or 2, 4 or 8 warps (up to kMaxSmemOptIn,
// launch.cuh) where that keeps more warps on a multiprocessor. Its instances are capped at
// 128 registers (16 warps an SM); e.g. 31 x 31 (13 KB a warp): warp_blocks's 3 warps
// make five blocks of 15 warps on sm_90's 228 KB, 2 warps eight blocks of 16; 13 x 13
// for any lead (7 KB): 6 warps, two blocks of 12, against 8 warps (57 KB), two of 16.
inline int64_t mma_warp_blocks(Launch* l, int64_t per_warp) {
  int64_t warps = warp_blocks(l, per_warp);
  const auto resident = [&](int64_t w) {  // sm_90: 228 KB, 1 KB reserved a block
    return min_of(int64_t(16) / w, int64_t(228 * 1024) / (w * per_warp + 1024)) * w;
  };
  for (int64_t w = 2; w <= 8; w *= 2)
    if (w * per_warp <= kMaxSmemOptIn && resident(w) > resident(warps)) warps = w;
  l->threads = int32_t(32 * warps);
  l->smem = warps * per_warp;
  return warps;
}

// Each pixel's channels c0..c0 + V - 1 (c0 a multiple of V = 16 / eb; 8 for the 16-bit
// types) are one aligned 16-byte chunk: unit channel stride, the base and the other
// strides multiples of 16 bytes, C % V == 0.
inline bool pixels_aligned(const void* base, const Image& s, int64_t C, int64_t eb = 2) {
  return C % (16 / eb) == 0 && rows_aligned(base, eb, s.n, s.h, s.w, s.c, 16);
}

// Strips on a staged channels_last band (conn_band_cl.cuh), if the problem fits them:
// strip_fits's float32 problems (a channels_last input with the result in any layout,
// or NCHW-like planes both sides), the column padding KF / 2, a dense filter (taps KF
// apart a row), and at most kThreads / kBandClChannels column strips (rows of up to 64,
// input and output); a block that fits (plan_conn_band_cl: blocks > 0). Predicted (model, H200,
// float32 7 x 7, 28 x 28 and 56 x 56): benchmarks/results/model/NOTES.md.
inline bool band_cl_fits(const ConnArgs& a) {
  const Problem& p = a.p;
  const int64_t widest = kThreads / kBandClChannels * kStripCols;  // (and its input rows)
  return strip_fits(a) && p.dtype == kFloat32 && p.w.p == p.w.k / 2 && dense_filter(a) &&
         p.w.out <= widest && p.w.in <= widest;
}

// conn_band_cl's strip width for output rows of wo: of kStripCols and 7, the one with the
// fewer columns computed per thread slot of two blocks of kThreads (columns past wo are
// computed and dropped; a block of fewer threads leaves schedulers short of warps), the
// wider on a tie (fewer loads an output). DWNet's rows (56, 28, 14, 7) take 7: e.g. 56 is
// eight strips, 256 threads, where 8 makes seven (224: 14 warps a multiprocessor), and 28
// is four strips of 7 where four of 8 compute 32 columns.
inline int64_t band_cl_cols(int64_t wo, int64_t row_strips) {
  int64_t best = kStripCols, best_cost = 0;
  for (int64_t w : {int64_t(kStripCols), int64_t(7)}) {
    const int64_t strips = ceil_div(wo, w);
    if (strips > kThreads / kBandClChannels) continue;
    const int64_t threads = kBandClChannels * strips *
                            min_of(row_strips, kThreads / (kBandClChannels * strips));
    const int64_t cost = strips * w * kThreads / min_of(threads, int64_t(kThreads));
    if (best_cost == 0 || cost < best_cost) best = w, best_cost = cost;
  }
  return best;
}

// conn_band_cl's shared bytes before the band: the block's kBandClChannels filters of
// kf x kf float32 taps (a multiple of 128 bytes)
constexpr int64_t band_cl_filter_bytes(int64_t kf) { return kBandClChannels * kf * kf * 4; }

// kBandClChannels channels of a sample x a band of BR row strips x every column strip a
// block (at most kThreads threads), the filters and the band within kMaxSmemOptIn (fewer
// rows until they fit; blocks == 0 if one row strip does not)
inline Launch plan_conn_band_cl(const ConnArgs& a) {
  const Problem& p = a.p;
  const int kf = int(p.h.k);
  const int64_t RS = strip_rows(kf), row_strips = ceil_div(p.h.out, RS);
  Launch l{};
  l.kernel = kConnBandCl;
  l.kf = kf;
  ConnBandClPlan& t = l.conn_band_cl;
  t.planes = !channels_last_image(a.src_s, p.C);
  const int64_t PS = kBandClChannels + (t.planes ? 1 : 0);  // words a staged position
  t.cols = band_cl_cols(p.w.out, row_strips);
  t.col_strips = ceil_div(p.w.out, t.cols);
  t.IW = t.cols * t.col_strips + kf - 1;
  int64_t BR = min_of(row_strips, kThreads / (kBandClChannels * t.col_strips));
  for (;;) {
    t.bands = ceil_div(row_strips, BR);
    t.BR = ceil_div(row_strips, t.bands);  // the rows split evenly
    t.IH = t.BR * RS + kf - 1;
    l.smem = band_cl_filter_bytes(kf) + PS * t.IH * t.IW * 4;
    if (l.smem <= kMaxSmemOptIn) break;
    if (t.BR == 1) return Launch{};
    BR = t.BR - 1;
  }
  t.groups = ceil_div(p.C, int64_t(kBandClChannels));
  t.by_bands = FastDiv::of(uint32_t(t.bands));
  t.by_groups = FastDiv::of(uint32_t(t.groups));
  t.by_cols = FastDiv::of(uint32_t(t.col_strips));
  t.vec = !t.planes && pixels_aligned(a.src, a.src_s, p.C, 4);
  t.vec_out = t.planes && p.w.out % 4 == 0 &&
              rows_aligned(a.dst, 4, a.dst_s.n, a.dst_s.c, a.dst_s.h, a.dst_s.w, 16);
  l.threads = int32_t(kBandClChannels * t.BR * t.col_strips);
  l.blocks = p.N * t.groups * t.bands;
  return l;
}

// Tensor cores for channels_last (conn_mma_cl.cuh): a fixed 3/5/7/13 window, or 31 at a
// lead of at most 2 (the centred window's) where the device lets a block have its 110 KB
// (sm_90; elsewhere plan_planes), half or
// bfloat16, output planes of 14 x 14 at least (DWNet-T's 14 x 14 stage: 21-26 us on
// tensor cores against 22-53 on the strips, predicted; 7 x 7 stays on the strips),
// input and result with aligned 8-channel pixels (pixels_aligned), offsets inside an
// image within 32 bits.
inline bool mma_cl_kernel(const ConnArgs& a) {
  const int64_t k = a.p.h.k;
  if (k == 31)
    return conn_mma_lead(a.p.w.p) <= conn_mma_lead_max(31) &&
           conn_mma_cl_bytes(31, conn_mma_lead_max(31)) <= smem_optin(a);
  return strip_kernel(k) || k == 13;
}
inline bool mma_cl_fits(const ConnArgs& a) {
  const Problem& p = a.p;
  return fixed_window(p) && mma_cl_kernel(a) &&
         (p.dtype == kFloat16 || p.dtype == kBFloat16) && p.h.out >= 14 && p.w.out >= 14 &&
         pixels_aligned(a.src, a.src_s, p.C) &&
         pixels_aligned(a.dst, a.dst_s, p.C) && plane_fits_32(p.h.in, a.src_s.h, p.w.in, a.src_s.w) &&
         plane_fits_32(p.h.out, a.dst_s.h, p.w.out, a.dst_s.w);
}

// The largest lead of the conn_mma.cuh instance for `a` (conn_mma_cl.cuh's too): its
// kernel size's small-lead instance where the lead allows, else 7
inline int32_t conn_mma_lead_max(const ConnArgs& a) {
  const int kf = int(a.p.h.k);
  return conn_mma_lead(a.p.w.p) <= conn_mma_lead_max(kf) ? conn_mma_lead_max(kf) : 7;
}

// Samples per warp (conn_mma.cuh) or block (conn_mma_cl.cuh): a filter the samples share
// on planes of 4 warp tiles at most (28 x 28 and smaller; 32 x 32 at 13 and 31): two
// samples of the channel, the filter's B fragments (13, 31: its pairs table) set up once
// (about a fifth of a 28 x 28 plane's instructions; model: NCHW stage 2 18-22 -> 16-19
// us; float16 13 x 13 on 32 x 32 51-63 -> 44-54); larger planes keep one (their setup is
// a small share, and halving the blocks would cost whole waves).
inline int32_t conn_mma_samples(const ConnArgs& a, const ConnMmaPlan& t) {
  return a.w_s.n == 0 && t.row_tiles * t.col_tiles * t.ntiles <= 4 * kConnMmaNTiles ? 2 : 1;
}

// a block of kConnMmaClWarps channels of one image
inline Launch plan_conn_mma_cl(const ConnArgs& a) {
  const Problem& p = a.p;
  Launch l{};
  l.kernel = kConnMmaCl;
  l.kf = int32_t(p.h.k);
  l.threads = 32 * kConnMmaClWarps;
  ConnMmaPlan& t = l.conn_mma;
  t.lead_max = conn_mma_lead_max(a);
  l.smem = conn_mma_cl_bytes(l.kf, t.lead_max);
  t.row_tiles = ceil_div(p.h.out, int64_t(16 * conn_mma_mtiles(l.kf)));
  t.col_tiles = ceil_div(p.w.out, int64_t(8 * kConnMmaNTiles)), t.ntiles = kConnMmaNTiles;
  t.samples = conn_mma_samples(a, t);
  l.blocks = ceil_div(p.N, int64_t(t.samples)) * (p.C / kConnMmaClWarps);
  return l;
}

// The loads the tensor-core kernels stage rows of 16-bit values in (mma.cuh chunk_pieces):
// pieces of 8, 4 or 2 values (16, 8, 4 bytes), the widest the rows of `base` (strides
// n, c, h, unit w) are aligned to, else 1 (value by value). A chunk starts on a multiple
// of 8 columns, so a piece lies wholly inside a row unless the row's end cuts it (W not a
// multiple of the piece: that chunk goes value by value). 28 x 28 half rows (56 bytes):
// 8-byte pieces (model: the stage-2 forward 27-34 -> 18-22 us, NOTES.md 2026-11-30).
inline int32_t mma_piece(const void* base, const Image& s) {
  for (const int32_t e : {8, 4, 2})
    if (rows_aligned(base, 2, s.n, s.c, s.h, s.w, 2 * e)) return e;
  return 1;
}

// The offsets of conn_batch.cuh's block (kBatchSamples samples, kBatchChannels channels, a
// plane of at most 8 x 8) from its first value fit 32 bits.
inline bool block_span_32(const Image& s, int64_t channels, int64_t side,
                          int64_t samples = kBatchSamples) {
  const int64_t lim = (int64_t(1) << 31) - 1;
  return s.n >= 0 && s.c >= 0 && s.h >= 0 && s.w >= 0 &&
         samples * s.n + channels * s.c + side * s.h + side * s.w < lim;
}
inline bool batch_span_32(const Image& s) { return block_span_32(s, kBatchChannels, 8); }

// ... and of conn_sample.cuh's (16 samples, 4 channels, a plane of 16 x 16)
inline bool sample_span_32(const Image& s) { return block_span_32(s, 4, 16); }

// ... and of corr_batch_wide.cuh's on 32 x 32 grids (16 samples, a channel, 32 x 32; conn's
// tiles of larger planes: the whole plane, `side` its larger side)
inline bool large_span_32(const Image& s, int64_t side = 32) { return block_span_32(s, 1, side); }

// Tensor cores with the batch as M (conn_batch.cuh, conn_batch_wide.cuh), if the problem
// fits them: a 3/5/7 window with padding KF / 2 (so the output plane is the input's), half
// or bfloat16, planes of at most 16 x 16 (DWNet-T's 7 x 7 and 14 x 14 stages:
// batch_plane), a weight the samples share
// (static depth-wise), any strides (values are staged one by one) with a block's offsets
// (16 samples, 8 channels, a plane) within 32 bits.
// Predicted (model, H200, float16 64x768x7x7): 4.3-4.9 us against 15-23 on the band / strips
// (benchmarks/results/model/NOTES.md, 2026-11-30 third session).
inline bool batch_plane_within(const Problem& p, int64_t side) {
  return fixed_window(p) && strip_kernel(p.h.k) && (p.dtype == kFloat16 || p.dtype == kBFloat16) &&
         p.h.p == p.h.k / 2 && p.w.p == p.w.k / 2 && p.h.in <= side && p.w.in <= side &&
         p.h.out == p.h.in && p.w.out == p.w.in;
}
inline bool batch_plane(const Problem& p) { return batch_plane_within(p, 16); }
// the wide batch kernels' two-column staging (batch_stage.cuh batch_load_pairs): both
// images' rows NCHW-like, 4-byte aligned, of an even width
inline bool batch_pairs(const Problem& p, const void* x, const Image& xs, const void* y,
                        const Image& ys) {
  return p.w.in % 2 == 0 && rows_aligned(x, 2, xs.n, xs.c, xs.h, xs.w, 4) &&
         rows_aligned(y, 2, ys.n, ys.c, ys.h, ys.w, 4);
}
// the wide batch kernels' channels_last staging of two channels a block
// (batch_stage.cuh batch_load_pixel): both images' pixels with unit channel stride, an
// even C, every pixel's channel pairs 4-byte aligned
inline bool batch_pixel_pairs(const Problem& p, const void* x, const Image& xs, const void* y,
                              const Image& ys) {
  return p.C % 2 == 0 && rows_aligned(x, 2, xs.n, xs.h, xs.w, xs.c, 4) &&
         rows_aligned(y, 2, ys.n, ys.h, ys.w, ys.c, 4);
}
// planes of at most 8 x 8 (conn_batch.cuh, corr_batch.cuh), else up to 16 x 16
// (conn_batch_wide.cuh)
inline bool batch_narrow(const Problem& p) { return p.h.in <= 8 && p.w.in <= 8; }
// a block's offsets within 32 bits: 8 x 8 planes batch_span_32, wider sample_span_32 (rows
// and columns up to 15)
inline bool batch_block_32(const Problem& p, const Image& s) {
  return batch_narrow(p) ? batch_span_32(s) : sample_span_32(s);
}
// conn_batch_wide.cuh's tile height on grids 32 wide: 16 rows of two channels for a
// channels_last image (a pixel's two values staged together: one channel would read a
// 32-byte sector for each 2-byte value), else 32 rows of one channel
inline int batch_large_rows(const ConnArgs& a) {
  return channels_last_image(a.src_s, a.p.C) ? 16 : 32;
}
inline bool batch_fits(const ConnArgs& a) {
  const Problem& p = a.p;
  if (batch_plane(p))
    return a.w_s.n == 0 && batch_block_32(p, a.src_s) && batch_block_32(p, a.dst_s);
  // conn_batch_wide.cuh on grids 32 wide (DWNet-T's 28 x 28 stage, and its 56 x 56 stage
  // as tiles; model, H200 float16: NOTES.md 2026-12-03 (5) to (7)), tiles of
  // batch_large_rows x 32; planes past 32 x 32 where the tiles' outputs are at least three
  // quarters inside the plane (56 x 56: 77%; a 33-wide plane would be half empty). The
  // block's offsets (16 samples, 2 channels, the plane) within 32 bits.
  // Channels_last images whose pixels conn_mma_cl takes (16-byte groups) go there instead.
  // Measured on an H200 (benchmarks/results/nvidia-h200, float16, 7 x 7): these tiles of
  // two channels ran 258 us on 56 x 56 planes and 115 us on 28 x 28, against PyTorch's 138
  // and 82 us; conn_mma_cl ran the same planes with per-sample filters in 101 and 55 us.
  // The likely cause is that each 4-byte load or store takes a 32-byte sector of 16
  // channels. That is L2 traffic, which the cost model does not count (NOTES.md 2026-12-04 (6)).
  if (channels_last_image(a.src_s, p.C) && mma_cl_fits(a)) return false;
  const int64_t side = max_of(p.h.in, p.w.in), span = max_of(side, int64_t(32));
  const int64_t th = batch_large_rows(a);
  const int64_t tiles = ceil_div(p.h.in, th) * ceil_div(p.w.in, int64_t(32));
  return batch_plane_within(p, side) && (side <= 32 || 4 * p.h.in * p.w.in >= 3 * 32 * th * tiles) &&
         a.w_s.n == 0 && block_span_32(a.src_s, 2, span) && block_span_32(a.dst_s, 2, span) &&
         tiles < (int64_t(1) << 31) / 64;
}

// a block per kBatchChannels (wide planes: kBatchWideChannels) channels x kBatchSamples
// samples
inline Launch plan_conn_batch(const ConnArgs& a) {
  const Problem& p = a.p;
  Launch l{};
  const bool narrow = batch_narrow(p);
  const int gw = batch_plane(p) ? 16 : 32;  // (wide planes: the grids' width)
  ConnBatchPlan& t = l.conn_batch;
  t.channels_last = channels_last_image(a.src_s, p.C);
  const int th = gw == 16 ? 16 : batch_large_rows(a);  // (the tiles' height)
  l.kernel = narrow ? kConnBatch : gw == 16 ? kConnBatchWide : kConnBatchLarge;
  l.kf = int32_t(p.h.k);
  l.threads = kThreads;
  l.smem = narrow ? conn_batch_bytes(l.kf) : conn_batch_wide_bytes(l.kf, gw, th);
  t.groups = ceil_div(p.C, int64_t(narrow ? kBatchChannels : batch_wide_channels(gw, th)));
  t.pairs = !narrow && batch_pairs(p, a.src, a.src_s, a.dst, a.dst_s);
  t.pixel_pairs = !narrow && t.channels_last && batch_wide_channels(gw, th) == 2 &&
                  batch_pixel_pairs(p, a.src, a.src_s, a.dst, a.dst_s);
  t.tile_h = th;
  t.tiles_w = int32_t(ceil_div(p.w.in, int64_t(32)));
  t.tiles = gw == 32 ? int32_t(ceil_div(p.h.in, int64_t(th))) * t.tiles_w : 1;
  l.blocks = t.groups * ceil_div(p.N, int64_t(kBatchSamples)) * t.tiles;
  return l;
}

// Tensor cores for the same planes with a filter of each sample's own (conn_sample.cuh):
// batch_plane, a per-sample weight (w_s.n != 0), a block's offsets (16 samples, 4 channels,
// a plane of 16 x 16) within 32 bits.
inline bool sample_fits(const ConnArgs& a) {
  return batch_plane(a.p) && a.w_s.n != 0 && sample_span_32(a.src_s) && sample_span_32(a.dst_s);
}

// a block per sample_channels channels x kBatchSamples samples
inline Launch plan_conn_sample(const ConnArgs& a) {
  const Problem& p = a.p;
  Launch l{};
  const int gw = batch_narrow(p) ? 8 : 16;
  l.kernel = kConnSample;
  l.kf = int32_t(p.h.k);
  l.threads = kThreads;
  l.smem = conn_sample_bytes(l.kf, gw);
  ConnBatchPlan& t = l.conn_batch;
  t.groups = ceil_div(p.C, int64_t(sample_channels(gw)));
  t.channels_last = channels_last_image(a.src_s, p.C);
  l.blocks = t.groups * ceil_div(p.N, int64_t(kBatchSamples));
  return l;
}

// one warp per plane
inline Launch plan_conn_mma(const ConnArgs& a) {
  const Problem& p = a.p;
  Launch l{};
  l.kernel = kConnMma;
  l.kf = int32_t(p.h.k);
  const int kf = int(p.h.k);
  ConnMmaPlan& t = l.conn_mma;
  t.lead_max = conn_mma_lead_max(a);
  // 7 x 7 on planes 49..56 wide (DWNet-T stage 1): one warp tile of 7 N tiles across, not
  // two of 4 (64 columns): per kernel row 5 chunks' ldmatrix and 14 mma, not 6 and 16
  // (model, dynamic float16 56 x 56: see NOTES 2026-12-04 (3))
  const bool wide = kf == 7 && p.w.out > 8 * (kConnMmaWideNTiles - 1) && p.w.out <= 8 * kConnMmaWideNTiles;
  t.ntiles = wide ? kConnMmaWideNTiles : kConnMmaNTiles;
  const int64_t warps = mma_warp_blocks(&l, conn_mma_warp_bytes(kf, t.lead_max, t.ntiles));
  t.row_tiles = ceil_div(p.h.out, int64_t(16 * conn_mma_mtiles(kf)));
  t.col_tiles = ceil_div(p.w.out, int64_t(8 * t.ntiles));
  t.piece = mma_piece(a.src, a.src_s);
  t.samples = conn_mma_samples(a, t);
  l.blocks = ceil_div(ceil_div(p.N, int64_t(t.samples)) * p.C, warps);
  return l;
}

// conn2d / the flipped transpose on tiles, or 0 blocks if the tile does not fit.
inline Launch plan_conn_tile(const ConnArgs& a, bool shared_weight) {
  const Problem& p = a.p;
  Launch l{};
  const int64_t planes = p.N * p.C;
  const int64_t R = kConnTileR;
  int64_t GW0 = min_of(ceil_div(p.w.out, R), int64_t(16));
  GW0 = ceil_div(ceil_div(p.w.out, R), ceil_div(ceil_div(p.w.out, R), GW0));  // even column tiles
  int64_t TH0 = min_of(p.h.out, int64_t(kThreads) / GW0);
  TH0 = ceil_div(p.h.out, ceil_div(p.h.out, TH0));  // even row tiles: 56 -> 4 x 14, not 3 x 18 + 2
  // as many planes as the threads take, the tile shrunk until it fits; failing that (a large
  // window on a small output: the planes grow as the tile shrinks), the first tile on as
  // many planes as fit
  const int64_t plane_bytes =
      acc_bytes(p.dtype) * (max_span(p.h, p.window, TH0) * max_span(p.w, p.window, GW0 * R) +
                            (shared_weight ? p.h.k * p.w.k : 0));
  for (const int64_t cap : {planes, max_of(int64_t(1), kMaxSmem / plane_bytes)}) {
    int64_t TH = TH0, GW = GW0;
    for (;;) {
      const int64_t P = max_of(int64_t(1), min_of(cap, int64_t(kThreads) / (TH * GW)));
      const int64_t IH = max_span(p.h, p.window, TH), IW = max_span(p.w, p.window, GW * R);
      const int64_t smem =
          acc_bytes(p.dtype) * P * (IH * IW + (shared_weight ? p.h.k * p.w.k : 0));
      if (smem <= kMaxSmem) {
        ConnTilePlan& t = l.conn_tile;
        t = {P, TH, GW * R, GW, IH, IW, ceil_div(p.h.out, TH), ceil_div(p.w.out, GW * R),
             image_rows_vectorizable(a.src, a.src_s, p.dtype)};
        l.kernel = kConnTile;
        l.blocks = ceil_div(planes, P) * t.row_tiles * t.col_tiles;
        l.threads = int32_t(P * TH * GW);
        l.smem = smem;
        return l;
      }
      if (TH > 1) TH = (TH + 1) / 2;
      else if (GW > 1) GW = (GW + 1) / 2;
      else break;
    }
  }
  return Launch{};  // does not fit: blocks == 0
}

inline Launch plan_conn_elem(const ConnArgs& a, int64_t rows, int64_t cols) {
  Launch l{};
  l.kernel = kConnElem;
  l.threads = kThreads;
  l.blocks = ceil_div(a.p.N * a.p.C * rows * cols, kThreads);
  l.conn_elem.channels_last = channels_last_image(a.dst_s, a.p.C);
  return l;
}

// conn_pos.cuh: a position-specific weight on a 3, 5, 7 sliding window (stride 1,
// dilation 1), 16-bit or float32, 32-bit offsets inside an image plane and a group's
// weight, at most 32 x 4 channels a group (pos_channels). conn2d_transpose (flip) reads
// g (Ho x Wo) and writes an H x W plane.
inline bool pos_fits(const ConnArgs& a, bool flip = false) {
  const Problem& p = a.p;
  const Weight& s = a.w_s;
  const int64_t w_reach = (p.h.k + 1) * (s.kh + s.kw) + (p.h.out + 1) * s.h + (p.w.out + 4) * s.w;
  return (a.pos_h || a.pos_w) && fixed_window(p) && strip_kernel(p.h.k) && p.dtype != kFloat64 &&
         p.cpg <= 32 * 4 && p.w.out >= 1 && p.h.out >= 1 &&
         s.kh >= 0 && s.kw >= 0 && s.h >= 0 && s.w >= 0 && w_reach < (int64_t(1) << 31) &&
         pos_image_fits(a.src_s, p.C, p.cpg) &&
         plane_fits_32(flip ? p.h.out : p.h.in, a.src_s.h, flip ? p.w.out : p.w.in, a.src_s.w) &&
         plane_fits_32(flip ? p.h.in : p.h.out, a.dst_s.h, flip ? p.w.in : p.w.out, a.dst_s.w) &&
         p.N * (p.C / p.cpg) < (int64_t(1) << 31);
}

// The weight's values a load: 4 (or 2) when a strip's 4 weights of a tap are
// contiguous, every strip start is aligned to them and the width a multiple of them.
inline int32_t pos_weight_values(const ConnArgs& a) {
  const Weight& s = a.w_s;
  const int64_t b = elem_bytes(a.p.dtype);
  for (const int64_t v : {int64_t(4), int64_t(2)}) {
    if (s.w == 1 && a.p.w.out % v == 0 && reinterpret_cast<uintptr_t>(a.weight) % (v * b) == 0 &&
        s.n % v == 0 && s.g % v == 0 && s.kh % v == 0 && s.kw % v == 0 && s.h % v == 0)
      return int32_t(v);
  }
  return 1;
}

// flip: conn2d_transpose (its result's plane H x W tiled, weights one by one)
inline Launch plan_conn_pos(const ConnArgs& a, bool flip = false) {
  const Problem& p = a.p;
  Launch l{};
  ConnPosPlan& t = l.conn_pos;
  const int64_t cpg = p.cpg, groups = p.N * (p.C / p.cpg), K = p.h.k;
  const int64_t rows = flip ? p.h.in : p.h.out, cols = flip ? p.w.in : p.w.out;
  const int64_t strips_w = ceil_div(cols, 4);
  const int64_t GW = ceil_div(strips_w, ceil_div(strips_w, int64_t(8)));  // even column tiles
  const int32_t V = flip ? 1 : pos_weight_values(a);
  const int64_t S = ceil_div(cpg, int64_t(pos_channels(int(K), V, flip)));
  int64_t TH = max_of(int64_t(1), min_of(rows, int64_t(kThreads) / (GW * S)));
  TH = ceil_div(rows, ceil_div(rows, TH));  // even row tiles
  const int64_t IW = (4 * GW + K - 1 + 3) / 4 * 4;
  // shared memory: the offset table, then each group's staged planes
  auto smem = [&](int64_t q, int64_t th) {
    return pos_table_bytes(q * cpg) + q * 4 * cpg * (th + K - 1) * IW;
  };
  while (TH > 1 && smem(1, TH) > kMaxSmem) TH = (TH + 1) / 2;
  if (smem(1, TH) > kMaxSmem) return Launch{};
  const int64_t per_group = TH * GW * S;
  int64_t Q = max_of(int64_t(1), min_of(groups, int64_t(kThreads) / per_group));
  while (Q > 1 && smem(Q, TH) > kMaxSmem) --Q;
  const int64_t IH = TH + K - 1;
  t = {int32_t(Q), int32_t(TH), int32_t(GW), int32_t(S), int32_t(ceil_div(cpg, S)), int32_t(IH),
       int32_t(IW), ceil_div(rows, TH), ceil_div(cols, 4 * GW), 1.0f / float(IH),
       V, !pos_image_rows(a.src_s, p.C)};
  l.kernel = kConnPos;
  l.kf = int32_t(K);
  l.threads = int32_t(Q * per_group);
  l.smem = smem(Q, TH);
  l.blocks = ceil_div(groups, Q) * t.tiles_h * t.tiles_w;
  return l;
}

// conn_pos_mma.cuh: pos_fits' problems in 16 bits whose output plane is at most 16 x 16,
// with at least 8 channels a group (an N tile) and one group's staging within
// kMaxSmemOptIn. A block stages Q whole groups: per group KF x 2 RT x TW / 8 x 288 bytes of
// weight rows and cpg channel planes of IH x SW values (CS bytes: an odd number of 16).
inline Launch plan_conn_pos_mma(const ConnArgs& a) {
  const Problem& p = a.p;
  Launch l{};
  ConnPosMmaPlan& t = l.conn_pos_mma;
  const int64_t K = p.h.k, RT = ceil_div(p.h.out, 2), TW = p.w.out > 8 ? 16 : 8;
  const int64_t IH = 2 * RT + K - 1, SW = TW + 8;
  // the staged rows and columns hold the image (no padding past its end: implied by the
  // output size, checked all the same)
  if (p.h.in + p.h.p > IH || p.w.in + p.w.p > SW) return l;
  int64_t CS = IH * SW * 2;
  if ((CS / 16) % 2 == 0) CS += 16;
  // a group: its weight rows, its image, its bias (float32, 8 NT values)
  const int64_t NT = ceil_div(p.cpg, int64_t(8));
  const int64_t wbytes = K * 2 * RT * (TW / 8) * kPosMmaRowBytes;
  const int64_t gbytes = wbytes + p.cpg * CS + 32 * NT;
  if (gbytes + pos_mma_tail(1) > kMaxSmemOptIn) return l;
  const int64_t tasks = RT * (TW / 8), groups = p.N * (p.C / p.cpg);
  int64_t Q = max_of(int64_t(1), min_of(groups, int64_t(kThreads / 32) / tasks));
  while (Q > 1 && Q * gbytes + pos_mma_tail(Q) > kMaxSmem) --Q;
  const int64_t rounds = ceil_div(Q * tasks, int64_t(kThreads / 32));
  // batches a block: the zeros staged once serve them all, while the blocks still fill
  // the GPU (at least 512)
  const int64_t batches = ceil_div(groups, Q);
  const int64_t iters = max_of(int64_t(1), min_of(int64_t(8), batches / 512));
  t = {int32_t(Q), int32_t(iters), int32_t(RT), int32_t(TW), int32_t(IH), int32_t(CS),
       int32_t(NT), int32_t(wbytes), int32_t(gbytes), 1.0f / float(2 * RT), 1.0f / float(IH),
       1.0f / float(p.cpg), 1.0f / float(tasks), 1.0f / float(8 * NT), false};
  // columns 2j, 2j + 1 of a weight row one aligned 4-byte load: unit column stride, even
  // other strides, a 4-byte aligned weight
  const Weight& w = a.w_s;
  t.pairs = w.w == 1 && w.h % 2 == 0 && w.kh % 2 == 0 && w.kw % 2 == 0 && w.g % 2 == 0 &&
            w.n % 2 == 0 && reinterpret_cast<uintptr_t>(a.weight) % 4 == 0;
  l.kernel = kConnPosMma;
  l.kf = int32_t(K);
  l.threads = int32_t(32 * ceil_div(Q * tasks, rounds));
  l.smem = Q * gbytes + pos_mma_tail(Q);
  l.blocks = ceil_div(batches, iters);
  return l;
}

inline bool pos_mma_fits(const ConnArgs& a) {
  const Problem& p = a.p;
  // a group's channels within 32-bit offsets (staging, stores); the staged rows of a
  // batch (8 groups x cpg x 22 at most) within pos_div's 2^20
  const int64_t span = int64_t(1) << 31;
  return pos_fits(a) && (p.dtype == kFloat16 || p.dtype == kBFloat16) && p.h.out <= 16 &&
         p.w.out <= 16 && p.cpg >= 8 && p.cpg * 16 * 16 < (int64_t(1) << 20) &&
         p.cpg * (a.src_s.c < 0 ? -a.src_s.c : a.src_s.c) < span &&
         p.cpg * (a.dst_s.c < 0 ? -a.dst_s.c : a.dst_s.c) < span;
}

// a block's offsets (32 channels, a plane; samples by 64-bit pointers) within 32 bits
inline bool reg_span_32(const Image& s) { return block_span_32(s, 32, kRegMaxRows, 0); }
// the planes the register kernels take: a 3/5/7 window with padding KF / 2 (the output
// plane is the input's), float32 or 16-bit values (float32 sums), planes 7 or 14 wide
// (reg_width) and at most kRegMaxRows high
inline bool reg_plane(const Problem& p) {
  return fixed_window(p) && strip_kernel(p.h.k) && p.dtype != kFloat64 &&
         p.h.p == p.h.k / 2 && p.w.p == p.w.k / 2 && p.h.out == p.h.in && p.w.out == p.w.in &&
         p.h.in <= kRegMaxRows && reg_width(p.w.in);
}

// The depth-wise conn2d of small planes with the filter in registers (conn_reg.cuh):
// reg_plane's planes, a filter per channel or per sample and channel (shared across
// positions), 32-bit offsets in a block; 16-bit planes 7 wide only (a filter the samples
// share runs the batch on tensor cores, plan_conn; per-sample filters at 14 x 14 are
// predicted 15-19 us here against conn_sample's 10-12, at 7 x 7 7.5-9.2 against 10.4-12.6:
// benchmarks/results/model/NOTES.md).
inline bool conn_reg_fits(const ConnArgs& a) {
  return reg_plane(a.p) && (a.p.dtype == kFloat32 || a.p.w.in == 7) && !a.pos_h && !a.pos_w &&
         reg_span_32(a.src_s) && reg_span_32(a.dst_s);
}

// Samples a block of the register kernels stages at once (conn_reg.cuh, corr_reg.cuh): as
// many as keep their two planes of each within 113 KB (two blocks an SM by shared memory
// as by registers) with two warps or more a sample: 14 x 14 two (103 KB; model, float32
// NCHW conn2d 13.2-16.0 -> 11.8-14.2 us, per-sample corr2d 14.8-18.0 -> 13.1-15.9: the
// block's setup once for two samples; within 56 KB it was one), 7 x 7 four (eight, a
// warp a sample: 7.4-8.8 -> 8.5-10.2)
inline int64_t reg_samples(const Problem& p) {
  const int64_t plane = 2 * 4 * reg_plane_words(p.h.in, p.w.in);
  int64_t S = 1;
  while (S < kThreads / 64 && 2 * S * plane <= 113 * 1024) S *= 2;
  return S;
}

// 32 channels x reg_samples samples a block
inline Launch plan_conn_reg(const ConnArgs& a) {
  const Problem& p = a.p;
  Launch l{};
  l.kernel = kConnReg;
  l.kf = int32_t(p.h.k);
  l.threads = kThreads;
  l.conn_reg.samples = reg_samples(p);
  l.smem = l.conn_reg.samples * 2 * 4 * reg_plane_words(p.h.in, p.w.in);
  l.blocks = ceil_div(p.C, int64_t(32)) * ceil_div(p.N, l.conn_reg.samples);
  return l;
}

// conn2d: tiles for NCHW-like results, one thread per element for channels_last.
inline Launch plan_conn(const ConnArgs& a) {
  const Problem& p = a.p;
  const bool shared = !a.pos_h && !a.pos_w;
  if (shared && batch_fits(a)) return plan_conn_batch(a);
  if (shared && conn_reg_fits(a)) return plan_conn_reg(a);
  if (shared && sample_fits(a)) return plan_conn_sample(a);
  if (shared && mma_fits(a)) return plan_conn_mma(a);
  if (shared && mma_cl_fits(a)) return plan_conn_mma_cl(a);
  if (shared && band_cl_fits(a)) {
    const Launch l = plan_conn_band_cl(a);
    if (l.blocks > 0) return l;
  }
  if (shared && band_fits(a)) {
    const Launch l = plan_conn_band(a);
    if (l.blocks > 0) return l;
  }
  if (shared && strip_fits(a)) return plan_conn_strip(a);
  if (!shared && pos_mma_fits(a)) {
    const Launch l = plan_conn_pos_mma(a);
    if (l.blocks > 0) return l;
  }
  if (!shared && pos_fits(a)) {
    const Launch l = plan_conn_pos(a);
    if (l.blocks > 0) return l;
  }
  if (shared && wide_fits(a)) {
    const Launch l = plan_conn_wide(a);
    if (l.blocks > 0) return l;
  }
  if (channels_last_image(a.dst_s, p.C) && shared && large_fixed_window(p))
    return plan_conn_rows(a);
  if (!channels_last_image(a.dst_s, p.C) && a.src_s.w == 1) {
    Launch l = plan_conn_tile(a, shared);
    if (l.blocks > 0) {
      if (shared && large_fixed_window(p)) {
        l.kernel = kConnTileFixed;
        l.kf = int32_t(p.h.k);
      }
      return l;
    }
  }
  return plan_conn_elem(a, p.h.out, p.w.out);
}

// conn2d_transpose for a sliding window with stride 1 and a weight shared
// across positions is a forward pass over g with the flipped filter:
// x-bar[i] = sum_k' W[K-1-k'] g[i - ((K-1) d - p) + k' d]. These are its axes
// (input g: Ho, output: the image size H), or false if it does not apply.
inline bool flipped_transpose(const ConnArgs& a, ConnArgs* out) {
  const Problem& p = a.p;
  if (p.window != kSliding || p.h.s != 1 || p.w.s != 1 || a.pos_h || a.pos_w) return false;
  *out = a;
  for (Axis* ax : {&out->p.h, &out->p.w}) {
    const Axis o = *ax;
    *ax = Axis{o.out, o.in, o.k, 1, (o.k - 1) * o.d - o.p, o.d};
  }
  return true;
}

inline Launch plan_conn_transpose(const ConnArgs& a, ConnArgs* flipped) {
  const Problem& p = a.p;
  if (pos_fits(a, true)) {
    const Launch l = plan_conn_pos(a, true);
    if (l.blocks > 0) return l;
  }
  if (flipped_transpose(a, flipped) && batch_fits(*flipped)) return plan_conn_batch(*flipped);
  if (flipped_transpose(a, flipped) && conn_reg_fits(*flipped)) return plan_conn_reg(*flipped);
  if (flipped_transpose(a, flipped) && sample_fits(*flipped)) return plan_conn_sample(*flipped);
  if (flipped_transpose(a, flipped) && mma_fits(*flipped)) return plan_conn_mma(*flipped);
  if (flipped_transpose(a, flipped) && mma_cl_fits(*flipped)) return plan_conn_mma_cl(*flipped);
  // (16-bit: the strips, whose flipped pass loads g's rows as 16-bit chunks; predicted
  // 11-13 against 15-24 us at 7 x 7, benchmarks/results/model/NOTES.md)
  if (flipped_transpose(a, flipped) && band_cl_fits(*flipped)) {
    const Launch l = plan_conn_band_cl(*flipped);
    if (l.blocks > 0) return l;
  }
  if (flipped_transpose(a, flipped) && p.dtype == kFloat32 && band_fits(*flipped)) {
    const Launch l = plan_conn_band(*flipped);
    if (l.blocks > 0) return l;
  }
  if (flipped_transpose(a, flipped) && strip_fits(*flipped)) return plan_conn_strip(*flipped);
  if (flipped_transpose(a, flipped) && wide_fits(*flipped)) {
    const Launch l = plan_conn_wide(*flipped);
    if (l.blocks > 0) return l;
  }
  if (channels_last_image(a.dst_s, p.C) && large_fixed_window(p) && flipped_transpose(a, flipped))
    return plan_conn_rows(*flipped);
  if (!channels_last_image(a.dst_s, p.C) && a.src_s.w == 1 && flipped_transpose(a, flipped)) {
    Launch l = plan_conn_tile(*flipped, true);
    if (l.blocks > 0) {
      if (large_fixed_window(p)) {
        l.kernel = kConnTileFixed;
        l.kf = int32_t(p.h.k);
      }
      return l;
    }
  }
  return plan_conn_elem(a, p.h.in, p.w.in);
}

// conn2d and conn2d_transpose with a 13 x 13 or 31 x 31 window on channels_last images
// run on NCHW planes: per chunk of samples, planes.cuh puts the input's pixels into
// planes (a workspace), the planes' kernel (conn_mma.cuh for 16-bit types, conn_tile.cuh
// else) computes the result planes, and planes.cuh puts them back as pixels. Two extra
// passes over input and result (DRAM-bound: 25-31 us each at 64x384x32x32 float16) against
// kernels on the pixels 10-50x slower (conn_rows.cuh; model, H200 float16 64x384x32x32:
// 13x13 1167-1459 -> 108-134 us, 31x31 6211-15524 -> 219-341; float32 1.4-5x faster;
// benchmarks/results/model/NOTES.md 2026-12-01). Not where the pixels have a tensor-core
// kernel of their own (conn_mma_cl.cuh at 13x13: 59-73 us). Input and result must have 16-byte
// pixels (C a multiple of 16 bytes of values, aligned) and dense rows of pixels; a plane
// is padded to whole 16 bytes so that planes.cuh's loads and stores are whole.
struct PlanesRoute {
  int64_t samples;           // a chunk of samples (0: no route)
  int64_t src_plane, dst_plane;  // values per staged input / result plane
  int64_t bytes;             // workspace: a chunk's input planes, then its result planes
};

// 16-byte pixels of `eb`-byte values (pixels_aligned), their rows dense (row stride W pixels)
inline bool dense_pixels(const void* base, const Image& s, int64_t C, int64_t W, int64_t eb) {
  return pixels_aligned(base, s, C, eb) && s.h == W * s.w;
}

// `a` on a chunk of `r`'s planes at `ws` (the input planes first): NCHW strides, the
// chunk's first sample at the start (N, the pointers into the images and a per-sample
// weight are the caller's to set)
inline ConnArgs planes_args(const ConnArgs& a, bool transpose, const PlanesRoute& r, void* ws) {
  const Problem& p = a.p;
  const int64_t src_w = transpose ? p.w.out : p.w.in, dst_w = transpose ? p.w.in : p.w.out;
  const uintptr_t base = reinterpret_cast<uintptr_t>(ws);
  ConnArgs b = a;
  b.src = reinterpret_cast<const void*>(base);
  b.src_s = Image{p.C * r.src_plane, r.src_plane, src_w, 1};
  b.dst = reinterpret_cast<void*>(base + uintptr_t(r.samples * p.C * r.src_plane *
                                                   elem_bytes(p.dtype)));
  b.dst_s = Image{p.C * r.dst_plane, r.dst_plane, dst_w, 1};
  b.workspace = nullptr;
  return b;
}

inline PlanesRoute plan_planes(const ConnArgs& a, bool transpose) {
  const Problem& p = a.p;
  const PlanesRoute none{};
  if (a.pos_h || a.pos_w || !large_fixed_window(p)) return none;
  ConnArgs flipped;  // (the pixels' own tensor-core kernel first)
  if (transpose ? flipped_transpose(a, &flipped) && mma_cl_fits(flipped) : mma_cl_fits(a))
    return none;
  const int64_t eb = elem_bytes(p.dtype), V = 16 / eb;
  const int64_t src_h = transpose ? p.h.out : p.h.in, src_w = transpose ? p.w.out : p.w.in;
  const int64_t dst_h = transpose ? p.h.in : p.h.out, dst_w = transpose ? p.w.in : p.w.out;
  if (p.N == 0 || src_h * src_w == 0 || dst_h * dst_w == 0 ||
      !channels_last_image(a.src_s, p.C) || !channels_last_image(a.dst_s, p.C) ||
      !dense_pixels(a.src, a.src_s, p.C, src_w, eb) || !dense_pixels(a.dst, a.dst_s, p.C, dst_w, eb))
    return none;
  PlanesRoute r{};
  r.src_plane = ceil_div(src_h * src_w, V) * V;
  r.dst_plane = ceil_div(dst_h * dst_w, V) * V;
  const int64_t per_sample = p.C * (r.src_plane + r.dst_plane) * eb;
  r.samples = min_of(p.N, (a.planes_budget > 0 ? a.planes_budget : kMaxWorkspace) / per_sample);
  if (r.samples == 0) return none;
  r.bytes = r.samples * per_sample;
  // only where the planes have a kernel of their own (not one value a thread)
  ConnArgs b = planes_args(a, transpose, r, nullptr);
  b.p.N = r.samples;
  const int32_t k = transpose ? plan_conn_transpose(b, &flipped).kernel : plan_conn(b).kernel;
  return k == kConnMma || k == kConnWide || k == kConnTileFixed ? r : none;
}

// The channels_last depth-wise weight gradient (corr_channels.cuh): 32 channels
// and one of `chunks` parts of the taps per block; the `items` position steps
// are split over blocks to fill the GPU (8 groups per block share a split).
inline Launch plan_corr_channels(const CorrArgs& a, int32_t kernel, int64_t chunks, int64_t items,
                                 int64_t sm_count, int64_t force_splits) {
  const Problem& p = a.p;
  Launch l{};
  const int64_t numel = a.Nw * p.C * p.h.k * p.w.k;
  const int64_t results = a.Nw * ceil_div(p.C, 32) * chunks;
  int64_t s = force_splits > 0 ? force_splits : ceil_div(4 * sm_count, results);
  s = max_of(int64_t(1), min_of(min_of(s, ceil_div(items, kCorrRowsGroups)),
                                kMaxWorkspace / (numel * acc_bytes(p.dtype))));
  l.corr_channels.splits = s;
  l.corr_channels.chunks = chunks;
  l.kernel = kernel;
  l.threads = kThreads;
  l.blocks = results * s;
  l.smem = acc_bytes(p.dtype) * kThreads;
  l.workspace_bytes = s > 1 ? s * numel * acc_bytes(p.dtype) : 0;
  return l;
}

// What the weight gradient's strips (corr_strip.cuh, corr_band.cuh) need of the tensors:
// a per-channel result, a and b both NCHW-like with unit-stride rows or both
// channels_last, 32-bit plane offsets
inline bool corr_strips_layout(const CorrArgs& a) {
  const Problem& p = a.p;
  const bool cl_a = channels_last_image(a.a_s, p.C), cl_b = channels_last_image(a.b_s, p.C);
  const bool nchw = a.a_s.w == 1 && a.b_s.w == 1 && !cl_a && !cl_b;
  return a.Hw == 1 && a.Ww == 1 && a.Cw == p.C && ((cl_a && cl_b) || nchw) &&
         plane_fits_32(p.h.out, a.a_s.h, p.w.out, a.a_s.w) &&
         plane_fits_32(p.h.in, a.b_s.h, p.w.in, a.b_s.w);
}

// The depth-wise weight gradient on register strips (corr_strip.cuh), if it fits: a
// fixed 3/5/7 window, a per-channel result, a and b both NCHW-like with unit-stride
// rows or both channels_last, 32-bit plane offsets, not float64. (plan_corr asks
// corr_mma_fits first, which takes every 16-bit NCHW problem this fits: the strips
// run float32 and channels_last there, and dispatch.h has no 16-bit NCHW strips.)
inline bool corr_strip_fits(const CorrArgs& a) {
  const Problem& p = a.p;
  const bool cl_a = channels_last_image(a.a_s, p.C);
  const int64_t strips = ceil_div(p.h.out, corr_strip_rows(int(p.h.k), cl_a)) *
                         ceil_div(p.w.out, kStripCols);
  return fixed_window(p) && strip_kernel(p.h.k) && p.dtype != kFloat64 &&
         p.N * strips < (int64_t(1) << 31) - kThreads && corr_strips_layout(a);
}

inline Launch plan_corr_strip(const CorrArgs& a, int64_t sm_count, int64_t force_splits) {
  const Problem& p = a.p;
  Launch l{};
  CorrStripPlan& t = l.corr_strip;
  l.kernel = kCorrStrip;
  l.kf = int32_t(p.h.k);
  l.threads = kThreads;
  const int rows = corr_strip_rows(int(p.h.k), channels_last_image(a.a_s, p.C));
  t.row_strips = ceil_div(p.h.out, rows);
  t.full_rows = p.h.out / rows;
  t.full_cols = p.w.out / kStripCols;
  t.col_strips = ceil_div(p.w.out, kStripCols);
  const int64_t items = (a.Nw == 1 ? p.N : 1) * t.row_strips * t.col_strips;
  t.channels_last = channels_last_image(a.a_s, p.C);
  const int64_t results = a.Nw * p.C;
  const int64_t numel = results * p.h.k * p.w.k;
  const int64_t max_s = max_of(int64_t(1), kMaxWorkspace / (numel * acc_bytes(p.dtype)));
  // threads per result (8..256 for NCHW: 8 strips side by side at least, coalesced;
  // 8 for CL) and splits: the least (busiest SM's blocks) x (rounds of items per
  // thread + 1 for the reduction), the SM's blocks sharing its issue (its work, not
  // waves of blocks, is the time), raised where SMs would be short of warps (fewer
  // than corr_strip_blocks_per_sm blocks each); few strips per result (a dynamic
  // weight) get few threads each, not idle ones; at most 16 blocks per SM
  const int64_t slots = corr_strip_blocks_per_sm(int(elem_bytes(p.dtype)), l.kf) * sm_count;
  double best = -1;
  for (int64_t tpr = t.channels_last ? kThreads / 32 : kThreads; tpr >= 8; tpr /= 2) {
    const int64_t groups = ceil_div(results, kThreads / tpr);
    const int64_t s_hi =
        min_of(min_of(ceil_div(items, tpr), max_s), ceil_div(16 * sm_count, groups));
    for (int64_t s = 1; s <= s_hi; ++s) {
      if (force_splits > 0 && s != min_of(force_splits, max_s)) continue;
      const int64_t rounds = ceil_div(ceil_div(items, s), tpr), blocks = groups * s;
      const double cost = double(ceil_div(blocks, sm_count) * (rounds + 1)) *
                          max_of(1.0, double(slots) / double(blocks));
      if (best < 0 || cost < best) {
        best = cost;
        t.tpr = tpr;
        t.splits = s;
      }
    }
    if (t.channels_last) break;  // 8 threads (warps) per result
  }
  if (best < 0) {  // force_splits beyond the items: one round each
    t.tpr = 8;
    t.splits = min_of(force_splits, max_s);
  }
  const int64_t groups = ceil_div(results, kThreads / t.tpr), s = t.splits;
  t.chunk_bytes = t.channels_last ? elem_bytes(p.dtype)
                                  : strip_chunk_bytes(p, a.b, a.b_s, a.a, a.a_s);
  l.blocks = groups * s;
  l.smem = kCorrStripRedBytes;
  l.workspace_bytes = s > 1 ? s * numel * acc_bytes(p.dtype) : 0;
  return l;
}

// what both weight-gradient tensor-core kernels need, whatever the layout: a fixed
// window (3, 5, 7, 13, 31), half or bfloat16, a per-channel result, 32-bit items
inline bool corr_mma_problem(const CorrArgs& a) {
  const Problem& p = a.p;
  return fixed_window(p) && (p.dtype == kFloat16 || p.dtype == kBFloat16) &&
         a.Hw == 1 && a.Ww == 1 && a.Cw == p.C &&
         (a.Nw == 1 ? p.N : 1) * ceil_div(p.w.out, int64_t(8 * corr_mma_ntiles(int(p.h.k)))) *
                 ceil_div(p.h.out, int64_t(8)) < (int64_t(1) << 31) - 2;
}

// The depth-wise weight gradient on tensor cores (corr_mma.cuh), if it fits:
// corr_mma_problem's, a and b NCHW-like with unit-stride rows, 32-bit plane offsets.
inline bool corr_mma_fits(const CorrArgs& a) {
  const Problem& p = a.p;
  return corr_mma_problem(a) && a.a_s.w == 1 && a.b_s.w == 1 &&
         !channels_last_image(a.a_s, p.C) && !channels_last_image(a.b_s, p.C) &&
         plane_fits_32(p.h.out, a.a_s.h, p.w.out) && plane_fits_32(p.h.in, a.b_s.h, p.w.in);
}

// corr_mma_cl.cuh: corr_mma_fits's problems in channels_last, every pixel's 8-channel
// groups aligned in a and b (pixels_aligned); per-sample (Nw = N) results of planes
// under 14 x 14 stay on the strips (DWNet-T's 7 x 7 stage: 23-54 us against 42-52 on
// tensor cores, predicted: one half per plane leaves half of each mma empty).
inline bool corr_mma_cl_fits(const CorrArgs& a) {
  const Problem& p = a.p;
  return (a.Nw == 1 || (p.h.out >= 14 && p.w.out >= 14)) && corr_mma_problem(a) &&
         pixels_aligned(a.a, a.a_s, p.C) && pixels_aligned(a.b, a.b_s, p.C) &&
         plane_fits_32(p.h.out, a.a_s.h, p.w.out, a.a_s.w) &&
         plane_fits_32(p.h.in, a.b_s.h, p.w.in, a.b_s.w);
}

// The split of the tensor-core weight gradients' work (corr_mma.cuh, corr_taps_mma.cuh):
// `parts` warps a split, each with `work` items to share, blocks of `warps` warps, two
// blocks an SM; the least (waves of blocks) x (items a warp + 1 for the partials'
// reduction), at most max_s (the workspace), or force_splits where given.
inline int64_t splits_by_waves(int64_t parts, int64_t work, int64_t warps, int64_t sm_count,
                               int64_t max_s, int64_t force_splits) {
  if (force_splits > 0) return min_of(force_splits, max_s);
  int64_t splits = 1;
  double best = -1;
  for (int64_t s = 1; s <= min_of(max_s, int64_t(4096)); ++s) {
    const int64_t blocks = ceil_div(parts * s, warps);
    const double cost = double(ceil_div(blocks, 2 * sm_count)) * double(ceil_div(work, s) + 1);
    if (best < 0 || cost < best) {
      best = cost;
      splits = s;
    }
  }
  return splits;
}

// corr_band.cuh's row pitch (words): the least >= need that is a multiple of vb (the
// copies' words) with kCorrBandRows x pitch = csn x (an odd number) mod 32, so that the
// lanes' strips (word 7 cs + rs kCorrBandRows pitch) meet the 32 banks once; 0 if none
inline int64_t corr_band_pitch(int64_t need, int64_t csn, int64_t vb) {
  for (int64_t w = need; w < need + 64; ++w) {
    const int64_t m = (kCorrBandRows * w) % 32;
    if (w % vb == 0 && m % csn == 0 && (m / csn) % 2 == 1) return w;
  }
  return 0;
}

// The float32 depth-wise weight gradient on a staged band (corr_band.cuh), if it fits: a
// 3/5/7 window with padding KF / 2 (rows as wide as a's), a per-channel result, rows of 8
// to kCorrBandMaxStrips x kCorrBandCols (56) columns, a and b both NCHW-like with unit-stride
// rows or both channels_last, 32-bit plane offsets. Predicted (model, H200, DWNet-T stage 1,
// NCHW): see benchmarks/results/model/NOTES.md 2026-12-05 (5).
inline bool corr_band_fits(const CorrArgs& a) {
  const Problem& p = a.p;
  return p.dtype == kFloat32 && fixed_window(p) && strip_kernel(p.h.k) &&
         p.h.p == p.h.k / 2 && p.w.p == p.w.k / 2 && p.w.out >= 8 &&
         p.w.out <= kCorrBandMaxStrips * kCorrBandCols &&
         p.N * ceil_div(p.h.out, int64_t(kCorrBandRows)) < (int64_t(1) << 31) - kThreads &&
         a.Nw * ceil_div(p.C, int64_t(kThreads / 32)) < (int64_t(1) << 30) &&
         corr_strips_layout(a);
}

// A block per (result set, 8 channels, split); splits: splits_by_waves over the items.
inline Launch plan_corr_band(const CorrArgs& a, int64_t sm_count, int64_t force_splits) {
  const Problem& p = a.p;
  Launch l{};
  CorrBandPlan& t = l.corr_band;
  l.kernel = kCorrBand;
  l.kf = int32_t(p.h.k);
  l.threads = kThreads;
  const int64_t kf = p.h.k, W = p.w.in;
  t.csn = max_of(int64_t(2), next_pow2(ceil_div(p.w.out, int64_t(kCorrBandCols))));
  t.rows = 32 / t.csn * kCorrBandRows;
  t.bands = ceil_div(p.h.out, t.rows);
  t.items = (a.Nw == 1 ? p.N : 1) * t.bands;
  t.groups = ceil_div(p.C, int64_t(kThreads / 32));
  const bool cl = channels_last_image(a.a_s, p.C);
  t.channels_last = cl;
  const int64_t need_b = kCorrBandLead + t.csn * kCorrBandCols + kf / 2;
  const int64_t need_a = t.csn * kCorrBandCols;
  for (const int64_t vb : {int64_t(4), int64_t(2), int64_t(1)}) {
    if (vb > 1 && (cl || W % vb != 0 || !rows_aligned(a.a, 4, a.a_s.n, a.a_s.c, a.a_s.h,
                                                       a.a_s.w, 4 * vb) ||
                   !rows_aligned(a.b, 4, a.b_s.n, a.b_s.c, a.b_s.h, a.b_s.w, 4 * vb)))
      continue;
    t.IW = corr_band_pitch(need_b, t.csn, vb);
    t.AW = corr_band_pitch(need_a, t.csn, vb);
    if (t.IW > 0 && t.AW > 0) {
      t.vb = vb;
      break;
    }
  }
  t.buf_words = ceil_div((t.rows + kf - 1) * t.IW + t.rows * t.AW, int64_t(4)) * 4;
  // (the reduction's 32 x KF * KF sums fit a warp's two buffers)
  t.buf_words = max_of(t.buf_words, 16 * kf * kf);
  t.lanes_per_row = cl ? 32 : min_of(int64_t(32), next_pow2(W / t.vb));  // (CL: 32 positions)
  const int64_t sets = a.Nw * t.groups;
  const int64_t numel = a.Nw * p.C * kf * kf;
  const int64_t max_s = max_of(int64_t(1), kMaxWorkspace / (numel * 4));
  t.splits = splits_by_waves(sets * (kThreads / 32), t.items, kThreads / 32, sm_count, max_s,
                             force_splits);
  t.splits = min_of(t.splits, t.items);
  l.blocks = sets * t.splits;
  l.smem = kThreads / 32 * 2 * t.buf_words * 4;
  l.workspace_bytes = t.splits > 1 ? t.splits * numel * 4 : 0;
  return l;
}

// A warp per (result, row group, split) (corr_mma.cuh), or a block per 8 channels'
// results and a split (corr_mma_cl.cuh); splits: the least (waves of two blocks per SM)
// x (pairs of halves per warp + 1 for the partials' reduction).
inline Launch plan_corr_mma(const CorrArgs& a, int64_t sm_count, int64_t force_splits,
                            bool cl = false) {
  const Problem& p = a.p;
  Launch l{};
  l.kernel = cl ? kCorrMmaCl : kCorrMma;
  l.kf = int32_t(p.h.k);
  const int64_t per_warp = corr_mma_warp_bytes(int(p.h.k));
  // all 8 warps (54 KB at 7 x 7; shared memory past 48 KB by
  // opt-in, launch.cuh): 7 warps would fit 48 KB, but two blocks of 7 leave each scheduler
  // 3.5 warps, and the 7 x 7 weight gradients are shared-memory bound
  const int64_t warps = kConnMmaClWarps;
  l.threads = int32_t(32 * warps), l.smem = warps * per_warp;
  CorrMmaPlan& t = l.corr_mma;
  t.col_tiles = ceil_div(p.w.out, int64_t(8 * corr_mma_ntiles(l.kf)));
  t.segments = ceil_div(p.h.out, int64_t(8));
  t.items = (a.Nw == 1 ? p.N : 1) * t.col_tiles * t.segments;
  const int64_t pairs = ceil_div(t.items, 2), results = a.Nw * p.C;
  const int64_t numel = results * p.h.k * p.w.k;
  const int64_t rg = corr_mma_row_groups(int(p.h.k));  // warps (blocks) of a part
  const int64_t max_s = max_of(int64_t(1), min_of(pairs, kMaxWorkspace / (numel * 4)));
  t.splits = splits_by_waves(results * rg, pairs, warps, sm_count, max_s, force_splits);
  t.piece_a = mma_piece(a.a, a.a_s);
  t.piece_b = p.w.p == p.w.k / 2 ? mma_piece(a.b, a.b_s) : 1;
  l.blocks = ceil_div(results * rg * t.splits, warps);
  l.workspace_bytes = t.splits > 1 ? t.splits * numel * 4 : 0;
  return l;
}

// The 13 x 13 and 31 x 31 weight gradients of corr_mma_fits's problems with the taps as M
// (corr_taps_mma.cuh): a warp holds a result's taps, so no row groups restage the same rows
// (model, H200, 64x384x32x32 float16: 31 x 31 291-363 -> 92-114 us, 13 x 13 109-135 ->
// 53-65; channels_last 422-527 -> 92-114 and 148-184 -> 48-60; corr_mma.cuh keeps 3, 5, 7).
inline bool corr_taps_items_32(const CorrArgs& a) {
  const Problem& p = a.p;
  return (a.Nw == 1 ? p.N : 1) * ceil_div(p.w.out, int64_t(32)) * ceil_div(p.h.in, int64_t(8)) <
         (int64_t(1) << 31) - 2;
}
inline bool corr_taps_fits(const CorrArgs& a) {
  return corr_mma_fits(a) && (a.p.h.k == 13 || a.p.h.k == 31) && corr_taps_items_32(a);
}
// corr_taps_mma_cl.cuh: the same for corr_mma_cl_fits's channels_last problems, and their
// per-sample (Nw = N > 1: dynamic depth-wise) 7 x 7 ones on planes 17..32 wide, a warp's
// result one sample's plane, one column tile of 32 (model, H200, 64x192x28x28 float16:
// corr_mma_cl 22.2-27.3 -> 18.1-22.1 us). Not on narrower planes (14 x 14: 14.2 on
// corr_reg -> 21.4, 112 instructions an output against 82, integer-bound) nor wider
// (56 x 56: 28.4 on corr_mma_cl -> 29.6), nor NCHW (28 x 28: 19.5 on corr_mma -> 27.7: a
// warp staging its own rows, integer-bound).
inline bool corr_taps_cl_fits(const CorrArgs& a) {
  const Problem& p = a.p;
  const bool sample7 = p.h.k == 7 && a.Nw > 1 && p.w.out > 16 && p.w.out <= 32;
  return corr_mma_cl_fits(a) && (p.h.k == 13 || p.h.k == 31 || sample7) && corr_taps_items_32(a);
}

static_assert(kCorrTapsWarps * corr_taps_warp_bytes(31) <= kMaxSmemOptIn &&
                  kCorrTapsWarps * corr_taps_warp_bytes(13) <= kMaxSmemOptIn &&
                  kCorrTapsWarps * corr_taps_warp_bytes(7) <= kMaxSmemOptIn,
              "corr_taps_mma.cuh's blocks fit every sm_80+ GPU's opt-in shared memory");

// A warp per (result, split), kCorrTapsWarps a block (channels_last: a block per 8
// channels' results and a split); splits: the least (waves of two blocks per SM) x (items
// per warp + 1 for the partials' reduction).
inline Launch plan_corr_taps(const CorrArgs& a, int64_t sm_count, int64_t force_splits,
                             bool cl = false) {
  const Problem& p = a.p;
  Launch l{};
  l.kernel = cl ? kCorrTapsMmaCl : kCorrTapsMma;
  l.kf = int32_t(p.h.k);
  const int64_t warps = kCorrTapsWarps;
  l.threads = int32_t(32 * warps), l.smem = warps * corr_taps_warp_bytes(l.kf);
  CorrTapsPlan& t = l.corr_taps;
  t.col_tiles = ceil_div(p.w.out, int64_t(32));
  t.bands = ceil_div(p.h.in, int64_t(8));
  t.items = (a.Nw == 1 ? p.N : 1) * t.col_tiles * t.bands;
  const int64_t results = a.Nw * p.C, numel = results * p.h.k * p.w.k;
  const int64_t max_s = max_of(int64_t(1), min_of(t.items, kMaxWorkspace / (numel * 4)));
  t.splits = splits_by_waves(results, t.items, warps, sm_count, max_s, force_splits);
  t.piece_a = mma_piece(a.a, a.a_s);
  t.piece_b = mma_piece(a.b, a.b_s);
  t.fast_x = p.w.p == p.w.k / 2 && t.piece_b > 1;
  l.blocks = ceil_div(results * t.splits, warps);
  l.workspace_bytes = t.splits > 1 ? t.splits * numel * 4 : 0;
  return l;
}

// The weight gradient with the batch as K (corr_batch.cuh; corr_batch_wide.cuh past 8 x 8),
// if it fits: conn_batch.cuh's planes (batch_plane, any layout) with one filter the
// samples share (Nw = 1), a per-channel result.
inline bool corr_batch_fits(const CorrArgs& a) {
  return batch_plane(a.p) && corr_mma_problem(a) && a.Nw == 1 && batch_block_32(a.p, a.a_s) &&
         batch_block_32(a.p, a.b_s);
}

// The same weight gradient on 32 x 32 grids (corr_batch_wide.cuh, gw = 32) for planes
// past 16 x 16 and within 32 x 32 (DWNet-T's 28 x 28 stage), NCHW-like G and X: a block
// is one channel, and a channels_last warp would read a 32-byte sector for each 2-byte
// value it stages (those go to corr_mma_cl.cuh).
inline bool corr_batch_large_fits(const CorrArgs& a) {
  const Problem& p = a.p;
  return batch_plane_within(p, 32) && !batch_plane(p) && corr_mma_problem(a) && a.Nw == 1 &&
         !channels_last_image(a.a_s, p.C) && !channels_last_image(a.b_s, p.C) &&
         large_span_32(a.a_s) && large_span_32(a.b_s);
}

// a block per kBatchCorrChannels (wide planes: corr_wide_channels) channels and split of
// the sample groups: 8 x 8 planes one split (the partials' reduction would be a second
// launch) unless forced
inline Launch plan_corr_batch(const CorrArgs& a, int64_t sm_count, int64_t force_splits) {
  const Problem& p = a.p;
  Launch l{};
  const bool narrow = batch_narrow(p);
  const int gw = batch_plane(p) ? 16 : 32;  // (wide planes: the grids' width)
  l.kernel = narrow ? kCorrBatch : gw == 16 ? kCorrBatchWide : kCorrBatchLarge;
  l.kf = int32_t(p.h.k);
  l.threads = kThreads;
  l.smem = narrow ? corr_batch_bytes(l.kf) : corr_batch_wide_bytes(l.kf, gw);
  CorrBatchPlan& t = l.corr_batch;
  t.groups = ceil_div(p.C, int64_t(narrow ? kBatchCorrChannels : corr_wide_channels(gw)));
  const int64_t sample_groups = ceil_div(p.N, int64_t(kBatchSamples));
  // (wide planes: two blocks an SM, as many splits as fill them once; model, 64 x 192 x
  // 28 x 28 float16 on 32 x 32 grids: 192 blocks 11.0-13.2 us, two splits 13.0-15.4)
  const int64_t fill = narrow ? 1 : max_of(int64_t(1), 2 * sm_count / t.groups);
  t.splits = min_of(force_splits > 0 ? force_splits : fill, sample_groups);
  t.cl_a = channels_last_image(a.a_s, p.C);
  t.cl_b = channels_last_image(a.b_s, p.C);
  t.pairs = !narrow && batch_pairs(p, a.a, a.a_s, a.b, a.b_s);
  t.pixel_pairs = !narrow && t.cl_a && t.cl_b && corr_wide_channels(gw) == 2 &&
                  batch_pixel_pairs(p, a.a, a.a_s, a.b, a.b_s);
  l.blocks = t.groups * t.splits;
  const int64_t numel = p.C * p.h.k * p.w.k;
  l.workspace_bytes = t.splits > 1 ? t.splits * numel * 4 : 0;
  return l;
}

// The per-sample weight gradient on those planes (corr_sample.cuh): batch_plane, a result
// of each sample's own (Nw = N > 1) and each channel's, 32-bit offsets in a block.
inline bool corr_sample_fits(const CorrArgs& a) {
  return batch_plane(a.p) && corr_mma_problem(a) && a.Nw == a.p.N && a.p.N > 1 &&
         sample_span_32(a.a_s) && sample_span_32(a.b_s);
}

// a block per sample_channels channels x kBatchSamples samples; no splits (a result is one
// plane's sums)
inline Launch plan_corr_sample(const CorrArgs& a) {
  const Problem& p = a.p;
  Launch l{};
  const int gw = batch_narrow(p) ? 8 : 16;
  l.kernel = kCorrSample;
  l.kf = int32_t(p.h.k);
  l.threads = kThreads;
  l.smem = corr_sample_bytes(l.kf, gw);
  CorrBatchPlan& t = l.corr_batch;
  t.groups = ceil_div(p.C, int64_t(sample_channels(gw)));
  t.splits = 1;
  t.cl_a = channels_last_image(a.a_s, p.C);
  t.cl_b = channels_last_image(a.b_s, p.C);
  l.blocks = t.groups * ceil_div(p.N, int64_t(kBatchSamples));
  return l;
}

// The depth-wise weight gradient of small planes (corr_reg.cuh; float32 sums of float32
// or 16-bit values, which the batch takes first for a static result): a 3/5/7 window
// with padding KF / 2 (the output plane is the input's), planes 7 or 14 wide (reg_width)
// and at most kRegMaxRows high, a per-channel result static (Nw = 1) or per sample
// (Nw = N), any layout; a block's offsets (32 channels, a plane) within 32 bits.
inline bool corr_reg_fits(const CorrArgs& a) {
  const Problem& p = a.p;
  return reg_plane(p) && a.Hw == 1 && a.Ww == 1 && a.Cw == p.C && (a.Nw == 1 || a.Nw == p.N) &&
         reg_span_32(a.a_s) && reg_span_32(a.b_s);
}

// 32 channels a block (corr_channels.cuh's blocks, one chunk of taps: all of them), as
// many samples staged at once as reg_samples gives (up to 4). A static
// result: the items (sample, output row) split to fill two blocks an SM once. Per-sample
// results: no splits, a sample a slot of 8 / S warps.
inline Launch plan_corr_reg(const CorrArgs& a, int64_t sm_count, int64_t force_splits) {
  const Problem& p = a.p;
  const int64_t plane = 2 * 4 * reg_plane_words(p.h.in, p.w.in);  // a sample's G and X
  const int64_t S = reg_samples(p);
  const int64_t c_tiles = ceil_div(p.C, int64_t(32));
  Launch l{};
  if (a.Nw == 1) {
    l = plan_corr_channels(a, kCorrReg, 1, p.N * p.h.in, sm_count,
                           force_splits > 0 ? force_splits : ceil_div(2 * sm_count, c_tiles));
  } else {
    l.kernel = kCorrReg;
    l.threads = kThreads;
    l.corr_channels.splits = 1;
    l.corr_channels.chunks = 1;
    l.blocks = ceil_div(p.N, S) * c_tiles;
  }
  l.corr_channels.samples = S;
  l.kf = int32_t(p.h.k);
  l.smem = max_of(S * plane, reg_reduce_bytes(l.kf));
  return l;
}

// corr_pos.cuh: a result position-specific along both axes for every sample (Nw = N),
// 3, 5, 7 sliding window (stride 1, dilation 1), 16-bit or float32, 32-bit offsets
// inside planes and a group's result.
inline bool corr_pos_fits(const CorrArgs& a) {
  const Problem& p = a.p;
  const int64_t lim = int64_t(1) << 31;
  return a.Nw == p.N && a.Hw == p.h.out && a.Ww == p.w.out && fixed_window(p) &&
         strip_kernel(p.h.k) && p.dtype != kFloat64 && p.cpg < (int64_t(1) << 16) &&
         p.h.k * p.w.k * (p.h.out * p.w.out + 8) < lim && p.N * a.Cw < lim &&
         plane_fits_32(p.h.out, a.a_s.h, p.w.out, a.a_s.w) &&
         plane_fits_32(p.h.in, a.b_s.h, p.w.in, a.b_s.w) &&
         pos_image_fits(a.a_s, p.C, p.cpg) && pos_image_fits(a.b_s, p.C, p.cpg);
}

inline Launch plan_corr_pos(const CorrArgs& a) {
  const Problem& p = a.p;
  Launch l{};
  CorrPosPlan& t = l.corr_pos;
  const int64_t K = p.h.k, cpg = p.cpg, groups = p.N * a.Cw;
  const int64_t strips_w = ceil_div(p.w.out, 4);
  const int64_t GW = ceil_div(strips_w, ceil_div(strips_w, int64_t(8)));  // even column tiles
  int64_t TH = max_of(int64_t(1), min_of(p.h.out, int64_t(kThreads) / (K * GW)));
  TH = ceil_div(p.h.out, ceil_div(p.h.out, TH));  // even row tiles
  const int64_t IH = TH + K - 1, IW = (4 * GW + K - 1 + 3) / 4 * 4;
  const int64_t per_channel = 4 * (TH * 4 * GW + IH * IW);  // a and b, one group
  int64_t Q = max_of(int64_t(1), min_of(groups, int64_t(kThreads) / (K * TH * GW)));
  auto tables = [&](int64_t q) { return 2 * pos_table_bytes(q * cpg); };
  while (Q > 1 && tables(Q) + Q * per_channel > kMaxSmem) --Q;
  const int64_t cc = min_of(cpg, (kMaxSmem - tables(Q)) / (Q * per_channel));
  if (cc < 1) return Launch{};
  const int64_t b = elem_bytes(p.dtype);
  const bool vec = p.w.out % 4 == 0 && reinterpret_cast<uintptr_t>(a.out) % (4 * b) == 0;
  t = {int32_t(Q), int32_t(TH), int32_t(GW), int32_t(cc), int32_t(IH), int32_t(IW),
       ceil_div(p.h.out, TH), ceil_div(p.w.out, 4 * GW), 1.0f / float(TH), 1.0f / float(IH),
       1.0f / float(TH * GW), 1.0f / float(GW), vec ? 4 : 1, pos_image_rows(a.a_s, p.C), pos_image_rows(a.b_s, p.C)};
  l.kernel = kCorrPos;
  l.kf = int32_t(K);
  l.threads = int32_t(Q * K * TH * GW);
  l.smem = tables(Q) + Q * cc * per_channel;
  l.blocks = ceil_div(groups, Q) * t.tiles_h * t.tiles_w;
  return l;
}

// corr2d; sm_count sizes the split (1 in the emulator), force_splits > 0 fixes it.
inline Launch plan_corr(const CorrArgs& a, int64_t sm_count, int64_t force_splits) {
  const Problem& p = a.p;
  Launch l{};
  const int64_t taps = p.h.k * p.w.k;
  const int64_t numel = a.Nw * a.Cw * taps * a.Hw * a.Ww;
  const int64_t want_blocks = 4 * sm_count;
  if (corr_pos_fits(a)) {
    const Launch pos = plan_corr_pos(a);
    if (pos.blocks > 0) return pos;
  }
  if (corr_batch_fits(a) || corr_batch_large_fits(a)) return plan_corr_batch(a, sm_count, force_splits);
  if (corr_reg_fits(a)) return plan_corr_reg(a, sm_count, force_splits);
  if (corr_sample_fits(a)) return plan_corr_sample(a);
  if (corr_taps_fits(a)) return plan_corr_taps(a, sm_count, force_splits);
  if (corr_taps_cl_fits(a)) return plan_corr_taps(a, sm_count, force_splits, true);
  if (corr_mma_fits(a) && p.h.k <= 7) return plan_corr_mma(a, sm_count, force_splits);
  if (corr_mma_cl_fits(a) && p.h.k <= 7) return plan_corr_mma(a, sm_count, force_splits, true);
  if (corr_band_fits(a)) {  // (at most 89.5 KB over its geometries: within every sm_80+ opt-in)
    const Launch band = plan_corr_band(a, sm_count, force_splits);
    if (band.smem <= kMaxSmemOptIn) return band;
  }
  if (corr_strip_fits(a)) return plan_corr_strip(a, sm_count, force_splits);
  if (a.Hw == 1 && a.Ww == 1 && a.Cw == p.C && channels_last_image(a.a_s, p.C) &&
      channels_last_image(a.b_s, p.C)) {
    // channels_last depth-wise: register rows for the fixed windows, else lanes
    const int64_t rn = a.Nw == 1 ? p.N : 1;
    if (large_fixed_window(p)) {
      Launch rows = plan_corr_channels(
          a, kCorrRows, ceil_div(p.h.k, corr_rows_chunk(int(p.h.k))),
          rn * p.h.out * ceil_div(p.w.out, kConnTileR), sm_count, force_splits);
      rows.kf = int32_t(p.h.k);
      return rows;
    }
    return plan_corr_channels(a, kCorrLanes, ceil_div(taps, kLaneTaps),
                              rn * p.h.out * p.w.out, sm_count, force_splits);
  }
  if (a.Hw == 1 && a.Ww == 1 && taps <= kThreads * kCorrTaps) {
    CorrTilePlan& t = l.corr_tile;
    t.slots = min_of(int64_t(kThreads), next_pow2(ceil_div(taps, kCorrTaps)));
    t.L = kThreads / t.slots;
    t.taps_per_thread = ceil_div(taps, t.slots);
    t.TH = min_of(p.h.out, int64_t(16));
    t.TW = min_of(p.w.out, int64_t(32));
    for (;;) {
      t.IH = max_span(p.h, p.window, t.TH);
      t.IW = max_span(p.w, p.window, t.TW);
      l.smem = acc_bytes(p.dtype) * (t.TH * t.TW + t.IH * t.IW + kThreads) + 4 * (t.TH + t.TW);
      if (l.smem <= kMaxSmem || (t.TH == 1 && t.TW == 1)) break;
      if (t.TH >= t.TW) t.TH = (t.TH + 1) / 2;
      else t.TW = (t.TW + 1) / 2;
    }
    if (l.smem <= kMaxSmem) {
      t.row_tiles = ceil_div(p.h.out, t.TH);
      t.col_tiles = ceil_div(p.w.out, t.TW);
      const int64_t steps = (a.Nw == 1 ? p.N : 1) * p.cpg * t.row_tiles * t.col_tiles;
      const int64_t results = a.Nw * a.Cw;
      int64_t s = force_splits > 0 ? force_splits : ceil_div(want_blocks, results);
      s = max_of(int64_t(1), min_of(min_of(s, steps), kMaxWorkspace / (numel * acc_bytes(p.dtype))));
      t.splits = s;
      t.vec_a = image_rows_vectorizable(a.a, a.a_s, p.dtype);
      t.vec_b = image_rows_vectorizable(a.b, a.b_s, p.dtype);
      l.kernel = kCorrTile;
      l.threads = kThreads;
      l.blocks = results * s;
      l.workspace_bytes = s > 1 ? s * numel * acc_bytes(p.dtype) : 0;
      return l;
    }
  }
  CorrElemPlan& t = l.corr_elem;
  const int64_t total = (a.Nw == 1 ? p.N : 1) * p.cpg * (a.Hw == 1 ? p.h.out : 1) *
                        (a.Ww == 1 ? p.w.out : 1);
  // lanes along the contiguous dim: channels_last inputs give each result up to 32 lanes
  // over the channels (coalesced); NCHW ones give consecutive results (neighbouring
  // positions) to consecutive threads, each summing its channels alone (coalesced too),
  // unless the reduction is long (the batch of a static weight), then 32 lanes.
  const bool lanes_on_channels = channels_last_image(a.a_s, p.C) || total > 4096;
  t.L = lanes_on_channels ? min_of(int64_t(32), next_pow2(total)) : 1;
  t.slots = kThreads / t.L;
  const int64_t blocks_r = ceil_div(numel, t.slots);
  int64_t s = force_splits > 0 ? force_splits : ceil_div(want_blocks, blocks_r);
  s = min_of(s, ceil_div(total, t.L));  // every split has at least L terms
  s = max_of(int64_t(1), min_of(s, kMaxWorkspace / (numel * acc_bytes(p.dtype))));
  t.splits = s;
  l.kernel = kCorrElem;
  l.threads = kThreads;
  l.blocks = blocks_r * s;
  l.smem = acc_bytes(p.dtype) * kThreads;
  l.workspace_bytes = s > 1 ? s * numel * acc_bytes(p.dtype) : 0;
  return l;
}

// corr2d with a 13 x 13 or 31 x 31 window on float32 / float64 NCHW images (the depth-wise
// weight gradient) runs on channels_last pixels: planes.cuh puts a and b into pixels (a
// workspace, the channels padded to whole 16 bytes), corr_rows.cuh sums them (its
// registers hold a chunk of kernel rows' taps of a channel, the channels coalesced),
// against corr_tile's shared-memory tiles on the planes (model, H200 float32
// 64x384x32x32: 13x13 4083-5103 -> 1498-1871 us, 31x31 15.9-19.8 -> 7.7-9.6 ms;
// benchmarks/results/model/NOTES.md 2026-12-01). 16-bit types have
// corr_mma.cuh on the planes. Dense planes of a whole number of 16 bytes (H W a multiple
// of 4 / 2 values, aligned), a result per channel shared across positions; no chunks (the
// sums run over the batch): a and b within kMaxWorkspace together.
struct PixelsRoute {
  int64_t channels;          // the pixels' channel stride (C rounded up to 16 bytes; 0: none)
  int64_t a_bytes, b_bytes;  // a's pixels, then b's, then corr_rows' split partials
};

// NCHW with dense planes of a whole number of 16 bytes (`eb`-byte values), each plane's
// start aligned (Image strides are 0 along size-1 dims)
inline bool dense_planes(const void* base, const Image& s, int64_t C, int64_t H, int64_t W,
                         int64_t eb) {
  return (W == 1 || s.w == 1) && (H == 1 || s.h == W) && (C == 1 || s.c == H * W) &&
         (H * W) % (16 / eb) == 0 && reinterpret_cast<uintptr_t>(base) % 16 == 0 &&
         (s.n * eb) % 16 == 0;
}

// `a` on `r`'s pixels at `ws` (channels_last strides; the split partials after them)
inline CorrArgs pixels_args(const CorrArgs& a, const PixelsRoute& r, void* ws) {
  const Problem& p = a.p;
  const uintptr_t base = reinterpret_cast<uintptr_t>(ws);
  const int64_t cs = r.channels;
  CorrArgs b = a;
  b.a = reinterpret_cast<const void*>(base);
  b.a_s = Image{p.h.out * p.w.out * cs, 1, p.w.out * cs, cs};
  b.b = reinterpret_cast<const void*>(base + uintptr_t(r.a_bytes));
  b.b_s = Image{p.h.in * p.w.in * cs, 1, p.w.in * cs, cs};
  b.workspace = ws == nullptr ? nullptr
                              : reinterpret_cast<void*>(base + uintptr_t(r.a_bytes + r.b_bytes));
  return b;
}

inline PixelsRoute plan_pixels(const CorrArgs& a) {
  const Problem& p = a.p;
  const PixelsRoute none{};
  const int64_t eb = elem_bytes(p.dtype), V = 16 / eb;
  if (!large_fixed_window(p) || (p.dtype != kFloat32 && p.dtype != kFloat64) || a.Hw != 1 ||
      a.Ww != 1 || a.Cw != p.C || p.N == 0 || p.h.out * p.w.out == 0 || p.h.in * p.w.in == 0 ||
      !dense_planes(a.a, a.a_s, p.C, p.h.out, p.w.out, eb) ||
      !dense_planes(a.b, a.b_s, p.C, p.h.in, p.w.in, eb))
    return none;
  PixelsRoute r{};
  r.channels = ceil_div(p.C, V) * V;
  r.a_bytes = p.N * p.h.out * p.w.out * r.channels * eb;
  r.b_bytes = p.N * p.h.in * p.w.in * r.channels * eb;
  return r.a_bytes + r.b_bytes <= kMaxWorkspace ? r : none;
}

}  // namespace lc
