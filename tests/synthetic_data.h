// Synthetic token documents for trainer tests (no tokenizer needed): a fixed
// random Markov chain in which every token has four possible successors
// (probabilities .55/.25/.12/.08, entropy ~1.1 nats), so a model that learns
// the chain gets far below log(vocab). Token 1 separates documents; every
// tenth document goes to validation.
#pragma once

#include <array>
#include <cstdint>
#include <random>
#include <vector>

#include "train/data.h"

namespace dsv3::train::testing {

struct SyntheticData {
  DataWriterSplit train, validation;
};

inline SyntheticData MarkovDocuments(int vocab, int docs, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::array<uint32_t, 4>> successor(vocab);
  for (auto& s : successor)
    for (auto& x : s) x = 2 + rng() % (vocab - 2);
  std::discrete_distribution<int> pick({55, 25, 12, 8});
  SyntheticData out;
  for (int d = 0; d < docs; ++d) {
    std::vector<uint32_t> doc;
    uint32_t t = 2 + rng() % (vocab - 2);
    const int len = 40 + rng() % 200;
    for (int i = 0; i < len; ++i) doc.push_back(t), t = successor[t][pick(rng)];
    (d % 10 == 9 ? out.validation : out.train).documents.push_back(std::move(doc));
  }
  return out;
}

inline Status WriteMarkovData(const std::string& dir, int vocab, int docs, uint32_t seed) {
  SyntheticData s = MarkovDocuments(vocab, docs, seed);
  DataInfo info;
  info.vocab_size = vocab;
  info.eos_token_id = 1;
  info.tokenizer = "synthetic markov chain (tests/synthetic_data.h)";
  return WriteTokenData(dir, info, s.train, s.validation);
}

}  // namespace dsv3::train::testing
