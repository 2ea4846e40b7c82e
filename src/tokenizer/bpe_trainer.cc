// Incremental byte-level BPE training and tokenizer.json writing; see
// bpe_trainer.h.
#include "tokenizer/bpe_trainer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <queue>

#include "tokenizer/byte_level.h"
#include "tokenizer/chat.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/utf8.h"

namespace dsv3 {

const SpecialTokenSpec kLeadingSpecialTokens[3] = {
    {"<｜begin▁of▁sentence｜>", true, false}, {"<｜end▁of▁sentence｜>", true, false}, {"<｜▁pad▁｜>", true, false}};
// Flags as in DeepSeek-V3's tokenizer.json.
const SpecialTokenSpec kTrailingSpecialTokens[17] = {
    {"<think>", true, false},         {"</think>", true, false},
    {"<｜fim▁hole｜>", false, true},  {"<｜fim▁begin｜>", false, true},
    {"<｜fim▁end｜>", false, true},   {"<｜User｜>", false, true},
    {"<｜Assistant｜>", false, true}, {"<|EOT|>", true, true},
    {"<｜tool▁calls▁begin｜>", false, true},   {"<｜tool▁calls▁end｜>", false, true},
    {"<｜tool▁call▁begin｜>", false, true},    {"<｜tool▁call▁end｜>", false, true},
    {"<｜tool▁outputs▁begin｜>", false, true}, {"<｜tool▁outputs▁end｜>", false, true},
    {"<｜tool▁output▁begin｜>", false, true},  {"<｜tool▁output▁end｜>", false, true},
    {"<｜tool▁sep｜>", false, true}};

namespace {

constexpr int32_t kFirstByteId = 3;  // after BOS, EOS, PAD
constexpr size_t kChunkBytes = 1 << 20;

uint64_t Key(int32_t a, int32_t b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b); }
int32_t Left(uint64_t k) { return static_cast<int32_t>(k >> 32); }
int32_t Right(uint64_t k) { return static_cast<int32_t>(k & 0xFFFFFFFFu); }

struct HeapEntry {
  int64_t count;
  uint64_t pair;
  // Max-heap on count; on ties the smaller pair comes first.
  bool operator<(const HeapEntry& o) const { return count != o.count ? count < o.count : pair > o.pair; }
};

struct Word {
  std::vector<int32_t> sym;
  int64_t count;
};

// Merges every (a, b) in w left to right; false when there was none.
bool MergeInWord(Word& w, int32_t a, int32_t b, int32_t merged) {
  bool any = false;
  size_t out = 0;
  for (size_t i = 0; i < w.sym.size(); ++i) {
    if (i + 1 < w.sym.size() && w.sym[i] == a && w.sym[i + 1] == b) {
      w.sym[out++] = merged;
      ++i;
      any = true;
    } else {
      w.sym[out++] = w.sym[i];
    }
  }
  w.sym.resize(out);
  return any;
}

// Pair statistics over all words, kept current as merges rewrite words.
struct TrainState {
  std::vector<Word> words;
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int32_t>> pair_words;  // may hold stale entries
  std::priority_queue<HeapEntry> heap;
  std::unordered_map<uint64_t, int64_t> delta;  // scratch of one merge

  void Index(int32_t wi, size_t i) {
    auto& list = pair_words[Key(words[wi].sym[i], words[wi].sym[i + 1])];
    if (list.empty() || list.back() != wi) list.push_back(wi);
  }
  // Rewrites every word holding (a, b) and updates the counts and the heap.
  void Merge(uint64_t pair, int32_t merged);
};

void TrainState::Merge(uint64_t pair, int32_t merged) {
  const int32_t a = Left(pair), b = Right(pair);
  std::vector<int32_t> touched = std::move(pair_words[pair]);
  pair_words.erase(pair);
  delta.clear();
  std::vector<int32_t> before;
  for (int32_t wi : touched) {
    Word& w = words[wi];
    before = w.sym;
    if (!MergeInWord(w, a, b, merged)) continue;  // stale index entry
    for (size_t i = 0; i + 1 < before.size(); ++i) delta[Key(before[i], before[i + 1])] -= w.count;
    for (size_t i = 0; i + 1 < w.sym.size(); ++i) {
      delta[Key(w.sym[i], w.sym[i + 1])] += w.count;
      if (w.sym[i] == merged || w.sym[i + 1] == merged) Index(wi, i);  // only new pairs need indexing
    }
  }
  for (const auto& [k, d] : delta) {
    if (d == 0) continue;
    const int64_t c = (pair_count[k] += d);
    if (d > 0) heap.push({c, k});  // a drop is caught lazily when popped
    if (c == 0) pair_count.erase(k);
  }
}

// Words in sorted order, one symbol per byte: with the heap's tie-break this
// makes training deterministic.
void InitState(std::unordered_map<std::string, int64_t>& counts, TrainState& st) {
  std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
  counts.clear();
  std::sort(sorted.begin(), sorted.end());
  st.words.reserve(sorted.size());
  for (const auto& [text, count] : sorted) {
    Word w{{}, count};
    for (char c : text) w.sym.push_back(kFirstByteId + static_cast<uint8_t>(c));
    const int32_t wi = static_cast<int32_t>(st.words.size());
    st.words.push_back(std::move(w));
    const Word& word = st.words.back();
    for (size_t i = 0; i + 1 < word.sym.size(); ++i) {
      st.pair_count[Key(word.sym[i], word.sym[i + 1])] += count;
      st.Index(wi, i);
    }
  }
  for (const auto& [k, c] : st.pair_count) st.heap.push({c, k});
}

}  // namespace

