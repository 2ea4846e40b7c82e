// Checkpoint writing and resume; see checkpoint.h.
#include "train/checkpoint.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/json_depth.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"

namespace dsv3::train {

namespace {

const char* kMaster = "master/";
const char* kExpAvg = "exp_avg/";
const char* kExpAvgSq = "exp_avg_sq/";

Status WriteText(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return Status::Error(tmp + ": cannot open for writing");
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !ok) {
    std::remove(tmp.c_str());
    return Status::Error(tmp + ": write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Status::Error(path + ": cannot rename from " + tmp + ": " + ec.message());
  return Status::Ok();
}

Status SaveState(const std::string& path, const TrainParams& params, const AdamW& opt, int64_t step,
                 std::map<std::string, std::string> metadata) {
  std::vector<TensorSpec> specs;
  const auto& ts = params.tensors();
  for (const ParamTensor& p : ts) {
    specs.push_back({kMaster + p.name, DType::kF32, p.shape});
    if (!p.grad) continue;
    specs.push_back({kExpAvg + p.name, DType::kF32, p.shape});
    specs.push_back({kExpAvgSq + p.name, DType::kF32, p.shape});
  }
  metadata["format"] = kStateFormat;
  metadata["step"] = std::to_string(step);
  DSV3_ASSIGN_OR_RETURN(auto w, SafetensorsWriter::Create(path, specs, metadata));
  std::vector<float> m, v;
  for (size_t i = 0; i < ts.size(); ++i) {
    DSV3_RETURN_IF_ERROR(w->Write(ts[i].value, ts[i].numel * sizeof(float)));
    if (!ts[i].grad) continue;
    opt.GetMoments(i, &m, &v);
    DSV3_RETURN_IF_ERROR(w->Write(m.data(), m.size() * sizeof(float)));
    DSV3_RETURN_IF_ERROR(w->Write(v.data(), v.size() * sizeof(float)));
  }
  return w->Finish();
}

Status SaveModel(const std::string& path, const TrainParams& params, DType dtype) {
  std::vector<TensorSpec> specs;
  for (const ParamTensor& p : params.tensors())
    specs.push_back({p.name, p.role == TensorRole::kRouterBias ? DType::kF32 : dtype, p.shape});
  DSV3_ASSIGN_OR_RETURN(auto w, SafetensorsWriter::Create(path, specs, {{"format", "pt"}, {"producer", "dsv3 train"}}));
  std::vector<uint16_t> half;
  for (size_t i = 0; i < specs.size(); ++i) {
    const ParamTensor& p = params.tensors()[i];
    if (specs[i].dtype == DType::kF32) {
      DSV3_RETURN_IF_ERROR(w->Write(p.value, p.numel * sizeof(float)));
    } else {
      half.resize(p.numel);
      for (int64_t j = 0; j < p.numel; ++j) half[j] = F32ToBf16(p.value[j]);
      DSV3_RETURN_IF_ERROR(w->Write(half.data(), half.size() * sizeof(uint16_t)));
    }
  }
  return w->Finish();
}

}  // namespace

Expected<std::string> CheckpointConfigJson(const std::string& config_json, int mtp_depth, DType dtype) {
  DSV3_RETURN_IF_ERROR(CheckJsonDepth(config_json, "model config"));
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(config_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Error("model config is not a JSON object");
  j["num_nextn_predict_layers"] = mtp_depth;
  j.erase("quantization_config");
  j["torch_dtype"] = dtype == DType::kBF16 ? "bfloat16" : "float32";
  return j.dump(2) + "\n";
}

Status SaveCheckpoint(const std::string& dir, const std::string& config_json, const TrainParams& params,
                      const AdamW& optimizer, int64_t step, const SaveOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::Error(dir + ": cannot create directory (" + ec.message() + ")");
  // The resume source first; then the exported model and its config.
  DSV3_RETURN_IF_ERROR(SaveState(dir + "/optimizer.safetensors", params, optimizer, step, options.metadata));
  DSV3_RETURN_IF_ERROR(SaveModel(dir + "/model.safetensors", params, options.model_dtype));
  return WriteText(dir + "/config.json", config_json);
}

Status CopyTokenizerFiles(const std::string& tokenizer_dir, const std::string& dir) {
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
    const std::string src = tokenizer_dir + "/" + name, dst = dir + "/" + name, tmp = dst + ".tmp";
    std::error_code ec;
    if (tokenizer_dir.empty() || !std::filesystem::is_regular_file(src, ec)) continue;
    std::filesystem::copy_file(src, tmp, std::filesystem::copy_options::overwrite_existing, ec);
    if (!ec) std::filesystem::rename(tmp, dst, ec);
    if (ec) return Status::Error(dst + ": cannot copy from " + src + ": " + ec.message());
  }
  return Status::Ok();
}

Expected<int64_t> LoadTrainingState(const std::string& dir, TrainParams& params, AdamW& optimizer,
                                    std::map<std::string, std::string>* metadata) {
  const std::string path = dir + "/optimizer.safetensors";
  if (!std::filesystem::exists(path)) return Status::Error(path + ": not found (nothing to resume from)");
  DSV3_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
  const auto& meta = file->metadata();
  if (!meta.count("format") || meta.at("format") != kStateFormat || !meta.count("step"))
    return Status::Error(path + ": not a dsv3 training state (format " + std::string(kStateFormat) + ")");
  size_t expected = 0;
  auto read = [&](const std::string& name, const ParamTensor& p, const float** out) -> Status {
    const TensorInfo* t = file->Find(name);
    if (!t) return Status::Error(path + ": tensor '" + name + "' is missing: the checkpoint is of another model shape");
    if (t->dtype != DType::kF32 || t->shape != p.shape) {
      TensorInfo want;
      want.shape = p.shape;
      return Status::Error(path + ": tensor '" + name + "' is " + t->ShapeString() + " but the model config implies " +
                           want.ShapeString() + ": the checkpoint is of another model shape");
    }
    *out = reinterpret_cast<const float*>(t->data);
    ++expected;
    return Status::Ok();
  };
  auto& ts = params.tensors();
  for (size_t i = 0; i < ts.size(); ++i) {
    const float *value = nullptr, *m = nullptr, *v = nullptr;
    DSV3_RETURN_IF_ERROR(read(kMaster + ts[i].name, ts[i], &value));
    if (!ts[i].elsewhere) std::memcpy(ts[i].value, value, ts[i].numel * sizeof(float));
    if (!ts[i].grad) continue;
    DSV3_RETURN_IF_ERROR(read(kExpAvg + ts[i].name, ts[i], &m));
    DSV3_RETURN_IF_ERROR(read(kExpAvgSq + ts[i].name, ts[i], &v));
    optimizer.SetMoments(i, m, v);
  }
  if (file->tensors().size() != expected)
    return Status::Error(path + ": holds " + std::to_string(file->tensors().size()) + " tensors but this model has " +
                         std::to_string(expected) + ": the checkpoint is of another model shape");
  if (metadata) *metadata = meta;
  const std::string& step = meta.at("step");
  if (step.empty() || step.size() > 15 || step.find_first_not_of("0123456789") != std::string::npos)
    return Status::Error(path + ": metadata 'step' is not a step number");
  return static_cast<int64_t>(std::stoll(step));
}

}  // namespace dsv3::train
