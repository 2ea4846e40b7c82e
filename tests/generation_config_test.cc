// generation_config.json (runtime/generation_config.h): DeepSeek's file read
// and laid over the built-in defaults, an absent file or a .gguf path giving
// no defaults, do_sample false meaning greedy, and every bad value, wrong
// type, deep nesting or unreadable file named in the error; sampling
// parameters parsed from text as flags and chat's /set give them.
#include "runtime/generation_config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace dsv3 {
namespace {

namespace fs = std::filesystem;

// A fresh directory under the test tmp dir holding generation_config.json
// with `text` (none when `text` is null).
std::string ModelDir(const std::string& name, const char* text) {
  const fs::path dir = fs::path(DSV3_TEST_TMP) / "generation_config" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  if (text) std::ofstream(dir / "generation_config.json") << text;
  return dir.string();
}

// The error ParseGenerationConfig gives for `text` ("" when it succeeds).
std::string ParseError(const std::string& text) {
  auto c = ParseGenerationConfig(text, "g.json");
  return c.ok() ? "" : c.status().message();
}

TEST(GenerationConfig, DeepSeekFileOverBuiltInDefaults) {
  const std::string dir = ModelDir("deepseek",
      R"({"_from_model_config": true, "bos_token_id": 0, "eos_token_id": 1, "do_sample": true,
          "temperature": 0.6, "top_p": 0.95, "transformers_version": "4.46.3"})");
  auto c = LoadGenerationConfig(dir);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_TRUE(c->found());
  EXPECT_EQ(c->path, dir + "/generation_config.json");
  EXPECT_EQ(c->Describe(), "do_sample true, temperature 0.6, top_p 0.95");
  SamplingOptions base;
  base.top_k = 7, base.seed = 3;
  const SamplingOptions s = ApplyGenerationConfig(*c, base);
  EXPECT_FLOAT_EQ(s.temperature, 0.6f);
  EXPECT_FLOAT_EQ(s.top_p, 0.95f);
  EXPECT_EQ(s.top_k, 7);  // not in the file: the base's
  EXPECT_EQ(s.seed, 3u);
  EXPECT_EQ(DescribeSampling(s), "temperature 0.6, top_k 7, top_p 0.95, seed 3");
}

TEST(GenerationConfig, EveryField) {
  auto c = ParseGenerationConfig(
      R"({"temperature": 0.7, "top_k": 40, "top_p": 0.9, "min_p": 0.05, "repetition_penalty": 1.1})", "g.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_FALSE(c->do_sample.has_value());  // absent: the values are used as given
  const SamplingOptions s = ApplyGenerationConfig(*c, {});
  EXPECT_FLOAT_EQ(s.temperature, 0.7f);
  EXPECT_EQ(s.top_k, 40);
  EXPECT_FLOAT_EQ(s.top_p, 0.9f);
  EXPECT_FLOAT_EQ(s.min_p, 0.05f);
  EXPECT_FLOAT_EQ(s.repetition_penalty, 1.1f);
  EXPECT_TRUE(s.Validate().ok());
}

TEST(GenerationConfig, AbsentFileGguffAndNullsGiveNoDefaults) {
  auto none = LoadGenerationConfig(ModelDir("absent", nullptr));
  ASSERT_TRUE(none.ok()) << none.status().message();
  EXPECT_FALSE(none->found());
  SamplingOptions base;
  base.temperature = 1.0f;
  EXPECT_FLOAT_EQ(ApplyGenerationConfig(*none, base).temperature, 1.0f);
  // A single-file model (.gguf) has no directory to hold one.
  const std::string gguf = ModelDir("gguf", R"({"temperature": 0.5})") + "/generation_config.json";
  auto from_file = LoadGenerationConfig(gguf);
  ASSERT_TRUE(from_file.ok());
  EXPECT_FALSE(from_file->found());
  auto nulls = ParseGenerationConfig(R"({"top_k": null, "min_p": null, "do_sample": null})", "g.json");
  ASSERT_TRUE(nulls.ok()) << nulls.status().message();
  EXPECT_EQ(nulls->Describe(), "no sampling fields");
}

TEST(GenerationConfig, DoSampleFalseIsGreedy) {
  auto c = ParseGenerationConfig(R"({"do_sample": false, "temperature": 0.6, "top_p": 0.95,
                                     "repetition_penalty": 1.2})", "g.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  SamplingOptions base;
  base.temperature = 1.0f;
  const SamplingOptions s = ApplyGenerationConfig(*c, base);
  EXPECT_TRUE(s.greedy());
  EXPECT_FLOAT_EQ(s.repetition_penalty, 1.2f);  // HF applies it to greedy search too
  EXPECT_EQ(DescribeSampling(s), "greedy, repetition_penalty 1.2");
  EXPECT_EQ(c->Describe(), "do_sample false (greedy), temperature 0.6, top_p 0.95, repetition_penalty 1.2");
}

