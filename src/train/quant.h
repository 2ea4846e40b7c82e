// Reduced-precision GEMM inputs for mixed-precision training, emulated on
// the CPU: an operand is rounded to the values BF16 or FP8 e4m3 can hold
// (with the fine-grained scaling of the DeepSeek-V3 recipe for FP8) and the
// float32 GEMM then multiplies those exact values with float32 accumulation.
// The result reproduces the numerics of FP8/BF16 tensor-core training (inputs
// quantized, fp32 accumulation); it is not faster than float32 here.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace dsv3::train {

enum class Precision { kFp32, kBf16, kFp8 };

const char* PrecisionName(Precision p);
bool ParsePrecision(const std::string& s, Precision* out);

// The largest finite e4m3fn magnitude.
inline constexpr float kE4M3Max = 448.0f;

// x rounded to the nearest BF16 value (ties to even), as a float. Written
// without branches so loops over it vectorise; NaN stays NaN.
inline float RoundBf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  const uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  const uint32_t out = (u & 0x7fffffffu) > 0x7f800000u ? u : r;
  std::memcpy(&x, &out, 4);
  return x;
}

// x (already scaled into [-448, 448]) rounded to the nearest e4m3fn value
// (ties to even; subnormal spacing 2^-9 below 2^-6; saturating at 448).
// Both roundings are computed and one selected, so loops over it vectorise;
// the twin test checks it against the codec in core/dtype.h.
inline float RoundE4M3(float x) {
  const float a = x < 0 ? -x : x;
  // Subnormal range: fixed quantum 2^-9; a * 512 + 1.5 * 2^23 rounds to nearest even.
  const float big = 12582912.0f;
  const float sub = ((a * 512.0f + big) - big) * (1.0f / 512.0f);
  // Normal range: drop 20 of the 23 mantissa bits, rounding to nearest even.
  uint32_t u;
  std::memcpy(&u, &a, 4);
  u = (u + 0x7ffffu + ((u >> 20) & 1u)) & 0xfff00000u;
  float norm;
  std::memcpy(&norm, &u, 4);
  float r = a < 0.015625f ? sub : norm;
  r = r > kE4M3Max ? kE4M3Max : r;
  return x < 0 ? -r : r;
}

// dst [rows, cols] (contiguous) = src [rows, cols] (rows `ld` apart) with
// every value rounded to BF16.
void RoundMatrixBf16(const float* src, int64_t rows, int64_t cols, int64_t ld, float* dst);

// dst [rows, cols] (contiguous) = src quantized to e4m3 and dequantized, one
// scale (amax / 448) per block of block_rows x block_cols of the stored
// matrix (1 x 128: per-token activation tiles; 128 x 1: the same tiles seen
// along tokens, for weight gradients; 128 x 128: weight blocks). Partial edge
// blocks follow the same rule. An all-zero block stays zero.
void QuantDequantE4M3(const float* src, int64_t rows, int64_t cols, int64_t ld, int64_t block_rows,
                      int64_t block_cols, float* dst);

}  // namespace dsv3::train
