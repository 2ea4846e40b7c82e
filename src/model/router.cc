// Router selection; see router.h.
#include "model/router.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace dsv3 {

RouterParams RouterParams::FromConfig(const Config& c) {
  RouterParams p;
  p.num_experts = c.n_routed_experts;
  p.top_k = c.num_experts_per_tok;
  p.n_group = c.n_group;
  p.topk_group = c.topk_group;
  p.scoring = c.scoring_func;
  p.method = c.topk_method;
  p.norm_topk_prob = c.norm_topk_prob;
  p.routed_scaling_factor = static_cast<float>(c.routed_scaling_factor);
  return p;
}

namespace {

// Index of the largest of v[0..n) other than `skip`; ties go to the lower index.
int64_t ArgMax(const float* v, int64_t n, int64_t skip) {
  int64_t best = -1;
  for (int64_t i = 0; i < n; ++i)
    if (i != skip && (best < 0 || v[i] > v[best])) best = i;
  return best;
}

// Masks (sets to -inf) the experts of all but the best topk_group groups.
// scratch: group scores [n_group], then keep flags [n_group].
void MaskGroups(const RouterParams& p, float* sel, float* scratch) {
  const int64_t per = p.num_experts / p.n_group;
  float* group_score = scratch;
  float* keep = scratch + p.n_group;
  for (int64_t g = 0; g < p.n_group; ++g) {
    const float* s = sel + g * per;
    const int64_t a = ArgMax(s, per, -1);
    // noaux_tc scores a group by the sum of its top two, the others by its best.
    group_score[g] = p.method == TopkMethod::kNoauxTc ? s[a] + s[ArgMax(s, per, a)] : s[a];
    keep[g] = 0.0f;
  }
  for (int64_t k = 0; k < p.topk_group; ++k) {
    int64_t best = -1;
    for (int64_t g = 0; g < p.n_group; ++g)
      if (keep[g] == 0.0f && (best < 0 || group_score[g] > group_score[best])) best = g;
    keep[best] = 1.0f;
  }
  for (int64_t g = 0; g < p.n_group; ++g)
    if (keep[g] == 0.0f) std::fill(sel + g * per, sel + (g + 1) * per, -std::numeric_limits<float>::infinity());
}

}  // namespace

void RouteToken(const RouterParams& p, const float* logits, const float* bias, float* scratch, int32_t* ids,
                float* weights, float* scores_out) {
  const int64_t E = p.num_experts;
  float* s = scratch;        // unbiased scores [E]
  float* sel = scratch + E;  // selection scores [E]
  if (p.scoring == ScoringFunc::kSigmoid) {
    for (int64_t e = 0; e < E; ++e) s[e] = 1.0f / (1.0f + std::exp(-logits[e]));
  } else {
    const float m = *std::max_element(logits, logits + E);
    float sum = 0.0f;
    for (int64_t e = 0; e < E; ++e) sum += (s[e] = std::exp(logits[e] - m));
    for (int64_t e = 0; e < E; ++e) s[e] /= sum;
  }
  if (scores_out) std::copy(s, s + E, scores_out);
  for (int64_t e = 0; e < E; ++e) sel[e] = bias ? s[e] + bias[e] : s[e];
  if (p.n_group > 1) MaskGroups(p, sel, scratch + 2 * E);
  float sum = 0.0f;
  for (int64_t k = 0; k < p.top_k; ++k) {
    int64_t best = -1;
    for (int64_t e = 0; e < E; ++e) {
      if (std::find(ids, ids + k, static_cast<int32_t>(e)) != ids + k) continue;
      if (best < 0 || sel[e] > sel[best]) best = e;
    }
    ids[k] = static_cast<int32_t>(best);
    weights[k] = s[best];
    sum += s[best];
  }
  for (int64_t k = 0; k < p.top_k; ++k) {
    if (p.norm_topk_prob) weights[k] /= sum + 1e-20f;
    weights[k] *= p.routed_scaling_factor;
  }
}

}  // namespace dsv3
