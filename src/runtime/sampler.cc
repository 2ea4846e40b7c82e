// Sampling filters and the generator; see sampler.h.
#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

namespace dsv3 {

Status SamplingOptions::Validate() const {
  if (!std::isfinite(temperature) || temperature < 0.0f)
    return Status::Error("temperature must be a finite number >= 0 (got " + std::to_string(temperature) + ")");
  if (top_k < 0) return Status::Error("top_k must be >= 0 (got " + std::to_string(top_k) + ")");
  if (!(top_p > 0.0f && top_p <= 1.0f)) return Status::Error("top_p must be in (0, 1] (got " + std::to_string(top_p) + ")");
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return Status::Error("min_p must be in [0, 1] (got " + std::to_string(min_p) + ")");
  return Status::Ok();
}

namespace {
uint64_t SplitMix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(uint64_t seed) {
  for (auto& s : s_) s = SplitMix64(seed);
}

uint64_t Rng::Next() {
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0], s_[3] ^= s_[1], s_[1] ^= s_[2], s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

double Rng::Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

int32_t ArgMax(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return static_cast<int32_t>(best);
}

Sampler::Sampler(const SamplingOptions& options) : options_(options), rng_(options.seed) {}

void Sampler::Distribution(const float* logits, int64_t vocab, float* probs) {
  if (options_.greedy()) {
    std::fill(probs, probs + vocab, 0.0f);
    probs[ArgMax(logits, vocab)] = 1.0f;
    return;
  }
  // softmax(logits / T) in float64 accumulation for a stable normaliser.
  const float inv_t = 1.0f / options_.temperature;
  const float m = logits[ArgMax(logits, vocab)];
  double sum = 0.0;
  for (int64_t i = 0; i < vocab; ++i) sum += (probs[i] = std::exp((logits[i] - m) * inv_t));
  for (int64_t i = 0; i < vocab; ++i) probs[i] = static_cast<float>(probs[i] / sum);
  const bool filter = options_.top_k > 0 || options_.top_p < 1.0f || options_.min_p > 0.0f;
  if (!filter) return;
  // Sort ids by probability (descending, ties by id) and find how many survive.
  order_.resize(vocab);
  std::iota(order_.begin(), order_.end(), 0);
  int64_t keep = vocab;
  if (options_.top_k > 0) keep = std::min<int64_t>(keep, options_.top_k);
  auto by_prob = [&](int32_t a, int32_t b) { return probs[a] > probs[b] || (probs[a] == probs[b] && a < b); };
  std::sort(order_.begin(), order_.end(), by_prob);
  if (options_.top_p < 1.0f) {
    double cum = 0.0;
    for (int64_t i = 0; i < keep; ++i) {
      cum += probs[order_[i]];
      if (cum >= options_.top_p) { keep = i + 1; break; }
    }
  }
  if (options_.min_p > 0.0f) {
    const float floor = options_.min_p * probs[order_[0]];
    int64_t i = 1;
    while (i < keep && probs[order_[i]] >= floor) ++i;
    keep = i;
  }
  double kept = 0.0;
  for (int64_t i = 0; i < keep; ++i) kept += probs[order_[i]];
  for (int64_t i = keep; i < vocab; ++i) probs[order_[i]] = 0.0f;
  for (int64_t i = 0; i < keep; ++i) probs[order_[i]] = static_cast<float>(probs[order_[i]] / kept);
}

int32_t Sampler::SampleFrom(const float* probs, int64_t vocab) {
  const double u = rng_.Uniform();
  double cum = 0.0;
  int32_t last_nonzero = 0;
  for (int64_t i = 0; i < vocab; ++i) {
    if (probs[i] <= 0.0f) continue;
    cum += probs[i];
    last_nonzero = static_cast<int32_t>(i);
    if (u < cum) return last_nonzero;
  }
  return last_nonzero;  // rounding left u above the total
}

int32_t Sampler::Sample(const float* logits, int64_t vocab) {
  if (options_.greedy()) return ArgMax(logits, vocab);
  probs_.resize(vocab);
  Distribution(logits, vocab, probs_.data());
  return SampleFrom(probs_.data(), vocab);
}

}  // namespace dsv3
