// Decode kernels over Q4_K_R4 (core/q4k_r4.h) with int8 activations: the
// activations expanded once per call into the kernel's order, the AVX-512
// VNNI kernel and its scalar twin (the same bits). Internal to src/cpu.
#pragma once

#include <cstdint>

#include "cpu/kernels.h"
#include "cpu/quant_int8_tile.h"

namespace dsv3::cpu {

// Activations of n tokens as DecodeQ4KR4* read them: q [n, cols / 16, 64]
// (each 16-value segment with dword p repeated over dwords 4p..4p+3, one copy
// per interleaved row) and per block of 256 values 32 factors [4g + r] for
// sub-block g (the same for the four rows r): d [n, cols / 8] = d_t and qd
// = float(sum q) * d_t.
struct Q4KR4Acts {
  const int8_t* q = nullptr;
  const float* d = nullptr;
  const float* qd = nullptr;
  int64_t n = 0, cols = 0;
};
// Bytes of the buffer ExpandQ4KR4Acts fills.
int64_t Q4KR4ActBytes(int64_t n, int64_t cols);
// From signed int8 activations q [n, cols] and dg, qdg [n, cols / 32]; with
// `vnni` (AVX-512 present) vectorised, the same bytes.
void ExpandQ4KR4Acts(const int8_t* q, const float* dg, const float* qdg, int64_t n, int64_t cols, Q4KR4Acts& a,
                     uint8_t* buf, bool vnni);

// Rows [r, r + rows) of a Q4_K_R4 matrix as Q4_K bytes (row after row) in
// out, for the tiles of prefill; `avx512`: vectorised, the same bytes.
void UnpackQ4KR4Rows(const MatRef& w, int64_t r, int rows, uint8_t* out, bool avx512);

// y[t * y_stride + r - r0] for rows [r0, r1) (multiples of 4) and a.n tokens.
void DecodeQ4KR4Twin(const MatRef& w, const Q4KR4Acts& a, float* y, int64_t y_stride, int64_t r0, int64_t r1);
DSV3_VBMI_TARGET void DecodeQ4KR4Vnni(const MatRef& w, const Q4KR4Acts& a, float* y, int64_t y_stride, int64_t r0,
                                      int64_t r1);

}  // namespace dsv3::cpu
