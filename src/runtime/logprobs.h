// Log-probabilities for the OpenAI `logprobs` / `top_logprobs` fields: the
// model's own distribution (softmax of the raw logits, before temperature and
// filters), the chosen token's value and the k most likely alternatives; and
// the whole log-softmax and KL divergence `dsv3 perplexity --kl-base` uses.
#pragma once

#include <cstdint>

#include "runtime/request.h"

namespace dsv3 {

// Returns log p(token) for logits [vocab] and writes the k most likely tokens
// to top[0..k) (most likely first, lower id first on ties). k <= vocab.
float TokenLogprobs(const float* logits, int64_t vocab, int32_t token, int k, TokenLogprob* top);

// out [vocab] = log softmax(logits), normalised in float64.
void LogSoftmax(const float* logits, int64_t vocab, float* out);

// KL(p || q) = sum_v p_v (log p_v - log q_v) in nats, from log-probabilities
// log_p [vocab] (the reference, e.g. a BF16 model) and log_q [vocab] (the
// model judged, e.g. its quantized file): how much of the reference's
// distribution the other loses, llama.cpp's quantization-quality measure.
double KlDivergence(const float* log_p, const float* log_q, int64_t vocab);

}  // namespace dsv3
