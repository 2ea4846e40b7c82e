// The OpenAI request bodies the server accepts, parsed and validated into one
// struct, and the OpenAI-style error every refusal is reported with
// ({"error": {"message", "type", "param", "code"}} plus an HTTP status). Each
// error names the offending field. Unknown fields are ignored (as OpenAI-
// compatible servers commonly do); known fields with values dsv3 cannot honour
// (n > 1, penalties, logit_bias, echo...) are refused rather than ignored.
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
};

// Parses a request body. `endpoint` selects which fields are expected.
// Returns std::nullopt and fills *error on any problem.
std::optional<ApiRequest> ParseRequest(const std::string& body, Endpoint endpoint, ApiError* error);

// Exposed for tests: one JSON value -> request, given an already-parsed body
// (taken by value: the messages and tools are moved out of it).
std::optional<ApiRequest> ParseRequestJson(nlohmann::json body, Endpoint endpoint, ApiError* error);

}  // namespace dsv3::server
