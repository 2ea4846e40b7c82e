// compressed-tensors' "pack-quantized" weight-only integers (vLLM's W4A16 /
// W8A16: symmetric int4 or int8 values, stored as unsigned value + 2^(bits-1)
// packed little-end first into int32 along each row, one scale per group of
// columns) -> ggml Q4_0 / Q8_0 blocks of 32 values sharing one float16 scale.
// A group is a whole number of blocks and the values carry over unchanged
// (Q4_0's nibble is the same unsigned value, Q8_0's the signed one), so the
// repacked matrix dequantizes to exactly value x scale as long as each
// scale is a float16 number; the block kernels then run it. The codec both
// ways: Pack is what `dsv3 convert --to w4a16|w8a16` writes.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "io/safetensors.h"

namespace dsv3 {

// packed [rows, cols * bits / 32] I32, scale [rows, cols / group] F32, BF16
// or F16 -> out [rows, cols / 32] blocks of Q4_0 (bits 4) or Q8_0 (bits 8).
// Errors name the tensor: a scale that float16 cannot hold exactly.
Status RepackPackedInt(const TensorInfo& packed, const TensorInfo& scale, int bits, int64_t group, int64_t rows,
                       int64_t cols, uint8_t* out);

// One row: w [cols] -> packed [cols * bits / 32] and scales [cols / group]
// (bf16 bits): scale = bf16(max |w| of the group / (2^(bits-1) - 0.5)),
// value = clamp(round(w / scale), -2^(bits-1), 2^(bits-1) - 1).
void PackRow(const float* w, int64_t cols, int bits, int64_t group, int32_t* packed, uint16_t* scales);

// The signed integer value of column c of a packed row.
inline int32_t PackedValue(const int32_t* packed_row, int bits, int64_t c) {
  const int64_t per_word = 32 / bits;
  const uint32_t word = static_cast<uint32_t>(packed_row[c / per_word]);
  const uint32_t mask = (1u << bits) - 1;
  return static_cast<int32_t>((word >> (bits * (c % per_word))) & mask) - (1 << (bits - 1));
}

}  // namespace dsv3
