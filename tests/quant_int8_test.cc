// The int8-activation products over GGUF block types (cpu/quant_int8.cc):
// the VNNI tile kernel (8+ tokens) equals its scalar twin bit for bit (same
// integer sums, same fused float steps), and both, and the VNNI decode
// kernel (1..7 tokens), stay within the activations' rounding
// of the exact float32-activation reference: per output,
//   |y8 - y| <= sum_k |w_k| * d_b(k) / 2 * (1 + 1e-5) + 4e-6 * sum_k |w_k| (|x_k| + d_b(k))
// with d_b = max|x| / 127 of the 32 activations holding k.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/ggml_quants.h"
#include "cpu/kernels.h"
#include "cpu/quant_int8_tile.h"
#include "cpu/quant_decode32.h"
#include "ops/mat_ref.h"
#include "ops/ops.h"
#include "quant_test_util.h"

namespace dsv3 {

using ops::ToMatRef;
namespace {

constexpr auto& kTypes = kQuantTypes;

// Activations with a spread of magnitudes, an all-zero block and an outlier.
std::vector<float> MakeActs(int64_t n, int64_t cols, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(n * cols);
  for (float& v : x) v = dist(rng);
  for (int64_t k = 0; k < 32; ++k) x[k] = 0.0f;
  if (n > 1) x[cols + std::min<int64_t>(40, cols - 1)] = 50.0f;
  return x;
}

std::vector<float> RunInt8(const Weight& w, const std::vector<float>& x, int64_t n, bool vnni) {
  std::vector<float> y(n * w.rows, -1.0f), scratch(cpu::QuantInt8ScratchFloats(ToMatRef(w), n) + 16);
  // Two row ranges, as two threads would split them (the second not a multiple of 16).
  cpu::QuantInt8MatMulRows(ToMatRef(w), x.data(), w.cols, n, y.data(), w.rows, 0, 16, scratch.data(), vnni);
  cpu::QuantInt8MatMulRows(ToMatRef(w), x.data(), w.cols, n, y.data(), w.rows, 16, w.rows, scratch.data(), vnni);
  return y;
}

TEST(QuantInt8, VnniEqualsTwinBitForBit) {
  if (!cpu::HasAvx512Vnni()) GTEST_SKIP() << "no AVX512-VNNI on this CPU";
  std::mt19937 rng(5);
  for (DType t : kTypes) {
    SCOPED_TRACE(DTypeName(t));
    QuantWeight q = MakeQuant(t, 37, 512, rng);
    for (int64_t n : {8, 9, 13, 20}) {
      const std::vector<float> x = MakeActs(n, 512, rng);
      const std::vector<float> a = RunInt8(q.w, x, n, true), b = RunInt8(q.w, x, n, false);
      for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(FloatBits(a[i]), FloatBits(b[i])) << "n " << n << " output " << i;
    }
  }
}

TEST(QuantInt8, WithinActivationRoundingOfExactPath) {
  std::mt19937 rng(9);
  for (DType t : kTypes) {
    SCOPED_TRACE(DTypeName(t));
    const int64_t cols = 768;
    QuantWeight q = MakeQuant(t, 37, cols, rng);
    for (int64_t n : {1, 2, 3, 5, 7, 8, 13}) {  // 1..7: the decode kernel (256-weight blocks on VNNI)
      const std::vector<float> x = MakeActs(n, cols, rng);
      std::vector<float> want(n * q.w.rows), row(cols);
      ops::ref::MatMul(q.w, x.data(), cols, want.data(), q.w.rows, n);
      for (bool vnni : {true, false}) {
        const std::vector<float> got = RunInt8(q.w, x, n, vnni);
        for (int64_t r = 0; r < q.w.rows; ++r) {
          ops::DecodeRow(q.w, r, row.data());
          for (int64_t tk = 0; tk < n; ++tk) {
            double bound = 0;
            for (int64_t b = 0; b < cols / 32; ++b) {
              float amax = 0;
              for (int k = 0; k < 32; ++k) amax = std::max(amax, std::fabs(x[tk * cols + 32 * b + k]));
              const double d = amax / 127.0;
              for (int k = 0; k < 32; ++k) {
                const double w = std::fabs(row[32 * b + k]), xv = std::fabs(x[tk * cols + 32 * b + k]);
                bound += w * d / 2 * (1 + 1e-5) + 4e-6 * w * (xv + d);
              }
            }
            const float g = got[tk * q.w.rows + r], e = want[tk * q.w.rows + r];
            ASSERT_LE(std::fabs(g - e), bound + 1e-30) << "vnni " << vnni << " row " << r << " token " << tk;
          }
        }
      }
    }
  }
}

// The decode kernels of the 32-value block types (cpu/quant_decode32.cc)
// against their twin, on rows of whole quads of blocks and of quads with 3,
// 2 and 1 blocks left over, from the same int8 activations. Their bound
// against the exact path is the test above (1..7 tokens run them).
TEST(QuantInt8, Decode32VnniEqualsTwinBitForBit) {
  if (!cpu::HasAvx512Vnni() || !cpu::HasAvx512Vbmi()) GTEST_SKIP() << "no AVX512-VNNI/VBMI on this CPU";
  std::mt19937 rng(6);
  for (DType type : {DType::kQ4_0, DType::kQ5_0, DType::kQ8_0})
  for (int64_t cols : {512, 480, 576, 32}) {
    SCOPED_TRACE(DTypeName(type));
    QuantWeight q = MakeQuant(type, 9, cols, rng);
    for (int64_t n = 1; n < 8; ++n) {
      const std::vector<float> x = MakeActs(n, cols, rng);
      std::vector<int8_t> qa(n * cols);
      std::vector<float> dg(n * cols / 32);
      std::vector<int32_t> sum16(n * cols / 16, 0);  // sums of q per 16 values
      for (int64_t t = 0; t < n; ++t)
        for (int64_t b = 0; b < cols / 32; ++b) {  // Q8_0's rule per 32 values, as quant_int8.cc quantizes
          float amax = 0;
          for (int k = 0; k < 32; ++k) amax = std::max(amax, std::fabs(x[t * cols + 32 * b + k]));
          const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
          for (int k = 0; k < 32; ++k) {
            qa[t * cols + 32 * b + k] = static_cast<int8_t>(std::nearbyint(x[t * cols + 32 * b + k] * id));
            sum16[(t * cols + 32 * b + k) / 16] += qa[t * cols + 32 * b + k];
          }
          dg[t * (cols / 32) + b] = d;
        }
      for (bool fast_expand : {true, false}) {
        std::vector<uint8_t> buf(cpu::Decode32ActBytes(n, cols) + 64);
        cpu::Decode32Acts acts;
        cpu::Expand32Acts(type, qa.data(), dg.data(), sum16.data(), n, cols, acts, buf.data(), fast_expand);
        std::vector<float> a(n * 9, -1.0f), b(n * 9, -2.0f);
        cpu::Decode32Vnni(ToMatRef(q.w), acts, a.data(), 9, 0, 9);
        cpu::Decode32Twin(ToMatRef(q.w), acts, b.data(), 9, 0, 9);
        for (size_t i = 0; i < a.size(); ++i)
          ASSERT_EQ(FloatBits(a[i]), FloatBits(b[i])) << "cols " << cols << " n " << n << " output " << i;
      }
    }
  }
}

TEST(QuantInt8, Fp8VnniEqualsTwinBitForBit) {
  if (!cpu::HasAvx512Vnni()) GTEST_SKIP() << "no AVX512-VNNI on this CPU";
  std::mt19937 rng(11);
  Fp8Weight f = MakeFp8(80, 384, 64, rng);
  for (int64_t n : {8, 13}) {
    const std::vector<float> x = MakeActs(n, 384, rng);
    const std::vector<float> a = RunInt8(f.w, x, n, true), b = RunInt8(f.w, x, n, false);
    for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(FloatBits(a[i]), FloatBits(b[i])) << "n " << n << " output " << i;
  }
}

// Against the float path on the same FP8 weights: each weight moves by at
// most half its group's step, 2^(E - 13) <= amax / 64 of the group (16 rows
// x 32 columns, raw e4m3 magnitudes) times the block scale; each activation
// by half its d; below 8 tokens the float path runs unchanged.
TEST(QuantInt8, Fp8WithinWeightAndActivationRounding) {
  std::mt19937 rng(13);
  const int64_t rows = 80, cols = 384, block = 64;
  Fp8Weight f = MakeFp8(rows, cols, block, rng);
  for (int64_t n : {3, 8, 13}) {
    const std::vector<float> x = MakeActs(n, cols, rng);
    std::vector<float> want(n * rows);
    ops::ref::MatMul(f.w, x.data(), cols, want.data(), rows, n);
    const std::vector<float> got = RunInt8(f.w, x, n, true);
    for (int64_t r = 0; r < rows; ++r) {
      // r's 16-row lane block: the calls cover rows [0, 16) and [16, rows).
      const int64_t h0 = r < 16 ? 0 : 16 + (r - 16) / 16 * 16, h1 = std::min<int64_t>(h0 + 16, rows);
      for (int64_t tk = 0; tk < n; ++tk) {
        double bound = 0, sabs = 0;
        for (int64_t g = 0; g < cols / 32; ++g) {
          float amax = 0, xmax = 0;
          for (int64_t i = h0; i < h1; ++i)
            for (int k = 0; k < 32; ++k) amax = std::max(amax, std::fabs(F8E4M3ToF32(f.bytes[i * cols + 32 * g + k])));
          for (int k = 0; k < 32; ++k) xmax = std::max(xmax, std::fabs(x[tk * cols + 32 * g + k]));
          const double bs = f.scales[(r / block) * f.w.scale_cols + 32 * g / block], d = xmax / 127.0;
          const double half_step = amax / 64.0 * bs / 2;
          for (int k = 0; k < 32; ++k) {
            const double w = std::fabs(F8E4M3ToF32(f.bytes[r * cols + 32 * g + k])) * bs, xv = std::fabs(x[tk * cols + 32 * g + k]);
            bound += (xv * half_step + (w + half_step) * d / 2) * (1 + 1e-5) + 4e-6 * (w + half_step) * (xv + d);
            sabs += w * xv;
          }
        }
        const float g = got[tk * rows + r], e = want[tk * rows + r];
        ASSERT_LE(std::fabs(g - e), n < 8 ? 1e-5 * sabs + 1e-30 : bound + 1e-30) << "row " << r << " token " << tk;
      }
    }
  }
}

}  // namespace
}  // namespace dsv3
