// Hugging Face <-> llama.cpp "deepseek2" names and metadata; see gguf_model.h.
#include "model/gguf_model.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>

namespace dsv3 {

namespace {

struct NamePair {
  const char* hf;
  const char* gguf;
};

// Per-layer tensors, relative to "model.layers.N." / "blk.N.".
constexpr NamePair kLayerNames[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.q_a_proj.weight", "attn_q_a.weight"},
    {"self_attn.q_a_layernorm.weight", "attn_q_a_norm.weight"},
    {"self_attn.q_b_proj.weight", "attn_q_b.weight"},
    {"self_attn.kv_a_proj_with_mqa.weight", "attn_kv_a_mqa.weight"},
    {"self_attn.kv_a_layernorm.weight", "attn_kv_a_norm.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
    {"mlp.gate.weight", "ffn_gate_inp.weight"},
    {"mlp.gate.e_score_correction_bias", "exp_probs_b.bias"},
    {"mlp.shared_experts.gate_proj.weight", "ffn_gate_shexp.weight"},
    {"mlp.shared_experts.up_proj.weight", "ffn_up_shexp.weight"},
    {"mlp.shared_experts.down_proj.weight", "ffn_down_shexp.weight"},
    // MTP extras, under the names llama.cpp uses for MTP ("nextn") layers.
    {"embed_tokens.weight", "nextn.embed_tokens.weight"},
    {"enorm.weight", "nextn.enorm.weight"},
    {"hnorm.weight", "nextn.hnorm.weight"},
    {"eh_proj.weight", "nextn.eh_proj.weight"},
    {"shared_head.norm.weight", "nextn.shared_head_norm.weight"},
    {"shared_head.head.weight", "nextn.shared_head_head.weight"},
};

constexpr NamePair kExpertNames[] = {
    {"gate_proj.weight", "ffn_gate_exps.weight"},
    {"up_proj.weight", "ffn_up_exps.weight"},
    {"down_proj.weight", "ffn_down_exps.weight"},
};

// Parses a non-negative decimal; -1 when `s` is not one.
int64_t ParseIndex(const std::string& s) {
  if (s.empty() || s.size() > 9) return -1;
  for (char ch : s)
    if (ch < '0' || ch > '9') return -1;
  return std::atoll(s.c_str());
}

std::string Key(const char* suffix) { return std::string(kGgufArch) + "." + suffix; }

}  // namespace

bool IsGgufPath(const std::string& path) {
  std::error_code ec;
  return path.size() > 5 && path.compare(path.size() - 5, 5, ".gguf") == 0 && !std::filesystem::is_directory(path, ec);
}

std::string GgufKbName(int64_t layer) { return "blk." + std::to_string(layer) + ".attn_k_b.weight"; }
std::string GgufVbName(int64_t layer) { return "blk." + std::to_string(layer) + ".attn_v_b.weight"; }

GgufTarget MapTensorToGguf(const std::string& n, const Config& c) {
  GgufTarget t;
  auto plain = [&](std::string name) {
    t.kind = GgufTarget::Kind::kPlain;
    t.name = std::move(name);
    return t;
  };
  if (n == "model.embed_tokens.weight") return plain("token_embd.weight");
  if (n == "model.norm.weight") return plain("output_norm.weight");
  if (n == "lm_head.weight") return plain("output.weight");
  const std::string pre = "model.layers.";
  if (n.rfind(pre, 0) != 0) return t;
  const size_t dot = n.find('.', pre.size());
  if (dot == std::string::npos) return t;
  t.layer = ParseIndex(n.substr(pre.size(), dot - pre.size()));
  if (t.layer < 0) return t;
  const std::string rest = n.substr(dot + 1), blk = "blk." + std::to_string(t.layer) + ".";
  if (rest == "self_attn.kv_b_proj.weight") {
    t.kind = GgufTarget::Kind::kKvB;
    t.name = blk + "attn_kv_b.weight";
    return t;
  }
  const std::string experts = "mlp.experts.";
  if (rest.rfind(experts, 0) == 0) {
    const size_t edot = rest.find('.', experts.size());
    if (edot == std::string::npos) return t;
    const int64_t e = ParseIndex(rest.substr(experts.size(), edot - experts.size()));
    for (const auto& p : kExpertNames)
      if (e >= 0 && rest.substr(edot + 1) == p.hf) {
        t.kind = GgufTarget::Kind::kExpertSlice;
        t.name = blk + p.gguf;
        t.expert = e;
        return t;
      }
    return t;
  }
  const bool mtp_only = rest.find("embed_tokens") == 0 || rest.find("enorm") == 0 || rest.find("hnorm") == 0 ||
                        rest.find("eh_proj") == 0 || rest.find("shared_head") == 0;
  if (mtp_only && t.layer < c.num_hidden_layers) return t;
  for (const auto& p : kLayerNames)
    if (rest == p.hf) return plain(blk + p.gguf);
  return t;
}

std::vector<std::pair<std::string, GgufValue>> GgufMetadataFromConfig(const Config& c, const GgufExportInfo& info,
                                                                      std::vector<std::string>* warnings) {
  using V = GgufValue;
  auto u32 = [](int64_t v) { return V::U32(static_cast<uint32_t>(v)); };
  auto f32 = [](double v) { return V::F32(static_cast<float>(v)); };
  const int64_t mtp = info.with_mtp ? c.num_nextn_predict_layers : 0;
  std::vector<std::pair<std::string, GgufValue>> kv = {
      {"general.architecture", V::Str(kGgufArch)},
      {"general.type", V::Str("model")},
      {"general.name", V::Str(info.name)},
      {Key("block_count"), u32(c.num_hidden_layers + mtp)},
      {Key("context_length"), u32(c.max_position_embeddings)},
      {Key("embedding_length"), u32(c.hidden_size)},
      {Key("feed_forward_length"), u32(c.intermediate_size)},
      {Key("attention.head_count"), u32(c.num_attention_heads)},
      {Key("attention.head_count_kv"), u32(1)},  // MLA runs as MQA over the latent
      {Key("rope.freq_base"), f32(c.rope_theta)},
      {Key("attention.layer_norm_rms_epsilon"), f32(c.rms_norm_eps)},
  };
  if (c.HasMoe()) {
    kv.push_back({Key("expert_used_count"), u32(c.num_experts_per_tok)});
    kv.push_back({Key("expert_group_count"), u32(c.n_group)});
    kv.push_back({Key("expert_group_used_count"), u32(c.topk_group)});
    kv.push_back({Key("expert_gating_func"), u32(c.scoring_func == ScoringFunc::kSigmoid ? 2 : 1)});
  }
  kv.push_back({"general.file_type", u32(info.file_type)});
  kv.push_back({Key("leading_dense_block_count"), u32(c.HasMoe() ? c.first_k_dense_replace : c.num_hidden_layers)});
  kv.push_back({Key("vocab_size"), u32(c.vocab_size)});
  if (c.q_lora_rank > 0) kv.push_back({Key("attention.q_lora_rank"), u32(c.q_lora_rank)});
  kv.push_back({Key("attention.kv_lora_rank"), u32(c.kv_lora_rank)});
  kv.push_back({Key("attention.key_length"), u32(c.kv_lora_rank + c.qk_rope_head_dim)});
  kv.push_back({Key("attention.value_length"), u32(c.kv_lora_rank)});
  kv.push_back({Key("attention.key_length_mla"), u32(c.qk_head_dim())});
  kv.push_back({Key("attention.value_length_mla"), u32(c.v_head_dim)});
  kv.push_back({Key("expert_feed_forward_length"), u32(c.HasMoe() ? c.moe_intermediate_size : c.intermediate_size)});
  if (c.HasMoe()) kv.push_back({Key("expert_count"), u32(c.n_routed_experts)});
  kv.push_back({Key("expert_shared_count"), u32(c.n_shared_experts)});
  kv.push_back({Key("expert_weights_scale"), f32(c.routed_scaling_factor)});
  if (c.norm_topk_prob) kv.push_back({Key("expert_weights_norm"), V::Bool(true)});
  kv.push_back({Key("rope.dimension_count"), u32(c.qk_rope_head_dim)});
  if (c.rope_scaling) {
    const RopeScaling& r = *c.rope_scaling;
    kv.push_back({Key("rope.scaling.type"), V::Str("yarn")});
    kv.push_back({Key("rope.scaling.factor"), f32(r.factor)});
    kv.push_back({Key("rope.scaling.original_context_length"), u32(r.original_max_position_embeddings)});
    kv.push_back({Key("rope.scaling.yarn_beta_fast"), f32(r.beta_fast)});
    kv.push_back({Key("rope.scaling.yarn_beta_slow"), f32(r.beta_slow)});
    // llama.cpp's deepseek2 convention: 0.1 * mscale_all_dim (it divides by 0.1 again).
    kv.push_back({Key("rope.scaling.yarn_log_multiplier"), f32(0.1 * r.mscale_all_dim)});
    if (r.mscale != r.mscale_all_dim) {
      // llama.cpp assumes mscale == mscale_all_dim; keep the true value for dsv3.
      kv.push_back({"dsv3.rope.scaling.mscale", V::F32(static_cast<float>(r.mscale))});
      if (warnings)
        warnings->push_back("rope_scaling.mscale (" + std::to_string(r.mscale) + ") != mscale_all_dim (" +
                            std::to_string(r.mscale_all_dim) + "): llama.cpp will assume they are equal");
    }
  }
  if (mtp > 0) kv.push_back({Key("nextn_predict_layers"), u32(mtp)});
  if (c.topk_method == TopkMethod::kGroupLimitedGreedy && c.n_group <= 1 && warnings)
    warnings->push_back("topk_method group_limited_greedy with one group is stored as greedy");
  kv.push_back({"general.quantization_version", u32(2)});
  return kv;
}

namespace {

// Typed metadata lookups whose errors name the file and key.
class MetaReader {
 public:
  explicit MetaReader(const GgufFile& f) : f_(f) {}
  Status Int(const char* suffix, int64_t& out, bool required) {
    const std::string key = Key(suffix);
    const GgufValue* v = f_.Find(key);
    if (!v) return required ? Status::Error(f_.path() + ": metadata key '" + key + "' is missing") : Status::Ok();
    if (!v->is_integer()) return Status::Error(f_.path() + ": metadata key '" + key + "' must be an integer");
    out = v->AsInt();
    return Status::Ok();
  }
  Status Double(const char* suffix, double& out) {
    const std::string key = Key(suffix);
    const GgufValue* v = f_.Find(key);
    if (!v) return Status::Ok();
    if (!v->is_number()) return Status::Error(f_.path() + ": metadata key '" + key + "' must be a number");
    out = v->AsDouble();
    return Status::Ok();
  }
  const GgufValue* Raw(const std::string& key) const { return f_.Find(key); }

