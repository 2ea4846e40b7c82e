// Training options: the field table, JSON and flag parsing, validation.
#include "train/options.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "core/json_depth.h"
#include "core/mapped_file.h"
#include "train/ffn.h"
#include "train/optimizer.h"
#include "train/quant.h"

namespace dsv3::train {

using nlohmann::json;
using O = TrainOptions;

const std::vector<OptionField>& TrainOptionFields() {
  static const std::vector<OptionField> fields = {
      {"model_config", "model config.json (or a directory holding one)", &O::model_config},
      {"data", "data directory from dsv3 prepare-data", &O::data},
      {"out", "checkpoint directory to write (and resume from)", &O::out},
      {"steps", "optimizer steps to train to (in total, counting resumed ones)", &O::steps},
      {"stop_at", "save and stop after this step (to train in sessions; the schedule still spans --steps)",
       &O::stop_at},
      {"resume", "continue the checkpoint in --out", &O::resume},
      {"init_from", "start from this checkpoint directory's weights instead of random ones", &O::init_from},
      {"trainable", "all, or mtp: train only the MTP layers' own weights (the main model, embedding and head "
                    "stay bit for bit as loaded)", &O::trainable},
      {"mtp_targets", "what MTP depth k learns at position i: data (token i+k+1), main (the main model's greedy "
                      "prediction of it, what greedy speculative decoding must match) or main-probs (the main model's "
                      "whole distribution for it, which sampled drafts must match)", &O::mtp_targets},
      {"precision", "GEMM numerics: fp32, bf16 or fp8 (e4m3, 1x128 / 128x128 scaling)", &O::precision},
      {"balance", "expert balancing: aux-free (bias), aux-loss (classic loss) or none", &O::balance},
      {"mtp_depth", "MTP depth D (-1: the config's num_nextn_predict_layers)", &O::mtp_depth},
      {"seed", "seed of initialisation and data order", &O::seed},
      {"batch_size", "sequences per micro-batch", &O::batch_size},
      {"seq_len", "positions per sequence", &O::seq_len},
      {"grad_accum", "micro-batches per optimizer step", &O::grad_accum},
      {"parallel", "under mpirun: data (every rank holds the whole model) or expert (the routed experts are split "
                   "over the ranks, tokens travel to them; one micro-batch per rank)", &O::parallel},
      {"lr", "peak learning rate", &O::lr},
      {"min_lr_ratio", "cosine floor as a fraction of --lr", &O::min_lr_ratio},
      {"warmup_steps", "linear warm-up steps", &O::warmup_steps},
      {"lr_schedule", "cosine or step (x0.316 at 80%, x0.1 at 90% of the run)", &O::lr_schedule},
      {"beta1", "AdamW beta1", &O::beta1},
      {"beta2", "AdamW beta2", &O::beta2},
      {"adam_eps", "AdamW epsilon", &O::adam_eps},
      {"weight_decay", "AdamW weight decay (not on norms or biases)", &O::weight_decay},
      {"clip_norm", "clip gradients to this global norm (0: off)", &O::clip_norm},
      {"bf16_moments", "store AdamW moments in BF16", &O::bf16_moments},
      {"mtp_lambda", "MTP loss weight lambda (loss += lambda/D * sum of MTP losses)", &O::mtp_lambda},
      {"balance_alpha", "sequence-wise balance loss weight alpha (aux-free mode)", &O::balance_alpha},
      {"aux_loss_alpha", "load-balance loss weight (aux-loss mode)", &O::aux_loss_alpha},
      {"bias_update_rate", "aux-free bias update speed gamma (the paper: 0.001 over 14.8T tokens; short runs need ~0.01)",
       &O::bias_update_rate},
      {"init_std", "std of the normal initialisation", &O::init_std},
      {"log_every", "print a progress line every N steps", &O::log_every},
      {"eval_every", "evaluate on the validation split every N steps (0: at the end only)", &O::eval_every},
      {"eval_windows", "validation windows per evaluation", &O::eval_windows},
      {"save_every", "save a checkpoint every N steps (0: at the end only)", &O::save_every},
      {"save_dtype", "dtype of model.safetensors: f32 or bf16", &O::save_dtype},
  };
  return fields;
}

std::string FlagName(const OptionField& f) {
  std::string s = std::string("--") + f.name;
  for (char& c : s)
    if (c == '_') c = '-';
  return s;
}

Status SetOptionFromText(TrainOptions& o, const OptionField& f, const std::string& text) {
  const std::string flag = FlagName(f);
  if (auto* s = std::get_if<std::string O::*>(&f.member)) {
    o.*(*s) = text;
  } else if (auto* i = std::get_if<int64_t O::*>(&f.member)) {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end || errno) return Status::Error(flag + ": '" + text + "' is not an integer");
    o.*(*i) = v;
  } else if (auto* d = std::get_if<double O::*>(&f.member)) {
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || *end || errno || !std::isfinite(v)) return Status::Error(flag + ": '" + text + "' is not a number");
    o.*(*d) = v;
  } else if (auto* b = std::get_if<bool O::*>(&f.member)) {
    if (text == "true" || text == "1") o.*(*b) = true;
    else if (text == "false" || text == "0") o.*(*b) = false;
    else return Status::Error(flag + ": '" + text + "' is not true or false");
  }
  return Status::Ok();
}

