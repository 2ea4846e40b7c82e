// Test helper: writes a synthetic token data directory (the layout `dsv3
// prepare-data` writes) so trainer tests need no tokenizer. Documents are
// drawn from a fixed random Markov chain in which every token has four
// possible successors (probabilities .55/.25/.12/.08, entropy ~1.1 nats), so
// a model that learns the chain gets far below log(vocab).
//   make_token_data OUT_DIR [--vocab V] [--docs N] [--seed S] [--kind markov|empty|bad-id|small-vocab]
// empty: data.json with zero-token splits; bad-id: one id equal to the
// vocabulary size; small-vocab: data.json declares a tokenizer vocabulary of
// 2*V (a tokenizer/model-config vocabulary mismatch for a model of V).
#include <array>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "train/data.h"

using dsv3::train::DataInfo;
using dsv3::train::DataWriterSplit;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: make_token_data OUT_DIR [--vocab V] [--docs N] [--seed S] [--kind K]\n");
    return 2;
  }
  const std::string dir = argv[1];
  int vocab = 64, docs = 400, seed = 1;
  std::string kind = "markov";
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--vocab") vocab = std::atoi(v.c_str());
    else if (k == "--docs") docs = std::atoi(v.c_str());
    else if (k == "--seed") seed = std::atoi(v.c_str());
    else if (k == "--kind") kind = v;
    else return std::fprintf(stderr, "make_token_data: unknown option %s\n", k.c_str()), 2;
  }
  std::mt19937 rng(seed);
  // successor[t][j]: the j-th possible next token after t (token 1 is the separator).
  std::vector<std::array<uint32_t, 4>> successor(vocab);
  for (auto& s : successor)
    for (auto& x : s) x = 2 + rng() % (vocab - 2);
  std::discrete_distribution<int> pick({55, 25, 12, 8});
  DataWriterSplit train, val;
  for (int d = 0; kind != "empty" && d < docs; ++d) {
    std::vector<uint32_t> doc;
    uint32_t t = 2 + rng() % (vocab - 2);
    const int len = 40 + rng() % 200;
    for (int i = 0; i < len; ++i) doc.push_back(t), t = successor[t][pick(rng)];
    (d % 10 == 9 ? val : train).documents.push_back(std::move(doc));
  }
  if (kind == "bad-id") train.documents[0][5] = static_cast<uint32_t>(vocab);
  DataInfo info;
  info.vocab_size = kind == "small-vocab" ? 2 * vocab : vocab;
  info.eos_token_id = 1;
  info.tokenizer = "synthetic markov chain (tests/make_token_data.cc)";
  const dsv3::Status st = dsv3::train::WriteTokenData(dir, info, train, val);
  if (!st.ok()) return std::fprintf(stderr, "make_token_data: %s\n", st.message().c_str()), 1;
  return 0;
}
