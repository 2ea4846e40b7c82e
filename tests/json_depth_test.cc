// CheckJsonDepth: nesting counted outside strings only, the limit inclusive,
// the error naming the label, the limit and the byte where it was crossed.
#include "core/json_depth.h"

#include <gtest/gtest.h>

#include <string>

namespace dsv3 {
namespace {

std::string Nest(int depth, char open, char close) { return std::string(depth, open) + std::string(depth, close); }

TEST(JsonDepth, LimitIsInclusive) {
  EXPECT_TRUE(CheckJsonDepth(Nest(kMaxJsonDepth, '[', ']'), "x").ok());
  const Status s = CheckJsonDepth(Nest(kMaxJsonDepth + 1, '[', ']'), "body");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "body: JSON nested deeper than 128 levels (at byte 128)");
  EXPECT_FALSE(CheckJsonDepth(Nest(100000, '{', '}'), "x").ok());
  EXPECT_TRUE(CheckJsonDepth(Nest(3, '{', '}'), "x", 3).ok());
  EXPECT_FALSE(CheckJsonDepth(Nest(4, '{', '}'), "x", 3).ok());
}

TEST(JsonDepth, BracketsInsideStringsDoNotCount) {
  const std::string deep_string = "{\"a\": \"" + std::string(1000, '[') + "\\\"" + std::string(1000, '{') + "\"}";
  EXPECT_TRUE(CheckJsonDepth(deep_string, "x").ok());
  // An escaped backslash ends before the quote, which then closes the string.
  EXPECT_FALSE(CheckJsonDepth("[\"\\\\\"" + Nest(200, '[', ']') + "]", "x").ok());
}

TEST(JsonDepth, SiblingsDoNotAccumulate) {
  std::string many;
  for (int i = 0; i < 1000; ++i) many += Nest(100, '[', ']');
  EXPECT_TRUE(CheckJsonDepth("[" + many + "]", "x").ok());
  EXPECT_TRUE(CheckJsonDepth("]]]]" + Nest(10, '[', ']'), "x").ok());  // stray closers are the parser's business
}

}  // namespace
}  // namespace dsv3
