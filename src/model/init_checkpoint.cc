// Random-weight checkpoint writer; see init_checkpoint.h.
#include "model/init_checkpoint.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/dtype.h"
#include "core/parallel.h"
#include "io/safetensors_writer.h"
#include "model/weights.h"

namespace dsv3 {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t NameKey(uint64_t seed, const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (unsigned char ch : name) h = (h ^ ch) * 0x100000001b3ull;
  return SplitMix64(h ^ SplitMix64(seed));
}

// One tensor of the output, in file order. FP8 weights are followed by their
// `_scale_inv` entry, which is filled while the weight is generated.
struct Entry {
  TensorSpec spec;
  TensorRole role = TensorRole::kLinear;
  bool is_scale = false;
};

struct Plan {
  std::vector<std::vector<Entry>> shards;
  uint64_t total_bytes = 0;
};

Plan MakePlan(const Config& c, const InitOptions& o) {
  const int64_t br = c.quantization ? c.quantization->block_rows : 128;
  const int64_t bc = c.quantization ? c.quantization->block_cols : 128;
  std::vector<std::vector<Entry>> units;  // a weight and its scale stay in one shard
  for (const TensorDesc& t : ListTensors(c)) {
    if (t.optional) continue;  // MTP copies of embed/head: the loader shares the main ones
    Entry e{{t.name, DType::kBF16, t.shape}, t.role, false};
    if (t.role == TensorRole::kRouterBias) e.spec.dtype = DType::kF32;
    const bool fp8 = o.fp8 && t.role == TensorRole::kLinear && t.shape.size() == 2;
    if (fp8) e.spec.dtype = DType::kF8E4M3;
    units.push_back({e});
    if (fp8) {
      const std::vector<int64_t> grid = {(t.shape[0] + br - 1) / br, (t.shape[1] + bc - 1) / bc};
      units.back().push_back({{t.name + "_scale_inv", DType::kF32, grid}, t.role, true});
    }
  }
  Plan plan;
  uint64_t in_shard = 0;
  for (auto& unit : units) {
    uint64_t bytes = 0;
    for (const Entry& e : unit) bytes += e.spec.nbytes();
    if (plan.shards.empty() || (in_shard > 0 && in_shard + bytes > o.max_shard_bytes)) {
      plan.shards.emplace_back();
      in_shard = 0;
    }
    for (Entry& e : unit) plan.shards.back().push_back(std::move(e));
    in_shard += bytes;
    plan.total_bytes += bytes;
  }
  return plan;
}

// Streams one tensor's bytes to the writer, a row block at a time. For FP8
// weights `scales` receives the block-scale grid [ceil(rows/br), ceil(cols/bc)].
class TensorFiller {
 public:
  TensorFiller(const Config& c, const InitOptions& o) : o_(o) {
    br_ = c.quantization ? c.quantization->block_rows : 128;
    bc_ = c.quantization ? c.quantization->block_cols : 128;
  }

  Status Fill(const Entry& e, SafetensorsWriter& w, std::vector<float>& scales, uint64_t& done, uint64_t total) {
    if (e.is_scale) return Report(w.Write(scales.data(), e.spec.nbytes()), e.spec.nbytes(), done, total);
    if (e.spec.shape.size() == 1) return FillVector(e, w, done, total);
    const int64_t rows = e.spec.shape[0], cols = e.spec.shape[1];
    const int64_t block = e.spec.dtype == DType::kF8E4M3 ? br_ : 128;
    const int64_t col_blocks = (cols + bc_ - 1) / bc_;
    if (e.spec.dtype == DType::kF8E4M3) scales.assign(((rows + br_ - 1) / br_) * col_blocks, 1.0f);
    for (int64_t r0 = 0; r0 < rows; r0 += block) {
      const int64_t nr = std::min(block, rows - r0);
      values_.resize(nr * cols);  // values [nr, cols]
      ParallelFor(nr, 1, [&](int64_t a, int64_t b) {
        for (int64_t r = a; r < b; ++r) RandomNormalRow(o_.seed, e.spec.name, r0 + r, o_.std, &values_[r * cols], cols);
      });
      if (e.spec.dtype == DType::kF8E4M3) {
        Quantize(nr, cols, &scales[(r0 / br_) * col_blocks]);
        DSV3_RETURN_IF_ERROR(Report(w.Write(bytes_.data(), nr * cols), nr * cols, done, total));
      } else {
        bf16_.resize(nr * cols);
        for (int64_t i = 0; i < nr * cols; ++i) bf16_[i] = F32ToBf16(values_[i]);
        DSV3_RETURN_IF_ERROR(Report(w.Write(bf16_.data(), nr * cols * 2), nr * cols * 2, done, total));
      }
    }
    return Status::Ok();
  }

 private:
  Status Report(Status s, uint64_t n, uint64_t& done, uint64_t total) {
    done += n;
    if (s.ok() && o_.progress) o_.progress(done, total);
    return s;
  }

  Status FillVector(const Entry& e, SafetensorsWriter& w, uint64_t& done, uint64_t total) {
    const int64_t n = e.spec.shape[0];
    if (e.spec.dtype == DType::kF32) {  // router bias: zeros
      values_.assign(n, 0.0f);
      return Report(w.Write(values_.data(), n * 4), n * 4, done, total);
    }
    bf16_.assign(n, F32ToBf16(1.0f));  // RMSNorm weights: ones
    return Report(w.Write(bf16_.data(), n * 2), n * 2, done, total);
  }

