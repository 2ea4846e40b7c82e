// The decoder stack: embedding, L pre-norm blocks (MLA, then dense SwiGLU or
// MoE), final norm and head (DESIGN.md §3).
#include <algorithm>
#include <cmath>

#include "core/parallel.h"
#include "model/model.h"
#include "ops/ops.h"

namespace dsv3 {

Status Model::ValidateBatch(const Batch& b, const KvCache& cache, int stack, Workspace& ws) const {
  const int64_t n = b.size();
  if (n == 0) return Status::Error("empty batch");
  if (static_cast<int64_t>(b.positions.size()) != n || static_cast<int64_t>(b.slots.size()) != n)
    return Status::Error("batch tokens, positions and slots differ in length");
  std::vector<int64_t>& next = ws.slot_next;  // expected next position per slot
  next.assign(cache.num_slots(), -1);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t tok = b.tokens[i], pos = b.positions[i], slot = b.slots[i];
    if (tok < 0 || tok >= config_.vocab_size)
      return Status::Error("token id " + std::to_string(tok) + " is out of range [0, " +
                           std::to_string(config_.vocab_size) + ")");
    if (slot < 0 || slot >= cache.num_slots()) return Status::Error("cache slot " + std::to_string(slot) + " out of range");
    if (pos < 0 || pos >= cache.capacity())
      return Status::Error("position " + std::to_string(pos) + " exceeds the cache capacity " +
                           std::to_string(cache.capacity()));
    const int64_t have = cache.length(slot, stack);
    if (next[slot] < 0 ? pos > have : pos != next[slot])
      return Status::Error("slot " + std::to_string(slot) + ": position " + std::to_string(pos) +
                           " does not continue its cached sequence");
    next[slot] = pos + 1;
  }
  for (int32_t r : b.logit_rows)
    if (r < 0 || r >= n) return Status::Error("logit row " + std::to_string(r) + " out of range");
  return Status::Ok();
}

void Model::Reserve(Workspace& ws, int64_t n, int64_t logit_rows, int64_t max_context) const {
  const Config& c = config_;
  const int64_t d = c.hidden_size, H = c.num_attention_heads, threads = NumThreads();
  auto grow = [](auto& v, int64_t size) {
    if (static_cast<int64_t>(v.size()) < size) v.resize(size);
  };
  const int64_t K = std::max<int64_t>(c.num_experts_per_tok, 1), E = std::max<int64_t>(c.n_routed_experts, 1);
  // Dense MLP hidden [n, inter], or routed hidden [n*K, moe_inter] then shared [n, moe_inter * n_shared].
  const int64_t ffn = std::max(c.intermediate_size,
                               K * c.moe_intermediate_size + c.moe_intermediate_size * c.n_shared_experts);
  grow(ws.h, n * d), grow(ws.x, n * d), grow(ws.proj, n * d), grow(ws.hidden, n * d);
  grow(ws.q_a, n * std::max<int64_t>(c.q_lora_rank, 1)), grow(ws.q, n * H * c.qk_head_dim());
  grow(ws.kv, n * c.kv_latent_dim());
  grow(ws.q_full, n * H * c.kv_latent_dim()), grow(ws.o_lat, n * H * c.kv_lora_rank);
  grow(ws.attn, n * H * c.v_head_dim);
  grow(ws.mha_lat, ops::kMhaChunk * c.kv_latent_dim());
  grow(ws.mha_kv, ops::kMhaChunk * H * (c.qk_nope_head_dim + c.v_head_dim));
  grow(ws.mha_max, n * H), grow(ws.mha_sum, n * H);
  grow(ws.rope_cos, n * c.qk_rope_head_dim / 2), grow(ws.rope_sin, n * c.qk_rope_head_dim / 2);
  grow(ws.ffn_gate, n * ffn), grow(ws.ffn_up, n * ffn);
  grow(ws.routed_rows, n * K), grow(ws.head_views, H);
  grow(ws.router_logits, n * E), grow(ws.router_scratch, threads * router_.scratch_size());
  grow(ws.expert_ids, n * K), grow(ws.expert_weights, n * K), grow(ws.expert_offset, E + 1);
  grow(ws.gathered, n * K * d), grow(ws.gathered_out, n * K * d);
  grow(ws.mtp_in, n * 2 * d);
  grow(ws.logits, logit_rows * c.vocab_size);
  ws.tokens = std::max(ws.tokens, n);
}

void Model::ComputeRope(const Batch& b, Workspace& ws) const {
  const int64_t half = rope_.half();
  for (int64_t i = 0; i < b.size(); ++i) rope_.Fill(b.positions[i], &ws.rope_cos[i * half], &ws.rope_sin[i * half]);
}

void Model::Embed(const Weight& table, const Batch& b, float* out) const {
  const int64_t d = config_.hidden_size;
  for (int64_t i = 0; i < b.size(); ++i) ops::DecodeRow(table, b.tokens[i], out + i * d);
}

void Model::DecoderLayer(int64_t l, const Batch& b, KvCache& cache, Workspace& ws) const {
  const LayerWeights& w = weights_.layers[l];
  const int64_t n = b.size(), d = config_.hidden_size;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  // h += MLA(RMSNorm(h))
  ops::RmsNorm(ws.h.data(), d, w.input_layernorm.data(), eps, ws.x.data(), d, n, d);
  Attention(l, b, cache, ws);
  ops::Add(ws.proj.data(), ws.h.data(), n * d);
  // h += FFN(RMSNorm(h))
  ops::RmsNorm(ws.h.data(), d, w.post_attention_layernorm.data(), eps, ws.x.data(), d, n, d);
  if (w.is_moe) {
    Moe(w.moe, b, ws);
  } else {
    Mlp(w.mlp, ws.x.data(), ws.proj.data(), n, ws);
  }
  ops::Add(ws.proj.data(), ws.h.data(), n * d);
}

void Model::Logits(const Weight& head, const Batch& b, Workspace& ws) const {
  // ws.hidden holds the normalised states; project only the requested rows.
  const int64_t d = config_.hidden_size, rows = static_cast<int64_t>(b.logit_rows.size());
  for (int64_t r = 0; r < rows; ++r)
    std::copy_n(ws.hidden.data() + b.logit_rows[r] * d, d, ws.x.data() + r * d);
  ops::MatMul(head, ws.x.data(), ws.logits.data(), rows, mm_);
}

Status Model::Forward(const Batch& b, KvCache& cache, Workspace& ws) const {
  DSV3_RETURN_IF_ERROR(ValidateBatch(b, cache, /*stack=*/0, ws));
  const int64_t n = b.size(), d = config_.hidden_size;
  const int64_t max_context = *std::max_element(b.positions.begin(), b.positions.end()) + 1;
  Reserve(ws, n, static_cast<int64_t>(b.logit_rows.size()), max_context);
  ComputeRope(b, ws);
  Embed(weights_.embed_tokens, b, ws.h.data());
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l) DecoderLayer(l, b, cache, ws);
  ops::RmsNorm(ws.h.data(), d, weights_.norm.data(), static_cast<float>(config_.rms_norm_eps), ws.hidden.data(), d,
               n, d);
  Logits(weights_.lm_head, b, ws);
  // A slot's valid length ends at its last token here (older rows past it are stale).
  for (int64_t i = 0; i < n; ++i) cache.set_length(b.slots[i], b.positions[i] + 1);
  return Status::Ok();
}

}  // namespace dsv3
