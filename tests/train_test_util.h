// Shared helpers of the trainer tests: tiny model configs that exercise
// every architectural branch (q LoRA or not, sigmoid + bias + group-limited
// routing or softmax routing, dense then MoE layers, shared experts, YaRN,
// MTP depth), and random data.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "model/config.h"

namespace dsv3::train::testing {

struct TinyOptions {
  bool q_lora = true;
  bool sigmoid = true;  // sigmoid + noaux_tc bias + groups; else softmax, no bias, no groups
  int mtp = 1;
  int layers = 2;  // first is dense, the rest MoE
  int vocab = 64;
  bool yarn = true;
  bool tie = false;
};

inline std::string TinyConfigJson(const TinyOptions& o) {
  std::string j = "{\"model_type\": \"deepseek_v3\", \"vocab_size\": " + std::to_string(o.vocab) +
                  ", \"hidden_size\": 32, \"intermediate_size\": 48, \"moe_intermediate_size\": 16,"
                  " \"num_hidden_layers\": " + std::to_string(o.layers) +
                  ", \"num_nextn_predict_layers\": " + std::to_string(o.mtp) +
                  ", \"num_attention_heads\": 2, \"n_shared_experts\": 1, \"n_routed_experts\": 8,"
                  " \"routed_scaling_factor\": 2.5, \"kv_lora_rank\": 16, \"q_lora_rank\": " +
                  (o.q_lora ? "24" : "null") +
                  ", \"qk_rope_head_dim\": 4, \"v_head_dim\": 8, \"qk_nope_head_dim\": 8,"
                  " \"num_experts_per_tok\": 2, \"first_k_dense_replace\": 1, \"max_position_embeddings\": 64,"
                  " \"rms_norm_eps\": 1e-6, \"rope_theta\": 10000, \"bos_token_id\": 0, \"eos_token_id\": 1,"
                  " \"tie_word_embeddings\": " + (o.tie ? "true" : "false");
  if (o.sigmoid) {
    j += ", \"topk_method\": \"noaux_tc\", \"scoring_func\": \"sigmoid\", \"norm_topk_prob\": true,"
         " \"n_group\": 4, \"topk_group\": 2";
  } else {
    j += ", \"topk_method\": \"greedy\", \"scoring_func\": \"softmax\", \"norm_topk_prob\": false,"
         " \"n_group\": 1, \"topk_group\": 1, \"routed_scaling_factor\": 1.0";
  }
  if (o.yarn)
    j += ", \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0, \"original_max_position_embeddings\": 16,"
         " \"beta_fast\": 32, \"beta_slow\": 1, \"mscale\": 1.0, \"mscale_all_dim\": 1.0}";
  return j + "}";
}

inline Config TinyConfig(const TinyOptions& o) {
  auto c = ParseConfig(TinyConfigJson(o), "tiny");
  if (!c.ok()) throw std::runtime_error(c.status().message());
  return *c;
}

inline std::vector<float> RandomVector(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

inline std::vector<int32_t> RandomTokens(int64_t n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> v(n);
  for (auto& t : v) t = static_cast<int32_t>(rng() % vocab);
  return v;
}

}  // namespace dsv3::train::testing
