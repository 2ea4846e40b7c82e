// Request parsing and validation; see api.h.
#include "server/api.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <limits>
#include <random>

#include "core/json_depth.h"
#include "runtime/request.h"

namespace dsv3::server {

using nlohmann::json;

json ApiError::ToJson() const {
  json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) e["param"] = param;
  if (!code.empty()) e["code"] = code;
  return json{{"error", e}};
}

ApiError BadRequest(std::string message, std::string param, std::string code) {
  ApiError e;
  e.status = 400;
  e.message = std::move(message);
  e.param = std::move(param);
  e.code = std::move(code);
  return e;
}

namespace {

bool ParseIdList(const json& a, Fields& f, std::vector<int32_t>* out) {
  out->clear();
  for (size_t i = 0; i < a.size(); ++i) {
    const json& t = a[i];
    if (!t.is_number_integer() || (t.is_number_unsigned() && t.get<uint64_t>() > INT32_MAX) ||
        t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX)
      return f.Fail("prompt", "token " + std::to_string(i) + " must be a non-negative integer id, got " + Fields::Show(t));
    out->push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  if (out->empty()) return f.Fail("prompt", "is empty");
  return true;
}

bool ParsePrompt(Fields& f, ApiRequest* r) {
  const json* p = f.Get("prompt");
  if (!p) return f.Fail("prompt", "is required");
  if (p->is_array() && p->size() == 1 && (p->at(0).is_string() || p->at(0).is_array())) p = &p->at(0);  // batch of one
  if (p->is_string()) {
    r->prompt_text = p->get<std::string>();
    if (r->prompt_text.empty()) return f.Fail("prompt", "is empty");
    return true;
  }
  if (p->is_array()) {
    if (!p->empty() && (p->at(0).is_string() || p->at(0).is_array()))
      return f.Fail("prompt", "holds " + std::to_string(p->size()) +
                                  " prompts; dsv3 takes one prompt per request (send them concurrently instead)");
    r->prompt_ids.emplace();
    return ParseIdList(*p, f, &*r->prompt_ids);
  }
  return f.Fail("prompt", "must be a string or an array of token ids, got " + Fields::Show(*p));
}

bool ParseMessages(Fields& f, ApiRequest* r) {
  const json* m = f.Get("messages");
  if (!m) return f.Fail("messages", "is required");
  if (!m->is_array() || m->empty()) return f.Fail("messages", "must be a non-empty array of messages");
  static const char* kRoles[] = {"system", "developer", "user", "assistant", "tool"};
  for (size_t i = 0; i < m->size(); ++i) {
    const json& msg = m->at(i);
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!msg.is_object()) return f.Fail(where, "must be an object, got " + Fields::Show(msg));
    auto role = msg.find("role");
    if (role == msg.end() || !role->is_string()) return f.Fail(where + ".role", "must be a string");
    if (std::find(std::begin(kRoles), std::end(kRoles), role->get<std::string>()) == std::end(kRoles))
      return f.Fail(where + ".role", "must be one of system, developer, user, assistant, tool; got " + role->dump());
    auto content = msg.find("content");
    if (content != msg.end() && !content->is_null() && !content->is_string() && !content->is_array())
      return f.Fail(where + ".content", "must be a string, an array of content parts or null");
  }
  // The messages and tools are moved into the request once all fields are checked.
  if (const json* t = f.Get("tools"); t && !t->is_array()) return f.Fail("tools", "must be an array");
  return true;
}

bool ParseStop(Fields& f, ApiRequest* r) {
  const json* s = f.Get("stop");
  if (!s) return true;
  if (s->is_string()) {
    r->stop.push_back(s->get<std::string>());
  } else if (s->is_array()) {
    for (const json& x : *s) {
      if (!x.is_string()) return f.Fail("stop", "must be a string or an array of strings");
      r->stop.push_back(x.get<std::string>());
    }
  } else {
    return f.Fail("stop", "must be a string or an array of strings, got " + Fields::Show(*s));
  }
  if (r->stop.size() > 16) return f.Fail("stop", "holds more than 16 strings");
  for (const auto& x : r->stop)
    if (x.empty()) return f.Fail("stop", "holds an empty string");
  return true;
}

// Fields dsv3 does not implement: refused unless given their neutral value.
bool RefuseUnsupported(Fields& f, Endpoint endpoint) {
  if (endpoint == Endpoint::kCompletions) {
    bool echo = false;
    if (!f.Bool("echo", &echo)) return false;
    if (echo) return f.Fail("echo", "is not supported");
    if (f.Get("suffix")) return f.Fail("suffix", "is not supported");
  }
  return true;
}

// response_format (both endpoints) and tool_choice (chat) as constraints.
bool ParseConstraint(Fields& f, Endpoint endpoint, ApiRequest* r) {
  std::string why;
  if (const json* rf = f.Get("response_format"))
    if (!ParseResponseFormat(*rf, "response_format", "/response_format", &r->constraint, &why))
      return f.Fail("response_format", why);
  if (endpoint != Endpoint::kChat) {
    if (f.Get("tool_choice")) return f.Fail("tool_choice", "is for /v1/chat/completions");
    return true;
  }
  if (!ParseToolChoice(f.Get("tool_choice"), f.Get("tools"), /*flat=*/false, &r->constraint, &why))
    return f.Fail(why.rfind("tools[", 0) == 0 ? "tools" : "tool_choice", why);
  return true;
}

// `n` choices, at most the server's max_choices. `best_of` (completions) is
// accepted only where it means no more than `n` does: 1, or n itself.
bool ParseChoices(Fields& f, Endpoint endpoint, int max_choices, ApiRequest* r) {
  int64_t n = 1;
  if (!f.Int("n", 1, std::max(1, max_choices), &n)) return false;
  r->n = static_cast<int>(n);
  if (endpoint != Endpoint::kCompletions) return true;
  int64_t best_of = 1;
  if (!f.Int("best_of", 1, INT32_MAX, &best_of)) return false;
  if (best_of != 1 && best_of != n)
    return f.Fail("best_of", "other than 1 (or n) is not supported: dsv3 returns every choice it samples; ask for "
                             "\"n\" choices instead");
  return true;
}
bool ParseLogprobs(Fields& f, Endpoint endpoint, ApiRequest* r) {
  if (endpoint == Endpoint::kCompletions) {
    int64_t k = -1;
    if (!f.Int("logprobs", 0, kMaxTopLogprobs, &k)) return false;
    r->logprobs = static_cast<int>(k);
    return true;
  }
  bool want = false;
  int64_t k = 0;
  if (!f.Bool("logprobs", &want) || !f.Int("top_logprobs", 0, kMaxTopLogprobs, &k)) return false;
  if (f.Get("top_logprobs") && !want) return f.Fail("top_logprobs", "needs \"logprobs\": true");
  r->logprobs = want ? static_cast<int>(k) : -1;
  return true;
}

void ParseSeed(Fields& f, SamplingOptions* s) {
  if (const json* sd = f.Get("seed")) {
    if (!sd->is_number_integer()) {
      f.Fail("seed", "must be an integer, got " + Fields::Show(*sd));
      return;
    }
    s->seed = sd->is_number_unsigned() ? sd->get<uint64_t>() : static_cast<uint64_t>(sd->get<int64_t>());
  } else {
    // Unseeded requests must differ from each other; a process-wide counter
    // mixed by the sampler's splitmix seeding is enough.
    static std::atomic<uint64_t> counter{(static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}()};
    s->seed = counter.fetch_add(0x9e3779b97f4a7c15ull);
  }
}

bool ParseSampling(Fields& f, const SamplingOptions& defaults, ApiRequest* r) {
  SamplingOptions& s = r->sampling;
  // The fields a checkpoint's generation_config.json can set; the penalties
  // OpenAI defines, logit_bias and the seed are the request's own.
  s.temperature = defaults.temperature, s.top_p = defaults.top_p, s.top_k = defaults.top_k;
  s.min_p = defaults.min_p, s.repetition_penalty = defaults.repetition_penalty;
  int64_t top_k = s.top_k;
  if (!f.Float("temperature", 0.0, 2.0, false, &s.temperature) || !f.Float("top_p", 0.0, 1.0, true, &s.top_p) ||
      !f.Float("min_p", 0.0, 1.0, false, &s.min_p) || !f.Int("top_k", -1, INT32_MAX, &top_k) ||
      !f.Float("presence_penalty", -2.0, 2.0, false, &s.presence_penalty) ||
      !f.Float("frequency_penalty", -2.0, 2.0, false, &s.frequency_penalty) ||
      !f.Float("repetition_penalty", 0.0, 10.0, true, &s.repetition_penalty))
    return false;
  s.top_k = top_k < 0 ? 0 : static_cast<int>(top_k);  // -1 means off (vLLM)
  ParseSeed(f, &s);
  return f.ok();
}

// One logit_bias key: a token id written in decimal (OpenAI's form), in the
// vocabulary when `vocab` > 0.
bool LogitBiasId(Fields& f, const std::string& key, int64_t vocab, int32_t* id) {
  const std::string shown = key.size() > 40 ? key.substr(0, 37) + "..." : key;
  int64_t x = 0;
  const auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), x);
  if (ec == std::errc() && end == key.data() + key.size() && (x < 0 || x > INT32_MAX || (vocab > 0 && x >= vocab)))
    return f.Fail("logit_bias", "token id " + shown + " is outside the vocabulary [0, " +
                                    (vocab > 0 ? std::to_string(vocab) : std::string("2^31")) + ")");
  if (ec == std::errc::result_out_of_range && end == key.data() + key.size())
    return f.Fail("logit_bias", "token id " + shown + " is outside the vocabulary");
  if (key.empty() || ec != std::errc() || end != key.data() + key.size())
    return f.Fail("logit_bias", "keys must be token ids written as integers, got \"" + shown + "\"");
  *id = static_cast<int32_t>(x);
  return true;
}

