// Test helper: writes a synthetic token data directory (the layout `dsv3
// prepare-data` writes) so trainer tests need no tokenizer; the documents
// come from tests/synthetic_data.h.
//   make_token_data OUT_DIR [--vocab V] [--docs N] [--seed S] [--kind markov|empty|bad-id|small-vocab]
// empty: data.json with zero-token splits; bad-id: one id equal to the
// vocabulary size; small-vocab: data.json declares a tokenizer vocabulary of
// 2*V (a tokenizer/model-config vocabulary mismatch for a model of V).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "synthetic_data.h"

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
  dsv3::train::testing::SyntheticData data;
  if (kind != "empty") data = dsv3::train::testing::MarkovDocuments(vocab, docs, seed);
  DataWriterSplit& train = data.train;
  DataWriterSplit& val = data.validation;
  if (kind == "bad-id") train.documents[0][5] = static_cast<uint32_t>(vocab);
  DataInfo info;
  info.vocab_size = kind == "small-vocab" ? 2 * vocab : vocab;
  info.eos_token_id = 1;
  info.tokenizer = "synthetic markov chain (tests/synthetic_data.h)";
  const dsv3::Status st = dsv3::train::WriteTokenData(dir, info, train, val);
  if (!st.ok()) return std::fprintf(stderr, "make_token_data: %s\n", st.message().c_str()), 1;
  return 0;
}
