// Parameter and cache arithmetic over the tensor list; see stats.h.
#include "model/stats.h"

#include "model/weights.h"

namespace dsv3 {

namespace {
// Layer index of "model.layers.N.*", or -1.
int64_t LayerOf(const std::string& name) {
  const std::string prefix = "model.layers.";
  if (name.rfind(prefix, 0) != 0) return -1;
  return std::stoll(name.substr(prefix.size()));
}
}  // namespace

ModelStats ComputeStats(const Config& c) {
  ModelStats s;
  int64_t mtp_routed = 0;
  for (const TensorDesc& t : ListTensors(c)) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    const int64_t layer = LayerOf(t.name);
    const bool routed = t.name.find(".mlp.experts.") != std::string::npos;
    const int64_t active = routed ? 0 : n;  // routed experts are added below, K of E
    if (layer >= c.num_hidden_layers) {  // MTP layer; its embed/head copies are shared
      if (t.role == TensorRole::kEmbedding || t.role == TensorRole::kHead) continue;
      s.mtp_params += n;
      s.mtp_active_params += active;
      if (routed) mtp_routed += n;
      continue;
    }
    s.main_params += n;
    s.active_params += active;
    if (routed) s.routed_expert_params += n;
    if (t.role == TensorRole::kEmbedding) s.embedding_params += n;
    if (t.role == TensorRole::kHead) s.head_params += n;
  }
  if (c.HasMoe()) {  // each layer's experts are equal-sized: K/E of them run per token
    s.active_params += s.routed_expert_params / c.n_routed_experts * c.num_experts_per_tok;
    s.mtp_active_params += mtp_routed / c.n_routed_experts * c.num_experts_per_tok;
  }
  s.kv_elements_per_token = c.num_hidden_layers * c.kv_latent_dim();
  s.kv_elements_per_token_mtp = c.num_nextn_predict_layers * c.kv_latent_dim();
  return s;
}

}  // namespace dsv3
