// Rank 0's step broadcast and the followers' replay loop; see
// step_broadcast.h. A message is a fixed header (one broadcast) and a body
// (one more): the cache edits since the last message, then the batch's
// tokens, positions, slots, logit rows and, for an MTP pass, its
// hidden-state input rows. Without data-parallel attention followers drop
// the logit rows: only rank 0 samples.
#include "runtime/step_broadcast.h"

#include <cstdio>
#include <cstring>
#include <new>
#include <optional>

namespace dsv3 {

namespace {

enum Op : int64_t { kBegin = 1, kForward = 2, kForwardMtp = 3, kStop = 4 };
enum Edit : int64_t { kTruncate = 1, kCopyPrefix = 2, kSetLength = 3 };
// Header fields.
enum : int { kOp, kTokens, kLogitRows, kEdits, kDepth, kDraftVocab, kArg0, kArg1, kBodyBytes, kHeader };

template <typename T>
void Append(std::vector<uint8_t>& body, const T* data, int64_t n) {
  const size_t at = body.size(), bytes = static_cast<size_t>(n) * sizeof(T);
  body.resize(at + bytes);  // within the capacity reached at warm-up: no allocation
  if (bytes) std::memcpy(body.data() + at, data, bytes);
}

template <typename T>
const uint8_t* Take(const uint8_t* at, int64_t n, std::vector<T>& out) {
  out.resize(n);
  if (n) std::memcpy(out.data(), at, static_cast<size_t>(n) * sizeof(T));
  return at + n * static_cast<int64_t>(sizeof(T));
}

// Without data-parallel attention rank 0 ran the same batch and reports
// its failure; with it, only this rank knows why its part failed.
void Report(const Status& st, const dist::Comm& comm, const DataParallelForward* dp) {
  if (dp && !st.ok()) std::fprintf(stderr, "dsv3: error: rank %d: %s\n", comm.rank(), st.message().c_str());
}

// With data-parallel attention a rank copies rows only into its own slots
// (the scheduler copies within a rank), so other ranks' slots stay untouched.
void ApplyEdit(KvCache& cache, const int64_t* e, const dist::Comm& comm, bool data_parallel) {
  switch (e[0]) {
    case kTruncate: cache.Truncate(e[1], e[2]); break;
    case kCopyPrefix:
      if (!data_parallel || DataParallelForward::OwnerOfSlot(e[2], comm.size()) == comm.rank())
        cache.CopyPrefix(e[1], e[2], e[3]);
      break;
    case kSetLength: cache.set_length(e[1], e[2], static_cast<int>(e[3])); break;
    default: break;
  }
}

}  // namespace

void StepLeader::Run() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return posted_ > done_ || stop_; });
      if (posted_ == done_) break;
      job = job_;
    }
    Send(job);
    const Status st = Execute(job);
    {
      std::lock_guard<std::mutex> lock(mu_);
      result_ = st;
      done_ = posted_;
    }
    cv_.notify_all();
  }
  int64_t h[kHeader] = {};
  h[kOp] = kStop;
  {
    std::lock_guard<std::mutex> lock(mu_);
    h[kArg0] = exit_code_;
  }
  comm_.BroadcastPatiently(h, sizeof h, 0);
}

void StepLeader::Stop(int exit_code) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    exit_code_ = exit_code;
  }
  cv_.notify_all();
}

void StepLeader::Fail(const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (failed_) return;
    failed_ = true;
    failure_ = reason;
  }
  cv_.notify_all();
}

bool StepLeader::failed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failed_;
}

std::string StepLeader::failure() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failure_;
}

Status StepLeader::Post(const Job& job) {
  std::unique_lock<std::mutex> lock(mu_);
  if (failed_) return Status::Error(failure_);
  if (stop_) return Status::Error("the expert-parallel job is stopping");
  job_ = job;
  const uint64_t ticket = ++posted_;
  cv_.notify_all();
  // A failure ends the wait even if the MPI thread never comes back.
  cv_.wait(lock, [&] { return done_ >= ticket || failed_; });
  if (done_ < ticket) return Status::Error(failure_);
  return result_;
}

void StepLeader::Send(const Job& job) {
  int64_t h[kHeader] = {};
  h[kOp] = job.op;
  body_.clear();
  {
    std::lock_guard<std::mutex> lock(mu_);  // edits_ grows on the scheduler thread between steps
    h[kEdits] = static_cast<int64_t>(edits_.size() / 4);
    Append(body_, edits_.data(), static_cast<int64_t>(edits_.size()));
    edits_.clear();
  }
  if (job.batch) {
    const Batch& b = *job.batch;
    const int64_t n = b.size();
    h[kTokens] = n;
    h[kLogitRows] = static_cast<int64_t>(b.logit_rows.size());
    Append(body_, b.tokens.data(), n);
    Append(body_, b.positions.data(), n);
    Append(body_, b.slots.data(), n);
    Append(body_, b.logit_rows.data(), h[kLogitRows]);
    if (job.op == kForwardMtp) Append(body_, job.hidden_in, n * model_.config().hidden_size);
  }
  h[kDepth] = job.depth;
  h[kDraftVocab] = job.draft_vocab;
  h[kArg0] = job.slots;
  h[kArg1] = job.capacity;
  h[kBodyBytes] = static_cast<int64_t>(body_.size());
  comm_.BroadcastPatiently(h, sizeof h, 0);  // followers may have waited long for it
  comm_.Broadcast(body_.data(), h[kBodyBytes], 0);
}

