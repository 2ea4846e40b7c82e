// tokenizer.ggml.* GGUF metadata from a Hugging Face tokenizer.json (+
// tokenizer_config.json), in the form llama.cpp's converter writes for a
// GPT-2 style byte-level BPE such as DeepSeek's: model "gpt2", a pre-tokenizer
// name, one token string per id up to vocab_size (ids without a token become
// "[PAD<id>]" of type UNUSED), token types (1 normal, 3 control for special
// added tokens, 4 user-defined for other added tokens, 5 unused), merges as
// "left right" strings, bos/eos ids, add_bos/add_eos and the chat template.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "io/gguf.h"
#include "model/config.h"

namespace dsv3 {

// Empty when `dir` has no tokenizer.json; errors name the file and field.
Expected<std::vector<std::pair<std::string, GgufValue>>> TokenizerGgufMetadata(const std::string& dir,
                                                                               const Config& config);

}  // namespace dsv3
