// Safetensors -> safetensors conversions. --to w4a16 / w8a16 pack every
// linear layer into compressed-tensors' int4 / int8 group-128 layout
// (model/packed_int.h). --to bf16 follows DeepSeek's
// inference/fp8_cast_bf16.py: every F8_E4M3 weight with a `<name>_scale_inv`
// becomes BF16 = round-to-nearest-even(float(q) * s) with s the scale of its
// 128x128 block (weight_dequant computes in float32 and stores BF16), every
// scale tensor is dropped, every other tensor is copied byte for byte, each
// shard keeps its file name and tensors, the index is rewritten without the
// scales and quantization_config leaves config.json. --to fp8 is the reverse
// for exactly the tensors the release stores in FP8 (TensorRole::kLinear,
// except the MTP layer's eh_proj which the release keeps in BF16).
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "convert/checkpoint_io.h"
#include "convert/internal.h"
#include "convert/tensor_stream.h"
#include "core/json_depth.h"
#include "core/parallel.h"
#include "io/safetensors_writer.h"
#include "model/config.h"
#include "model/packed_int.h"
#include "model/weights.h"

namespace dsv3 {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

struct OutTensor {
  enum class Op { kCopy, kDequant, kQuantize, kScales, kPack, kPackScales, kPackShape };
  Op op = Op::kCopy;
  TensorSpec spec;
  const TensorInfo* src = nullptr;
  const TensorInfo* scale = nullptr;  // kDequant, kPack (an FP8 input's)
};

// compressed-tensors group size and bits of --to w4a16 / w8a16.
constexpr int64_t kPackGroup = 128;
int PackBits(ConvertTarget t) { return t == ConvertTarget::kW8A16 ? 8 : 4; }

struct BlockSize {
  int64_t rows = 128, cols = 128;
};

// weight_block_size from config.json's quantization_config, if any.
Expected<BlockSize> ReadBlockSize(const std::string& text, const std::string& label) {
  DSV3_RETURN_IF_ERROR(CheckJsonDepth(text, label));
  const ojson j = ojson::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Error(label + ": not a JSON object");
  BlockSize b;
  if (j.contains("quantization_config") && j["quantization_config"].is_object() &&
      j["quantization_config"].contains("weight_block_size")) {
    const ojson& w = j["quantization_config"]["weight_block_size"];
    if (!w.is_array() || w.size() != 2 || !w[0].is_number_integer() || !w[1].is_number_integer() ||
        w[0].get<int64_t>() <= 0 || w[1].get<int64_t>() <= 0)
      return Status::Error(label + ": field 'quantization_config.weight_block_size' must be two positive integers");
    b.rows = w[0].get<int64_t>(), b.cols = w[1].get<int64_t>();
  }
  return b;
}

// int4 / int8 group-wise packing of one matrix (packed_int.h): writes the
// packed rows, keeps the bf16 scales [rows, cols / 128] for the next tensor.
Status WritePacked(const OutTensor& t, const BlockSize& block, const ConvertOptions& o, const ByteSink& sink,
                   std::vector<uint16_t>& scales, Progress& progress) {
  DSV3_ASSIGN_OR_RETURN(Weight w, WeightFromTensor(*t.src, t.scale, block.rows, block.cols));
  auto src = MatrixRows({w});
  const int bits = PackBits(o.target);
  const int64_t rows = src->rows(), cols = src->cols(), words = cols * bits / 32, groups = cols / kPackGroup;
  const int64_t chunk = ChunkRows(o.buffer_bytes, cols * 4 + words * 4, 1, rows);
  std::vector<float> x(chunk * cols);
  std::vector<int32_t> packed(chunk * words);
  scales.resize(rows * groups);
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t n = std::min(chunk, rows - r0);
    src->Rows(r0, n, x.data());
    for (int64_t i = 0; i < n * cols; ++i)
      if (!std::isfinite(x[i])) return Status::Error("tensor '" + t.src->name + "' has a non-finite weight");
    ParallelFor(n, 16, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i)
        PackRow(x.data() + i * cols, cols, bits, kPackGroup, packed.data() + i * words, scales.data() + (r0 + i) * groups);
    });
    DSV3_RETURN_IF_ERROR(sink(packed.data(), n * words * 4));
    src->Release(r0, n);
    progress.AddBytes(n * words * 4);
  }
  return Status::Ok();
}

