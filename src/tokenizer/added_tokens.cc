// Added-token matching; see added_tokens.h.
#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/utf8.h"

namespace dsv3 {

void AddedVocabulary::Trie::Insert(std::string_view s, int32_t token) {
  if (s.empty()) return;
  first_byte[static_cast<uint8_t>(s[0])] = true;
  int32_t node = 0;
  for (char ch : s) {
    const uint8_t c = static_cast<uint8_t>(ch);
    auto& kids = nodes[node].children;
    auto it = std::lower_bound(kids.begin(), kids.end(), std::make_pair(c, int32_t{-1}));
    if (it != kids.end() && it->first == c) {
      node = it->second;
    } else {
      const int32_t next = static_cast<int32_t>(nodes.size());
      kids.insert(it, {c, next});
      nodes.emplace_back();
      node = next;
    }
  }
  if (nodes[node].token < 0) nodes[node].token = token;
}

int32_t AddedVocabulary::Trie::LongestAt(std::string_view text, size_t pos, size_t* len) const {
  int32_t node = 0, best = -1;
  for (size_t i = pos; i < text.size(); ++i) {
    const uint8_t c = static_cast<uint8_t>(text[i]);
    const auto& kids = nodes[node].children;
    auto it = std::lower_bound(kids.begin(), kids.end(), std::make_pair(c, int32_t{-1}));
    if (it == kids.end() || it->first != c) break;
    node = it->second;
    if (nodes[node].token >= 0) best = nodes[node].token, *len = i + 1 - pos;
  }
  return best;
}

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  bool single_word = false;
  for (size_t i = 0; i < tokens_.size(); ++i) {
    (tokens_[i].normalized ? normalized_ : raw_).Insert(tokens_[i].content, static_cast<int32_t>(i));
    single_word |= tokens_[i].single_word;
  }
  // Rust regex's Unicode \w: letters, marks, decimal digits, connectors.
  if (single_word) word_char_ = std::move(Regex::Compile("[\\p{L}\\p{M}\\p{Nd}\\p{Pc}]", "word").value());
}

bool AddedVocabulary::InsideWord(std::string_view text, size_t b, size_t e, RegexScratch& scratch) const {
  size_t prev = 0;
  if (b > 0) {
    utf8::Prev(text, b, &prev);
    if (word_char_->MatchesAt(text, prev, scratch)) return true;
  }
  return e < text.size() && word_char_->MatchesAt(text, e, scratch);
}

const AddedToken* AddedVocabulary::FindById(int32_t id) const {
  for (const auto& t : tokens_)
    if (t.id == id) return &t;
  return nullptr;
}

const AddedToken* AddedVocabulary::FindByContent(std::string_view content) const {
  for (const auto& t : tokens_)
    if (t.content == content) return &t;
  return nullptr;
}

void AddedVocabulary::SplitWith(const Trie& trie, std::string_view text, uint32_t base, RegexScratch& scratch,
                                std::vector<TextSegment>& out) const {
  size_t start = 0;  // first byte not yet emitted
  for (size_t pos = 0; pos < text.size(); ++pos) {
    if (!trie.first_byte[static_cast<uint8_t>(text[pos])]) continue;
    size_t len = 0;
    const int32_t t = trie.LongestAt(text, pos, &len);
    if (t < 0) continue;
    const AddedToken& tok = tokens_[t];
    size_t b = pos, e = pos + len;
    if (tok.single_word && InsideWord(text, b, e, scratch)) continue;
    if (tok.lstrip) {
      while (b > start) {
        size_t s = 0;
        if (!utf8::IsWhitespace(utf8::Prev(text, b, &s))) break;
        b = s;
      }
    }
    if (tok.rstrip) {
      while (e < text.size()) {
        size_t j = e;
        if (!utf8::IsWhitespace(utf8::Next(text, j))) break;
        e = j;
      }
    }
    if (b > start) out.push_back({base + static_cast<uint32_t>(start), base + static_cast<uint32_t>(b), -1});
    out.push_back({base + static_cast<uint32_t>(b), base + static_cast<uint32_t>(e), tok.id});
    start = e;
    pos = e - 1;
  }
  if (start < text.size()) out.push_back({base + static_cast<uint32_t>(start), base + static_cast<uint32_t>(text.size()), -1});
}

void AddedVocabulary::Split(std::string_view text, RegexScratch& scratch, std::vector<TextSegment>& out) const {
  out.clear();
  if (tokens_.empty()) {
    if (!text.empty()) out.push_back({0, static_cast<uint32_t>(text.size()), -1});
    return;
  }
  std::vector<TextSegment> first;
  SplitWith(raw_, text, 0, scratch, first);
  for (const TextSegment& s : first) {
    if (s.id >= 0) {
      out.push_back(s);
      continue;
    }
    SplitWith(normalized_, text.substr(s.begin, s.end - s.begin), s.begin, scratch, out);
  }
}

}  // namespace dsv3
