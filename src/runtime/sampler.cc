// Sampling filters and the generator; see sampler.h.
#include "runtime/sampler.h"

#include "runtime/token_constraint.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

namespace dsv3 {

Status SamplingOptions::Validate(int64_t vocab) const {
  if (!std::isfinite(temperature) || temperature < 0.0f)
    return Status::Error("temperature must be a finite number >= 0 (got " + std::to_string(temperature) + ")");
  if (top_k < 0) return Status::Error("top_k must be >= 0 (got " + std::to_string(top_k) + ")");
  if (!(top_p > 0.0f && top_p <= 1.0f)) return Status::Error("top_p must be in (0, 1] (got " + std::to_string(top_p) + ")");
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return Status::Error("min_p must be in [0, 1] (got " + std::to_string(min_p) + ")");
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f))
    return Status::Error("presence_penalty must be in [-2, 2] (got " + std::to_string(presence_penalty) + ")");
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f))
    return Status::Error("frequency_penalty must be in [-2, 2] (got " + std::to_string(frequency_penalty) + ")");
  if (!(repetition_penalty > 0.0f && repetition_penalty <= 10.0f))
    return Status::Error("repetition_penalty must be in (0, 10] (got " + std::to_string(repetition_penalty) + ")");
  std::vector<int32_t> banned;
  for (const LogitBias& b : logit_bias) {
    if (!(b.bias >= -100.0f && b.bias <= 100.0f))
      return Status::Error("logit_bias of token " + std::to_string(b.token) + " must be in [-100, 100] (got " +
                           std::to_string(b.bias) + ")");
    if (b.token < 0 || (vocab > 0 && b.token >= vocab))
      return Status::Error("logit_bias: token id " + std::to_string(b.token) + " is outside the vocabulary [0, " +
                           std::to_string(vocab) + ")");
    if (b.bias <= kBanBias) banned.push_back(b.token);
  }
  std::sort(banned.begin(), banned.end());
  banned.erase(std::unique(banned.begin(), banned.end()), banned.end());
  if (vocab > 0 && static_cast<int64_t>(banned.size()) >= vocab)
    return Status::Error("logit_bias bans every token of the vocabulary: nothing could be generated");
  return Status::Ok();
}

uint64_t ChoiceSeed(uint64_t seed, int64_t index) {
  // An odd multiplier and xor keep the choices of one request apart and away
  // from the next unseeded request (whose seed is this one's plus a golden-ratio step).
  return index == 0 ? seed : seed ^ (static_cast<uint64_t>(index) * 0xd1b54a32d192ed03ull);
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
Sampler::~Sampler() = default;
Sampler::Sampler(Sampler&&) noexcept = default;

void Sampler::Constrain(std::shared_ptr<const TokenGrammar> grammar, int64_t max_tokens) {
  grammar_ = grammar ? std::make_unique<GrammarState>(std::move(grammar), max_tokens) : nullptr;
}

bool Sampler::constraint_failed() const { return grammar_ && grammar_->failed(); }

void Sampler::Grow(int32_t token) {
  if (token < static_cast<int32_t>(generated_count_.size())) return;
  generated_count_.resize(token + 1, 0);
  in_prompt_.resize(token + 1, 0);
}

void Sampler::Start(std::span<const int32_t> prompt, int64_t vocab) {
  if (!options_.penalized()) return;
  generated_count_.assign(vocab, 0);
  in_prompt_.assign(vocab, 0);
  seen_.clear();
  history_.clear();
  accepted_ = 0;
  if (options_.repetition_penalty == 1.0f) return;  // presence and frequency count generated tokens only
  for (int32_t t : prompt) {
    if (t < 0) continue;
    Grow(t);
    if (!in_prompt_[t]) in_prompt_[t] = 1, seen_.push_back(t);
  }
}

void Sampler::Accept(int32_t token) {
  ++accepted_;
  if (grammar_) grammar_->Accept(token);
  if (!options_.penalized() || token < 0) return;
  Grow(token);
  history_.push_back(token);
  if (generated_count_[token]++ == 0 && !in_prompt_[token]) seen_.push_back(token);
}

void Sampler::Rollback(int64_t n) {
  if (n >= accepted_) return;
  accepted_ = std::max<int64_t>(n, 0);
  if (grammar_) grammar_->Rollback(accepted_);
  if (!options_.penalized()) return;
  while (static_cast<int64_t>(history_.size()) > accepted_) {
    const int32_t t = history_.back();
    history_.pop_back();
    // Last in, first out: a token whose count returns to 0 was the last one to appear first.
    if (--generated_count_[t] == 0 && !in_prompt_[t]) seen_.pop_back();
  }
}

const float* Sampler::Adjusted(const float* logits, int64_t vocab) {
  if (!options_.adjusts_logits() && !grammar_) return logits;
  adjusted_.resize(vocab);
  std::copy(logits, logits + vocab, adjusted_.begin());
  float* x = adjusted_.data();
  if (grammar_) grammar_->Apply(x, vocab);
  for (const LogitBias& b : options_.logit_bias)
    if (b.token < vocab) x[b.token] = b.bias <= kBanBias ? -std::numeric_limits<float>::infinity() : x[b.token] + b.bias;
  const float rep = options_.repetition_penalty;
  for (int32_t t : seen_) {
    if (t >= vocab) continue;  // a draft head's shorter vocabulary
    if (rep != 1.0f) x[t] = x[t] > 0.0f ? x[t] / rep : x[t] * rep;
    if (const int32_t c = generated_count_[t]; c > 0)
      x[t] -= static_cast<float>(c) * options_.frequency_penalty + options_.presence_penalty;
  }
  return x;
}

int32_t Sampler::Greedy(const float* logits, int64_t vocab) { return ArgMax(Adjusted(logits, vocab), vocab); }

void Sampler::Distribution(const float* raw_logits, int64_t vocab, float* probs) {
  const float* logits = Adjusted(raw_logits, vocab);
  if (options_.greedy()) {
    std::fill(probs, probs + vocab, 0.0f);
    probs[ArgMax(logits, vocab)] = 1.0f;
    return;
  }
  // softmax(logits / T) in float64 accumulation for a stable normaliser.
  const float inv_t = 1.0f / options_.temperature;
  const float m = logits[ArgMax(logits, vocab)];
  if (!(m > -std::numeric_limits<float>::infinity())) {
    // logit_bias banned every id of this (draft head's shorter) vocabulary:
    // a point mass keeps the draft distribution valid; verification rejects it.
    std::fill(probs, probs + vocab, 0.0f);
    probs[0] = 1.0f;
    return;
  }
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
  if (options_.greedy()) return Greedy(logits, vocab);
  probs_.resize(vocab);
  Distribution(logits, vocab, probs_.data());
  return SampleFrom(probs_.data(), vocab);
}

}  // namespace dsv3
