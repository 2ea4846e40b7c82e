// The trainer's kernels against their scalar twins and definitions: the
// blocked GEMM vs GemmReference (every transpose case, sizes 0..2 tiles with
// odd tails, strides, accumulate, any thread count bit-identical); the BF16
// and e4m3 rounding vs the codecs of core/dtype.h; block-scaled quantization
// vs a direct definition; linear layers in each precision vs GEMMs of the
// rounded operands; AdamW and the schedules vs their formulas; the data
// loader's windows.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/dtype.h"
#include "core/parallel.h"
#include "ops/ops.h"
#include "train/data.h"
#include "train/gemm.h"
#include "train/linear.h"
#include "train/optimizer.h"
#include "train/quant.h"
#include "train/vec.h"
#include "synthetic_data.h"
#include "train_test_util.h"

namespace dsv3::train {
namespace {

using testing::RandomVector;

// |C - ref| <= 1e-5 * sum_k |a||b| + 1e-30 elementwise.
void CheckGemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, bool acc, int64_t pad, bool serial) {
  const int64_t lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
  auto a = RandomVector((ta ? k : m) * lda + 1, 1), b = RandomVector((tb ? n : k) * ldb + 1, 2);
  auto c = RandomVector(m * ldc + 1, 3), ref = c;
  GemmArgs g{ta, tb, m, n, k, a.data(), lda, b.data(), ldb, c.data(), ldc, acc};
  serial ? GemmSerial(g) : Gemm(g);
  g.c = ref.data();
  GemmReference(g);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double bound = 1e-30;
      for (int64_t p = 0; p < k; ++p)
        bound += std::fabs((ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]));
      ASSERT_LE(std::fabs(c[i * ldc + j] - ref[i * ldc + j]), 1e-5 * bound + (acc ? 1e-6 : 0))
          << "ta=" << ta << " tb=" << tb << " m=" << m << " n=" << n << " k=" << k << " at " << i << "," << j;
    }
  // Padding columns of C untouched.
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = n; j < ldc; ++j) ASSERT_EQ(c[i * ldc + j], ref[i * ldc + j]);
}

TEST(TrainGemmTest, MatchesScalarTwinOverShapesAndTransposes) {
  const int64_t sizes[] = {0, 1, 5, 6, 7, 17, 63, 64, 65, 130};
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (int64_t m : sizes)
        for (int64_t n : sizes)
          for (int64_t k : {int64_t{0}, int64_t{1}, int64_t{9}, int64_t{129}})
            CheckGemm(ta, tb, m, n, k, (m + n + k) % 2 == 1, (m + k) % 3, (n % 2) == 0);
}

TEST(TrainGemmTest, LargeBlockedShapesAndAnyThreadCountBitIdentical) {
  // Crosses the K (128), M (288) and N (1024) cache blocks.
  CheckGemm(false, true, 301, 70, 300, false, 3, false);
  CheckGemm(true, false, 20, 1100, 140, true, 0, false);
  const int64_t m = 333, n = 1111, k = 260;
  auto a = RandomVector(m * k, 4), b = RandomVector(k * n, 5);
  std::vector<float> c1(m * n), c2(m * n);
  SetNumThreads(1);
  Gemm({false, false, m, n, k, a.data(), k, b.data(), n, c1.data(), n, false});
  SetNumThreads(2);
  Gemm({false, false, m, n, k, a.data(), k, b.data(), n, c2.data(), n, false});
  EXPECT_EQ(0, std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(float)));
}

