// The training loop; see trainer.h.
#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/json_depth.h"
#include "core/json_fields.h"
#include "core/mapped_file.h"
#include "core/parallel.h"
#include "train/checkpoint.h"

namespace dsv3::train {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string FormatDuration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof(buf), "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
  else std::snprintf(buf, sizeof(buf), "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
  return buf;
}

Expected<std::string> ReadModelConfig(const std::string& path) {
  const std::string file = fs::is_directory(path) ? path + "/config.json" : path;
  return ReadTextFile(file);
}

// Keeps the lines of a JSONL log whose "step" is <= `step` (for resume);
// returns the training loss logged at that step (NaN if none).
double TruncateLog(const std::string& path, int64_t step) {
  std::ifstream in(path);
  std::string line, kept;
  double loss = NAN;
  while (std::getline(in, line)) {
    if (!CheckJsonDepth(line, path).ok()) continue;  // not a line this trainer wrote
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || IntField(j, "step", 0) > step) continue;
    kept += line + "\n";
    if (IntField(j, "step", 0) == step && j.contains("loss") && j["loss"].is_number()) loss = j["loss"].get<double>();
  }
  in.close();
  std::ofstream(path, std::ios::trunc) << kept;
  return loss;
}

}  // namespace

Expected<std::unique_ptr<Trainer>> Trainer::Create(const TrainOptions& options, std::FILE* log, dist::Comm* comm) {
  std::unique_ptr<Trainer> t(new Trainer());
  t->comm_ = comm;
  if (!comm) t->own_comm_ = dist::Comm::Single(), t->comm_ = t->own_comm_.get();
  t->o_ = options;
  t->log_ = log;
  if (t->comm_->rank() > 0) {  // only rank 0 logs
    t->null_log_ = std::fopen("/dev/null", "w");
    if (t->null_log_) t->log_ = t->null_log_;
  }
  // Setup runs no collective, so a rank that fails early cannot leave the
  // others waiting; then every rank learns the first failure.
  Status st = ValidateTrainOptions(options);
  if (st.ok()) st = t->Setup();
  DSV3_RETURN_IF_ERROR(t->comm_->Agree(st));
  if (t->comm_->distributed()) DSV3_RETURN_IF_ERROR(t->SetupRanks());
  return t;
}