// Writes one shard's planned tensors in order; returns bytes written.
Status WriteShard(const std::string& path, const std::vector<OutTensor>& plan, const BlockSize& block,
                  const ConvertOptions& o, const std::map<std::string, std::string>& metadata, Progress& progress) {
  std::vector<TensorSpec> specs;
  for (const auto& t : plan) specs.push_back(t.spec);
  DSV3_ASSIGN_OR_RETURN(auto writer, SafetensorsWriter::Create(path, specs, metadata));
  const ByteSink sink = [&](const void* p, size_t n) { return writer->Write(p, n); };
  std::vector<float> scales;  // of the last quantized weight, written next
  std::vector<uint16_t> packed_scales;  // bf16, of the last packed weight, written next
  for (const auto& t : plan) {
    switch (t.op) {
      case OutTensor::Op::kCopy: DSV3_RETURN_IF_ERROR(StreamRaw(*t.src, o.buffer_bytes, sink, progress)); break;
      case OutTensor::Op::kDequant: {
        DSV3_ASSIGN_OR_RETURN(Weight w, WeightFromTensor(*t.src, t.scale, block.rows, block.cols));
        auto rows = MatrixRows({w});
        DSV3_RETURN_IF_ERROR(StreamEncoded(*rows, DType::kBF16, o.buffer_bytes, sink, progress));
        break;
      }
      case OutTensor::Op::kQuantize: {
        DSV3_ASSIGN_OR_RETURN(Weight w, WeightFromTensor(*t.src, nullptr, block.rows, block.cols));
        auto rows = MatrixRows({w});
        DSV3_RETURN_IF_ERROR(StreamFp8(*rows, block.rows, block.cols, o.scale_ue8m0, o.buffer_bytes, t.src->name,
                                       sink, scales, progress));
        break;
      }
      case OutTensor::Op::kScales:
        DSV3_RETURN_IF_ERROR(sink(scales.data(), scales.size() * sizeof(float)));
        progress.AddBytes(scales.size() * sizeof(float));
        break;
      case OutTensor::Op::kPack: DSV3_RETURN_IF_ERROR(WritePacked(t, block, o, sink, packed_scales, progress)); break;
      case OutTensor::Op::kPackScales:
        DSV3_RETURN_IF_ERROR(sink(packed_scales.data(), packed_scales.size() * sizeof(uint16_t)));
        progress.AddBytes(packed_scales.size() * sizeof(uint16_t));
        break;
      case OutTensor::Op::kPackShape: {
        const int64_t shape[2] = {t.src->shape[0], t.src->shape[1]};
        DSV3_RETURN_IF_ERROR(sink(shape, sizeof shape));
        progress.AddBytes(sizeof shape);
        break;
      }
    }
    progress.TensorDone();
  }
  return writer->Finish();
}

// An FP8 scale grid, dropped by --to bf16 / w4a16 / w8a16 (counted).
bool DropScale(const std::string& n, ConvertSummary& s) {
  if (n.size() <= 10 || n.compare(n.size() - 10, 10, "_scale_inv") != 0) return false;
  ++s.dropped;
  return true;
}

OutTensor CopyOf(const TensorInfo* t) {
  OutTensor out;
  out.src = t;
  out.spec = {t->name, t->dtype, t->shape};
  return out;
}

// Plans --to bf16 for one shard.
Status PlanBf16(const InputCheckpoint& in, const InputShard& shard, const ConvertOptions& o,
                std::vector<OutTensor>& plan, ConvertSummary& s) {
  for (const TensorInfo* t : shard.tensors) {
    const std::string& n = t->name;
    if (DropScale(n, s)) continue;
    OutTensor out = CopyOf(t);
    if (t->dtype == DType::kF8E4M3) {
      out.scale = in.store->Find(n + "_scale_inv");
      if (out.scale) {
        out.op = OutTensor::Op::kDequant;
        out.spec.dtype = DType::kBF16;
        ++s.converted;
      } else if (o.allow_missing_scale) {
        s.warnings.push_back("FP8 tensor '" + n + "' has no scale '" + n + "_scale_inv'; copied unchanged");
        ++s.copied;
      } else {
        return Status::Error(t->file + ": FP8 tensor '" + n + "' has no scale tensor '" + n +
                             "_scale_inv' (pass --allow-missing-scale to copy it unchanged)");
      }
    } else {
      ++s.copied;
    }
    plan.push_back(out);
  }
  return Status::Ok();
}

// The tensors the release stores in FP8: linear layers except MTP eh_proj.
std::set<std::string> Fp8Names(const Config& c) {
  std::set<std::string> names;
  for (const auto& d : ListTensors(c))
    if (d.role == TensorRole::kLinear && d.name.find("eh_proj") == std::string::npos) names.insert(d.name);
  return names;
}