// Every e4m3 value, the midpoints between neighbours (ties to even) and
// their float neighbours, plus random values across the range.
TEST(TrainQuantTest, RoundE4M3MatchesTheCodec) {
  std::vector<float> probes;
  std::vector<float> codes;
  for (int c = 0; c < 128; ++c)
    if (c != 0x7f) codes.push_back(F8E4M3ToF32(static_cast<uint8_t>(c)));
  for (size_t i = 0; i < codes.size(); ++i) {
    probes.push_back(codes[i]);
    if (i + 1 < codes.size()) {
      const float mid = 0.5f * (codes[i] + codes[i + 1]);
      probes.insert(probes.end(), {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f)});
    }
  }
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-460.0f, 460.0f), small(-0.02f, 0.02f);
  for (int i = 0; i < 200000; ++i) probes.push_back(u(rng)), probes.push_back(small(rng));
  for (float x : {448.0f, 455.9f, 456.0f, 463.9f, 1e-30f, 0.0f, -0.0f}) probes.push_back(x);
  for (float x : probes)
    for (float s : {x, -x}) ASSERT_EQ(RoundE4M3(s), F8E4M3ToF32(F32ToF8E4M3(s))) << s;
  // The vectorised row kernel (vec.h) on the same probes, odd length for the tail.
  std::vector<float> out(probes.size());
  const float one = 1.0f;
  RoundE4M3Row(probes.data(), out.data(), static_cast<int64_t>(probes.size()) - 1, &one, &one, false);
  for (size_t i = 0; i + 1 < probes.size(); ++i) ASSERT_EQ(out[i], RoundE4M3(probes[i])) << probes[i];
}

TEST(TrainQuantTest, RoundBf16MatchesTheCodec) {
  std::mt19937 rng(8);
  for (int i = 0; i < 200000; ++i) {
    const float x = BitsFloat(rng());
    if (std::isnan(x)) continue;
    ASSERT_EQ(FloatBits(RoundBf16(x)), FloatBits(Bf16ToF32(F32ToBf16(x)))) << x;
  }
}

// Block scaling: each block's scale is amax/448 and every value is
// e4m3(x * 448 / amax) * amax / 448; zero blocks stay zero.
TEST(TrainQuantTest, BlockScaledQuantizationFollowsItsDefinition) {
  const int64_t rows = 37, cols = 300, ld = 305;
  auto src = RandomVector(rows * ld, 9, 3.0f);
  for (int64_t c = 128; c < 256; ++c) src[5 * ld + c] = 0.0f;  // one all-zero 1x128 tile
  struct Block { int64_t r, c; };
  for (Block blk : {Block{1, 128}, Block{128, 1}, Block{128, 128}, Block{4, 7}}) {
    std::vector<float> dst(rows * cols);
    QuantDequantE4M3(src.data(), rows, cols, ld, blk.r, blk.c, dst.data());
    for (int64_t r0 = 0; r0 < rows; r0 += blk.r)
      for (int64_t c0 = 0; c0 < cols; c0 += blk.c) {
        float amax = 0;
        for (int64_t r = r0; r < std::min(rows, r0 + blk.r); ++r)
          for (int64_t c = c0; c < std::min(cols, c0 + blk.c); ++c) amax = std::max(amax, std::fabs(src[r * ld + c]));
        for (int64_t r = r0; r < std::min(rows, r0 + blk.r); ++r)
          for (int64_t c = c0; c < std::min(cols, c0 + blk.c); ++c) {
            const float want = amax == 0 ? 0.0f : F8E4M3ToF32(F32ToF8E4M3(src[r * ld + c] * (448.0f / amax))) * (amax / 448.0f);
            ASSERT_EQ(dst[r * cols + c], want) << blk.r << "x" << blk.c << " at " << r << "," << c;
          }
      }
  }
}

// Each precision's three GEMMs equal fp32 GEMMs of the rounded operands.
TEST(TrainQuantTest, LinearLayersMultiplyTheRoundedOperands) {
  const int64_t n = 150, in = 200, out = 130;
  auto x = RandomVector(n * in, 10), w = RandomVector(out * in, 11, 0.05f), dy = RandomVector(n * out, 12);
  for (Precision p : {Precision::kFp32, Precision::kBf16, Precision::kFp8}) {
    auto round = [&](const std::vector<float>& v, int64_t r, int64_t c, int64_t br, int64_t bc) {
      std::vector<float> q(v.size());
      if (p == Precision::kFp32) return v;
      if (p == Precision::kBf16) RoundMatrixBf16(v.data(), r, c, c, q.data());
      else QuantDequantE4M3(v.data(), r, c, c, br, bc, q.data());
      return q;
    };
    LinearOps lin;
    std::vector<float> y(n * out), dx(n * in), dw(out * in, 0.0f);
    lin.Forward(p, x.data(), in, w.data(), out, in, y.data(), out, n);
    lin.Backward(p, dy.data(), out, x.data(), in, w.data(), out, in, dx.data(), in, false, dw.data(), n);
    const auto xq = round(x, n, in, 1, 128), wq = round(w, out, in, 128, 128), dyq = round(dy, n, out, 1, 128);
    const auto dyt = round(dy, n, out, 128, 1), xt = round(x, n, in, 128, 1);
    std::vector<float> y2(n * out), dx2(n * in), dw2(out * in, 0.0f);
    Gemm({false, true, n, out, in, xq.data(), in, wq.data(), in, y2.data(), out, false});
    Gemm({false, false, n, in, out, dyq.data(), out, wq.data(), in, dx2.data(), in, false});
    Gemm({true, false, out, in, n, dyt.data(), out, xt.data(), in, dw2.data(), in, true});
    EXPECT_EQ(y, y2) << PrecisionName(p);
    EXPECT_EQ(dx, dx2) << PrecisionName(p);
    EXPECT_EQ(dw, dw2) << PrecisionName(p);
    EXPECT_DOUBLE_EQ(lin.flops(), 3 * GemmFlops(n, out, in));
  }
}

