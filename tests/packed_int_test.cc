// Weight-only int4 / int8 checkpoints in compressed-tensors' pack-quantized
// layout (model/packed_int.h): the packing round trip, and the tiny golden
// model converted by `dsv3 convert --to w4a16|w8a16`, loaded (its packed
// matrices repacked into Q4_0 / Q8_0 blocks) and run on the exact path,
// against dsv3's float path on the same weights dequantized by the format's
// own definition (value x scale, F32 safetensors written here): same
// weights, same model, only the kernels' summation order differs, so the
// bound is 1e-5 relative as for the GGUF types.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "convert_test_util.h"
#include "io/safetensors_writer.h"
#include "model/packed_int.h"

namespace dsv3 {
namespace {

using namespace testing_util;

TEST(PackedInt, RowRoundTripWithinHalfAStep) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (int bits : {4, 8}) {
    std::vector<float> w(512);
    for (float& x : w) x = normal(rng);
    w[5] = 0.3f, w[300] = -0.25f;  // an outlier per group sets its scale
    std::vector<int32_t> packed(512 * bits / 32);
    std::vector<uint16_t> scales(4);
    PackRow(w.data(), 512, bits, 128, packed.data(), scales.data());
    for (int64_t c = 0; c < 512; ++c) {
      const float s = Bf16ToF32(scales[c / 128]);
      ASSERT_EQ(F16ToF32(F32ToF16(s)), s) << "scales must be float16 numbers too";
      const int32_t lo = -(1 << (bits - 1)), hi = (1 << (bits - 1)) - 1;
      const int32_t v = PackedValue(packed.data(), bits, c);
      EXPECT_EQ(v, std::clamp(static_cast<int32_t>(std::lrint(w[c] / s)), lo, hi)) << "column " << c;
      // Symmetric scale = max|w| / (hi + 0.5): only a group's largest
      // positive value may be clipped (by at most half a step plus the
      // scale's bf16 rounding); every other value is within half a step.
      if (w[c] / s <= hi + 0.5f) EXPECT_LE(std::fabs(v * s - w[c]), 0.5f * s * 1.0001f) << "column " << c;
      else EXPECT_LE(std::fabs(v * s - w[c]), 0.51f * s + std::fabs(w[c]) / 128) << "column " << c;
    }
  }
}

// `in` (a converted checkpoint) with every packed matrix replaced by its F32
// values (value x scale), config.json without quantization_config.
void WriteDequantized(const std::string& in, const std::string& out) {
  std::filesystem::create_directories(out);
  auto f = SafetensorsFile::Open(in + "/model.safetensors");
  ASSERT_TRUE(f.ok()) << f.status().message();
  std::ifstream c(in + "/config.json");
  nlohmann::ordered_json config = nlohmann::ordered_json::parse(c);
  auto parsed = ParseConfig(config.dump(), in);
  ASSERT_TRUE(parsed.ok() && parsed->packed_int);
  const int bits = parsed->packed_int->bits;
  config.erase("quantization_config");
  std::ofstream(out + "/config.json") << config.dump(2) << "\n";
  std::vector<TensorSpec> specs;
  for (const TensorInfo& t : (*f)->tensors()) {
    const std::string& n = t.name;
    if (n.ends_with("_scale") || n.ends_with("_shape")) continue;
    if (n.ends_with("_packed"))
      specs.push_back({n.substr(0, n.size() - 7), DType::kF32, {t.shape[0], t.shape[1] * 32 / bits}});
    else
      specs.push_back({n, t.dtype, t.shape});
  }
  auto w = SafetensorsWriter::Create(out + "/model.safetensors", specs, {});
  ASSERT_TRUE(w.ok()) << w.status().message();
  for (const TensorInfo& t : (*f)->tensors()) {
    const std::string& n = t.name;
    if (n.ends_with("_scale") || n.ends_with("_shape")) continue;
    if (!n.ends_with("_packed")) {
      ASSERT_TRUE((*w)->Write(t.data, t.nbytes).ok());
      continue;
    }
    const TensorInfo* s = (*f)->Find(n.substr(0, n.size() - 7) + "_scale");
    ASSERT_TRUE(s && s->dtype == DType::kBF16);
    const int64_t rows = t.shape[0], cols = t.shape[1] * 32 / bits, groups = s->shape[1];
    std::vector<float> x(rows * cols);
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<int32_t> row(t.shape[1]);
      std::memcpy(row.data(), t.data + r * t.shape[1] * 4, row.size() * 4);
      for (int64_t c = 0; c < cols; ++c) {
        uint16_t h;
        std::memcpy(&h, s->data + (r * groups + c / (cols / groups)) * 2, 2);
        x[r * cols + c] = static_cast<float>(PackedValue(row.data(), bits, c)) * Bf16ToF32(h);
      }
    }
    ASSERT_TRUE((*w)->Write(x.data(), x.size() * 4).ok());
  }
  ASSERT_TRUE((*w)->Finish().ok());
}

TEST(PackedInt, LogitsEqualFloatPathOnDequantizedWeights) {
  const std::string dir = ScratchDir();
  const GoldenLogits g = LoadGoldenLogits("v3_tiny_bf16");
  for (ConvertTarget to : {ConvertTarget::kW4A16, ConvertTarget::kW8A16}) {
    const std::string name = to == ConvertTarget::kW4A16 ? "w4a16" : "w8a16";
    SCOPED_TRACE(name);
    const std::string qpath = dir + "/tiny_" + name, fpath = dir + "/tiny_" + name + "_deq";
    auto s = RunConvert(to, Golden("v3_tiny_bf16"), qpath);
    ASSERT_TRUE(s.ok()) << s.status().message();
    WriteDequantized(qpath, fpath);
    auto q = LoadExact(qpath);
    auto f = LoadModel(fpath);
    ASSERT_TRUE(q && f);
    const FloatPathAgreement a = CompareWithFloatPath(*q, *f, g);
    std::printf("  %s: prefill worst rel %.3g, decode %.3g; vs golden BF16 %.3g (argmax differs %lld/%lld)\n",
                name.c_str(), a.prefill.worst_rel, a.decode.worst_rel, a.golden.worst_rel,
                (long long)a.golden.argmax_diff, (long long)a.golden.rows);
    EXPECT_LE(a.prefill.worst_rel, 1e-5);
    EXPECT_LE(a.decode.worst_rel, 1e-5);
    EXPECT_EQ(a.prefill.argmax_diff, 0);
  }
}

}  // namespace
}  // namespace dsv3
