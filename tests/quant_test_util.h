// Test data for the GGUF block-type and FP8 int8 kernels (quant_kernels_test,
// quant_int8_test, stored_tiles_test): every block type dsv3 reads, and weights quantized by
// dsv3's ggml-exact encoders from gaussian values with blocks of extreme
// contents (an all-zero first block, one huge value in the second row).
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "core/dtype.h"
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

// FP8 e4m3 weights with int8 activations (issue 18): [rows, cols], block
// scales of `block` x `block`, so tiles cross a block's rows.
struct Fp8Weight {
  Weight w;
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
};
inline Fp8Weight MakeFp8(int64_t rows, int64_t cols, int64_t block, std::mt19937& rng) {
  Fp8Weight f;
  std::normal_distribution<float> dist(0.0f, 0.05f);
  std::uniform_real_distribution<float> s(1e-4f, 2e-3f);
  const int64_t sr = (rows + block - 1) / block, sc = (cols + block - 1) / block;
  f.scales.resize(sr * sc);
  for (float& v : f.scales) v = s(rng);
  f.bytes.resize(rows * cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      // Some rows far smaller than their neighbours: groups with a wide range.
      const float v = dist(rng) * (r % 7 == 3 ? 0.01f : 1.0f);
      f.bytes[r * cols + c] = F32ToF8E4M3(v / f.scales[(r / block) * sc + c / block]);
    }
  f.w.dtype = DType::kF8E4M3, f.w.rows = rows, f.w.cols = cols, f.w.data = f.bytes.data();
  f.w.scale_inv = f.scales.data(), f.w.scale_cols = sc, f.w.block_rows = block, f.w.block_cols = block;
  return f;
}
}  // namespace dsv3
