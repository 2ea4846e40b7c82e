// The Responses API without a server: a request body mapped onto the chat
// request it means (input items -> chat messages, flat tools -> nested ones,
// text.format -> chat's response_format, the settings echoed), every refusal
// naming its field, and the output builder turning deltas (reasoning, text,
// tool calls, which the tiny test models cannot be made to produce) into
// output items and the exact event sequence a stream sends.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "server/responses_api.h"
#include "server/responses_output.h"

namespace dsv3::server {
namespace {

using nlohmann::json;

ResponsesRequest Map(const json& body) {
  ApiError error;
  std::optional<ResponsesRequest> r = MapResponsesJson(body, &error);
  EXPECT_TRUE(r.has_value()) << error.message;
  return r ? *r : ResponsesRequest{};
}

// The param of the 400 a body gets.
std::string Refused(const json& body) {
  ApiError error;
  if (ParseResponsesJson(body, &error)) return "(accepted)";
  EXPECT_EQ(error.status, 400);
  return error.param;
}

TEST(ResponsesRequest, StringInputAndInstructionsAreChatMessages) {
  ResponsesRequest r = Map({{"input", "Hi"}, {"instructions", "Be brief."}, {"max_output_tokens", 7},
                            {"temperature", 0.8}, {"stream", true}, {"seed", 3}});
  EXPECT_EQ(r.chat.endpoint, Endpoint::kChat);
  EXPECT_EQ(r.chat.messages, json::parse(R"([{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}])"));
  EXPECT_EQ(r.chat.max_tokens, 7);
  EXPECT_FLOAT_EQ(r.chat.sampling.temperature, 0.8f);
  EXPECT_EQ(r.chat.sampling.seed, 3u);
  EXPECT_TRUE(r.chat.stream);
  EXPECT_EQ(r.chat.n, 1);
  EXPECT_TRUE(r.chat.tools.is_null());
  EXPECT_TRUE(r.chat.response_format.is_null());
  EXPECT_EQ(r.echo["instructions"], "Be brief.");
  EXPECT_EQ(r.echo["temperature"], 0.8);  // as written, not as the float holds it
  EXPECT_EQ(r.echo["max_output_tokens"], 7);
  EXPECT_EQ(r.echo["store"], false);
  EXPECT_EQ(r.echo["text"], json::parse(R"({"format":{"type":"text"}})"));
}

TEST(ResponsesRequest, ItemsBecomeMessagesToolCallsAndToolOutputs) {
  const json input = json::parse(R"([
    {"role": "developer", "content": "Use tools."},
    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather in "},
                                                    {"type": "input_text", "text": "Paris?"}]},
    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
    {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
    {"type": "function_call", "call_id": "c2", "name": "get_time", "arguments": "{}"},
    {"type": "reasoning", "id": "rs_1", "summary": []},
    {"type": "function_call_output", "call_id": "c1", "output": "22C"},
    {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "noon"}]},
    {"type": "function_call", "call_id": "c3", "name": "get_weather", "arguments": "{}"}])");
  const json expected = json::parse(R"([
    {"role": "developer", "content": "Use tools."},
    {"role": "user", "content": [{"type": "text", "text": "Weather in "}, {"type": "text", "text": "Paris?"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "Checking."}], "tool_calls": [
      {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
      {"id": "c2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "22C"},
    {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "noon"}]},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "c3", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]}])");
  EXPECT_EQ(Map({{"input", input}}).chat.messages, expected);
}

TEST(ResponsesRequest, FlatFunctionToolsBecomeChatTools) {
  const json tools = json::parse(R"([{"type": "function", "name": "f", "description": "d",
                                      "parameters": {"type": "object"}, "strict": true},
                                     {"type": "function", "name": "g"}])");
  ResponsesRequest r = Map({{"input", "x"}, {"tools", tools}});
  EXPECT_EQ(r.chat.tools, json::parse(R"([
    {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "g"}}])"));
  EXPECT_EQ(r.echo["tools"][1], json::parse(R"({"type": "function", "name": "g", "description": null,
                                                "parameters": null, "strict": null})"));
  EXPECT_EQ(r.echo["tools"][0]["strict"], true);
  EXPECT_EQ(r.echo["tool_choice"], "auto");
  // "none": the tools are echoed but never reach the template.
  r = Map({{"input", "x"}, {"tools", tools}, {"tool_choice", "none"}});
  EXPECT_TRUE(r.chat.tools.is_null());
  EXPECT_EQ(r.echo["tools"].size(), 2u);
  EXPECT_EQ(r.echo["tool_choice"], "none");
}

