// Server pieces below HTTP: request parsing (defaults, aliases, refusals,
// penalties, logit_bias, n choices, the server's sampling defaults),
// the chat output parser (reasoning, tool calls in DeepSeek V3 and V3.1
// forms, markers split across pieces, truncated calls), response JSON shapes
// and the Prometheus exposition.
#include <gtest/gtest.h>

#include <regex>

#include "server/api.h"
#include "server/chat_output.h"
#include "server/chat_tools.h"
#include "server/metrics.h"
#include "server/responses.h"

namespace dsv3::server {
namespace {

using nlohmann::json;

ApiRequest Parse(const json& body, Endpoint ep = Endpoint::kCompletions) {
  ApiError e;
  auto r = ParseRequestJson(body, ep, &e);
  EXPECT_TRUE(r.has_value()) << e.message;
  return r.value_or(ApiRequest{});
}

ApiError Refuse(const json& body, Endpoint ep = Endpoint::kCompletions) {
  ApiError e;
  EXPECT_FALSE(ParseRequestJson(body, ep, &e).has_value()) << body.dump();
  return e;
}

TEST(ParseRequest, DefaultsAndAliases) {
  ApiRequest r = Parse({{"prompt", {1, 2, 3}}});
  ASSERT_TRUE(r.prompt_ids.has_value());
  EXPECT_EQ(*r.prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(r.max_tokens, -1);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 1.0f);  // OpenAI's default
  EXPECT_EQ(r.logprobs, -1);
  r = Parse({{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_completion_tokens", 7}, {"logprobs", true},
             {"top_logprobs", 4}, {"stream", true}, {"stream_options", {{"include_usage", true}}}, {"top_k", -1}},
            Endpoint::kChat);
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_EQ(r.logprobs, 4);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.sampling.top_k, 0);
  EXPECT_EQ(Parse({{"prompt", "text"}, {"stop", "x"}}).stop, std::vector<std::string>{"x"});
  EXPECT_EQ(Parse({{"prompt", {{4, 5}}}}).prompt_ids->size(), 2u);  // a batch of one
}

TEST(ParseRequest, SeedsDifferWhenNotGiven) {
  EXPECT_NE(Parse({{"prompt", {1}}}).sampling.seed, Parse({{"prompt", {1}}}).sampling.seed);
  EXPECT_EQ(Parse({{"prompt", {1}}, {"seed", -1}}).sampling.seed, ~uint64_t{0});
}

TEST(ParseRequest, RefusalsNameTheField) {
  EXPECT_EQ(Refuse({{"prompt", {1}}, {"max_tokens", 0}}).param, "max_tokens");
  EXPECT_EQ(Refuse({{"prompt", {1}}, {"n", 17}}).param, "n");
  EXPECT_EQ(Refuse({{"prompt", {1}}, {"top_p", 0}}).param, "top_p");
  EXPECT_EQ(Refuse({{"max_tokens", 3}}).param, "prompt");
  EXPECT_EQ(Refuse({{"messages", {{{"role", "user"}}}}, {"top_logprobs", 2}}, Endpoint::kChat).param,
            "top_logprobs");
  EXPECT_EQ(Refuse({{"messages", {{{"role", "wizard"}, {"content", "x"}}}}}, Endpoint::kChat).param,
            "messages[0].role");
  const ApiError e = Refuse({{"prompt", {1}}, {"temperature", "warm"}});
  EXPECT_EQ(e.status, 400);
  EXPECT_NE(e.message.find("string \"warm\""), std::string::npos);
  ApiError bad;
  EXPECT_FALSE(ParseRequest("{\"prompt\": \"\xff\"}", Endpoint::kCompletions, &bad).has_value());
  EXPECT_NE(bad.message.find("not valid JSON"), std::string::npos);
}

ApiRequest ParseWith(const json& body, const RequestDefaults& d, Endpoint ep = Endpoint::kCompletions) {
  ApiError e;
  auto r = ParseRequestJson(body, ep, &e, d);
  EXPECT_TRUE(r.has_value()) << e.message;
  return r.value_or(ApiRequest{});
}

ApiError RefuseWith(const json& body, const RequestDefaults& d, Endpoint ep = Endpoint::kCompletions) {
  ApiError e;
  EXPECT_FALSE(ParseRequestJson(body, ep, &e, d).has_value()) << body.dump();
  return e;
}

TEST(ParseRequest, PenaltiesAndLogitBias) {
  ApiRequest r = Parse({{"prompt", {1}}, {"presence_penalty", 1.5}, {"frequency_penalty", -2}, {"repetition_penalty", 1.3},
                        {"logit_bias", {{"7", -100}, {"3", 2.5}}}});
  EXPECT_FLOAT_EQ(r.sampling.presence_penalty, 1.5f);
  EXPECT_FLOAT_EQ(r.sampling.frequency_penalty, -2.0f);
  EXPECT_FLOAT_EQ(r.sampling.repetition_penalty, 1.3f);
  ASSERT_EQ(r.sampling.logit_bias.size(), 2u);  // sorted by id
  EXPECT_EQ(r.sampling.logit_bias[0].token, 3);
  EXPECT_FLOAT_EQ(r.sampling.logit_bias[0].bias, 2.5f);
  EXPECT_EQ(r.sampling.logit_bias[1].token, 7);
  EXPECT_FLOAT_EQ(r.sampling.logit_bias[1].bias, kBanBias);
  EXPECT_TRUE(Parse({{"prompt", {1}}, {"logit_bias", json::object()}}).sampling.logit_bias.empty());
  RequestDefaults d;
  d.vocab = 384;
  EXPECT_EQ(ParseWith({{"prompt", {1}}, {"logit_bias", {{"383", 1}}}}, d).sampling.logit_bias.size(), 1u);
}

TEST(ParseRequest, BadPenaltiesAndLogitBiasNameTheField) {
  for (const char* name : {"presence_penalty", "frequency_penalty"}) {
    EXPECT_EQ(Refuse({{"prompt", {1}}, {name, 2.01}}).param, name);
    EXPECT_EQ(Refuse({{"prompt", {1}}, {name, -3}}).param, name);
    EXPECT_EQ(Refuse({{"prompt", {1}}, {name, "high"}}).param, name);
  }
  EXPECT_EQ(Refuse({{"prompt", {1}}, {"repetition_penalty", 0}}).param, "repetition_penalty");
  EXPECT_EQ(Refuse({{"prompt", {1}}, {"repetition_penalty", 10.5}}).param, "repetition_penalty");
  RequestDefaults d;
  d.vocab = 384;
  for (const json& bias : {json::parse(R"({"abc": 1})"), json::parse(R"({"1.5": 1})"), json::parse(R"({"": 1})"),
                           json::parse(R"({" 5": 1})"), json::parse(R"({"384": 1})"), json::parse(R"({"-1": 1})"),
                           json::parse(R"({"99999999999999999999999": 1})"), json::parse(R"({"5": 100.5})"),
                           json::parse(R"({"5": -101})"), json::parse(R"({"5": "ban"})"), json::parse(R"({"5": null})"),
                           json::parse(R"({"5": 1, "05": 2})"), json::parse(R"([[5, -100]])"), json("5")}) {
    const ApiError e = RefuseWith({{"prompt", {1}}, {"logit_bias", bias}}, d);
    EXPECT_EQ(e.param, "logit_bias") << bias.dump();
    EXPECT_EQ(e.status, 400);
  }
  EXPECT_NE(RefuseWith({{"prompt", {1}}, {"logit_bias", {{"384", 1}}}}, d).message.find("outside the vocabulary [0, 384)"),
            std::string::npos);
  json all = json::object();
  for (int i = 0; i < 384; ++i) all[std::to_string(i)] = -100;
  EXPECT_NE(RefuseWith({{"prompt", {1}}, {"logit_bias", all}}, d).message.find("bans every token"), std::string::npos);
}

TEST(ParseRequest, ChoicesUpToTheServersLimit) {
  RequestDefaults d;
  d.max_choices = 4;
  EXPECT_EQ(ParseWith({{"prompt", {1}}, {"n", 4}}, d).n, 4);
  EXPECT_EQ(Parse({{"prompt", {1}}}).n, 1);
  EXPECT_EQ(ParseWith({{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"n", 3}}, d, Endpoint::kChat).n, 3);
  for (const json& n : {json(5), json(0), json(-1), json(2.5), json("2")}) {
    const ApiError e = RefuseWith({{"prompt", {1}}, {"n", n}}, d);
    EXPECT_EQ(e.param, "n") << n.dump();
  }
  EXPECT_NE(RefuseWith({{"prompt", {1}}, {"n", 5}}, d).message.find("[1, 4]"), std::string::npos);
  EXPECT_EQ(ParseWith({{"prompt", {1}}, {"n", 3}, {"best_of", 3}}, d).n, 3);
  EXPECT_EQ(RefuseWith({{"prompt", {1}}, {"n", 2}, {"best_of", 3}}, d).param, "best_of");
  EXPECT_EQ(Refuse({{"prompt", {1}}, {"best_of", 2}}).param, "best_of");
}

TEST(ParseRequest, UnsetSamplingTakesTheServersDefaults) {
  RequestDefaults d;
  d.sampling.temperature = 0.6f, d.sampling.top_p = 0.95f, d.sampling.top_k = 40, d.sampling.min_p = 0.05f;
  d.sampling.repetition_penalty = 1.1f;
  d.sampling.presence_penalty = 1.0f;  // never a default: OpenAI's penalties are the request's own
  ApiRequest r = ParseWith({{"prompt", {1}}}, d);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.6f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.95f);
  EXPECT_EQ(r.sampling.top_k, 40);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.05f);
  EXPECT_FLOAT_EQ(r.sampling.repetition_penalty, 1.1f);
  EXPECT_FLOAT_EQ(r.sampling.presence_penalty, 0.0f);
  r = ParseWith({{"prompt", {1}}, {"temperature", 0}, {"top_p", 1}, {"top_k", -1}, {"min_p", 0}, {"repetition_penalty", 1}},
                d);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.0f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 1.0f);
  EXPECT_EQ(r.sampling.top_k, 0);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.0f);
  EXPECT_FLOAT_EQ(r.sampling.repetition_penalty, 1.0f);
  r = ParseWith({{"prompt", {1}}, {"temperature", nullptr}}, d);  // null is unset
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.6f);
}