  // values_ [nr, cols] -> bytes_ [nr, cols] e4m3 with scale = amax / 448 per
  // (block of rows, block of cols), as DeepSeek's weight quantizer does.
  void Quantize(int64_t nr, int64_t cols, float* scale_row) {
    bytes_.resize(nr * cols);
    const int64_t col_blocks = (cols + bc_ - 1) / bc_;
    ParallelFor(col_blocks, 1, [&](int64_t a, int64_t b) {
      for (int64_t cb = a; cb < b; ++cb) {
        const int64_t c0 = cb * bc_, c1 = std::min(cols, c0 + bc_);
        float amax = 0.0f;
        for (int64_t r = 0; r < nr; ++r)
          for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(values_[r * cols + c]));
        const float scale = amax > 0.0f ? amax / 448.0f : 1.0f;
        scale_row[cb] = scale;
        for (int64_t r = 0; r < nr; ++r)
          for (int64_t c = c0; c < c1; ++c) bytes_[r * cols + c] = F32ToF8E4M3(values_[r * cols + c] / scale);
      }
    });
  }

  const InitOptions& o_;
  int64_t br_ = 128, bc_ = 128;
  std::vector<float> values_;
  std::vector<uint8_t> bytes_;
  std::vector<uint16_t> bf16_;
};

// config.json text -> the same with quantization_config/torch_dtype matching
// the options; the parsed Config comes back in `config`.
Expected<std::string> MakeConfigText(const std::string& text, const InitOptions& o, Config& config) {
  DSV3_ASSIGN_OR_RETURN(config, ParseConfig(text, "config"));
  json j = json::parse(text, nullptr, false);  // ParseConfig bounded its nesting
  if (o.fp8) {
    json q = {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"activation_scheme", "dynamic"},
              {"weight_block_size", {128, 128}}};
    if (j.contains("quantization_config") && j["quantization_config"].is_object() &&
        j["quantization_config"].contains("weight_block_size"))
      q["weight_block_size"] = j["quantization_config"]["weight_block_size"];
    j["quantization_config"] = q;
  } else {
    j.erase("quantization_config");
  }
  j["torch_dtype"] = "bfloat16";
  const std::string out = j.dump(2) + "\n";
  DSV3_ASSIGN_OR_RETURN(config, ParseConfig(out, "config"));
  return out;
}

Status WriteText(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f || !(f << text) || !f.flush()) return Status::Error(tmp.string() + ": cannot write");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return Status::Error(path.string() + ": cannot rename from " + tmp.string() + ": " + ec.message());
  return Status::Ok();
}

std::string ShardName(size_t i, size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "model-%05zu-of-%05zu.safetensors", i + 1, n);
  return buf;
}

}  // namespace

void RandomNormalRow(uint64_t seed, const std::string& name, int64_t row, double std, float* out, int64_t n) {
  const uint64_t key = SplitMix64(NameKey(seed, name) ^ static_cast<uint64_t>(row) * 0xd1b54a32d192ed03ull);
  const float s = static_cast<float>(std);
  for (int64_t i = 0; i < n; i += 2) {
    const uint64_t bits = SplitMix64(key + static_cast<uint64_t>(i));
    // u1 in (0, 1], u2 in [0, 1) from 24 random bits each.
    const float u1 = (static_cast<float>(bits >> 40) + 1.0f) * (1.0f / 16777216.0f);
    const float u2 = static_cast<float>((bits >> 8) & 0xffffff) * (1.0f / 16777216.0f);
    const float r = std::sqrt(-2.0f * std::log(u1)) * s;
    const float a = 6.2831853f * u2;
    out[i] = r * std::cos(a);
    if (i + 1 < n) out[i + 1] = r * std::sin(a);
  }
}

Status WriteRandomCheckpoint(const std::string& config_json, const std::string& out_dir, const InitOptions& o) {
  if (!(o.std > 0)) return Status::Error("--std must be > 0");
  Config config;
  DSV3_ASSIGN_OR_RETURN(const std::string config_text, MakeConfigText(config_json, o, config));
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return Status::Error(out_dir + ": cannot create directory: " + ec.message());
  const fs::path dir(out_dir);
  DSV3_RETURN_IF_ERROR(WriteText(dir / "config.json", config_text));
  const Plan plan = MakePlan(config, o);
  json weight_map = json::object();
  TensorFiller filler(config, o);
  std::vector<float> scales;
  uint64_t done = 0;
  for (size_t s = 0; s < plan.shards.size(); ++s) {
    const std::string name = ShardName(s, plan.shards.size());
    std::vector<TensorSpec> specs;
    for (const Entry& e : plan.shards[s]) specs.push_back(e.spec);
    DSV3_ASSIGN_OR_RETURN(auto writer, SafetensorsWriter::Create((dir / name).string(), specs, {{"format", "pt"}}));
    for (const Entry& e : plan.shards[s]) {
      DSV3_RETURN_IF_ERROR(filler.Fill(e, *writer, scales, done, plan.total_bytes));
      weight_map[e.spec.name] = name;
    }
    DSV3_RETURN_IF_ERROR(writer->Finish());
  }
  const json index = {{"metadata", {{"total_size", plan.total_bytes}}}, {"weight_map", weight_map}};
  return WriteText(dir / "model.safetensors.index.json", index.dump(2) + "\n");
}

}  // namespace dsv3
