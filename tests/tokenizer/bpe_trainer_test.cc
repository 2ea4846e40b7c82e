// The incremental BPE trainer against a naive one that recounts every pair
// after each merge (same tie-break), on a small pseudo-random corpus; and the
// written files load back into Tokenizer with the documented layout.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "tokenizer/bpe_trainer.h"
#include "tokenizer/chat.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace dsv3 {
namespace {

std::string Corpus() {
  std::mt19937 rng(7);
  const std::vector<std::string> syllables = {"ka", "ki", "ku", "n", "ta", " ", " ", ".", "\n", "ab", "ba", "aa", "x"};
  std::string text;
  for (int i = 0; i < 4000; ++i) text += syllables[rng() % syllables.size()];
  return text + "日本語の文章です。12345 67";
}

// Naive BPE: recount all pairs each step; most frequent, then smallest pair.
std::vector<std::pair<int32_t, int32_t>> NaiveMerges(const std::string& text, int64_t wanted) {
  auto pre = PreTokenizer::FromPatterns({kDeepSeekV3Patterns[0], kDeepSeekV3Patterns[1], kDeepSeekV3Patterns[2]});
  PreTokenizerScratch scratch;
  std::vector<std::string_view> pieces;
  EXPECT_TRUE(pre->Split(text, scratch, pieces).ok());
  std::map<std::string, int64_t> counts;
  for (auto p : pieces) ++counts[std::string(p)];
  std::vector<std::pair<std::vector<int32_t>, int64_t>> words;
  for (const auto& [w, c] : counts) {
    std::vector<int32_t> sym;
    for (char ch : w) sym.push_back(3 + static_cast<uint8_t>(ch));
    words.emplace_back(sym, c);
  }
  std::vector<std::string> vocab(3);
  for (int b = 0; b < 256; ++b) vocab.push_back(std::string(1, static_cast<char>(b)));
  std::map<std::string, int32_t> ids;
  for (int b = 0; b < 256; ++b) ids[vocab[3 + b]] = 3 + b;
  std::vector<std::pair<int32_t, int32_t>> merges;
  while (static_cast<int64_t>(vocab.size()) - 259 < wanted) {
    std::map<std::pair<int32_t, int32_t>, int64_t> pc;
    for (const auto& [sym, c] : words)
      for (size_t i = 0; i + 1 < sym.size(); ++i) pc[{sym[i], sym[i + 1]}] += c;
    std::pair<int32_t, int32_t> best{-1, -1};
    int64_t best_count = 0;
    for (const auto& [p, c] : pc)
      if (c > best_count) best = p, best_count = c;  // map order: first max = smallest pair
    if (best_count < 2) break;
    const std::string bytes = vocab[best.first] + vocab[best.second];
    auto [it, fresh] = ids.emplace(bytes, static_cast<int32_t>(vocab.size()));
    if (fresh) vocab.push_back(bytes);
    merges.push_back(best);
    for (auto& [sym, c] : words) {
      std::vector<int32_t> out;
      for (size_t i = 0; i < sym.size(); ++i) {
        if (i + 1 < sym.size() && sym[i] == best.first && sym[i + 1] == best.second) out.push_back(it->second), ++i;
        else out.push_back(sym[i]);
      }
      sym = out;
    }
  }
  return merges;
}

TEST(BpeTrainer, IncrementalEqualsNaive) {
  const std::string text = Corpus();
  BpeTrainOptions options;
  options.vocab_size = 276 + 150;
  BpeTrainer trainer(options);
  ASSERT_TRUE(trainer.AddText(text).ok());
  auto r = trainer.Train();
  ASSERT_TRUE(r.ok()) << r.status().message();
  const auto naive = NaiveMerges(text, 150);
  ASSERT_GT(naive.size(), 50u);
  EXPECT_EQ(r->merges, naive);
}

TEST(BpeTrainer, WritesFilesTokenizerLoads) {
  BpeTrainOptions options;
  options.vocab_size = 400;
  BpeTrainer trainer(options);
  ASSERT_TRUE(trainer.AddText(Corpus()).ok());
  auto r = trainer.Train();
  ASSERT_TRUE(r.ok());
  const std::string dir = std::string(DSV3_TEST_TMP) + "/trained_tok";
  ASSERT_TRUE(WriteTrainedTokenizer(*r, dir).ok());
  auto tok = Tokenizer::Load(dir);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  EXPECT_EQ((*tok)->bos_id(), 0);
  EXPECT_EQ((*tok)->eos_id(), 1);
  EXPECT_EQ((*tok)->TokenId("<｜▁pad▁｜>"), 2);
  EXPECT_EQ((*tok)->TokenId("<｜tool▁sep｜>"), (*tok)->vocab_size() - 1);
  EXPECT_TRUE((*tok)->config().add_bos_token);
  EXPECT_TRUE(ChatFormat::FromTemplate((*tok)->config().chat_template, "", "").ok());
  const std::string s = "kakiku <｜User｜>ta. 日本語 <think>x</think>";
  EXPECT_EQ(*(*tok)->Decode((*tok)->Encode(s)), s);
  options.vocab_size = 100;
  BpeTrainer tiny(options);
  EXPECT_FALSE(tiny.Train().ok());
}

}  // namespace
}  // namespace dsv3