// logit_bias: {"<token id>": bias in [-100, 100]}; -100 bans the token.
// Checked here, against the model's vocabulary, so the 400 names the field.
bool ParseLogitBias(Fields& f, int64_t vocab, std::vector<LogitBias>* out) {
  const json* b = f.Get("logit_bias");
  if (!b) return true;
  if (!b->is_object())
    return f.Fail("logit_bias", "must be an object mapping token ids (as strings) to numbers in [-100, 100], got " +
                                    Fields::Show(*b));
  int64_t banned = 0;
  for (auto it = b->begin(); it != b->end(); ++it) {
    int32_t id = 0;
    if (!LogitBiasId(f, it.key(), vocab, &id)) return false;
    const std::string where = "the bias of token " + std::to_string(id);
    if (!it->is_number()) return f.Fail("logit_bias", where + " must be a number, got " + Fields::Show(*it));
    const double x = it->get<double>();
    if (!(x >= -100.0 && x <= 100.0)) return f.Fail("logit_bias", where + " must be in [-100, 100], got " + it->dump());
    out->push_back({id, static_cast<float>(x)});
    banned += x <= kBanBias;
  }
  // Two spellings of one id ("7" and "07") would be two keys of one token.
  std::sort(out->begin(), out->end(), [](const LogitBias& x, const LogitBias& y) { return x.token < y.token; });
  for (size_t i = 1; i < out->size(); ++i)
    if ((*out)[i].token == (*out)[i - 1].token)
      return f.Fail("logit_bias", "token id " + std::to_string((*out)[i].token) + " is given twice");
  if (vocab > 0 && banned >= vocab)
    return f.Fail("logit_bias", "bans every token of the vocabulary: nothing could be generated");
  return true;
}

}  // namespace

