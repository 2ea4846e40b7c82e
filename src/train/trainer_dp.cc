// The trainer's data-parallel step, evaluation and checks (several ranks of
// a dist::Comm; see data_parallel.h for why the results are bit-identical
// to one process with the same --grad-accum). Rank r runs the micro-batches
// r * L .. r * L + L - 1 of every step (L = grad_accum / ranks), each into
// its own gradient set; the per-micro-batch losses are gathered and added
// in micro-batch order as one process adds them, the expert loads are
// summed over ranks before the bias update, and validation batches are
// dealt round-robin and their results added in batch order.
#include <chrono>
#include <cmath>
#include <functional>

#include "core/parallel.h"
#include "train/trainer.h"

namespace dsv3::train {

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Per-layer loads [layers][E] (empty: dense) <-> one flat vector.
std::vector<int64_t> Flatten(const std::vector<std::vector<int64_t>>& loads) {
  std::vector<int64_t> flat;
  for (const auto& l : loads) flat.insert(flat.end(), l.begin(), l.end());
  return flat;
}

void Unflatten(const std::vector<int64_t>& flat, std::vector<std::vector<int64_t>>* loads) {
  size_t at = 0;
  for (auto& l : *loads)
    for (auto& x : l) x = flat[at++];
}

// A model's loads of its last Step added into `sum` (sized on first use).
void AddLoads(const TrainModel& model, std::vector<std::vector<int64_t>>* sum) {
  const auto loads = model.Loads();
  for (size_t layer = 0; layer < loads.size(); ++layer) {
    if (!loads[layer]) continue;
    (*sum)[layer].resize(loads[layer]->size(), 0);
    for (size_t e = 0; e < loads[layer]->size(); ++e) (*sum)[layer][e] += (*loads[layer])[e];
  }
}

}  // namespace

// Every rank must run the same command: the options and model config are
// compared by hash (the run would silently diverge otherwise).
Status Trainer::SetupRanks() {
  const uint64_t mine = std::hash<std::string>{}(TrainOptionsJson(o_) + config_json_);
  const std::vector<uint64_t> all = comm_->AllGather(mine);
  for (int r = 1; r < comm_->size(); ++r)
    if (all[r] != all[0])
      return Status::Error("rank " + std::to_string(r) + " was given other training options or another model "
                           "config than rank 0: every rank of a data-parallel run needs the same flags");
  const std::vector<uint64_t> bytes = comm_->AllGather(static_cast<uint64_t>(optimizer_->StateBytes()));
  uint64_t most = 0;
  for (uint64_t b : bytes) most = std::max(most, b);
  const double whole = static_cast<double>(optimizer_->flat_size()) * (o_.bf16_moments ? 4 : 8);
  std::fprintf(log_,
               "data parallel: %d ranks x %lld micro-batches each (global batch = --grad-accum %lld); ZeRO-1: "
               "AdamW moments %.2f MiB on the largest rank (%.2f MiB in one process), %lld gradient buckets\n",
               comm_->size(), (long long)local_slots_.size(), (long long)o_.grad_accum, most / 1048576.0,
               whole / 1048576.0, (long long)dp_->num_buckets());
  if (ep_) {
    const auto mine = ep_->placement().ExpertsOf(comm_->rank());
    std::fprintf(log_,
                 "expert parallel: the %lld routed experts of each MoE layer split over %d ranks (rank 0: experts "
                 "%d-%d); each rank computes, updates and keeps AdamW state for its own, tokens travel to them\n",
                 (long long)config_.n_routed_experts, comm_->size(), mine.empty() ? 0 : mine.front(),
                 mine.empty() ? -1 : mine.back());
    ep_->set_stats(&step_comm_);
  }
  return Status::Ok();
}

