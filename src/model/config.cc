// config.json parsing, defaults and validation; see config.h.
#include "model/config.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <initializer_list>
#include <nlohmann/json.hpp>

#include "core/json_depth.h"
#include "core/json_fields.h"
#include "core/mapped_file.h"

namespace dsv3 {

using nlohmann::json;

namespace {

// %g, so 1e+300 and inf read as such in errors.
std::string FormatReal(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

// Reads typed fields with a message naming the field on a type mismatch.
class FieldReader {
 public:
  FieldReader(const json& j, std::string label, FieldNamer namer = nullptr)
      : j_(j), label_(std::move(label)), namer_(namer) {}

  Status Int(const char* key, int64_t& out, bool required, bool null_is_zero = false) {
    if (!j_.contains(key)) {
      return required ? Error(key, "is required") : Status::Ok();
    }
    const json& v = j_[key];
    if (v.is_null() && null_is_zero) {
      out = 0;
      return Status::Ok();
    }
    if (!v.is_number_integer()) return Error(key, "must be an integer");
    out = v.get<int64_t>();
    return Status::Ok();
  }
  Status Double(const char* key, double& out) {
    if (!j_.contains(key) || j_[key].is_null()) return Status::Ok();
    if (!j_[key].is_number()) return Error(key, "must be a number");
    out = j_[key].get<double>();
    return Status::Ok();
  }
  Status Bool(const char* key, bool& out) {
    if (!j_.contains(key) || j_[key].is_null()) return Status::Ok();
    if (!j_[key].is_boolean()) return Error(key, "must be true or false");
    out = j_[key].get<bool>();
    return Status::Ok();
  }
  Status String(const char* key, std::string& out) {
    if (!j_.contains(key) || j_[key].is_null()) return Status::Ok();
    if (!j_[key].is_string()) return Error(key, "must be a string");
    out = j_[key].get<std::string>();
    return Status::Ok();
  }
  Status Error(const std::string& key, const std::string& what) const {
    return Status::Error(label_ + ": " + (namer_ ? namer_(key) : "field '" + key + "'") + " " + what);
  }

 private:
  const json& j_;
  std::string label_;
  FieldNamer namer_;
};

Status ParseRopeScaling(const json& j, const std::string& label, Config& c) {
  if (!j.contains("rope_scaling") || j["rope_scaling"].is_null()) return Status::Ok();
  const json& r = j["rope_scaling"];
  if (!r.is_object()) return Status::Error(label + ": field 'rope_scaling' must be an object or null");
  FieldReader f(r, label + " rope_scaling");
  std::string type;
  DSV3_RETURN_IF_ERROR(f.String("type", type));
  if (type.empty()) DSV3_RETURN_IF_ERROR(f.String("rope_type", type));
  if (type != "yarn")
    return Status::Error(label + ": field 'rope_scaling.type' is '" + type +
                         "'; only \"yarn\" is supported (DeepSeek-V2/V3 use YaRN)");
  RopeScaling s;
  DSV3_RETURN_IF_ERROR(f.Double("factor", s.factor));
  DSV3_RETURN_IF_ERROR(f.Int("original_max_position_embeddings", s.original_max_position_embeddings, false));
  DSV3_RETURN_IF_ERROR(f.Double("beta_fast", s.beta_fast));
  DSV3_RETURN_IF_ERROR(f.Double("beta_slow", s.beta_slow));
  DSV3_RETURN_IF_ERROR(f.Double("mscale", s.mscale));
  DSV3_RETURN_IF_ERROR(f.Double("mscale_all_dim", s.mscale_all_dim));
  c.rope_scaling = s;  // ranges checked with the rest in ValidateRope
  return Status::Ok();
}

// compressed-tensors, weight-only: one config group of symmetric int4/int8
// weights with group-wise scales (what `dsv3 convert --to w4a16|w8a16`
// writes and vLLM's W4A16/W8A16 schemes store).
Status ParsePackedInt(const json& q, const std::string& where, Config& c) {
  if (q.value("format", json()) != "pack-quantized")
    return Status::Error(where + ".format' must be \"pack-quantized\" (got " + q.value("format", json()).dump() + ")");
  const json groups = q.value("config_groups", json());
  if (!groups.is_object() || groups.size() != 1)
    return Status::Error(where + ".config_groups' must hold exactly one group");
  const json& g = groups.begin().value();
  const json w = g.is_object() ? g.value("weights", json()) : json();
  if (!w.is_object()) return Status::Error(where + ".config_groups." + groups.begin().key() + ".weights' is missing");
  const json input = g.value("input_activations", json());
  if (!input.is_null()) return Status::Error(where + "': activation quantization is not supported (weight-only only)");
  const std::string at = where + ".config_groups." + groups.begin().key() + ".weights.";
  PackedIntConfig p;
  const json bits = w.value("num_bits", json()), group = w.value("group_size", json());
  if (bits != 4 && bits != 8) return Status::Error(at + "num_bits' must be 4 or 8 (got " + bits.dump() + ")");
  if (w.value("type", json()) != "int") return Status::Error(at + "type' must be \"int\"");
  if (w.value("symmetric", json()) != true) return Status::Error(at + "symmetric' must be true (no zero points)");
  if (w.value("strategy", json()) != "group") return Status::Error(at + "strategy' must be \"group\"");
  if (!group.is_number_integer() || group.get<int64_t>() <= 0 || group.get<int64_t>() % 32 != 0)
    return Status::Error(at + "group_size' must be a positive multiple of 32 (got " + group.dump() + ")");
  p.bits = bits.get<int>();
  p.group_size = group.get<int64_t>();
  c.packed_int = p;
  return Status::Ok();
}

Status ParseQuantization(const json& j, const std::string& label, Config& c) {
  if (!j.contains("quantization_config") || j["quantization_config"].is_null()) return Status::Ok();
  const json& q = j["quantization_config"];
  const std::string where = label + ": field 'quantization_config";
  if (!q.is_object()) return Status::Error(where + "' must be an object");
  const json method = q.contains("quant_method") ? q["quant_method"] : json();
  if (method == "compressed-tensors") return ParsePackedInt(q, where, c);
  if (method != "fp8")
    return Status::Error(where + ".quant_method' must be \"fp8\" or \"compressed-tensors\" (got " + method.dump() +
                         ")");
  if (q.contains("fmt") && q["fmt"] != "e4m3")
    return Status::Error(where + ".fmt' must be \"e4m3\" (got " + q["fmt"].dump() + ")");
  QuantizationConfig qc;
  if (q.contains("weight_block_size")) {
    const json& b = q["weight_block_size"];
    if (!b.is_array() || b.size() != 2 || !b[0].is_number_integer() || !b[1].is_number_integer() ||
        b[0].get<int64_t>() <= 0 || b[1].get<int64_t>() <= 0)
      return Status::Error(where + ".weight_block_size' must be two positive integers");
    qc.block_rows = b[0].get<int64_t>();
    qc.block_cols = b[1].get<int64_t>();
  }
  const json& fmt = q.contains("scale_fmt") ? q["scale_fmt"] : j.value("scale_fmt", json());
  if (!fmt.is_null()) {
    if (fmt != "ue8m0") return Status::Error(where + ".scale_fmt' must be null or \"ue8m0\"");
    qc.scale_fmt_ue8m0 = true;
  }
  c.quantization = qc;
  return Status::Ok();
}

Status ParseEos(const json& j, const std::string& label, Config& c) {
  if (!j.contains("eos_token_id") || j["eos_token_id"].is_null()) return Status::Ok();
  const json& e = j["eos_token_id"];
  if (e.is_number_integer()) {
    c.eos_token_ids.push_back(e.get<int64_t>());
    return Status::Ok();
  }
  if (e.is_array()) {
    for (const auto& x : e) {
      if (!x.is_number_integer()) break;
      c.eos_token_ids.push_back(x.get<int64_t>());
    }
    if (c.eos_token_ids.size() == e.size()) return Status::Ok();
  }
  return Status::Error(label + ": field 'eos_token_id' must be an integer or a list of integers");
}

Status ParseMoeFields(const json& j, FieldReader& f, Config& c) {
  std::string topk, scoring;
  DSV3_RETURN_IF_ERROR(f.String("topk_method", topk));
  DSV3_RETURN_IF_ERROR(f.String("scoring_func", scoring));
  if (!topk.empty()) {
    if (topk == "greedy" || topk == "gready") c.topk_method = TopkMethod::kGreedy;
    else if (topk == "group_limited_greedy") c.topk_method = TopkMethod::kGroupLimitedGreedy;
    else if (topk == "noaux_tc") c.topk_method = TopkMethod::kNoauxTc;
    else return f.Error("topk_method", "is '" + topk + "'; expected greedy, group_limited_greedy or noaux_tc");
  }
  if (!scoring.empty()) {
    if (scoring == "sigmoid") c.scoring_func = ScoringFunc::kSigmoid;
    else if (scoring == "softmax") c.scoring_func = ScoringFunc::kSoftmax;
    else return f.Error("scoring_func", "is '" + scoring + "'; expected sigmoid or softmax");
  }
  DSV3_RETURN_IF_ERROR(f.Int("n_routed_experts", c.n_routed_experts, false, true));
  DSV3_RETURN_IF_ERROR(f.Int("n_shared_experts", c.n_shared_experts, false, true));
  DSV3_RETURN_IF_ERROR(f.Int("num_experts_per_tok", c.num_experts_per_tok, false, true));
  DSV3_RETURN_IF_ERROR(f.Int("n_group", c.n_group, false, true));
  DSV3_RETURN_IF_ERROR(f.Int("topk_group", c.topk_group, false, true));
  DSV3_RETURN_IF_ERROR(f.Int("moe_layer_freq", c.moe_layer_freq, false));
  DSV3_RETURN_IF_ERROR(f.Int("first_k_dense_replace", c.first_k_dense_replace, false));
  DSV3_RETURN_IF_ERROR(f.Int("moe_intermediate_size", c.moe_intermediate_size, false));
  DSV3_RETURN_IF_ERROR(f.Double("routed_scaling_factor", c.routed_scaling_factor));
  DSV3_RETURN_IF_ERROR(f.Bool("norm_topk_prob", c.norm_topk_prob));
  if (c.n_group == 0) c.n_group = 1;
  if (c.topk_group == 0) c.topk_group = c.n_group;
  return Status::Ok();
}

Status ValidateMoe(FieldReader& f, const Config& c) {
  if (!c.HasMoe()) return Status::Ok();
  if (c.n_routed_experts < 0) return f.Error("n_routed_experts", "must be >= 0");
  if (c.moe_intermediate_size <= 0) return f.Error("moe_intermediate_size", "must be > 0 for a MoE model");
  if (c.num_experts_per_tok <= 0 || c.num_experts_per_tok > c.n_routed_experts)
    return f.Error("num_experts_per_tok", "must be in [1, n_routed_experts]");
  if (c.n_shared_experts < 0) return f.Error("n_shared_experts", "must be >= 0");
  if (c.moe_layer_freq <= 0) return f.Error("moe_layer_freq", "must be >= 1");
  if (c.first_k_dense_replace < 0) return f.Error("first_k_dense_replace", "must be >= 0");
  if (c.n_group < 1 || c.n_routed_experts % c.n_group != 0)
    return f.Error("n_group", "must divide n_routed_experts (" + std::to_string(c.n_routed_experts) + ")");
  if (c.topk_group < 1 || c.topk_group > c.n_group) return f.Error("topk_group", "must be in [1, n_group]");
  if (c.n_group > 1 && c.topk_method == TopkMethod::kGreedy)
    return f.Error("topk_method", "is greedy but n_group > 1; use group_limited_greedy or noaux_tc");
  const int64_t per_group = c.n_routed_experts / c.n_group;
  if (c.num_experts_per_tok > c.topk_group * per_group)
    return f.Error("num_experts_per_tok", "exceeds the experts in the topk_group kept groups");
  if (c.topk_method == TopkMethod::kNoauxTc && c.n_group > 1 && per_group < 2)
    return f.Error("n_group", "leaves fewer than 2 experts per group (noaux_tc scores a group by its top 2)");
  return Status::Ok();
}

// Every count under ConfigLimits, so what is sized by them stays affordable.
Status ValidateLimits(FieldReader& f, const Config& c) {
  using L = ConfigLimits;
  struct Bounded { const char* name; int64_t value, max; };
  const Bounded bounded[] = {
      {"vocab_size", c.vocab_size, L::kVocab},           {"hidden_size", c.hidden_size, L::kWidth},
      {"intermediate_size", c.intermediate_size, L::kFfn},
      {"moe_intermediate_size", c.moe_intermediate_size, L::kFfn},
      {"num_hidden_layers", c.num_hidden_layers, L::kLayers},
      {"num_nextn_predict_layers", c.num_nextn_predict_layers, L::kMtpLayers},
      {"num_attention_heads", c.num_attention_heads, L::kHeads}, {"kv_lora_rank", c.kv_lora_rank, L::kWidth},
      {"q_lora_rank", c.q_lora_rank, L::kWidth},           {"qk_rope_head_dim", c.qk_rope_head_dim, L::kHeadDim},
      {"qk_nope_head_dim", c.qk_nope_head_dim, L::kHeadDim}, {"v_head_dim", c.v_head_dim, L::kHeadDim},
      {"n_routed_experts", c.n_routed_experts, L::kExperts},
      {"n_shared_experts", c.n_shared_experts, L::kSharedExperts},
      {"max_position_embeddings", c.max_position_embeddings, L::kPositions}};
  for (const auto& b : bounded)
    if (b.value > b.max)
      return f.Error(b.name, "is " + std::to_string(b.value) + "; dsv3 accepts at most " + std::to_string(b.max));
  if (c.num_layers_with_mtp() * c.n_routed_experts > L::kExpertSlots)
    return f.Error("n_routed_experts", "times the layers (" + std::to_string(c.num_layers_with_mtp()) +
                                           ") exceeds " + std::to_string(L::kExpertSlots) + " expert tensors");
  return Status::Ok();
}

// Floating-point fields: finite and inside the range where the math holds
// (an rms_norm_eps of 1e300 or an infinite scale gives NaN logits silently).
Status ValidateReals(FieldReader& f, const Config& c) {
  struct Real { const char* name; double value, lo, hi; };
  auto check = [&f](std::initializer_list<Real> reals) {
    for (const Real& r : reals)
      if (!(std::isfinite(r.value) && r.value > r.lo && r.value < r.hi))
        return f.Error(r.name, "must be a finite number in (" + FormatReal(r.lo) + ", " + FormatReal(r.hi) +
                                   ") (got " + FormatReal(r.value) + ")");
    return Status::Ok();
  };
  DSV3_RETURN_IF_ERROR(check({{"rms_norm_eps", c.rms_norm_eps, 0.0, 1.0},
                              {"rope_theta", c.rope_theta, 1.0, 1e12},
                              {"routed_scaling_factor", c.routed_scaling_factor, 0.0, 1e4}}));
  if (!c.rope_scaling) return Status::Ok();
  const RopeScaling& s = *c.rope_scaling;
  DSV3_RETURN_IF_ERROR(check({{"rope_scaling.factor", s.factor, 0.0, 1e6},
                              {"rope_scaling.beta_fast", s.beta_fast, 0.0, 1e6},
                              {"rope_scaling.beta_slow", s.beta_slow, 0.0, 1e6},
                              {"rope_scaling.mscale", s.mscale, -1e3, 1e3},
                              {"rope_scaling.mscale_all_dim", s.mscale_all_dim, -1e3, 1e3}}));
  if (s.original_max_position_embeddings <= 0 || s.original_max_position_embeddings > ConfigLimits::kPositions)
    return f.Error("rope_scaling.original_max_position_embeddings",
                   "must be in [1, " + std::to_string(ConfigLimits::kPositions) + "] (got " +
                       std::to_string(s.original_max_position_embeddings) + ")");
  return Status::Ok();
}

Status ValidateShapes(FieldReader& f, const Config& c) {
  struct Positive { const char* name; int64_t value; };
  const Positive required[] = {
      {"vocab_size", c.vocab_size},          {"hidden_size", c.hidden_size},
      {"num_hidden_layers", c.num_hidden_layers}, {"num_attention_heads", c.num_attention_heads},
      {"kv_lora_rank", c.kv_lora_rank},      {"qk_rope_head_dim", c.qk_rope_head_dim},
      {"qk_nope_head_dim", c.qk_nope_head_dim}, {"v_head_dim", c.v_head_dim},
      {"max_position_embeddings", c.max_position_embeddings}};
  for (const auto& p : required)
    if (p.value <= 0) return f.Error(p.name, "must be > 0 (got " + std::to_string(p.value) + ")");
  if (c.qk_rope_head_dim % 2 != 0) return f.Error("qk_rope_head_dim", "must be even (RoPE rotates pairs)");
  if (c.q_lora_rank < 0) return f.Error("q_lora_rank", "must be null or >= 0");
  if (c.num_nextn_predict_layers < 0) return f.Error("num_nextn_predict_layers", "must be >= 0");
  const bool any_dense = !c.HasMoe() || c.first_k_dense_replace > 0 || c.moe_layer_freq > 1;
  if (any_dense && c.intermediate_size <= 0) return f.Error("intermediate_size", "must be > 0");
  DSV3_RETURN_IF_ERROR(ValidateLimits(f, c));
  DSV3_RETURN_IF_ERROR(ValidateReals(f, c));
  if (c.bos_token_id >= c.vocab_size) return f.Error("bos_token_id", "is outside the vocabulary");
  for (int64_t e : c.eos_token_ids)
    if (e < 0 || e >= c.vocab_size) return f.Error("eos_token_id", "is outside the vocabulary");
  return Status::Ok();
}

}  // namespace

double YarnMscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

bool Config::IsMoeLayer(int64_t layer) const {
  return HasMoe() && layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
}

double Config::SoftmaxScale() const {
  double scale = 1.0 / std::sqrt(static_cast<double>(qk_head_dim()));
  if (rope_scaling && rope_scaling->mscale_all_dim != 0.0) {
    const double m = YarnMscale(rope_scaling->factor, rope_scaling->mscale_all_dim);
    scale *= m * m;
  }
  return scale;
}

double Config::RopeCosSinScale() const {
  if (!rope_scaling) return 1.0;
  return YarnMscale(rope_scaling->factor, rope_scaling->mscale) /
         YarnMscale(rope_scaling->factor, rope_scaling->mscale_all_dim);
}

std::vector<double> Config::RopeInvFreq() const {
  // theta^(-2i/dr), then YaRN's blend of interpolated (/factor) and original
  // frequencies over the correction range (SPEC.md, HF semantics).
  const int64_t dim = qk_rope_head_dim, half = dim / 2;
  std::vector<double> f(half);
  for (int64_t i = 0; i < half; ++i)
    f[i] = 1.0 / std::pow(rope_theta, static_cast<double>(2 * i) / static_cast<double>(dim));
  if (!rope_scaling) return f;
  const RopeScaling& s = *rope_scaling;
  const double two_ln_base = 2.0 * std::log(rope_theta);
  auto corr = [&](double rot) {
    return dim * std::log(s.original_max_position_embeddings / (rot * 2.0 * M_PI)) / two_ln_base;
  };
  const double lo = std::max(std::floor(corr(s.beta_fast)), 0.0);
  double hi = std::min(std::ceil(corr(s.beta_slow)), static_cast<double>(dim - 1));
  if (lo == hi) hi += 0.001;
  for (int64_t i = 0; i < half; ++i) {
    const double ramp = std::clamp((static_cast<double>(i) - lo) / (hi - lo), 0.0, 1.0);
    const double smooth = 1.0 - ramp;  // HF: inv_freq_mask = 1 - linear_ramp
    f[i] = f[i] / s.factor * (1.0 - smooth) + f[i] * smooth;
  }
  return f;
}

Expected<Config> ParseConfig(const std::string& text, const std::string& label) {
  DSV3_RETURN_IF_ERROR(CheckJsonDepth(text, label));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Error(label + ": not a JSON object");
  Config c;
  FieldReader f(j, label);
  DSV3_RETURN_IF_ERROR(f.String("model_type", c.model_type_name));
  if (c.model_type_name == "deepseek_v3" || c.model_type_name == "kimi_k2") {
    c.model_type = ModelType::kDeepseekV3;  // transformers DeepseekV3Config defaults
    c.topk_method = TopkMethod::kNoauxTc;
    c.scoring_func = ScoringFunc::kSigmoid;
    c.norm_topk_prob = true;
    c.routed_scaling_factor = 2.5;
    c.n_group = 8;
    c.topk_group = 4;
  } else if (c.model_type_name == "deepseek_v2") {
    c.model_type = ModelType::kDeepseekV2;  // DeepseekV2Config defaults
  } else {
    return f.Error("model_type", c.model_type_name.empty()
                                     ? "is missing"
                                     : "is '" + c.model_type_name + "'; supported: deepseek_v3, deepseek_v2");
  }
  DSV3_RETURN_IF_ERROR(f.Int("vocab_size", c.vocab_size, true));
  DSV3_RETURN_IF_ERROR(f.Int("hidden_size", c.hidden_size, true));
  DSV3_RETURN_IF_ERROR(f.Int("intermediate_size", c.intermediate_size, false));
  DSV3_RETURN_IF_ERROR(f.Int("num_hidden_layers", c.num_hidden_layers, true));
  DSV3_RETURN_IF_ERROR(f.Int("num_nextn_predict_layers", c.num_nextn_predict_layers, false, true));
  DSV3_RETURN_IF_ERROR(f.Int("num_attention_heads", c.num_attention_heads, true));
  c.num_key_value_heads = c.num_attention_heads;
  DSV3_RETURN_IF_ERROR(f.Int("num_key_value_heads", c.num_key_value_heads, false, true));
  DSV3_RETURN_IF_ERROR(f.Int("kv_lora_rank", c.kv_lora_rank, true));
  DSV3_RETURN_IF_ERROR(f.Int("q_lora_rank", c.q_lora_rank, false, true));
  DSV3_RETURN_IF_ERROR(f.Int("qk_rope_head_dim", c.qk_rope_head_dim, true));
  DSV3_RETURN_IF_ERROR(f.Int("qk_nope_head_dim", c.qk_nope_head_dim, true));
  DSV3_RETURN_IF_ERROR(f.Int("v_head_dim", c.v_head_dim, true));
  DSV3_RETURN_IF_ERROR(f.Int("max_position_embeddings", c.max_position_embeddings, false));
  DSV3_RETURN_IF_ERROR(f.Double("rms_norm_eps", c.rms_norm_eps));
  DSV3_RETURN_IF_ERROR(f.Double("rope_theta", c.rope_theta));
  DSV3_RETURN_IF_ERROR(f.Bool("tie_word_embeddings", c.tie_word_embeddings));
  DSV3_RETURN_IF_ERROR(f.Int("bos_token_id", c.bos_token_id, false, true));
  DSV3_RETURN_IF_ERROR(f.String("torch_dtype", c.torch_dtype));
  DSV3_RETURN_IF_ERROR(ParseEos(j, label, c));
  DSV3_RETURN_IF_ERROR(ParseMoeFields(j, f, c));
  DSV3_RETURN_IF_ERROR(ParseRopeScaling(j, label, c));
  DSV3_RETURN_IF_ERROR(ParseQuantization(j, label, c));
  std::string act = "silu";
  DSV3_RETURN_IF_ERROR(f.String("hidden_act", act));
  if (act != "silu") return f.Error("hidden_act", "is '" + act + "'; only silu is supported");
  bool attention_bias = false;
  DSV3_RETURN_IF_ERROR(f.Bool("attention_bias", attention_bias));
  if (attention_bias) return f.Error("attention_bias", "is true; DeepSeek attention has no bias");
  DSV3_RETURN_IF_ERROR(ValidateShapes(f, c));
  DSV3_RETURN_IF_ERROR(ValidateMoe(f, c));
  return c;
}

Status ValidateConfig(const Config& c, const std::string& label, FieldNamer namer) {
  const json empty = json::object();
  FieldReader f(empty, label, namer);
  DSV3_RETURN_IF_ERROR(ValidateShapes(f, c));
  return ValidateMoe(f, c);
}

Expected<Config> LoadConfig(const std::string& path) {
  std::filesystem::path p(path);
  if (std::filesystem::is_directory(p)) p /= "config.json";
  DSV3_ASSIGN_OR_RETURN(std::string text, ReadTextFile(p.string()));
  return ParseConfig(text, p.string());
}

}  // namespace dsv3
