// Matrices kept as int8 tiles from load (cpu/quant_stored_tiles.cc): FP8
// under --int8-fp8 (DType::kI8T32, issue 18) and Q8_0 under --repack
// (kQ8_0T32, issue 16). Packing keeps exactly the levels the per-call int8
// path makes, so the tile products give its bits; decode (1..7 tokens) gives
// the tile product's bits per row and token, its VNNI kernel its twin's, and
// both stay within the activations' rounding of the float32-activation
// product over the same (packed) weights. Packed FP8 rows dequantize to the
// FP8 values within half a group step, exactly where the value's exponent is
// within 3 of its group's largest; packed Q8_0 rows exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <initializer_list>
#include <random>
#include <utility>
#include <vector>

#include "core/aligned_buffer.h"
#include "cpu/kernels.h"
#include "cpu/quant_stored_tiles.h"
#include "ops/mat_ref.h"
#include "ops/ops.h"
#include "quant_test_util.h"

namespace dsv3 {

using ops::ToMatRef;
namespace {

struct Packed {
  AlignedBuffer<uint8_t> levels, exps;
  Weight w;
};
Packed Pack(const Weight& w) {
  Packed p;
  p.levels = AlignedBuffer<uint8_t>(static_cast<size_t>(ops::StoredTilesBytes(w)));
  p.exps = AlignedBuffer<uint8_t>(static_cast<size_t>(ops::StoredTilesExpBytes(w)) + 1);
  p.w = ops::StoreTiles(w, p.levels.data(), p.exps.data());
  return p;
}

std::vector<float> Acts(int64_t n, int64_t cols, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(n * cols);
  for (float& v : x) v = dist(rng);
  for (int64_t k = 0; k < 32; ++k) x[k] = 0.0f;  // an all-zero group
  return x;
}

std::vector<float> Product(const Weight& w, const std::vector<float>& x, int64_t n, bool int8_fp8 = false) {
  std::vector<float> y(n * w.rows, -1.0f);
  ops::MatMulOptions o;
  o.int8_fp8 = int8_fp8;
  ops::MatMul(w, x.data(), w.cols, y.data(), w.rows, n, o);
  return y;
}

// The VNNI decode kernel against its scalar twin over each row range [r0,
// r1) of m, bit for bit: n tokens of random levels q (and their bias -128
// sum(q) per 32) with random steps dg.
void ExpectDecodeVnniEqualsTwin(const cpu::MatRef& m, int64_t n,
                                std::initializer_list<std::pair<int64_t, int64_t>> ranges, std::mt19937& rng) {
  std::uniform_int_distribution<int> level(-127, 127);
  std::uniform_real_distribution<float> scale(1e-3f, 1e-1f);
  const int64_t rows = m.rows, cols = m.cols, groups = cols / 32;
  std::vector<int8_t> q(n * cols);
  std::vector<float> dg(n * groups);
  std::vector<int32_t> qbias(n * groups, 0);
  for (int64_t i = 0; i < n * cols; ++i) q[i] = static_cast<int8_t>(level(rng)), qbias[i / 32] -= 128 * q[i];
  std::vector<float> work(cpu::DecodeStoredWorkFloats(cols, n) + 16);
  for (float& d : dg) d = scale(rng);
  for (auto [r0, r1] : ranges) {
    std::vector<float> a(n * rows, -1.0f), b(n * rows, -1.0f);
    cpu::DecodeStoredVnni(m, q.data(), dg.data(), qbias.data(), n, a.data(), rows, r0, r1, work.data());
    cpu::DecodeStoredTwin(m, q.data(), dg.data(), qbias.data(), n, b.data(), rows, r0, r1);
    for (int64_t i = 0; i < n * rows; ++i)
      ASSERT_EQ(FloatBits(a[i]), FloatBits(b[i])) << "n " << n << " rows " << r0 << ".." << r1 << " output " << i;
  }
}

// 80 rows: two whole tiles and a half; 64 x 64 blocks: tiles cross block rows.
constexpr int64_t kRows = 80, kCols = 384, kBlock = 64;

TEST(Fp8Tiles, RowsAreTheFp8ValuesWithinHalfAGroupStep) {
  std::mt19937 rng(3);
  Fp8Weight f = MakeFp8(kRows, kCols, kBlock, rng);
  ASSERT_TRUE(ops::CanStoreTiles(f.w));
  Packed p = Pack(f.w);
  EXPECT_EQ(p.w.dtype, DType::kI8T32);
  std::vector<float> got(kCols), want(kCols);
  int64_t exact = 0;
  for (int64_t r = 0; r < kRows; ++r) {
    ops::DecodeRow(p.w, r, got.data());
    ops::DecodeRow(f.w, r, want.data());
    const int64_t h0 = r / 16 * 16, h1 = std::min(h0 + 16, kRows);
    for (int64_t g = 0; g < kCols / 32; ++g) {
      int big = 1;  // the group's largest exponent field (16 rows x 32 columns)
      for (int64_t i = h0; i < h1; ++i)
        for (int64_t k = 32 * g; k < 32 * g + 32; ++k) big = std::max(big, (f.bytes[i * kCols + k] & 0x7F) >> 3);
      const double half_step = std::ldexp(1.0, big - 13) * f.w.Scale(r, 32 * g) / 2;
      for (int64_t k = 32 * g; k < 32 * g + 32; ++k) {
        const int e = (f.bytes[r * kCols + k] & 0x7F) >> 3;
        if (e >= big - 3) {
          ASSERT_EQ(got[k], want[k]) << "row " << r << " column " << k;
          ++exact;
        } else {
          ASSERT_LE(std::fabs(got[k] - want[k]), half_step * (1 + 1e-6)) << "row " << r << " column " << k;
        }
      }
    }
  }
  EXPECT_GT(exact, kRows * kCols / 2);  // most values keep their FP8 value
}

TEST(Fp8Tiles, TileProductsAreTheFp8Int8PathsBits) {
  std::mt19937 rng(5);
  Fp8Weight f = MakeFp8(kRows, kCols, kBlock, rng);
  Packed p = Pack(f.w);
  for (int64_t n : {8, 13, 20, 64, 70}) {  // the stored tiles' kernel below 64 tokens, the tile product above
    const std::vector<float> x = Acts(n, kCols, rng);
    const std::vector<float> a = Product(p.w, x, n), b = Product(f.w, x, n, true);
    for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(FloatBits(a[i]), FloatBits(b[i])) << "n " << n << " output " << i;
  }
}

// Decode of n tokens equals the first n of a tile product over 64 + n tokens.
TEST(Fp8Tiles, DecodeGivesTheTileProductsBits) {
  std::mt19937 rng(7);
  Fp8Weight f = MakeFp8(kRows, kCols, kBlock, rng);
  Packed p = Pack(f.w);
  for (int64_t n = 1; n < 8; ++n) {
    const std::vector<float> x = Acts(64 + n, kCols, rng);
    const std::vector<float> few(x.begin(), x.begin() + n * kCols);
    const std::vector<float> a = Product(p.w, few, n), b = Product(p.w, x, 64 + n);
    for (int64_t i = 0; i < n * kRows; ++i) ASSERT_EQ(FloatBits(a[i]), FloatBits(b[i])) << "n " << n << " output " << i;
  }
}

TEST(Fp8Tiles, DecodeVnniEqualsTwinBitForBit) {
  if (!cpu::HasAvx512Vnni()) GTEST_SKIP() << "no AVX512-VNNI on this CPU";
  std::mt19937 rng(9);
  Fp8Weight f = MakeFp8(kRows, kCols, kBlock, rng);
  Packed p = Pack(f.w);
  for (int64_t n : {1, 2, 3, 4, 5, 6, 7, 16, 21, 63})  // one pass; several, over 16 and 64 padded tokens
    // Whole tiles, a half at either end, a lone half.
    ExpectDecodeVnniEqualsTwin(ToMatRef(p.w), n, {{0, kRows}, {16, 48}, {48, 80}, {64, 80}, {16, 32}, {32, 72}}, rng);
}

// Against float32 activations on the packed weights (ops::ref::MatMul
// dequantizes them): the int8 activations' rounding, d / 2 per value.
void ExpectWithinActivationRounding(const Weight& w, int64_t n, std::mt19937& rng) {
  const std::vector<float> x = Acts(n, w.cols, rng);
  std::vector<float> want(n * w.rows), row(w.cols);
  ops::ref::MatMul(w, x.data(), w.cols, want.data(), w.rows, n);
  const std::vector<float> got = Product(w, x, n);
  for (int64_t r = 0; r < w.rows; ++r) {
    ops::DecodeRow(w, r, row.data());
    for (int64_t t = 0; t < n; ++t) {
      double bound = 0;
      for (int64_t g = 0; g < w.cols / 32; ++g) {
        float amax = 0;
        for (int k = 0; k < 32; ++k) amax = std::max(amax, std::fabs(x[t * w.cols + 32 * g + k]));
        const double d = amax / 127.0;
        for (int k = 0; k < 32; ++k) {
          const double wv = std::fabs(row[32 * g + k]), xv = std::fabs(x[t * w.cols + 32 * g + k]);
          bound += wv * d / 2 * (1 + 1e-5) + 4e-6 * wv * (xv + d);
        }
      }
      ASSERT_LE(std::fabs(got[t * w.rows + r] - want[t * w.rows + r]), bound + 1e-30)
          << "n " << n << " row " << r << " token " << t;
    }
  }
}

TEST(Fp8Tiles, WithinActivationRoundingOfFloatActivations) {
  std::mt19937 rng(11);
  Fp8Weight f = MakeFp8(kRows, kCols, kBlock, rng);
  Packed p = Pack(f.w);
  for (int64_t n : {1, 2, 3, 7, 8, 13, 64}) ExpectWithinActivationRounding(p.w, n, rng);
}

// Views of a packed matrix: on a half (decode kernel; tiles fall back to
// dequantized rows), and off the 16-row grid (dequantized rows throughout).
TEST(Fp8Tiles, ViewsOffTheTileGrid) {
  std::mt19937 rng(13);
  Fp8Weight f = MakeFp8(kRows, kCols, kBlock, rng);
  Packed p = Pack(f.w);
  for (const Weight& v : {p.w.Rows(16, 48), p.w.Rows(8, 40), p.w.Rows(32, 37)})
    for (int64_t n : {1, 4, 8, 11}) ExpectWithinActivationRounding(v, n, rng);
}

// One token streams runs of whole tiles (4 MiB of weights each) with their
// factors formed ahead: 65 tiles of 2048 columns make two runs, the second
// of one tile; 128-row blocks change every four tiles inside a run.
TEST(Fp8Tiles, OneTokenRunsEqualTwinBitForBit) {
  if (!cpu::HasAvx512Vnni()) GTEST_SKIP() << "no AVX512-VNNI on this CPU";
  constexpr int64_t rows = 65 * 32, cols = 2048;
  std::mt19937 rng(13);
  Fp8Weight f = MakeFp8(rows, cols, 128, rng);
  Packed p = Pack(f.w);
  // All of it (two runs); from the second tile (one run); halves at both ends; the first run alone.
  ExpectDecodeVnniEqualsTwin(ToMatRef(p.w), 1, {{0, rows}, {32, rows}, {16, rows - 16}, {0, 64 * 32}}, rng);
}

// Q8_0 (--repack): the same tiles with the blocks' f16 scales.
TEST(Q8_0Tiles, RowsTileProductsAndDecode) {
  std::mt19937 rng(17);
  QuantWeight q = MakeQuant(DType::kQ8_0, kRows, kCols, rng);
  ASSERT_TRUE(ops::CanStoreTiles(q.w));
  Packed p = Pack(q.w);
  EXPECT_EQ(p.w.dtype, DType::kQ8_0T32);
  EXPECT_EQ(ops::StoredTilesBytes(q.w), 3 * 32 * q.w.bytes_per_row());  // 34 bytes per 32 weights, rows padded
  std::vector<float> got(kCols), want(kCols);
  for (int64_t r = 0; r < kRows; ++r) {
    ops::DecodeRow(p.w, r, got.data());
    ops::DecodeRow(q.w, r, want.data());
    for (int64_t k = 0; k < kCols; ++k) ASSERT_EQ(got[k], want[k]) << "row " << r << " column " << k;
  }
  for (int64_t n : {8, 13, 64}) {  // the per-call Q8_0 tiles' bits
    const std::vector<float> x = Acts(n, kCols, rng);
    const std::vector<float> a = Product(p.w, x, n), b = Product(q.w, x, n);
    for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(FloatBits(a[i]), FloatBits(b[i])) << "n " << n << " output " << i;
  }
  for (int64_t n = 1; n < 8; ++n) {  // decode: the tile product's bits
    const std::vector<float> x = Acts(64 + n, kCols, rng);
    const std::vector<float> few(x.begin(), x.begin() + n * kCols);
    const std::vector<float> a = Product(p.w, few, n), b = Product(p.w, x, 64 + n);
    for (int64_t i = 0; i < n * kRows; ++i) ASSERT_EQ(FloatBits(a[i]), FloatBits(b[i])) << "n " << n << " output " << i;
  }
  for (int64_t n : {1, 3, 8}) ExpectWithinActivationRounding(p.w, n, rng);
  for (int64_t n : {2, 9}) ExpectWithinActivationRounding(p.w.Rows(16, 48), n, rng);
}

TEST(Q8_0Tiles, DecodeVnniEqualsTwinBitForBit) {
  if (!cpu::HasAvx512Vnni()) GTEST_SKIP() << "no AVX512-VNNI on this CPU";
  std::mt19937 rng(19);
  QuantWeight qw = MakeQuant(DType::kQ8_0, kRows, kCols, rng);
  Packed p = Pack(qw.w);
  for (int64_t n : {1, 2, 5, 7}) ExpectDecodeVnniEqualsTwin(ToMatRef(p.w), n, {{0, kRows}, {16, 48}, {64, 80}}, rng);
}

TEST(StoredTiles, OnlyWholeMatricesOnTheGrid) {
  std::mt19937 rng(15);
  Fp8Weight f = MakeFp8(kRows, kCols, kBlock, rng);
  EXPECT_FALSE(ops::CanStoreTiles(f.w.Rows(16, 32)));  // a view
  Fp8Weight odd = MakeFp8(32, 400, 80, rng);             // 32-column groups across block columns
  EXPECT_FALSE(ops::CanStoreTiles(odd.w));
  QuantWeight q = MakeQuant(DType::kQ4_K, 32, 256, rng);
  EXPECT_FALSE(ops::CanStoreTiles(q.w));  // Q4_K has its own repacking
}

}  // namespace
}  // namespace dsv3
