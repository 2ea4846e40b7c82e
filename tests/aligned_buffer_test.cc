// AlignedBytes and HugePageArena: where their memory starts (cache lines;
// 2 MiB boundaries for buffers that can hold a huge page), that it is zeroed
// and that an arena's buffers never overlap. Whether the kernel backs them
// with huge pages depends on its THP setting and is not asserted.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/aligned_buffer.h"

namespace dsv3 {
namespace {

constexpr uintptr_t kHuge = 2u << 20;

uintptr_t Address(const void* p) { return reinterpret_cast<uintptr_t>(p); }

bool AllZero(const uint8_t* p, size_t n) {
  return std::all_of(p, p + n, [](uint8_t b) { return b == 0; });
}

TEST(AlignedBytes, SmallBuffersStartOnACacheLine) {
  for (size_t n : {1, 63, 100, 4096, 1000000}) {
    AlignedBytes b(n);
    EXPECT_EQ(Address(b.data()) % 64, 0u) << n;
    EXPECT_TRUE(AllZero(b.data(), n)) << n;
  }
}

TEST(AlignedBytes, LargeBuffersStartOnA2MiBBoundary) {
  // 2.9 MB, as a bench-moe expert matrix: starting at a 4 KiB page it could hold no huge page.
  for (size_t n : {size_t{2} << 20, size_t{2883584}, (size_t{5} << 20) + 17}) {
    AlignedBytes b(n);
    EXPECT_EQ(Address(b.data()) % kHuge, 0u) << n;
    EXPECT_EQ(b.size(), n);
    EXPECT_TRUE(AllZero(b.data(), n)) << n;
    b.data()[n - 1] = 1;  // the whole length is mapped
    AlignedBytes moved = std::move(b);
    EXPECT_EQ(moved.data()[n - 1], 1);
    EXPECT_EQ(b.data(), nullptr);
  }
}

TEST(HugePageArena, BuffersAreAlignedZeroedAndDisjoint) {
  HugePageArena arena;
  std::vector<std::pair<uint8_t*, size_t>> got;
  // Small, odd-sized, chunk-sized and larger than a chunk, then small again.
  for (size_t n : {size_t{100}, size_t{2883584}, size_t{1}, HugePageArena::kChunkBytes,
                   HugePageArena::kChunkBytes * 2 + 5, size_t{4096}, size_t{3} << 20}) {
    uint8_t* p = arena.Allocate(n);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(Address(p) % 64, 0u) << n;
    EXPECT_TRUE(AllZero(p, n)) << n;
    std::fill(p, p + n, static_cast<uint8_t>(got.size() + 1));
    got.emplace_back(p, n);
  }
  EXPECT_EQ(Address(got[0].first) % kHuge, 0u);  // the first chunk's start
  EXPECT_EQ(Address(got[3].first) % kHuge, 0u);  // a chunk-sized buffer opens a chunk of its own
  for (size_t i = 0; i < got.size(); ++i) {
    const auto [p, n] = got[i];
    EXPECT_TRUE(std::all_of(p, p + n, [&](uint8_t b) { return b == i + 1; })) << "buffer " << i << " overwritten";
  }
}

}  // namespace
}  // namespace dsv3
