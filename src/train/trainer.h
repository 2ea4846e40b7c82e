// A training run end to end: load the model config and token data, build
// (or resume) parameters and optimizer, then for each step draw the step's
// windows, run forward + backward over grad_accum micro-batches (in parallel
// on the worker threads when there are several), clip, apply
// AdamW, update the aux-loss-free router biases from the step's expert
// loads, log progress, evaluate and save checkpoints. A non-finite loss or
// gradient stops the run with an error naming the step, before anything is
// saved, so the last checkpoint on disk stays the last good one.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "dist/comm.h"
#include "train/data.h"
#include "train/data_parallel.h"
#include "train/expert_parallel.h"
#include "train/optimizer.h"
#include "train/options.h"
#include "train/train_model.h"

namespace dsv3::train {

struct EvalResult {
  double loss = 0.0;             // mean next-token CE over the validation windows
  std::vector<double> mtp;       // [D] mean CE per MTP depth
  double acc = 0.0;              // top-1 accuracy of the next token
  std::vector<double> mtp_acc;   // [D] top-1 accuracy of MTP depth k (token i+k+1)
  std::vector<double> max_vio;   // per layer (main then MTP): max load / mean load - 1; -1 for dense layers
  double worst_max_vio = 0.0;    // the largest over MoE layers (0 without MoE)
  std::vector<double> min_load;  // per layer: min load / mean load (0: a starved expert); -1 for dense layers
};

struct TrainResult {
  int64_t step = 0;
  double train_loss = 0.0;  // mean next-token CE over the last logging interval
  EvalResult val;
  double tokens_per_second = 0.0, gflops_per_second = 0.0;  // training steps only
};

class Trainer {
 public:
  // Validates everything (options, config, data, --out, resume state) before
  // any work; errors name the flag, file or tensor. With a `comm` of several
  // ranks the run is data-parallel (data_parallel.h): every rank calls
  // Create and Run alike, each runs grad_accum / ranks micro-batches of every
  // step, and only rank 0 logs and writes; errors are the same on every rank.
  static Expected<std::unique_ptr<Trainer>> Create(const TrainOptions& options, std::FILE* log,
                                                   dist::Comm* comm = nullptr);
  ~Trainer();

  Expected<TrainResult> Run();
  // Called at the start of every step with the step number (1-based) and
  // the step of the last checkpoint on disk (-1: none yet).
  void set_progress(std::function<void(int64_t step, int64_t saved_step)> fn) { progress_ = std::move(fn); }
  EvalResult Evaluate();

  TrainParams& params() { return *params_; }
  TrainModel& model() { return *models_[0]; }
  int workers() const { return static_cast<int>(models_.size()); }
  const Config& config() const { return config_; }
  int64_t start_step() const { return start_step_; }

 private:
  Trainer() = default;
  Status Setup();
  Status PrepareOut();
  Status OpenJsonl(const std::string& path);
  Status TrainStep(int64_t step, Losses* losses, double* grad_norm, double* lr);
  // The data-parallel twins (trainer_dp.cc).
  Status SetupRanks();
  Status TrainStepRanks(int64_t step, Losses* losses, double* grad_norm, double* lr);
  void RunMicroBatchesRanks(int64_t step, std::vector<double>* rows);
  EvalResult EvaluateRanks();
  void PrintCommSummary() const;
  void PrintRankMemory();
  static void LoadStats(const std::vector<std::vector<double>>& loads, EvalResult* r);
  void AddMicroBatch(const TrainModel& model, const Losses& l, Losses* sum);
  double Flops() const;
  void UpdateBiases();
  Status Save(int64_t step);
  void LogStep(int64_t step, const Losses& l, double grad_norm, double lr);
  void LogEval(int64_t step, const EvalResult& e);
  Status NonFinite(int64_t step, const std::string& what) const;

  TrainOptions o_;
  std::FILE* log_ = nullptr;
  std::FILE* null_log_ = nullptr;  // ranks other than 0 log here
  std::unique_ptr<dist::Comm> own_comm_;  // a one-rank group when none was given
  dist::Comm* comm_ = nullptr;
  std::unique_ptr<DataParallel> dp_;       // several ranks only
  std::unique_ptr<ExpertParallel> ep_;     // several ranks with --parallel expert
  std::vector<int> local_slots_;           // several ranks: gradient set of each local micro-batch
  CommStats step_comm_, total_comm_;       // this step's / all steps' communication
  int64_t comm_steps_ = 0;                 // steps in total_comm_
  Precision precision_ = Precision::kFp32;
  BalanceOptions balance_;
  OptimizerOptions opt_options_;
  std::string config_json_;  // the checkpoint's config.json text
  Config config_;
  std::unique_ptr<TokenData> data_;
  std::unique_ptr<TrainParams> params_;
  // One model (activations) per worker thread. With grad_accum > 1,
  // micro-batches run concurrently, each into its worker's gradient slot,
  // and are added into slot 0 in micro-batch order: the result is the same
  // for any thread count.
  std::vector<std::unique_ptr<TrainModel>> models_;
  std::vector<int> slots_;  // gradient slot of each worker
  std::unique_ptr<AdamW> optimizer_;
  int64_t start_step_ = 0, saved_step_ = -1;
  std::vector<std::vector<int32_t>> tokens_;   // per worker [B, window]
  std::vector<Losses> micro_losses_;           // per worker, this round
  std::vector<std::vector<int64_t>> loads_;    // [layers][E] this step's expert loads
  // Progress accounting.
  double train_seconds_ = 0.0, train_flops_ = 0.0;
  int64_t train_tokens_ = 0, interval_steps_ = 0;
  double interval_loss_ = 0.0, interval_mtp_ = 0.0, interval_balance_ = 0.0, last_interval_loss_ = 0.0;
  std::FILE* jsonl_ = nullptr;
  std::function<void(int64_t, int64_t)> progress_;
};

}  // namespace dsv3::train
