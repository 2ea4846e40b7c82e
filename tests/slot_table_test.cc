// SlotTable's choices (runtime/slot_table.h): in one process the longest
// cached prefix, else the least recently used slot; across ranks
// (data-parallel attention) the least loaded rank unless a cached prefix is
// worth keeping, and copies only within a rank.
#include <gtest/gtest.h>

#include <vector>

#include "runtime/slot_table.h"

namespace dsv3 {
namespace {

std::vector<int32_t> Seq(int32_t first, int n) {
  std::vector<int32_t> v;
  for (int i = 0; i < n; ++i) v.push_back(first + i);
  return v;
}

// Marks `slot` busy holding `tokens`.
void Hold(SlotTable& t, int64_t slot, const std::vector<int32_t>& tokens) {
  t.tokens(slot) = tokens;
  t.Acquire(slot);
}

TEST(SlotTable, OneRankTakesLongestPrefixThenLru) {
  SlotTable t(4, 64);
  t.tokens(2) = Seq(0, 20);
  t.Release(1), t.Release(0), t.Release(3), t.Release(2);  // last used: 1 < 0 < 3 < 2
  SlotChoice c = t.Pick(Seq(0, 30), true);
  EXPECT_EQ(c.slot, 2);
  EXPECT_EQ(c.reuse, 20);
  c = t.Pick(Seq(100, 30), true);
  EXPECT_EQ(c.slot, 1);  // nothing shared: the stalest
  EXPECT_EQ(c.reuse, 0);
}

TEST(SlotTable, RanksSendNewRequestsToTheLeastLoaded) {
  SlotTable t(8, 64);
  t.set_ranks(2);  // even slots on rank 0, odd on rank 1
  Hold(t, 0, Seq(0, 5));
  Hold(t, 2, Seq(10, 5));
  Hold(t, 1, Seq(20, 5));  // rank 0: 2 busy, rank 1: 1 busy
  const SlotChoice c = t.Pick(Seq(100, 10), true);
  EXPECT_EQ(c.slot % 2, 1);
  EXPECT_EQ(c.copy_from, -1);
  Hold(t, c.slot, Seq(100, 10));
  // Now 2 and 2: the tie goes to rank 0.
  EXPECT_EQ(t.Pick(Seq(200, 10), false).slot % 2, 0);
}

TEST(SlotTable, RanksKeepAWorthwhileCachedPrefix) {
  SlotTable t(4, 64);
  t.set_ranks(2);
  t.tokens(1) = Seq(0, 40);  // a free slot of rank 1 caches 40 tokens
  Hold(t, 3, Seq(50, 5));    // rank 1 is the busier one
  SlotChoice c = t.Pick(Seq(0, 41), true);
  EXPECT_EQ(c.slot, 1);
  EXPECT_EQ(c.reuse, 40);
  // A short shared prefix (under min_copy) does not outweigh the load.
  t.tokens(1) = Seq(0, 3);
  c = t.Pick(Seq(0, 41), true);
  EXPECT_EQ(c.slot % 2, 0);
}

TEST(SlotTable, RanksCopyOnlyWithinARank) {
  SlotTable t(4, 64);
  t.set_ranks(2);
  Hold(t, 1, Seq(0, 40));  // running on rank 1
  SlotChoice c = t.Pick(Seq(0, 41), true);
  EXPECT_EQ(c.copy_from, 1);
  EXPECT_EQ(c.slot, 3);  // rank 1's free slot, whatever the load
  EXPECT_EQ(c.reuse, 40);
  Hold(t, 3, Seq(60, 5));  // rank 1 full: no copy possible, rank 0 computes it all
  c = t.Pick(Seq(0, 41), true);
  EXPECT_EQ(c.copy_from, -1);
  EXPECT_EQ(c.slot % 2, 0);
  EXPECT_EQ(c.reuse, 0);
}

}  // namespace
}  // namespace dsv3
