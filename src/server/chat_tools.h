// OpenAI `tools` for DeepSeek chat formats. DeepSeek-V3's chat template renders
// assistant tool calls and tool outputs but never the tool definitions, so
// dsv3 describes the tools in the system prompt (merged with the request's own
// system messages by the template): each function's name, description and
// JSON-schema parameters, and the exact tool-call token syntax to answer with.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "server/api.h"

namespace dsv3::server {

// Validates `tools` (an array of {"type": "function", "function": {"name",
// "description"?, "parameters"?}}) and returns `messages` with a system
// message describing them after the leading system messages. Null or empty
// tools return messages as is. `messages` is taken by value and its elements
// moved, so a long chat is not copied.
std::optional<nlohmann::json> AddToolsToMessages(nlohmann::json messages, const nlohmann::json& tools,
                                                 ApiError* error);

// The system-prompt text for validated tools.
std::string ToolsSystemPrompt(const nlohmann::json& tools);

}  // namespace dsv3::server
