// Byte-level BPE training (`dsv3 train-tokenizer`): text is pre-tokenized
// with DeepSeek-V3's regexes, identical pieces are counted once, and the
// most frequent adjacent pair is merged repeatedly. Pair counts are kept
// incrementally: a merge only revisits the words that contain the pair
// (an index from pair to words) and a max-heap with lazy re-insertion picks
// the next pair, so each step costs about the size of the words it touches.
// Ties go to the smaller (left id, right id): the result is deterministic.
// The output is a tokenizer.json + tokenizer_config.json that HF tokenizers
// and dsv3 load, with DeepSeek-V3's special tokens and the dsv3 chat template.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace dsv3 {

struct BpeTrainOptions {
  int64_t vocab_size = 8192;  // total ids, special tokens included
  int64_t min_frequency = 2;  // stop when the best pair occurs fewer times
  // Called now and then with (merges done, merges wanted).
  std::function<void(int64_t, int64_t)> progress;
};

struct BpeTrainResult {
  std::vector<std::string> vocab;  // id -> token bytes (special tokens: their text)
  std::vector<std::pair<int32_t, int32_t>> merges;  // in rank order, ids into vocab
  int64_t words = 0, unique_words = 0, bytes = 0;
};

// The special tokens a trained tokenizer carries: BOS, EOS, PAD at ids 0, 1,
// 2, then DeepSeek-V3's chat, tool, FIM and think tokens after the merges.
struct SpecialTokenSpec {
  const char* content;
  bool special, normalized;
};
extern const SpecialTokenSpec kLeadingSpecialTokens[3];
extern const SpecialTokenSpec kTrailingSpecialTokens[17];

class BpeTrainer {
 public:
  explicit BpeTrainer(BpeTrainOptions options) : options_(std::move(options)) {}
  // Adds text (any size; invalid UTF-8 is repaired first).
  Status AddText(std::string_view text);
  Expected<BpeTrainResult> Train();

 private:
  BpeTrainOptions options_;
  std::unordered_map<std::string, int64_t> counts_;
  int64_t bytes_ = 0, words_ = 0;
};

// Writes DIR/tokenizer.json and DIR/tokenizer_config.json.
Status WriteTrainedTokenizer(const BpeTrainResult& result, const std::string& dir);

}  // namespace dsv3
