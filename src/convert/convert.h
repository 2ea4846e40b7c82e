// Checkpoint conversion (`dsv3 convert`): FP8 -> BF16 exactly as DeepSeek's
// fp8_cast_bf16.py, BF16 -> FP8 with 128x128 block scales for the tensors the
// release stores in FP8, and Hugging Face checkpoint -> llama.cpp "deepseek2"
// GGUF (F32/F16/BF16, one ggml block type, or llama-quantize's per-tensor
// mixes such as Q4_K_M). Every conversion streams: tensors are read from the
// memory-mapped input a row chunk at a time (at most `buffer_bytes` of
// working memory, pages released after use), written through streaming
// writers to temporary names, and the output appears under its final name
// only when everything succeeded (a directory is staged as
// "<out>.dsv3-partial" and renamed; a GGUF file is written as "<out>.tmp").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "convert/gguf_mix.h"
#include "core/dtype.h"
#include "core/status.h"

namespace dsv3 {

// kW4A16 / kW8A16: compressed-tensors pack-quantized int4 / int8 linear layers
// (vLLM's weight-only schemes, group 128; model/packed_int.h).
enum class ConvertTarget { kBf16, kFp8, kGguf, kW4A16, kW8A16 };

struct ConvertOptions {
  ConvertTarget target = ConvertTarget::kBf16;
  std::string input;   // checkpoint directory
  std::string output;  // directory (bf16, fp8) or .gguf file
  bool force = false;                 // replace an existing output
  bool allow_missing_scale = false;   // bf16: copy an FP8 weight without scale unchanged
  bool scale_ue8m0 = false;           // fp8: power-of-two scales (scale_fmt "ue8m0")
  DType gguf_type = DType::kBF16;     // gguf: the type of every matrix (the mix's base type)
  std::optional<GgufFileType> gguf_mix;  // gguf: llama-quantize's per-tensor mix of this file type
  bool gguf_mtp = false;              // gguf: keep MTP layers (llama.cpp drops them)
  std::string gguf_name;              // gguf: general.name (default: input dir name)
  int64_t buffer_bytes = 64ll << 20;  // working memory for one chunk of rows
  bool progress = true;               // progress bar on stderr
};

struct ConvertSummary {
  int64_t tensors_in = 0, tensors_out = 0;
  int64_t converted = 0;  // tensors whose dtype changed
  int64_t copied = 0;     // tensors written unchanged
  int64_t dropped = 0;    // tensors not written (scales for bf16, MTP for gguf)
  int64_t files_copied = 0;
  uint64_t bytes_in = 0, bytes_out = 0;
  double seconds = 0;
  int64_t peak_rss_kb = 0;
  std::vector<std::string> warnings;
};

Expected<ConvertSummary> Convert(const ConvertOptions& options);

// One paragraph for stderr: counts, sizes, time, throughput, peak RSS.
std::string FormatSummary(const ConvertOptions& options, const ConvertSummary& summary);

// Peak resident set size of this process so far (getrusage), in KiB.
int64_t PeakRssKb();

}  // namespace dsv3