Status Trainer::Setup() {
  ParsePrecision(o_.precision, &precision_);
  ParseBalance(o_.balance, &balance_.mode);
  balance_.seq_alpha = o_.balance_alpha, balance_.aux_alpha = o_.aux_loss_alpha;
  opt_options_.lr = o_.lr, opt_options_.min_lr_ratio = o_.min_lr_ratio, opt_options_.warmup_steps = o_.warmup_steps;
  ParseSchedule(o_.lr_schedule, &opt_options_.schedule);
  opt_options_.beta1 = o_.beta1, opt_options_.beta2 = o_.beta2, opt_options_.eps = o_.adam_eps;
  opt_options_.weight_decay = o_.weight_decay, opt_options_.clip_norm = o_.clip_norm;
  opt_options_.bf16_moments = o_.bf16_moments;
  // The config as given, then as the checkpoint will record it (MTP depth set).
  DSV3_ASSIGN_OR_RETURN(std::string text, ReadModelConfig(o_.model_config));
  DSV3_ASSIGN_OR_RETURN(Config given, ParseConfig(text, o_.model_config));
  const int depth = static_cast<int>(o_.mtp_depth >= 0 ? o_.mtp_depth : given.num_nextn_predict_layers);
  DSV3_ASSIGN_OR_RETURN(config_json_, CheckpointConfigJson(text, depth, o_.save_dtype == "bf16" ? DType::kBF16 : DType::kF32));
  DSV3_ASSIGN_OR_RETURN(config_, ParseConfig(config_json_, o_.model_config));
  if (config_.HasMoe() && balance_.mode == Balance::kAuxFree && config_.topk_method != TopkMethod::kNoauxTc)
    return Status::Error("--balance aux-free needs the router bias: set \"topk_method\": \"noaux_tc\" in " +
                         o_.model_config + " (or use --balance aux-loss / none)");
  if (config_.HasMoe() && config_.num_experts_per_tok > 64)
    return Status::Error(o_.model_config + ": num_experts_per_tok above 64 is not supported by the trainer");
  DSV3_ASSIGN_OR_RETURN(data_, TokenData::Open(o_.data, config_.vocab_size));
  params_ = std::make_unique<TrainParams>(config_);
  ModelOptions mo;
  mo.batch = o_.batch_size, mo.seq = o_.seq_len, mo.precision = precision_, mo.balance = balance_;
  mo.mtp_lambda = o_.mtp_lambda;
  mo.train_main = o_.trainable == "all";
  mo.mtp_targets = o_.mtp_targets == "main"       ? MtpTargets::kMainArgmax
                   : o_.mtp_targets == "main-probs" ? MtpTargets::kMainProbs
                                                     : MtpTargets::kData;
  if (!mo.train_main) params_->FreezeAllButMtp();
  if (o_.seq_len > config_.max_position_embeddings)
    return Status::Error("--seq-len " + std::to_string(o_.seq_len) + " exceeds the model's max_position_embeddings " +
                         std::to_string(config_.max_position_embeddings));
  DSV3_RETURN_IF_ERROR(data_->CheckWindow(o_.seq_len + depth + 1));
  // Several ranks: each runs `local` consecutive micro-batches of a step,
  // keeps their gradients apart (local_slots_) and owns a part of the
  // optimizer state (ZeRO-1, data_parallel.h).
  const int ranks = comm_->size();
  if (o_.grad_accum % ranks != 0)
    return Status::Error("--grad-accum " + std::to_string(o_.grad_accum) + " is not a multiple of the " +
                         std::to_string(ranks) + " ranks: each rank runs grad_accum / ranks micro-batches of the "
                         "global batch (--grad-accum " + std::to_string(ranks) + " matches one process with --grad-accum " +
                         std::to_string(ranks) + ")");
  const int64_t local = o_.grad_accum / ranks;
  if (ranks > 1 && o_.parallel == "expert") {
    if (!config_.HasMoe())
      return Status::Error("--parallel expert: " + o_.model_config + " has no MoE layer (no routed experts to "
                           "split over the ranks); use --parallel data");
    if (local != 1)
      return Status::Error("--parallel expert runs one micro-batch per rank: --grad-accum must equal the number "
                           "of ranks (" + std::to_string(ranks) + "), got " + std::to_string(o_.grad_accum));
    auto placement = dist::ContiguousPlacement(config_.n_routed_experts, ranks);
    if (!placement.ok()) return Status::Error("--parallel expert: " + placement.status().message());
    ep_ = std::make_unique<ExpertParallel>(*comm_, *placement, config_.hidden_size, config_.moe_intermediate_size);
    // Other ranks' experts are never initialised, loaded or zeroed here, so
    // their pages never become resident.
    const std::vector<int32_t> expert = params_->RoutedExpertOfTensors();
    std::vector<uint8_t> elsewhere(expert.size(), 0);
    for (size_t i = 0; i < expert.size(); ++i) elsewhere[i] = expert[i] >= 0 && !ep_->Owns(expert[i]);
    params_->SetElsewhere(elsewhere);
  }
  if (ranks > 1) dp_ = std::make_unique<DataParallel>(*comm_, *params_, ep_ ? &ep_->placement() : nullptr);
  optimizer_ = std::make_unique<AdamW>(*params_, opt_options_,
                                       dp_ ? dp_->moment_ranges(comm_->rank()) : MomentRanges{});
  DSV3_RETURN_IF_ERROR(PrepareOut());
  for (int64_t j = 0; ranks > 1 && j < local; ++j) local_slots_.push_back(local > 1 ? params_->AddGradSlot() : 0);
  // Micro-batches run in parallel (one model + gradient slot per worker)
  // when there are several threads and several micro-batches; otherwise one
  // model uses every thread inside each op.
  const int workers = local > 1 ? static_cast<int>(std::min<int64_t>(NumThreads(), local)) : 1;
  for (int w = 0; w < workers; ++w) {
    slots_.push_back(ranks == 1 && o_.grad_accum > 1 ? params_->AddGradSlot() : 0);
    models_.push_back(std::make_unique<TrainModel>(*params_, mo, slots_.back()));
    models_.back()->set_expert_parallel(ep_.get());
    tokens_.emplace_back(o_.batch_size * models_.back()->window());
  }
  micro_losses_.resize(workers);
  loads_.resize(config_.num_layers_with_mtp());
  return Status::Ok();
}

