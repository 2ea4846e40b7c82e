// The GGUF output types `dsv3 convert --to gguf --type NAME` accepts, named
// as llama.cpp's llama-quantize names its file types ("q4_k_m", "q2_k", ...),
// and the per-tensor type each of them gives a deepseek2 file. A K-quant
// "mix" does not put every matrix in one type: llama-quantize moves the
// tensors that hurt most when rounded (the output head, attn_output,
// ffn_down in the first and last eighth of the layers and every third one
// between) to more bits, and every type falls back to a 32-element block
// type, then F16, when a row is not a whole number of its blocks. dsv3
// reproduces that choice for the tensors a deepseek2 file holds, without an
// importance matrix, so its files match llama-quantize's tensor for tensor
// (docs/quantization.md, "Mixes").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace dsv3 {

// llama.cpp's llama_ftype numbers, written as general.file_type.
enum class GgufFileType : uint32_t {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ8_0 = 7, kQ5_0 = 8, kQ5_1 = 9,
  kQ2_K = 10, kQ3_K_S = 11, kQ3_K_M = 12, kQ3_K_L = 13, kQ4_K_S = 14, kQ4_K_M = 15,
  kQ5_K_S = 16, kQ5_K_M = 17, kQ6_K = 18, kIQ4_NL = 25, kIQ4_XS = 30, kBF16 = 32,
};

struct GgufPreset {
  std::string name;       // as --type takes it, lowercase
  DType base;             // the type of every matrix no rule moves
  GgufFileType file_type;
  bool mix;               // false: every matrix `base` (f32, f16, bf16, q8_0)
};

// The preset called `name` (llama-quantize's aliases q3_k, q4_k and q5_k mean
// their _m mixes there and here), or nullopt.
std::optional<GgufPreset> FindGgufPreset(const std::string& name);
// Every accepted name, for error messages and --help.
std::string GgufPresetNames();

// What a mix needs to know of the whole file.
struct GgufMixModel {
  int64_t n_layer = 0;      // deepseek2.block_count (MTP layers included when written)
  int64_t n_expert = 0;     // deepseek2.expert_count
  bool has_output = true;   // an output.weight exists (else token_embd is the head)
};

// The type of GGUF tensor `name` with ggml shape `ne` in a file whose matrices
// are `base`: F32 for 1-D tensors, norms, biases and the router (llama.cpp's
// converter writes them so and its quantizer leaves them); `mix`'s choice for
// the other matrices, or `base` with the row-length fallback when no mix.
DType GgufTensorType(const std::string& name, const std::vector<int64_t>& ne, DType base,
                     std::optional<GgufFileType> mix, const GgufMixModel& model);

// The type llama-quantize gives the quantizable matrix `name` (a GGUF tensor
// name) with rows of `ncols` elements under `file_type`'s mix, its row-length
// fallback applied.
DType MixTensorType(GgufFileType file_type, DType base, const std::string& name, int64_t ncols,
                    const GgufMixModel& model);

// llama-quantize's fallback for rows that are not a whole number of `t`'s
// blocks: a 32-element block type of about the same size, then F16. Where a
// 32-element type itself does not fit, llama-quantize stops with an error;
// dsv3 writes F16 there, as llama.cpp's converter does for Q8_0.
DType QuantizerFallback(DType t, int64_t ncols);

}  // namespace dsv3
