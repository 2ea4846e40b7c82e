// FP8 e4m3 matrices held as int8 tiles (DType::kI8T32, made at load by
// --int8-fp8; issue 18): the levels the int8 tile kernel would otherwise
// make from the FP8 rows on every call (PrepareFp8Vnni), stored once in the
// tile's interleaved order, so prefill multiplies the stored bytes directly
// and decode (1..7 tokens) runs a VPDPBUSD kernel on them. One byte per weight
// as in the FP8 file, plus one exponent per 16 rows x 32 columns. Internal to
// src/cpu.
#pragma once

#include <cstdint>

#include "cpu/kernels.h"
#include "cpu/quant_int8_tile.h"

namespace dsv3::cpu {

// Packing and row dequantization are declared in kernels.h (the loader and
// the reference path use them).

// The stored tile of rows [r, r + rows) of a kI8T32 view ((row_offset + r)
// a multiple of 32): w points at the stored levels, s and c are filled.
void PrepareI8TTile(const MatRef& w, int64_t r, int rows, bool vnni, Int8Tile& tile);

// y[t * y_stride + r] for rows [r0, r1) ((row_offset + r0) a multiple of
// 16) and n < 8 tokens of signed activations q [n, cols] with d_t per 32
// (dg) and sum(q) per 32 (qsum), [n, cols / 32]. Per row and token the same
// integer sums and float steps as the tile product, so decode and prefill
// agree bit for bit; the VNNI kernel and its twin give the same bits.
void DecodeI8TTwin(const MatRef& w, const int8_t* q, const float* dg, const int32_t* qsum, int64_t n, float* y,
                   int64_t y_stride, int64_t r0, int64_t r1);
void DecodeI8TVnni(const MatRef& w, const int8_t* q, const float* dg, const int32_t* qsum, int64_t n, float* y,
                   int64_t y_stride, int64_t r0, int64_t r1);

}  // namespace dsv3::cpu