Status BpeTrainer::AddText(std::string_view text) {
  static_assert(sizeof(kLeadingSpecialTokens) / sizeof(kLeadingSpecialTokens[0]) == kFirstByteId);
  std::string repaired;
  if (!utf8::IsValid(text)) {
    repaired = utf8::Lossy(text);
    text = repaired;
  }
  DSV3_ASSIGN_OR_RETURN(PreTokenizer pre, PreTokenizer::FromPatterns({kDeepSeekV3Patterns[0], kDeepSeekV3Patterns[1],
                                                                      kDeepSeekV3Patterns[2]}));
  PreTokenizerScratch scratch;
  std::vector<std::string_view> pieces;
  bytes_ += static_cast<int64_t>(text.size());
  // Chunks end after a '\n' so pieces rarely straddle a cut.
  size_t start = 0;
  while (start < text.size()) {
    size_t end = std::min(text.size(), start + kChunkBytes);
    if (end < text.size()) {
      const size_t nl = text.rfind('\n', end);
      if (nl != std::string_view::npos && nl > start) end = nl + 1;
      while (end < text.size() && (static_cast<uint8_t>(text[end]) & 0xC0) == 0x80) ++end;
    }
    DSV3_RETURN_IF_ERROR(pre.Split(text.substr(start, end - start), scratch, pieces));
    for (std::string_view p : pieces) ++counts_[std::string(p)];
    words_ += static_cast<int64_t>(pieces.size());
    start = end;
  }
  return Status::Ok();
}

Expected<BpeTrainResult> BpeTrainer::Train() {
  const int64_t fixed = kFirstByteId + 256 + static_cast<int64_t>(std::size(kTrailingSpecialTokens));
  if (options_.vocab_size < fixed)
    return Status::Error("--vocab-size must be at least " + std::to_string(fixed) +
                         " (3 + 17 special tokens and 256 byte tokens)");
  BpeTrainResult r;
  r.bytes = bytes_, r.words = words_, r.unique_words = static_cast<int64_t>(counts_.size());
  for (const auto& s : kLeadingSpecialTokens) r.vocab.push_back(s.content);
  std::unordered_map<std::string, int32_t> ids;
  for (int b = 0; b < 256; ++b) {
    r.vocab.push_back(std::string(1, static_cast<char>(b)));
    ids[r.vocab.back()] = kFirstByteId + b;
  }
  TrainState st;
  InitState(counts_, st);
  const int64_t wanted = options_.vocab_size - fixed;
  while (static_cast<int64_t>(r.vocab.size()) - kFirstByteId - 256 < wanted && !st.heap.empty()) {
    const HeapEntry top = st.heap.top();
    st.heap.pop();
    auto it_count = st.pair_count.find(top.pair);
    const int64_t current = it_count == st.pair_count.end() ? 0 : it_count->second;
    if (current != top.count) {  // stale: re-queue with the current count
      if (current > 0) st.heap.push({current, top.pair});
      continue;
    }
    if (current < std::max<int64_t>(options_.min_frequency, 1)) break;
    // Two merges can spell the same bytes; they then share one id (as in HF).
    const std::string bytes = r.vocab[Left(top.pair)] + r.vocab[Right(top.pair)];
    auto [it, fresh] = ids.emplace(bytes, static_cast<int32_t>(r.vocab.size()));
    if (fresh) r.vocab.push_back(bytes);
    r.merges.emplace_back(Left(top.pair), Right(top.pair));
    st.Merge(top.pair, it->second);
    if (options_.progress && r.merges.size() % 256 == 0) options_.progress(r.merges.size(), wanted);
  }
  if (options_.progress) options_.progress(r.merges.size(), wanted);
  for (const auto& s : kTrailingSpecialTokens) r.vocab.push_back(s.content);
  return r;
}

}  // namespace dsv3
