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
};

// Bytes per element.
size_t DTypeSize(DType t);
// Safetensors spelling ("BF16", "F8_E4M3", ...).
std::string_view DTypeName(DType t);
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

}  // namespace dsv3
