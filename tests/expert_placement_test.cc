// Expert placements: contiguous blocks and expert-map files, and the
// errors for maps that leave an expert unowned or own one twice.
#include <gtest/gtest.h>

#include "dist/expert_placement.h"

namespace dsv3::dist {
namespace {

TEST(ExpertPlacement, ContiguousBlocksGiveTheRemainderToTheFirstRanks) {
  auto p = ContiguousPlacement(10, 4);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->owner, (std::vector<int32_t>{0, 0, 0, 1, 1, 1, 2, 2, 3, 3}));
  EXPECT_EQ(p->ExpertsOf(1), (std::vector<int32_t>{3, 4, 5}));
  EXPECT_EQ(p->Mask(3), (std::vector<uint8_t>{0, 0, 0, 0, 0, 0, 0, 0, 1, 1}));
}

TEST(ExpertPlacement, MoreRanksThanExpertsIsAnError) {
  auto p = ContiguousPlacement(8, 9);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), "9 ranks but the model has only 8 routed experts: run at most 8 ranks");
  EXPECT_FALSE(ParseExpertMap("0: 0-7\n", "m", 8, 9).ok());
}

TEST(ExpertPlacement, MapWithRangesCommentsAndAnEmptyRank) {
  auto p = ParseExpertMap("# two ranks\n1: 0, 2-3\n\n0: 1 4-5  # the rest\n2:\n", "m", 6, 3);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->owner, (std::vector<int32_t>{1, 0, 1, 1, 0, 0}));
  EXPECT_TRUE(p->ExpertsOf(2).empty());
  EXPECT_NE(p->Hash(), ContiguousPlacement(6, 3)->Hash());
}

TEST(ExpertPlacement, MapErrorsNameTheLineAndExpert) {
  auto err = [](const std::string& text) { return ParseExpertMap(text, "x.map", 8, 2).status().message(); };
  EXPECT_EQ(err("0: 0-4\n1: 4-7\n"), "x.map line 2: expert 4 is owned twice (rank 0 on line 1, rank 1 here)");
  EXPECT_EQ(err("0: 0-3\n1: 4-6\n"), "x.map: expert 7 is owned by no rank");
  EXPECT_EQ(err("0: 0-3\n2: 4-7\n"), "x.map line 2: rank 2 but the job has 2 ranks (0..1)");
  EXPECT_EQ(err("0: 0-3 9\n"), "x.map line 1: expert 9 but the model has 8 routed experts (0..7)");
  EXPECT_EQ(err("0: 3-1\n"), "x.map line 1: '3-1' is not an expert index or range A-B");
  EXPECT_EQ(err("zero: 1\n"), "x.map line 1: expected 'RANK: EXPERT ...' (e.g. '0: 0-3 8'), got 'zero: 1'");
  EXPECT_EQ(ReadExpertMap("/nonexistent/x.map", 8, 2).status().message(),
            "/nonexistent/x.map: cannot open the expert map");
}

}  // namespace
}  // namespace dsv3::dist
