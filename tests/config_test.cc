// Config parsing: the release configs' derived values against hand-computed
// numbers (SPEC.md §1, §4.6), and every rejected config naming its field.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "model/config.h"

namespace dsv3 {
namespace {

using nlohmann::json;

json ReadJson(const std::string& name) {
  auto text = ReadTextFile(std::string(DSV3_GOLDEN_DIR) + "/../configs/" + name);
  EXPECT_TRUE(text.ok());
  return json::parse(*text);
}

Config MustParse(const json& j) {
  auto c = ParseConfig(j.dump(), "config.json");
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? *c : Config{};
}

TEST(Config, DeepSeekV3ReleaseValues) {
  const Config c = MustParse(ReadJson("deepseek_v3.json"));
  EXPECT_EQ(c.model_type, ModelType::kDeepseekV3);
  EXPECT_EQ(c.qk_head_dim(), 192);
  EXPECT_EQ(c.kv_latent_dim(), 576);
  EXPECT_TRUE(c.quantization.has_value());
  EXPECT_EQ(c.topk_method, TopkMethod::kNoauxTc);
  EXPECT_FALSE(c.IsMoeLayer(2));
  EXPECT_TRUE(c.IsMoeLayer(3));
  EXPECT_TRUE(c.IsMoeLayer(61));  // the MTP layer
  // scale = 192^-0.5 * (0.1 ln 40 + 1)^2 = 0.135234 (SPEC §4.6)
  EXPECT_NEAR(c.SoftmaxScale(), 0.135234, 1e-6);
  EXPECT_DOUBLE_EQ(c.RopeCosSinScale(), 1.0);
}

TEST(Config, DeepSeekV3YarnFrequencies) {
  const Config c = MustParse(ReadJson("deepseek_v3.json"));
  const std::vector<double> f = c.RopeInvFreq();
  ASSERT_EQ(f.size(), 32u);
  // low = floor(10.47) = 10, high = ceil(22.51) = 23: j <= 10 unchanged, j >= 23 divided by 40.
  for (int j = 0; j < 32; ++j) {
    const double base = std::pow(10000.0, -2.0 * j / 64.0);
    const double ramp = std::clamp((j - 10.0) / 13.0, 0.0, 1.0);
    const double want = base / 40.0 * ramp + base * (1.0 - ramp);
    EXPECT_NEAR(f[j], want, 1e-12 * base) << j;
  }
  EXPECT_NEAR(f[10], std::pow(10000.0, -20.0 / 64.0), 1e-7);
  EXPECT_NEAR(f[23], std::pow(10000.0, -46.0 / 64.0) / 40.0, 1e-9);
}

TEST(Config, DeepSeekV2LiteValues) {
  const Config c = MustParse(ReadJson("deepseek_v2_lite.json"));
  EXPECT_EQ(c.model_type, ModelType::kDeepseekV2);
  EXPECT_EQ(c.q_lora_rank, 0);
  EXPECT_EQ(c.scoring_func, ScoringFunc::kSoftmax);
  EXPECT_FALSE(c.norm_topk_prob);
  // 192^-0.5 * (0.1 * 0.707 * ln 40 + 1)^2 = 0.11472 (SPEC §1.2)
  EXPECT_NEAR(c.SoftmaxScale(), 0.11472, 1e-5);
}

TEST(Config, DefaultsFollowModelType) {
  json j = ReadJson("deepseek_v3.json");
  for (const char* k : {"topk_method", "scoring_func", "n_group", "topk_group", "norm_topk_prob",
                        "routed_scaling_factor", "rope_scaling", "quantization_config"})
    j.erase(k);
  const Config c = MustParse(j);
  EXPECT_EQ(c.topk_method, TopkMethod::kNoauxTc);
  EXPECT_EQ(c.scoring_func, ScoringFunc::kSigmoid);
  EXPECT_EQ(c.n_group, 8);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 2.5);
  EXPECT_NEAR(c.SoftmaxScale(), 1.0 / std::sqrt(192.0), 1e-9);  // no YaRN, no mscale
}

struct BadCase {
  const char* field;
  json value;  // null means: erase the field
  const char* needle;
};

TEST(Config, RejectsBadFieldsNamingThem) {
  const BadCase cases[] = {
      {"model_type", "llama", "model_type"},
      {"model_type", nullptr, "model_type"},
      {"hidden_size", nullptr, "hidden_size"},
      {"hidden_size", "big", "hidden_size"},
      {"hidden_size", -5, "hidden_size"},
      {"num_hidden_layers", 0, "num_hidden_layers"},
      {"qk_rope_head_dim", 63, "qk_rope_head_dim"},
      {"n_group", 7, "n_group"},
      {"topk_group", 9, "topk_group"},
      {"num_experts_per_tok", 300, "num_experts_per_tok"},
      {"scoring_func", "relu", "scoring_func"},
      {"topk_method", "random", "topk_method"},
      {"hidden_act", "gelu", "hidden_act"},
      {"attention_bias", true, "attention_bias"},
      {"rope_scaling", json{{"type", "linear"}, {"factor", 2}}, "rope_scaling"},
      {"rope_scaling", json{{"type", "yarn"}, {"factor", -1}}, "rope_scaling.factor"},
      {"quantization_config", json{{"quant_method", "gptq"}}, "quant_method"},
      {"quantization_config", json{{"quant_method", "fp8"}, {"weight_block_size", {128}}}, "weight_block_size"},
      {"eos_token_id", 999999, "eos_token_id"},
      {"eos_token_id", "x", "eos_token_id"},
      {"rms_norm_eps", 0, "rms_norm_eps"},
      {"moe_intermediate_size", 0, "moe_intermediate_size"},
  };
  for (const BadCase& bc : cases) {
    json j = ReadJson("deepseek_v3.json");
    if (bc.value.is_null()) j.erase(bc.field);
    else j[bc.field] = bc.value;
    auto c = ParseConfig(j.dump(), "dir/config.json");
    ASSERT_FALSE(c.ok()) << bc.field << " = " << bc.value.dump();
    EXPECT_NE(c.status().message().find(bc.needle), std::string::npos) << c.status().message();
    EXPECT_NE(c.status().message().find("dir/config.json"), std::string::npos) << c.status().message();
  }
  EXPECT_FALSE(ParseConfig("{oops", "c.json").ok());
  EXPECT_FALSE(ParseConfig("[]", "c.json").ok());
  EXPECT_FALSE(LoadConfig("/nonexistent/dir").ok());
}

// Counts and reals a hostile config.json could use to make dsv3 allocate
// terabytes or compute NaN (issue 20): each refused, naming the field, before
// anything is sized by it.
TEST(Config, RejectsHostileCountsAndRealsNamingThem) {
  const BadCase cases[] = {
      {"num_hidden_layers", int64_t{1} << 40, "num_hidden_layers"},
      {"num_hidden_layers", 1048576, "num_hidden_layers"},
      {"n_routed_experts", int64_t{1} << 31, "n_routed_experts"},
      {"n_routed_experts", 1048576, "n_routed_experts"},
      {"num_nextn_predict_layers", int64_t{1} << 40, "num_nextn_predict_layers"},
      {"vocab_size", int64_t{1} << 40, "vocab_size"},
      {"hidden_size", int64_t{1} << 33, "hidden_size"},
      {"max_position_embeddings", int64_t{1} << 40, "max_position_embeddings"},
      {"kv_lora_rank", int64_t{1} << 31, "kv_lora_rank"},
      {"rms_norm_eps", 1e300, "rms_norm_eps"},
      {"rms_norm_eps", 2.0, "rms_norm_eps"},
      {"rope_theta", 1e300, "rope_theta"},
      {"routed_scaling_factor", 1e300, "routed_scaling_factor"},
      {"rope_scaling", json{{"type", "yarn"}, {"factor", 1e300}}, "rope_scaling.factor"},
      {"rope_scaling", json{{"type", "yarn"}, {"factor", 40}, {"beta_fast", -1}}, "rope_scaling.beta_fast"},
      {"rope_scaling", json{{"type", "yarn"}, {"factor", 40}, {"mscale", 1e300}}, "rope_scaling.mscale"},
      {"rope_scaling", json{{"type", "yarn"}, {"factor", 40}, {"original_max_position_embeddings", int64_t{1} << 40}},
       "original_max_position_embeddings"},
  };
  for (const BadCase& bc : cases) {
    json j = ReadJson("deepseek_v3.json");
    j[bc.field] = bc.value;
    auto c = ParseConfig(j.dump(), "dir/config.json");
    ASSERT_FALSE(c.ok()) << bc.field << " = " << bc.value.dump();
    EXPECT_NE(c.status().message().find(bc.needle), std::string::npos) << c.status().message();
  }
  // 61 layers x 4096 experts is within each limit but not their product.
  json j = ReadJson("deepseek_v3.json");
  j["n_routed_experts"] = 4096;
  j["n_group"] = 8;
  auto c = ParseConfig(j.dump(), "c.json");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("expert tensors"), std::string::npos) << c.status().message();
  // Infinity cannot be written in JSON, but a literal past double's range
  // parses as one: refused as non-finite, not carried into the math.
  std::string text = ReadJson("deepseek_v3.json").dump();
  text.replace(text.find("\"rms_norm_eps\":"), std::string("\"rms_norm_eps\":").size(), "\"rms_norm_eps\":1e999,\"x\":");
  EXPECT_FALSE(ParseConfig(text, "c.json").ok());
}

TEST(Config, DeepNestingIsAnErrorNotACrash) {
  json j = ReadJson("deepseek_v3.json");
  std::string text = j.dump();
  text.pop_back();
  text += ",\"extra\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  auto c = ParseConfig(text, "dir/config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("nested deeper than 128"), std::string::npos) << c.status().message();
  text = j.dump();
  text.pop_back();
  text += ",\"extra\":" + std::string(20, '[') + std::string(20, ']') + "}";  // ordinary nesting still fine
  EXPECT_TRUE(ParseConfig(text, "dir/config.json").ok());
}

TEST(Config, AcceptsEosListsAndNullQLora) {
  json j = ReadJson("deepseek_v3.json");
  j["eos_token_id"] = {1, 2};
  j["q_lora_rank"] = nullptr;
  const Config c = MustParse(j);
  EXPECT_EQ(c.eos_token_ids.size(), 2u);
  EXPECT_EQ(c.q_lora_rank, 0);
}

}  // namespace
}  // namespace dsv3
