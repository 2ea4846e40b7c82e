// Sampling: greedy argmax, seeded determinism, each filter's support, and the
// empirical frequencies of many draws against the filtered distribution.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>

#include "runtime/sampler.h"

namespace dsv3 {
namespace {

const std::vector<float> kLogits = {1.0f, 3.0f, 2.5f, -1.0f, 0.5f, 2.9f, -3.0f, 0.0f};

TEST(Sampler, GreedyIsArgmaxWithLowestIdOnTies) {
  Sampler s(SamplingOptions{});
  EXPECT_EQ(s.Sample(kLogits.data(), kLogits.size()), 1);
  const std::vector<float> tie = {0.0f, 2.0f, 2.0f};
  EXPECT_EQ(s.Sample(tie.data(), 3), 1);
}

// 1e-40 is a subnormal float: 1/T is infinite, so sampling would compute
// NaN probabilities (it always returned the last id). Such a temperature
// means "as cold as can be": greedy. The smallest normal float still samples.
TEST(Sampler, SubnormalTemperatureIsGreedy) {
  for (float t : {1e-40f, 1e-45f, std::numeric_limits<float>::denorm_min()}) {
    SamplingOptions o;
    o.temperature = t, o.seed = 7;
    EXPECT_TRUE(o.greedy()) << t;
    Sampler s(o);
    for (int i = 0; i < 20; ++i) EXPECT_EQ(s.Sample(kLogits.data(), kLogits.size()), 1) << t;
    std::vector<float> probs(kLogits.size());
    s.Distribution(kLogits.data(), kLogits.size(), probs.data());
    EXPECT_EQ(probs[1], 1.0f);
  }
  SamplingOptions o;
  o.temperature = std::numeric_limits<float>::min(), o.seed = 7;
  EXPECT_FALSE(o.greedy());
  Sampler s(o);
  std::vector<float> probs(kLogits.size());
  s.Distribution(kLogits.data(), kLogits.size(), probs.data());
  for (float p : probs) EXPECT_TRUE(std::isfinite(p));
  EXPECT_EQ(probs[1], 1.0f);  // the coldest sampling temperature is still a point mass on the argmax
}

TEST(Sampler, SameSeedSameTokens) {
  SamplingOptions o;
  o.temperature = 1.0f, o.seed = 1234;
  Sampler a(o), b(o);
  std::vector<int32_t> x, y;
  for (int i = 0; i < 200; ++i) {
    x.push_back(a.Sample(kLogits.data(), kLogits.size()));
    y.push_back(b.Sample(kLogits.data(), kLogits.size()));
  }
  EXPECT_EQ(x, y);
  o.seed = 99;
  Sampler c(o);
  std::vector<int32_t> z;
  for (int i = 0; i < 200; ++i) z.push_back(c.Sample(kLogits.data(), kLogits.size()));
  EXPECT_NE(x, z);
}

std::set<int32_t> Support(const SamplingOptions& o) {
  Sampler s(o);
  std::vector<float> p(kLogits.size());
  s.Distribution(kLogits.data(), kLogits.size(), p.data());
  double sum = 0;
  std::set<int32_t> ids;
  for (size_t i = 0; i < p.size(); ++i) {
    sum += p[i];
    if (p[i] > 0) ids.insert(static_cast<int32_t>(i));
  }
  EXPECT_NEAR(sum, 1.0, 1e-5);
  return ids;
}

TEST(Sampler, FiltersRestrictTheSupport) {
  SamplingOptions o;
  o.temperature = 1.0f;
  EXPECT_EQ(Support(o).size(), kLogits.size());
  o.top_k = 3;
  EXPECT_EQ(Support(o), (std::set<int32_t>{1, 5, 2}));
  o = SamplingOptions{};
  o.temperature = 1.0f, o.top_p = 0.5f;  // p(1)=.33, p(5)=.30 reach 0.5
  EXPECT_EQ(Support(o), (std::set<int32_t>{1, 5}));
  o = SamplingOptions{};
  o.temperature = 1.0f, o.min_p = 0.5f;  // keep p >= p_max/2: logits >= 3 - ln 2
  EXPECT_EQ(Support(o), (std::set<int32_t>{1, 5, 2}));
}

TEST(Sampler, FrequenciesMatchTheDistribution) {
  SamplingOptions o;
  o.temperature = 0.8f, o.top_k = 5, o.seed = 7;
  Sampler s(o);
  std::vector<float> p(kLogits.size());
  s.Distribution(kLogits.data(), kLogits.size(), p.data());
  const int n = 200000;
  std::vector<int> counts(kLogits.size());
  for (int i = 0; i < n; ++i) ++counts[s.Sample(kLogits.data(), kLogits.size())];
  double chi2 = 0;
  int dof = -1;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == 0) {
      EXPECT_EQ(counts[i], 0);
      continue;
    }
    const double e = p[i] * n;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
    ++dof;
  }
  EXPECT_LT(chi2, 18.47);  // chi-square 4 dof, p = 0.001
}

TEST(Sampler, ValidatesParameters) {
  SamplingOptions o;
  o.temperature = -1;
  EXPECT_NE(o.Validate().message().find("temperature"), std::string::npos);
  o = SamplingOptions{};
  o.top_p = 0;
  EXPECT_NE(o.Validate().message().find("top_p"), std::string::npos);
  o = SamplingOptions{};
  o.min_p = 2;
  EXPECT_NE(o.Validate().message().find("min_p"), std::string::npos);
  o = SamplingOptions{};
  o.top_k = -3;
  EXPECT_NE(o.Validate().message().find("top_k"), std::string::npos);
}

}  // namespace
}  // namespace dsv3