// A fresh run refuses to overwrite a checkpoint; a resume restores it.
Status Trainer::PrepareOut() {
  const std::string state = o_.out + "/optimizer.safetensors", log = o_.out + "/train_log.jsonl";
  if (!o_.resume) {
    if (fs::exists(state))
      return Status::Error(o_.out + ": already holds a training checkpoint; pass --resume to continue it or choose "
                           "another --out");
    params_->InitNormal(static_cast<uint64_t>(o_.seed), static_cast<float>(o_.init_std));
    if (!o_.init_from.empty()) {
      int64_t missing = 0;
      Status s = params_->LoadCheckpoint(o_.init_from, /*mtp_optional=*/true, &missing);
      if (!s.ok()) return Status::Error("--init-from: " + s.message());
      if (missing > 0)
        std::fprintf(log_, "init: %s has no MTP layer; its %lld tensors start from random values\n",
                     o_.init_from.c_str(), (long long)missing);
    }
    if (comm_->rank() > 0) return OpenJsonl(log);  // rank 0 creates and writes --out
    std::error_code ec;
    fs::create_directories(o_.out, ec);
    if (ec) return Status::Error(o_.out + ": cannot create directory (" + ec.message() + ")");
    std::ofstream(log, std::ios::trunc);
  } else {
    const std::string saved = o_.out + "/config.json";
    DSV3_ASSIGN_OR_RETURN(std::string text, ReadTextFile(saved));
    DSV3_RETURN_IF_ERROR(CheckJsonDepth(text, saved));
    json a = json::parse(text, nullptr, false), b = json::parse(config_json_, nullptr, false);
    if (a.is_discarded() || !a.is_object()) return Status::Error(saved + ": not a JSON object");
    a.erase("torch_dtype"), b.erase("torch_dtype");
    for (const auto& [key, value] : b.items())
      if (!a.contains(key) || a[key] != value)
        return Status::Error("--resume: " + saved + " has " + (a.contains(key) ? a[key].dump() : "no value") +
                             " for '" + key + "' but the model config gives " + value.dump() +
                             " (a checkpoint of another model)");
    DSV3_ASSIGN_OR_RETURN(start_step_, LoadTrainingState(o_.out, *params_, *optimizer_));
    saved_step_ = start_step_;
    if (start_step_ > o_.steps)
      return Status::Error("--steps " + std::to_string(o_.steps) + " is below the checkpoint's step " +
                           std::to_string(start_step_));
    if (comm_->rank() > 0) return OpenJsonl(log);
    last_interval_loss_ = TruncateLog(log, start_step_);
  }
  return OpenJsonl(log);
}

// Rank 0 appends to the run's log; the other ranks write nowhere.
Status Trainer::OpenJsonl(const std::string& path) {
  jsonl_ = std::fopen(comm_->rank() > 0 ? "/dev/null" : path.c_str(), "a");
  if (!jsonl_) return Status::Error(path + ": cannot open for writing");
  return Status::Ok();
}

