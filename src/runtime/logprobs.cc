// Log-softmax of one row, a k-best scan and KL divergence; see logprobs.h.
#include "runtime/logprobs.h"

#include <cmath>

namespace dsv3 {

float TokenLogprobs(const float* logits, int64_t vocab, int32_t token, int k, TokenLogprob* top) {
  float m = logits[0];
  for (int64_t i = 1; i < vocab; ++i) m = logits[i] > m ? logits[i] : m;
  double sum = 0.0;  // float64 normaliser: vocabularies are large
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i] - m));
  const float lse = m + static_cast<float>(std::log(sum));
  // Insertion into a sorted array of k: k <= 20, and most logits fail the
  // first comparison, so this is one pass over the row.
  int have = 0;
  for (int64_t i = 0; i < vocab && k > 0; ++i) {
    const float v = logits[i];
    if (have == k && !(v > top[k - 1].logprob)) continue;
    int j = have < k ? have++ : k - 1;
    while (j > 0 && v > top[j - 1].logprob) {
      top[j] = top[j - 1];
      --j;
    }
    top[j] = TokenLogprob{static_cast<int32_t>(i), v};
  }
  for (int j = 0; j < have; ++j) top[j].logprob -= lse;
  return logits[token] - lse;
}

void LogSoftmax(const float* logits, int64_t vocab, float* out) {
  float m = logits[0];
  for (int64_t i = 1; i < vocab; ++i) m = logits[i] > m ? logits[i] : m;
  double sum = 0.0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i] - m));
  const double lse = static_cast<double>(m) + std::log(sum);
  for (int64_t i = 0; i < vocab; ++i) out[i] = static_cast<float>(static_cast<double>(logits[i]) - lse);
}

double KlDivergence(const float* log_p, const float* log_q, int64_t vocab) {
  double kl = 0.0;
  for (int64_t i = 0; i < vocab; ++i) {
    const double lp = log_p[i];
    kl += std::exp(lp) * (lp - static_cast<double>(log_q[i]));
  }
  return kl;
}

}  // namespace dsv3
