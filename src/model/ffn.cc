// Feed-forward blocks: the dense SwiGLU MLP and DeepSeekMoE (shared experts
// plus routed experts chosen per token). Routed experts run once per forward
// over all the tokens that chose them, so each expert's weights are read once
// per batch, not once per token.
#include <algorithm>

#include "core/parallel.h"
#include "model/model.h"
#include "ops/ops.h"

namespace dsv3 {

// out [n, d] = down(silu(gate x) * up x), x [n, d], hidden width `width`.
void Model::Mlp(const MlpWeights& w, int64_t width, const float* x, float* out, int64_t n, Workspace& ws) const {
  ops::MatMul(w.gate_proj, x, ws.ffn_gate.data(), n);  // [n, width]
  ops::MatMul(w.up_proj, x, ws.ffn_up.data(), n);      // [n, width]
  ops::SiluMul(ws.ffn_gate.data(), ws.ffn_up.data(), n, width);
  ops::MatMul(w.down_proj, ws.ffn_gate.data(), out, n);
}

void Model::RouteTokens(const MoeWeights& w, int64_t n, Workspace& ws) const {
  const int64_t E = router_.num_experts, K = router_.top_k;
  ops::MatMul(w.gate, ws.x.data(), ws.router_logits.data(), n);  // [n, E] in float32
  const float* bias = w.e_score_correction_bias.empty() ? nullptr : w.e_score_correction_bias.data();
  ParallelFor(n, 8, [&](int64_t i0, int64_t i1) {
    float* scratch = ws.router_scratch.data() + omp_get_thread_num() * router_.scratch_size();
    for (int64_t i = i0; i < i1; ++i)
      RouteToken(router_, ws.router_logits.data() + i * E, bias, scratch, ws.expert_ids.data() + i * K,
                 ws.expert_weights.data() + i * K);
  });
}

void Model::Moe(const MoeWeights& w, const Batch& b, Workspace& ws) const {
  const int64_t n = b.size(), d = config_.hidden_size, E = router_.num_experts, K = router_.top_k;
  const int64_t inter = config_.moe_intermediate_size;
  RouteTokens(w, n, ws);
  // Group (token, k) assignments by expert: offsets into expert_tokens.
  std::fill(ws.expert_count.begin(), ws.expert_count.begin() + E, 0);
  for (int64_t a = 0; a < n * K; ++a) ++ws.expert_count[ws.expert_ids[a]];
  ws.expert_offset[0] = 0;
  for (int64_t e = 0; e < E; ++e) ws.expert_offset[e + 1] = ws.expert_offset[e] + ws.expert_count[e];
  std::fill(ws.expert_count.begin(), ws.expert_count.begin() + E, 0);
  for (int64_t a = 0; a < n * K; ++a) {
    const int32_t e = ws.expert_ids[a];
    const int64_t slot = ws.expert_offset[e] + ws.expert_count[e]++;
    ws.expert_tokens[slot] = static_cast<int32_t>(a / K);
    ws.expert_slot_weight[slot] = ws.expert_weights[a];
    std::copy_n(ws.x.data() + (a / K) * d, d, ws.gathered.data() + slot * d);
  }
  for (int64_t e = 0; e < E; ++e) {
    const int64_t count = ws.expert_offset[e + 1] - ws.expert_offset[e];
    if (count == 0) continue;
    const int64_t first = ws.expert_offset[e];
    Mlp(w.experts[e], inter, ws.gathered.data() + first * d, ws.gathered_out.data() + first * d, count, ws);
  }
  // proj = sum of weighted expert outputs, added in expert order (as the
  // reference does), then + SwiGLU_shared(x).
  std::fill(ws.proj.begin(), ws.proj.begin() + n * d, 0.0f);
  for (int64_t slot = 0; slot < n * K; ++slot) {
    float* dst = ws.proj.data() + ws.expert_tokens[slot] * d;
    ops::Axpy(ws.expert_slot_weight[slot], ws.gathered_out.data() + slot * d, dst, d);
  }
  if (w.has_shared()) {
    float* shared = ws.gathered_out.data();  // free again: [n, d]
    Mlp(w.shared_experts, inter * config_.n_shared_experts, ws.x.data(), shared, n, ws);
    for (int64_t i = 0; i < n * d; ++i) ws.proj[i] += shared[i];
  }
}

}  // namespace dsv3
