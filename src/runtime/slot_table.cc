// Slot bookkeeping and the prefix-reuse choice; see slot_table.h.
#include "runtime/slot_table.h"

#include <algorithm>

namespace dsv3 {

SlotTable::SlotTable(int64_t num_slots, int64_t capacity) : slots_(num_slots) {
  for (auto& s : slots_) s.tokens.reserve(capacity);  // no growth in the token loop
}

int64_t SlotTable::num_free() const {
  return std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return !s.busy; });
}

int64_t SlotTable::CommonPrefix(const std::vector<int32_t>& a, std::span<const int32_t> b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return static_cast<int64_t>(i);
}

int64_t SlotTable::Lru(int rank) const {
  int64_t lru = -1;
  for (int64_t s = 0; s < num_slots(); ++s)
    if (!slots_[s].busy && (rank < 0 || RankOf(s) == rank) &&
        (lru < 0 || slots_[s].last_used < slots_[lru].last_used))
      lru = s;
  return lru;
}

// The rank with a free slot and the fewest busy ones (lowest on a tie).
int SlotTable::LeastLoadedRank() const {
  std::vector<int64_t> busy(ranks_, 0), free(ranks_, 0);  // once per admitted request, not per token
  for (int64_t s = 0; s < num_slots(); ++s) ++(slots_[s].busy ? busy : free)[RankOf(s)];
  int best = -1;
  for (int r = 0; r < ranks_; ++r)
    if (free[r] > 0 && (best < 0 || busy[r] < busy[best])) best = r;
  return best;
}

// The free slot (of `rank`, or any for -1) with the longest common prefix
// (the most recent on a tie), else the least recently used one.
SlotChoice SlotTable::BestFree(std::span<const int32_t> prompt, bool reuse_prefix, int64_t cap, int rank) const {
  SlotChoice best;
  for (int64_t s = 0; s < num_slots() && reuse_prefix; ++s) {
    if (slots_[s].busy || (rank >= 0 && RankOf(s) != rank)) continue;
    const int64_t m = std::min(CommonPrefix(slots_[s].tokens, prompt), cap);
    if (m > best.reuse || (m == best.reuse && m > 0 && slots_[s].last_used > slots_[best.slot].last_used)) {
      best.slot = s;
      best.reuse = m;
    }
  }
  if (best.slot < 0) best.slot = Lru(rank);  // nothing shared: evict the stalest
  return best;
}

SlotChoice SlotTable::Pick(std::span<const int32_t> prompt, bool reuse_prefix, int64_t min_copy) const {
  const int64_t cap = std::max<int64_t>(static_cast<int64_t>(prompt.size()) - 1, 0);
  SlotChoice best = BestFree(prompt, reuse_prefix, cap, -1);
  // Across ranks a cached prefix worth copying keeps its rank; otherwise the
  // least loaded rank takes the request.
  if (ranks_ > 1 && best.reuse < std::max<int64_t>(min_copy, 1))
    best = BestFree(prompt, reuse_prefix, cap, LeastLoadedRank());
  if (!reuse_prefix) return best;
  // A running sequence may share more (e.g. the same system prompt, in flight);
  // its rows can only be copied within its rank.
  int64_t donor = -1, donor_len = best.reuse + std::max<int64_t>(min_copy, 1) - 1;
  for (int64_t s = 0; s < num_slots(); ++s) {
    if (!slots_[s].busy) continue;
    const int64_t m = std::min(CommonPrefix(slots_[s].tokens, prompt), cap);
    if (m > donor_len && (ranks_ == 1 || Lru(RankOf(s)) >= 0)) donor = s, donor_len = m;
  }
  if (donor >= 0) {
    // Copy into the free slot whose own contents are the least valuable.
    best.slot = Lru(ranks_ == 1 ? -1 : RankOf(donor)), best.reuse = donor_len, best.copy_from = donor;
  }
  return best;
}

}  // namespace dsv3