Status Trainer::NonFinite(int64_t step, const std::string& what) const {
  const std::string kept = saved_step_ >= 0 ? "the last good checkpoint (step " + std::to_string(saved_step_) +
                                                   ") is kept in " + o_.out
                                             : "no checkpoint had been saved yet";
  return Status::Error("step " + std::to_string(step + 1) + ": " + what + " is not finite; stopping (" + kept + ")");
}

void Trainer::AddMicroBatch(const TrainModel& model, const Losses& l, Losses* sum) {
  const double scale = 1.0 / static_cast<double>(o_.grad_accum);
  sum->main += l.main * scale, sum->balance += l.balance * scale, sum->total += l.total * scale;
  for (size_t k = 0; k < l.mtp.size(); ++k) sum->mtp[k] += l.mtp[k] * scale;
  const auto loads = model.Loads();
  for (size_t layer = 0; layer < loads.size(); ++layer) {
    if (!loads[layer]) continue;
    loads_[layer].resize(loads[layer]->size(), 0);
    for (size_t e = 0; e < loads[layer]->size(); ++e) loads_[layer][e] += (*loads[layer])[e];
  }
}

double Trainer::Flops() const {  // every rank's (they run the same shapes)
  double f = 0.0;
  for (const auto& m : models_) f += m->flops();
  return f * comm_->size();
}

Status Trainer::TrainStep(int64_t step, Losses* sum, double* grad_norm, double* lr) {
  const int64_t B = o_.batch_size, W = models_[0]->window(), workers = static_cast<int64_t>(models_.size());
  params_->ZeroGrads(0);
  *sum = Losses();
  sum->mtp.assign(models_[0]->depth(), 0.0);
  for (auto& l : loads_) std::fill(l.begin(), l.end(), 0);
  const float scale = 1.0f / static_cast<float>(o_.grad_accum);
  for (int64_t first = 0; first < o_.grad_accum; first += workers) {
    const int64_t count = std::min(workers, o_.grad_accum - first);
    // Each worker: its micro-batch's windows, forward + backward into its slot.
    ParallelFor(count, 1, [&](int64_t w0, int64_t w1) {
      for (int64_t w = w0; w < w1; ++w) {
        int32_t* tokens = tokens_[w].data();
        for (int64_t r = 0; r < B; ++r) data_->TrainWindow(o_.seed, step, first + w, r, W, tokens + r * W);
        if (slots_[w] != 0) params_->ZeroGrads(slots_[w]);
        micro_losses_[w] = models_[w]->Step(tokens, true, scale);
      }
    });
    for (int64_t w = 0; w < count; ++w) {  // in micro-batch order
      if (!std::isfinite(micro_losses_[w].total)) return NonFinite(step, "the loss");
      if (slots_[w] != 0) params_->AddGrads(slots_[w], 0);
      AddMicroBatch(*models_[w], micro_losses_[w], sum);
    }
  }
  *grad_norm = optimizer_->GradNorm();
  if (!std::isfinite(*grad_norm)) return NonFinite(step, "the gradient norm");
  *lr = LearningRate(opt_options_, step, o_.steps);
  optimizer_->Update(step + 1, *lr, *grad_norm);
  if (balance_.mode == Balance::kAuxFree) UpdateBiases();
  return Status::Ok();
}

// b_e += gamma * sign(mean load - load_e) for every MoE layer (DESIGN.md §4).
void Trainer::UpdateBiases() {
  const float gamma = static_cast<float>(o_.bias_update_rate);
  for (size_t l = 0; l < loads_.size(); ++l) {
    float* bias = params_->RouterBias(static_cast<int64_t>(l));
    if (!bias || loads_[l].empty()) continue;
    if (params_->LayerFrozen(static_cast<int64_t>(l))) continue;
    double mean = 0.0;
    for (int64_t x : loads_[l]) mean += static_cast<double>(x);
    mean /= static_cast<double>(loads_[l].size());
    for (size_t e = 0; e < loads_[l].size(); ++e) {
      const double diff = mean - static_cast<double>(loads_[l][e]);
      bias[e] += diff > 0 ? gamma : diff < 0 ? -gamma : 0.0f;
    }
  }
}

