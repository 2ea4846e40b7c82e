// Stop strings over streamed pieces: held-back prefixes, matches spanning
// pieces, the earliest of several stops, and text released unchanged when no
// stop string ever completes.
#include <gtest/gtest.h>

#include "runtime/stop_strings.h"

namespace dsv3 {
namespace {

std::string Feed(StopMatcher& m, const std::vector<std::string>& pieces, bool* stopped) {
  std::string out;
  *stopped = false;
  for (const auto& p : pieces) {
    bool matched = false;
    out += m.Add(p, &matched);
    if (matched) {
      *stopped = true;
      return out;
    }
  }
  return out + m.Flush();
}

TEST(StopMatcher, NoStopsPassesEverythingThrough) {
  StopMatcher m;
  bool matched = true;
  EXPECT_EQ(m.Add("abc", &matched), "abc");
  EXPECT_FALSE(matched);
}

TEST(StopMatcher, MatchAcrossPiecesCutsBeforeTheStop) {
  StopMatcher m({"END", "\n\n"});
  bool stopped;
  EXPECT_EQ(Feed(m, {"hello E", "N", "D and more"}, &stopped), "hello ");
  EXPECT_TRUE(stopped);
}

TEST(StopMatcher, HoldsOnlyPossiblePrefixes) {
  StopMatcher m({"END"});
  bool matched;
  EXPECT_EQ(m.Add("abcE", &matched), "abc");  // "E" might start END
  EXPECT_EQ(m.Add("x", &matched), "Ex");      // it did not
  EXPECT_EQ(m.Add("EN", &matched), "");
  EXPECT_EQ(m.Flush(), "EN");                 // never completed: released at the end
}

TEST(StopMatcher, EarliestStopWins) {
  StopMatcher m({"cd", "b"});
  bool stopped;
  EXPECT_EQ(Feed(m, {"abcd"}, &stopped), "a");
  EXPECT_TRUE(stopped);
}

TEST(StopMatcher, OverlappingPrefixes) {
  StopMatcher m({"aab"});
  bool stopped;
  EXPECT_EQ(Feed(m, {"a", "a", "a", "b", "c"}, &stopped), "a");
  EXPECT_TRUE(stopped);
  StopMatcher n({"aab"});
  EXPECT_EQ(Feed(n, {"a", "a", "a", "c"}, &stopped), "aaac");
  EXPECT_FALSE(stopped);
}

TEST(StopMatcher, Utf8StopStrings) {
  StopMatcher m({"\xE4\xBD\xA0\xE5\xA5\xBD"});  // 你好
  bool stopped;
  EXPECT_EQ(Feed(m, {"ok \xE4\xBD\xA0", "\xE5\xA5\xBD!"}, &stopped), "ok ");
  EXPECT_TRUE(stopped);
}

}  // namespace
}  // namespace dsv3