ChatPieces Feed(ChatOutputParser& p, const std::vector<std::string>& pieces) {
  ChatPieces out;
  for (const auto& s : pieces) p.Add(s, &out);
  p.Flush(&out);
  return out;
}

TEST(ChatOutput, ReasoningSplitAcrossPieces) {
  ChatOutputParser p(false);
  ChatPieces out = Feed(p, {"<thi", "nk>\nLet me think", ".\n</th", "ink>\n\nThe answer", " is 4."});
  EXPECT_EQ(out.reasoning, "Let me think.\n");
  EXPECT_EQ(out.content, "The answer is 4.");
  ChatOutputParser q(/*starts_in_reasoning=*/true);
  out = Feed(q, {"hmm</think>ok"});
  EXPECT_EQ(out.reasoning, "hmm");
  EXPECT_EQ(out.content, "ok");
  ChatOutputParser r(false);  // <think> in the middle of an answer is just text
  EXPECT_EQ(Feed(r, {"use <think> tags"}).content, "use <think> tags");
}

TEST(ChatOutput, DeepSeekV3ToolCalls) {
  ChatOutputParser p(false, "id_");
  const std::string text =
      "Checking.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
      "{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n```json\n"
      "{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
  std::vector<std::string> pieces;
  for (size_t i = 0; i < text.size(); i += 5) pieces.push_back(text.substr(i, 5));  // markers split everywhere
  ChatPieces out = Feed(p, pieces);
  EXPECT_EQ(out.content, "Checking.");
  ASSERT_EQ(out.tool_calls.size(), 2u);
  EXPECT_EQ(out.tool_calls[0].name, "get_weather");
  EXPECT_EQ(out.tool_calls[0].arguments, "{\"city\": \"Paris\"}");
  EXPECT_EQ(out.tool_calls[0].id, "id_0");
  EXPECT_EQ(out.tool_calls[1].name, "get_time");
  EXPECT_EQ(out.tool_calls[1].arguments, "{}");
  EXPECT_EQ(p.tool_calls(), 2);
}

