// Dims and RoPE tables of a training run; see context.h.
#include "train/context.h"

#include <algorithm>
#include <cmath>

#include "model/rope.h"

namespace dsv3::train {

Dims Dims::From(const Config& c, int64_t batch, int64_t seq) {
  Dims m;
  m.B = batch, m.T = seq, m.n = batch * seq;
  m.d = c.hidden_size, m.V = c.vocab_size, m.H = c.num_attention_heads;
  m.dn = c.qk_nope_head_dim, m.dr = c.qk_rope_head_dim, m.dv = c.v_head_dim, m.dq = c.qk_head_dim();
  m.rc = c.kv_lora_rank, m.rq = c.q_lora_rank, m.lat = c.kv_latent_dim();
  m.E = c.n_routed_experts, m.K = c.num_experts_per_tok;
  m.F = c.intermediate_size, m.Fe = c.moe_intermediate_size;
  m.Fs = c.moe_intermediate_size * c.n_shared_experts;
  m.eps = static_cast<float>(c.rms_norm_eps);
  m.softmax_scale = static_cast<float>(c.SoftmaxScale());
  return m;
}

void TrainContext::Init(const Config& c, int64_t batch, int64_t seq, Precision p, LinearOps* linear) {
  config = &c;
  dims = Dims::From(c, batch, seq);
  precision = p;
  lin = linear;
  const RopeTable rope(c);  // the inference model's own tables
  const int64_t half = dims.dr / 2;
  rope_cos.resize(seq * half), rope_sin.resize(seq * half);
  for (int64_t pos = 0; pos < seq; ++pos) rope.Fill(pos, &rope_cos[pos * half], &rope_sin[pos * half]);
}

}  // namespace dsv3::train
