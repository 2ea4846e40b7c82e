// The OpenAI request bodies the server accepts, parsed and validated into one
// struct, and the OpenAI-style error every refusal is reported with
// ({"error": {"message", "type", "param", "code"}} plus an HTTP status). Each
// error names the offending field. Unknown fields are ignored (as OpenAI-
// compatible servers commonly do); known fields with values dsv3 cannot honour
// (best_of > 1, echo, suffix...) are refused rather than ignored. Sampling
// fields a request leaves unset take the server's defaults (RequestDefaults).
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/sampler.h"
#include "server/constraints.h"

namespace dsv3::server {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // "" -> null
  std::string code;   // "" -> null
  nlohmann::json ToJson() const;
};

ApiError BadRequest(std::string message, std::string param = {}, std::string code = {});

// Typed access to optional fields of one JSON object; the first problem is
// kept in *error (a 400 naming the field) and every later call returns false.
// Shared by the request parsers of every endpoint (api.cc, responses_api.cc)
// so a field is checked, and its error worded, the same way everywhere.
class Fields {
 public:
  using json = nlohmann::json;
  Fields(const json& j, ApiError* error) : j_(j), error_(error) {}

  const json* Get(const char* name) const {
    auto it = j_.find(name);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  bool Fail(const std::string& name, const std::string& why) {
    if (ok_) *error_ = BadRequest("'" + name + "' " + why, name);
    ok_ = false;
    return false;
  }
  bool ok() const { return ok_; }

  bool Int(const char* name, int64_t lo, int64_t hi, int64_t* out) {
    const json* v = Get(name);
    if (!ok_ || !v) return ok_;
    if (!v->is_number_integer()) return Fail(name, "must be an integer, got " + Show(*v));
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi))
      return Fail(name, "must be at most " + std::to_string(hi) + ", got " + v->dump());
    const int64_t x = v->get<int64_t>();
    if (x < lo || x > hi)
      return Fail(name, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + v->dump());
    *out = x;
    return true;
  }
  bool Float(const char* name, double lo, double hi, bool lo_open, float* out) {
    const json* v = Get(name);
    if (!ok_ || !v) return ok_;
    if (!v->is_number()) return Fail(name, "must be a number, got " + Show(*v));
    const double x = v->get<double>();
    if (!std::isfinite(x) || x > hi || x < lo || (lo_open && x == lo))
      return Fail(name, std::string("must be in ") + (lo_open ? "(" : "[") + Num(lo) + ", " + Num(hi) + "], got " +
                            v->dump());
    *out = static_cast<float>(x);
    if (lo_open && *out <= lo)  // e.g. top_p 1e-300: in range as a double, 0 as the float the sampler uses
      return Fail(name, std::string("must be in (") + Num(lo) + ", " + Num(hi) + "], got " + v->dump() +
                            " (rounds to " + Num(lo) + " in single precision)");
    return true;
  }
  bool Bool(const char* name, bool* out) {
    const json* v = Get(name);
    if (!ok_ || !v) return ok_;
    if (!v->is_boolean()) return Fail(name, "must be true or false, got " + Show(*v));
    *out = v->get<bool>();
    return true;
  }
  bool String(const char* name, std::string* out) {
    const json* v = Get(name);
    if (!ok_ || !v) return ok_;
    if (!v->is_string()) return Fail(name, "must be a string, got " + Show(*v));
    *out = v->get<std::string>();
    return true;
  }

  static std::string Show(const json& v) {
    std::string s = v.type_name();
    if (v.is_primitive()) s.append(" ").append(v.dump());
    if (s.size() > 80) s.resize(77), s.append("...");
    return s;
  }
  static std::string Num(double x) {
    std::string s = std::to_string(x);
    while (s.size() > 1 && s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
    return s;
  }

 private:
  const json& j_;
  ApiError* error_;
  bool ok_ = true;
};

enum class Endpoint { kCompletions, kChat };

// What parsing needs from the server: the sampling a request leaves unset
// (temperature, top_p, top_k, min_p and repetition_penalty are taken from
// here; penalties, logit_bias and the seed never are), the largest `n`, and
// the model's vocabulary for logit_bias ids (0: ids are not checked).
// OpenAI's defaults: temperature 1, no filters, no penalties.
inline SamplingOptions OpenAiSampling() {
  SamplingOptions s;
  s.temperature = 1.0f;
  return s;
}

struct RequestDefaults {
  SamplingOptions sampling = OpenAiSampling();
  int max_choices = 16;
  int64_t vocab = 0;
};

struct ApiRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string model;                        // "" when not given
  std::optional<std::vector<int32_t>> prompt_ids;  // completions: prompt as token ids
  std::string prompt_text;                  // completions: prompt as text
  nlohmann::json messages;                  // chat: the messages array (shape-checked)
  nlohmann::json tools;                     // chat: tools array or null
  // Structured output in chat's form: {"type": "json_object"} or {"type":
  // "json_schema", "json_schema": {"name", "schema", "strict"}}; null = text.
  // Filled by /v1/responses from text.format.
  nlohmann::json response_format;
  // response_format and tool_choice as decoding constraints (constraints.h).
  OutputConstraint constraint;
  int64_t max_tokens = -1;                  // -1: the server's default
  SamplingOptions sampling;
  std::vector<std::string> stop;            // stop strings
  std::vector<int32_t> stop_token_ids;      // extension (vLLM): stop on these ids
  bool ignore_eos = false;                  // extension (vLLM)
  bool stream = false, include_usage = false;
  int logprobs = -1;                        // -1: none; else alternatives per token
  int n = 1;                                // choices: sequences sampled from the one prompt
};

// Parses a request body. `endpoint` selects which fields are expected.
// Returns std::nullopt and fills *error on any problem.
std::optional<ApiRequest> ParseRequest(const std::string& body, Endpoint endpoint, ApiError* error,
                                       const RequestDefaults& defaults = {});

// The body as JSON: nesting bounded first (nlohmann recurses when copying,
// comparing and dumping), then parsed; a 400 on invalid JSON.
std::optional<nlohmann::json> ParseJsonBody(const std::string& body, ApiError* error);

// Exposed for tests: one JSON value -> request, given an already-parsed body
// (taken by value: the messages and tools are moved out of it).
std::optional<ApiRequest> ParseRequestJson(nlohmann::json body, Endpoint endpoint, ApiError* error,
                                           const RequestDefaults& defaults = {});

}  // namespace dsv3::server
