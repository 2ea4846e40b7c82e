// tokenizer.ggml.* GGUF metadata from a Hugging Face tokenizer.json (+
// tokenizer_config.json), in the form llama.cpp's converter writes for a
// GPT-2 style byte-level BPE such as DeepSeek's: model "gpt2", a pre-tokenizer
// name, one token string per id up to vocab_size (ids without a token become
// "[PAD<id>]" of type UNUSED), token types (1 normal, 3 control for special
// added tokens, 4 user-defined for other added tokens, 5 unused), merges as
// "left right" strings, bos/eos ids, add_bos/add_eos and the chat template.
// And back: the tokenizer a GGUF file embeds, rebuilt as the tokenizer.json
// + tokenizer_config.json dsv3's Tokenizer reads (`run --prompt` and
// `tokenize --tokenizer` on a .gguf). Only what the metadata determines
// exactly is rebuilt: a "gpt2" (byte-level BPE) vocabulary with DeepSeek-V3's
// pre-tokenizer ("deepseek-v3"); others are an error asking for --tokenizer
// DIR. Normal tokens become model.vocab, control tokens special added tokens,
// user-defined tokens non-special added tokens; unused ids ("[PAD<id>]") are
// left out, as they were absent from the original.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/gguf.h"
#include "model/config.h"
#include "tokenizer/tokenizer.h"

namespace dsv3 {

// Empty when `dir` has no tokenizer.json; errors name the file and field.
Expected<std::vector<std::pair<std::string, GgufValue>>> TokenizerGgufMetadata(const std::string& dir,
                                                                               const Config& config);

// The tokenizer embedded in `gguf`; errors name the file and the metadata
// key, or say the file has none.
Expected<std::unique_ptr<Tokenizer>> TokenizerFromGguf(const GgufFile& gguf);

}  // namespace dsv3
