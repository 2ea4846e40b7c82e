// Token sampling: greedy, or temperature + top-k + top-p + min-p from a
// seeded generator (same seed, same tokens on every machine: the generator
// and the uniform draw are our own, not the standard library's). The filtered
// distribution is exposed so speculative decoding can do exact rejection
// sampling against it.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "core/status.h"

namespace dsv3 {

struct SamplingOptions {
  float temperature = 0.0f;  // below FLT_MIN (0, or so small 1/T overflows): greedy, argmax with lowest id on ties
  int top_k = 0;             // 0: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off
  uint64_t seed = 0;

  Status Validate() const;   // names the offending parameter
  // A subnormal temperature would make 1/T infinite and every logit NaN.
  bool greedy() const { return !(temperature >= std::numeric_limits<float>::min()); }
};

// xoshiro256** seeded through splitmix64.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t Next();
  double Uniform();  // [0, 1) with 53 random bits
 private:
  uint64_t s_[4];
};

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);

  // Picks a token from logits [vocab].
  int32_t Sample(const float* logits, int64_t vocab);
  // The distribution Sample draws from after all filters: probs [vocab]
  // (zeros for filtered tokens, sums to 1). Greedy gives a one-hot.
  void Distribution(const float* logits, int64_t vocab, float* probs);
  // Draws from an explicit distribution probs [vocab].
  int32_t SampleFrom(const float* probs, int64_t vocab);
  Rng& rng() { return rng_; }
  const SamplingOptions& options() const { return options_; }

 private:
  SamplingOptions options_;
  Rng rng_;
  std::vector<float> probs_;
  std::vector<int32_t> order_;
};

int32_t ArgMax(const float* x, int64_t n);

}  // namespace dsv3
