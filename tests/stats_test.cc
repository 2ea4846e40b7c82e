// `inspect` arithmetic on the release configs (SPEC.md §2.6, §4.4, §8).
#include <gtest/gtest.h>

#include "core/mapped_file.h"
#include "model/stats.h"

namespace dsv3 {
namespace {

Config Load(const std::string& name) {
  auto c = LoadConfig(std::string(DSV3_GOLDEN_DIR) + "/../configs/" + name);
  EXPECT_TRUE(c.ok()) << c.status().message();
  return *c;
}

TEST(Stats, DeepSeekV3) {
  const ModelStats s = ComputeStats(Load("deepseek_v3.json"));
  EXPECT_EQ(s.kv_elements_per_token * 2, 70272);  // bytes per token at BF16
  EXPECT_EQ(s.kv_elements_per_token_mtp, 576);
  EXPECT_NEAR(s.main_params / 1e9, 671.03, 0.01);    // SPEC §2.6 count from the shapes
  EXPECT_NEAR(s.active_params / 1e9, 37.55, 0.01);   // SPEC §8, embedding + head included
  EXPECT_NEAR(s.embedding_params / 1e9, 0.9267, 0.001);
  EXPECT_NEAR(s.mtp_params / 1e9, 11.61, 0.02);     // SPEC §2.6 MTP-unique tensors
}

TEST(Stats, DeepSeekV2Lite) {
  const ModelStats s = ComputeStats(Load("deepseek_v2_lite.json"));
  EXPECT_NEAR(s.main_params / 1e9, 15.7, 0.1);  // "16B" V2-Lite, 15.7B total
  EXPECT_NEAR(s.active_params / 1e9, 2.7, 0.1);  // 2.4B active + embedding/head counted here
  EXPECT_EQ(s.mtp_params, 0);
}

}  // namespace
}  // namespace dsv3
