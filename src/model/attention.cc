// Multi-head Latent Attention (DESIGN.md §3) in the weight-absorbed form:
// queries are mapped into the latent space (q_lat = W_uk^T q_nope), scored
// against the cached latent c and shared rotary key k_pe, and the attention-
// weighted latent is expanded by W_uv per head. The cache therefore holds only
// rc + dr floats per token per layer, for prefill and decode alike.
#include <algorithm>
#include <cmath>

#include "core/parallel.h"
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
  // q [n, H, dn+dr]
  if (c.q_lora_rank > 0) {
    ops::MatMul(w.q_a_proj, ws.x.data(), ws.q_a.data(), n);  // q_a [n, rq]
    ops::RmsNorm(ws.q_a.data(), c.q_lora_rank, w.q_a_layernorm.data(), eps, ws.q_a.data(), c.q_lora_rank, n,
                 c.q_lora_rank);
    ops::MatMul(w.q_b_proj, ws.q_a.data(), ws.q.data(), n);
  } else {
    ops::MatMul(w.q_proj, ws.x.data(), ws.q.data(), n);
  }
  // kv [n, rc + dr] -> c = RMSNorm(first rc), k_pe = RoPE(last dr); into the cache.
  ops::MatMul(w.kv_a_proj_with_mqa, ws.x.data(), ws.kv.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    float* kv = ws.kv.data() + i * lat;
    ops::RmsNorm(kv, lat, w.kv_a_layernorm.data(), eps, kv, lat, 1, rc);
    ops::RopeInterleaved(kv + rc, ws.rope_cos.data() + i * half, ws.rope_sin.data() + i * half, dr);
    std::copy_n(kv, lat, cache.Row(b.slots[i], l, b.positions[i]));
  }
  // q_full [n, H, rc + dr] = [W_uk[h]^T q_nope[h] ; RoPE(q_pe[h])]
  for (int64_t h = 0; h < H; ++h) {
    const Weight w_uk = w.kv_b_proj.Rows(h * (dn + dv), dn);  // [dn, rc]
    ops::MatMulTransposed(w_uk, ws.q.data() + h * dq, H * dq, ws.q_full.data() + h * lat, H * lat, n);
  }
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t h = 0; h < H; ++h) {
      float* q_pe = ws.q_full.data() + (i * H + h) * lat + rc;
      std::copy_n(ws.q.data() + (i * H + h) * dq + dn, dr, q_pe);
      ops::RopeInterleaved(q_pe, ws.rope_cos.data() + i * half, ws.rope_sin.data() + i * half, dr);
    }
  }
  AttendLatent(l, b, cache, ws);
  // attn [n, H*dv]: o[h] = W_uv[h] o_lat[h]; then o_proj.
  for (int64_t h = 0; h < H; ++h) {
    const Weight w_uv = w.kv_b_proj.Rows(h * (dn + dv) + dn, dv);  // [dv, rc]
    ops::MatMul(w_uv, ws.o_lat.data() + h * rc, H * rc, ws.attn.data() + h * dv, H * dv, n);
  }
  ops::MatMul(w.o_proj, ws.attn.data(), ws.proj.data(), n);
}

// o_lat[i, h] = sum_j softmax_j(scale * q_full[i, h] . row_j) * c_j over the
// token's causal window j = 0..pos of its slot.
void Model::AttendLatent(int64_t l, const Batch& b, const KvCache& cache, Workspace& ws) const {
  const Config& c = config_;
  const int64_t n = b.size(), H = c.num_attention_heads, rc = c.kv_lora_rank, lat = c.kv_latent_dim();
  const int64_t stride = static_cast<int64_t>(ws.scores.size()) / NumThreads();
  const float scale = softmax_scale_;
  ParallelFor(n * H, 1, [&](int64_t begin, int64_t end) {
    float* scores = ws.scores.data() + omp_get_thread_num() * stride;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t i = task / H, h = task % H, slot = b.slots[i], len = b.positions[i] + 1;
      const float* q = ws.q_full.data() + (i * H + h) * lat;
      for (int64_t j = 0; j < len; ++j) scores[j] = scale * ops::Dot(q, cache.Row(slot, l, j), lat);
      ops::Softmax(scores, len);
      float* o = ws.o_lat.data() + (i * H + h) * rc;
      std::fill(o, o + rc, 0.0f);
      for (int64_t j = 0; j < len; ++j) ops::Axpy(scores[j], cache.Row(slot, l, j), o, rc);
    }
  });
}

}  // namespace dsv3
