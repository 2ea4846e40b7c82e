// BPE merges with a min-heap over adjacent pairs; see bpe.h.
#include "tokenizer/bpe.h"

#include <algorithm>
#include <queue>

namespace dsv3 {

namespace {

constexpr size_t kMaxCachedWordBytes = 64;
constexpr size_t kMaxCacheEntries = 1 << 18;

// One symbol of a word being merged: a doubly linked list over an array.
struct Symbol {
  int32_t id;
  int32_t prev, next;  // indices, -1 at the ends
  bool alive;
};

// A candidate merge of symbol `pos` with its right neighbour.
struct Candidate {
  int32_t rank, pos, merged;
  bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

}  // namespace

Bpe::Bpe(Bpe&& o) noexcept
    : vocab_(std::move(o.vocab_)), present_(std::move(o.present_)), ids_(std::move(o.ids_)),
      merges_(std::move(o.merges_)), ignore_merges_(o.ignore_merges_), cache_(std::move(o.cache_)) {
  std::copy(o.byte_ids_, o.byte_ids_ + 256, byte_ids_);
}

Bpe& Bpe::operator=(Bpe&& o) noexcept {
  vocab_ = std::move(o.vocab_), present_ = std::move(o.present_), ids_ = std::move(o.ids_);
  merges_ = std::move(o.merges_), ignore_merges_ = o.ignore_merges_, cache_ = std::move(o.cache_);
  std::copy(o.byte_ids_, o.byte_ids_ + 256, byte_ids_);
  return *this;
}

Expected<Bpe> Bpe::Build(std::vector<std::string> vocab, const std::vector<bool>& mergeable,
                         const std::vector<std::pair<std::string, std::string>>& merges, bool ignore_merges) {
  Bpe bpe;
  bpe.ignore_merges_ = ignore_merges;
  bpe.present_.assign(vocab.size(), false);
  bpe.ids_.reserve(vocab.size() * 2);
  for (size_t id = 0; id < vocab.size(); ++id) {
    if (vocab[id].empty()) continue;
    bpe.present_[id] = true;
    if (id < mergeable.size() && mergeable[id]) bpe.ids_.emplace(vocab[id], static_cast<int32_t>(id));
  }
  bpe.vocab_ = std::move(vocab);
  for (int b = 0; b < 256; ++b) bpe.byte_ids_[b] = bpe.Find(std::string(1, static_cast<char>(b)));
  bpe.merges_.reserve(merges.size() * 2);
  for (size_t r = 0; r < merges.size(); ++r) {
    const int32_t a = bpe.Find(merges[r].first), b = bpe.Find(merges[r].second);
    const int32_t m = bpe.Find(merges[r].first + merges[r].second);
    if (a < 0 || b < 0 || m < 0)
      return Status::Error("model.merges[" + std::to_string(r) + "]: " +
                           (a < 0 ? "left part" : b < 0 ? "right part" : "merged token") + " is not in model.vocab");
    // A repeated pair keeps its first (lowest) rank, as HF does.
    bpe.merges_.emplace(Key(a, b), Merge{static_cast<int32_t>(r), m});
  }
  return bpe;
}

int32_t Bpe::Find(std::string_view bytes) const {
  auto it = ids_.find(bytes);
  return it == ids_.end() ? -1 : it->second;
}

void Bpe::EncodeWord(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    const int32_t id = Find(word);
    if (id >= 0) return out.push_back(id);
  }
  if (word.size() == 1) {
    const int32_t id = byte_ids_[static_cast<uint8_t>(word[0])];
    if (id >= 0) out.push_back(id);
    return;
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    auto it = cache_.find(word);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t start = out.size();
  MergeWord(word, out);
  if (cacheable) {
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::string(word), std::vector<int32_t>(out.begin() + start, out.end()));
  }
}

void Bpe::MergeWord(std::string_view word, std::vector<int32_t>& out) const {
  std::vector<Symbol> sym;  // [n] one per byte that has a token
  sym.reserve(word.size());
  for (char c : word) {
    const int32_t id = byte_ids_[static_cast<uint8_t>(c)];
    if (id < 0) continue;
    const int32_t i = static_cast<int32_t>(sym.size());
    sym.push_back({id, i - 1, -1, true});
    if (i > 0) sym[i - 1].next = i;
  }
  std::vector<Candidate> storage;
  storage.reserve(sym.size());
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap(std::greater<Candidate>(),
                                                                                       std::move(storage));
  auto push_pair = [&](int32_t left) {
    if (left < 0 || sym[left].next < 0) return;
    auto it = merges_.find(Key(sym[left].id, sym[sym[left].next].id));
    if (it != merges_.end()) heap.push({it->second.rank, left, it->second.merged});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(sym.size()); ++i) push_pair(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Symbol& left = sym[c.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = sym[left.next];
    // Stale entry: one side changed since it was pushed.
    auto it = merges_.find(Key(left.id, right.id));
    if (it == merges_.end() || it->second.merged != c.merged) continue;
    left.id = c.merged;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) sym[right.next].prev = c.pos;
    push_pair(left.prev);
    push_pair(c.pos);
  }
  for (int32_t i = sym.empty() ? -1 : 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

}  // namespace dsv3
