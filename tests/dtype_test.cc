// Scalar dtype codecs: e4m3fn over all 256 codes against the format's
// definition, round-to-nearest-even ties for bf16/f16/e4m3, saturation.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/dtype.h"

namespace dsv3 {
namespace {

// The e4m3fn value of a code, computed independently from the bit fields.
double E4M3Reference(int code) {
  const int s = code >> 7, e = (code >> 3) & 15, m = code & 7;
  if (e == 15 && m == 7) return std::numeric_limits<double>::quiet_NaN();
  const double mag = e == 0 ? m / 8.0 * std::pow(2.0, -6) : (1 + m / 8.0) * std::pow(2.0, e - 7);
  return s ? -mag : mag;
}

TEST(E4M3, DecodesAll256Codes) {
  int nan_count = 0;
  for (int code = 0; code < 256; ++code) {
    const double want = E4M3Reference(code);
    const float got = F8E4M3ToF32(static_cast<uint8_t>(code));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << code;
      ++nan_count;
    } else {
      EXPECT_EQ(got, static_cast<float>(want)) << code;
    }
  }
  EXPECT_EQ(nan_count, 2);  // 0x7f and 0xff only: no infinities
  EXPECT_EQ(F8E4M3ToF32(0x7e), 448.0f);
  EXPECT_EQ(F8E4M3ToF32(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(F8E4M3ToF32(0x08), std::ldexp(1.0f, -6));
  EXPECT_TRUE(std::signbit(F8E4M3ToF32(0x80)));
}

TEST(E4M3, EncodeRoundTripsEveryFiniteCode) {
  for (int code = 0; code < 256; ++code) {
    const float v = F8E4M3ToF32(static_cast<uint8_t>(code));
    if (std::isnan(v)) continue;
    EXPECT_EQ(F8E4M3ToF32(F32ToF8E4M3(v)), v) << code;
  }
}

TEST(E4M3, EncodeRoundsToNearestEvenAndSaturates) {
  // Between 1.0 (m=0) and 1.125 (m=1): the midpoint goes to the even mantissa.
  EXPECT_EQ(F8E4M3ToF32(F32ToF8E4M3(1.0625f)), 1.0f);
  // Between 1.125 (m=1) and 1.25 (m=2): the midpoint goes up to m=2.
  EXPECT_EQ(F8E4M3ToF32(F32ToF8E4M3(1.1875f)), 1.25f);
  EXPECT_EQ(F8E4M3ToF32(F32ToF8E4M3(1.07f)), 1.125f);
  // Subnormal ties: 1.5 * 2^-9 -> 2 * 2^-9 (even), 0.5 * 2^-9 -> 0.
  EXPECT_EQ(F8E4M3ToF32(F32ToF8E4M3(1.5f * std::ldexp(1.0f, -9))), 2 * std::ldexp(1.0f, -9));
  EXPECT_EQ(F8E4M3ToF32(F32ToF8E4M3(0.5f * std::ldexp(1.0f, -9))), 0.0f);
  EXPECT_EQ(F8E4M3ToF32(F32ToF8E4M3(1000.0f)), 448.0f);
  EXPECT_EQ(F8E4M3ToF32(F32ToF8E4M3(-1e30f)), -448.0f);
  EXPECT_EQ(F8E4M3ToF32(F32ToF8E4M3(std::numeric_limits<float>::infinity())), 448.0f);
  EXPECT_TRUE(std::isnan(F8E4M3ToF32(F32ToF8E4M3(std::nanf("")))));
  // 464 is the midpoint of 448 and the (non-existent) 480: saturates, never NaN.
  EXPECT_EQ(F8E4M3ToF32(F32ToF8E4M3(464.0f)), 448.0f);
}

TEST(E4M3, EncodeIsNearestOverADenseSweep) {
  for (float x = -500.0f; x <= 500.0f; x += 0.0137f) {
    const float q = F8E4M3ToF32(F32ToF8E4M3(x));
    const float clamped = std::clamp(x, -448.0f, 448.0f);
    for (int code = 0; code < 256; ++code) {
      const float c = F8E4M3ToF32(static_cast<uint8_t>(code));
      if (!std::isnan(c)) ASSERT_LE(std::fabs(q - clamped), std::fabs(c - clamped)) << x;
    }
  }
}

TEST(BF16, RoundsToNearestEven) {
  EXPECT_EQ(F32ToBf16(1.0f), 0x3f80);
  // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1.0078125: ties to even (1.0).
  EXPECT_EQ(F32ToBf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  // 1 + 3*2^-8 is halfway between 0x3f81 and 0x3f82: ties to even (0x3f82).
  EXPECT_EQ(F32ToBf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_EQ(F32ToBf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3f81);
  EXPECT_EQ(Bf16ToF32(0x3f80), 1.0f);
  EXPECT_EQ(Bf16ToF32(F32ToBf16(-2.5f)), -2.5f);
  EXPECT_EQ(F32ToBf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_TRUE(std::isnan(Bf16ToF32(F32ToBf16(std::nanf("")))));
  // Rounding up across the exponent boundary of the largest finite value gives inf.
  EXPECT_EQ(F32ToBf16(std::numeric_limits<float>::max()), 0x7f80);
}

TEST(F16, RoundTripsAndRoundsToNearestEven) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = F16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(F32ToF16(f), h) << h;
  }
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);          // tie -> even
  EXPECT_EQ(F32ToF16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);      // tie -> even
  EXPECT_EQ(F32ToF16(65520.0f), 0x7c00);                              // rounds to inf
  EXPECT_EQ(F32ToF16(65519.0f), 0x7bff);
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -25)), 0x0000);                 // tie -> even (0)
  EXPECT_EQ(F32ToF16(std::ldexp(3.0f, -25)), 0x0002);
}

TEST(DType, NamesAndSizes) {
  EXPECT_EQ(ParseDType("F8_E4M3"), DType::kF8E4M3);
  EXPECT_EQ(DTypeSize(DType::kBF16), 2u);
  EXPECT_EQ(DTypeName(DType::kI32), "I32");
  EXPECT_FALSE(ParseDType("Q4_K").has_value());
}

}  // namespace
}  // namespace dsv3
