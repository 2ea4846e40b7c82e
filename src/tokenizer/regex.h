// A compiled PCRE2 pattern (8-bit, UTF + UCP, JIT) and the split HF's
// tokenizers performs with it: the subject is cut into the pieces the
// pattern matches and the gaps between them, each flagged, in order. The
// subject must be valid UTF-8 (the tokenizer repairs input first), so the
// per-match UTF check is skipped. HF runs its regexes on Oniguruma, whose
// Unicode tables are newer than PCRE2's: patterns are rewritten on compile
// so the common classes match what Oniguruma matches (AlignUnicodeClasses).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace dsv3 {

struct RegexSpan {
  uint32_t begin = 0, end = 0;  // byte offsets into the subject
  bool is_match = false;
};

class RegexScratch;

// The pattern with \p{L|M|N|P|S} widened to Oniguruma's tables and \s/\S
// as White_Space (see regex.cc); exposed for tests.
std::string AlignUnicodeClasses(const std::string& pattern);

class Regex {
 public:
  // The error names `label` (e.g. the tokenizer.json field) and the offset.
  static Expected<std::unique_ptr<Regex>> Compile(const std::string& pattern, const std::string& label);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends, for subject, matches and the gaps between them (non-empty
  // pieces only, offsets relative to subject) to `out`. Empty matches are
  // skipped. Returns an error only if PCRE2 fails (e.g. JIT stack limit).
  Status Split(std::string_view subject, RegexScratch& scratch, std::vector<RegexSpan>& out) const;

  // True when the pattern matches starting exactly at subject[pos].
  bool MatchesAt(std::string_view subject, size_t pos, RegexScratch& scratch) const;

  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
};

// Per-caller match state (match data + JIT stack): one per thread.
class RegexScratch {
 public:
  RegexScratch();
  ~RegexScratch();
  RegexScratch(const RegexScratch&) = delete;
  RegexScratch& operator=(const RegexScratch&) = delete;

 private:
  friend class Regex;
  void* match_data_ = nullptr;  // pcre2_match_data_8*
  void* context_ = nullptr;     // pcre2_match_context_8*
  void* jit_stack_ = nullptr;   // pcre2_jit_stack_8*
};

}  // namespace dsv3
