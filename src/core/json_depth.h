// A bound on JSON nesting, checked on the raw text before any parser sees it.
// nlohmann::json parses deep nesting iteratively but serialises, compares and
// walks it recursively, so a 200 KB body of 100,000 '[' would overflow the
// stack the first time the value is re-serialised. Every JSON that dsv3 reads
// (request bodies, config.json, tokenizer files, safetensors headers and
// indexes, chat files, training options) passes this check first; real files
// nest fewer than ten levels.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace dsv3 {

// Deeper than any checkpoint, tokenizer or OpenAI request (tool schemas nest
// a few levels per object property); shallow enough that every recursive
// walk of the parsed value stays far inside a thread's stack.
inline constexpr int kMaxJsonDepth = 128;

// Ok when no array/object in `text` nests deeper than `max_depth` (brackets
// inside strings do not count); otherwise an error naming `label`, the limit
// and the byte offset. Does not otherwise validate the JSON.
Status CheckJsonDepth(std::string_view text, const std::string& label, int max_depth = kMaxJsonDepth);

}  // namespace dsv3
