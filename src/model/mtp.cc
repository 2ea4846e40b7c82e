// Multi-Token Prediction (DESIGN.md §3): depth k combines the normalised
// embedding of token t_{i+1} with the normalised hidden state h_i of the
// previous depth (depth 0 gets the main model's state after model.norm),
// projects [enorm(e) ; hnorm(h)] with eh_proj, runs one decoder block with its
// own latent cache, and predicts t_{i+2} through shared_head.
#include "model/model.h"
#include "ops/ops.h"

namespace dsv3 {

Status Model::ForwardMtp(int depth, const Batch& b, const float* hidden_in, KvCache& cache, Workspace& ws,
                         int64_t draft_vocab) const {
  if (depth < 0 || depth >= config_.num_nextn_predict_layers)
    return Status::Error("MTP depth " + std::to_string(depth) + " requested but the model has " +
                         std::to_string(config_.num_nextn_predict_layers) + " MTP layer(s)");
  const int stack = 1 + depth;
  DSV3_RETURN_IF_ERROR(ValidateBatch(b, cache, stack, ws));
  const int64_t n = b.size(), d = config_.hidden_size, layer = config_.num_hidden_layers + depth;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  const MtpWeights& w = weights_.layers[layer].mtp;
  const int64_t max_context = *std::max_element(b.positions.begin(), b.positions.end()) + 1;
  Reserve(ws, n, static_cast<int64_t>(b.logit_rows.size()), max_context);  // hidden_in rows stay valid
  ComputeRope(b, ws);
  // mtp_in [n, 2d] = [enorm(embed(t_{i+1})) ; hnorm(h_i)]
  Embed(w.embed_tokens, b, ws.x.data());
  ops::RmsNorm(ws.x.data(), d, w.enorm.data(), eps, ws.mtp_in.data(), 2 * d, n, d);
  ops::RmsNorm(hidden_in, d, w.hnorm.data(), eps, ws.mtp_in.data() + d, 2 * d, n, d);
  ops::MatMul(w.eh_proj, ws.mtp_in.data(), ws.h.data(), n);  // h [n, d]
  DecoderLayer(layer, b, cache, ws);
  ops::RmsNorm(ws.h.data(), d, w.shared_head_norm.data(), eps, ws.hidden.data(), d, n, d);
  const bool part = draft_vocab > 0 && draft_vocab < config_.vocab_size;
  Logits(part ? w.shared_head_head.Rows(0, draft_vocab) : w.shared_head_head, b, ws);
  for (int64_t i = 0; i < n; ++i) cache.set_length(b.slots[i], b.positions[i] + 1, stack);
  return Status::Ok();
}

}  // namespace dsv3