EvalResult Trainer::Evaluate() {
  if (dp_) return EvaluateRanks();
  TrainModel& model = *models_[0];
  int32_t* tokens = tokens_[0].data();
  const int64_t B = o_.batch_size, W = model.window(), D = model.depth();
  const int64_t batches = (o_.eval_windows + B - 1) / B, count = batches * B;
  EvalResult r;
  r.mtp.assign(D, 0.0), r.mtp_acc.assign(D, 0.0);
  std::vector<std::vector<double>> loads(config_.num_layers_with_mtp());
  for (int64_t bi = 0; bi < batches; ++bi) {
    for (int64_t row = 0; row < B; ++row)
      data_->ValidationWindow(bi * B + row, count, W, tokens + row * W);
    const Losses l = model.Step(tokens, false, 1.0f);
    r.loss += l.main / batches, r.acc += l.main_acc / batches;
    for (int64_t k = 0; k < D; ++k) r.mtp[k] += l.mtp[k] / batches, r.mtp_acc[k] += l.mtp_acc[k] / batches;
    const auto layer_loads = model.Loads();
    for (size_t layer = 0; layer < layer_loads.size(); ++layer) {
      if (!layer_loads[layer]) continue;
      loads[layer].resize(layer_loads[layer]->size(), 0.0);
      for (size_t e = 0; e < loads[layer].size(); ++e) loads[layer][e] += (*layer_loads[layer])[e];
    }
  }
  LoadStats(loads, &r);
  return r;
}

// max_vio and min_load of every layer from its validation loads.
void Trainer::LoadStats(const std::vector<std::vector<double>>& loads, EvalResult* out) {
  EvalResult& r = *out;
  for (const auto& l : loads) {
    if (l.empty()) {
      r.max_vio.push_back(-1.0), r.min_load.push_back(-1.0);
      continue;
    }
    double total = 0.0, mx = 0.0, mn = l[0];
    for (double x : l) total += x, mx = std::max(mx, x), mn = std::min(mn, x);
    r.max_vio.push_back(mx / (total / l.size()) - 1.0);
    r.min_load.push_back(mn / (total / l.size()));
    r.worst_max_vio = std::max(r.worst_max_vio, r.max_vio.back());
  }
}

Status Trainer::Save(int64_t step) {
  SaveOptions so;
  so.model_dtype = o_.save_dtype == "bf16" ? DType::kBF16 : DType::kF32;
  so.metadata["options"] = TrainOptionsJson(o_);
  // The log's lines up to this step reach the file before the checkpoint
  // does: a run killed after the save resumes with its whole curve.
  std::fflush(jsonl_);
  // Several ranks: rank 0 gathers the moments and writes the files one
  // process would; every rank learns whether that worked.
  if (dp_) dp_->GatherExperts(), dp_->GatherMoments(*optimizer_);
  Status st = Status::Ok();
  if (comm_->rank() == 0) {
    st = SaveCheckpoint(o_.out, config_json_, *params_, *optimizer_, step, so);
    if (st.ok()) st = CopyTokenizerFiles(data_->info().tokenizer, o_.out);  // when the data names one
  }
  optimizer_->ClearGathered();
  if (ep_ && comm_->rank() == 0) params_->ReleaseElsewhere();  // gathered for writing only
  DSV3_RETURN_IF_ERROR(comm_->Agree(st));
  saved_step_ = step;
  return Status::Ok();
}

}  // namespace dsv3::train

