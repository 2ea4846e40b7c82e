// Test data for the GGUF block-type kernels (quant_kernels_test,
// quant_int8_test): every block type dsv3 reads, and weights quantized by
// dsv3's ggml-exact encoders from gaussian values with blocks of extreme
// contents (an all-zero first block, one huge value in the second row).
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "core/ggml_quants.h"
#include "ops/weight.h"

namespace dsv3 {

inline constexpr DType kQuantTypes[] = {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1,
                                        DType::kQ8_0, DType::kQ2_K, DType::kQ3_K, DType::kQ4_K,
                                        DType::kQ5_K, DType::kQ6_K, DType::kIQ4_NL, DType::kIQ4_XS};

struct QuantWeight {
  Weight w;                    // [rows, cols] of type t, pointing into `bytes`
  std::vector<uint8_t> bytes;
};

inline QuantWeight MakeQuant(DType t, int64_t rows, int64_t cols, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 0.05f);
  std::vector<float> v(rows * cols);
  for (float& x : v) x = dist(rng);
  for (int64_t i = 0; i < std::min<int64_t>(cols, 256); ++i) v[i] = 0.0f;  // an all-zero first block
  if (rows > 1) v[cols + 3] = 30.0f;
  QuantWeight q;
  const int64_t row_bytes = static_cast<int64_t>(DTypeBytes(t, cols));
  q.bytes.resize(rows * row_bytes);
  for (int64_t r = 0; r < rows; ++r) QuantizeBlocks(t, v.data() + r * cols, cols, q.bytes.data() + r * row_bytes);
  q.w.dtype = t, q.w.rows = rows, q.w.cols = cols, q.w.data = q.bytes.data();
  return q;
}

}  // namespace dsv3
