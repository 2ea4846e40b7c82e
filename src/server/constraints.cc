// Request constraints -> grammars; see constraints.h.
#include "server/constraints.h"

namespace dsv3::server {

using ordered_json = nlohmann::ordered_json;

TokenVocabulary VocabularyOf(const Tokenizer& tok, int64_t model_vocab) {
  TokenVocabulary v;
  v.bytes.resize(model_vocab);
  v.special.assign(model_vocab, 0);
  for (int32_t id = 0; id < model_vocab && id < tok.vocab_size(); ++id) {
    v.special[id] = tok.IsAdded(id) ? 1 : 0;
    if (!v.special[id] && !tok.AppendTokenBytes(id, v.bytes[id]).ok()) v.bytes[id].clear();
  }
  return v;
}

bool ParseResponseFormat(const nlohmann::json& format, const std::string& param, const std::string& pointer,
                         OutputConstraint* c, std::string* why) {
  c->param = param;
  const auto type = format.is_object() ? format.find("type") : format.end();
  if (type == format.end() || !type->is_string())
    return *why = "must be an object with \"type\": \"text\", \"json_object\" or \"json_schema\"", false;
  const std::string t = type->get<std::string>();
  if (t == "text") return true;
  if (t == "json_object") return c->format = OutputConstraint::Format::kJsonObject, true;
  if (t != "json_schema") return *why = "type must be \"text\", \"json_object\" or \"json_schema\", got \"" + t + "\"", false;
  const auto js = format.find("json_schema");
  if (js == format.end() || !js->is_object()) return *why = "json_schema must be an object with a \"schema\"", false;
  const auto schema = js->find("schema");
  if (schema == js->end() || !(schema->is_object() || schema->is_boolean()))
    return *why = "json_schema.schema must be a JSON Schema object", false;
  const auto strict = js->find("strict");
  if (strict != js->end() && !strict->is_null() && !strict->is_boolean())
    return *why = "json_schema.strict must be true or false", false;
  c->format = OutputConstraint::Format::kJsonSchema;
  c->schema = nlohmann::ordered_json::parse(schema->dump());
  c->strict = strict != js->end() && strict->is_boolean() && strict->get<bool>();
  c->schema_pointer = pointer + "/json_schema/schema";
  return true;
}

namespace {

// The function definitions of a tools array: {name, parameters, strict}.
bool ReadTools(const nlohmann::json* tools, bool flat, std::vector<ToolSpec>* out, std::string* why) {
  if (!tools || !tools->is_array()) return true;
  for (size_t i = 0; i < tools->size(); ++i) {
    const nlohmann::json& t = (*tools)[i];
    const nlohmann::json* fn = flat ? &t : (t.is_object() && t.contains("function") ? &t["function"] : nullptr);
    if (!fn || !fn->is_object() || !fn->contains("name") || !(*fn)["name"].is_string())
      return *why = "tools[" + std::to_string(i) + "] has no function name", false;
    ToolSpec spec;
    spec.name = (*fn)["name"].get<std::string>();
    if (auto p = fn->find("parameters"); p != fn->end() && !p->is_null())
      spec.parameters = nlohmann::ordered_json::parse(p->dump());
    if (auto s = fn->find("strict"); s != fn->end() && s->is_boolean()) spec.strict = s->get<bool>();
    spec.pointer = "/tools/" + std::to_string(i) + (flat ? "/parameters" : "/function/parameters");
    out->push_back(std::move(spec));
  }
  return true;
}

}  // namespace

bool ParseToolChoice(const nlohmann::json* choice, const nlohmann::json* tools, bool flat, OutputConstraint* c,
                     std::string* why) {
  std::vector<ToolSpec> all;
  if (!ReadTools(tools, flat, &all, why)) return false;
  c->tools = std::move(all);  // with a format and "auto", a call stays possible
  if (!choice || choice->is_null() || *choice == "auto") return true;
  if (*choice == "none") return c->tools.clear(), c->tool_mode = OutputConstraint::Tools::kNone, true;
  if (c->tools.empty()) return *why = "needs tools to choose from", false;
  if (*choice == "required") return c->tool_mode = OutputConstraint::Tools::kRequired, true;
  const nlohmann::json* name = nullptr;
  if (choice->is_object() && choice->value("type", "") == "function") {
    if (flat) name = choice->contains("name") ? &(*choice)["name"] : nullptr;
    else if (choice->contains("function") && (*choice)["function"].is_object()) name = &(*choice)["function"]["name"];
  }
  if (!name || !name->is_string())
    return *why = std::string("must be \"auto\", \"none\", \"required\" or ") +
                  (flat ? "{\"type\": \"function\", \"name\": ...}" : "{\"type\": \"function\", \"function\": {\"name\": ...}}"),
           false;
  std::erase_if(c->tools, [&](const ToolSpec& t) { return t.name != name->get<std::string>(); });
  if (c->tools.empty()) return *why = "names '" + name->get<std::string>() + "', which is not among the tools", false;
  c->tool_mode = OutputConstraint::Tools::kRequired;
  return true;
}

void RestoreSchemaOrder(const std::string& body, OutputConstraint* c) {
  if (!c->active()) return;
  const ordered_json doc = ordered_json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return;  // it parsed as json a moment ago; keep the sorted copy
  auto at = [&](const std::string& pointer, ordered_json* out) {
    try {
      const ordered_json::json_pointer p(pointer);
      if (doc.contains(p)) *out = doc.at(p);
    } catch (const nlohmann::json::exception&) {
    }
  };
  if (!c->schema_pointer.empty()) at(c->schema_pointer, &c->schema);
  for (ToolSpec& t : c->tools)
    if (!t.parameters.is_null()) at(t.pointer, &t.parameters);
}

std::string ConstraintGrammars::Marker(const char* text) const {
  const int32_t id = codec_.SpecialTokenId(text);
  return id >= 0 ? SpecialTokenText(id) : std::string(text);
}

Expected<CompiledSchema> ConstraintGrammars::Compile(const OutputConstraint& c, bool starts_in_reasoning) const {
  using Format = OutputConstraint::Format;
  const std::string close_think = starts_in_reasoning ? "</think>\n\n" : "";
  // The rows: one per function the model may call, and the document itself.
  std::vector<CompiledSchema> values;
  values.reserve(c.tools.size() + 1);
  const bool calls = c.tool_mode == OutputConstraint::Tools::kRequired || c.format != Format::kText;
  if (calls)
    for (const ToolSpec& t : c.tools) {
      auto compiled = CompileJsonSchema(t.parameters.is_null() ? nlohmann::ordered_json{{"type", "object"}} : t.parameters,
                                        {.strict = t.strict});
      if (!compiled.ok()) return compiled.status().WithContext("tools: function '" + t.name + "' parameters");
      values.push_back(std::move(*compiled));
    }
  const std::string open = close_think + Marker("<｜tool▁calls▁begin｜>") + Marker("<｜tool▁call▁begin｜>") + "function" +
                           Marker("<｜tool▁sep｜>");
  const std::string close = "\n```" + Marker("<｜tool▁call▁end｜>") + Marker("<｜tool▁calls▁end｜>");
  std::vector<std::vector<GrammarPart>> rows;
  if (calls)
    for (size_t i = 0; i < c.tools.size(); ++i) rows.push_back({{open + c.tools[i].name + "\n```json\n"}, {"", &values[i]}, {close}});
  if (c.tool_mode != OutputConstraint::Tools::kRequired && c.format != Format::kText) {
    auto doc = c.format == Format::kJsonObject ? Expected<CompiledSchema>(AnyJsonObject())
                                               : CompileJsonSchema(c.schema, {.strict = c.strict});
    if (!doc.ok()) return doc.status().WithContext(c.param);
    values.push_back(std::move(*doc));
    rows.push_back({{close_think}, {"", &values.back()}});
  }
  return SequenceSchema(rows);
}

Expected<std::shared_ptr<const TokenGrammar>> ConstraintGrammars::Get(const OutputConstraint& c,
                                                                       bool starts_in_reasoning,
                                                                       const std::vector<int32_t>& end_tokens) {
  if (!c.active()) return std::shared_ptr<const TokenGrammar>();
  if (!codec_.has_tokenizer())
    return Status::Error("structured outputs need the model's tokenizer (this server runs in token-id mode)");
  std::string key = std::string(c.strict ? "s" : "") + (starts_in_reasoning ? "r" : "");
  for (int32_t t : end_tokens) key += "," + std::to_string(t);
  key += "|" + std::to_string(static_cast<int>(c.format)) + std::to_string(static_cast<int>(c.tool_mode)) + c.schema.dump();
  for (const ToolSpec& t : c.tools) key += "|" + t.name + (t.strict ? "!" : ":") + t.parameters.dump();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = cache_.begin(); it != cache_.end(); ++it) {
    if (it->first != key) continue;
    cache_.splice(cache_.begin(), cache_, it);
    return cache_.front().second;
  }
  DSV3_ASSIGN_OR_RETURN(CompiledSchema schema, Compile(c, starts_in_reasoning));
  if (!vocab_) vocab_ = std::make_unique<TokenVocabulary>(codec_.Vocabulary(model_vocab_));
  TokenVocabulary v = *vocab_;
  v.end_tokens = end_tokens;
  auto grammar = std::make_shared<const TokenGrammar>(std::move(schema), v);
  cache_.emplace_front(std::move(key), grammar);
  if (cache_.size() > 16) cache_.pop_back();
  return std::shared_ptr<const TokenGrammar>(grammar);
}

}  // namespace dsv3::server
