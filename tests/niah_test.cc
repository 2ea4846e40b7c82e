// Needle-in-a-haystack pieces (issue 17): prompts have exactly the asked
// length with the needle at the asked depth and cyclic filler around it;
// training episodes append the answer; the grid's table and SVG heatmap
// carry one cell per (depth, length) coloured by accuracy; greedy answering
// equals a from-scratch greedy decode whatever the prefill chunk.
#include "runtime/niah.h"

#include <gtest/gtest.h>

#include <regex>

#include "model/model.h"

namespace dsv3 {
namespace {

NiahPieces TestPieces() {
  NiahPieces p;
  p.filler = {100, 101, 102, 103, 104, 105, 106};
  p.needle = {7, 8, 9};
  p.question = {20, 21};
  p.answer = {30, 31};
  p.prefix = {0};
  return p;
}

// Index of the needle's first token in a prompt.
int64_t NeedleAt(const std::vector<int32_t>& prompt) {
  for (size_t i = 0; i + 2 < prompt.size(); ++i)
    if (prompt[i] == 7 && prompt[i + 1] == 8 && prompt[i + 2] == 9) return static_cast<int64_t>(i);
  return -1;
}

TEST(NiahTest, PromptHasTheLengthAndTheNeedleAtTheDepth) {
  const NiahPieces p = TestPieces();
  EXPECT_EQ(NiahMinLength(p), 7);
  const int64_t L = 47, room = L - 6;  // prefix 1 + needle 3 + question 2
  for (double depth : {0.0, 25.0, 50.0, 100.0}) {
    const auto prompt = NiahPrompt(p, L, depth, 3);
    ASSERT_EQ(static_cast<int64_t>(prompt.size()), L) << depth;
    EXPECT_EQ(prompt.front(), 0);
    EXPECT_EQ(prompt[L - 2], 20);
    EXPECT_EQ(prompt[L - 1], 21);
    EXPECT_EQ(NeedleAt(prompt), 1 + std::llround(depth / 100 * room)) << depth;
  }
  // Filler runs on cyclically from the offset across the needle.
  const auto prompt = NiahPrompt(p, L, 50, 3);
  const int64_t at = NeedleAt(prompt);
  EXPECT_EQ(prompt[1], 103);
  EXPECT_EQ(prompt[at - 1], p.filler[(3 + at - 2) % 7]);
  EXPECT_EQ(prompt[at + 3], p.filler[(3 + at - 1) % 7]);
  const auto episode = NiahEpisode(p, L, 50, 3);
  ASSERT_EQ(static_cast<int64_t>(episode.size()), L + 2);
  EXPECT_EQ(episode[L], 30);
  EXPECT_EQ(episode[L + 1], 31);
}

TEST(NiahTest, TableAndSvgHaveOneCellPerDepthAndLength) {
  NiahGrid g;
  g.lengths = {128, 512, 2048};
  g.depths = {0, 50, 100};
  g.trials = 4;
  g.found = {{4, 4, 0}, {4, 2, 0}, {4, 4, 1}};
  EXPECT_NEAR(g.Mean(), (4 + 4 + 0 + 4 + 2 + 0 + 4 + 4 + 1) / 36.0, 1e-12);
  const std::string table = NiahTable(g);
  EXPECT_NE(table.find("2048"), std::string::npos);
  EXPECT_NE(table.find("50%    100%     50%      0%"), std::string::npos) << table;
  const std::string svg = NiahSvg(g, "a <title>");
  const std::regex cell("<rect x=\"[0-9]+\" y=\"[0-9]+\" width=\"56\" height=\"26\" fill=\"(#[0-9a-f]{6})\"");
  std::vector<std::string> colors;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), cell); it != std::sregex_iterator(); ++it)
    colors.push_back((*it)[1]);
  ASSERT_EQ(colors.size(), 9u);
  EXPECT_EQ(colors[0], "#1a9850");  // all found: green
  EXPECT_EQ(colors[2], "#d73027");  // none: red
  EXPECT_EQ(colors[4], "#fee08b");  // half: yellow
  EXPECT_NE(svg.find("a &lt;title&gt;"), std::string::npos);
  EXPECT_EQ(svg.rfind("</svg>\n"), svg.size() - 7);
}

TEST(NiahTest, PasskeysAreDeterministicAndHaveTheDigits) {
  std::mt19937_64 a(5), b(5);
  for (int i = 0; i < 100; ++i) {
    const std::string k = NiahPasskey(a, 6);
    EXPECT_EQ(k, NiahPasskey(b, 6));
    ASSERT_EQ(k.size(), 6u);
    EXPECT_NE(k[0], '0');
    EXPECT_TRUE(std::all_of(k.begin(), k.end(), [](char c) { return c >= '0' && c <= '9'; }));
  }
}

// Greedy continuation recomputed from scratch each token (one prefill of
// everything so far on a fresh cache): what NiahGreedy's cached decode must give.
std::vector<int32_t> ReferenceGreedy(const Model& m, std::vector<int32_t> ids, int64_t n) {
  std::vector<int32_t> out;
  const int64_t V = m.config().vocab_size;
  for (int64_t k = 0; k < n; ++k) {
    KvCache cache = m.NewCache(1, static_cast<int64_t>(ids.size()));
    Workspace ws;
    Batch batch;
    for (size_t i = 0; i < ids.size(); ++i) batch.Add(ids[i], static_cast<int32_t>(i), 0, i + 1 == ids.size());
    EXPECT_TRUE(m.Forward(batch, cache, ws).ok());
    const int32_t next = static_cast<int32_t>(std::max_element(ws.logits.begin(), ws.logits.begin() + V) - ws.logits.begin());
    out.push_back(next), ids.push_back(next);
  }
  return out;
}

TEST(NiahTest, GreedyAnswerIsTheGreedyDecodeForAnyPrefillChunk) {
  auto model = Model::Load(std::string(DSV3_GOLDEN_DIR) + "/v3_tiny_bf16");
  ASSERT_TRUE(model.ok()) << model.status().message();
  const Model& m = **model;
  std::vector<int32_t> prompt;
  for (int i = 0; i < 21; ++i) prompt.push_back((i * 37 + 5) % static_cast<int>(m.config().vocab_size));
  const auto whole = NiahGreedy(m, prompt, 6, {}, 512);
  const auto chunked = NiahGreedy(m, prompt, 6, {}, 4);
  ASSERT_TRUE(whole.ok() && chunked.ok());
  ASSERT_EQ(whole->size(), 6u);
  EXPECT_EQ(*whole, *chunked);
  EXPECT_EQ(*whole, ReferenceGreedy(m, prompt, 6));
  // A stop id ends the answer at its first occurrence, included.
  const int32_t stop = (*whole)[2];
  const auto stopped = NiahGreedy(m, prompt, 6, {stop});
  ASSERT_TRUE(stopped.ok());
  const size_t first = std::find(whole->begin(), whole->end(), stop) - whole->begin();
  EXPECT_EQ(*stopped, std::vector<int32_t>(whole->begin(), whole->begin() + first + 1));
  EXPECT_FALSE(NiahGreedy(m, {}, 3, {}).ok());
}

}  // namespace
}  // namespace dsv3
