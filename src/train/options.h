// The options of a training run, one flat struct. Each field is listed once
// in TrainOptionFields() with its JSON key (the flag is the same name with
// dashes: lr_schedule <-> --lr-schedule) and help text, so `dsv3 train`
// flags and a --config train.json file set the same things the same way;
// flags given on the command line override the file.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "core/status.h"

namespace dsv3::train {

struct TrainOptions {
  // What to train on and where to write it.
  std::string model_config, data, out;
  int64_t steps = 0;
  int64_t stop_at = 0;  // > 0: save and stop after this step (train in sessions); the schedule follows `steps`
  bool resume = false;
  // Start from a trained checkpoint instead of random values, and train only
  // part of it: "mtp" freezes everything but the MTP layers' own weights.
  std::string init_from;
  std::string trainable = "all";    // all | mtp
  std::string mtp_targets = "data"; // data | main | main-probs (the main model's argmax / distribution: self-distillation)
  // The recipe's switches.
  std::string precision = "fp32";   // fp32 | bf16 | fp8
  std::string balance = "aux-free"; // aux-free | aux-loss | none
  int64_t mtp_depth = -1;           // -1: the config's num_nextn_predict_layers
  int64_t seed = 1;
  // Batch: batch_size sequences of seq_len positions per micro-batch.
  int64_t batch_size = 8, seq_len = 128, grad_accum = 1;
  std::string parallel = "data";    // data | expert (several ranks)
  // AdamW and the schedule.
  double lr = 3e-3, min_lr_ratio = 0.1;
  int64_t warmup_steps = 100;
  std::string lr_schedule = "cosine";  // cosine | step
  double beta1 = 0.9, beta2 = 0.95, adam_eps = 1e-8, weight_decay = 0.1, clip_norm = 1.0;
  bool bf16_moments = false;
  // Loss weights and balancing.
  double mtp_lambda = 0.3, balance_alpha = 1e-4, aux_loss_alpha = 1e-2, bias_update_rate = 1e-2;
  double init_std = 0.006;
  // Logging, evaluation and checkpoints.
  int64_t log_every = 10, eval_every = 0, eval_windows = 64, save_every = 0;
  std::string save_dtype = "f32";  // f32 | bf16 (model.safetensors only)
};

struct OptionField {
  const char* name;  // JSON key
  const char* help;
  std::variant<std::string TrainOptions::*, int64_t TrainOptions::*, double TrainOptions::*, bool TrainOptions::*>
      member;
};

const std::vector<OptionField>& TrainOptionFields();
// "lr_schedule" -> "--lr-schedule"
std::string FlagName(const OptionField& f);

// Sets a field from command-line text; the error names the flag.
Status SetOptionFromText(TrainOptions& o, const OptionField& f, const std::string& text);
// Applies every key of a JSON object file; unknown keys and wrong types are
// errors naming the key and the file.
Status ApplyTrainJson(const std::string& path, TrainOptions& o);
// Range and enum checks, naming the flag.
Status ValidateTrainOptions(const TrainOptions& o);
// The options as a JSON object text (recorded in checkpoints).
std::string TrainOptionsJson(const TrainOptions& o);

}  // namespace dsv3::train
