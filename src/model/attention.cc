// Multi-head Latent Attention (DESIGN.md §3) in the weight-absorbed form:
// queries are mapped into the latent space (q_lat = W_uk^T q_nope), scored
// against the cached latent c and shared rotary key k_pe, and the attention-
// weighted latent is expanded by W_uv per head. The cache therefore holds only
// rc + dr values per token per layer, for prefill and decode alike. Per-head
// products of one stage run as one batch of jobs (one parallel pass).
#include <algorithm>
#include <cmath>

#include "model/model.h"
#include "ops/ops.h"

namespace dsv3 {

void Model::Attention(int64_t l, const Batch& b, KvCache& cache, Workspace& ws) const {
  const AttentionWeights& w = weights_.layers[l].attn;
  const Config& c = config_;
  const int64_t n = b.size(), H = c.num_attention_heads, dn = c.qk_nope_head_dim, dr = c.qk_rope_head_dim;
  const int64_t dv = c.v_head_dim, rc = c.kv_lora_rank, dq = c.qk_head_dim(), lat = c.kv_latent_dim();
  const float eps = static_cast<float>(c.rms_norm_eps);
  const int64_t half = dr / 2;
  // kv [n, rc + dr] and q_a [n, rq] (or q [n, H*dq]) both read x: one pass.
  ws.mm_jobs.clear();
  ws.mm_jobs.push_back({&w.kv_a_proj_with_mqa, ws.x.data(), c.hidden_size, ws.kv.data(), lat, n});
  if (c.q_lora_rank > 0)
    ws.mm_jobs.push_back({&w.q_a_proj, ws.x.data(), c.hidden_size, ws.q_a.data(), c.q_lora_rank, n});
  else
    ws.mm_jobs.push_back({&w.q_proj, ws.x.data(), c.hidden_size, ws.q.data(), H * dq, n});
  ops::MatMulBatch(ws.mm_jobs, mm_);
  if (c.q_lora_rank > 0) {  // q [n, H, dn+dr] = q_b_proj(RMSNorm(q_a))
    ops::RmsNorm(ws.q_a.data(), c.q_lora_rank, w.q_a_layernorm.data(), eps, ws.q_a.data(), c.q_lora_rank, n,
                 c.q_lora_rank);
    ops::MatMul(w.q_b_proj, ws.q_a.data(), ws.q.data(), n, mm_);
  }
  // c = RMSNorm(first rc), k_pe = RoPE(last dr); into the cache.
  for (int64_t i = 0; i < n; ++i) {
    float* kv = ws.kv.data() + i * lat;
    ops::RmsNorm(kv, lat, w.kv_a_layernorm.data(), eps, kv, lat, 1, rc);
    ops::RopeInterleaved(kv + rc, ws.rope_cos.data() + i * half, ws.rope_sin.data() + i * half, dr);
    cache.Store(b.slots[i], l, b.positions[i], kv);
  }
  // q_full [n, H, rc + dr] = [W_uk[h]^T q_nope[h] ; RoPE(q_pe[h])]
  ws.mm_jobs.clear();
  for (int64_t h = 0; h < H; ++h) {
    ws.head_views[h] = w.w_uk_t.Rows(h * rc, rc);  // [rc, dn]
    ws.mm_jobs.push_back({&ws.head_views[h], ws.q.data() + h * dq, H * dq, ws.q_full.data() + h * lat, H * lat, n});
  }
  ops::MatMulBatch(ws.mm_jobs, mm_);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t h = 0; h < H; ++h) {
      float* q_pe = ws.q_full.data() + (i * H + h) * lat + rc;
      std::copy_n(ws.q.data() + (i * H + h) * dq + dn, dr, q_pe);
      ops::RopeInterleaved(q_pe, ws.rope_cos.data() + i * half, ws.rope_sin.data() + i * half, dr);
    }
  }
  AttendLatent(l, b, cache, ws);
  // attn [n, H*dv]: o[h] = W_uv[h] o_lat[h]; then o_proj.
  ws.mm_jobs.clear();
  for (int64_t h = 0; h < H; ++h) {
    ws.head_views[h] = w.kv_b_proj.Rows(h * (dn + dv) + dn, dv);  // [dv, rc]
    ws.mm_jobs.push_back({&ws.head_views[h], ws.o_lat.data() + h * rc, H * rc, ws.attn.data() + h * dv, H * dv, n});
  }
  ops::MatMulBatch(ws.mm_jobs, mm_);
  ops::MatMul(w.o_proj, ws.attn.data(), ws.proj.data(), n, mm_);
}

// o_lat[i, h] = sum_j softmax_j(scale * q_full[i, h] . row_j) * c_j over the
// token's causal window j = 0..pos of its slot. Consecutive tokens of one
// slot form one block, so the op can share cache reads between them.
void Model::AttendLatent(int64_t l, const Batch& b, const KvCache& cache, Workspace& ws) const {
  const Config& c = config_;
  const int64_t n = b.size();
  ws.attn_blocks.clear();
  for (int64_t i = 0; i < n; ++i) {
    ops::AttentionBlock* last = ws.attn_blocks.empty() ? nullptr : &ws.attn_blocks.back();
    if (last && b.slots[last->first] == b.slots[i] && last->p0 + last->count == b.positions[i]) {
      ++last->count;
      continue;
    }
    ws.attn_blocks.push_back({i, 1, b.positions[i], cache.Rows(b.slots[i], l)});
  }
  ops::MlaAttention(c.kv_lora_rank, c.qk_rope_head_dim, softmax_scale_, c.num_attention_heads, ws.q_full.data(),
                    ws.attn_blocks, ws.o_lat.data());
}

}  // namespace dsv3