// This rank's micro-batches, each into its own gradient set; rows [local,
// 3 + D] get their losses (main, balance, total, mtp[D]) and loads_ their
// expert loads.
void Trainer::RunMicroBatchesRanks(int64_t step, std::vector<double>* rows) {
  const int64_t B = o_.batch_size, W = models_[0]->window(), workers = static_cast<int64_t>(models_.size());
  const int64_t local = static_cast<int64_t>(local_slots_.size()), first_micro = comm_->rank() * local;
  const int64_t D = models_[0]->depth(), width = 3 + D;
  const float scale = 1.0f / static_cast<float>(o_.grad_accum);
  rows->assign(local * width, 0.0);
  for (size_t l = 0; l < loads_.size(); ++l)  // the same shape on every rank
    loads_[l].assign(config_.IsMoeLayer(static_cast<int64_t>(l)) ? config_.n_routed_experts : 0, 0);
  for (int64_t first = 0; first < local; first += workers) {
    const int64_t count = std::min(workers, local - first);
    // The last round's backward posts each finished stage's buckets when it
    // runs on this thread (one micro-batch: ParallelFor calls it inline);
    // otherwise FinishReduce posts them all after it.
    const bool last = first + count == local;
    if (last) dp_->BeginReduce(local_slots_, &step_comm_);
    if (last && count == 1) models_[0]->set_grads_ready([this](int stage) { dp_->StageReady(stage); });
    ParallelFor(count, 1, [&](int64_t w0, int64_t w1) {
      for (int64_t w = w0; w < w1; ++w) {
        const int64_t j = first + w;
        int32_t* tokens = tokens_[w].data();
        for (int64_t r = 0; r < B; ++r) data_->TrainWindow(o_.seed, step, first_micro + j, r, W, tokens + r * W);
        params_->ZeroGrads(local_slots_[j]);
        models_[w]->set_grad_slot(local_slots_[j]);
        const Losses l = models_[w]->Step(tokens, true, scale);
        double* row = rows->data() + j * width;
        row[0] = l.main, row[1] = l.balance, row[2] = l.total;
        for (int64_t k = 0; k < D; ++k) row[3 + k] = l.mtp[k];
      }
    });
    models_[0]->set_grads_ready(nullptr);
    for (int64_t w = 0; w < count; ++w) AddLoads(*models_[w], &loads_);
  }
}

Status Trainer::TrainStepRanks(int64_t step, Losses* sum, double* grad_norm, double* lr) {
  const int64_t local = static_cast<int64_t>(local_slots_.size()), D = models_[0]->depth(), width = 3 + D;
  step_comm_ = CommStats();
  std::vector<double> rows;
  RunMicroBatchesRanks(step, &rows);
  // Losses of every micro-batch, added in global micro-batch order (checked
  // after the reduction completes, so no exchange is left in flight).
  auto t0 = Clock::now();
  const std::vector<double> all = dp_->AllGatherRows(rows, local, width);
  step_comm_.sync_s += Since(t0);
  dp_->FinishReduce();
  *sum = Losses();
  sum->mtp.assign(D, 0.0);
  const double s = 1.0 / static_cast<double>(o_.grad_accum);
  for (int64_t m = 0; m < o_.grad_accum; ++m) {
    const double* row = all.data() + m * width;
    if (!std::isfinite(row[2]))
      return NonFinite(step, "the loss of micro-batch " + std::to_string(m) + " (rank " + std::to_string(m / local) + ")");
    sum->main += row[0] * s, sum->balance += row[1] * s, sum->total += row[2] * s;
    for (int64_t k = 0; k < D; ++k) sum->mtp[k] += row[3 + k] * s;
  }
  *grad_norm = dp_->GradNorm(*optimizer_, &step_comm_);
  if (!std::isfinite(*grad_norm)) return NonFinite(step, "the gradient norm");
  *lr = LearningRate(opt_options_, step, o_.steps);
  optimizer_->Update(step + 1, *lr, *grad_norm);
  dp_->GatherParams(&step_comm_);
  // The bias update sees the global batch's loads.
  t0 = Clock::now();
  std::vector<int64_t> flat = Flatten(loads_);
  dp_->SumLoads(&flat);
  Unflatten(flat, &loads_);
  step_comm_.other_s += Since(t0);
  if (balance_.mode == Balance::kAuxFree) UpdateBiases();
  total_comm_.Add(step_comm_), ++comm_steps_;
  return Status::Ok();
}

