// The ggml block-quantized weight formats GGUF files carry (Q4_0, Q4_1, Q5_0,
// Q5_1, Q8_0, the K-quants Q2_K..Q6_K, IQ4_NL, IQ4_XS): their byte layouts and
// the scalar codecs that define dsv3's numerics for them. The decoders give
// bit for bit the floats of ggml's dequantize_row_* and the encoders the bytes
// of ggml's quantize_row_*_ref (tests/ggml_quants_test.cc checks both against
// vectors made by ggml itself). Every SIMD kernel over these formats is tested
// against DequantizeBlocks. Both files are compiled without floating-point
// contraction: ggml's reference rounds every product and sum separately.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/dtype.h"

namespace dsv3 {

inline constexpr int64_t kQkK = 256;  // K-quant super-block

// Byte offsets inside one block (ggml-common.h's structs, packed):
//   Q4_0   d f16 @0, qs[16] @2 (low nibbles: elements 0..15, high: 16..31)
//   Q4_1   d @0, m @2, qs[16] @4
//   Q5_0   d @0, qh u32 @2 (bit j: 5th bit of element j), qs[16] @6
//   Q5_1   d @0, m @2, qh @4, qs[16] @8
//   Q2_K   scales[16] @0 (low nibble scale, high nibble min), qs[64] @16, d @80, dmin @82
//   Q3_K   hmask[32] @0, qs[64] @32, scales[12] @96 (sixteen 6-bit, biased by 32), d @108
//   Q4_K   d @0, dmin @2, scales[12] @4 (eight 6-bit scales and mins), qs[128] @16
//   Q5_K   d @0, dmin @2, scales[12] @4, qh[32] @16, qs[128] @48
//   Q6_K   ql[128] @0, qh[64] @128, scales int8[16] @192, d @208
//   IQ4_NL d @0, qs[16] @2 (indices into kIq4NlValues)
//   IQ4_XS d @0, scales_h u16 @2, scales_l[4] @4, qs[128] @8
// The 16 non-linear levels of IQ4_NL and IQ4_XS.
inline constexpr int8_t kIq4NlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

inline float LoadHalf(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return F16ToF32(h);
}

// Scale and min j (0..7) of a Q4_K/Q5_K block's 12-byte scale field.
inline void KScaleMin(int j, const uint8_t* q, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = q[j] & 63, *min = q[j + 4] & 63;
  } else {
    *scale = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *min = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// The sixteen signed scales (already minus 32) of a Q3_K block.
void Q3KScales(const uint8_t* scales12, int8_t* out16);

// 6-bit scale of sub-block ib (0..7) of an IQ4_XS block, minus 32.
inline int Iq4XsScale(const uint8_t* block, int ib) {
  uint16_t h;
  std::memcpy(&h, block + 2, 2);
  return (((block[4 + ib / 2] >> (4 * (ib % 2))) & 0xF) | (((h >> (2 * ib)) & 3) << 4)) - 32;
}

// out[0..n) from n / DTypeBlockElems(t) blocks; n must be a multiple of the block size.
void DequantizeBlocks(DType t, const uint8_t* blocks, int64_t n, float* out);
// Which of ggml's encoders to reproduce. They differ for IQ4_NL only: its
// reference encoder takes the first least-squares scale, while the one
// ggml_quantize_chunk (llama-quantize, without an importance matrix) runs
// also tries 7 more scales each side and keeps the best, as IQ4_XS always does.
enum class QuantizeMode { kReference, kQuantizer };
// ggml's quantize_row_*_ref of x[0..n) (one row; blocks do not depend on other
// rows), or with kQuantizer what ggml_quantize_chunk writes for the row.
void QuantizeBlocks(DType t, const float* x, int64_t n, uint8_t* blocks, QuantizeMode mode = QuantizeMode::kReference);

}  // namespace dsv3
