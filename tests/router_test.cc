// The MoE router on hand-made cases: group masking, ties, the bias changing
// the selection but not the weights, -inf (not 0) masking, softmax greedy.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "model/router.h"

namespace dsv3 {
namespace {

float Logit(float p) { return std::log(p / (1 - p)); }  // sigmoid^-1

struct Routed {
  std::vector<int32_t> ids;
  std::vector<float> weights;
};

Routed Route(const RouterParams& p, const std::vector<float>& scores, const std::vector<float>* bias = nullptr,
             bool scores_are_probs = true) {
  std::vector<float> logits(scores.size());
  for (size_t i = 0; i < scores.size(); ++i) logits[i] = scores_are_probs ? Logit(scores[i]) : scores[i];
  std::vector<float> scratch(p.scratch_size());
  Routed r{std::vector<int32_t>(p.top_k), std::vector<float>(p.top_k)};
  RouteToken(p, logits.data(), bias ? bias->data() : nullptr, scratch.data(), r.ids.data(), r.weights.data());
  return r;
}

RouterParams V3Like(int64_t experts, int64_t top_k, int64_t groups, int64_t keep) {
  RouterParams p;
  p.num_experts = experts, p.top_k = top_k, p.n_group = groups, p.topk_group = keep;
  p.scoring = ScoringFunc::kSigmoid, p.method = TopkMethod::kNoauxTc;
  p.norm_topk_prob = true, p.routed_scaling_factor = 2.5f;
  return p;
}

TEST(Router, GroupsAreScoredByTheirTopTwo) {
  // 4 groups of 2. Expert 0 is the single best, but its group (0.9 + 0.1) loses
  // to groups {0.6, 0.6} and {0.55, 0.55}: group-limited top-k never picks it.
  const auto p = V3Like(8, 2, 4, 2);
  const Routed r = Route(p, {0.9f, 0.1f, 0.6f, 0.6f, 0.55f, 0.55f, 0.2f, 0.2f});
  EXPECT_EQ(r.ids, (std::vector<int32_t>{2, 3}));
  // Weights: unbiased scores normalised, times 2.5.
  EXPECT_NEAR(r.weights[0], 1.25f, 1e-6);
  EXPECT_NEAR(r.weights[1], 1.25f, 1e-6);
}

TEST(Router, GreedyGroupsUseTheirMax) {
  auto p = V3Like(8, 2, 4, 2);
  p.method = TopkMethod::kGroupLimitedGreedy;
  const Routed r = Route(p, {0.9f, 0.1f, 0.6f, 0.6f, 0.55f, 0.55f, 0.2f, 0.2f});
  EXPECT_EQ(r.ids, (std::vector<int32_t>{0, 2}));  // groups 0 (0.9) and 1 (0.6) kept
}

TEST(Router, TiesGoToTheLowerIndex) {
  const auto p = V3Like(8, 3, 1, 1);
  const Routed r = Route(p, {0.5f, 0.7f, 0.7f, 0.5f, 0.7f, 0.1f, 0.1f, 0.1f});
  EXPECT_EQ(r.ids, (std::vector<int32_t>{1, 2, 4}));
  auto q = V3Like(8, 2, 4, 1);  // two tied groups: the lower one wins
  const Routed g = Route(q, {0.1f, 0.1f, 0.6f, 0.5f, 0.5f, 0.6f, 0.1f, 0.1f});
  EXPECT_EQ(g.ids, (std::vector<int32_t>{2, 3}));
}

TEST(Router, BiasChangesSelectionNotWeights) {
  const auto p = V3Like(8, 2, 1, 1);
  const std::vector<float> s = {0.8f, 0.7f, 0.6f, 0.5f, 0.4f, 0.3f, 0.2f, 0.1f};
  const Routed plain = Route(p, s);
  EXPECT_EQ(plain.ids, (std::vector<int32_t>{0, 1}));
  const std::vector<float> bias = {0, 0, 0, 0, 0, 0, 0.65f, 0};  // lifts expert 6 to 0.85
  const Routed biased = Route(p, s, &bias);
  EXPECT_EQ(biased.ids, (std::vector<int32_t>{6, 0}));
  // The weights come from the unbiased scores 0.2 and 0.8.
  EXPECT_NEAR(biased.weights[0], 2.5f * 0.2f / 1.0f, 1e-6);
  EXPECT_NEAR(biased.weights[1], 2.5f * 0.8f / 1.0f, 1e-6);
}

TEST(Router, DroppedGroupsAreMinusInfinityNotZero) {
  // Kept group {0,1} has negative selection scores after the bias; experts of
  // dropped groups must still lose (a 0.0 mask would make them win).
  const auto p = V3Like(8, 2, 4, 1);
  const std::vector<float> s = {0.9f, 0.8f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f};
  const std::vector<float> bias = {-1.5f, -1.5f, -1.0f, -1.0f, -1.0f, -1.0f, -1.0f, -1.0f};
  const Routed r = Route(p, s, &bias);
  EXPECT_EQ(r.ids, (std::vector<int32_t>{0, 1}));
}

TEST(Router, SoftmaxGreedyWithoutNormalisation) {
  RouterParams p;
  p.num_experts = 4, p.top_k = 2, p.n_group = 1, p.topk_group = 1;
  p.scoring = ScoringFunc::kSoftmax, p.method = TopkMethod::kGreedy;
  p.norm_topk_prob = false, p.routed_scaling_factor = 1.0f;
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 0.0f};
  const Routed r = Route(p, logits, nullptr, /*scores_are_probs=*/false);
  const float z = std::exp(1.0f) + std::exp(3.0f) + std::exp(2.0f) + 1.0f;
  EXPECT_EQ(r.ids, (std::vector<int32_t>{1, 2}));
  EXPECT_NEAR(r.weights[0], std::exp(3.0f) / z, 1e-6);
  EXPECT_NEAR(r.weights[1], std::exp(2.0f) / z, 1e-6);
}

}  // namespace
}  // namespace dsv3