// Plans --to fp8 for one shard.
Status PlanFp8(const InputShard& shard, const std::set<std::string>& fp8, std::vector<OutTensor>& plan,
               const BlockSize& b, ConvertSummary& s) {
  for (const TensorInfo* t : shard.tensors) {
    if (t->dtype == DType::kF8E4M3 || t->name.find("_scale_inv") != std::string::npos)
      return Status::Error(t->file + ": tensor '" + t->name + "' is already FP8 (convert --to bf16 first)");
    OutTensor out;
    out.src = t;
    out.spec = {t->name, t->dtype, t->shape};
    if (!fp8.count(t->name)) {
      ++s.copied;
      plan.push_back(out);
      continue;
    }
    out.op = OutTensor::Op::kQuantize;
    out.spec.dtype = DType::kF8E4M3;
    plan.push_back(out);
    OutTensor scale;
    scale.op = OutTensor::Op::kScales;
    scale.spec = {t->name + "_scale_inv", DType::kF32,
                  {(t->shape[0] + b.rows - 1) / b.rows, (t->shape[1] + b.cols - 1) / b.cols}};
    plan.push_back(scale);
    ++s.converted;
  }
  return Status::Ok();
}

// Plans --to w4a16 / w8a16 for one shard: every linear layer (TensorRole::kLinear;
// FP8 ones dequantized first) whose columns are a multiple of 128 becomes
// weight_packed / weight_scale / weight_shape; the rest is copied, FP8 ones
// as BF16 (their scales dropped).
Status PlanPacked(const InputCheckpoint& in, const InputShard& shard, const std::set<std::string>& linear, int bits,
                  std::vector<OutTensor>& plan, ConvertSummary& s) {
  for (const TensorInfo* t : shard.tensors) {
    const std::string& n = t->name;
    if (DropScale(n, s)) continue;
    OutTensor out = CopyOf(t);
    if (t->dtype == DType::kF8E4M3) out.scale = in.store->Find(n + "_scale_inv");
    if (t->dtype == DType::kF8E4M3 && !out.scale)
      return Status::Error(t->file + ": FP8 tensor '" + n + "' has no scale tensor '" + n + "_scale_inv'");
    if (!linear.count(n) || t->shape.size() != 2 || t->shape[1] % kPackGroup != 0) {
      // Kept as it is; an FP8 one (no 128-column groups) becomes BF16.
      if (t->dtype == DType::kF8E4M3) out.op = OutTensor::Op::kDequant, out.spec.dtype = DType::kBF16;
      ++s.copied;
      plan.push_back(out);
      continue;
    }
    out.op = OutTensor::Op::kPack;
    out.spec = {n + "_packed", DType::kI32, {t->shape[0], t->shape[1] * bits / 32}};
    plan.push_back(out);
    plan.push_back({OutTensor::Op::kPackScales, {n + "_scale", DType::kBF16, {t->shape[0], t->shape[1] / kPackGroup}}, t});
    plan.push_back({OutTensor::Op::kPackShape, {n + "_shape", DType::kI64, {2}}, t});
    ++s.converted;
  }
  return Status::Ok();
}

// config.json with quantization_config removed (bf16) or set (fp8).
Expected<std::string> EditConfig(const InputCheckpoint& in, const ConvertOptions& o) {
  DSV3_RETURN_IF_ERROR(CheckJsonDepth(in.config_text, in.config_path));
  ojson j = ojson::parse(in.config_text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Error(in.config_path + ": not a JSON object");
  if (o.target == ConvertTarget::kBf16) {
    j.erase("quantization_config");
  } else if (o.target == ConvertTarget::kW4A16 || o.target == ConvertTarget::kW8A16) {
    const ojson weights = {{"num_bits", PackBits(o.target)}, {"type", "int"}, {"symmetric", true},
                           {"strategy", "group"}, {"group_size", kPackGroup}, {"dynamic", false}, {"actorder", nullptr}};
    j["quantization_config"] = {{"quant_method", "compressed-tensors"}, {"format", "pack-quantized"},
                                {"quantization_status", "compressed"},
                                {"config_groups", {{"group_0", {{"targets", {"Linear"}}, {"weights", weights},
                                                                {"input_activations", nullptr}}}}},
                                {"ignore", {"lm_head"}}};
  } else {
    ojson q = {{"activation_scheme", "dynamic"}, {"fmt", "e4m3"}, {"quant_method", "fp8"},
               {"weight_block_size", {128, 128}}};
    if (o.scale_ue8m0) q["scale_fmt"] = "ue8m0";
    j["quantization_config"] = q;
  }
  return j.dump(2) + "\n";
}

// Checks every tensor config.json implies is present with its shape.
Status CheckComplete(const InputCheckpoint& in, const Config& c, const std::string& dir) {
  for (const auto& d : ListTensors(c)) {
    const TensorInfo* t = in.store->Find(d.name);
    if (!t) {
      if (d.optional) continue;
      return Status::Error("tensor '" + d.name + "' is missing from " + dir + " (config.json implies it)");
    }
    if (t->shape != d.shape)
      return Status::Error(t->file + ": tensor '" + d.name + "' has shape " + t->ShapeString() +
                           " but config.json implies another");
  }
  return Status::Ok();
}

}  // namespace