TEST(ResponsesRequest, TextFormatIsCarriedAsChatResponseFormatAndConstraint) {
  const json schema = {{"type", "object"}};
  ResponsesRequest r = Map({{"input", "x"}, {"text", {{"format", {{"type", "json_schema"}, {"name", "out"},
                                                                  {"schema", schema}, {"strict", true}}}}}});
  EXPECT_EQ(r.chat.response_format,
            json({{"type", "json_schema"}, {"json_schema", {{"name", "out"}, {"schema", schema}, {"strict", true}}}}));
  EXPECT_EQ(r.echo["text"]["format"]["name"], "out");
  EXPECT_EQ(Map({{"input", "x"}, {"text", {{"format", {{"type", "json_object"}}}}}}).chat.response_format,
            json({{"type", "json_object"}}));
  EXPECT_TRUE(Map({{"input", "x"}, {"text", {{"format", {{"type", "text"}}}}}}).chat.response_format.is_null());
  // ...and become the chat request's decoding constraint, named as this endpoint names it.
  ResponsesRequest j = Map({{"input", "x"}, {"text", {{"format", {{"type", "json_object"}}}}}});
  EXPECT_EQ(j.chat.constraint.format, OutputConstraint::Format::kJsonObject);
  EXPECT_EQ(j.chat.constraint.param, "text.format");
  EXPECT_EQ(r.chat.constraint.schema_pointer, "/text/format/schema");
  EXPECT_TRUE(r.chat.constraint.strict);
}

TEST(ResponsesRequest, EchoesMetadataUserReasoningAndParallelToolCalls) {
  ResponsesRequest r = Map({{"input", "x"}, {"metadata", {{"k", "v"}}}, {"user", "u1"}, {"store", true},
                            {"reasoning", {{"effort", "high"}}}, {"parallel_tool_calls", false}});
  EXPECT_EQ(r.echo["metadata"], json({{"k", "v"}}));
  EXPECT_EQ(r.echo["user"], "u1");
  EXPECT_EQ(r.echo["store"], false);
  EXPECT_EQ(r.echo["reasoning"], json({{"effort", "high"}, {"summary", nullptr}}));
  EXPECT_EQ(r.echo["parallel_tool_calls"], false);
}

