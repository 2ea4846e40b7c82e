// Decode kernels over the 32-value block types Q4_0, Q5_0 and Q8_0 with
// int8 activations (quant_decode32.cc): the activations arranged once per
// call in the kernels' order, the AVX-512 VNNI kernel and its scalar twin
// (the same bits). Internal to src/cpu.
#pragma once

#include <cstdint>

#include "cpu/kernels.h"

namespace dsv3::cpu {

// Per token, per quad of blocks (A, B, C, D = 4g .. 4g + 3; blocks past the
// row are zero): q [128] = values 0..15 of A, B, C, D, then values 16..31 of
// A, B, C, D; per dword lane l (block l / 4) d [16] = d_t of the block and
// init [16] = -(bias / 4) sum(q) of the block, the weights' bias taken out
// of the integer sum before it becomes a float.
struct Decode32Acts {
  const int8_t* q = nullptr;
  const float* d = nullptr;
  const int32_t* init = nullptr;
  int64_t n = 0, cols = 0;
};
bool Decode32Supports(DType t);
int64_t Decode32ActBytes(int64_t n, int64_t cols);
// For weights of type t, from signed int8 activations q [n, cols] with
// scales dg [n, cols / 32] and the sums of q per 16 values sum16
// [n, cols / 16] (as quant_int8.cc's activation quantizer leaves them);
// with `avx512` (present on this CPU) vectorised, the same bytes.
void Expand32Acts(DType t, const int8_t* q, const float* dg, const int32_t* sum16, int64_t n, int64_t cols,
                  Decode32Acts& a, uint8_t* buf, bool avx512);

// y[t * y_stride + r] for rows [r0, r1) and a.n tokens. The VNNI kernel
// needs AVX512-VNNI and VBMI (HasAvx512Vbmi()).
void Decode32Twin(const MatRef& w, const Decode32Acts& a, float* y, int64_t y_stride, int64_t r0, int64_t r1);
void Decode32Vnni(const MatRef& w, const Decode32Acts& a, float* y, int64_t y_stride, int64_t r0, int64_t r1);

}  // namespace dsv3::cpu