 private:
  const GgufFile& f_;
};

Status ReadAttention(MetaReader& m, Config& c) {
  DSV3_RETURN_IF_ERROR(m.Int("attention.head_count", c.num_attention_heads, true));
  c.num_key_value_heads = c.num_attention_heads;
  DSV3_RETURN_IF_ERROR(m.Int("attention.q_lora_rank", c.q_lora_rank, false));
  DSV3_RETURN_IF_ERROR(m.Int("attention.kv_lora_rank", c.kv_lora_rank, true));
  DSV3_RETURN_IF_ERROR(m.Int("rope.dimension_count", c.qk_rope_head_dim, true));
  int64_t k_mla = 0, v_mla = 0, k_len = 0, v_len = 0;
  DSV3_RETURN_IF_ERROR(m.Int("attention.key_length_mla", k_mla, false));
  DSV3_RETURN_IF_ERROR(m.Int("attention.value_length_mla", v_mla, false));
  if (k_mla == 0) {  // files before the MLA keys stored the per-head sizes here
    DSV3_RETURN_IF_ERROR(m.Int("attention.key_length", k_len, true));
    DSV3_RETURN_IF_ERROR(m.Int("attention.value_length", v_len, true));
    k_mla = k_len, v_mla = v_len;
  }
  c.qk_nope_head_dim = k_mla - c.qk_rope_head_dim;
  c.v_head_dim = v_mla;
  return Status::Ok();
}

Status ReadMoe(const GgufFile& f, MetaReader& m, Config& c) {
  DSV3_RETURN_IF_ERROR(m.Int("expert_count", c.n_routed_experts, false));
  if (c.n_routed_experts == 0) return Status::Ok();
  DSV3_RETURN_IF_ERROR(m.Int("expert_used_count", c.num_experts_per_tok, true));
  DSV3_RETURN_IF_ERROR(m.Int("expert_shared_count", c.n_shared_experts, false));
  DSV3_RETURN_IF_ERROR(m.Int("expert_feed_forward_length", c.moe_intermediate_size, true));
  DSV3_RETURN_IF_ERROR(m.Int("leading_dense_block_count", c.first_k_dense_replace, false));
  c.routed_scaling_factor = 1.0;
  DSV3_RETURN_IF_ERROR(m.Double("expert_weights_scale", c.routed_scaling_factor));
  const GgufValue* norm = m.Raw(Key("expert_weights_norm"));
  c.norm_topk_prob = norm && norm->AsInt() != 0;
  int64_t gating = 1;  // llama.cpp's default for files without the key: softmax
  DSV3_RETURN_IF_ERROR(m.Int("expert_gating_func", gating, false));
  if (gating != 1 && gating != 2)
    return Status::Error(f.path() + ": metadata key '" + Key("expert_gating_func") + "' is " + std::to_string(gating) +
                         "; expected 1 (softmax) or 2 (sigmoid)");
  c.scoring_func = gating == 2 ? ScoringFunc::kSigmoid : ScoringFunc::kSoftmax;
  c.n_group = 1;
  DSV3_RETURN_IF_ERROR(m.Int("expert_group_count", c.n_group, false));
  if (c.n_group <= 0) c.n_group = 1;
  c.topk_group = c.n_group;
  DSV3_RETURN_IF_ERROR(m.Int("expert_group_used_count", c.topk_group, false));
  // llama.cpp infers the router from the tensors: a score-correction bias
  // means DeepSeek-V3's noaux_tc; otherwise grouped or plain greedy top-k.
  const bool bias = f.FindTensor("blk." + std::to_string(c.first_k_dense_replace) + ".exp_probs_b.bias") != nullptr;
  c.topk_method = bias ? TopkMethod::kNoauxTc : c.n_group > 1 ? TopkMethod::kGroupLimitedGreedy : TopkMethod::kGreedy;
  return Status::Ok();
}

Status ReadRope(MetaReader& m, Config& c) {
  c.rope_theta = 10000.0;
  DSV3_RETURN_IF_ERROR(m.Double("rope.freq_base", c.rope_theta));
  const GgufValue* type = m.Raw(Key("rope.scaling.type"));
  if (!type || type->s == "none") return Status::Ok();
  if (type->s != "yarn")
    return Status::Error("metadata key '" + Key("rope.scaling.type") + "' is '" + type->s + "'; only yarn is supported");
  RopeScaling r;
  DSV3_RETURN_IF_ERROR(m.Double("rope.scaling.factor", r.factor));
  DSV3_RETURN_IF_ERROR(m.Int("rope.scaling.original_context_length", r.original_max_position_embeddings, true));
  DSV3_RETURN_IF_ERROR(m.Double("rope.scaling.yarn_beta_fast", r.beta_fast));
  DSV3_RETURN_IF_ERROR(m.Double("rope.scaling.yarn_beta_slow", r.beta_slow));
  double log_mul = 0.0;
  DSV3_RETURN_IF_ERROR(m.Double("rope.scaling.yarn_log_multiplier", log_mul));
  // Undo llama.cpp's 0.1 factor in float32 as it does, then round to float so
  // 0.0707f / 0.1f gives back 0.707f's value.
  r.mscale_all_dim = static_cast<float>(static_cast<float>(log_mul) / 0.1f);
  r.mscale = r.mscale_all_dim;  // llama.cpp's semantics
  if (const GgufValue* ms = m.Raw("dsv3.rope.scaling.mscale")) r.mscale = static_cast<float>(ms->AsDouble());
  c.rope_scaling = r;
  return Status::Ok();
}

// The GGUF key a Config field was read from, for validation errors.
std::string GgufFieldName(const std::string& field) {
  static const NamePair kKeys[] = {
      {"vocab_size", "vocab_size"}, {"hidden_size", "embedding_length"},
      {"intermediate_size", "feed_forward_length"}, {"moe_intermediate_size", "expert_feed_forward_length"},
      {"num_hidden_layers", "block_count"}, {"num_nextn_predict_layers", "nextn_predict_layers"},
      {"num_attention_heads", "attention.head_count"}, {"n_shared_experts", "expert_shared_count"},
      {"n_routed_experts", "expert_count"}, {"routed_scaling_factor", "expert_weights_scale"},
      {"kv_lora_rank", "attention.kv_lora_rank"}, {"q_lora_rank", "attention.q_lora_rank"},
      {"qk_rope_head_dim", "rope.dimension_count"}, {"v_head_dim", "attention.value_length_mla"},
      {"qk_nope_head_dim", "attention.key_length_mla"}, {"n_group", "expert_group_count"},
      {"topk_group", "expert_group_used_count"}, {"num_experts_per_tok", "expert_used_count"},
      {"first_k_dense_replace", "leading_dense_block_count"}, {"max_position_embeddings", "context_length"},
      {"rms_norm_eps", "attention.layer_norm_rms_epsilon"}, {"rope_theta", "rope.freq_base"},
      {"rope_scaling.factor", "rope.scaling.factor"},
      {"rope_scaling.original_max_position_embeddings", "rope.scaling.original_context_length"},
      {"rope_scaling.beta_fast", "rope.scaling.yarn_beta_fast"},
      {"rope_scaling.beta_slow", "rope.scaling.yarn_beta_slow"},
      {"rope_scaling.mscale_all_dim", "rope.scaling.yarn_log_multiplier"}};
  if (field == "bos_token_id" || field == "eos_token_id") return "metadata key 'tokenizer.ggml." + field + "'";
  if (field == "rope_scaling.mscale") return "metadata key 'dsv3.rope.scaling.mscale'";
  std::string note;
  if (field == "qk_nope_head_dim") note = " (less '" + Key("rope.dimension_count") + "')";
  if (field == "num_hidden_layers") note = " (less '" + Key("nextn_predict_layers") + "')";
  for (const auto& k : kKeys)
    if (field == k.hf) return "metadata key '" + Key(k.gguf) + "'" + note;
  return "the value derived for '" + field + "'";  // topk_method, moe_layer_freq: not stored as keys
}

}  // namespace

Expected<Config> ConfigFromGguf(const GgufFile& f) {
  const GgufValue* arch = f.Find("general.architecture");
  if (!arch || arch->type != GgufType::kString)
    return Status::Error(f.path() + ": metadata key 'general.architecture' is missing");
  if (arch->s != kGgufArch)
    return Status::Error(f.path() + ": architecture is '" + arch->s + "'; dsv3 reads '" + kGgufArch +
                         "' (DeepSeek-V2/V3) GGUF files");
  Config c;
  MetaReader m(f);
  int64_t blocks = 0, nextn = 0;
  DSV3_RETURN_IF_ERROR(m.Int("block_count", blocks, true));
  DSV3_RETURN_IF_ERROR(m.Int("nextn_predict_layers", nextn, false));
  c.num_hidden_layers = blocks - nextn;
  c.num_nextn_predict_layers = nextn;
  DSV3_RETURN_IF_ERROR(m.Int("embedding_length", c.hidden_size, true));
  DSV3_RETURN_IF_ERROR(m.Int("feed_forward_length", c.intermediate_size, false));
  DSV3_RETURN_IF_ERROR(m.Int("context_length", c.max_position_embeddings, false));
  DSV3_RETURN_IF_ERROR(m.Int("vocab_size", c.vocab_size, false));
  const GgufTensorInfo* embd = f.FindTensor("token_embd.weight");
  if (c.vocab_size == 0 && embd && embd->ne.size() == 2) c.vocab_size = embd->ne[1];
  c.rms_norm_eps = 1e-6;
  DSV3_RETURN_IF_ERROR(m.Double("attention.layer_norm_rms_epsilon", c.rms_norm_eps));
  DSV3_RETURN_IF_ERROR(ReadAttention(m, c));
  DSV3_RETURN_IF_ERROR(ReadMoe(f, m, c));
  DSV3_RETURN_IF_ERROR(ReadRope(m, c).WithContext(f.path()));
  c.moe_layer_freq = 1;
  const bool v3 = c.topk_method == TopkMethod::kNoauxTc;
  c.model_type = v3 ? ModelType::kDeepseekV3 : ModelType::kDeepseekV2;
  c.model_type_name = v3 ? "deepseek_v3" : "deepseek_v2";
  c.tie_word_embeddings = f.FindTensor("output.weight") == nullptr;
  if (const GgufValue* bos = f.Find("tokenizer.ggml.bos_token_id"); bos && bos->is_integer()) c.bos_token_id = bos->AsInt();
  if (const GgufValue* eos = f.Find("tokenizer.ggml.eos_token_id"); eos && eos->is_integer())
    c.eos_token_ids.push_back(eos->AsInt());
  c.torch_dtype = "";
  DSV3_RETURN_IF_ERROR(ValidateConfig(c, f.path(), GgufFieldName));
  return c;
}

}  // namespace dsv3
