// Structured outputs for the server: what a request asks its output to be
// (response_format / text.format: any JSON object or a JSON Schema document;
// tool_choice "required" or a named function: a call whose arguments follow
// the function's parameter schema) and the grammar that makes decoding
// produce exactly that (runtime/token_constraint.h). Grammars are built over
// the served vocabulary and kept in a small cache keyed by what they
// constrain, so repeated requests with one schema share its mask cache.
//
// A forced tool call is written as the model's chat format writes one
// (DeepSeek-V3: <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME
// ```json ARGS ```<｜tool▁call▁end｜><｜tool▁calls▁end｜>), its markers as the
// special tokens they are. When the prompt leaves the reply inside <think>,
// the constrained output first closes it.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "runtime/token_constraint.h"
#include "server/text_codec.h"
#include "tokenizer/tokenizer.h"

namespace dsv3::server {

struct ToolSpec {
  std::string name;
  nlohmann::ordered_json parameters;  // null: any object
  bool strict = false;
  std::string pointer;                // where `parameters` is in the request body
};

struct OutputConstraint {
  enum class Format { kText, kJsonObject, kJsonSchema };
  Format format = Format::kText;
  nlohmann::ordered_json schema;  // kJsonSchema
  bool strict = false;
  std::string schema_pointer;     // where the schema is in the request body
  std::string param;              // the field errors about the format name ("response_format", "text.format")
  // tool_choice: kRequired (or a named function: `tools` holds just it)
  // forces one call; kAuto with a format leaves calls possible beside the
  // document; kNone renders no tools at all.
  enum class Tools { kAuto, kNone, kRequired };
  Tools tool_mode = Tools::kAuto;
  std::vector<ToolSpec> tools;
  bool active() const { return format != Format::kText || tool_mode == Tools::kRequired; }
};

// Reads response_format (`format` is its JSON, `param` its name, `pointer`
// its place in the body, e.g. "/response_format"): {"type": "text"},
// {"type": "json_object"} or {"type": "json_schema", "json_schema": {"name",
// "schema", "strict"}}. Responses' text.format is passed flattened into the
// same shape by its parser. Fills *why and returns false on a bad shape.
bool ParseResponseFormat(const nlohmann::json& format, const std::string& param, const std::string& pointer,
                         OutputConstraint* c, std::string* why);
// Reads tool_choice against the chat-form tools array ([{"type": "function",
// "function": {"name", "parameters", "strict"}}]); `flat` for the Responses
// API's {"type": "function", "name", "parameters"} tools and named choice.
bool ParseToolChoice(const nlohmann::json* choice, const nlohmann::json* tools, bool flat, OutputConstraint* c,
                     std::string* why);

// Each id's bytes, and which are added tokens (markers like <｜tool▁sep｜>,
// special or not: never part of a JSON value, where they would read as
// markers) — for the server and for `run --json-schema`.
TokenVocabulary VocabularyOf(const Tokenizer& tok, int64_t model_vocab);

// nlohmann::json sorts object keys; the schemas' property order is what a
// model is asked to write in, so they are re-read from the body in order.
void RestoreSchemaOrder(const std::string& body, OutputConstraint* c);

class ConstraintGrammars {
 public:
  ConstraintGrammars(const TextCodec& codec, int64_t model_vocab) : codec_(codec), model_vocab_(model_vocab) {}

  // The grammar for `c` (null for text). Errors (a schema dsv3 cannot
  // compile, no tokenizer) name the field and are the client's (400).
  Expected<std::shared_ptr<const TokenGrammar>> Get(const OutputConstraint& c, bool starts_in_reasoning,
                                                    const std::vector<int32_t>& end_tokens);

 private:
  Expected<CompiledSchema> Compile(const OutputConstraint& c, bool starts_in_reasoning) const;
  std::string Marker(const char* text) const;

  const TextCodec& codec_;
  int64_t model_vocab_;
  std::mutex mu_;
  std::unique_ptr<TokenVocabulary> vocab_;  // built on first use
  std::list<std::pair<std::string, std::shared_ptr<const TokenGrammar>>> cache_;  // most recent first
};

}  // namespace dsv3::server
