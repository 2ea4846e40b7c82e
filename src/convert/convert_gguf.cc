// --to gguf: a Hugging Face DeepSeek-V2/V3 checkpoint (BF16/F16/F32 or FP8
// with block scales) -> one llama.cpp "deepseek2" GGUF file, laid out as
// llama.cpp's convert_hf_to_gguf.py lays it out (see model/gguf_model.h):
// same tensor names, routed experts stacked per projection, kv_b_proj split
// into attn_k_b / attn_v_b, 1-D tensors, *_norm, biases and the router in F32,
// the other matrices in one type or in llama-quantize's per-tensor mix for
// the preset (convert/gguf_mix.h), block types falling back as llama.cpp's
// quantizer does for rows too short (Q4_K -> Q5_0, ..., F16 when not a
// multiple of 32), block types encoded byte for byte as ggml's
// quantize_row_*_ref, MTP layers dropped unless --mtp. FP8 weights are
// dequantized (q * block scale in float32) before encoding.
#include <filesystem>
#include <set>

#include "convert/checkpoint_io.h"
#include "convert/gguf_mix.h"
#include "convert/gguf_tokenizer.h"
#include "convert/internal.h"
#include "convert/tensor_stream.h"
#include "io/gguf.h"
#include "model/gguf_model.h"
#include "model/weights.h"