TEST(ChatOutput, V31FormAndTruncatedCall) {
  ToolCallOut c = ParseToolCall("lookup<｜tool▁sep｜>{\"q\": 1}");
  EXPECT_EQ(c.name, "lookup");
  EXPECT_EQ(c.arguments, "{\"q\": 1}");
  ChatOutputParser p(false);
  ChatPieces out = Feed(p, {"<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{\"a\""});
  EXPECT_TRUE(out.tool_calls.empty());
  EXPECT_NE(out.content.find("{\"a\""), std::string::npos);  // not silently lost
}

TEST(Responses, SeveralChoices) {
  ResponseMeta m;
  m.endpoint = Endpoint::kCompletions, m.id = "cmpl-1";
  Delta a, b;
  a.content = "1 2", b.content = "3";
  FinishInfo usage;
  usage.prompt_tokens = 4, usage.completion_tokens = 3;
  json full = FullResponse(m, {{a, "length"}, {b, "stop"}}, usage);
  ASSERT_EQ(full["choices"].size(), 2u);
  EXPECT_EQ(full["choices"][1]["index"], 1);
  EXPECT_EQ(full["choices"][1]["text"], "3");
  EXPECT_EQ(full["choices"][1]["finish_reason"], "stop");
  EXPECT_EQ(full["usage"]["total_tokens"], 7);
  json chunk = StreamChunk(m, 5, b, "", false, false, 0);
  ASSERT_EQ(chunk["choices"].size(), 1u);
  EXPECT_EQ(chunk["choices"][0]["index"], 5);
}

