// Added tokens (tokenizer.json "added_tokens"): strings matched in the raw
// text before any pre-tokenization and mapped straight to their ids. As in
// HF, matching is leftmost-longest, first for the tokens with
// normalized=false over the whole text, then for normalized=true tokens in
// the gaps (dsv3 supports no normalizer, so both see the same text). Flags:
// single_word (only when no word character, as Unicode
// regex \\w sees it, touches either end), lstrip/rstrip (absorb the
// whitespace on that side into the token).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/regex.h"

namespace dsv3 {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false, normalized = false, lstrip = false, rstrip = false, single_word = false;
};

// A piece of text: plain text to pre-tokenize (id < 0) or one added token.
struct TextSegment {
  uint32_t begin = 0, end = 0;
  int32_t id = -1;
};

class AddedVocabulary {
 public:
  AddedVocabulary() = default;
  explicit AddedVocabulary(std::vector<AddedToken> tokens);

  // Cuts `text` into segments covering it in order.
  void Split(std::string_view text, RegexScratch& scratch, std::vector<TextSegment>& out) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  const AddedToken* FindById(int32_t id) const;
  const AddedToken* FindByContent(std::string_view content) const;

 private:
  // A byte trie over token contents; node 0 is the root.
  struct Trie {
    struct Node {
      std::vector<std::pair<uint8_t, int32_t>> children;  // sorted by byte
      int32_t token = -1;                                 // index into tokens_
    };
    std::vector<Node> nodes{Node{}};
    bool first_byte[256] = {};
    void Insert(std::string_view s, int32_t token);
    // Longest token starting at text[pos], or -1.
    int32_t LongestAt(std::string_view text, size_t pos, size_t* len) const;
  };
  void SplitWith(const Trie& trie, std::string_view text, uint32_t base, RegexScratch& scratch,
                 std::vector<TextSegment>& out) const;
  bool InsideWord(std::string_view text, size_t b, size_t e, RegexScratch& scratch) const;

  std::vector<AddedToken> tokens_;
  Trie raw_, normalized_;
  std::unique_ptr<Regex> word_char_;  // compiled only when a token is single_word
};

}  // namespace dsv3
