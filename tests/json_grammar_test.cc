// Structured outputs: JSON Schema compilation (what is refused, with the
// keyword and path), the byte-level recogniser (valid documents accepted
// byte by byte, invalid ones refused at the first wrong byte), token masks
// over a vocabulary (equal to checking every token by brute force), and
// random walks under the mask: every completed walk parses and matches the
// schema's shape, and a walk never reaches a state with no way forward. The
// fewest bytes to finish a document equal a breadth-first search's, and walks
// under a token budget always complete in time.
#include <gtest/gtest.h>

#include <deque>
#include <random>
#include <unordered_set>

#include "runtime/json_grammar.h"
#include "runtime/sampler.h"
#include "runtime/token_constraint.h"

namespace dsv3 {
namespace {

using nlohmann::json;
using ordered = nlohmann::ordered_json;

template <typename Json>
JsonGrammar Grammar(const Json& schema, bool strict = false) {
  auto c = CompileJsonSchema(schema, {.strict = strict});
  EXPECT_TRUE(c.ok()) << c.status().message();
  return JsonGrammar(std::move(*c));
}

// Feeds `text`; true if every byte is accepted and the document is complete.
bool Matches(const JsonGrammar& g, const std::string& text) {
  JsonState s = g.Start(), next;
  for (unsigned char c : text) {
    g.Advance(s, c, &next);
    if (next.dead()) return false;
    std::swap(s, next);
  }
  return g.Accepting(s);
}

const ordered kPerson = ordered::parse(R"({
  "type": "object",
  "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 8},
    "age": {"type": "integer"},
    "tags": {"type": "array", "items": {"enum": ["a", "bc", 3]}, "maxItems": 2},
    "boss": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}
  },
  "required": ["name", "boss"],
  "additionalProperties": false
})");

TEST(JsonGrammar, AcceptsTheDocumentsTheSchemaAdmits) {
  const JsonGrammar g = Grammar(kPerson);
  EXPECT_TRUE(Matches(g, R"({"name":"Ann","boss":null})"));
  EXPECT_TRUE(Matches(g, R"({"name": "Ann", "age": -12, "boss": null})"));
  EXPECT_TRUE(Matches(g, R"({"name":"é\"\u00e9x","tags":["a",3],"boss":{"name":"B","boss":null}})"));
  EXPECT_FALSE(Matches(g, R"({"name":"","boss":null})"));           // minLength
  EXPECT_FALSE(Matches(g, R"({"name":"123456789","boss":null})"));  // maxLength
  EXPECT_FALSE(Matches(g, R"({"boss":null,"name":"A"})"));          // schema order
  EXPECT_FALSE(Matches(g, R"({"name":"A"})"));                      // required boss
  EXPECT_FALSE(Matches(g, R"({"name":"A","age":1.5,"boss":null})"));  // integer
  EXPECT_FALSE(Matches(g, R"({"name":"A","tags":["a","a","a"],"boss":null})"));  // maxItems
  EXPECT_FALSE(Matches(g, R"({"name":"A","tags":["b"],"boss":null})"));  // enum
  EXPECT_FALSE(Matches(g, R"({"name":"A","boss":null} )"));              // nothing after the document
  EXPECT_FALSE(Matches(g, R"({"name":"A","boss":null)"));                // incomplete
}

TEST(JsonGrammar, NumbersAndFreeFormValues) {
  const JsonGrammar num = Grammar(json{{"type", "number"}});
  for (const char* ok : {"0", "-0.5", "12e+3", "1.25E-7", "90"}) EXPECT_TRUE(Matches(num, ok)) << ok;
  for (const char* bad : {"01", "-", "1.", ".5", "1e", "+1", "1.2.3"}) EXPECT_FALSE(Matches(num, bad)) << bad;
  const JsonGrammar any = Grammar(json{{"type", "object"}});
  EXPECT_TRUE(Matches(any, R"({"x":[1,{"y":null}],"z":"w","t":true})"));
  EXPECT_TRUE(Matches(any, "{}"));
  EXPECT_FALSE(Matches(any, "[]"));
  EXPECT_FALSE(Matches(any, R"({"x":tru})"));
}