Status StepLeader::Execute(const Job& job) {
  try {
    if (job.op == kForward) return runner_.Forward(model_, *job.batch, *job.cache, *job.ws);
    if (job.op == kForwardMtp)
      return runner_.ForwardMtp(model_, job.depth, *job.batch, job.hidden_in, *job.cache, *job.ws, job.draft_vocab);
  } catch (const std::bad_alloc&) {
    return Status::Error("out of memory in a forward pass");
  }
  return Status::Ok();
}

void StepLeader::Begin(int64_t slots, int64_t capacity) {
  Post({.op = kBegin, .slots = slots, .capacity = capacity});
}

Status StepLeader::Forward(const Model&, const Batch& batch, KvCache& cache, Workspace& ws) {
  return Post({.op = kForward, .batch = &batch, .cache = &cache, .ws = &ws});
}

Status StepLeader::ForwardMtp(const Model&, int depth, const Batch& batch, const float* hidden_in, KvCache& cache,
                              Workspace& ws, int64_t draft_vocab) {
  return Post({.op = kForwardMtp, .depth = depth, .batch = &batch, .hidden_in = hidden_in, .cache = &cache,
               .ws = &ws, .draft_vocab = draft_vocab});
}

void StepLeader::Edit(KvCache& cache, int64_t kind, int64_t a, int64_t b, int64_t c) {
  std::lock_guard<std::mutex> lock(mu_);
  // After a failure the MPI thread may still be inside a forward using the
  // cache: leave it alone (the process is about to exit).
  if (failed_) return;
  const int64_t e[4] = {kind, a, b, c};
  ApplyEdit(cache, e, comm_, dp_ != nullptr);
  edits_.insert(edits_.end(), e, e + 4);
}

void StepLeader::Truncate(KvCache& cache, int64_t slot, int64_t n) { Edit(cache, kTruncate, slot, n, 0); }
void StepLeader::CopyPrefix(KvCache& cache, int64_t src, int64_t dst, int64_t n) {
  Edit(cache, kCopyPrefix, src, dst, n);
}
void StepLeader::SetLength(KvCache& cache, int64_t slot, int64_t n, int stack) {
  Edit(cache, kSetLength, slot, n, stack);
}

Status RunStepFollower(const Model& model, dist::Comm& comm, int* exit_code, DataParallelForward* dp) {
  StepRunner direct;
  StepRunner& runner = dp ? *dp : direct;
  const int64_t d = model.config().hidden_size;
  std::optional<KvCache> cache;
  Workspace ws;
  Batch batch;
  std::vector<uint8_t> body;
  std::vector<int64_t> edits;
  std::vector<float> hidden;
  for (;;) {
    int64_t h[kHeader];
    comm.BroadcastPatiently(h, sizeof h, 0);  // an idle server: sleep between polls
    body.resize(static_cast<size_t>(h[kBodyBytes]));
    comm.Broadcast(body.data(), h[kBodyBytes], 0);
    const int64_t n = h[kTokens];
    const uint8_t* at = Take(body.data(), 4 * h[kEdits], edits);
    at = Take(at, n, batch.tokens);
    at = Take(at, n, batch.positions);
    at = Take(at, n, batch.slots);
    at = Take(at, h[kLogitRows], batch.logit_rows);
    if (!dp) batch.logit_rows.clear();  // rank 0 samples from its own head product
    if (h[kOp] == kForwardMtp) Take(at, n * d, hidden);
    if ((h[kEdits] > 0 || h[kOp] == kForward || h[kOp] == kForwardMtp) && !cache)
      return Status::Error("step message: cache edits or a forward before the cache exists");
    for (int64_t e = 0; e < h[kEdits]; ++e) ApplyEdit(*cache, edits.data() + 4 * e, comm, dp != nullptr);
    switch (h[kOp]) {
      case kBegin: cache.emplace(model.NewCache(h[kArg0], h[kArg1])); break;
      case kForward: Report(runner.Forward(model, batch, *cache, ws), comm, dp); break;
      case kForwardMtp:
        Report(runner.ForwardMtp(model, static_cast<int>(h[kDepth]), batch, hidden.data(), *cache, ws, h[kDraftVocab]),
               comm, dp);
        break;
      case kStop: *exit_code = static_cast<int>(h[kArg0]); return Status::Ok();
      default: return Status::Error("step message with unknown operation " + std::to_string(h[kOp]));
    }
  }
}

}  // namespace dsv3
