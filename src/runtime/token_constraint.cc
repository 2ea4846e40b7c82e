// Token masks from a byte-level grammar; see token_constraint.h.
#include "runtime/token_constraint.h"

#include <algorithm>
#include <limits>

namespace dsv3 {

namespace {
void Allow(std::vector<uint64_t>* bits, int64_t id) { (*bits)[id >> 6] |= uint64_t{1} << (id & 63); }
bool Any(const std::vector<uint64_t>& bits) {
  return std::any_of(bits.begin(), bits.end(), [](uint64_t w) { return w != 0; });
}
}  // namespace

std::string SpecialTokenText(int32_t id) {
  std::string s = "\xFF";
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((static_cast<uint32_t>(id) >> (8 * i)) & 0xFF));
  return s;
}

TokenGrammar::TokenGrammar(CompiledSchema schema, const TokenVocabulary& vocab)
    : grammar_(std::move(schema)), bytes_(vocab.bytes), special_(vocab.special), end_tokens_(vocab.end_tokens) {
  special_.resize(bytes_.size(), 0);
  // Ordinary tokens holding byte 0xFF (a byte-level vocabulary's lone 0xFF)
  // are left out: no UTF-8 text holds that byte, and they would spell a
  // marker's stand-in (SpecialTokenText) byte by byte instead of the marker.
  for (size_t id = 0; id < bytes_.size(); ++id) {
    if (special_[id]) bytes_[id] = SpecialTokenText(static_cast<int32_t>(id));
    else if (bytes_[id].find('\xFF') != std::string::npos) bytes_[id].clear();
  }
  trie_.emplace_back();
  for (size_t id = 0; id < bytes_.size(); ++id) {
    if (bytes_[id].empty() || IsEnd(static_cast<int32_t>(id))) continue;
    int32_t node = 0;
    for (unsigned char c : bytes_[id]) {
      auto& ch = trie_[node].children;
      auto it = std::lower_bound(ch.begin(), ch.end(), std::make_pair(c, int32_t{0}),
                                 [](const auto& x, const auto& y) { return x.first < y.first; });
      if (it != ch.end() && it->first == c) {
        node = it->second;
        continue;
      }
      const int32_t next = static_cast<int32_t>(trie_.size());
      ch.insert(it, {c, next});
      trie_.emplace_back();
      node = next;
    }
    trie_[node].tokens.push_back(static_cast<int32_t>(id));
    max_depth_ = std::max<int64_t>(max_depth_, bytes_[id].size());
  }
  ClassifyStringTokens();
}

void TokenGrammar::ClassifyStringTokens() {
  const JsonGrammar probe = JsonGrammar::StringProbe();
  JsonState open = probe.Start(), cur, next;
  probe.Advance(open, '"', &cur);
  open = cur;
  string_chars_.assign(bytes_.size(), -1);
  string_pending_.assign(bytes_.size(), 0);
  for (size_t id = 0; id < bytes_.size(); ++id) {
    if (bytes_[id].empty() || special_[id] || IsEnd(static_cast<int32_t>(id))) continue;
    cur = open;
    bool closed = false;
    for (unsigned char c : bytes_[id]) {
      probe.Advance(cur, c, &next);
      std::swap(cur, next);
      if (cur.dead()) break;
      if (probe.Accepting(cur)) {  // the string closed: what follows is the parent's business
        closed = true;
        break;
      }
    }
    if (closed) {
      closers_.push_back(static_cast<int32_t>(id));
    } else if (!cur.dead()) {
      string_chars_[id] = static_cast<int32_t>(probe.StringChars(cur));
      string_pending_[id] = static_cast<uint8_t>(probe.StringPending(cur));
    }
  }
}

void TokenGrammar::StringMask(const JsonState& state, int64_t room, int64_t limit, std::vector<uint64_t>* allowed,
                              int64_t* fewest) const {
  if (limit == INT64_MAX) {
    for (size_t id = 0; id < string_chars_.size(); ++id)
      if (string_chars_[id] >= 0 && string_chars_[id] <= room) Allow(allowed, id);
  } else {
    // A token that stays in the string leaves what lies below it as it was:
    // the bytes to finish are the string's own (characters still needed,
    // bytes owed, the quote) plus the stack's below it.
    thread_local std::vector<JsonGrammar::StringTail> tails;
    grammar_.StringTails(state, &tails);
    for (size_t id = 0; id < string_chars_.size(); ++id) {
      const int64_t chars = string_chars_[id];
      if (chars < 0 || chars > room) continue;
      for (const auto& t : tails) {
        if (chars > t.room) continue;
        const int64_t rest = t.below + string_pending_[id] + std::max<int64_t>(t.need - chars, 0) + 1;
        if (fewest) *fewest = std::min(*fewest, rest);
        if (rest <= limit) {
          Allow(allowed, id);
          break;
        }
      }
    }
  }
  for (int32_t id : closers_) {
    JsonState copy = state;
    if (!Accept(&copy, id)) continue;
    const int64_t rest = limit == INT64_MAX ? 0 : grammar_.MinToFinish(copy);
    if (fewest) *fewest = std::min(*fewest, rest);
    if (rest <= limit) Allow(allowed, id);
  }
}

bool TokenGrammar::IsEnd(int32_t token) const {
  return std::find(end_tokens_.begin(), end_tokens_.end(), token) != end_tokens_.end();
}

