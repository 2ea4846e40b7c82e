// Training checkpoints. A checkpoint directory is a Hugging Face model
// (config.json + model.safetensors with the release's tensor names, MTP
// layers as model.layers.{L+k}) that `dsv3 run` and `dsv3 logits` load, plus
// optimizer.safetensors: everything a resume needs (float32 master weights,
// router biases, AdamW moments, the step). Resuming reads only
// optimizer.safetensors, and every file is written under a temporary name
// and renamed, so an interrupted save leaves the previous checkpoint's files
// intact and a resume never mixes two steps.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/dtype.h"
#include "core/status.h"
#include "train/optimizer.h"
#include "train/params.h"

namespace dsv3::train {

inline constexpr const char* kStateFormat = "dsv3-train-state-v1";

// The config.json text a checkpoint of `config_json` (the model config the
// run was given) carries: num_nextn_predict_layers = mtp_depth, no
// quantization_config, torch_dtype naming the saved dtype.
Expected<std::string> CheckpointConfigJson(const std::string& config_json, int mtp_depth, DType dtype);

struct SaveOptions {
  DType model_dtype = DType::kF32;  // F32 or BF16 for model.safetensors (router biases stay F32)
  std::map<std::string, std::string> metadata;  // extra entries for optimizer.safetensors
};

Status SaveCheckpoint(const std::string& dir, const std::string& config_json, const TrainParams& params,
                      const AdamW& optimizer, int64_t step, const SaveOptions& options);

// Copies DIR/tokenizer.json and DIR/tokenizer_config.json (those present)
// into the checkpoint, so it is a complete model directory (`dsv3 run
// --prompt TEXT` needs them). Temp name + rename like every checkpoint file.
Status CopyTokenizerFiles(const std::string& tokenizer_dir, const std::string& dir);

// Restores master weights, biases and moments from DIR/optimizer.safetensors
// and returns the step it was saved at. Every tensor of `params` must be
// there with the same shape and the file must hold no others (a checkpoint
// of another model shape is rejected, naming the first differing tensor).
Expected<int64_t> LoadTrainingState(const std::string& dir, TrainParams& params, AdamW& optimizer,
                                    std::map<std::string, std::string>* metadata = nullptr);

}  // namespace dsv3::train
