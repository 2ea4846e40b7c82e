// Which tokens each latent-KV-cache slot holds, which slots are free, and the
// prefix-reuse decision. A finished sequence's slot keeps its rows, so a new
// request that starts with the same tokens (a shared system prompt, the next
// turn of a chat) continues from them instead of recomputing: it takes the
// free slot with the longest common prefix, or copies the common rows from a
// busy slot when that one shares more. Free slots with nothing to offer are
// reused least-recently-used first. With data-parallel attention over
// several ranks (runtime/data_parallel.h) slot s lives on rank s % ranks: a
// request without a worthwhile cached prefix goes to the least loaded rank,
// and rows are copied only between slots of one rank.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace dsv3 {

struct SlotChoice {
  int64_t slot = -1;       // the free slot to run in
  int64_t reuse = 0;       // leading prompt tokens already valid there (after any copy)
  int64_t copy_from = -1;  // busy slot whose first `reuse` rows to copy in first; -1: none
};

class SlotTable {
 public:
  SlotTable(int64_t num_slots, int64_t capacity);
  // Slots are spread over `ranks` ranks (slot % ranks); 1: one process.
  void set_ranks(int ranks) { ranks_ = ranks; }

  int64_t num_slots() const { return static_cast<int64_t>(slots_.size()); }
  int64_t num_free() const;
  bool busy(int64_t slot) const { return slots_[slot].busy; }

  // Chooses a free slot for `prompt` (there must be one). At least one prompt
  // token is always left to compute, because its logits start the completion.
  // `reuse_prefix` false: plain LRU, nothing reused. A copy is proposed only
  // when a busy slot shares at least `min_copy` more tokens than the best free one.
  SlotChoice Pick(std::span<const int32_t> prompt, bool reuse_prefix, int64_t min_copy = 16) const;

  void Acquire(int64_t slot) { slots_[slot].busy = true; }
  void Release(int64_t slot) { slots_[slot].busy = false, slots_[slot].last_used = ++tick_; }

  // The tokens whose cache rows are valid, in position order. The scheduler
  // appends as it schedules tokens and truncates as it rolls back.
  std::vector<int32_t>& tokens(int64_t slot) { return slots_[slot].tokens; }
  const std::vector<int32_t>& tokens(int64_t slot) const { return slots_[slot].tokens; }

 private:
  struct Slot {
    std::vector<int32_t> tokens;
    bool busy = false;
    uint64_t last_used = 0;
  };
  static int64_t CommonPrefix(const std::vector<int32_t>& a, std::span<const int32_t> b);
  int RankOf(int64_t slot) const { return static_cast<int>(slot % ranks_); }
  int64_t Lru(int rank) const;  // -1: any rank; -1 if none free
  int LeastLoadedRank() const;
  SlotChoice BestFree(std::span<const int32_t> prompt, bool reuse_prefix, int64_t cap, int rank) const;
  std::vector<Slot> slots_;
  uint64_t tick_ = 0;
  int ranks_ = 1;
};

}  // namespace dsv3