namespace dsv3 {

namespace fs = std::filesystem;

namespace {

struct GgufOut {
  enum class Kind { kRows, kKb, kVb };
  Kind kind = Kind::kRows;
  GgufTensorSpec spec;
  std::vector<const TensorInfo*> sources;  // one matrix, E experts, or kv_b
};

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Sets every planned tensor's type once the whole plan is known (a mix needs
// to know whether the file has an output head).
void AssignTypes(const Config& c, const ConvertOptions& o, std::vector<GgufOut>& plan) {
  GgufMixModel model;
  model.n_layer = c.num_hidden_layers + (o.gguf_mtp ? c.num_nextn_predict_layers : 0);
  model.n_expert = c.HasMoe() ? c.n_routed_experts : 0;
  model.has_output = false;
  for (const auto& t : plan) model.has_output |= t.spec.name == "output.weight";
  for (auto& t : plan)
    t.spec.type = *GgmlFromDType(GgufTensorType(t.spec.name, t.spec.ne, o.gguf_type, o.gguf_mix, model));
}

uint32_t FileType(DType t) {
  switch (t) {
    case DType::kF32: return 0;
    case DType::kF16: return 1;
    case DType::kQ8_0: return 7;
    case DType::kQ4_0: return 2;
    case DType::kQ4_1: return 3;
    case DType::kQ5_0: return 8;
    case DType::kQ5_1: return 9;
    case DType::kQ2_K: return 10;
    case DType::kQ3_K: return 11;  // the _S variants: one type throughout
    case DType::kQ4_K: return 14;
    case DType::kQ5_K: return 16;
    case DType::kQ6_K: return 18;
    case DType::kIQ4_NL: return 25;
    case DType::kIQ4_XS: return 30;
    default: return 32;  // MOSTLY_BF16
  }
}

GgufOut Out(std::string name, std::vector<int64_t> ne, std::vector<const TensorInfo*> sources,
            GgufOut::Kind kind = GgufOut::Kind::kRows) {
  GgufOut o;
  o.kind = kind;
  o.spec.name = std::move(name);
  o.spec.ne = std::move(ne);
  o.sources = std::move(sources);
  return o;
}

// The routed experts of `first` (expert 0's name) in expert order.
Status CollectExperts(const TensorStore& store, const std::string& first, int64_t experts,
                      std::vector<const TensorInfo*>& out) {
  const size_t at = first.find(".experts.0.");
  for (int64_t e = 0; e < experts; ++e) {
    const std::string name = first.substr(0, at) + ".experts." + std::to_string(e) + "." + first.substr(at + 11);
    const TensorInfo* t = store.Find(name);
    if (!t) return Status::Error("tensor '" + name + "' is missing from " + store.path());
    out.push_back(t);
  }
  return Status::Ok();
}

Status PlanGguf(const InputCheckpoint& in, const Config& c, const ConvertOptions& o, std::vector<GgufOut>& plan,
                ConvertSummary& s) {
  const TensorStore& store = *in.store;
  const int64_t H = c.num_attention_heads, dn = c.qk_nope_head_dim, dv = c.v_head_dim, rc = c.kv_lora_rank;
  for (const auto& d : ListTensors(c)) {
    const GgufTarget t = MapTensorToGguf(d.name, c);
    const TensorInfo* src = store.Find(d.name);
    if (!src) {
      if (d.optional) continue;
      return Status::Error("tensor '" + d.name + "' is missing from " + o.input + " (config.json implies it)");
    }
    if (src->shape != d.shape)
      return Status::Error(src->file + ": tensor '" + d.name + "' has shape " + src->ShapeString() +
                           " but config.json implies another");
    if (t.layer >= c.num_hidden_layers && !o.gguf_mtp) {
      ++s.dropped;
      continue;
    }
    const std::vector<int64_t> ne(d.shape.rbegin(), d.shape.rend());
    if (t.kind == GgufTarget::Kind::kPlain) {
      plan.push_back(Out(t.name, ne, {src}));
    } else if (t.kind == GgufTarget::Kind::kExpertSlice) {
      if (t.expert != 0) continue;  // stacked together with expert 0
      std::vector<const TensorInfo*> experts;
      DSV3_RETURN_IF_ERROR(CollectExperts(store, d.name, c.n_routed_experts, experts));
      plan.push_back(Out(t.name, {ne[0], ne[1], c.n_routed_experts}, experts));
    } else if (t.kind == GgufTarget::Kind::kKvB) {
      plan.push_back(Out(GgufKbName(t.layer), {dn, rc, H}, {src}, GgufOut::Kind::kKb));
      plan.push_back(Out(GgufVbName(t.layer), {rc, dv, H}, {src}, GgufOut::Kind::kVb));
    } else {
      return Status::Error("tensor '" + d.name + "' has no GGUF name");
    }
  }
  return Status::Ok();
}

Expected<Weight> SourceWeight(const TensorStore& store, const TensorInfo& t, const Config& c) {
  const auto q = c.quantization.value_or(QuantizationConfig{});
  return WeightFromTensor(t, store.Find(t.name + "_scale_inv"), q.block_rows, q.block_cols);
}

Status WriteTensor(const TensorStore& store, const Config& c, const GgufOut& out, const ConvertOptions& o,
                   GgufWriter& writer, Progress& progress) {
  std::vector<Weight> parts;
  for (const TensorInfo* t : out.sources) {
    DSV3_ASSIGN_OR_RETURN(Weight w, SourceWeight(store, *t, c));
    parts.push_back(w);
  }
  std::unique_ptr<RowSource> rows;
  const int64_t H = c.num_attention_heads, dn = c.qk_nope_head_dim, dv = c.v_head_dim;
  if (out.kind == GgufOut::Kind::kKb) rows = KbRows(parts[0], H, dn, dv);
  else if (out.kind == GgufOut::Kind::kVb) rows = VbRows(parts[0], H, dn, dv);
  else rows = MatrixRows(parts);
  const ByteSink sink = [&](const void* p, size_t n) { return writer.Write(p, n); };
  DSV3_RETURN_IF_ERROR(StreamEncoded(*rows, *DTypeFromGgml(static_cast<uint32_t>(out.spec.type)), o.buffer_bytes,
                                     sink, progress));
  progress.TensorDone();
  return Status::Ok();
}

}  // namespace

Status ConvertToGguf(const ConvertOptions& o, ConvertSummary& s) {
  DSV3_RETURN_IF_ERROR(CheckOutputFile(o.output, o.force));
  DSV3_ASSIGN_OR_RETURN(InputCheckpoint in, OpenInputCheckpoint(o.input));
  DSV3_ASSIGN_OR_RETURN(Config c, ParseConfig(in.config_text, in.config_path));
  std::vector<GgufOut> plan;
  DSV3_RETURN_IF_ERROR(PlanGguf(in, c, o, plan, s));
  AssignTypes(c, o, plan);
  GgufExportInfo info;
  info.name = o.gguf_name.empty() ? fs::path(o.input).lexically_normal().filename().string() : o.gguf_name;
  if (info.name.empty()) info.name = fs::path(o.input).lexically_normal().parent_path().filename().string();
  info.file_type = o.gguf_mix ? static_cast<uint32_t>(*o.gguf_mix) : FileType(o.gguf_type);
  info.with_mtp = o.gguf_mtp;
  auto kv = GgufMetadataFromConfig(c, info, &s.warnings);
  DSV3_ASSIGN_OR_RETURN(auto tok, TokenizerGgufMetadata(o.input, c));
  kv.insert(kv.end(), tok.begin(), tok.end());
  std::vector<GgufTensorSpec> specs;
  uint64_t total = 0;
  std::set<const TensorInfo*> used;
  for (const auto& t : plan) {
    specs.push_back(t.spec);
    total += t.spec.nbytes();
    used.insert(t.sources.begin(), t.sources.end());
  }
  int64_t unmapped = 0;
  std::string example;
  for (const auto& shard : in.shards)
    for (const TensorInfo* t : shard.tensors) {
      const bool scale = EndsWith(t->name, "_scale_inv") && in.store->Find(t->name.substr(0, t->name.size() - 10));
      const bool mtp = MapTensorToGguf(t->name, c).layer >= c.num_hidden_layers;
      if (!used.count(t) && !scale && !mtp && unmapped++ == 0) example = t->name;
    }
  if (unmapped)
    s.warnings.push_back(std::to_string(unmapped) + " tensor(s) outside the deepseek2 layout were not written (e.g. '" +
                         example + "')");
  DSV3_ASSIGN_OR_RETURN(auto writer, GgufWriter::Create(o.output, kv, specs));
  Progress progress("gguf", static_cast<int64_t>(plan.size()), total, o.progress);
  for (const auto& t : plan) DSV3_RETURN_IF_ERROR(WriteTensor(*in.store, c, t, o, *writer, progress));
  progress.Finish();
  DSV3_RETURN_IF_ERROR(writer->Finish());
  for (const auto& t : plan) {
    const bool changed = t.sources.size() > 1 || t.kind != GgufOut::Kind::kRows ||
                         DTypeFromGgml(static_cast<uint32_t>(t.spec.type)) != t.sources[0]->dtype;
    ++(changed ? s.converted : s.copied);
  }
  s.tensors_in = in.num_tensors;
  s.tensors_out = static_cast<int64_t>(plan.size());
  s.bytes_in = in.total_bytes;
  s.bytes_out = total;
  return Status::Ok();
}

}  // namespace dsv3