TEST(ResponsesRequest, EveryRefusalNamesItsField) {
  const json user = {{"role", "user"}, {"content", "hi"}};
  struct Case {
    json body;
    std::string param;
  } cases[] = {
      {json::object(), "input"},
      {{{"input", 5}}, "input"},
      {{{"input", json::array()}}, "input"},
      {{{"input", json::array({"hi"})}}, "input[0]"},
      {{{"input", json::array({{{"role", "tool"}, {"content", "x"}}})}}, "input[0].role"},
      {{{"input", json::array({{{"role", "user"}}})}}, "input[0].content"},
      {{{"input", json::array({user, user, {{"role", "user"}, {"content", json::array({{{"type", "input_image"}}})}}})}},
       "input[2].content[0].type"},
      {{{"input", json::array({{{"role", "user"}, {"content", json::array({{{"type", "input_text"}}})}}})}},
       "input[0].content[0].text"},
      {{{"input", json::array({{{"type", "function_call"}, {"call_id", "c"}, {"name", "f"}}})}}, "input[0].arguments"},
      {{{"input", json::array({{{"type", "function_call_output"}, {"call_id", "c"}, {"output", "x"}}})}},
       "input[0].call_id"},
      {{{"input", json::array({{{"type", "item_reference"}, {"id", "msg_1"}}})}}, "input[0]"},
      {{{"input", json::array({{{"type", "web_search_call"}}})}}, "input[0].type"},
      {{{"input", "x"}, {"instructions", 1}}, "instructions"},
      {{{"input", "x"}, {"tools", json::array({{{"type", "web_search"}}})}}, "tools[0].type"},
      {{{"input", "x"}, {"tools", json::array({{{"type", "function"}}})}}, "tools[0].name"},
      {{{"input", "x"}, {"tools", json::array({{{"type", "function"}, {"name", "f"}, {"parameters", "x"}}})}},
       "tools[0].parameters"},
      {{{"input", "x"}, {"tool_choice", "required"}}, "tool_choice"},
      {{{"input", "x"}, {"tool_choice", {{"type", "function"}, {"name", "f"}}}}, "tool_choice"},
      {{{"input", "x"}, {"tool_choice", "sometimes"}}, "tool_choice"},
      {{{"input", "x"}, {"text", {{"format", {{"type", "xml"}}}}}}, "text.format.type"},
      {{{"input", "x"}, {"text", {{"format", {{"type", "json_schema"}, {"name", "n"}}}}}}, "text.format.schema"},
      {{{"input", "x"}, {"text", {{"format", {{"type", "json_schema"}, {"schema", json::object()}}}}}},
       "text.format.name"},
      {{{"input", "x"}, {"text", {{"format", {{"type", "json_schema"}, {"name", "a b"}, {"schema", json::object()}}}}}},
       "text.format.name"},
      {{{"input", "x"}, {"previous_response_id", "resp_1"}}, "previous_response_id"},
      {{{"input", "x"}, {"conversation", "conv_1"}}, "conversation"},
      {{{"input", "x"}, {"background", true}}, "background"},
      {{{"input", "x"}, {"truncation", "auto"}}, "truncation"},
      {{{"input", "x"}, {"top_logprobs", 2}}, "top_logprobs"},
      {{{"input", "x"}, {"max_output_tokens", 0}}, "max_output_tokens"},
      {{{"input", "x"}, {"temperature", 3}}, "temperature"},
      {{{"input", "x"}, {"metadata", {{"k", 1}}}}, "metadata"},
      {{{"input", "x"}, {"reasoning", "high"}}, "reasoning"},
      {{{"input", "x"}, {"store", "no"}}, "store"},
      {{{"input", "x"}, {"logit_bias", {{"abc", 1}}}}, "logit_bias"},
  };
  for (const Case& c : cases) EXPECT_EQ(Refused(c.body), c.param) << c.body.dump();
}

// (type, payload) of each event in an SSE text.
std::vector<std::pair<std::string, json>> Events(const std::string& sse) {
  std::vector<std::pair<std::string, json>> out;
  size_t at = 0;
  while (at < sse.size()) {
    const size_t end = sse.find("\n\n", at);
    const std::string block = sse.substr(at, end - at);
    const size_t nl = block.find('\n');
    EXPECT_EQ(block.rfind("event: ", 0), 0u) << block;
    EXPECT_EQ(block.compare(nl + 1, 6, "data: "), 0) << block;
    out.emplace_back(block.substr(7, nl - 7), json::parse(block.substr(nl + 7)));
    at = end + 2;
  }
  return out;
}

Delta Piece(std::string content, std::string reasoning = {}, std::vector<ToolCallOut> calls = {}) {
  Delta d;
  d.content = std::move(content), d.reasoning = std::move(reasoning), d.tool_calls = std::move(calls);
  return d;
}

