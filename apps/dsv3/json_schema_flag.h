// `--json-schema FILE` for the CLI: the schema file read like every other
// input (bounded size, nesting checked before parsing, errors naming the
// file), compiled with property order kept, and bound to the tokenizer's
// vocabulary so decoding can only produce documents the schema admits; the
// end-of-sequence and stop tokens end generation once the document is whole.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/json_depth.h"
#include "core/mapped_file.h"
#include "model/model.h"
#include "runtime/generate.h"
#include "runtime/token_constraint.h"
#include "server/constraints.h"
#include "tokenizer/tokenizer.h"

namespace dsv3::cli {

inline Expected<std::shared_ptr<const TokenGrammar>> SchemaGrammar(const std::string& path, bool strict,
                                                                   const Tokenizer& tok, const Model& model,
                                                                   const GenerateOptions& gen) {
  DSV3_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path, 16u << 20));
  DSV3_RETURN_IF_ERROR(CheckJsonDepth(text, path));
  nlohmann::ordered_json schema = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (schema.is_discarded()) return Status::Error(path + ": not valid JSON");
  auto compiled = CompileJsonSchema(schema, {.strict = strict});
  if (!compiled.ok()) return compiled.status().WithContext(path);
  TokenVocabulary vocab = server::VocabularyOf(tok, model.config().vocab_size);
  if (gen.stop_at_eos)
    for (int64_t id : model.config().eos_token_ids) vocab.end_tokens.push_back(static_cast<int32_t>(id));
  vocab.end_tokens.insert(vocab.end_tokens.end(), gen.stop_token_ids.begin(), gen.stop_token_ids.end());
  if (vocab.end_tokens.empty()) return Status::Error("--json-schema needs an end-of-sequence token to end the document");
  return std::shared_ptr<const TokenGrammar>(std::make_shared<TokenGrammar>(std::move(*compiled), vocab));
}

}  // namespace dsv3::cli
