// compressed-tensors pack-quantized <-> ggml Q4_0 / Q8_0; see packed_int.h.
#include "model/packed_int.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/parallel.h"

namespace dsv3 {

namespace {

float ScaleAt(const TensorInfo& s, int64_t i) {
  uint16_t h;
  switch (s.dtype) {
    case DType::kBF16: std::memcpy(&h, s.data + 2 * i, 2); return Bf16ToF32(h);
    case DType::kF16: std::memcpy(&h, s.data + 2 * i, 2); return F16ToF32(h);
    default: {
      float f;
      std::memcpy(&f, s.data + 4 * i, 4);
      return f;
    }
  }
}

// One 32-value block: the block's packed words `at` (bits 32-value words:
// 4 for int4, 8 for int8; copied, as the file need not align them), scale
// d (float16 bits).
void Block(const uint8_t* at, int bits, uint16_t d, uint8_t* out) {
  int32_t words[8];
  std::memcpy(words, at, static_cast<size_t>(bits) * 4);
  std::memcpy(out, &d, 2);
  if (bits == 8) {
    for (int j = 0; j < 32; ++j) out[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(PackedValue(words, 8, j)));
    return;
  }
  // Q4_0: byte j holds value j (low nibble) and value j + 16 (high), both + 8.
  for (int j = 0; j < 16; ++j)
    out[2 + j] = static_cast<uint8_t>((PackedValue(words, 4, j) + 8) | ((PackedValue(words, 4, j + 16) + 8) << 4));
}

}  // namespace

Status RepackPackedInt(const TensorInfo& packed, const TensorInfo& scale, int bits, int64_t group, int64_t rows,
                       int64_t cols, uint8_t* out) {
  const int64_t words = cols * bits / 32, groups = cols / group, block_bytes = bits == 8 ? 34 : 18;
  std::vector<uint16_t> d(static_cast<size_t>(rows * groups));
  for (int64_t i = 0; i < rows * groups; ++i) {
    const float s = ScaleAt(scale, i);
    d[i] = F32ToF16(s);
    if (F16ToF32(d[i]) != s || !std::isfinite(s)) {
      char value[32];
      std::snprintf(value, sizeof value, "%g", s);
      return Status::Error(scale.file + ": scale tensor '" + scale.name + "' holds " + value +
                           " (row " + std::to_string(i / groups) + ", group " + std::to_string(i % groups) +
                           "), which float16 cannot hold exactly; the int" + std::to_string(bits) +
                           " blocks need float16 scales (requantize with dsv3 convert --to w" + std::to_string(bits) +
                           "a16 from the BF16 checkpoint)");
    }
  }
  ParallelFor(rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t b = 0; b < cols / 32; ++b)
        Block(packed.data + (r * words + b * bits) * 4, bits, d[r * groups + (32 * b) / group],
              out + (r * (cols / 32) + b) * block_bytes);
  });
  return Status::Ok();
}

void PackRow(const float* w, int64_t cols, int bits, int64_t group, int32_t* packed, uint16_t* scales) {
  const int32_t lo = -(1 << (bits - 1)), hi = (1 << (bits - 1)) - 1;
  const int64_t per_word = 32 / bits;
  std::fill(packed, packed + cols / per_word, 0);
  for (int64_t g = 0; g < cols / group; ++g) {
    float amax = 0.0f;
    for (int64_t c = g * group; c < (g + 1) * group; ++c) amax = std::max(amax, std::fabs(w[c]));
    // Stored as bf16; the values are rounded against the stored scale, which
    // must also be a float16 number (the loader's blocks): bf16's 8 bits of
    // mantissa fit, the exponent range is clamped to float16's normal one.
    const float want = std::clamp(amax / (static_cast<float>(hi) + 0.5f), 0x1p-14f, 65504.0f);
    scales[g] = F32ToBf16(want);
    const float s = Bf16ToF32(scales[g]);
    for (int64_t c = g * group; c < (g + 1) * group; ++c) {
      const int32_t v = std::clamp(static_cast<int32_t>(std::lrint(w[c] / s)), lo, hi);
      const uint32_t u = static_cast<uint32_t>(v - lo);
      packed[c / per_word] = static_cast<int32_t>(static_cast<uint32_t>(packed[c / per_word]) |
                                                  (u << (bits * (c % per_word))));
    }
  }
}

}  // namespace dsv3