Status ApplyTrainJson(const std::string& path, TrainOptions& o) {
  DSV3_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
  DSV3_RETURN_IF_ERROR(CheckJsonDepth(text, path));
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Error(path + ": not a JSON object");
  for (const auto& [key, value] : j.items()) {
    const OptionField* f = nullptr;
    for (const OptionField& c : TrainOptionFields())
      if (key == c.name) f = &c;
    if (!f) return Status::Error(path + ": unknown training option '" + key + "'");
    const std::string where = path + ": field '" + key + "'";
    if (auto* s = std::get_if<std::string O::*>(&f->member)) {
      if (!value.is_string()) return Status::Error(where + " must be a string");
      o.*(*s) = value.get<std::string>();
    } else if (auto* i = std::get_if<int64_t O::*>(&f->member)) {
      if (!value.is_number_integer()) return Status::Error(where + " must be an integer");
      o.*(*i) = value.get<int64_t>();
    } else if (auto* d = std::get_if<double O::*>(&f->member)) {
      if (!value.is_number()) return Status::Error(where + " must be a number");
      o.*(*d) = value.get<double>();
    } else if (auto* b = std::get_if<bool O::*>(&f->member)) {
      if (!value.is_boolean()) return Status::Error(where + " must be true or false");
      o.*(*b) = value.get<bool>();
    }
  }
  return Status::Ok();
}

Status ValidateTrainOptions(const TrainOptions& o) {
  if (o.model_config.empty()) return Status::Error("--model-config is required");
  if (o.data.empty()) return Status::Error("--data is required");
  if (o.out.empty()) return Status::Error("--out is required");
  if (o.steps <= 0) return Status::Error("--steps must be > 0");
  Precision p;
  if (!ParsePrecision(o.precision, &p)) return Status::Error("--precision must be fp32, bf16 or fp8 (got '" + o.precision + "')");
  Balance b;
  if (!ParseBalance(o.balance, &b)) return Status::Error("--balance must be aux-free, aux-loss or none (got '" + o.balance + "')");
  Schedule s;
  if (!ParseSchedule(o.lr_schedule, &s)) return Status::Error("--lr-schedule must be cosine or step (got '" + o.lr_schedule + "')");
  if (o.save_dtype != "f32" && o.save_dtype != "bf16") return Status::Error("--save-dtype must be f32 or bf16");
  if (o.trainable != "all" && o.trainable != "mtp")
    return Status::Error("--trainable must be all or mtp (got '" + o.trainable + "')");
  if (o.mtp_targets != "data" && o.mtp_targets != "main" && o.mtp_targets != "main-probs")
    return Status::Error("--mtp-targets must be data, main or main-probs (got '" + o.mtp_targets + "')");
  if (o.trainable == "mtp" && o.init_from.empty() && !o.resume)
    return Status::Error("--trainable mtp needs a trained model to keep: pass --init-from DIR (or --resume)");
  if (o.parallel != "data" && o.parallel != "expert")
    return Status::Error("--parallel must be data or expert (got '" + o.parallel + "')");
  if (o.parallel == "expert" && o.trainable != "all")
    return Status::Error("--parallel expert trains the whole model: --trainable mtp runs data-parallel only");
  if (o.mtp_depth == 0 && (o.trainable == "mtp" || o.mtp_targets != "data"))
    return Status::Error("--trainable mtp / --mtp-targets main need MTP layers, but --mtp-depth is 0");
  struct Check { const char* flag; bool ok; };
  const Check checks[] = {
      {"--stop-at must be >= 0", o.stop_at >= 0},
      {"--mtp-depth must be >= -1", o.mtp_depth >= -1},
      {"--batch-size must be > 0", o.batch_size > 0},
      {"--seq-len must be > 0", o.seq_len > 0},
      {"--grad-accum must be > 0", o.grad_accum > 0},
      {"--lr must be > 0", o.lr > 0},
      {"--min-lr-ratio must be in [0, 1]", o.min_lr_ratio >= 0 && o.min_lr_ratio <= 1},
      {"--warmup-steps must be >= 0", o.warmup_steps >= 0},
      {"--beta1 must be in [0, 1)", o.beta1 >= 0 && o.beta1 < 1},
      {"--beta2 must be in [0, 1)", o.beta2 >= 0 && o.beta2 < 1},
      {"--adam-eps must be > 0", o.adam_eps > 0},
      {"--weight-decay must be >= 0", o.weight_decay >= 0},
      {"--clip-norm must be >= 0", o.clip_norm >= 0},
      {"--mtp-lambda must be >= 0", o.mtp_lambda >= 0},
      {"--balance-alpha must be >= 0", o.balance_alpha >= 0},
      {"--aux-loss-alpha must be >= 0", o.aux_loss_alpha >= 0},
      {"--bias-update-rate must be >= 0", o.bias_update_rate >= 0},
      {"--init-std must be > 0", o.init_std > 0},
      {"--log-every must be > 0", o.log_every > 0},
      {"--eval-every must be >= 0", o.eval_every >= 0},
      {"--eval-windows must be > 0", o.eval_windows > 0},
      {"--save-every must be >= 0", o.save_every >= 0},
  };
  for (const Check& c : checks)
    if (!c.ok) return Status::Error(c.flag);
  return Status::Ok();
}

std::string TrainOptionsJson(const TrainOptions& o) {
  json j = json::object();
  for (const OptionField& f : TrainOptionFields())
    std::visit([&](auto member) { j[f.name] = o.*member; }, f.member);
  return j.dump();
}

}  // namespace dsv3::train
