// The BPE model on raw bytes: a vocabulary of byte strings and a ranked
// list of merges. A word (one pre-tokenized piece) starts as one symbol per
// byte and the lowest-ranked adjacent pair is merged until none is left
// (leftmost first on ties), driven by a min-heap over adjacent pairs with
// lazy invalidation: O(n log n) per word. Results for short words are
// cached, because natural text repeats its words. Not thread-safe (the
// cache is shared): Tokenizer serialises its calls.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace dsv3 {

// Lets string-keyed maps be searched with a string_view (no allocation).
struct StringViewHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringViewHash, std::equal_to<>>;

class Bpe {
 public:
  // vocab[id] = the token's bytes ("" for ids the vocabulary skips);
  // mergeable[id] = the token may take part in merges (false for tokens
  // whose text is outside the byte alphabet: they can only be decoded).
  // merges = (left bytes, right bytes) pairs in rank order. The error
  // names the first merge whose parts or result is not in the vocabulary.
  static Expected<Bpe> Build(std::vector<std::string> vocab, const std::vector<bool>& mergeable,
                             const std::vector<std::pair<std::string, std::string>>& merges, bool ignore_merges);

  Bpe() = default;
  Bpe(Bpe&& other) noexcept;
  Bpe& operator=(Bpe&& other) noexcept;

  // Appends the ids of `word` to `out`. Bytes without a single-byte token
  // are dropped (HF without unk_token/byte_fallback does the same).
  void EncodeWord(std::string_view word, std::vector<int32_t>& out) const;

  int32_t size() const { return static_cast<int32_t>(vocab_.size()); }
  const std::string& bytes(int32_t id) const { return vocab_[id]; }
  bool has(int32_t id) const { return id >= 0 && id < size() && present_[id]; }
  int32_t Find(std::string_view bytes) const;  // -1 when absent

 private:
  struct Merge {
    int32_t rank, merged;
  };
  static uint64_t Key(int32_t a, int32_t b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b); }
  void MergeWord(std::string_view word, std::vector<int32_t>& out) const;

  std::vector<std::string> vocab_;  // id -> bytes
  std::vector<bool> present_;
  StringMap<int32_t> ids_;  // bytes -> id
  std::unordered_map<uint64_t, Merge> merges_;    // (left id, right id) -> rank, merged id
  int32_t byte_ids_[256];
  bool ignore_merges_ = false;

  // Word cache: bytes -> ids, bounded.
  mutable StringMap<std::vector<int32_t>> cache_;
};

}  // namespace dsv3