// The vectorised softmax-row kernels against their scalar twins, sizes
// 1..70 (odd tails around every vector width).
TEST(TrainVecTest, SoftmaxRowKernelsMatchTheirTwins) {
  for (int64_t n = 1; n <= 70; ++n) {
    auto x = RandomVector(n, 20 + n, 4.0f);
    float want_max = x[0];
    for (float v : x) want_max = std::max(want_max, v);
    EXPECT_EQ(RowMax(x.data(), n), want_max) << n;
    auto a = x, b = x;
    const double sa = ExpShiftSum(a.data(), n, want_max), sb = ExpShiftSumReference(b.data(), n, want_max);
    EXPECT_NEAR(sa, sb, 1e-6 * sb) << n;
    for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(a[i], b[i], 4e-7f * b[i]) << n << " " << i;
    ScaleRow(a.data(), n, 0.5f);
    for (int64_t i = 0; i < n; ++i) b[i] *= 0.5f;
    for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(a[i], b[i], 4e-7f * b[i]) << n << " " << i;
  }
}

// SwiGLU rows against the scalar formulas (the engine's ops::SiluMul for the
// forward), sizes 1..70.
TEST(TrainVecTest, SiluMulRowsMatchTheirTwins) {
  for (int64_t n = 1; n <= 70; ++n) {
    auto g = RandomVector(n, 40 + n, 3.0f), u = RandomVector(n, 140 + n), da = RandomVector(n, 240 + n);
    std::vector<float> act(n), want = g, dg(n), du(n);
    SiluMulRow(g.data(), u.data(), act.data(), n);
    ops::SiluMul(want.data(), u.data(), 1, n);
    SiluMulBackwardRow(da.data(), g.data(), u.data(), dg.data(), du.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const float s = 1.0f / (1.0f + std::exp(-g[i]));
      ASSERT_NEAR(act[i], want[i], 1e-6f * (1 + std::fabs(want[i]))) << n << " " << i;
      ASSERT_NEAR(du[i], da[i] * g[i] * s, 1e-6f * (1 + std::fabs(du[i]))) << n << " " << i;
      ASSERT_NEAR(dg[i], da[i] * u[i] * s * (1 + g[i] * (1 - s)), 1e-6f * (1 + std::fabs(dg[i]))) << n << " " << i;
    }
  }
}

TEST(TrainOptimizerTest, SchedulesFollowTheirFormulas) {
  OptimizerOptions o;
  o.lr = 1.0, o.warmup_steps = 10, o.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(LearningRate(o, 0, 100), 0.1);
  EXPECT_DOUBLE_EQ(LearningRate(o, 9, 100), 1.0);
  EXPECT_DOUBLE_EQ(LearningRate(o, 10, 100), 1.0);
  EXPECT_NEAR(LearningRate(o, 99, 100), 0.1, 1e-12);
  EXPECT_NEAR(LearningRate(o, 10 + 89 / 2, 100), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 44 / 89.0)), 1e-12);
  o.schedule = Schedule::kStep;
  EXPECT_DOUBLE_EQ(LearningRate(o, 79, 100), 1.0);
  EXPECT_DOUBLE_EQ(LearningRate(o, 80, 100), 0.316);
  EXPECT_DOUBLE_EQ(LearningRate(o, 95, 100), 0.1);
}