TEST(GenerationConfig, BadValuesNameTheFileAndField) {
  EXPECT_EQ(ParseError(R"({"temperature": -1})"), "g.json: field 'temperature' must be a number >= 0 (got -1)");
  EXPECT_EQ(ParseError(R"({"top_p": 0})"), "g.json: field 'top_p' must be in (0, 1] (got 0)");
  EXPECT_EQ(ParseError(R"({"top_p": 1.5})"), "g.json: field 'top_p' must be in (0, 1] (got 1.5)");
  EXPECT_EQ(ParseError(R"({"min_p": 2})"), "g.json: field 'min_p' must be in [0, 1] (got 2)");
  EXPECT_EQ(ParseError(R"({"repetition_penalty": 0})"),
            "g.json: field 'repetition_penalty' must be in (0, 10] (got 0)");
  EXPECT_EQ(ParseError(R"({"temperature": 1e300})"), "g.json: field 'temperature' must be a number >= 0 (got 1e+300)");
  EXPECT_EQ(ParseError(R"({"top_k": -5})"), "g.json: field 'top_k' must be in [0, 2147483647] (got -5)");
  EXPECT_EQ(ParseError(R"({"top_k": 99999999999})"), "g.json: field 'top_k' must be in [0, 2147483647] (got 99999999999)");
  EXPECT_EQ(ParseError(R"({"top_k": 18446744073709551615})"),
            "g.json: field 'top_k' must be in [0, 2147483647] (got 18446744073709551615)");
}

TEST(GenerationConfig, WrongTypesNameTheField) {
  EXPECT_EQ(ParseError(R"({"temperature": "0.6"})"), "g.json: field 'temperature' must be a number (got string)");
  EXPECT_EQ(ParseError(R"({"top_p": [0.9]})"), "g.json: field 'top_p' must be a number (got array)");
  EXPECT_EQ(ParseError(R"({"top_k": 40.5})"), "g.json: field 'top_k' must be an integer (got 40.5)");
  EXPECT_EQ(ParseError(R"({"top_k": true})"), "g.json: field 'top_k' must be an integer (got boolean)");
  EXPECT_EQ(ParseError(R"({"do_sample": "yes"})"), "g.json: field 'do_sample' must be true or false (got string)");
  EXPECT_EQ(ParseError(R"({"do_sample": 1})"), "g.json: field 'do_sample' must be true or false (got 1)");
  EXPECT_EQ(ParseError("[1, 2]"), "g.json: not a JSON object");
  EXPECT_EQ(ParseError("{\"temperature\": 0.6,"), "g.json: not valid JSON");
  EXPECT_EQ(ParseError(""), "g.json: not valid JSON");
}

TEST(GenerationConfig, DeepJsonIsRefusedBeforeParsing) {
  const std::string deep = "{\"x\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_EQ(ParseError(deep), "g.json: JSON nested deeper than 128 levels (at byte 133)");
}

TEST(GenerationConfig, UnreadableFilesAreErrorsNamingThePath) {
  const std::string big = ModelDir("big", nullptr);
  std::ofstream(big + "/generation_config.json") << "{\"pad\": \"" << std::string(2 << 20, 'x') << "\"}";
  auto c = LoadGenerationConfig(big);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(big + "/generation_config.json"), std::string::npos) << c.status().message();

  const std::string fifo = ModelDir("fifo", nullptr);
  ASSERT_EQ(mkfifo((fifo + "/generation_config.json").c_str(), 0600), 0);
  c = LoadGenerationConfig(fifo);  // must not block waiting for a writer
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("generation_config.json: is not a regular file (a FIFO)"), std::string::npos)
      << c.status().message();

  const std::string dangling = ModelDir("dangling", nullptr);
  fs::create_symlink("nowhere.json", dangling + "/generation_config.json");
  c = LoadGenerationConfig(dangling);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("generation_config.json"), std::string::npos) << c.status().message();

  const std::string invalid = ModelDir("invalid", R"({"top_p": 7})");
  c = LoadGenerationConfig(invalid);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(), invalid + "/generation_config.json: field 'top_p' must be in (0, 1] (got 7)");
}

