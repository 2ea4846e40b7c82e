// Presets and per-tensor types of llama-quantize's mixes; see gguf_mix.h.
// The rules are those llama.cpp's quantizer applies to the tensor names of a
// deepseek2 file. Some of its rules never fire here and are left out: the
// attn_v/attn_qkv/attn_kv_b ones (deepseek2 files carry attn_k_b/attn_v_b,
// names outside that group, so they keep the base type), the IQ1/IQ2/IQ3
// and Falcon ones, and those that need an importance matrix.
#include "convert/gguf_mix.h"

#include <cstdio>

namespace dsv3 {

namespace {

using FT = GgufFileType;

const std::vector<GgufPreset>& Presets() {
  static const std::vector<GgufPreset> presets = {
      {"f32", DType::kF32, FT::kF32, false},         {"f16", DType::kF16, FT::kF16, false},
      {"bf16", DType::kBF16, FT::kBF16, false},      {"q8_0", DType::kQ8_0, FT::kQ8_0, false},
      {"q4_0", DType::kQ4_0, FT::kQ4_0, true},       {"q4_1", DType::kQ4_1, FT::kQ4_1, true},
      {"q5_0", DType::kQ5_0, FT::kQ5_0, true},       {"q5_1", DType::kQ5_1, FT::kQ5_1, true},
      {"q2_k", DType::kQ2_K, FT::kQ2_K, true},       {"q3_k_s", DType::kQ3_K, FT::kQ3_K_S, true},
      {"q3_k_m", DType::kQ3_K, FT::kQ3_K_M, true},   {"q3_k", DType::kQ3_K, FT::kQ3_K_M, true},
      {"q3_k_l", DType::kQ3_K, FT::kQ3_K_L, true},   {"q4_k_s", DType::kQ4_K, FT::kQ4_K_S, true},
      {"q4_k_m", DType::kQ4_K, FT::kQ4_K_M, true},   {"q4_k", DType::kQ4_K, FT::kQ4_K_M, true},
      {"q5_k_s", DType::kQ5_K, FT::kQ5_K_S, true},   {"q5_k_m", DType::kQ5_K, FT::kQ5_K_M, true},
      {"q5_k", DType::kQ5_K, FT::kQ5_K_M, true},     {"q6_k", DType::kQ6_K, FT::kQ6_K, true},
      {"iq4_nl", DType::kIQ4_NL, FT::kIQ4_NL, true}, {"iq4_xs", DType::kIQ4_XS, FT::kIQ4_XS, true},
  };
  return presets;
}

bool Contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// llama.cpp's "use more bits" layers: the first and last eighth, and every
// third layer between them.
bool UseMoreBits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// The output head: Q6_K unless the base is Q8_0; Q8_0 when its rows do not
// hold whole blocks of the base type.
DType OutputType(DType base, int64_t ncols) {
  if (ncols % DTypeBlockElems(base) != 0) return DType::kQ8_0;
  return base == DType::kQ8_0 ? base : DType::kQ6_K;
}

// attn_output: more bits for the low-bit mixes; Mixtral-like 8-expert models
// get Q5_K for every mix up to Q4_K_M.
DType AttnOutputType(FT ft, DType base, int64_t n_expert) {
  if (n_expert == 8) {
    switch (ft) {
      case FT::kQ2_K: case FT::kQ3_K_S: case FT::kQ3_K_M: case FT::kIQ4_NL: case FT::kQ4_K_S: case FT::kQ4_K_M:
      case FT::kIQ4_XS: return DType::kQ5_K;
      default: return base;
    }
  }
  switch (ft) {
    case FT::kQ2_K: return DType::kQ3_K;
    case FT::kQ3_K_M: return DType::kQ4_K;
    case FT::kQ3_K_L: return DType::kQ5_K;
    default: return base;
  }
}

// ffn_down (dense, shared and routed experts alike), by the layer it is in.
DType FfnDownType(FT ft, DType base, int64_t i, int64_t n) {
  switch (ft) {
    case FT::kQ2_K: return DType::kQ3_K;
    case FT::kQ3_K_M: return i < n / 16 ? DType::kQ5_K : DType::kQ4_K;
    case FT::kQ3_K_L: return DType::kQ5_K;
    case FT::kQ4_K_M: case FT::kQ5_K_M: return UseMoreBits(i, n) ? DType::kQ6_K : base;
    case FT::kQ4_K_S: case FT::kIQ4_NL: case FT::kIQ4_XS: return i < n / 8 ? DType::kQ5_K : base;
    default: return base;
  }
}

int64_t LayerOf(const std::string& name) {
  int layer = -1;
  return std::sscanf(name.c_str(), "blk.%d.", &layer) == 1 ? layer : -1;
}

}  // namespace

std::optional<GgufPreset> FindGgufPreset(const std::string& name) {
  for (const auto& p : Presets())
    if (p.name == name) return p;
  return std::nullopt;
}

std::string GgufPresetNames() {
  std::string out;
  for (const auto& p : Presets()) {
    if (!out.empty()) out += ", ";
    out += p.name;
  }
  return out;
}

DType QuantizerFallback(DType t, int64_t ncols) {
  if (ncols % DTypeBlockElems(t) == 0) return t;
  switch (t) {
    case DType::kQ2_K: case DType::kQ3_K: return QuantizerFallback(DType::kQ4_0, ncols);
    case DType::kQ4_K: return QuantizerFallback(DType::kQ5_0, ncols);
    case DType::kQ5_K: return QuantizerFallback(DType::kQ5_1, ncols);
    case DType::kQ6_K: return QuantizerFallback(DType::kQ8_0, ncols);
    case DType::kIQ4_XS: return QuantizerFallback(DType::kIQ4_NL, ncols);
    default: return DType::kF16;  // 32-element blocks that still do not fit
  }
}

DType MixTensorType(GgufFileType ft, DType base, const std::string& name, int64_t ncols, const GgufMixModel& m) {
  DType t = base;
  // Without an output.weight the embedding doubles as the head and gets its type.
  if (name == "output.weight" || (!m.has_output && name == "token_embd.weight")) t = OutputType(base, ncols);
  else if (Contains(name, "attn_output.weight")) t = AttnOutputType(ft, base, m.n_expert);
  else if (Contains(name, "ffn_down")) t = FfnDownType(ft, base, LayerOf(name), m.n_layer);
  return QuantizerFallback(t, ncols);
}

DType GgufTensorType(const std::string& name, const std::vector<int64_t>& ne, DType base,
                     std::optional<GgufFileType> mix, const GgufMixModel& model) {
  const auto ends_with = [&](const std::string& suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ne.size() == 1 || ends_with("_norm.weight") || ends_with(".bias") || Contains(name, "ffn_gate_inp"))
    return DType::kF32;
  return mix ? MixTensorType(*mix, base, name, ne[0], model) : QuantizerFallback(base, ne[0]);
}

}  // namespace dsv3