namespace dsv3::train {

Trainer::~Trainer() {
  if (jsonl_) std::fclose(jsonl_);
  if (null_log_) std::fclose(null_log_);
}

void Trainer::LogStep(int64_t step, const Losses& l, double grad_norm, double lr) {
  const int64_t tokens_per_step = o_.batch_size * o_.seq_len * o_.grad_accum;
  double mtp = 0.0;
  for (double x : l.mtp) mtp += x / static_cast<double>(l.mtp.size());
  interval_loss_ += l.main, interval_mtp_ += mtp, interval_balance_ += l.balance, ++interval_steps_;
  json j = {{"step", step + 1}, {"loss", l.main}, {"mtp", l.mtp}, {"balance", l.balance}, {"total", l.total},
            {"lr", lr}, {"grad_norm", grad_norm}, {"tokens", (step + 1) * tokens_per_step},
            {"seconds", train_seconds_}};
  if (dp_)  // this step's communication on rank 0 (data_parallel.h)
    j["comm"] = {{"post_s", step_comm_.post_s},     {"wait_s", step_comm_.wait_s},   {"sum_s", step_comm_.sum_s},
                 {"gather_s", step_comm_.gather_s}, {"sync_s", step_comm_.sync_s},   {"other_s", step_comm_.other_s},
                 {"exposed_s", step_comm_.exposed()}, {"bytes_sent", step_comm_.bytes_sent}};
  std::fprintf(jsonl_, "%s\n", j.dump().c_str());
  if ((step + 1) % o_.log_every != 0 && step + 1 != o_.steps && step != start_step_) return;
  std::fflush(jsonl_);
  const double n = static_cast<double>(interval_steps_), done = static_cast<double>(step + 1 - start_step_);
  const double eta = (o_.steps - step - 1) * train_seconds_ / done;
  char mtp_text[32] = "";
  if (!l.mtp.empty()) std::snprintf(mtp_text, sizeof(mtp_text), "  mtp %.4f", interval_mtp_ / n);
  std::fprintf(log_, "step %lld/%lld  loss %.4f%s  bal %.2e  lr %.2e  gnorm %.3f  %.0f tok/s  %.1f GFLOP/s  eta %s\n",
               (long long)(step + 1), (long long)o_.steps, interval_loss_ / n, mtp_text, interval_balance_ / n, lr,
               grad_norm, train_tokens_ / train_seconds_, train_flops_ / train_seconds_ / 1e9,
               FormatDuration(eta).c_str());
  std::fflush(log_);
  last_interval_loss_ = interval_loss_ / n;
  interval_loss_ = interval_mtp_ = interval_balance_ = 0.0;
  interval_steps_ = 0;
}

void Trainer::LogEval(int64_t step, const EvalResult& e) {
  // eval step N  val_loss X  val_acc A  [val_mtp X.. mtp_acc A..]  [max_vio layerL=V..]  [min_load layerL=V..]
  std::string line = "eval step " + std::to_string(step);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "  val_loss %.4f  val_acc %.4f", e.loss, e.acc), line += buf;
  if (!e.mtp.empty()) {
    line += "  val_mtp";
    for (double x : e.mtp) std::snprintf(buf, sizeof(buf), " %.4f", x), line += buf;
    line += "  mtp_acc";
    for (double x : e.mtp_acc) std::snprintf(buf, sizeof(buf), " %.4f", x), line += buf;
  }
  bool any = false;
  for (size_t l = 0; l < e.max_vio.size(); ++l) {
    if (e.max_vio[l] < 0) continue;
    std::snprintf(buf, sizeof(buf), "%s layer%zu=%.3f", any ? "" : "  max_vio", l, e.max_vio[l]), line += buf;
    any = true;
  }
  any = false;
  for (size_t l = 0; l < e.min_load.size(); ++l) {
    if (e.min_load[l] < 0) continue;
    std::snprintf(buf, sizeof(buf), "%s layer%zu=%.3f", any ? "" : "  min_load", l, e.min_load[l]), line += buf;
    any = true;
  }
  std::fprintf(log_, "%s\n", line.c_str());
  std::fflush(log_);
  json j = {{"step", step}, {"val_loss", e.loss}, {"val_mtp", e.mtp}, {"val_acc", e.acc}, {"val_mtp_acc", e.mtp_acc},
            {"max_vio", e.max_vio}, {"min_load", e.min_load}};
  std::fprintf(jsonl_, "%s\n", j.dump().c_str());
  std::fflush(jsonl_);
}

