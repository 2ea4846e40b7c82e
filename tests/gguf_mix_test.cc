// llama-quantize's per-tensor mixes (convert/gguf_mix.h) on DeepSeek-V3's
// own tensor names and shapes: 61 layers, 256 routed experts, the attn_k_b
// rows of 128. The expected types are what llama-quantize --dry-run chose for
// a BF16 GGUF of those shapes (tests/data/llama_quantize/README.md), so the
// layer pattern of the "more bits" rule is checked at full depth, where the
// tiny checkpoints of gguf_mix_tests.cmake have 2 to 4 layers.
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "convert/gguf_mix.h"
#include "core/dtype.h"

namespace dsv3 {
namespace {

const std::string kData = std::string(DSV3_GOLDEN_DIR) + "/../data/llama_quantize/";

struct Row {
  std::string name, type;
  std::vector<int64_t> ne;
};

// name<TAB>TYPE<TAB>ne0,ne1,... per line, as gguf_tensors.py prints them.
std::vector<Row> ReadTable(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  std::vector<Row> rows;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    Row r;
    std::string shape;
    std::getline(fields, r.name, '\t');
    std::getline(fields, r.type, '\t');
    std::getline(fields, shape, '\t');
    std::istringstream dims(shape);
    for (std::string d; std::getline(dims, d, ',');) r.ne.push_back(std::stoll(d));
    rows.push_back(r);
  }
  return rows;
}

void ExpectTable(const std::string& preset_name, const std::string& table) {
  const auto preset = FindGgufPreset(preset_name);
  ASSERT_TRUE(preset);
  const GgufMixModel v3{61, 256, true};
  const auto rows = ReadTable(kData + table);
  ASSERT_EQ(rows.size(), 1086u);
  int mismatches = 0;
  for (const Row& r : rows) {
    const DType t = GgufTensorType(r.name, r.ne, preset->base, preset->file_type, v3);
    if (DTypeName(t) != r.type && ++mismatches <= 10)
      ADD_FAILURE() << r.name << ": dsv3 " << DTypeName(t) << ", llama-quantize " << r.type;
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(GgufMix, DeepSeekV3Q4KMLikeLlamaQuantize) { ExpectTable("q4_k_m", "deepseek-v3-shapes.q4_k_m.types"); }
TEST(GgufMix, DeepSeekV3Q2KLikeLlamaQuantize) { ExpectTable("q2_k", "deepseek-v3-shapes.q2_k.types"); }

TEST(GgufMix, PresetNames) {
  // llama-quantize's aliases: q4_k is Q4_K_M there, so it is here.
  EXPECT_EQ(FindGgufPreset("q4_k")->file_type, GgufFileType::kQ4_K_M);
  EXPECT_EQ(FindGgufPreset("q3_k")->file_type, GgufFileType::kQ3_K_M);
  EXPECT_EQ(FindGgufPreset("q5_k")->file_type, GgufFileType::kQ5_K_M);
  EXPECT_EQ(FindGgufPreset("q2_k")->base, DType::kQ2_K);
  EXPECT_TRUE(FindGgufPreset("q2_k")->mix);
  EXPECT_FALSE(FindGgufPreset("q8_0")->mix);
  EXPECT_FALSE(FindGgufPreset("Q4_K_M"));  // lowercase only, as every dsv3 flag value
  EXPECT_FALSE(FindGgufPreset("q7_k"));
  EXPECT_NE(GgufPresetNames().find("q4_k_m"), std::string::npos);
}

TEST(GgufMix, FallbacksForShortRows) {
  // Rows of 128 (attn_k_b of V3): no 256-block fits.
  EXPECT_EQ(QuantizerFallback(DType::kQ4_K, 128), DType::kQ5_0);
  EXPECT_EQ(QuantizerFallback(DType::kQ2_K, 128), DType::kQ4_0);
  EXPECT_EQ(QuantizerFallback(DType::kQ3_K, 128), DType::kQ4_0);
  EXPECT_EQ(QuantizerFallback(DType::kQ5_K, 128), DType::kQ5_1);
  EXPECT_EQ(QuantizerFallback(DType::kQ6_K, 128), DType::kQ8_0);
  EXPECT_EQ(QuantizerFallback(DType::kIQ4_XS, 128), DType::kIQ4_NL);
  EXPECT_EQ(QuantizerFallback(DType::kQ4_K, 7168), DType::kQ4_K);
  // Rows of 24 (v2lite_tiny's attn_v_b) fit no block at all.
  EXPECT_EQ(QuantizerFallback(DType::kQ4_K, 24), DType::kF16);
  EXPECT_EQ(QuantizerFallback(DType::kQ8_0, 24), DType::kF16);
}

}  // namespace
}  // namespace dsv3
