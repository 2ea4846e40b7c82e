// Typed weights of a DeepSeek-V3/V2 model, one struct per block, pointing at
// the checkpoint's bytes in their stored format. BindWeights() is the single
// list of every tensor the architecture has (name, shape, role); the loader,
// the checkpoint writers and the tensor listing all go through it, so they
// cannot disagree about names or shapes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/config.h"
#include "ops/weight.h"

namespace dsv3 {

// What a tensor is, for loaders and converters that treat kinds differently
// (e.g. only kLinear is stored in FP8 by the release).
enum class TensorRole { kEmbedding, kHead, kNorm, kLinear, kRouter, kRouterBias };

struct MlpWeights {  // SwiGLU: down(silu(gate x) * up x)
  Weight gate_proj, up_proj, down_proj;
};

struct AttentionWeights {
  Weight q_proj;                // [H*(dn+dr), d] when q_lora_rank == 0
  Weight q_a_proj;              // [rq, d]
  std::vector<float> q_a_layernorm;  // [rq]
  Weight q_b_proj;              // [H*(dn+dr), rq]
  Weight kv_a_proj_with_mqa;    // [rc+dr, d]
  std::vector<float> kv_a_layernorm;  // [rc]
  Weight kv_b_proj;             // [H*(dn+dv), rc]
  Weight o_proj;                // [d, H*dv]
  // Derived at load, not a checkpoint tensor: W_uk of every head transposed,
  // [H*rc, dn], so the absorbed query q_lat = W_uk^T q_nope is a plain product.
  // A GGUF file's attn_k_b is this matrix as stored (bound, not derived).
  Weight w_uk_t;
  // W_uv of every head [H*dv, rc] where the file stores it apart (GGUF
  // attn_v_b); empty: the dv rows after each head's dn rows of kv_b_proj.
  Weight w_uv;
  // Head h's W_uv [dv, rc] for the absorbed output o[h] = W_uv[h] o_lat[h].
  Weight UvHead(int64_t h, int64_t dn, int64_t dv) const {
    return w_uv.empty() ? kv_b_proj.Rows(h * (dn + dv) + dn, dv) : w_uv.Rows(h * dv, dv);
  }
};

struct MoeWeights {
  Weight gate;                          // router [E, d]
  std::vector<float> e_score_correction_bias;  // [E], empty when absent
  std::vector<MlpWeights> experts;      // E routed experts
  MlpWeights shared_experts;            // width moe_inter * n_shared; empty when none
  bool has_shared() const { return !shared_experts.gate_proj.empty(); }
};

struct MtpWeights {  // extra tensors of a Multi-Token-Prediction layer
  std::vector<float> enorm, hnorm;      // [d]
  Weight eh_proj;                       // [d, 2d]: [enorm(embed) ; hnorm(h)]
  std::vector<float> shared_head_norm;  // [d]
  Weight embed_tokens;                  // [V, d] copy of the main embedding (may be absent)
  Weight shared_head_head;              // [V, d] copy of the main head (may be absent)
};

struct LayerWeights {
  std::vector<float> input_layernorm, post_attention_layernorm;  // [d]
  AttentionWeights attn;
  bool is_moe = false;
  MlpWeights mlp;  // dense layers
  MoeWeights moe;  // MoE layers
  bool is_mtp = false;
  MtpWeights mtp;
};

struct ModelWeights {
  Weight embed_tokens;            // [V, d]
  std::vector<LayerWeights> layers;  // num_hidden_layers main layers, then MTP layers
  std::vector<float> norm;        // [d]
  Weight lm_head;                 // [V, d]
};

// Receives every tensor of the architecture in a fixed order. `matrix` is
// filled for 2-D weights, `vector` for 1-D float parameters. `optional`
// tensors (MTP copies of embed/head) may be left empty by a loader.
class TensorBinder {
 public:
  virtual ~TensorBinder() = default;
  virtual void Matrix(const std::string& name, int64_t rows, int64_t cols, TensorRole role, bool optional,
                      Weight& out) = 0;
  virtual void Vector(const std::string& name, int64_t n, TensorRole role, std::vector<float>& out) = 0;
};

// Walks every tensor of `config`, sizing `w` and calling the binder.
void BindWeights(const Config& config, ModelWeights& w, TensorBinder& binder);

// Name, shape and role of every tensor (via BindWeights), e.g. for writers.
struct TensorDesc {
  std::string name;
  std::vector<int64_t> shape;
  TensorRole role;
  bool optional = false;
};
std::vector<TensorDesc> ListTensors(const Config& config);

}  // namespace dsv3
