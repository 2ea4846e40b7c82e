// BF16 rounding and block-scaled e4m3 quantize-dequantize of GEMM operands;
// see quant.h.
#include "train/quant.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/parallel.h"
#include "train/vec.h"

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

namespace {

// One block row [r0, r1): the amax of every column block, then quantize.
// Per-column blocks (128 x 1, the weight-gradient tiles) run vectorised across
// columns; wider blocks vectorise within the block.
void QuantBlockRow(const float* src, int64_t ld, int64_t r0, int64_t r1, int64_t cols, int64_t block_cols,
                   float* dst, std::vector<float>& amax, std::vector<float>& inv, std::vector<float>& scale) {
  const int64_t grid_cols = (cols + block_cols - 1) / block_cols;
  std::fill(amax.begin(), amax.begin() + grid_cols, 0.0f);
  bool finite = true;
  for (int64_t r = r0; r < r1; ++r) {
    if (block_cols == 1) {
      finite &= AbsMaxInto(src + r * ld, amax.data(), cols);
    } else {
      for (int64_t b = 0; b < grid_cols; ++b) {
        bool ok = true;
        amax[b] = std::max(amax[b], AbsMax(src + r * ld + b * block_cols, std::min(block_cols, cols - b * block_cols), &ok));
        if (!ok) amax[b] = std::numeric_limits<float>::infinity();
      }
    }
  }
  if (!finite) std::fill(amax.begin(), amax.begin() + grid_cols, std::numeric_limits<float>::infinity());
  // scale = amax / 448 (zero blocks stay zero; a non-finite block becomes NaN
  // so the trainer's check sees it instead of a silently clipped value).
  for (int64_t b = 0; b < grid_cols; ++b) {
    const float a = amax[b];
    const bool bad = !(a <= std::numeric_limits<float>::max());
    inv[b] = a == 0.0f ? 0.0f : bad ? std::numeric_limits<float>::quiet_NaN() : kE4M3Max / a;
    scale[b] = a == 0.0f ? 0.0f : bad ? std::numeric_limits<float>::quiet_NaN() : a / kE4M3Max;
  }
  for (int64_t r = r0; r < r1; ++r) {
    if (block_cols == 1) {
      RoundE4M3Row(src + r * ld, dst + r * cols, cols, inv.data(), scale.data(), true);
    } else {
      for (int64_t b = 0; b < grid_cols; ++b)
        RoundE4M3Row(src + r * ld + b * block_cols, dst + r * cols + b * block_cols,
                     std::min(block_cols, cols - b * block_cols), &inv[b], &scale[b], false);
    }
  }
}

}  // namespace

void QuantDequantE4M3(const float* src, int64_t rows, int64_t cols, int64_t ld, int64_t block_rows,
                      int64_t block_cols, float* dst) {
  const int64_t grid_rows = (rows + block_rows - 1) / block_rows;
  const int64_t grid_cols = (cols + block_cols - 1) / block_cols;
  ParallelFor(grid_rows, 1, [&](int64_t g0, int64_t g1) {
    thread_local std::vector<float> amax, inv, scale;  // [grid_cols] per block column
    if (static_cast<int64_t>(amax.size()) < grid_cols) amax.resize(grid_cols), inv.resize(grid_cols), scale.resize(grid_cols);
    for (int64_t g = g0; g < g1; ++g)
      QuantBlockRow(src, ld, g * block_rows, std::min(rows, (g + 1) * block_rows), cols, block_cols, dst, amax, inv,
                    scale);
  });
}

}  // namespace dsv3::train