// Batch bi runs on rank bi % ranks; results are added in batch order.
EvalResult Trainer::EvaluateRanks() {
  TrainModel& model = *models_[0];
  int32_t* tokens = tokens_[0].data();
  const int64_t B = o_.batch_size, W = model.window(), D = model.depth(), ranks = comm_->size();
  const int64_t batches = (o_.eval_windows + B - 1) / B, count = batches * B, width = 2 + 2 * D;
  std::vector<double> rows;  // [mine, width]: main, acc, mtp[D], mtp_acc[D]
  // Sized from the config, so a rank without a batch sums the same shape.
  std::vector<std::vector<int64_t>> loads(config_.num_layers_with_mtp());
  for (size_t l = 0; l < loads.size(); ++l)
    if (config_.IsMoeLayer(static_cast<int64_t>(l))) loads[l].assign(config_.n_routed_experts, 0);
  for (int64_t bi = comm_->rank(); bi < batches; bi += ranks) {
    for (int64_t row = 0; row < B; ++row) data_->ValidationWindow(bi * B + row, count, W, tokens + row * W);
    const Losses l = model.Step(tokens, false, 1.0f);
    rows.push_back(l.main), rows.push_back(l.main_acc);
    for (int64_t k = 0; k < D; ++k) rows.push_back(l.mtp[k]);
    for (int64_t k = 0; k < D; ++k) rows.push_back(l.mtp_acc[k]);
    AddLoads(model, &loads);
  }
  // Expert parallelism: every rank takes part in every round's exchanges,
  // so a rank without a batch in the last round runs batch 0 again and
  // drops the result.
  if (ep_ && batches % ranks != 0 && comm_->rank() >= batches % ranks) {
    for (int64_t row = 0; row < B; ++row) data_->ValidationWindow(row, count, W, tokens + row * W);
    model.Step(tokens, false, 1.0f);
  }
  const std::vector<double> all = dp_->AllGatherRows(rows, static_cast<int64_t>(rows.size()) / width, width);
  // Rank q holds the batches q, q + ranks, ...: its block starts after the
  // blocks of the ranks before it.
  std::vector<int64_t> start(ranks + 1, 0);
  for (int64_t q = 0; q < ranks; ++q) start[q + 1] = start[q] + (batches > q ? (batches - q + ranks - 1) / ranks : 0);
  EvalResult r;
  r.mtp.assign(D, 0.0), r.mtp_acc.assign(D, 0.0);
  for (int64_t bi = 0; bi < batches; ++bi) {
    const double* row = all.data() + (start[bi % ranks] + bi / ranks) * width;
    r.loss += row[0] / batches, r.acc += row[1] / batches;
    for (int64_t k = 0; k < D; ++k) r.mtp[k] += row[2 + k] / batches, r.mtp_acc[k] += row[2 + D + k] / batches;
  }
  std::vector<int64_t> flat = Flatten(loads);
  dp_->SumLoads(&flat);
  Unflatten(flat, &loads);
  std::vector<std::vector<double>> dl(loads.size());
  for (size_t l = 0; l < loads.size(); ++l) dl[l].assign(loads[l].begin(), loads[l].end());
  LoadStats(dl, &r);
  return r;
}

namespace {

// This process's peak resident set (VmHWM), bytes; 0 where unknown.
int64_t PeakResidentBytes() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  long long kb = 0;
  while (std::fgets(line, sizeof(line), f))
    if (std::sscanf(line, "VmHWM: %lld kB", &kb) == 1) break;
  std::fclose(f);
  return kb * 1024;
}

}  // namespace

// Every rank's peak resident memory so far, printed by rank 0 (a
// collective: every rank calls it).
void Trainer::PrintRankMemory() {
  const std::vector<uint64_t> peak = comm_->AllGather(static_cast<uint64_t>(PeakResidentBytes()));
  std::string line;
  for (size_t r = 0; r < peak.size(); ++r) line += (r ? ", " : "") + std::to_string(peak[r] / 1000000) + " MB";
  std::fprintf(log_, "peak resident memory per rank (training steps, before the final checkpoint): %s\n", line.c_str());
}

void Trainer::PrintCommSummary() const {
  if (comm_steps_ == 0) return;
  const double n = static_cast<double>(comm_steps_), ms = 1000.0 / n;
  const CommStats& c = total_comm_;
  std::fprintf(log_,
               "communication per step (rank 0, mean of %lld steps, ms): posting buckets in the backward %.2f, "
               "waiting for buckets %.2f, parameter gather %.2f, loss gather %.2f (includes waiting for the slowest "
               "rank), norm and loads %.2f; exposed %.2f of a %.2f ms step; gradient sums %.2f; %.3f MB sent per "
               "rank\n",
               (long long)comm_steps_, c.post_s * ms, c.wait_s * ms, c.gather_s * ms, c.sync_s * ms, c.other_s * ms,
               c.exposed() * ms, train_seconds_ * ms, c.sum_s * ms, c.bytes_sent / n / 1e6);
  if (ep_)
    std::fprintf(log_,
                 "expert exchanges per step (rank 0, ms): %.2f from posting to completion, %.2f of it exposed "
                 "(the rest hidden behind the shared experts); %.3f MB of token rows sent per rank (in the exposed "
                 "total above)\n",
                 c.expert_span_s * ms, c.expert_s * ms, c.expert_bytes / n / 1e6);
}

}  // namespace dsv3::train
