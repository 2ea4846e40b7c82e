// The OpenAI request bodies the server accepts, parsed and validated into one
// struct, and the OpenAI-style error every refusal is reported with
// ({"error": {"message", "type", "param", "code"}} plus an HTTP status). Each
// error names the offending field. Unknown fields are ignored (as OpenAI-
// compatible servers commonly do); known fields with values dsv3 cannot honour
// (best_of > 1, echo, suffix...) are refused rather than ignored. Sampling
// fields a request leaves unset take the server's defaults (RequestDefaults).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/sampler.h"

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

// Exposed for tests: one JSON value -> request, given an already-parsed body
// (taken by value: the messages and tools are moved out of it).
std::optional<ApiRequest> ParseRequestJson(nlohmann::json body, Endpoint endpoint, ApiError* error,
                                           const RequestDefaults& defaults = {});

}  // namespace dsv3::server
