// Responses API request -> chat request; see responses_api.h.
#include "server/responses_api.h"

#include <set>
#include <utility>

#include "core/json_fields.h"

namespace dsv3::server {

using nlohmann::json;

namespace {

std::string At(const std::string& where, size_t i) { return where + "[" + std::to_string(i) + "]"; }

// item[key] as a string, or a 400 naming `where.key`.
bool ItemString(Fields& f, const json& item, const std::string& where, const char* key, bool non_empty,
                std::string* out) {
  const auto it = item.find(key);
  if (it == item.end() || !it->is_string())
    return f.Fail(where + "." + key, "must be a string" + (it == item.end() ? std::string() : ", got " + Fields::Show(*it)));
  *out = it->get<std::string>();
  if (non_empty && out->empty()) return f.Fail(where + "." + key, "must not be empty");
  return true;
}

// item[key] checked to be a string and moved out (the text of a long
// conversation is held once, as chat holds its messages).
bool TakeString(Fields& f, json& item, const std::string& where, const char* key, json* out) {
  const auto it = item.find(key);
  if (it == item.end() || !it->is_string())
    return f.Fail(where + "." + key, "must be a string" + (it == item.end() ? std::string() : ", got " + Fields::Show(*it)));
  *out = std::move(*it);
  return true;
}

// A Responses content value as chat content (moved out of the body): a
// string as is, input_text / output_text parts as chat's text parts (which
// chat joins the same way).
bool ContentToChat(Fields& f, json& c, const std::string& where, json* out) {
  if (c.is_string()) return *out = std::move(c), true;
  if (!c.is_array()) return f.Fail(where, "must be a string or an array of content parts, got " + Fields::Show(c));
  json parts = json::array();
  for (size_t k = 0; k < c.size(); ++k) {
    json& p = c[k];
    const std::string pw = At(where, k);
    if (!p.is_object()) return f.Fail(pw, "must be a content part object, got " + Fields::Show(p));
    std::string type;
    json text;
    if (!ItemString(f, p, pw, "type", false, &type)) return false;
    if (type != "input_text" && type != "output_text")
      return f.Fail(pw + ".type", "is \"" + type + "\": only input_text and output_text parts are supported (the model "
                                  "reads text only)");
    if (!TakeString(f, p, pw, "text", &text)) return false;
    parts.push_back({{"type", "text"}, {"text", std::move(text)}});
  }
  *out = std::move(parts);
  return true;
}

// A message item: {"type"?: "message", "role", "content"}.
bool MessageItem(Fields& f, json& item, const std::string& where, json* messages) {
  std::string role;
  if (!ItemString(f, item, where, "role", false, &role)) return false;
  if (role != "user" && role != "system" && role != "developer" && role != "assistant")
    return f.Fail(where + ".role", "must be one of user, system, developer, assistant; got \"" + role + "\"");
  const auto c = item.find("content");
  if (c == item.end() || c->is_null()) return f.Fail(where + ".content", "is required");  // (null is chat's, for calls)
  json content;
  if (!ContentToChat(f, *c, where + ".content", &content)) return false;
  messages->push_back({{"role", std::move(role)}, {"content", std::move(content)}});
  return true;
}

// A function_call item: a call the assistant made. It joins the assistant
// turn it follows: a reply's text and its parallel calls are one chat message.
bool FunctionCallItem(Fields& f, json& item, const std::string& where, json* messages,
                      std::set<std::string>* call_ids) {
  std::string call_id, name;
  json arguments;
  if (!ItemString(f, item, where, "call_id", true, &call_id) || !ItemString(f, item, where, "name", true, &name) ||
      !TakeString(f, item, where, "arguments", &arguments))
    return false;
  if (messages->empty() || StringField(messages->back(), "role") != "assistant")
    messages->push_back({{"role", "assistant"}, {"content", nullptr}});
  json& turn = messages->back();
  if (!turn.contains("tool_calls")) turn["tool_calls"] = json::array();
  turn["tool_calls"].push_back(
      {{"id", call_id}, {"type", "function"}, {"function", {{"name", name}, {"arguments", std::move(arguments)}}}});
  call_ids->insert(std::move(call_id));
  return true;
}

// A function_call_output item: the result of an earlier call, a tool message.
bool FunctionOutputItem(Fields& f, json& item, const std::string& where, json* messages,
                        const std::set<std::string>& call_ids) {
  std::string call_id;
  if (!ItemString(f, item, where, "call_id", true, &call_id)) return false;
  if (!call_ids.count(call_id))
    return f.Fail(where + ".call_id", "\"" + call_id + "\" matches no earlier function_call item in 'input'");
  const auto out = item.find("output");
  if (out == item.end() || out->is_null()) return f.Fail(where + ".output", "is required");
  json content;
  if (!ContentToChat(f, *out, where + ".output", &content)) return false;
  messages->push_back({{"role", "tool"}, {"tool_call_id", std::move(call_id)}, {"content", std::move(content)}});
  return true;
}

bool InputItem(Fields& f, json& item, const std::string& where, json* messages, std::set<std::string>* calls) {
  if (!item.is_object()) return f.Fail(where, "must be an input item object, got " + Fields::Show(item));
  std::string type = "message";  // a bare {"role", "content"} is a message
  if (item.contains("type") && !ItemString(f, item, where, "type", false, &type)) return false;
  if (type == "message") return MessageItem(f, item, where, messages);
  if (type == "function_call") return FunctionCallItem(f, item, where, messages, calls);
  if (type == "function_call_output") return FunctionOutputItem(f, item, where, messages, *calls);
  // The chat format renders no earlier reasoning (R1 drops it from the
  // history too), so a reasoning item echoed back by a client is left out.
  if (type == "reasoning") return true;
  if (type == "item_reference")
    return f.Fail(where, "refers to a stored item, and dsv3 stores none: send the item itself (the Vercel AI SDK "
                         "does with providerOptions.openai.store = false)");
  return f.Fail(where + ".type", "is \"" + type + "\": only message, function_call, function_call_output and "
                                 "reasoning items are supported");
}

// `instructions` (a system message first), then `input` (moved out of
// `body`), as chat messages.
bool InputToMessages(Fields& f, json& body, json* messages) {
  std::string instructions;
  if (!f.String("instructions", &instructions)) return false;
  if (!instructions.empty()) messages->push_back({{"role", "system"}, {"content", std::move(instructions)}});
  const auto it = body.find("input");
  if (it == body.end() || it->is_null()) return f.Fail("input", "is required");
  json* in = &*it;
  if (in->is_string()) {
    messages->push_back({{"role", "user"}, {"content", std::move(*in)}});
    return true;
  }
  if (!in->is_array() || in->empty())
    return f.Fail("input", "must be a string or a non-empty array of input items, got " + Fields::Show(*in));
  std::set<std::string> call_ids;
  for (size_t i = 0; i < in->size(); ++i) {
    if (!InputItem(f, (*in)[i], At("input", i), messages, &call_ids)) return false;
    (*in)[i] = nullptr;  // its text was moved; free the emptied item now, not with the body
  }
  if (messages->empty()) return f.Fail("input", "holds no message (reasoning items alone are no prompt)");
  return true;
}

// One flat Responses function tool -> chat's nested form, and its echo.
bool ToolToChat(Fields& f, const json& tool, const std::string& where, json* chat, json* echo) {
  if (!tool.is_object()) return f.Fail(where, "must be a tool object, got " + Fields::Show(tool));
  std::string type, name;
  if (!ItemString(f, tool, where, "type", false, &type)) return false;
  if (type != "function")
    return f.Fail(where + ".type", "is \"" + type + "\": only function tools are supported (dsv3 runs no hosted tools)");
  if (!ItemString(f, tool, where, "name", true, &name)) return false;
  json fn = {{"name", name}};
  *echo = {{"type", "function"}, {"name", name}, {"description", nullptr}, {"parameters", nullptr}, {"strict", nullptr}};
  if (const auto d = tool.find("description"); d != tool.end() && !d->is_null()) {
    if (!d->is_string()) return f.Fail(where + ".description", "must be a string, got " + Fields::Show(*d));
    fn["description"] = (*echo)["description"] = *d;
  }
  if (const auto p = tool.find("parameters"); p != tool.end() && !p->is_null()) {
    if (!p->is_object()) return f.Fail(where + ".parameters", "must be a JSON-schema object, got " + Fields::Show(*p));
    fn["parameters"] = (*echo)["parameters"] = *p;
  }
  if (const auto s = tool.find("strict"); s != tool.end() && !s->is_null()) {
    if (!s->is_boolean()) return f.Fail(where + ".strict", "must be true or false, got " + Fields::Show(*s));
    (*echo)["strict"] = *s;  // echoed; not enforced until constrained decoding lands (docs/server.md)
  }
  *chat = {{"type", "function"}, {"function", std::move(fn)}};
  return true;
}

// What the request says beyond chat's fields.
struct Settings {
  json messages = json::array();
  json chat_tools = json::array(), tools = json::array();  // chat's form; the echo
  json tool_choice = "auto";       // as given (the echo)
  json chat_tool_choice = nullptr;  // chat's form, for the chat parser
  bool use_tools = true;  // false for tool_choice "none": the template never sees them
  json text = {{"format", {{"type", "text"}}}};
  json response_format;  // chat's form of text.format; null = text
  json reasoning = {{"effort", nullptr}, {"summary", nullptr}};
  json metadata = json::object();
  std::string user;
  bool parallel_tool_calls = true;
  int64_t max_output_tokens = -1;
};

bool ParseTools(Fields& f, Settings* s) {
  const json* t = f.Get("tools");
  if (!t) return true;
  if (!t->is_array()) return f.Fail("tools", "must be an array of tools, got " + Fields::Show(*t));
  for (size_t i = 0; i < t->size(); ++i) {
    json chat, echo;
    if (!ToolToChat(f, (*t)[i], At("tools", i), &chat, &echo)) return false;
    s->chat_tools.push_back(std::move(chat));
    s->tools.push_back(std::move(echo));
  }
  return true;
}

// "auto", "none", "required" or {"type": "function", "name": ...}; kept in
// chat's form for the chat parser, which turns a forced call into a grammar.
bool ParseToolChoice(Fields& f, Settings* s) {
  const json* c = f.Get("tool_choice");
  if (!c) return true;
  if (c->is_string()) {
    const std::string v = c->get<std::string>();
    if (v == "auto" || v == "none" || v == "required") {
      s->tool_choice = v, s->chat_tool_choice = v, s->use_tools = v != "none";
      return true;
    }
  } else if (c->is_object() && StringField(*c, "type") == "function" && c->contains("name") &&
             (*c)["name"].is_string()) {
    s->tool_choice = *c;
    s->chat_tool_choice = {{"type", "function"}, {"function", {{"name", (*c)["name"]}}}};
    return true;
  }
  return f.Fail("tool_choice", "must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", \"name\": ...}, "
                               "got " + Fields::Show(*c));
}

// text.format json_schema: {"type", "name", "schema", "strict"?, "description"?}.
bool JsonSchemaFormat(Fields& f, const json& fmt, Settings* s) {
  std::string name;
  if (!ItemString(f, fmt, "text.format", "name", true, &name)) return false;
  if (name.size() > 64 || name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
                              std::string::npos)
    return f.Fail("text.format.name", "must be at most 64 letters, digits, '_' or '-', got \"" + name + "\"");
  const auto schema = fmt.find("schema");
  if (schema == fmt.end() || !schema->is_object())
    return f.Fail("text.format.schema", "must be a JSON-schema object" +
                                            (schema == fmt.end() ? std::string() : ", got " + Fields::Show(*schema)));
  json js = {{"name", name}, {"schema", *schema}};
  if (const auto st = fmt.find("strict"); st != fmt.end() && !st->is_null()) {
    if (!st->is_boolean()) return f.Fail("text.format.strict", "must be true or false, got " + Fields::Show(*st));
    js["strict"] = *st;
  }
  if (const auto d = fmt.find("description"); d != fmt.end() && !d->is_null()) {
    if (!d->is_string()) return f.Fail("text.format.description", "must be a string, got " + Fields::Show(*d));
    js["description"] = *d;
  }
  s->response_format = {{"type", "json_schema"}, {"json_schema", std::move(js)}};
  return true;
}

// text: {"format"?: {...}, "verbosity"?}; the format in chat's form.
bool ParseText(Fields& f, Settings* s) {
  const json* t = f.Get("text");
  if (!t) return true;
  if (!t->is_object()) return f.Fail("text", "must be an object, got " + Fields::Show(*t));
  if (const auto v = t->find("verbosity"); v != t->end() && !v->is_null()) {
    if (!v->is_string() || (*v != "low" && *v != "medium" && *v != "high"))
      return f.Fail("text.verbosity", "must be \"low\", \"medium\" or \"high\", got " + Fields::Show(*v));
    s->text["verbosity"] = *v;  // a hint the model cannot take: echoed only
  }
  const auto fmt = t->find("format");
  if (fmt == t->end() || fmt->is_null()) return true;
  if (!fmt->is_object()) return f.Fail("text.format", "must be an object, got " + Fields::Show(*fmt));
  std::string type;
  if (!ItemString(f, *fmt, "text.format", "type", false, &type)) return false;
  if (type == "text") return true;
  if (type == "json_object") {
    s->response_format = {{"type", "json_object"}};
  } else if (type != "json_schema") {
    return f.Fail("text.format.type", "must be \"text\", \"json_object\" or \"json_schema\", got \"" + type + "\"");
  } else if (!JsonSchemaFormat(f, *fmt, s)) {
    return false;
  }
  s->text["format"] = *fmt;
  return true;
}

// reasoning: {"effort"?, "summary"?}: accepted and echoed; the model reasons
// (or not) as it was trained to, and its reasoning is returned whole.
bool ParseReasoning(Fields& f, Settings* s) {
  const json* r = f.Get("reasoning");
  if (!r) return true;
  if (!r->is_object()) return f.Fail("reasoning", "must be an object, got " + Fields::Show(*r));
  for (const char* key : {"effort", "summary", "generate_summary"}) {
    const auto v = r->find(key);
    if (v == r->end() || v->is_null()) continue;
    if (!v->is_string()) return f.Fail(std::string("reasoning.") + key, "must be a string, got " + Fields::Show(*v));
    if (std::string(key) != "generate_summary") s->reasoning[key] = *v;
  }
  return true;
}

// metadata: at most 16 string values, keys up to 64 and values up to 512
// characters (OpenAI's limits); echoed.
bool ParseMetadata(Fields& f, Settings* s) {
  const json* m = f.Get("metadata");
  if (!m) return true;
  if (!m->is_object()) return f.Fail("metadata", "must be an object of strings, got " + Fields::Show(*m));
  if (m->size() > 16) return f.Fail("metadata", "holds " + std::to_string(m->size()) + " keys; at most 16 are allowed");
  for (auto it = m->begin(); it != m->end(); ++it) {
    if (it.key().size() > 64) return f.Fail("metadata", "has a key longer than 64 characters");
    if (!it->is_string()) return f.Fail("metadata", "values must be strings, got " + Fields::Show(*it));
    if (it->get_ref<const std::string&>().size() > 512)
      return f.Fail("metadata", "has a value longer than 512 characters");
  }
  s->metadata = *m;
  return true;
}

// What needs a stored response, or what dsv3 cannot honour, is refused by name.
bool RefuseUnsupported(Fields& f) {
  const char* resend = "; send the whole conversation in 'input'";
  if (f.Get("previous_response_id"))
    return f.Fail("previous_response_id",
                  std::string("cannot be used: dsv3 stores no responses (every response is store: false)") + resend);
  if (f.Get("conversation"))
    return f.Fail("conversation", std::string("cannot be used: dsv3 stores no conversations") + resend);
  if (f.Get("prompt"))
    return f.Fail("prompt", "(a stored prompt template) cannot be used: dsv3 stores none; send 'instructions' and "
                            "'input' instead");
  bool background = false, store = false;
  int64_t top_logprobs = 0;
  std::string truncation = "disabled";
  if (!f.Bool("background", &background) || !f.Bool("store", &store) || !f.String("truncation", &truncation) ||
      !f.Int("top_logprobs", 0, 20, &top_logprobs))
    return false;
  if (background)
    return f.Fail("background", "is not supported: a background response is polled from storage, and dsv3 stores none");
  if (truncation != "disabled")
    return f.Fail("truncation", "must be \"disabled\": dsv3 never drops input (an input over the context is a 400)");
  if (top_logprobs > 0) return f.Fail("top_logprobs", "is not supported on /v1/responses: use /v1/chat/completions");
  return true;
}

bool ParseSettings(Fields& f, json& body, Settings* s) {
  return RefuseUnsupported(f) && InputToMessages(f, body, &s->messages) && ParseTools(f, s) && ParseToolChoice(f, s) &&
         ParseText(f, s) && ParseReasoning(f, s) && ParseMetadata(f, s) && f.String("user", &s->user) &&
         f.Bool("parallel_tool_calls", &s->parallel_tool_calls) &&
         f.Int("max_output_tokens", 1, INT32_MAX, &s->max_output_tokens);
}

// The chat body the request means: chat parses and checks the sampling and
// stop fields (named the same in both APIs) exactly as for chat.
json ChatBody(json& body, Settings& s) {
  static const char* kShared[] = {"model",    "stream",           "temperature",       "top_p",
                                  "top_k",    "min_p",            "presence_penalty",  "frequency_penalty",
                                  "seed",     "repetition_penalty", "logit_bias",      "stop",
                                  "stop_token_ids", "ignore_eos"};
  json chat = json::object();
  for (const char* key : kShared)
    if (auto it = body.find(key); it != body.end()) chat[key] = std::move(*it);
  chat["messages"] = std::move(s.messages);
  if (s.use_tools && !s.chat_tools.empty()) chat["tools"] = std::move(s.chat_tools);
  if (s.use_tools && !s.chat_tool_choice.is_null()) chat["tool_choice"] = s.chat_tool_choice;
  if (!s.response_format.is_null()) chat["response_format"] = s.response_format;
  if (s.max_output_tokens > 0) chat["max_tokens"] = s.max_output_tokens;
  return chat;
}

// A sampling value as the request would have written it (0.8, not the
// float's 0.800000011920929).
json Echoed(float x) { return std::stod(Fields::Num(x)); }

json Echo(Settings& s, const ApiRequest& r) {
  json e = {{"tools", std::move(s.tools)},
            {"tool_choice", std::move(s.tool_choice)},
            {"parallel_tool_calls", s.parallel_tool_calls},
            {"text", std::move(s.text)},
            {"reasoning", std::move(s.reasoning)},
            {"metadata", std::move(s.metadata)},
            {"max_output_tokens", s.max_output_tokens > 0 ? json(s.max_output_tokens) : json(nullptr)},
            {"temperature", Echoed(r.sampling.temperature)},
            {"top_p", Echoed(r.sampling.top_p)},
            {"previous_response_id", nullptr},
            {"store", false},  // whatever was asked: nothing is kept
            {"background", false},
            {"truncation", "disabled"}};
  if (!s.user.empty()) e["user"] = s.user;
  return e;
}

}  // namespace

std::optional<ResponsesRequest> MapResponsesJson(json body, ApiError* error, const RequestDefaults& defaults) {
  if (!body.is_object()) {
    *error = BadRequest("the request body must be a JSON object, got " + Fields::Show(body));
    return std::nullopt;
  }
  Settings s;
  Fields f(body, error);
  if (!ParseSettings(f, body, &s)) return std::nullopt;
  json instructions = body.contains("instructions") ? body["instructions"] : json(nullptr);
  std::optional<ApiRequest> chat = ParseRequestJson(ChatBody(body, s), Endpoint::kChat, error, defaults);
  if (!chat) return std::nullopt;
  ResponsesRequest out;
  out.chat = std::move(*chat);
  // The chat parser read the constraint from chat's fields: name and locate
  // them as this request wrote them (errors, and the schemas' key order).
  OutputConstraint& c = out.chat.constraint;
  c.param = "text.format";
  if (!c.schema_pointer.empty()) c.schema_pointer = "/text/format/schema";
  for (ToolSpec& t : c.tools)  // "/tools/I/function/parameters" -> "/tools/I/parameters": tools keep their order
    if (const size_t at = t.pointer.find("/function/"); at != std::string::npos) t.pointer.erase(at, 9);
  out.chat.response_format = std::move(s.response_format);
  out.echo = Echo(s, out.chat);
  out.echo["instructions"] = std::move(instructions);
  return out;
}

std::optional<ResponsesRequest> ParseResponsesJson(json body, ApiError* error, const RequestDefaults& defaults) {
  return MapResponsesJson(std::move(body), error, defaults);
}

std::optional<ResponsesRequest> ParseResponsesRequest(const std::string& body, ApiError* error,
                                                      const RequestDefaults& defaults) {
  std::optional<json> j = ParseJsonBody(body, error);
  if (!j) return std::nullopt;
  std::optional<ResponsesRequest> r = ParseResponsesJson(std::move(*j), error, defaults);
  if (r) RestoreSchemaOrder(body, &r->chat.constraint);
  return r;
}

}  // namespace dsv3::server
