// --repack's Q4_K_R4 (core/q4k_r4.h, cpu/quant_q4k_r4.cc): the interleaving
// is a pure byte shuffle (every row's Q4_K bytes come back, the decoded
// floats are ggml's), its decode kernel equals its scalar twin bit for bit,
// and every product over it agrees with the same product over the plain
// Q4_K matrix: bit for bit where both run the same tiles (8+ tokens), and
// within float rounding of the same int8 sums where the decode kernels
// differ only in summation order (1..7 tokens).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/q4k_r4.h"
#include "cpu/kernels.h"
#include "cpu/quant_q4k_r4.h"
#include "ops/mat_ref.h"
#include "ops/ops.h"
#include "quant_test_util.h"

namespace dsv3 {

using ops::ToMatRef;
namespace {

struct Repacked {
  QuantWeight q4k;
  std::vector<uint8_t> bytes;
  Weight w;
};
Repacked MakeRepacked(int64_t rows, int64_t cols, std::mt19937& rng) {
  Repacked r;
  r.q4k = MakeQuant(DType::kQ4_K, rows, cols, rng);
  r.bytes.resize(r.q4k.bytes.size());
  RepackQ4KR4(r.q4k.bytes.data(), rows, cols, r.bytes.data());
  r.w = r.q4k.w, r.w.dtype = DType::kQ4_KR4, r.w.data = r.bytes.data();
  return r;
}

std::vector<float> MakeActs(int64_t n, int64_t cols, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(n * cols);
  for (float& v : x) v = dist(rng);
  for (int64_t k = 0; k < 32; ++k) x[k] = 0.0f;  // an all-zero activation group
  if (n > 1) x[cols + 40] = 50.0f;
  return x;
}

// Rows split as two threads would (at 16), over a view of `rows` rows.
std::vector<float> RunInt8(Weight w, int64_t rows, const std::vector<float>& x, int64_t n, bool vnni) {
  w.rows = rows;
  std::vector<float> y(n * rows, -1.0f), scratch(cpu::QuantInt8ScratchFloats(ToMatRef(w), n) + 16);
  cpu::QuantInt8MatMulRows(ToMatRef(w), x.data(), w.cols, n, y.data(), rows, 0, 16, scratch.data(), vnni);
  cpu::QuantInt8MatMulRows(ToMatRef(w), x.data(), w.cols, n, y.data(), rows, 16, rows, scratch.data(), vnni);
  return y;
}

TEST(Q4KR4, RepackIsAByteShuffleOfEveryRow) {
  std::mt19937 rng(1);
  Repacked r = MakeRepacked(12, 768, rng);
  const int64_t row_bytes = r.w.bytes_per_row();
  EXPECT_NE(r.bytes, r.q4k.bytes);
  std::vector<uint8_t> row(row_bytes);
  std::vector<float> a(768), b(768);
  for (int64_t i = 0; i < 12; ++i) {
    UnpackQ4KR4MatrixRow(r.bytes.data(), row_bytes, i, 768, row.data());
    ASSERT_EQ(0, std::memcmp(row.data(), r.q4k.bytes.data() + i * row_bytes, row_bytes)) << "row " << i;
    for (bool avx512 : {false, cpu::HasAvx512Vnni()}) {  // the tiles' unpacking of rows [4, 4 + 7)
      std::vector<uint8_t> rows(7 * row_bytes);
      cpu::UnpackQ4KR4Rows(ToMatRef(r.w), 4, 7, rows.data(), avx512);
      ASSERT_EQ(0, std::memcmp(rows.data(), r.q4k.bytes.data() + 4 * row_bytes, 7 * row_bytes)) << avx512;
    }
    ops::DecodeRow(r.w, i, a.data());
    ops::DecodeRow(r.q4k.w, i, b.data());
    for (int64_t k = 0; k < 768; ++k) ASSERT_EQ(FloatBits(a[k]), FloatBits(b[k])) << "row " << i << " col " << k;
  }
}

TEST(Q4KR4, DecodeVnniEqualsTwinBitForBit) {
  if (!cpu::HasAvx512Vnni()) GTEST_SKIP() << "no AVX512-VNNI on this CPU";
  std::mt19937 rng(2);
  Repacked r = MakeRepacked(40, 512, rng);
  for (int64_t rows : {40, 38}) {  // 38: a view whose last group is cut
    for (int64_t n = 1; n < 8; ++n) {
      const std::vector<float> x = MakeActs(n, 512, rng);
      const std::vector<float> a = RunInt8(r.w, rows, x, n, true), b = RunInt8(r.w, rows, x, n, false);
      for (size_t i = 0; i < a.size(); ++i)
        ASSERT_EQ(FloatBits(a[i]), FloatBits(b[i])) << "rows " << rows << " n " << n << " output " << i;
    }
  }
}

// Against the plain Q4_K matrix with the same int8 activations (its VNNI
// decode kernel; the twin's tiles from 8 tokens): the same integer sums,
// scaled and added in another order, so within 1e-5 of sum_k |w_k x_k|;
// from 8 tokens the same tiles, bit for bit.
TEST(Q4KR4, Int8ProductsAgreeWithQ4K) {
  // Q4_K's own int8 decode kernel needs VNNI (its fallback is the exact path).
  if (!cpu::HasAvx512Vnni()) GTEST_SKIP() << "no AVX512-VNNI on this CPU";
  std::mt19937 rng(3);
  Repacked r = MakeRepacked(40, 768, rng);
  std::vector<float> row(768);
  for (int64_t rows : {40, 37}) {
    for (int64_t n : {1, 2, 3, 4, 5, 7, 8, 13}) {
      const std::vector<float> x = MakeActs(n, 768, rng);
      for (bool vnni : {true, false}) {
        const std::vector<float> got = RunInt8(r.w, rows, x, n, vnni), want = RunInt8(r.q4k.w, rows, x, n, n < 8 || vnni);
        for (int64_t i = 0; i < rows; ++i) {
          ops::DecodeRow(r.q4k.w, i, row.data());
          for (int64_t t = 0; t < n; ++t) {
            double mag = 0;
            for (int64_t k = 0; k < 768; ++k) mag += std::fabs(row[k] * x[t * 768 + k]);
            const float g = got[t * rows + i], e = want[t * rows + i];
            if (n >= 8)
              ASSERT_EQ(FloatBits(g), FloatBits(e)) << "n " << n << " row " << i << " token " << t;
            else
              ASSERT_LE(std::fabs(g - e), 1e-5 * mag + 1e-30) << "n " << n << " row " << i << " token " << t;
          }
        }
      }
    }
  }
}

// The exact path (float32 activations) over Q4_K_R4 goes through dequantized
// tiles: the scalar reference's floats within float32 rounding.
TEST(Q4KR4, ExactPathAgreesWithReference) {
  std::mt19937 rng(4);
  Repacked r = MakeRepacked(36, 512, rng);
  for (int64_t n : {1, 3, 8, 11}) {
    const std::vector<float> x = MakeActs(n, 512, rng);
    std::vector<float> got(n * 36), want(n * 36), scratch(cpu::MatMulScratchFloats(ToMatRef(r.w), n) + 16);
    cpu::MatMulRows(ToMatRef(r.w), x.data(), 512, n, got.data(), 36, 0, 36, scratch.data());
    ops::ref::MatMul(r.q4k.w, x.data(), 512, want.data(), 36, n);
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5 * (1 + std::fabs(want[i]))) << i;
  }
}

}  // namespace
}  // namespace dsv3