// Bounds held by digit rules; exponents short enough for a double; only
// valid UTF-8 inside strings (no overlong forms, surrogates, > U+10FFFF).
TEST(JsonGrammar, NumberBoundsExponentsAndUtf8) {
  const JsonGrammar pct = Grammar(ordered::parse(R"({"type":"integer","minimum":0,"maximum":100})"), true);
  for (const char* ok : {"0", "7", "99"}) EXPECT_TRUE(Matches(pct, ok)) << ok;
  for (const char* bad : {"-1", "100", "1e2"}) EXPECT_FALSE(Matches(pct, bad)) << bad;
  const JsonGrammar pos = Grammar(ordered::parse(R"({"type":"number","exclusiveMinimum":0})"), true);
  EXPECT_TRUE(Matches(pos, "1.5"));
  EXPECT_FALSE(Matches(pos, "0.5"));  // x >= 1 is what the digits can promise
  EXPECT_FALSE(Matches(pos, "-3"));
  // zod's integers: +-(2^53 - 1), at most 15 digits.
  const JsonGrammar safe = Grammar(ordered::parse(
      R"({"type":"integer","minimum":-9007199254740991,"maximum":9007199254740991})"), true);
  EXPECT_TRUE(Matches(safe, "-999999999999999"));
  EXPECT_FALSE(Matches(safe, "9999999999999999"));
  EXPECT_FALSE(CompileJsonSchema(ordered::parse(R"({"type":"integer","maximum":5})"), {.strict = true}).ok());
  EXPECT_TRUE(CompileJsonSchema(ordered::parse(R"({"type":"integer","maximum":5})"), {}).ok());  // ignored
  const JsonGrammar num = Grammar(json{{"type", "number"}});
  EXPECT_TRUE(Matches(num, "1.5e99"));
  EXPECT_FALSE(Matches(num, "1e100"));
  // At the 32-character cap a number must still be able to end: no '.', 'e'
  // or sign as its last allowed character (the server once got stuck at
  // "-9996299988461004938842932.999e+").
  for (const std::string prefix : {"-9996299988461004938842932.999e", "1234567890123456789012345678901"}) {
    JsonState s = num.Start(), next;
    for (unsigned char c : prefix) {
      num.Advance(s, c, &next);
      ASSERT_FALSE(next.dead()) << prefix;
      std::swap(s, next);
    }
    for (unsigned char c : std::string("+.e-")) {
      num.Advance(s, c, &next);
      EXPECT_TRUE(next.dead()) << prefix << c;
    }
    EXPECT_TRUE(num.Accepting(s) || [&] {
      num.Advance(s, '1', &next);
      return num.Accepting(next);
    }()) << prefix;
  }
  const JsonGrammar str = Grammar(json{{"type", "string"}});
  for (const char* ok : {"\"\xc3\xa9\"", "\"\xf0\x9f\x98\x80\"", "\"\xe2\x82\xac\"", "\"\xf4\x8f\xbf\xbf\""})
    EXPECT_TRUE(Matches(str, ok)) << ok;
  for (const char* bad : {"\"\xe0\x80\x80\"", "\"\xed\xa0\x80\"", "\"\xf0\x80\x80\x80\"", "\"\xf4\x90\x80\x80\"",
                          "\"\xc0\xaf\"", "\"\xff\""})
    EXPECT_FALSE(Matches(str, bad)) << bad;
}

// A forced tool call: raw markers and the function name around JSON arguments.
TEST(JsonGrammar, SequencesOfTextAndValues) {
  auto weather = CompileJsonSchema(ordered::parse(
      R"({"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city"],"additionalProperties":false})"));
  auto none = CompileJsonSchema(ordered::parse(R"({"type":"object","properties":{},"additionalProperties":false})"));
  ASSERT_TRUE(weather.ok() && none.ok());
  const JsonGrammar g(SequenceSchema({{{"<call>weather\n"}, {"", &*weather}, {"\n</call>"}},
                                      {{"<call>time\n"}, {"", &*none}, {"\n</call>"}}}));
  EXPECT_TRUE(Matches(g, "<call>weather\n{\"city\":\"Oslo\",\"days\":3}\n</call>"));
  EXPECT_TRUE(Matches(g, "<call>time\n{}\n</call>"));
  EXPECT_FALSE(Matches(g, "<call>time\n{\"city\":\"Oslo\"}\n</call>"));  // time takes no arguments
  EXPECT_FALSE(Matches(g, "<call>weather\n{\"days\":3}\n</call>"));       // city is required
  EXPECT_FALSE(Matches(g, "<call>clock\n{}\n</call>"));                     // no such function
  EXPECT_FALSE(Matches(g, "<call>weather\n{\"city\":\"Oslo\"}\n"));     // not closed
  // A number right before raw text ends when the text begins.
  auto num = CompileJsonSchema(ordered::parse(R"({"type":"integer"})"));
  const JsonGrammar n(SequenceSchema({{{"x="}, {"", &*num}, {";"}}}));
  EXPECT_TRUE(Matches(n, "x=42;"));
  EXPECT_FALSE(Matches(n, "x=;"));
}

