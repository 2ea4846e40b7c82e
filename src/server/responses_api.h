// POST /v1/responses (OpenAI's Responses API), the request side. The body is
// validated and mapped onto the chat request it means, so the endpoint runs
// through chat's prompt building (chat format, tools in the system prompt),
// sampling, stop strings and penalties unchanged: `instructions` become the
// first system message, `input` (a string, or message / function_call /
// function_call_output items) becomes chat messages, the flat function tools
// become chat's nested ones and `max_output_tokens` is max_tokens. The
// request's settings are kept to be echoed in the response object. Nothing
// is stored, so what needs a stored response (previous_response_id,
// conversation, item_reference, background) is refused, and so is what needs
// constrained decoding until it lands (text.format json_object/json_schema,
// after its shape is checked; tool_choice "required" or a named function).
// Every 400 names the field at fault, e.g. `input[2].content[0].type`.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "server/api.h"

namespace dsv3::server {

struct ResponsesRequest {
  ApiRequest chat;      // endpoint kChat: messages, tools (null for tool_choice "none"), sampling, limits
  nlohmann::json echo;  // the settings the response object repeats (instructions, tools, text, metadata, ...)
};

std::optional<ResponsesRequest> ParseResponsesRequest(const std::string& body, ApiError* error,
                                                      const RequestDefaults& defaults = {});
// Exposed for tests: an already-parsed body (taken by value: input is moved out).
std::optional<ResponsesRequest> ParseResponsesJson(nlohmann::json body, ApiError* error,
                                                   const RequestDefaults& defaults = {});
// The mapping alone, without the refusals that wait for constrained
// decoding: text.format is carried in chat.response_format (for tests, and
// for the endpoint once the grammar engine honours response_format).
std::optional<ResponsesRequest> MapResponsesJson(nlohmann::json body, ApiError* error,
                                                 const RequestDefaults& defaults = {});

}  // namespace dsv3::server