TEST(Responses, ShapesFollowOpenAi) {
  ResponseMeta m;
  m.endpoint = Endpoint::kChat, m.id = "chatcmpl-1", m.created = 5, m.model = "x";
  Delta d;
  d.content = "hi";
  d.reasoning = "r";
  FinishInfo info;
  info.prompt_tokens = 3, info.completion_tokens = 2, info.cached_prompt_tokens = 1;
  json full = FullResponse(m, {{d, "stop"}}, info);
  EXPECT_EQ(full["object"], "chat.completion");
  EXPECT_EQ(full["choices"][0]["message"]["content"], "hi");
  EXPECT_EQ(full["choices"][0]["message"]["reasoning_content"], "r");
  EXPECT_EQ(full["usage"]["total_tokens"], 5);
  EXPECT_EQ(full["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
  json first = StreamChunk(m, 0, Delta(), "", true, true, 0);
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(first["usage"].is_null());
  EXPECT_EQ(UsageChunk(m, info)["choices"].size(), 0u);
  d.tool_calls.push_back({"call_1", "f", "{}"});
  d.content.clear();
  json tool = FullResponse(m, {{d, "tool_calls"}}, info)["choices"][0]["message"];
  EXPECT_TRUE(tool["content"].is_null());
  EXPECT_EQ(tool["tool_calls"][0]["function"]["name"], "f");
  EXPECT_EQ(StreamChunk(m, 0, d, "", false, false, 2)["choices"][0]["delta"]["tool_calls"][0]["index"], 2);
  EXPECT_EQ(SseData(json{{"a", "\xff"}}), "data: {\"a\":\"\xEF\xBF\xBD\"}\n\n");  // never throws on bad UTF-8
}

TEST(Metrics, PrometheusTextFormat) {
  Metrics m;
  m.CountRequest("/v1/completions", 200);
  m.CountRequest("/v1/completions", 200);
  m.ObserveTimeToFirstToken(0.03);
  m.ObserveTimeToFirstToken(100);
  m.SampleThroughput(1.0, 0);
  m.SampleThroughput(3.0, 50);
  SchedulerStats s;
  s.waiting = 2;
  s.prompt_tokens = 80, s.cached_prompt_tokens = 57;  // 4 choices of a 20-token prompt
  const std::string text = m.Render(s, "m\"x");
  EXPECT_NE(text.find("dsv3_prompt_tokens_computed_total 23\n"), std::string::npos);
  EXPECT_NE(text.find("dsv3_requests_total{endpoint=\"/v1/completions\",code=\"200\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("dsv3_time_to_first_token_seconds_bucket{le=\"0.05\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("dsv3_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("dsv3_generation_tokens_per_second 25\n"), std::string::npos);
  EXPECT_NE(text.find("dsv3_requests_waiting 2\n"), std::string::npos);
  EXPECT_NE(text.find("model=\"m\\\"x\""), std::string::npos);
  const std::regex line(R"((# (HELP|TYPE) .*)|([a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? [-+0-9.eInf]+))");
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    ASSERT_NE(end, std::string::npos);
    EXPECT_TRUE(std::regex_match(text.substr(start, end - start), line)) << text.substr(start, end - start);
    start = end + 1;
  }
}

TEST(ChatTools, DescribedAfterTheSystemPrompt) {
  const json tools = json::parse(R"([{"type": "function", "function": {"name": "get_weather",
      "description": "Weather for a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])");
  const json messages = json::parse(R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Paris?"}])");
  ApiError e;
  auto out = AddToolsToMessages(messages, tools, &e);
  ASSERT_TRUE(out.has_value()) << e.message;
  ASSERT_EQ(out->size(), 3u);
  EXPECT_EQ((*out)[0]["content"], "Be brief.");
  const std::string sys = (*out)[1]["content"];
  EXPECT_NE(sys.find("`get_weather`: Weather for a city"), std::string::npos);
  EXPECT_NE(sys.find("<｜tool▁call▁begin｜>function<｜tool▁sep｜>"), std::string::npos);
  EXPECT_NE(sys.find("\"city\""), std::string::npos);
  EXPECT_EQ((*out)[2]["role"], "user");
  EXPECT_EQ(*AddToolsToMessages(messages, json(nullptr), &e), messages);
  EXPECT_FALSE(AddToolsToMessages(messages, json::parse(R"([{"type": "function", "function": {}}])"), &e));
  EXPECT_EQ(e.param, "tools[0].function.name");
  EXPECT_FALSE(AddToolsToMessages(messages, json::parse(R"([{"type": "retrieval"}])"), &e));
}

}  // namespace
}  // namespace dsv3::server
