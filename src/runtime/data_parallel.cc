// Data-parallel attention; see data_parallel.h. Per step: pick this rank's
// tokens, run them (or only serve the experts), then gather to rank 0 (or
// to every rank) a failure flag per rank and each rank's logit rows (and
// hidden rows), put back in the step's order.
#include "runtime/data_parallel.h"

#include <algorithm>
#include <string>

namespace dsv3 {

namespace {

template <class T>
void Grow(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(n);
}

}  // namespace

Status DataParallelForward::Forward(const Model& model, const Batch& batch, KvCache& cache, Workspace& ws) {
  return Run(model, -1, batch, nullptr, cache, ws, model.config().vocab_size);
}

Status DataParallelForward::ForwardMtp(const Model& model, int depth, const Batch& batch, const float* hidden_in,
                                       KvCache& cache, Workspace& ws, int64_t draft_vocab) {
  const int64_t V = model.config().vocab_size;
  return Run(model, depth, batch, hidden_in, cache, ws, draft_vocab > 0 && draft_vocab < V ? draft_vocab : V);
}

// local_: the tokens of this rank's slots, in the step's order; their logit
// rows in the order of batch.logit_rows (so rank 0 can put them back).
void DataParallelForward::Split(const Batch& batch, const float* hidden_in, int64_t d) {
  const int64_t n = batch.size();
  const int me = comm_.rank(), ranks = comm_.size();
  local_.Clear();
  rows_.clear();
  Grow(local_of_, n);
  for (int64_t i = 0; i < n; ++i) {
    const bool mine = OwnerOfSlot(batch.slots[i], ranks) == me;
    local_of_[i] = mine ? static_cast<int32_t>(rows_.size()) : -1;  // local index of step row i
    if (!mine) continue;
    rows_.push_back(static_cast<int32_t>(i));
    local_.Add(batch.tokens[i], batch.positions[i], batch.slots[i], false);
  }
  for (int32_t r : batch.logit_rows)
    if (r >= 0 && r < n && local_of_[r] >= 0) local_.logit_rows.push_back(local_of_[r]);
  if (!hidden_in) return;
  Grow(hidden_in_, static_cast<int64_t>(rows_.size()) * d);
  for (size_t j = 0; j < rows_.size(); ++j) std::copy_n(hidden_in + rows_[j] * d, d, hidden_in_.data() + j * d);
}

Status DataParallelForward::Run(const Model& model, int depth, const Batch& batch, const float* hidden_in,
                                KvCache& cache, Workspace& ws, int64_t width) {
  const int64_t d = model.config().hidden_size, n = batch.size();
  // Every rank holds this batch: a bad one is refused everywhere, before any exchange.
  if (static_cast<int64_t>(batch.slots.size()) != n) return Status::Error("batch tokens and slots differ in length");
  for (int32_t s : batch.slots)
    if (s < 0) return Status::Error("cache slot " + std::to_string(s) + " out of range");
  for (int32_t r : batch.logit_rows)
    if (r < 0 || r >= n) return Status::Error("logit row " + std::to_string(r) + " out of range");
  Split(batch, hidden_in, d);
  // Every rank sees the same batch, so all choose the same number of micro-batches.
  const bool several =
      std::any_of(batch.slots.begin(), batch.slots.end(), [&](int32_t s) { return s != batch.slots[0]; });
  ws_.exchange.micro_batches = options_.micro_batches == 2 && several ? 2 : 1;
  model.ReserveTokens(ws_, batch.size());  // this rank's experts may get rows of every token
  Status st = Status::Ok();
  if (local_.size() > 0) {
    const int64_t draft = width < model.config().vocab_size ? width : 0;
    st = depth < 0 ? model.Forward(local_, cache, ws_)
                   : model.ForwardMtp(depth, local_, hidden_in_.data(), cache, ws_, draft);
    // A refused batch fails before its first exchange: serve the others.
    if (!st.ok()) model.ServeExpertsOnly(depth, ws_);
  } else {
    model.ServeExpertsOnly(depth, ws_);
  }
  ws.experts_run = ws_.experts_run, ws.moe_layers_run = ws_.moe_layers_run;  // what benchmarks count
  return Collect(batch, width, d, st, ws);
}

// Rank r contributes [its logit rows, width] then, with options.hidden,
// [its rows, d]; every rank knows every rank's counts from the batch. The
// receivers (rank 0, or all) scatter the rows to where one process's
// forward leaves them.
Status DataParallelForward::Collect(const Batch& batch, int64_t width, int64_t d, const Status& mine,
                                    Workspace& ws) {
  const int ranks = comm_.size(), me = comm_.rank();
  const int64_t n = batch.size(), L = static_cast<int64_t>(batch.logit_rows.size());
  const int64_t hidden_d = options_.hidden ? d : 0;
  Grow(counts_, ranks), Grow(tokens_of_, ranks), Grow(cursor_, 2 * ranks), Grow(failed_, ranks);
  // Failure flags first.
  failed_[me] = mine.ok() ? 0 : 1;
  std::fill(counts_.begin(), counts_.begin() + ranks, 1);
  if (options_.every_rank)
    comm_.AllGatherV(failed_.data(), counts_.data(), sizeof(int64_t));
  else
    comm_.GatherV(&failed_[me], failed_.data(), counts_.data(), sizeof(int64_t), 0);
  std::fill(counts_.begin(), counts_.begin() + ranks, 0);
  std::fill(tokens_of_.begin(), tokens_of_.begin() + ranks, 0);
  for (int64_t i = 0; i < n; ++i) ++tokens_of_[OwnerOfSlot(batch.slots[i], ranks)];
  for (int64_t j = 0; j < L; ++j) counts_[OwnerOfSlot(batch.slots[batch.logit_rows[j]], ranks)] += width;
  int64_t total = 0, offset = 0;
  for (int r = 0; r < ranks; ++r) {
    cursor_[r] = total;                       // rank r's logit rows in all_
    cursor_[ranks + r] = total + counts_[r];  // then its hidden rows
    counts_[r] += tokens_of_[r] * hidden_d;
    if (r == me) offset = total;
    total += counts_[r];
  }
  // This rank's part at its place (a rank that receives nothing keeps only its own).
  const bool receives = options_.every_rank || me == 0;
  if (!receives) offset = 0;
  Grow(all_, receives ? total : counts_[me]);
  const int64_t local_logits = static_cast<int64_t>(local_.logit_rows.size()) * width;
  // After a failed local forward these rows are stale; the flag says so.
  std::copy_n(ws_.logits.data(), std::min(local_logits, static_cast<int64_t>(ws_.logits.size())), all_.data() + offset);
  if (hidden_d) std::copy_n(ws_.hidden.data(), tokens_of_[me] * d, all_.data() + offset + local_logits);
  if (options_.every_rank)
    comm_.AllGatherV(all_.data(), counts_.data(), sizeof(float));
  else
    comm_.GatherV(all_.data(), me == 0 ? all_.data() : nullptr, counts_.data(), sizeof(float), 0);
  if (receives) {
    Scatter(batch, width, d, ws);
    for (int r = 0; r < ranks; ++r)
      if (failed_[r] != 0 && r != me)
        return Status::Error("rank " + std::to_string(r) + " could not run its part of the step (its error is in its log)");
  } else if (hidden_d) {
    // A rank's own hidden rows stay here too, at their step rows (a caller
    // running MTP over its own sequences needs no more).
    Grow(ws.hidden, n * d);
    for (size_t j = 0; j < rows_.size(); ++j)
      std::copy_n(ws_.hidden.data() + j * d, d, ws.hidden.data() + rows_[j] * d);
  }
  return mine;
}

void DataParallelForward::Scatter(const Batch& batch, int64_t width, int64_t d, Workspace& ws) {
  const int ranks = comm_.size();
  const int64_t n = batch.size(), L = static_cast<int64_t>(batch.logit_rows.size());
  Grow(ws.logits, L * width);
  for (int64_t j = 0; j < L; ++j) {
    int64_t& at = cursor_[OwnerOfSlot(batch.slots[batch.logit_rows[j]], ranks)];
    std::copy_n(all_.data() + at, width, ws.logits.data() + j * width);
    at += width;
  }
  if (!options_.hidden) return;
  Grow(ws.hidden, n * d);
  for (int64_t i = 0; i < n; ++i) {
    int64_t& at = cursor_[ranks + OwnerOfSlot(batch.slots[i], ranks)];
    std::copy_n(all_.data() + at, d, ws.hidden.data() + i * d);
    at += d;
  }
}

}  // namespace dsv3
