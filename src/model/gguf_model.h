// DeepSeek-V2/V3 in llama.cpp's GGUF vocabulary (architecture "deepseek2"):
// the mapping between Hugging Face tensor names (weights.h) and llama.cpp's
// (token_embd, blk.N.attn_kv_a_mqa, blk.N.ffn_gate_exps, ...) and between
// config.json fields and the "deepseek2.*" metadata keys. Both directions
// live here so the GGUF loader and the GGUF converter cannot disagree.
//
// Layout facts (llama.cpp convert_hf_to_gguf.py DeepseekV2Model and
// llama-model.cpp, read for this mapping): no tensor is permuted; routed
// experts are stacked into one 3-D tensor per projection, shape
// [E, rows, cols] (ggml ne = {cols, rows, E}); kv_b_proj is either kept as
// attn_kv_b (older files) or split per head into attn_k_b [H, rc, dn] (W_UK
// transposed) and attn_v_b [H, dv, rc]; e_score_correction_bias becomes
// exp_probs_b.bias; MTP layers are dropped by llama.cpp (dsv3 can keep them
// under the blk.N.nextn.* names llama.cpp uses for other MTP models); norms,
// biases and the router (ffn_gate_inp) are F32.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "io/gguf.h"
#include "model/config.h"

namespace dsv3 {

inline constexpr const char* kGgufArch = "deepseek2";

// Where a Hugging Face tensor lives in a GGUF file.
struct GgufTarget {
  enum class Kind {
    kPlain,        // one GGUF tensor of the same shape (ggml ne reversed)
    kExpertSlice,  // expert `expert` of the stacked tensor `name`
    kKvB,          // kv_b_proj: attn_kv_b, or rebuilt from attn_k_b + attn_v_b
    kNone,         // not stored (no GGUF name)
  };
  Kind kind = Kind::kNone;
  std::string name;   // GGUF tensor name ("blk.3.ffn_up_exps.weight")
  int64_t expert = -1;
  int64_t layer = -1;
};

// Maps a Hugging Face tensor name of `config`'s architecture to GGUF.
GgufTarget MapTensorToGguf(const std::string& hf_name, const Config& config);

// GGUF names of the split MLA projections of `layer`.
std::string GgufKbName(int64_t layer);
std::string GgufVbName(int64_t layer);

struct GgufExportInfo {
  std::string name;        // general.name
  uint32_t file_type = 0;  // llama.cpp LlamaFileType (0 F32, 1 F16, 7 Q8_0, 32 BF16)
  bool with_mtp = false;   // keep MTP layers (dsv3 extension; llama.cpp drops them)
};

// The general.* and deepseek2.* keys llama.cpp's converter writes for this
// config, in its order. Warnings (settings llama.cpp cannot express) are
// appended to `warnings`.
std::vector<std::pair<std::string, GgufValue>> GgufMetadataFromConfig(const Config& config,
                                                                      const GgufExportInfo& info,
                                                                      std::vector<std::string>* warnings);

// Whether `path` names a GGUF model: a name ending in ".gguf" that is not a
// directory (Model::Load's rule; `inspect`, `run` and `tokenize` share it).
bool IsGgufPath(const std::string& path);

// Builds the Config of a deepseek2 GGUF file from its metadata (and, where
// llama.cpp infers a setting from tensors, from their presence), validated
// by the same checks as config.json with errors naming the GGUF keys.
Expected<Config> ConfigFromGguf(const GgufFile& file);

}  // namespace dsv3
