// What the ggml-exact encoders (ggml_quantize.cc, ggml_quantize_k.cc) share:
// ggml's round-to-nearest trick and its guard against all-zero groups, and
// the little-endian f16 store of a block scale. Internal to those two files.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/dtype.h"

namespace dsv3::ggml_encode {

inline constexpr float kGroupMaxEps = 1e-15f;

// Round to nearest, ties to even, for |x| < 2^22 (ggml's nearest_int).
inline int NearestInt(float x) {
  const float v = x + 12582912.0f;
  int i;
  std::memcpy(&i, &v, 4);
  return (i & 0x007fffff) - 0x00400000;
}

inline void StoreHalf(float v, uint8_t* p) {
  const uint16_t h = F32ToF16(v);
  std::memcpy(p, &h, 2);
}

}  // namespace dsv3::ggml_encode
