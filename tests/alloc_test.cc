// The token loop allocates nothing: after a first forward has sized the
// workspace and the per-thread scratch, further decode steps (batched, all
// options on) make no heap allocation. Counted by replacing the global
// operator new in this test binary.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "model/model.h"

namespace {
std::atomic<int64_t> g_allocations{0};
}  // namespace

void* operator new(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace dsv3 {
namespace {

void ExpectNoAllocationsWhileDecoding(const LoadOptions& options) {
  auto model = Model::Load(std::string(DSV3_GOLDEN_DIR) + "/v3_tiny_fp8", options);
  ASSERT_TRUE(model.ok());
  const Model& m = **model;
  const int64_t slots = 3, steps = 12;
  KvCache cache = m.NewCache(slots, steps + 1);
  Workspace ws;
  std::vector<Batch> batches(steps + 1);
  for (int64_t p = 0; p <= steps; ++p)
    for (int64_t s = 0; s < slots; ++s) batches[p].Add(static_cast<int32_t>(7 + 3 * p + s), p, s, true);
  ASSERT_TRUE(m.Forward(batches[0], cache, ws).ok());  // sizes everything
  ASSERT_TRUE(m.Forward(batches[1], cache, ws).ok());
  const int64_t before = g_allocations.load();
  for (int64_t p = 2; p <= steps; ++p) ASSERT_TRUE(m.Forward(batches[p], cache, ws).ok());
  EXPECT_EQ(g_allocations.load() - before, 0) << "heap allocations during " << steps - 1 << " decode steps";
}

TEST(Allocation, DecodeStepsDoNotAllocate) { ExpectNoAllocationsWhileDecoding(LoadOptions{}); }

TEST(Allocation, DecodeStepsDoNotAllocateWithReducedPrecision) {
  LoadOptions o;
  o.head = WeightFormat::kFp8, o.kv_cache = KvCacheType::kF8E4M3, o.bf16_activations = true;
  ExpectNoAllocationsWhileDecoding(o);
}

}  // namespace
}  // namespace dsv3
