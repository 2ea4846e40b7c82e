// Matrices kept as int8 tiles from load: FP8 e4m3 under --int8-fp8
// (DType::kI8T32, issue 18) and Q8_0 under --repack (DType::kQ8_0T32, issue
// 16). The levels the int8 tile kernel would otherwise make from the rows on
// every call (PrepareFp8Vnni, PrepareQ8_0Vnni) are stored once in the tile's
// interleaved order, so prefill multiplies the stored bytes directly and
// fewer than 64 tokens (decode included) run a VPDPBUSD kernel of their
// own. FP8 tiles take one byte per weight plus one exponent per 16 rows x
// 32 columns (kept apart, MatRef::tile_exp); a Q8_0 tile's f16 scales
// [cols / 32, 32] follow its levels, 34 bytes per 32 weights as in the
// file. Internal to src/cpu (the packing API is in kernels.h).
#pragma once

#include <cstdint>

#include "cpu/kernels.h"
#include "cpu/quant_int8_tile.h"

namespace dsv3::cpu {

// The stored tile of rows [r, r + rows) of a stored-tile view ((row_offset +
// r) a multiple of 32): w points at the stored levels, s and c are filled.
void PrepareStoredTile(const MatRef& w, int64_t r, int rows, bool vnni, Int8Tile& tile);

// y[t * y_stride + r] for rows [r0, r1) ((row_offset + r0) a multiple of
// 16) and n tokens of signed activations q [n, cols] with d_t per 32 (dg)
// and the bias -128 sum(q) per 32 (qbias), [n, cols / 32]; up to 7 tokens
// per pass, every pass over a tile while it is in cache. Per row and token
// the same integer sums and float steps as the tile product (TileGemmVnni
// over PrepareStoredTile), so the two agree bit for bit and need no
// correction sums; the VNNI kernel and its twin give the same bits. The
// VNNI kernel takes `work`, DecodeStoredWorkFloats(cols, n) floats.
void DecodeStoredTwin(const MatRef& w, const int8_t* q, const float* dg, const int32_t* qbias, int64_t n, float* y,
                      int64_t y_stride, int64_t r0, int64_t r1);
void DecodeStoredVnni(const MatRef& w, const int8_t* q, const float* dg, const int32_t* qbias, int64_t n, float* y,
                      int64_t y_stride, int64_t r0, int64_t r1, float* work);
int64_t DecodeStoredWorkFloats(int64_t cols, int64_t n);

}  // namespace dsv3::cpu
