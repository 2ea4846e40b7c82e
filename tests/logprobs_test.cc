// LogSoftmax and KlDivergence (runtime/logprobs.h) against closed forms.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "runtime/logprobs.h"

namespace dsv3 {
namespace {

TEST(LogSoftmax, NormalisesAndKeepsDifferences) {
  const std::vector<float> logits = {2.0f, -1.0f, 0.5f, 30.0f};
  std::vector<float> lp(4);
  LogSoftmax(logits.data(), 4, lp.data());
  double sum = 0;
  for (float v : lp) sum += std::exp(static_cast<double>(v));
  EXPECT_NEAR(sum, 1.0, 1e-6);
  EXPECT_NEAR(lp[0] - lp[1], 3.0f, 1e-5f);
  EXPECT_NEAR(lp[3], -std::log1p(std::exp(2.0 - 30) + std::exp(-31.0) + std::exp(0.5 - 30)), 1e-6);
}

TEST(KlDivergence, ClosedFormsAndSign) {
  // Two outcomes: KL((p, 1-p) || (q, 1-q)) = p ln(p/q) + (1-p) ln((1-p)/(1-q)).
  const double p = 0.8, q = 0.3;
  const std::vector<float> lp = {static_cast<float>(std::log(p)), static_cast<float>(std::log(1 - p))};
  const std::vector<float> lq = {static_cast<float>(std::log(q)), static_cast<float>(std::log(1 - q))};
  EXPECT_NEAR(KlDivergence(lp.data(), lq.data(), 2), p * std::log(p / q) + (1 - p) * std::log((1 - p) / (1 - q)),
              1e-6);
  EXPECT_NEAR(KlDivergence(lp.data(), lp.data(), 2), 0.0, 1e-12);
  // Non-negative for any pair of distributions, zero only when equal.
  std::mt19937 rng(3);
  std::normal_distribution<float> n(0.0f, 3.0f);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<float> a(64), b(64), la(64), lb(64);
    for (int i = 0; i < 64; ++i) a[i] = n(rng), b[i] = n(rng);
    LogSoftmax(a.data(), 64, la.data());
    LogSoftmax(b.data(), 64, lb.data());
    EXPECT_GT(KlDivergence(la.data(), lb.data(), 64), 0.0);
  }
}

}  // namespace
}  // namespace dsv3
