// Constrained decoding over a model's vocabulary: which tokens may come next
// so that the output stays a prefix of a document the grammar admits
// (json_grammar.h), as a mask the sampler applies before everything else.
//
// A TokenGrammar binds a grammar to a vocabulary (each id's bytes; special
// tokens never match text, end tokens are allowed once the document is
// complete). The mask of a grammar state is found by walking a byte trie of
// the vocabulary with the recogniser, pruning a subtree at the first byte
// the state refuses, and is cached by state: inside a string, between
// properties, after a key, the same state recurs and its mask is a lookup.
// A GrammarState follows one sequence: it accepts the tokens the sequence
// keeps and rolls back drafts (speculative decoding) like the sampler does.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/json_grammar.h"

namespace dsv3 {

// The bytes a special token stands for in a grammar: 0xFF (never part of
// UTF-8, so no JSON string can hold it) then the id. A special token (a
// tool-call marker) is allowed only where a grammar's raw text asks for
// exactly this, never inside a value.
std::string SpecialTokenText(int32_t id);

struct TokenVocabulary {
  std::vector<std::string> bytes;   // [vocab] each id's text as bytes ("" for ids without text)
  // [vocab] 1: a special/control token: it matches only SpecialTokenText(id)
  // in a grammar's raw text (its `bytes` are not used).
  std::vector<uint8_t> special;
  std::vector<int32_t> end_tokens;  // ids that end generation (EOS, stop tokens): allowed once complete
};

class TokenGrammar {
 public:
  TokenGrammar(CompiledSchema schema, const TokenVocabulary& vocab);

  int64_t vocab() const { return static_cast<int64_t>(special_.size()); }
  const JsonGrammar& grammar() const { return grammar_; }
  // allowed [vocab/64 words]: bit id set when token id may follow `state`.
  // Thread-safe (one cache for all sequences using this grammar).
  void Mask(const JsonState& state, std::vector<uint64_t>* allowed) const;
  // The tokens of Mask after which the document can still be completed in
  // `limit` bytes (JsonGrammar::MinToFinish), or if none can, those that
  // leave the fewest bytes; end tokens where it is complete. Not cached: it
  // depends on the budget.
  void BudgetMask(const JsonState& state, int64_t limit, std::vector<uint64_t>* allowed) const;
  // An upper bound on how much one token can raise MinToFinish.
  int64_t max_token_growth() const { return max_depth_ * grammar_.max_byte_growth(); }
  // Advances `state` over the token's bytes; false (state unchanged) if not allowed.
  bool Accept(JsonState* state, int32_t token) const;
  bool IsEnd(int32_t token) const;
  const std::vector<int32_t>& end_tokens() const { return end_tokens_; }

 private:
  struct TrieNode {
    std::vector<std::pair<uint8_t, int32_t>> children;  // byte -> node, sorted
    std::vector<int32_t> tokens;                         // ids whose bytes end here
  };
  // limit: allow only tokens after which MinToFinish <= limit (INT64_MAX: all).
  // fewest (optional): lowered to the fewest bytes left after any valid token.
  void Walk(int32_t node, const JsonState& state, int depth, int64_t limit, std::vector<uint64_t>* allowed,
            int64_t* fewest) const;
  void ClassifyStringTokens();
  void StringMask(const JsonState& state, int64_t room, int64_t limit, std::vector<uint64_t>* allowed,
                  int64_t* fewest) const;
  void AllowEnds(const JsonState& state, std::vector<uint64_t>* allowed) const;

  JsonGrammar grammar_;
  std::vector<std::string> bytes_;
  std::vector<uint8_t> special_;
  std::vector<int32_t> end_tokens_;
  std::vector<TrieNode> trie_;
  int64_t max_depth_ = 0;  // the longest token's bytes
  // Inside a string (JsonGrammar::StringRoom), a token that stays in the
  // string is allowed iff its characters fit; only those that close it
  // depend on what follows. string_chars_[id]: characters of a token that
  // stays inside (-1: it dies there); closers_: the ids that close a string.
  // string_pending_[id]: bytes such a token leaves owing (a split escape or character).
  std::vector<int32_t> string_chars_;
  std::vector<uint8_t> string_pending_;
  std::vector<int32_t> closers_;
  mutable std::mutex mu_;
  mutable std::unordered_map<std::string, std::vector<uint64_t>> cache_;
  mutable std::vector<JsonState> scratch_;  // one state per trie depth (under mu_)
};

// One sequence's position in the grammar.
class GrammarState {
 public:
  // max_tokens > 0: the sequence may generate at most that many tokens (its
  // end token included), and the document must be complete by then: once
  // the tokens left come near the fewest bytes that complete it, only tokens
  // that keep it completable in time are allowed (a long document closes
  // early rather than being cut off). <= 0: no budget.
  explicit GrammarState(std::shared_ptr<const TokenGrammar> grammar, int64_t max_tokens = 0);

  // Sets logits of tokens that may not come next to -inf (logits [vocab],
  // vocab may be a draft head's shorter one). When nothing may come next the
  // state is failed() and every logit but the first end token's is -inf.
  void Apply(float* logits, int64_t vocab);
  void Accept(int32_t token);   // a token the sequence keeps (must be allowed)
  void Rollback(int64_t n);     // keep the first n accepted tokens
  bool complete() const;        // a whole document has been read
  bool failed() const { return failed_; }

 private:
  void ComputeMask(const JsonState& state);

  std::shared_ptr<const TokenGrammar> grammar_;
  int64_t max_tokens_ = 0;
  std::vector<JsonState> history_;  // history_[i]: after i accepted tokens
  int64_t accepted_ = 0;
  std::vector<uint64_t> mask_;
  bool failed_ = false;
};

}  // namespace dsv3
