// Multi-head Latent Attention (DESIGN.md §3). The cache holds only the
// normalised latent c [rc] and the roped shared key k_pe [dr] per token and
// layer; attention runs in one of two equivalent forms:
//  - absorbed: queries are mapped into the latent space (q_lat = W_uk^T
//    q_nope), scored against the cached rows, and the attention-weighted
//    latent is expanded by W_uv per head. Per (query, key, head) it costs
//    2 (rc + dr) + 2 rc flops, plus 2 (dn + dv) rc per query and head for the
//    two absorptions: the cheap form for decode (one query, long context).
//  - decompressed (DeepSeek's "naive" form): every context row is expanded
//    by kv_b_proj into k_nope and v per head (2 (dn + dv) rc per row and
//    head), then attention costs 2 (dn + dr) + 2 dv per (query, key, head):
//    the cheap form for prefill, where a block's rows are its own queries.
// The choice is made per batch from the flop estimate (UseDecompressed).
// Per-head products of one stage run as one batch of jobs (one parallel pass).
#include <algorithm>
#include <cmath>

#include "model/model.h"
#include "ops/ops.h"

namespace dsv3 {

Expected<AttentionForm> ParseAttentionForm(const std::string& text, const std::string& flag) {
  if (text == "auto") return AttentionForm::kAuto;
  if (text == "absorbed") return AttentionForm::kAbsorbed;
  if (text == "decompressed") return AttentionForm::kDecompressed;
  return Status::Error(flag + " must be auto, absorbed or decompressed, not '" + text + "'");
}

void Model::Attention(int64_t l, const Batch& b, KvCache& cache, Workspace& ws) const {
  const AttentionWeights& w = weights_.layers[l].attn;
  const Config& c = config_;
  const int64_t n = b.size(), H = c.num_attention_heads, dn = c.qk_nope_head_dim, dr = c.qk_rope_head_dim;
  const int64_t rc = c.kv_lora_rank, dq = c.qk_head_dim(), lat = c.kv_latent_dim();
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
  // q_pe [n, H, dr] = RoPE(q_pe), in place in q (both forms read it there).
  for (int64_t i = 0; i < n; ++i)
    for (int64_t h = 0; h < H; ++h)
      ops::RopeInterleaved(ws.q.data() + (i * H + h) * dq + dn, ws.rope_cos.data() + i * half,
                           ws.rope_sin.data() + i * half, dr);
  AttentionBlocks(l, b, cache, ws);
  if (UseDecompressed(l, ws.attn_blocks, ws.attention_form))
    DecompressedAttention(l, ws);
  else
    AbsorbedAttention(l, ws);
  ops::MatMul(w.o_proj, ws.attn.data(), ws.proj.data(), n, mm_);
}

// Runs of consecutive tokens of one slot form one block (ops::AttentionBlock),
// so either form shares its cache reads (or row expansions) between them.
void Model::AttentionBlocks(int64_t l, const Batch& b, const KvCache& cache, Workspace& ws) const {
  ws.attn_blocks.clear();
  for (int64_t i = 0; i < b.size(); ++i) {
    ops::AttentionBlock* last = ws.attn_blocks.empty() ? nullptr : &ws.attn_blocks.back();
    if (last && b.slots[last->first] == b.slots[i] && last->p0 + last->count == b.positions[i]) {
      ++last->count;
      continue;
    }
    ws.attn_blocks.push_back({i, 1, b.positions[i], cache.Rows(b.slots[i], l)});
  }
}

// The decompressed form when every block costs less in it. Per head, a block
// of m queries at p0.. (context L = p0 + m, S = the sum of their windows)
// costs S 2 (2 rc + dr) attention flops + m 2 (dn + dv) rc product flops
// absorbed, against S 2 (dn + dr + dv) + L 2 (dn + dv) rc decompressed.
// Product flops are weighted by their cost relative to the attention
// kernels' flops, measured with kernels_bench BM_MlaForms (bench-moe shapes,
// FP8 weights, 2 threads): float32 products 1.5 (crossover for a block after
// 2048 cached rows at m ~ 245 measured, 242 estimated), int8 products (FP8
// with --int8-fp8, GGUF block types) 0.6 (~100 measured, 100 estimated).
// A prefill from position 0 (L = m) always favours the decompressed form
// (--int8-fp8: equal CPU time at -p 16 and 64, 1.05x at 256, 1.11x at 512,
// 1.42x at 2048; docs/performance.md); a decode step (m = 1, long L) the
// absorbed one. A batch mixing the two (decode steps beside a prefill chunk)
// stays absorbed: expanding a decoding slot's whole context for one query
// would cost far more than the prefill chunk saves.
bool Model::UseDecompressed(int64_t l, std::span<const ops::AttentionBlock> blocks, AttentionForm forced) const {
  if (forced == AttentionForm::kAuto) forced = options_.attention_form;
  if (forced != AttentionForm::kAuto) return forced == AttentionForm::kDecompressed;
  const double product_cost = ops::UsesInt8Products(weights_.layers[l].attn.kv_b_proj, mm_) ? 0.6 : 1.5;
  const Config& c = config_;
  const double rc = c.kv_lora_rank, dr = c.qk_rope_head_dim, dn = c.qk_nope_head_dim, dv = c.v_head_dim;
  for (const ops::AttentionBlock& b : blocks) {
    const double m = b.count, p0 = b.p0, windows = m * p0 + m * (m + 1) / 2;
    const double absorbed = windows * 2 * (2 * rc + dr) + product_cost * m * 2 * (dn + dv) * rc;
    const double decompressed = windows * 2 * (dn + dr + dv) + product_cost * (p0 + m) * 2 * (dn + dv) * rc;
    if (decompressed >= absorbed) return false;
  }
  return true;
}

// attn [n, H*dv] in the absorbed form: q_full [n, H, rc + dr] = [W_uk[h]^T
// q_nope[h] ; q_pe[h]], latent attention over the blocks' cache rows into
// o_lat [n, H, rc], then o[h] = W_uv[h] o_lat[h].
void Model::AbsorbedAttention(int64_t l, Workspace& ws) const {
  const AttentionWeights& w = weights_.layers[l].attn;
  const Config& c = config_;
  const int64_t n = ws.attn_blocks.back().first + ws.attn_blocks.back().count;
  const int64_t H = c.num_attention_heads, dn = c.qk_nope_head_dim, dr = c.qk_rope_head_dim;
  const int64_t dv = c.v_head_dim, rc = c.kv_lora_rank, dq = c.qk_head_dim(), lat = c.kv_latent_dim();
  ws.mm_jobs.clear();
  for (int64_t h = 0; h < H; ++h) {
    ws.head_views[h] = w.w_uk_t.Rows(h * rc, rc);  // [rc, dn]
    ws.mm_jobs.push_back({&ws.head_views[h], ws.q.data() + h * dq, H * dq, ws.q_full.data() + h * lat, H * lat, n});
  }
  ops::MatMulBatch(ws.mm_jobs, mm_);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t h = 0; h < H; ++h)
      std::copy_n(ws.q.data() + (i * H + h) * dq + dn, dr, ws.q_full.data() + (i * H + h) * lat + rc);
  ops::MlaAttention(rc, dr, softmax_scale_, H, ws.q_full.data(), ws.attn_blocks, ws.o_lat.data());
  ws.mm_jobs.clear();
  for (int64_t h = 0; h < H; ++h) {
    ws.head_views[h] = w.UvHead(h, dn, dv);  // [dv, rc]
    ws.mm_jobs.push_back({&ws.head_views[h], ws.o_lat.data() + h * rc, H * rc, ws.attn.data() + h * dv, H * dv, n});
  }
  ops::MatMulBatch(ws.mm_jobs, mm_);
}

// attn [n, H*dv] in the decompressed form, block by block: each block's
// context rows are expanded by kv_b_proj chunk by chunk and attended per head
// straight into attn (no W_uk or W_uv products).
void Model::DecompressedAttention(int64_t l, Workspace& ws) const {
  const Config& c = config_;
  const int64_t H = c.num_attention_heads, dq = c.qk_head_dim(), dv = c.v_head_dim;
  const ops::MhaShape shape{H, c.kv_lora_rank, c.qk_nope_head_dim, c.qk_rope_head_dim, dv, softmax_scale_};
  const ops::MhaBuffers buf{ws.mha_lat.data(), ws.mha_kv.data(), ws.mha_max.data(), ws.mha_sum.data()};
  for (const ops::AttentionBlock& b : ws.attn_blocks)
    ops::MhaAttention(weights_.layers[l].attn.kv_b_proj, mm_, shape, ws.q.data() + b.first * H * dq, b.count, b.p0,
                      b.rows, buf, ws.attn.data() + b.first * H * dv);
}

}  // namespace dsv3