std::optional<ApiRequest> ParseRequestJson(json body, Endpoint endpoint, ApiError* error,
                                           const RequestDefaults& defaults) {
  if (!body.is_object()) {
    *error = BadRequest("the request body must be a JSON object, got " + Fields::Show(body));
    return std::nullopt;
  }
  ApiRequest r;
  r.endpoint = endpoint;
  Fields f(body, error);
  f.String("model", &r.model);
  if (endpoint == Endpoint::kCompletions) {
    f.ok() && ParsePrompt(f, &r);
  } else {
    f.ok() && ParseMessages(f, &r);
  }
  const int64_t kMax = std::numeric_limits<int32_t>::max();
  const char* max_name = endpoint == Endpoint::kChat && f.Get("max_completion_tokens") ? "max_completion_tokens"
                                                                                       : "max_tokens";
  f.ok() && f.Int(max_name, 1, kMax, &r.max_tokens);
  f.ok() && ParseSampling(f, defaults.sampling, &r) && ParseLogitBias(f, defaults.vocab, &r.sampling.logit_bias) &&
      ParseChoices(f, endpoint, defaults.max_choices, &r) && ParseStop(f, &r) && ParseLogprobs(f, endpoint, &r) &&
      RefuseUnsupported(f, endpoint) && ParseConstraint(f, endpoint, &r) && f.Bool("stream", &r.stream) &&
      f.Bool("ignore_eos", &r.ignore_eos);
  if (f.ok()) {
    if (const json* so = f.Get("stream_options")) {
      if (!so->is_object()) {
        f.Fail("stream_options", "must be an object");
      } else if (!r.stream) {
        f.Fail("stream_options", "is only allowed with \"stream\": true");
      } else {
        Fields sf(*so, error);
        if (!sf.Bool("include_usage", &r.include_usage)) f.Fail("stream_options", "include_usage must be a boolean");
      }
    }
  }
  if (f.ok()) {
    if (const json* ids = f.Get("stop_token_ids")) {
      if (!ids->is_array()) {
        f.Fail("stop_token_ids", "must be an array of token ids");
      } else {
        for (const json& t : *ids) {
          if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX) {
            f.Fail("stop_token_ids", "must be an array of non-negative integer ids");
            break;
          }
          r.stop_token_ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
        }
      }
    }
  }
  if (!f.ok()) return std::nullopt;
  if (endpoint == Endpoint::kChat) {
    // Moved, not copied: a large chat is held once (its JSON tree is many
    // times the size of its text).
    r.messages = std::move(body["messages"]);
    if (auto t = body.find("tools"); t != body.end() && !t->is_null() &&
                                     r.constraint.tool_mode != OutputConstraint::Tools::kNone)
      r.tools = std::move(*t);  // tool_choice "none": the template never shows them
  }
  return r;
}

std::optional<json> ParseJsonBody(const std::string& body, ApiError* error) {
  // Before parsing: nlohmann parses any depth, but copies, compares and
  // serialises recursively, so a deeply nested value (in tool parameters,
  // tool-call arguments, a content part) would overflow the stack later.
  if (Status st = CheckJsonDepth(body, "the request body"); !st.ok()) {
    *error = BadRequest(st.message());
    return std::nullopt;
  }
  try {
    return json::parse(body);
  } catch (const json::exception& e) {
    // nlohmann rejects invalid UTF-8, numbers out of double range and syntax errors alike.
    std::string what = e.what();
    *error = BadRequest("the request body is not valid JSON: " + what.substr(0, 200));
    return std::nullopt;
  }
}

std::optional<ApiRequest> ParseRequest(const std::string& body, Endpoint endpoint, ApiError* error,
                                       const RequestDefaults& defaults) {
  std::optional<json> j = ParseJsonBody(body, error);
  if (!j) return std::nullopt;
  std::optional<ApiRequest> r = ParseRequestJson(std::move(*j), endpoint, error, defaults);
  if (r) RestoreSchemaOrder(body, &r->constraint);
  return r;
}

}  // namespace dsv3::server
