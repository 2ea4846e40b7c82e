// The pre-tokenizer of tokenizer.json: a chain of steps, each cutting every
// piece left by the previous step into smaller pieces. Supported steps are
// `Split` (regex or literal string pattern; behaviors Removed, Isolated,
// MergedWithPrevious, MergedWithNext, Contiguous; invert) and `ByteLevel`
// (optional GPT-2 regex split and prefix space; its byte-to-character map is
// implicit because dsv3 runs BPE on raw bytes). Anything else is rejected by
// name when the file is loaded.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"
#include "tokenizer/regex.h"

namespace dsv3 {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct PreTokenizerStep {
  std::unique_ptr<Regex> regex;  // null for a ByteLevel step without use_regex
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  bool add_prefix_space = false;  // ByteLevel only
};

// Reusable buffers for one Split call (one per thread).
struct PreTokenizerScratch {
  RegexScratch regex;
  std::vector<std::string_view> next;
  std::vector<RegexSpan> spans;
  std::deque<std::string> owned;  // pieces given a prefix space
};

// The GPT-2 pre-tokenizer regex used by ByteLevel(use_regex = true).
extern const char kGpt2Pattern[];
// DeepSeek-V3's three Split patterns, in order (SPEC §7.3).
extern const char* const kDeepSeekV3Patterns[3];

class PreTokenizer {
 public:
  // Parses the "pre_tokenizer" object (null means: no splitting); `has_byte_level`
  // reports whether a ByteLevel step was present.
  static Expected<PreTokenizer> FromJson(const nlohmann::json& j, bool* has_byte_level);
  // A chain of Isolated regex splits (used by the trainer).
  static Expected<PreTokenizer> FromPatterns(const std::vector<std::string>& patterns);

  // Cuts `text` into pieces (views into `text` or into scratch.owned).
  Status Split(std::string_view text, PreTokenizerScratch& scratch, std::vector<std::string_view>& pieces) const;

  bool empty() const { return steps_.empty(); }

 private:
  Status ParseStep(const nlohmann::json& j, const std::string& label, bool* has_byte_level);
  std::vector<PreTokenizerStep> steps_;
};

}  // namespace dsv3
