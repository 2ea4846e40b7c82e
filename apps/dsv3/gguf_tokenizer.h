// The CLI's rule for where a model's tokenizer comes from when --model names
// a .gguf file: the tokenizer the file embeds (convert/gguf_tokenizer.h),
// not a tokenizer.json beside it.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "convert/gguf_tokenizer.h"
#include "io/gguf.h"

namespace dsv3::cli {

// A .gguf model file (Model::Load's rule: the name, and not a directory).
inline bool IsGgufFile(const std::string& path) {
  std::error_code ec;
  return path.size() > 5 && path.compare(path.size() - 5, 5, ".gguf") == 0 &&
         !std::filesystem::is_directory(path, ec);
}

// The tokenizer embedded in the GGUF file at `path`.
inline Expected<std::unique_ptr<Tokenizer>> LoadGgufTokenizer(const std::string& path) {
  DSV3_ASSIGN_OR_RETURN(auto file, GgufFile::Open(path));
  return TokenizerFromGguf(*file);
}

}  // namespace dsv3::cli