void TokenGrammar::Walk(int32_t node, const JsonState& state, int depth, int64_t limit,
                        std::vector<uint64_t>* allowed, int64_t* fewest) const {
  JsonState& next = scratch_[depth];  // sized by Mask to the deepest trie path
  for (const auto& [byte, child] : trie_[node].children) {
    grammar_.Advance(state, byte, &next);
    if (next.dead()) continue;
    if (!trie_[child].tokens.empty()) {
      const int64_t rest = limit == INT64_MAX ? 0 : grammar_.MinToFinish(next);
      if (fewest) *fewest = std::min(*fewest, rest);
      if (rest <= limit)
        for (int32_t id : trie_[child].tokens) Allow(allowed, id);
    }
    if (!trie_[child].children.empty()) {
      // `next` is overwritten by the recursion's siblings at depth + 1 only.
      Walk(child, next, depth + 1, limit, allowed, fewest);
    }
  }
}

void TokenGrammar::AllowEnds(const JsonState& state, std::vector<uint64_t>* allowed) const {
  if (!grammar_.Accepting(state)) return;
  for (int32_t id : end_tokens_)
    if (id >= 0 && id < vocab()) Allow(allowed, id);
}

void TokenGrammar::Mask(const JsonState& state, std::vector<uint64_t>* allowed) const {
  const std::string key = state.Key();
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = cache_.find(key); it != cache_.end()) {
    *allowed = it->second;
    return;
  }
  allowed->assign((vocab() + 63) / 64, 0);
  if (const int64_t room = grammar_.StringRoom(state); room >= 0) {
    StringMask(state, room, INT64_MAX, allowed, nullptr);  // a string's characters: counts, and the few tokens that close it
  } else {
    scratch_.resize(max_depth_ + 1);
    Walk(0, state, 0, INT64_MAX, allowed, nullptr);
  }
  AllowEnds(state, allowed);
  if (cache_.size() >= 4096) cache_.clear();  // bounded: a long run of distinct states starts over
  cache_.emplace(key, *allowed);
}

void TokenGrammar::BudgetMask(const JsonState& state, int64_t limit, std::vector<uint64_t>* allowed) const {
  allowed->assign((vocab() + 63) / 64, 0);
  // A budget too tight for any token's bytes (tokens of several bytes may
  // still fit it): the tokens that leave the fewest bytes to write.
  int64_t fewest = JsonGrammar::kUnfinishable;
  if (const int64_t room = grammar_.StringRoom(state); room >= 0) {
    StringMask(state, room, limit, allowed, &fewest);
    if (!Any(*allowed) && fewest < JsonGrammar::kUnfinishable) StringMask(state, room, fewest, allowed, &fewest);
  } else {
    std::lock_guard<std::mutex> lock(mu_);  // scratch_ is shared
    scratch_.resize(max_depth_ + 1);
    Walk(0, state, 0, limit, allowed, &fewest);
    if (!Any(*allowed) && fewest < JsonGrammar::kUnfinishable) Walk(0, state, 0, fewest, allowed, &fewest);
  }
  AllowEnds(state, allowed);
}

bool TokenGrammar::Accept(JsonState* state, int32_t token) const {
  if (token < 0 || token >= vocab()) return false;
  if (IsEnd(token)) return grammar_.Accepting(*state);
  if (bytes_[token].empty()) return false;
  JsonState cur = *state, next;
  for (unsigned char c : bytes_[token]) {
    grammar_.Advance(cur, c, &next);
    if (next.dead()) return false;
    std::swap(cur, next);
  }
  *state = std::move(cur);
  return true;
}

GrammarState::GrammarState(std::shared_ptr<const TokenGrammar> grammar, int64_t max_tokens)
    : grammar_(std::move(grammar)), max_tokens_(max_tokens) {
  history_.push_back(grammar_->grammar().Start());
}

void GrammarState::ComputeMask(const JsonState& state) {
  if (max_tokens_ > 0) {
    // After this token, the tokens left less the end token's: the bytes the
    // rest of the document may take, at one byte per token at the worst.
    const int64_t limit = max_tokens_ - accepted_ - 2;
    if (grammar_->grammar().MinToFinish(state) + grammar_->max_token_growth() > limit) {
      grammar_->BudgetMask(state, limit, &mask_);
      if (Any(mask_)) return;  // empty only where no token continues at all: Apply reports it
    }
  }
  grammar_->Mask(state, &mask_);
}

void GrammarState::Apply(float* logits, int64_t vocab) {
  failed_ = false;
  ComputeMask(history_[accepted_]);
  const int64_t n = std::min(vocab, grammar_->vocab());
  bool any = false;
  for (int64_t id = 0; id < n; ++id) {
    if ((mask_[id >> 6] >> (id & 63)) & 1) {
      any = true;
    } else {
      logits[id] = -std::numeric_limits<float>::infinity();
    }
  }
  for (int64_t id = n; id < vocab; ++id) logits[id] = -std::numeric_limits<float>::infinity();
  if (any) return;
  // Nothing continues the document: end with an end token (the caller reports failed()).
  failed_ = true;
  for (int32_t id : grammar_->end_tokens())
    if (id >= 0 && id < vocab) return void(logits[id] = 0.0f);
}

void GrammarState::Accept(int32_t token) {
  if (static_cast<int64_t>(history_.size()) <= accepted_ + 1) history_.emplace_back();
  JsonState& next = history_[accepted_ + 1];
  next = history_[accepted_];
  if (!grammar_->Accept(&next, token)) failed_ = true;
  ++accepted_;
}

void GrammarState::Rollback(int64_t n) {
  if (n >= accepted_) return;
  accepted_ = std::max<int64_t>(n, 0);
  failed_ = false;  // a dead end among rejected drafts is not the sequence's
}

bool GrammarState::complete() const { return grammar_->grammar().Accepting(history_[accepted_]); }

}  // namespace dsv3