TEST(ResponsesOutput, ReasoningTextAndCallsBecomeItemsAndEventsInOrder) {
  ResponseOutput out("abc");
  ResponseEvents ev;
  out.Add(Piece("", "Let me "), &ev);
  out.Add(Piece("", "think."), &ev);
  out.Add(Piece("It is ", "", {}), &ev);
  out.Add(Piece("sunny.", "", {{"call_1", "get_weather", "{\"city\":\"Paris\"}"}}), &ev);
  out.Close("completed", &ev);
  const auto events = Events(ev.Take());
  std::vector<std::string> types;
  for (size_t i = 0; i < events.size(); ++i) {
    types.push_back(events[i].first);
    EXPECT_EQ(events[i].second["type"], events[i].first);
    EXPECT_EQ(events[i].second["sequence_number"], i);
  }
  const std::vector<std::string> expected = {
      "response.output_item.added", "response.reasoning_summary_part.added", "response.reasoning_summary_text.delta",
      "response.reasoning_summary_text.delta", "response.reasoning_summary_text.done",
      "response.reasoning_summary_part.done", "response.output_item.done",
      "response.output_item.added", "response.content_part.added", "response.output_text.delta",
      "response.output_text.delta", "response.output_text.done", "response.content_part.done",
      "response.output_item.done",
      "response.output_item.added", "response.function_call_arguments.delta",
      "response.function_call_arguments.done", "response.output_item.done"};
  EXPECT_EQ(types, expected);
  const json& items = out.items();
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0], json::parse(R"({"type": "reasoning", "id": "rs_abc_0", "status": "completed",
                                      "summary": [{"type": "summary_text", "text": "Let me think."}]})"));
  EXPECT_EQ(items[1], json::parse(R"({"type": "message", "id": "msg_abc_1", "status": "completed", "role": "assistant",
      "content": [{"type": "output_text", "text": "It is sunny.", "annotations": []}]})"));
  EXPECT_EQ(items[2], json::parse(R"({"type": "function_call", "id": "fc_abc_2", "call_id": "call_1",
      "name": "get_weather", "arguments": "{\"city\":\"Paris\"}", "status": "completed"})"));
  EXPECT_EQ(out.text(), "It is sunny.");
  EXPECT_EQ(out.reasoning(), "Let me think.");
  // Deltas and indices point at the item they belong to; the done events carry the whole item.
  EXPECT_EQ(events[9].second["item_id"], "msg_abc_1");
  EXPECT_EQ(events[9].second["output_index"], 1);
  EXPECT_EQ(events[9].second["delta"], "It is ");
  EXPECT_EQ(events[13].second["item"], items[1]);
  EXPECT_EQ(events[14].second["item"]["arguments"], "");
  EXPECT_EQ(events[15].second["delta"], "{\"city\":\"Paris\"}");
  EXPECT_EQ(events[17].second["item"], items[2]);
}

TEST(ResponsesOutput, TextAfterACallIsANewMessageAndACutOffItemIsIncomplete) {
  ResponseOutput out("x");
  out.Add(Piece("", "", {{"call_1", "f", "{}"}}), nullptr);
  out.Add(Piece("More"), nullptr);
  out.Close("incomplete", nullptr);
  ASSERT_EQ(out.items().size(), 2u);
  EXPECT_EQ(out.items()[1]["type"], "message");
  EXPECT_EQ(out.items()[1]["status"], "incomplete");
  EXPECT_EQ(out.items()[1]["content"][0]["text"], "More");
}

TEST(ResponsesOutput, ResponseObjectAndUsage) {
  ResponseInfo info;
  NewResponsesId(&info);
  EXPECT_EQ(info.id.rfind("resp_", 0), 0u);
  EXPECT_EQ(info.id.substr(5), info.hex);
  info.model = std::string("m");  // (a literal assigned here trips GCC 12's -Wrestrict false positive)
  info.created_at = 5, info.echo = {{"metadata", json::object()}};
  ResponseOutput out(info.hex);
  out.Add(Piece("Hi"), nullptr);
  out.Close("completed", nullptr);
  FinishInfo u;
  u.prompt_tokens = 10, u.cached_prompt_tokens = 4, u.completion_tokens = 3;
  const json r = ResponseObject(info, "completed", &out, ResponsesUsage(u, 1));
  EXPECT_EQ(r["object"], "response");
  EXPECT_EQ(r["status"], "completed");
  EXPECT_EQ(r["output_text"], "Hi");
  EXPECT_EQ(r["metadata"], json::object());
  EXPECT_TRUE(r["error"].is_null() && r["incomplete_details"].is_null());
  EXPECT_EQ(r["usage"], json::parse(R"({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4},
      "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 1}, "total_tokens": 13})"));
  const json pending = ResponseObject(info, "in_progress", nullptr);
  EXPECT_EQ(pending["output"], json::array());
  EXPECT_TRUE(pending["usage"].is_null() && pending["completed_at"].is_null());
}

}  // namespace
}  // namespace dsv3::server
