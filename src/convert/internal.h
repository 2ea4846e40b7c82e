// The per-target conversion entry points behind Convert() (convert.h).
#pragma once

#include "convert/convert.h"

namespace dsv3 {

// --to bf16 and --to fp8 (convert_safetensors.cc).
Status ConvertSafetensors(const ConvertOptions& options, ConvertSummary& summary);
// --to gguf (convert_gguf.cc).
Status ConvertToGguf(const ConvertOptions& options, ConvertSummary& summary);

}  // namespace dsv3