Status ConvertSafetensors(const ConvertOptions& o, ConvertSummary& s) {
  DSV3_ASSIGN_OR_RETURN(InputCheckpoint in, OpenInputCheckpoint(o.input));
  DSV3_ASSIGN_OR_RETURN(BlockSize block, ReadBlockSize(in.config_text, in.config_path));
  const bool pack = o.target == ConvertTarget::kW4A16 || o.target == ConvertTarget::kW8A16;
  std::set<std::string> fp8, linear;
  if (pack) {
    DSV3_ASSIGN_OR_RETURN(Config c, ParseConfig(in.config_text, in.config_path));
    if (c.packed_int) return Status::Error(in.config_path + ": already packed (compressed-tensors)");
    DSV3_RETURN_IF_ERROR(CheckComplete(in, c, o.input));
    for (const auto& d : ListTensors(c))
      if (d.role == TensorRole::kLinear) linear.insert(d.name);
  }
  if (o.target == ConvertTarget::kFp8) {
    DSV3_ASSIGN_OR_RETURN(Config c, ParseConfig(in.config_text, in.config_path));
    if (c.quantization) return Status::Error(in.config_path + ": already has a quantization_config (FP8)");
    DSV3_RETURN_IF_ERROR(CheckComplete(in, c, o.input));
    fp8 = Fp8Names(c);
    block = BlockSize();
  }
  std::vector<std::vector<OutTensor>> plans(in.shards.size());
  uint64_t total = 0;
  int64_t count = 0;
  for (size_t i = 0; i < in.shards.size(); ++i) {
    DSV3_RETURN_IF_ERROR(pack                               ? PlanPacked(in, in.shards[i], linear, PackBits(o.target), plans[i], s)
                         : o.target == ConvertTarget::kBf16 ? PlanBf16(in, in.shards[i], o, plans[i], s)
                                                            : PlanFp8(in.shards[i], fp8, plans[i], block, s));
    for (const auto& t : plans[i]) total += t.spec.nbytes(), ++count;
  }
  DSV3_ASSIGN_OR_RETURN(std::string config, EditConfig(in, o));
  DSV3_ASSIGN_OR_RETURN(auto staged, StagedDir::Create(o.output, o.input, o.force));
  const char* what = pack ? (o.target == ConvertTarget::kW8A16 ? "->w8a16" : "->w4a16")
                          : o.target == ConvertTarget::kBf16 ? "fp8->bf16" : "bf16->fp8";
  Progress progress(what, count, total, o.progress);
  ojson weight_map = ojson::object();
  for (size_t i = 0; i < in.shards.size(); ++i) {
    const std::string path = (fs::path(staged->path()) / in.shards[i].file_name).string();
    DSV3_RETURN_IF_ERROR(WriteShard(path, plans[i], block, o, in.shards[i].file->metadata(), progress));
    for (const auto& t : plans[i]) weight_map[t.spec.name] = in.shards[i].file_name;
  }
  progress.Finish();
  if (in.indexed) {
    ojson index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    DSV3_RETURN_IF_ERROR(WriteTextFile((fs::path(staged->path()) / "model.safetensors.index.json").string(),
                                       index.dump(2) + "\n"));
  }
  DSV3_RETURN_IF_ERROR(WriteTextFile((fs::path(staged->path()) / "config.json").string(), config));
  DSV3_ASSIGN_OR_RETURN(s.files_copied, CopyAuxiliaryFiles(o.input, staged->path()));
  DSV3_RETURN_IF_ERROR(staged->Commit());
  s.tensors_in = in.num_tensors;
  s.tensors_out = count;
  s.bytes_in = in.total_bytes;
  s.bytes_out = total;
  return Status::Ok();
}

}  // namespace dsv3
