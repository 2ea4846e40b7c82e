// Element types as stored in checkpoints (safetensors / GGUF names) and the
// scalar conversions between them. The FP8 codec is e4m3fn (bias 7, max 448,
// no infinities, S.1111.111 = NaN) exactly as torch.float8_e4m3fn; bf16 and
// fp16 encoders round to nearest even. These are the reference conversions
// every SIMD kernel is tested against.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace dsv3 {

enum class DType : uint8_t {
  kF64, kF32, kF16, kBF16, kF8E4M3, kF8E5M2,
  kI64, kI32, kI16, kI8, kU64, kU32, kU16, kU8, kBool,
  kQ8_0,  // GGUF/ggml block type: 32 int8 values sharing one f16 scale
  // More GGUF/ggml block types (layouts and codecs in core/ggml_quants.h).
  kQ4_0, kQ4_1, kQ5_0, kQ5_1, kQ2_K, kQ3_K, kQ4_K, kQ5_K, kQ6_K, kIQ4_NL, kIQ4_XS,
  // Q4_K with four rows interleaved (core/q4k_r4.h): made at load by
  // --repack, never read from or written to a file.
  kQ4_KR4,
  // Int8 tiles made at load (cpu/quant_stored_tiles.h), never in a file:
  // FP8 e4m3 under --int8-fp8 (32-row tiles interleaved for VPDPBUSD, one
  // byte per weight plus one exponent per 16 rows x 32 columns) and Q8_0
  // under --repack (the same tiles with the f16 scales after each).
  kI8T32, kQ8_0T32,
};

// True for the ggml block-quantized types (Q8_0 and later).
inline constexpr bool IsBlockType(DType t) { return t >= DType::kQ8_0; }
// Bytes per element; 0 for block-quantized types, see DTypeBytes.
size_t DTypeSize(DType t);
// Elements per block (1 for plain types, 32 or 256 for block types) and
// bytes per block (the element size for plain types).
inline constexpr int64_t DTypeBlockElems(DType t) {
  switch (t) {
    case DType::kQ8_0: case DType::kQ4_0: case DType::kQ4_1: case DType::kQ5_0: case DType::kQ5_1:
    case DType::kIQ4_NL: case DType::kI8T32: case DType::kQ8_0T32: return 32;
    case DType::kQ2_K: case DType::kQ3_K: case DType::kQ4_K: case DType::kQ5_K: case DType::kQ6_K:
    case DType::kIQ4_XS: case DType::kQ4_KR4: return 256;
    default: return 1;
  }
}
inline constexpr int64_t DTypeBlockBytes(DType t) {
  switch (t) {
    case DType::kQ8_0: case DType::kQ8_0T32: return 34;
    case DType::kQ4_0: return 18;
    case DType::kQ4_1: return 20;
    case DType::kQ5_0: return 22;
    case DType::kQ5_1: return 24;
    case DType::kIQ4_NL: return 18;
    case DType::kQ2_K: return 84;
    case DType::kQ3_K: return 110;
    case DType::kQ4_K: case DType::kQ4_KR4: return 144;  // per row
    case DType::kQ5_K: return 176;
    case DType::kQ6_K: return 210;
    case DType::kIQ4_XS: return 136;
    case DType::kI8T32: return 32;
    default: return static_cast<int64_t>(DTypeSize(t));
  }
}
// Bytes of `n` consecutive elements; n must be a multiple of the block size.
inline uint64_t DTypeBytes(DType t, int64_t n) {
  if (!IsBlockType(t)) return static_cast<uint64_t>(n) * DTypeSize(t);
  return static_cast<uint64_t>(n / DTypeBlockElems(t)) * static_cast<uint64_t>(DTypeBlockBytes(t));
}
// Safetensors spelling ("BF16", "F8_E4M3", ...); ggml's ("Q8_0", "Q4_K") for block types.
std::string_view DTypeName(DType t);
// Safetensors dtypes only: block types are never accepted here.
std::optional<DType> ParseDType(std::string_view safetensors_name);

inline uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float BitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float Bf16ToF32(uint16_t h) { return BitsFloat(static_cast<uint32_t>(h) << 16); }
// Round to nearest even; NaN stays a (quiet) NaN.
inline uint16_t F32ToBf16(float f) {
  uint32_t u = FloatBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float F16ToF32(uint16_t h);
uint16_t F32ToF16(float f);

// e4m3fn decode through a 256-entry table built at compile time.
extern const float* const kF8E4M3Table;
inline float F8E4M3ToF32(uint8_t v) { return kF8E4M3Table[v]; }
// Round to nearest even, saturating to +-448; NaN -> 0x7f.
uint8_t F32ToF8E4M3(float f);

float F8E5M2ToF32(uint8_t v);

// Q8_0 (ggml block_q8_0): 2-byte little-endian f16 scale d, then 32 int8 q;
// value i = d * q[i]. The encoder is ggml's reference quantize_row_q8_0:
// d = amax / 127, q = roundf(x / d) (ties away from zero), d stored as f16.
inline constexpr int64_t kQ8_0Block = 32;
inline constexpr int64_t kQ8_0BlockBytes = 34;
void DecodeQ8_0(const uint8_t* blocks, int64_t n, float* out);  // n % 32 == 0
void EncodeQ8_0(const float* x, int64_t n, uint8_t* blocks);    // n % 32 == 0

}  // namespace dsv3
