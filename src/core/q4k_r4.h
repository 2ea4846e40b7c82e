// Q4_K with four rows interleaved (Q4_K_R4): the layout `--repack` gives the
// Q4_K feed-forward matrices at load so that one 64-byte load feeds a VNNI
// dot product for four rows at once (cpu/quant_int8.cc, DecodeQ4KR4). The
// bytes are the same as Q4_K's (144 per row and 256 values), only reordered:
// a matrix of `rows` (a multiple of 4) rows is rows / 4 groups of 4 rows, and
// a group is cols / 256 blocks of 576 bytes, block b holding block b of its
// four rows:
//   +0   d[4]      f16, row r at 2r
//   +8   dmin[4]   f16
//   +16  scales    the rows' 12-byte 6-bit scale fields, row r at 16 + 12r
//   +64  qs        for chunk c (0..3) and half h (0..1), 64 bytes at
//                  64 + 128c + 64h whose dword 4p + r (p = 0..3) is row r's
//                  qs[32c + 16h + 4p .. + 4]
// so the low nibbles of that 64-byte vector are values 64c + 16h + 4p + i of
// row r (sub-block 2c) and the high nibbles values 64c + 32 + 16h + 4p + i
// (sub-block 2c + 1). Row r of the matrix starts its group at byte
// (r / 4) * 4 * row_bytes, so views of whole groups stay valid.
#pragma once

#include <cstdint>

namespace dsv3 {

inline constexpr int64_t kQ4KR4Rows = 4;
inline constexpr int64_t kQ4KR4BlockBytes = 4 * 144;

// Interleaves `rows` (a multiple of 4) Q4_K rows of `cols` values (a multiple
// of 256) from src into dst (the same number of bytes; no overlap).
void RepackQ4KR4(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst);
// The Q4_K bytes of row `lane` (0..3) of the group starting at `group`.
void UnpackQ4KR4Row(const uint8_t* group, int lane, int64_t cols, uint8_t* row);
// The Q4_K bytes of row r of a Q4_K_R4 matrix whose rows are row_bytes long.
inline void UnpackQ4KR4MatrixRow(const uint8_t* data, int64_t row_bytes, int64_t r, int64_t cols, uint8_t* row) {
  UnpackQ4KR4Row(data + (r / kQ4KR4Rows) * kQ4KR4Rows * row_bytes, static_cast<int>(r % kQ4KR4Rows), cols, row);
}

}  // namespace dsv3
