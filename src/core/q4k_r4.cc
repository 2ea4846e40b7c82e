// Q4_K_R4's byte shuffle (layout in q4k_r4.h): one 144-byte Q4_K block of
// each of four rows to one 576-byte interleaved block, and back.
#include "core/q4k_r4.h"

#include <cstring>

namespace dsv3 {

namespace {
constexpr int64_t kBlock = 144, kElems = 256;

// Q4_K byte offset of the qs dword at interleaved position (chunk c, half h, p).
constexpr int64_t QsOffset(int c, int h, int p) { return 16 + 32 * c + 16 * h + 4 * p; }
constexpr int64_t R4Offset(int c, int h, int p, int r) { return 64 + 128 * c + 64 * h + 4 * (4 * p + r); }
}  // namespace

void RepackQ4KR4(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst) {
  const int64_t nb = cols / kElems, row_bytes = nb * kBlock;
  for (int64_t g = 0; g < rows / kQ4KR4Rows; ++g)
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* out = dst + g * kQ4KR4Rows * row_bytes + b * kQ4KR4BlockBytes;
      for (int r = 0; r < kQ4KR4Rows; ++r) {
        const uint8_t* in = src + (g * kQ4KR4Rows + r) * row_bytes + b * kBlock;
        std::memcpy(out + 2 * r, in, 2);
        std::memcpy(out + 8 + 2 * r, in + 2, 2);
        std::memcpy(out + 16 + 12 * r, in + 4, 12);
        for (int c = 0; c < 4; ++c)
          for (int h = 0; h < 2; ++h)
            for (int p = 0; p < 4; ++p) std::memcpy(out + R4Offset(c, h, p, r), in + QsOffset(c, h, p), 4);
      }
    }
}

void UnpackQ4KR4Row(const uint8_t* group, int lane, int64_t cols, uint8_t* row) {
  for (int64_t b = 0; b < cols / kElems; ++b) {
    const uint8_t* in = group + b * kQ4KR4BlockBytes;
    uint8_t* out = row + b * kBlock;
    std::memcpy(out, in + 2 * lane, 2);
    std::memcpy(out + 2, in + 8 + 2 * lane, 2);
    std::memcpy(out + 4, in + 16 + 12 * lane, 12);
    for (int c = 0; c < 4; ++c)
      for (int h = 0; h < 2; ++h)
        for (int p = 0; p < 4; ++p) std::memcpy(out + QsOffset(c, h, p), in + R4Offset(c, h, p, lane), 4);
  }
}

}  // namespace dsv3