Expected<TrainResult> Trainer::Run() {
  using Clock = std::chrono::steady_clock;
  const int64_t tokens_per_step = o_.batch_size * o_.seq_len * o_.grad_accum;
  std::fprintf(log_,
               "train: %lld parameters, precision %s, balance %s, MTP depth %d, %lld x %lld tokens per micro-batch "
               "x %lld (%d in parallel); data: %lld train / %lld validation tokens; steps %lld..%lld\n",
               (long long)params_->NumParams(), o_.precision.c_str(), o_.balance.c_str(), models_[0]->depth(),
               (long long)o_.batch_size, (long long)o_.seq_len, (long long)o_.grad_accum, workers(),
               (long long)data_->train().tokens, (long long)data_->validation().tokens, (long long)start_step_ + 1,
               (long long)o_.steps);
  const int64_t end = o_.stop_at > 0 ? std::min(o_.stop_at, o_.steps) : o_.steps;
  if (NumThreads() > 1 && workers() == 1)
    std::fprintf(log_, "hint: with %d threads, --grad-accum %d (and --batch-size / %d) runs whole micro-batches on the "
                       "threads in parallel, which scales better than splitting every op\n",
                 NumThreads(), NumThreads(), NumThreads());
  for (int64_t step = start_step_; step < end; ++step) {
    if (progress_) progress_(step + 1, saved_step_);
    const auto t0 = Clock::now();
    const double f0 = Flops();
    Losses l;
    double grad_norm = 0.0, lr = 0.0;
    DSV3_RETURN_IF_ERROR(dp_ ? TrainStepRanks(step, &l, &grad_norm, &lr) : TrainStep(step, &l, &grad_norm, &lr));
    train_seconds_ += std::chrono::duration<double>(Clock::now() - t0).count();
    train_flops_ += Flops() - f0;
    train_tokens_ += tokens_per_step;
    LogStep(step, l, grad_norm, lr);
    const bool last = step + 1 == end;
    if (o_.eval_every > 0 && (step + 1) % o_.eval_every == 0 && !last) LogEval(step + 1, Evaluate());
    if (o_.save_every > 0 && (step + 1) % o_.save_every == 0 && !last) DSV3_RETURN_IF_ERROR(Save(step + 1));
  }
  TrainResult r;
  r.step = std::max(end, start_step_);
  if (dp_) PrintRankMemory();
  r.val = Evaluate();
  LogEval(r.step, r.val);
  if (saved_step_ != r.step) DSV3_RETURN_IF_ERROR(Save(r.step));
  if (r.step < o_.steps)
    std::fprintf(log_, "stopped at step %lld of %lld (--stop-at); continue with --resume\n", (long long)r.step,
                 (long long)o_.steps);
  r.train_loss = last_interval_loss_;
  r.tokens_per_second = train_seconds_ > 0 ? train_tokens_ / train_seconds_ : 0.0;
  r.gflops_per_second = train_seconds_ > 0 ? train_flops_ / train_seconds_ / 1e9 : 0.0;
  if (dp_) PrintCommSummary();
  std::fprintf(log_, "final step=%lld train_loss=%.4f val_loss=%.4f max_vio=%.4f\n", (long long)r.step, r.train_loss,
               r.val.loss, r.val.worst_max_vio);
  std::fflush(log_);
  return r;
}

}  // namespace dsv3::train