TEST(SamplingParams, SetFromText) {
  SamplingOptions s;
  for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
           {"temperature", "0.7"}, {"top_k", "40"}, {"top_p", "0.9"}, {"min_p", "0.05"}, {"presence_penalty", "0.5"},
           {"frequency_penalty", "-0.25"}, {"repetition_penalty", "1.1"}, {"seed", "18446744073709551615"},
           {"logit_bias", "15=-100,16=2.5"}, {"logit_bias", "3=1"}})
    ASSERT_TRUE(SetSamplingParam(s, name, value).ok()) << name << " " << value;
  EXPECT_FLOAT_EQ(s.temperature, 0.7f);
  EXPECT_EQ(s.top_k, 40);
  EXPECT_FLOAT_EQ(s.frequency_penalty, -0.25f);
  EXPECT_EQ(s.seed, 18446744073709551615ull);
  ASSERT_EQ(s.logit_bias.size(), 3u);  // appended
  EXPECT_EQ(s.logit_bias[0].token, 15);
  EXPECT_FLOAT_EQ(s.logit_bias[0].bias, -100.0f);
  EXPECT_EQ(s.logit_bias[2].token, 3);
  EXPECT_EQ(DescribeSampling(s),
            "temperature 0.7, top_k 40, top_p 0.9, min_p 0.05, seed 18446744073709551615, repetition_penalty 1.1, "
            "presence_penalty 0.5, frequency_penalty -0.25, logit_bias 15=-100 16=2.5 3=1");
}

TEST(SamplingParams, BadTextSaysWhatIsWrong) {
  SamplingOptions s;
  auto error = [&](const char* name, const std::string& value) { return SetSamplingParam(s, name, value).message(); };
  EXPECT_EQ(error("temperature", "hot"), "'hot' is not a finite number");
  EXPECT_EQ(error("temperature", "nan"), "'nan' is not a finite number");
  EXPECT_EQ(error("temperature", "1e39"), "'1e39' is out of range");
  EXPECT_EQ(error("top_p", ""), "'' is not a finite number");
  EXPECT_EQ(error("top_k", "4.5"), "'4.5' is not an integer");
  EXPECT_EQ(error("top_k", "99999999999"), "'99999999999' is out of range for top_k");
  EXPECT_EQ(error("seed", "-1"), "'-1' is not a seed (an integer in [0, 2^64))");
  EXPECT_EQ(error("seed", "18446744073709551616"), "'18446744073709551616' is not a seed (an integer in [0, 2^64))");
  EXPECT_EQ(error("logit_bias", "15"), "'15' is not TOKEN=BIAS (e.g. 15=-100; -100 bans the token)");
  EXPECT_EQ(error("logit_bias", "x=1"), "'x=1' is not TOKEN=BIAS (e.g. 15=-100; -100 bans the token)");
  EXPECT_EQ(error("logit_bias", "-3=1"), "'-3=1' is not TOKEN=BIAS (e.g. 15=-100; -100 bans the token)");
  EXPECT_EQ(error("logit_bias", "1=2,"), "'' is not TOKEN=BIAS (e.g. 15=-100; -100 bans the token)");
  EXPECT_EQ(error("warmth", "1"), "unknown sampling parameter 'warmth'");
  EXPECT_TRUE(s.logit_bias.empty());  // all or nothing: "1=2" was not kept
  // Ranges are Validate's: the value is stored, Validate names it.
  ASSERT_TRUE(SetSamplingParam(s, "top_p", "2").ok());
  EXPECT_EQ(s.Validate().message(), "top_p must be in (0, 1] (got 2.000000)");
}

}  // namespace
}  // namespace dsv3