// Two AdamW steps on a tiny model against torch.optim.AdamW's update
// (decoupled decay, bias correction), clipping, no decay on norms/biases.
TEST(TrainOptimizerTest, AdamWMatchesTheTorchUpdate) {
  for (bool bf16 : {false, true}) {
    TrainParams params(testing::TinyConfig({}));
    params.InitNormal(1, 0.1f);
    OptimizerOptions o;
    o.weight_decay = 0.1, o.clip_norm = 0.5, o.bf16_moments = bf16;
    AdamW opt(params, o);
    std::vector<double> m(2, 0), v(2, 0);
    const ParamTensor& lin = *params.Find("model.layers.0.self_attn.kv_b_proj.weight");
    const ParamTensor& norm = *params.Find("model.norm.weight");
    double x[2] = {lin.value[3], norm.value[3]};
    for (int t = 1; t <= 2; ++t) {
      params.ZeroGrads();
      for (ParamTensor& p : params.tensors())
        if (p.grad)
          for (int64_t i = 0; i < p.numel; ++i) p.grad[i] = 0.01f * std::sin(0.37f * i + t);
      const double norm_g = opt.GradNorm(), clip = std::min(1.0, 0.5 / norm_g), lr = 0.01;
      const double g[2] = {lin.grad[3] * clip, norm.grad[3] * clip};
      opt.Update(t, lr, norm_g);
      for (int j = 0; j < 2; ++j) {
        m[j] = 0.9 * m[j] + 0.1 * g[j], v[j] = 0.95 * v[j] + 0.05 * g[j] * g[j];
        if (bf16) m[j] = Bf16ToF32(F32ToBf16(m[j])), v[j] = Bf16ToF32(F32ToBf16(v[j]));
        const double decay = j == 0 ? 1 - lr * 0.1 : 1.0;  // norms are not decayed
        x[j] = x[j] * decay - lr * (m[j] / (1 - std::pow(0.9, t))) / (std::sqrt(v[j] / (1 - std::pow(0.95, t))) + 1e-8);
      }
      EXPECT_NEAR(lin.value[3], x[0], 1e-6) << "step " << t << " bf16 " << bf16;
      EXPECT_NEAR(norm.value[3], x[1], 1e-6) << "step " << t << " bf16 " << bf16;
    }
    EXPECT_FALSE(params.Find("model.layers.1.mlp.gate.e_score_correction_bias")->grad);
  }
}

TEST(TrainDataTest, WindowsAreDeterministicInRangeAndSpread) {
  const std::string dir = std::string(DSV3_TEST_TMP) + "/train_data_windows";
  ASSERT_TRUE(testing::WriteMarkovData(dir, 64, 60, 2).ok());
  auto data = TokenData::Open(dir, 64);
  ASSERT_TRUE(data.ok()) << data.status().message();
  EXPECT_EQ((*data)->info().eos_token_id, 1);
  EXPECT_EQ((*data)->train().documents, 54);
  EXPECT_EQ((*data)->validation().documents, 6);
  const int64_t W = 33;
  std::vector<int32_t> a(W), b(W), c(W);
  (*data)->TrainWindow(5, 17, 1, 3, W, a.data());
  (*data)->TrainWindow(5, 17, 1, 3, W, b.data());
  (*data)->TrainWindow(5, 18, 1, 3, W, c.data());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // Windows are contiguous runs of the split.
  const uint32_t* train = (*data)->train().shards[0].tokens;
  const int64_t size = (*data)->train().shards[0].size;
  bool found = false;
  for (int64_t s = 0; s + W <= size && !found; ++s) found = std::equal(a.begin(), a.end(), train + s);
  EXPECT_TRUE(found);
  // Validation windows: the first starts at 0, the last ends at the split's end.
  (*data)->ValidationWindow(0, 4, W, a.data());
  (*data)->ValidationWindow(3, 4, W, b.data());
  const DataSplit& v = (*data)->validation();
  EXPECT_EQ(a[0], static_cast<int32_t>(v.shards[0].tokens[0]));
  EXPECT_EQ(b[W - 1], static_cast<int32_t>(v.shards[0].tokens[v.shards[0].size - 1]));
  EXPECT_TRUE((*data)->CheckWindow(W).ok());
  EXPECT_FALSE((*data)->CheckWindow(v.tokens + 1).ok());
}

}  // namespace
}  // namespace dsv3::train
