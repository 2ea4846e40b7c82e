// A weight matrix exactly as the checkpoint stores it: F32, BF16, F16, FP8
// e4m3 with a block-scale grid (`weight_scale_inv`), or a ggml block type
// from GGUF (Q8_0, Q4_K, ...: core/ggml_quants.h; blocks of 32 or 256 values
// along a row, cols a multiple of the block). Ops decode on the fly;
// the model never holds a float copy of a matrix. A Weight may also be a view
// of a contiguous range of rows (e.g. one head's W_uk inside kv_b_proj), in
// which case FP8 scales are still indexed by the row's absolute position.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace dsv3 {

struct Weight {
  DType dtype = DType::kF32;
  int64_t rows = 0, cols = 0;  // [out, in]
  const void* data = nullptr;  // first row of this view, row-major
  // FP8 only: scale grid [ceil(total_rows/block_rows), scale_cols].
  const float* scale_inv = nullptr;
  int64_t scale_cols = 0;
  int64_t block_rows = 128, block_cols = 128;
  int64_t row_offset = 0;  // absolute index of this view's first row
  // kI8T32 only (--int8-fp8's tiles): the exponent of each 16 rows x 32
  // columns, [ceil(total_rows / 16), cols / 32], indexed by absolute row.
  const uint8_t* tile_exp = nullptr;

  bool empty() const { return data == nullptr; }
  int64_t bytes_per_row() const { return static_cast<int64_t>(DTypeBytes(dtype, cols)); }
  int64_t nbytes() const { return rows * bytes_per_row(); }

  // Rows [begin, begin + count) of this matrix.
  Weight Rows(int64_t begin, int64_t count) const {
    Weight w = *this;
    w.rows = count;
    w.data = static_cast<const uint8_t*>(data) + begin * bytes_per_row();
    w.row_offset = row_offset + begin;
    return w;
  }
  // The dequantization multiplier for (local row r, column c).
  float Scale(int64_t r, int64_t c) const {
    return scale_inv[((row_offset + r) / block_rows) * scale_cols + c / block_cols];
  }
};

}  // namespace dsv3
