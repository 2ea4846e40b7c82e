// The CLI's rule for where a model's tokenizer comes from when --model names
// a .gguf file: the tokenizer the file embeds (convert/gguf_tokenizer.h),
// not a tokenizer.json beside it.
#pragma once

#include <memory>
#include <string>

#include "convert/gguf_tokenizer.h"
#include "io/gguf.h"
#include "model/gguf_model.h"

namespace dsv3::cli {

// The tokenizer embedded in the GGUF file at `path`.
inline Expected<std::unique_ptr<Tokenizer>> LoadGgufTokenizer(const std::string& path) {
  DSV3_ASSIGN_OR_RETURN(auto file, GgufFile::Open(path));
  return TokenizerFromGguf(*file);
}

}  // namespace dsv3::cli
