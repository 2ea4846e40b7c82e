// BF16 rounding and block-scaled e4m3 quantize-dequantize of GEMM operands;
// see quant.h.
#include "train/quant.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/parallel.h"

namespace dsv3::train {

const char* PrecisionName(Precision p) {
  switch (p) {
    case Precision::kFp32: return "fp32";
    case Precision::kBf16: return "bf16";
    case Precision::kFp8: return "fp8";
  }
  return "?";
}

bool ParsePrecision(const std::string& s, Precision* out) {
  if (s == "fp32") *out = Precision::kFp32;
  else if (s == "bf16") *out = Precision::kBf16;
  else if (s == "fp8") *out = Precision::kFp8;
  else return false;
  return true;
}

void RoundMatrixBf16(const float* src, int64_t rows, int64_t cols, int64_t ld, float* dst) {
  ParallelFor(rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* s = src + r * ld;
      float* d = dst + r * cols;
      for (int64_t c = 0; c < cols; ++c) d[c] = RoundBf16(s[c]);
    }
  });
}

void QuantDequantE4M3(const float* src, int64_t rows, int64_t cols, int64_t ld, int64_t block_rows,
                      int64_t block_cols, float* dst) {
  const int64_t grid_rows = (rows + block_rows - 1) / block_rows;
  const int64_t grid_cols = (cols + block_cols - 1) / block_cols;
  ParallelFor(grid_rows, 1, [&](int64_t g0, int64_t g1) {
    thread_local std::vector<float> scales;  // [grid_cols] amax, then the scale
    if (static_cast<int64_t>(scales.size()) < grid_cols) scales.resize(grid_cols);
    for (int64_t g = g0; g < g1; ++g) {
      const int64_t r0 = g * block_rows, r1 = std::min(rows, r0 + block_rows);
      // Sweep the block row in storage order (cache-friendly for 128 x 1
      // blocks too): first the amax of each block, then quantize.
      std::fill(scales.begin(), scales.begin() + grid_cols, 0.0f);
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t b = 0; b < grid_cols; ++b) {
          const float* s = src + r * ld + b * block_cols;
          float m = scales[b];
          for (int64_t c = 0, n = std::min(block_cols, cols - b * block_cols); c < n; ++c) {
            const float a = std::fabs(s[c]);
            if (!(a <= m)) m = a != a ? std::numeric_limits<float>::infinity() : a;  // NaN -> inf
          }
          scales[b] = m;
        }
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t b = 0; b < grid_cols; ++b) {
          const float* s = src + r * ld + b * block_cols;
          float* d = dst + r * cols + b * block_cols;
          const int64_t n = std::min(block_cols, cols - b * block_cols);
          const float amax = scales[b];
          if (amax == 0.0f) {  // an all-zero block stays zero
            std::fill(d, d + n, 0.0f);
          } else if (!std::isfinite(amax)) {  // poison it so the NaN check sees it
            std::fill(d, d + n, std::numeric_limits<float>::quiet_NaN());
          } else {
            const float inv_scale = kE4M3Max / amax, scale = amax / kE4M3Max;
            for (int64_t c = 0; c < n; ++c) d[c] = RoundE4M3(s[c] * inv_scale) * scale;
          }
        }
    }
  });
}

}  // namespace dsv3::train
