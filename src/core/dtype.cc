// Scalar dtype codecs: the ground truth for every vectorised conversion.
#include "core/dtype.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace dsv3 {

namespace {
struct DTypeInfo {
  DType type;
  std::string_view name;
  size_t size;
};
constexpr DTypeInfo kInfos[] = {
    {DType::kF64, "F64", 8},       {DType::kF32, "F32", 4},       {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2},     {DType::kF8E4M3, "F8_E4M3", 1}, {DType::kF8E5M2, "F8_E5M2", 1},
    {DType::kI64, "I64", 8},       {DType::kI32, "I32", 4},       {DType::kI16, "I16", 2},
    {DType::kI8, "I8", 1},         {DType::kU64, "U64", 8},       {DType::kU32, "U32", 4},
    {DType::kU16, "U16", 2},       {DType::kU8, "U8", 1},         {DType::kBool, "BOOL", 1},
    {DType::kQ8_0, "Q8_0", 0},     {DType::kQ4_0, "Q4_0", 0},     {DType::kQ4_1, "Q4_1", 0},
    {DType::kQ5_0, "Q5_0", 0},     {DType::kQ5_1, "Q5_1", 0},     {DType::kQ2_K, "Q2_K", 0},
    {DType::kQ3_K, "Q3_K", 0},     {DType::kQ4_K, "Q4_K", 0},     {DType::kQ5_K, "Q5_K", 0},
    {DType::kQ6_K, "Q6_K", 0},     {DType::kIQ4_NL, "IQ4_NL", 0}, {DType::kIQ4_XS, "IQ4_XS", 0},
    {DType::kQ4_KR4, "Q4_K_R4", 0},   {DType::kI8T32, "I8_T32", 0},
    {DType::kQ8_0T32, "Q8_0_T32", 0},
};

constexpr float Pow2(int e) {
  float r = 1.0f;
  for (; e > 0; --e) r *= 2.0f;
  for (; e < 0; ++e) r *= 0.5f;
  return r;
}

constexpr float DecodeE4M3(uint8_t v) {
  const int sign = v >> 7, exp = (v >> 3) & 0xf, man = v & 7;
  if (exp == 0xf && man == 7) return std::numeric_limits<float>::quiet_NaN();
  const float mag = exp == 0 ? static_cast<float>(man) / 8.0f * Pow2(-6)
                             : (1.0f + static_cast<float>(man) / 8.0f) * Pow2(exp - 7);
  return sign ? -mag : mag;
}

constexpr std::array<float, 256> BuildE4M3Table() {
  std::array<float, 256> t{};
  for (int i = 0; i < 256; ++i) t[i] = DecodeE4M3(static_cast<uint8_t>(i));
  return t;
}
constexpr std::array<float, 256> kE4M3 = BuildE4M3Table();
}  // namespace

const float* const kF8E4M3Table = kE4M3.data();

size_t DTypeSize(DType t) {
  for (const auto& i : kInfos)
    if (i.type == t) return i.size;
  return 0;
}

std::string_view DTypeName(DType t) {
  for (const auto& i : kInfos)
    if (i.type == t) return i.name;
  return "?";
}

std::optional<DType> ParseDType(std::string_view name) {
  for (const auto& i : kInfos)
    if (i.name == name && i.size > 0) return i.type;
  return std::nullopt;
}

float F16ToF32(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  float mag;
  if (exp == 0) {
    mag = std::ldexp(static_cast<float>(man), -24);
  } else if (exp == 0x1f) {
    mag = man ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    mag = std::ldexp(1.0f + static_cast<float>(man) / 1024.0f, static_cast<int>(exp) - 15);
  }
  return sign ? -mag : mag;
}

uint16_t F32ToF16(float f) {
  const uint32_t u = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00;            // NaN
  if (a >= 0x477ff000u) return sign | 0x7c00;           // rounds to >= 65536: inf
  if (a < 0x38800000u) {                                // below 2^-14: subnormal or 0
    const float q = std::nearbyint(BitsFloat(a) * Pow2(24));  // units of 2^-24, ties even
    return sign | static_cast<uint16_t>(q);
  }
  // Normal: rebias exponent, round mantissa 23 -> 10 bits to nearest even.
  uint32_t h = ((a >> 13) - (112u << 10));
  const uint32_t rest = a & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return sign | static_cast<uint16_t>(h);
}

uint8_t F32ToF8E4M3(float f) {
  // Bit arithmetic on the float: exact round-to-nearest-even (checked against
  // a brute-force nearest-code search in tests/gguf_test.cc).
  const uint32_t u = FloatBits(f);
  const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return 0x7f;                       // NaN
  if (a >= 0x43e80000u) return sign | 0x7e;               // >= 464 (448 + half step): saturate
  if (a < 0x3c800000u) {                                  // below 2^-6: subnormal, step 2^-9
    const float q = std::nearbyint(BitsFloat(a) * 512.0f);  // exact scaling; ties to even
    return sign | static_cast<uint8_t>(q);                 // q == 8 encodes 2^-6 correctly
  }
  // Normal: keep 3 of 23 mantissa bits, round to nearest even, rebias 127 -> 7.
  const uint32_t r = (a + 0x7ffffu + ((a >> 20) & 1u)) >> 20;  // exponent:mantissa(3)
  const uint32_t code = r - (120u << 3);
  return sign | static_cast<uint8_t>(code > 0x7e ? 0x7e : code);
}

float F8E5M2ToF32(uint8_t v) {
  return F16ToF32(static_cast<uint16_t>(v) << 8);
}

void DecodeQ8_0(const uint8_t* blocks, int64_t n, float* out) {
  for (int64_t b = 0; b < n / kQ8_0Block; ++b, blocks += kQ8_0BlockBytes) {
    uint16_t h;
    std::memcpy(&h, blocks, 2);
    const float d = F16ToF32(h);
    const int8_t* q = reinterpret_cast<const int8_t*>(blocks + 2);
    for (int64_t i = 0; i < kQ8_0Block; ++i) out[b * kQ8_0Block + i] = d * static_cast<float>(q[i]);
  }
}

void EncodeQ8_0(const float* x, int64_t n, uint8_t* blocks) {
  for (int64_t b = 0; b < n / kQ8_0Block; ++b, x += kQ8_0Block, blocks += kQ8_0BlockBytes) {
    float amax = 0.0f;
    for (int64_t i = 0; i < kQ8_0Block; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const uint16_t h = F32ToF16(d);
    std::memcpy(blocks, &h, 2);
    for (int64_t i = 0; i < kQ8_0Block; ++i)
      blocks[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[i] * id)));
  }
}

}  // namespace dsv3