TEST(JsonSchema, RefusalsNameTheKeywordAndPath) {
  auto message = [](const char* text, bool strict) {
    auto c = CompileJsonSchema(json::parse(text), {.strict = strict});
    return c.ok() ? std::string("ok") : c.status().message();
  };
  EXPECT_NE(message(R"({"type":"object","properties":{"a":{"type":"string","pattern":"^x"}},"additionalProperties":false})", true)
                .find("#/properties/a/pattern"),
            std::string::npos);
  EXPECT_NE(message(R"({"type":"string","pattern":"^x"})", false).find("#/pattern"), std::string::npos);  // any mode
  EXPECT_EQ(message(R"({"type":"string","format":"date"})", false), "ok");  // not strict: an annotation
  EXPECT_NE(message(R"({"type":"object","properties":{"a":{"type":"string"}},"x-custom":1})", true).find("x-custom"),
            std::string::npos);
  EXPECT_NE(message(R"({"type":"object","properties":{"a":{"type":"string"}}})", true).find("additionalProperties"),
            std::string::npos);
  EXPECT_NE(message(R"({"enum":[]})", false).find("#/enum"), std::string::npos);
  EXPECT_NE(message(R"({"$ref":"#/$defs/missing"})", false).find("points to nothing"), std::string::npos);
  EXPECT_NE(message(R"({"type":"object","properties":{"next":{"$ref":"#"}},"required":["next"]})", false)
                .find("no finite document"),
            std::string::npos);
  EXPECT_NE(message(R"({"type":"object","properties":{"a":{"type":"strin"}}})", false).find("#/properties/a/type"),
            std::string::npos);
  EXPECT_NE(message(R"({"type":"object","required":["b"],"properties":{"a":{}}})", false).find("'b' is required"),
            std::string::npos);
}

// Bytes 32..126 as single-byte tokens, some multi-byte ones, and two specials.
TokenVocabulary TestVocabulary() {
  TokenVocabulary v;
  for (int c = 32; c < 127; ++c) v.bytes.push_back(std::string(1, static_cast<char>(c)));
  for (const char* t : {"{\"", "\":", "\",\"", "\"}", "na", "name", "null", "true", ", ", "]}", "\xc3\xa9", "\xc3", "\xa9"})
    v.bytes.push_back(t);
  v.special.assign(v.bytes.size(), 0);
  v.bytes.push_back("<eos>"), v.special.push_back(1);
  v.bytes.push_back("<other>"), v.special.push_back(1);
  v.end_tokens = {static_cast<int32_t>(v.bytes.size() - 2)};
  return v;
}

TEST(TokenGrammar, MaskEqualsBruteForce) {
  const TokenVocabulary v = TestVocabulary();
  auto c = CompileJsonSchema(kPerson);
  ASSERT_TRUE(c.ok());
  TokenGrammar tg(std::move(*c), v);
  JsonState s = tg.grammar().Start();
  std::vector<uint64_t> mask;
  // Masks at the start and after each of  {"  name  ":  "  (ids 95, 100, 96, '"' - 32), then
  // inside the name (maxLength 8): na na é na (the string's room shrinking to 1).
  for (int32_t token : {-1, 95, 100, 96, '"' - 32, 99, 99, 105, 99}) {
    if (token >= 0) {
      ASSERT_TRUE(tg.Accept(&s, token)) << token;
    }
    tg.Mask(s, &mask);
    for (int32_t id = 0; id < tg.vocab(); ++id) {
      JsonState copy = s;
      const bool brute = tg.Accept(&copy, id);
      EXPECT_EQ(((mask[id >> 6] >> (id & 63)) & 1) != 0, brute) << "token " << id << " after " << token;
    }
    // Under a budget: the tokens after which the document can still be finished in `limit` bytes.
    // If no token fits, those that leave the fewest.
    std::vector<int64_t> rest(tg.vocab(), -1);  // -1: not allowed at all
    for (int32_t id = 0; id < tg.vocab(); ++id) {
      JsonState copy = s;
      if (tg.Accept(&copy, id)) rest[id] = tg.IsEnd(id) ? 0 : tg.grammar().MinToFinish(copy);
    }
    for (int64_t limit : {-1, 0, 2, 5, 9, 14, 30}) {
      int64_t fewest = INT64_MAX;
      for (int32_t id = 0; id < tg.vocab(); ++id)
        if (rest[id] >= 0 && !tg.IsEnd(id)) fewest = std::min(fewest, rest[id]);
      const int64_t cut = fewest <= limit ? limit : fewest;
      tg.BudgetMask(s, limit, &mask);
      for (int32_t id = 0; id < tg.vocab(); ++id) {
        const bool brute = rest[id] >= 0 && (tg.IsEnd(id) || rest[id] <= cut);
        EXPECT_EQ(((mask[id >> 6] >> (id & 63)) & 1) != 0, brute)
            << "token " << id << " after " << token << " within " << limit;
      }
    }
  }
}

// Random tokens under the mask until an end token: every walk ends in a
// document that parses, and the schema's shape holds.
TEST(TokenGrammar, RandomWalksEndInValidDocuments) {
  const TokenVocabulary v = TestVocabulary();
  auto c = CompileJsonSchema(kPerson);
  ASSERT_TRUE(c.ok());
  auto tg = std::make_shared<TokenGrammar>(std::move(*c), v);
  std::mt19937 rng(5);
  int complete = 0;
  for (int walk = 0; walk < 200; ++walk) {
    SamplingOptions o;
    o.temperature = 1.0f, o.seed = walk;
    Sampler sampler(o);
    sampler.Constrain(tg);
    std::vector<float> logits(v.bytes.size());
    std::string text;
    for (int i = 0; i < 400; ++i) {
      for (float& x : logits) x = std::uniform_real_distribution<float>(-2, 2)(rng);
      logits[v.end_tokens[0]] += 4;  // like a model that wants to stop: end as soon as allowed
      const int32_t t = sampler.Sample(logits.data(), logits.size());
      ASSERT_FALSE(sampler.constraint_failed()) << text;
      sampler.Accept(t);
      if (t == v.end_tokens[0]) break;
      text += v.bytes[t];
    }
    if (!tg->grammar().Accepting([&] {
          JsonState s = tg->grammar().Start();
          for (unsigned char ch : text) {
            JsonState n;
            tg->grammar().Advance(s, ch, &n);
            s = n;
          }
          return s;
        }()))
      continue;  // ran out of tokens inside a long string
    ++complete;
    json doc = json::parse(text);  // throws (fails the test) if not JSON
    ASSERT_TRUE(doc.is_object());
    EXPECT_TRUE(doc["name"].is_string()) << text;
    EXPECT_TRUE(doc.contains("boss")) << text;
  }
  EXPECT_GT(complete, 150);
}

// A recursive tree whose entries need nested containers: random walks reach
// the depth limit, and still always have a way to finish (no dead end).
TEST(TokenGrammar, DepthLimitNeverStrandsADocument) {
  const TokenVocabulary v = TestVocabulary();
  auto c = CompileJsonSchema(ordered::parse(R"({"$ref":"#/$defs/e","$defs":{"e":{"type":"object",
      "properties":{"n":{"type":"array","minItems":1,"maxItems":3,"items":{"$ref":"#/$defs/e"}},"x":{"type":"null"}},
      "required":["x"],"additionalProperties":false}}})"));
  ASSERT_TRUE(c.ok()) << c.status().message();
  auto tg = std::make_shared<TokenGrammar>(std::move(*c), v);
  std::mt19937 rng(9);
  for (int walk = 0; walk < 60; ++walk) {
    SamplingOptions o;
    o.temperature = 1.0f, o.seed = walk;
    Sampler sampler(o);
    sampler.Constrain(tg);
    std::vector<float> logits(v.bytes.size());
    for (int i = 0; i < 3000; ++i) {
      for (float& x : logits) x = std::uniform_real_distribution<float>(-2, 2)(rng);
      logits['[' - 32] += 3, logits['{' - 32] += 3, logits['"' - 32] += 3;  // keep nesting
      const int32_t t = sampler.Sample(logits.data(), logits.size());
      ASSERT_FALSE(sampler.constraint_failed()) << "walk " << walk << " token " << i;
      sampler.Accept(t);
      if (t == v.end_tokens[0]) break;
    }
  }
}


// The shortest completion by breadth-first search over printable bytes (and
// the two bytes of 'é'): what MinToFinish computes from the schema.
int64_t ShortestCompletion(const JsonGrammar& g, const JsonState& start) {
  std::deque<std::pair<JsonState, int64_t>> queue = {{start, 0}};
  std::unordered_set<std::string> seen = {start.Key()};
  std::vector<uint8_t> alphabet = {0xC3, 0xA9};
  for (int c = 32; c < 127; ++c) alphabet.push_back(static_cast<uint8_t>(c));
  JsonState next;
  while (!queue.empty()) {
    auto [s, d] = std::move(queue.front());
    queue.pop_front();
    if (g.Accepting(s)) return d;
    for (uint8_t b : alphabet) {
      g.Advance(s, b, &next);
      if (!next.dead() && seen.insert(next.Key()).second) queue.emplace_back(next, d + 1);
    }
  }
  return -1;
}

const char* kTree = R"({"$ref":"#/$defs/e","$defs":{"e":{"type":"object",
    "properties":{"n":{"type":"array","minItems":1,"maxItems":3,"items":{"$ref":"#/$defs/e"}},"x":{"type":"null"}},
    "required":["x"],"additionalProperties":false}}})";

