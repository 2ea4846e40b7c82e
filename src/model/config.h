// The one validated model Config, parsed from a Hugging Face config.json of
// model_type deepseek_v3 or deepseek_v2. Field names are Hugging Face's;
// defaults are those of the matching transformers config class. Anything the
// engine cannot run exactly (another activation, attention bias, another rope
// scaling type, inconsistent expert grouping) is rejected with a message that
// names the field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace dsv3 {

enum class ModelType { kDeepseekV3, kDeepseekV2 };
enum class ScoringFunc { kSigmoid, kSoftmax };
enum class TopkMethod { kGreedy, kGroupLimitedGreedy, kNoauxTc };

struct RopeScaling {  // "type"/"rope_type": "yarn"
  double factor = 1.0;
  int64_t original_max_position_embeddings = 4096;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 0.0;
};

struct QuantizationConfig {  // quant_method "fp8", fmt "e4m3"
  int64_t block_rows = 128, block_cols = 128;  // weight_block_size
  bool scale_fmt_ue8m0 = false;                // scale_fmt "ue8m0"
};

// Weight-only integer linear layers as vLLM serves them (quant_method
// "compressed-tensors", format "pack-quantized"): symmetric int4 or int8
// values packed into int32, one scale per `group_size` columns of a row.
struct PackedIntConfig {
  int bits = 4;              // 4 (w4a16) or 8 (w8a16)
  int64_t group_size = 128;  // a multiple of 32 (the loader repacks into 32-value blocks)
};

struct Config {
  ModelType model_type = ModelType::kDeepseekV3;
  std::string model_type_name;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t moe_intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_nextn_predict_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t n_shared_experts = 0;
  int64_t n_routed_experts = 0;  // 0: every layer dense
  double routed_scaling_factor = 1.0;
  int64_t kv_lora_rank = 0;
  int64_t q_lora_rank = 0;  // 0: no q LoRA (q_proj)
  int64_t qk_rope_head_dim = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t v_head_dim = 0;
  TopkMethod topk_method = TopkMethod::kGreedy;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  int64_t num_experts_per_tok = 0;
  int64_t moe_layer_freq = 1;
  int64_t first_k_dense_replace = 0;
  bool norm_topk_prob = false;
  ScoringFunc scoring_func = ScoringFunc::kSoftmax;
  int64_t max_position_embeddings = 4096;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::optional<RopeScaling> rope_scaling;
  std::optional<QuantizationConfig> quantization;
  std::optional<PackedIntConfig> packed_int;  // compressed-tensors; exclusive with `quantization`
  bool tie_word_embeddings = false;
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  std::string torch_dtype;

  // Derived quantities.
  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  int64_t kv_latent_dim() const { return kv_lora_rank + qk_rope_head_dim; }  // per cached token
  int64_t num_layers_with_mtp() const { return num_hidden_layers + num_nextn_predict_layers; }
  bool IsMoeLayer(int64_t layer) const;  // also for MTP layer indices >= num_hidden_layers
  bool HasMoe() const { return n_routed_experts > 0; }
  double SoftmaxScale() const;           // (dn+dr)^-0.5 * mscale^2 under YaRN
  double RopeCosSinScale() const;        // mscale(factor, mscale) / mscale(factor, mscale_all_dim)
  std::vector<double> RopeInvFreq() const;  // [dr/2], YaRN-corrected when configured (model/rope.h)
};

// Parses and validates config.json text; `label` names the file in errors.
Expected<Config> ParseConfig(const std::string& json_text, const std::string& label);
// How a validation error names a field: config.json's name by default
// ("field 'rms_norm_eps'"); a GGUF reader passes one that names its key.
using FieldNamer = std::string (*)(const std::string& field);

// The checks ParseConfig applies after reading fields, for Configs built
// another way (e.g. from GGUF metadata); errors name `label` and the field
// as `namer` spells it. Besides consistency, every count and dimension is
// held under the limits below, so nothing sized by a hostile file (a tensor
// list, a router table, a KV cache) is allocated before it is refused.
Status ValidateConfig(const Config& config, const std::string& label, FieldNamer namer = nullptr);

// Limits that follow from what a machine can run, not from any release:
// each is at least 8x the largest DeepSeek-architecture model published
// (V3/R1: 61 layers, 256 experts, 129,280 tokens; Kimi K2: 384 experts).
struct ConfigLimits {
  static constexpr int64_t kLayers = 1024;          // num_hidden_layers
  static constexpr int64_t kMtpLayers = 16;         // num_nextn_predict_layers
  static constexpr int64_t kVocab = 1 << 22;        // vocab_size
  static constexpr int64_t kWidth = 1 << 16;        // hidden_size, LoRA ranks
  static constexpr int64_t kFfn = 1 << 19;          // intermediate sizes
  static constexpr int64_t kHeads = 1024;           // num_attention_heads
  static constexpr int64_t kHeadDim = 4096;         // rope/nope/v head dims
  static constexpr int64_t kExperts = 4096;         // n_routed_experts
  static constexpr int64_t kSharedExperts = 64;     // n_shared_experts
  static constexpr int64_t kExpertSlots = 1 << 17;  // (layers + MTP) x routed experts
  static constexpr int64_t kPositions = 1 << 24;    // max_position_embeddings
};
// Reads DIR/config.json (or a path to a .json file).
Expected<Config> LoadConfig(const std::string& path);

// 0.1 * mscale * ln(scale) + 1, or 1 when scale <= 1 (DeepSeek's yarn_get_mscale).
double YarnMscale(double scale, double mscale);

}  // namespace dsv3
