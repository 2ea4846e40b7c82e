// Tool definitions into the system prompt; see chat_tools.h.
#include "server/chat_tools.h"

#include "core/json_fields.h"

namespace dsv3::server {

using nlohmann::json;

std::string ToolsSystemPrompt(const json& tools) {
  std::string s =
      "## Tools\nTo call functions, answer with\n"
      "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n"
      "ARGUMENTS\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>\n"
      "(one call between each <｜tool▁call▁begin｜> and <｜tool▁call▁end｜>); results come back as tool outputs.\n"
      "### Functions";
  for (const json& t : tools) {
    const json& f = t["function"];
    s += "\n- `" + f["name"].get<std::string>() + "`";
    if (f.contains("description") && f["description"].is_string()) s += ": " + f["description"].get<std::string>();
    if (f.contains("parameters") && !f["parameters"].is_null())
      s += "\n  parameters (JSON schema): " + f["parameters"].dump(-1, ' ', false, json::error_handler_t::replace);
  }
  return s;
}

std::optional<json> AddToolsToMessages(json messages, const json& tools, ApiError* error) {
  if (tools.is_null() || (tools.is_array() && tools.empty())) return messages;
  for (size_t i = 0; i < tools.size(); ++i) {
    const json& t = tools[i];
    const std::string where = "tools[" + std::to_string(i) + "]";
    if (!t.is_object() || StringField(t, "type") != "function" || !t.contains("function") || !t["function"].is_object())
      return *error = BadRequest(where + " must be {\"type\": \"function\", \"function\": {...}}", where), std::nullopt;
    const json& f = t["function"];
    if (!f.contains("name") || !f["name"].is_string() || f["name"].get<std::string>().empty())
      return *error = BadRequest(where + ".function.name must be a non-empty string", where + ".function.name"),
             std::nullopt;
    if (f.contains("parameters") && !f["parameters"].is_object() && !f["parameters"].is_null())
      return *error = BadRequest(where + ".function.parameters must be a JSON-schema object",
                                 where + ".function.parameters"),
             std::nullopt;
  }
  // After the request's own leading system messages: "You are ...", then the tools.
  json out = json::array();
  size_t i = 0;
  while (i < messages.size() && messages[i].is_object() && StringField(messages[i], "role") == "system")
    out.push_back(std::move(messages[i++]));
  out.push_back({{"role", "system"}, {"content", ToolsSystemPrompt(tools)}});
  for (; i < messages.size(); ++i) out.push_back(std::move(messages[i]));
  return out;
}

}  // namespace dsv3::server
