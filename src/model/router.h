// The DeepSeekMoE router for one token: scores (sigmoid or softmax of the
// float32 router logits), selection on the bias-corrected scores with
// group-limited top-k (dropped groups masked with -inf, ties to the lower
// index), weights from the unbiased scores, optionally normalised, times
// routed_scaling_factor. The bias changes which experts are chosen, never
// their weights.
#pragma once

#include <cstdint>

#include "model/config.h"

namespace dsv3 {

struct RouterParams {
  int64_t num_experts = 0, top_k = 0, n_group = 1, topk_group = 1;
  ScoringFunc scoring = ScoringFunc::kSigmoid;
  TopkMethod method = TopkMethod::kNoauxTc;
  bool norm_topk_prob = true;
  float routed_scaling_factor = 1.0f;

  static RouterParams FromConfig(const Config& c);
  // Floats of scratch RouteToken needs.
  int64_t scratch_size() const { return 2 * num_experts + 2 * n_group; }
};

// logits [E] -> ids [top_k] (in descending selection score) and weights [top_k].
// `bias` [E] may be null. `scores_out` [E], if not null, receives the
// unbiased scores s (the trainer's balance loss needs them).
void RouteToken(const RouterParams& p, const float* logits, const float* bias, float* scratch, int32_t* ids,
                float* weights, float* scores_out = nullptr);

}  // namespace dsv3
