// The architecture's tensor list (Hugging Face names); see weights.h.
#include "model/weights.h"

namespace dsv3 {

namespace {

void BindMlp(const std::string& p, int64_t d, int64_t inter, MlpWeights& m, TensorBinder& b) {
  b.Matrix(p + "gate_proj.weight", inter, d, TensorRole::kLinear, false, m.gate_proj);
  b.Matrix(p + "up_proj.weight", inter, d, TensorRole::kLinear, false, m.up_proj);
  b.Matrix(p + "down_proj.weight", d, inter, TensorRole::kLinear, false, m.down_proj);
}

void BindAttention(const Config& c, const std::string& p, AttentionWeights& a, TensorBinder& b) {
  const int64_t d = c.hidden_size, H = c.num_attention_heads;
  const int64_t q_out = H * c.qk_head_dim();
  if (c.q_lora_rank > 0) {
    b.Matrix(p + "q_a_proj.weight", c.q_lora_rank, d, TensorRole::kLinear, false, a.q_a_proj);
    b.Vector(p + "q_a_layernorm.weight", c.q_lora_rank, TensorRole::kNorm, a.q_a_layernorm);
    b.Matrix(p + "q_b_proj.weight", q_out, c.q_lora_rank, TensorRole::kLinear, false, a.q_b_proj);
  } else {
    b.Matrix(p + "q_proj.weight", q_out, d, TensorRole::kLinear, false, a.q_proj);
  }
  b.Matrix(p + "kv_a_proj_with_mqa.weight", c.kv_latent_dim(), d, TensorRole::kLinear, false,
           a.kv_a_proj_with_mqa);
  b.Vector(p + "kv_a_layernorm.weight", c.kv_lora_rank, TensorRole::kNorm, a.kv_a_layernorm);
  b.Matrix(p + "kv_b_proj.weight", H * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank,
           TensorRole::kLinear, false, a.kv_b_proj);
  b.Matrix(p + "o_proj.weight", d, H * c.v_head_dim, TensorRole::kLinear, false, a.o_proj);
}

void BindMoe(const Config& c, const std::string& p, MoeWeights& m, TensorBinder& b) {
  const int64_t d = c.hidden_size, E = c.n_routed_experts;
  b.Matrix(p + "gate.weight", E, d, TensorRole::kRouter, false, m.gate);
  if (c.topk_method == TopkMethod::kNoauxTc)
    b.Vector(p + "gate.e_score_correction_bias", E, TensorRole::kRouterBias, m.e_score_correction_bias);
  m.experts.resize(E);
  for (int64_t e = 0; e < E; ++e)
    BindMlp(p + "experts." + std::to_string(e) + ".", d, c.moe_intermediate_size, m.experts[e], b);
  if (c.n_shared_experts > 0)
    BindMlp(p + "shared_experts.", d, c.moe_intermediate_size * c.n_shared_experts, m.shared_experts, b);
}

void BindLayer(const Config& c, int64_t l, LayerWeights& lw, TensorBinder& b) {
  const std::string p = "model.layers." + std::to_string(l) + ".";
  const int64_t d = c.hidden_size;
  lw.is_mtp = l >= c.num_hidden_layers;
  lw.is_moe = c.IsMoeLayer(l);
  if (lw.is_mtp) {
    b.Matrix(p + "embed_tokens.weight", c.vocab_size, d, TensorRole::kEmbedding, true, lw.mtp.embed_tokens);
    b.Vector(p + "enorm.weight", d, TensorRole::kNorm, lw.mtp.enorm);
    b.Vector(p + "hnorm.weight", d, TensorRole::kNorm, lw.mtp.hnorm);
    b.Matrix(p + "eh_proj.weight", d, 2 * d, TensorRole::kLinear, false, lw.mtp.eh_proj);
  }
  b.Vector(p + "input_layernorm.weight", d, TensorRole::kNorm, lw.input_layernorm);
  BindAttention(c, p + "self_attn.", lw.attn, b);
  b.Vector(p + "post_attention_layernorm.weight", d, TensorRole::kNorm, lw.post_attention_layernorm);
  if (lw.is_moe) {
    BindMoe(c, p + "mlp.", lw.moe, b);
  } else {
    BindMlp(p + "mlp.", d, c.intermediate_size, lw.mlp, b);
  }
  if (lw.is_mtp) {
    b.Vector(p + "shared_head.norm.weight", d, TensorRole::kNorm, lw.mtp.shared_head_norm);
    b.Matrix(p + "shared_head.head.weight", c.vocab_size, d, TensorRole::kHead, true, lw.mtp.shared_head_head);
  }
}

}  // namespace

void BindWeights(const Config& c, ModelWeights& w, TensorBinder& b) {
  b.Matrix("model.embed_tokens.weight", c.vocab_size, c.hidden_size, TensorRole::kEmbedding, false,
           w.embed_tokens);
  w.layers.resize(c.num_layers_with_mtp());
  for (int64_t l = 0; l < c.num_layers_with_mtp(); ++l) BindLayer(c, l, w.layers[l], b);
  b.Vector("model.norm.weight", c.hidden_size, TensorRole::kNorm, w.norm);
  if (!c.tie_word_embeddings)
    b.Matrix("lm_head.weight", c.vocab_size, c.hidden_size, TensorRole::kHead, false, w.lm_head);
}

std::vector<TensorDesc> ListTensors(const Config& config) {
  class Lister : public TensorBinder {
   public:
    std::vector<TensorDesc> out;
    void Matrix(const std::string& name, int64_t rows, int64_t cols, TensorRole role, bool optional,
                Weight&) override {
      out.push_back({name, {rows, cols}, role, optional});
    }
    void Vector(const std::string& name, int64_t n, TensorRole role, std::vector<float>&) override {
      out.push_back({name, {n}, role, false});
    }
  } lister;
  ModelWeights scratch;
  BindWeights(config, scratch, lister);
  return std::move(lister.out);
}

}  // namespace dsv3
