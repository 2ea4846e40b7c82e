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

SlotChoice SlotTable::Pick(std::span<const int32_t> prompt, bool reuse_prefix, int64_t min_copy) const {
  const int64_t cap = std::max<int64_t>(static_cast<int64_t>(prompt.size()) - 1, 0);
  SlotChoice best;
  int64_t lru = -1;  // least recently used free slot
  for (int64_t s = 0; s < num_slots(); ++s) {
    if (slots_[s].busy) continue;
    if (lru < 0 || slots_[s].last_used < slots_[lru].last_used) lru = s;
    if (!reuse_prefix) continue;
    const int64_t m = std::min(CommonPrefix(slots_[s].tokens, prompt), cap);
    if (m > best.reuse || (m == best.reuse && m > 0 && slots_[s].last_used > slots_[best.slot].last_used)) {
      best.slot = s;
      best.reuse = m;
    }
  }
  if (best.slot < 0) best.slot = lru;  // nothing shared: evict the stalest
  if (!reuse_prefix) return best;
  // A running sequence may share more (e.g. the same system prompt, in flight).
  int64_t donor = -1, donor_len = best.reuse + std::max<int64_t>(min_copy, 1) - 1;
  for (int64_t s = 0; s < num_slots(); ++s) {
    if (!slots_[s].busy) continue;
    const int64_t m = std::min(CommonPrefix(slots_[s].tokens, prompt), cap);
    if (m > donor_len) donor = s, donor_len = m;
  }
  if (donor >= 0) {
    // Copy into the free slot whose own contents are the least valuable.
    best.slot = lru, best.reuse = donor_len, best.copy_from = donor;
  }
  return best;
}

}  // namespace dsv3