TEST(JsonGrammar, MinToFinishEqualsTheShortestCompletion) {
  const char* schemas[] = {
      kTree,
      R"({"type":"object","properties":{"a":{"type":"string","minLength":3},"b":{"type":"array","minItems":2,
         "items":{"anyOf":[{"type":"number"},{"enum":["xyz",true]}]}},"c":{"type":"object"},
         "d":{"type":"integer"}},"required":["b","d"],"additionalProperties":false})",
      R"({"type":"array","minItems":1,"items":{"type":"object","properties":{"k":{"const":"long-constant"},
         "e":{"type":"string","minLength":2,"maxLength":4}},"required":["e"],"additionalProperties":false}})",
  };
  std::mt19937 rng(3);
  int checked = 0;
  for (const char* text : schemas) {
    const JsonGrammar g = Grammar(ordered::parse(text));
    for (int walk = 0; walk < 5; ++walk) {
      JsonState s = g.Start(), next;
      for (int step = 0; step < 30; ++step) {
        ASSERT_EQ(g.MinToFinish(s), ShortestCompletion(g, s)) << text << " walk " << walk << " step " << step;
        ++checked;
        std::vector<JsonState> options;  // a random byte among those allowed
        for (int c = 32; c < 127; ++c) {
          g.Advance(s, static_cast<uint8_t>(c), &next);
          if (!next.dead()) options.push_back(next);
        }
        if (options.empty()) break;
        s = options[std::uniform_int_distribution<size_t>(0, options.size() - 1)(rng)];
      }
    }
  }
  EXPECT_GT(checked, 300);
}

