// JSON Schema (the subset OpenAI's structured outputs accept) compiled into a
// graph of schema nodes that the byte-level JSON matcher (json_grammar.h)
// walks while decoding: objects with their properties in schema order
// (required ones must appear, optional ones may be skipped; no other keys),
// arrays with an item schema and item counts, strings with length bounds,
// numbers, integers, enum/const literals and anyOf alternatives, local $ref
// into $defs/definitions (recursion included). `pattern` (a regular
// expression) is refused in every mode; other keywords the grammar cannot
// enforce (format, minimum, ...) and unknown keywords are refused in strict
// mode, with the keyword and its JSON-pointer path, and ignored without it
// (the output may then not satisfy them). A schema that admits no finite
// document (an empty enum, a required property that recurses without end)
// is refused.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace dsv3 {

enum class SchemaKind : uint8_t {
  kObject,    // '{' properties '}'
  kArray,     // '[' items ']'
  kString,    // '"' characters '"'
  kNumber,    // JSON number
  kInteger,   // JSON number without fraction or exponent
  kLiterals,  // one of `literals` (enum, const, true, false, null)
  kAnyOf,     // one of `alternatives`
  kSequence,  // `alternatives` one after the other (raw text and values: a tool call's wrapper)
};

struct SchemaProperty {
  std::string key;  // the key as JSON text, quotes included: "\"name\""
  int32_t node = -1;
  bool required = false;
};

struct SchemaNode {
  SchemaKind kind = SchemaKind::kAnyOf;
  // kObject: properties in schema order, or (free_form) any keys whose values
  // follow `additional`.
  std::vector<SchemaProperty> properties;
  bool free_form = false;
  int32_t additional = -1;
  int32_t last_required = -1;  // index of the last required property (-1: none)
  // kArray
  int32_t items = -1;
  int64_t min_items = 0, max_items = -1;  // -1: no limit
  // kString, in characters (code points; an escape sequence is one)
  int64_t min_length = 0, max_length = -1;
  // kNumber / kInteger bounds, kept to what digits can guarantee: no sign,
  // a first digit that is not 0 (x >= 1), at most `max_digits` before the
  // point, and no exponent when any bound is given. Exponents have at most
  // 2 digits (a double holds every number the grammar writes).
  bool no_negative = false, no_zero_lead = false, no_exponent = false;
  int32_t max_digits = -1;
  std::vector<std::string> literals;  // kLiterals: compact JSON texts
  std::vector<int32_t> alternatives;  // kAnyOf
};

struct CompiledSchema {
  std::vector<SchemaNode> nodes;
  int32_t root = -1;
  int32_t any_value = -1;  // the node matching any JSON value (free-form parts refer to it)
};

struct SchemaOptions {
  bool strict = false;  // OpenAI's "strict": refuse what cannot be enforced
};

// Compiles `schema`; errors name the keyword and its path ("#/properties/a/pattern").
// Properties are generated in the order the schema lists them (the order a
// model is asked to write them in matters: reasoning before an answer), so
// the schema is an ordered_json; a plain json (keys sorted) is converted.
Expected<CompiledSchema> CompileJsonSchema(const nlohmann::ordered_json& schema, const SchemaOptions& options = {});
Expected<CompiledSchema> CompileJsonSchema(const nlohmann::json& schema, const SchemaOptions& options = {});

// Any JSON object (response_format json_object).
CompiledSchema AnyJsonObject();

// Documents that are not only JSON: each alternative is a row of parts, raw
// text (matched byte for byte, e.g. a tool call's markers and function name)
// or a compiled schema's value (e.g. the function's arguments). A forced
// tool call is one alternative per function the model may call.
struct GrammarPart {
  std::string text;                      // raw text, when `value` is null
  const CompiledSchema* value = nullptr;  // a JSON value of this schema
};
CompiledSchema SequenceSchema(const std::vector<std::vector<GrammarPart>>& alternatives);

}  // namespace dsv3