// Walks that keep nesting a recursive tree, under budgets from a few times the
// smallest document up: each ends with the end token within max_tokens and
// the document is whole (without the budget, most would be cut off).
TEST(TokenGrammar, BudgetedWalksCompleteWithinMaxTokens) {
  const TokenVocabulary v = TestVocabulary();
  auto c = CompileJsonSchema(ordered::parse(kTree));
  ASSERT_TRUE(c.ok()) << c.status().message();
  auto tg = std::make_shared<TokenGrammar>(std::move(*c), v);
  std::mt19937 rng(11);
  for (int64_t max_tokens : {12, 40, 150, 600}) {
    for (int walk = 0; walk < 40; ++walk) {
      SamplingOptions o;
      o.temperature = 1.0f, o.seed = walk;
      Sampler sampler(o);
      sampler.Constrain(tg, max_tokens);
      std::vector<float> logits(v.bytes.size());
      std::string text;
      bool ended = false;
      for (int64_t i = 0; i < max_tokens && !ended; ++i) {
        for (float& x : logits) x = std::uniform_real_distribution<float>(-2, 2)(rng);
        logits['[' - 32] += 3, logits['{' - 32] += 3, logits['"' - 32] += 3, logits[',' - 32] += 3;
        const int32_t t = sampler.Sample(logits.data(), logits.size());
        ASSERT_FALSE(sampler.constraint_failed()) << text;
        sampler.Accept(t);
        ended = t == v.end_tokens[0];
        if (!ended) text += v.bytes[t];
      }
      EXPECT_TRUE(ended) << "max_tokens " << max_tokens << ": " << text;
      EXPECT_TRUE(Matches(tg->grammar(), text)) << text;
    }
  }
}

}  // namespace
}  // namespace dsv3
