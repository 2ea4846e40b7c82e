// The continuous-batching loop; see scheduler.h. Threading: Submit, Cancel,
// BeginDrain, CancelAll and Stats may be called from any thread and touch
// only what mu_ guards (the queue, flags, counters); the cache, workspace,
// slot table and active sequences belong to the scheduler thread alone.
#include "runtime/scheduler.h"

#include <algorithm>
#include <chrono>
#include <future>
#include <new>

#include "core/parallel.h"
#include "runtime/logprobs.h"
#include "runtime/scheduler_sequence.h"

namespace dsv3 {

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kTimeout: return "timeout";
    case FinishReason::kError: return "error";
  }
  return "?";
}

double MonotonicSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int64_t DefaultContext(const Model& model) { return std::min<int64_t>(model.config().max_position_embeddings, 4096); }

Scheduler::Scheduler(const Model& model, const SchedulerOptions& options, StepRunner* runner)
    : model_(model),
      options_(options),
      runner_(runner ? runner : &local_runner_),
      cache_(model.NewCache(options.max_sequences, options.context)),
      slots_(options.max_sequences, options.context) {
  slots_.set_ranks(std::max(options.attention_ranks, 1));
}

Expected<std::unique_ptr<Scheduler>> Scheduler::Start(const Model& model, const SchedulerOptions& options,
                                                     StepRunner* runner) {
  SchedulerOptions o = options;
  if (o.context <= 0) o.context = DefaultContext(model);
  const int64_t max_pos = model.config().max_position_embeddings;
  if (o.context > max_pos)
    return Status::Error("context " + std::to_string(o.context) + " exceeds the model's max_position_embeddings " +
                         std::to_string(max_pos));
  if (o.context < 2) return Status::Error("context must be at least 2 tokens");
  if (o.max_sequences < 1) return Status::Error("max_sequences must be >= 1");
  if (o.max_queue < 0) return Status::Error("max_queue must be >= 0");
  if (o.prefill_chunk < 1) return Status::Error("prefill_chunk must be >= 1");
  if (o.draft_tokens < 0 || o.draft_tokens > 16) return Status::Error("--draft-tokens must be in [1, 16]");
  if (o.draft_tokens > 0 && !model.has_mtp())
    return Status::Error("--spec mtp: the model has no MTP layer (num_nextn_predict_layers is 0)");
  DSV3_RETURN_IF_ERROR(DraftVocab(model.config(), o.draft_vocab).status());
  std::unique_ptr<Scheduler> s(new Scheduler(model, o, runner));
  s->runner_->Begin(o.max_sequences, o.context);
  // The thread warms the workspace up first (buffers and per-thread scratch
  // belong to the thread pool that will use them), then serves.
  std::promise<Status> ready;
  auto ready_future = ready.get_future();
  Scheduler* self = s.get();
  s->thread_ = std::thread([self, &ready] {
    SetNumThreads(self->options_.threads);
    Status st;
    try {  // an exception on this thread would terminate the process; report it to Start instead
      st = self->Warmup();
    } catch (const std::bad_alloc&) {
      st = Status::Error("out of memory sizing the workspace (lower --parallel, --ctx-size or --prefill-chunk)");
    }
    const bool ok = st.ok();
    ready.set_value(st);
    if (ok) self->Loop();
  });
  const Status st = ready_future.get();
  if (!st.ok()) {
    s->thread_.join();
    return st.WithContext("warming up the scheduler");
  }
  return s;
}

Status Scheduler::Warmup() {
  // One forward of the largest batch a step can hold (a decode token for every
  // slot plus a full prefill chunk) sizes every buffer; spread over the slots
  // so it fits short contexts. Then the cache is emptied again. With
  // speculative decoding every slot verifies K + 1 tokens and the MTP layer
  // runs over as many rows.
  const int64_t slots = options_.max_sequences, per_slot = 1 + options_.draft_tokens;
  const int64_t n = std::min(slots * per_slot + options_.prefill_chunk, slots * options_.context);
  batch_.Clear();
  for (int64_t i = 0; i < n; ++i)
    batch_.Add(0, static_cast<int32_t>(i / slots), static_cast<int32_t>(i % slots), i < slots * per_slot);
  DSV3_RETURN_IF_ERROR(runner_->Forward(model_, batch_, cache_, ws_));
  if (options_.draft_tokens > 0) DSV3_RETURN_IF_ERROR(WarmupSpec());
  for (int64_t s = 0; s < slots; ++s) runner_->Truncate(cache_, s, 0);
  row_owner_.reserve(slots);
  in_batch_.assign(slots, 0);
  std::lock_guard<std::mutex> lock(mu_);
  stats_.slots = slots;
  stats_.context = options_.context;
  stats_.kv_cache_bytes = cache_.bytes();
  stats_.draft_tokens = options_.draft_tokens;
  stats_.spec = spec_;
  free_slots_ = slots;
  return Status::Ok();
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    accepting_ = false;
    cancel_all_ = true;
  }
  work_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

SubmitResult Scheduler::Check(const GenerationRequest& r) const {
  auto invalid = [](std::string m) { return SubmitResult{SubmitCode::kInvalid, std::move(m), nullptr}; };
  const int64_t vocab = model_.config().vocab_size, p = static_cast<int64_t>(r.prompt.size());
  if (p == 0) return invalid("the prompt is empty: give at least one token");
  for (int64_t i = 0; i < p; ++i)
    if (r.prompt[i] < 0 || r.prompt[i] >= vocab)
      return invalid("prompt token " + std::to_string(i) + " (id " + std::to_string(r.prompt[i]) +
                     ") is out of range [0, " + std::to_string(vocab) + ")");
  if (r.max_tokens < 1) return invalid("max_tokens must be >= 1 (got " + std::to_string(r.max_tokens) + ")");
  if (r.max_tokens > options_.context || p + r.max_tokens > options_.context)
    return invalid("prompt (" + std::to_string(p) + " tokens) + max_tokens (" + std::to_string(r.max_tokens) +
                   ") exceeds the context of " + std::to_string(options_.context) + " tokens");
  if (r.logprobs < -1 || r.logprobs > kMaxTopLogprobs || r.logprobs > vocab)
    return invalid("logprobs must be in [0, " + std::to_string(kMaxTopLogprobs) + "]");
  for (int32_t t : r.stop_token_ids)
    if (t < 0 || t >= vocab) return invalid("stop token id " + std::to_string(t) + " is out of range");
  if (Status st = r.sampling.Validate(vocab); !st.ok()) return invalid(st.message());
  return {};
}

SubmitResult Scheduler::Submit(GenerationRequest r) {
  std::vector<GenerationRequest> one;
  one.push_back(std::move(r));
  return SubmitGroup(std::move(one), nullptr);
}

SubmitResult Scheduler::SubmitGroup(std::vector<GenerationRequest> requests,
                                    std::vector<std::shared_ptr<SequenceHandle>>* handles) {
  if (requests.empty()) return {SubmitCode::kInvalid, "no requests", nullptr};
  for (const GenerationRequest& r : requests) {
    if (SubmitResult c = Check(r); c.code != SubmitCode::kAccepted) return c;
    if (r.prompt != requests[0].prompt) return {SubmitCode::kInvalid, "a group's prompts differ", nullptr};
  }
  // Sequences (and their samplers' penalty state) are built before taking the lock.
  const int64_t vocab = model_.config().vocab_size, n = static_cast<int64_t>(requests.size());
  std::vector<std::unique_ptr<Sequence>> seqs;
  for (GenerationRequest& r : requests) {
    seqs.push_back(std::make_unique<Sequence>(std::move(r), nullptr));
    seqs.back()->sampler.Start(seqs.back()->req.prompt, vocab);
    seqs.back()->sampler.Constrain(seqs.back()->req.grammar, seqs.back()->req.max_tokens);
  }
  std::unique_lock<std::mutex> lock(mu_);
  if (!accepting_) return {SubmitCode::kShuttingDown, refusal_, nullptr};
  if (static_cast<int64_t>(queue_.size()) + n > options_.max_queue + free_slots_)
    return {SubmitCode::kQueueFull,
            "too many requests: " + std::to_string(queue_.size()) + " already waiting (limit " +
                std::to_string(options_.max_queue) + ")",
            nullptr};
  const uint64_t leader = next_id_;
  if (handles) handles->clear();
  for (auto& seq : seqs) {
    seq->handle = std::make_shared<SequenceHandle>(next_id_++);
    if (n > 1 && seq->handle->id() != leader) seq->leader = leader;
    if (handles) handles->push_back(seq->handle);
  }
  std::shared_ptr<SequenceHandle> first = seqs[0]->handle;
  for (auto& seq : seqs) queue_.push_back(std::move(seq));
  stats_.waiting = static_cast<int64_t>(queue_.size());
  lock.unlock();
  work_cv_.notify_one();
  return {SubmitCode::kAccepted, {}, first};
}

void Scheduler::BeginDrain(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  accepting_ = false;
  if (!reason.empty()) refusal_ = reason;
  for (auto& s : queue_) s->handle->Cancel();
  work_cv_.notify_all();
}

void Scheduler::CancelAll() {
  std::lock_guard<std::mutex> lock(mu_);
  accepting_ = false;
  cancel_all_ = true;
  work_cv_.notify_all();
}

bool Scheduler::WaitIdle(double timeout_s) {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_cv_.wait_for(lock, std::chrono::duration<double>(timeout_s),
                           [&] { return queue_.empty() && stats_.running == 0; });
}

SchedulerStats Scheduler::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void Scheduler::Loop() {
  while (WaitForWork()) {
    ReapCancelled();
    Admit();
    if (active_.empty()) continue;
    step_start_ = MonotonicSeconds();
    if (options_.draft_tokens > 0) {
      Draft();
      std::erase_if(active_, [](const auto& s) { return s->finished; });
      if (active_.empty()) continue;
    }
    BuildBatch();
    RunStep();
  }
}

bool Scheduler::WaitForWork() {
  std::unique_lock<std::mutex> lock(mu_);
  stats_.running = static_cast<int64_t>(active_.size());
  stats_.waiting = static_cast<int64_t>(queue_.size());
  if (active_.empty() && queue_.empty()) idle_cv_.notify_all();
  work_cv_.wait(lock, [&] { return stop_ || cancel_all_ || !queue_.empty() || !active_.empty(); });
  if (stop_ && queue_.empty() && active_.empty()) return false;
  if (cancel_all_ && queue_.empty() && active_.empty()) cancel_all_ = stop_;  // nothing left to cancel
  return true;
}

void Scheduler::ReapCancelled() {
  const double now = MonotonicSeconds();
  auto expired = [&](const Sequence& s) { return s.req.deadline > 0 && now > s.req.deadline; };
  std::deque<std::unique_ptr<Sequence>> ended;
  bool all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    all = cancel_all_;
    for (auto& s : queue_)
      if (all || s->handle->cancelled() || expired(*s)) ended.push_back(std::move(s));
    std::erase(queue_, nullptr);
    stats_.waiting = static_cast<int64_t>(queue_.size());
  }
  for (auto& s : ended) Finish(*s, expired(*s) && !s->handle->cancelled() ? FinishReason::kTimeout : FinishReason::kCancelled);
  for (auto& s : active_) {
    if (all || s->handle->cancelled()) Finish(*s, FinishReason::kCancelled);
    else if (expired(*s)) Finish(*s, FinishReason::kTimeout);
  }
  std::erase_if(active_, [](const auto& s) { return s->finished; });
}

bool Scheduler::PromptReady(const Sequence& seq) const {
  if (seq.leader == 0) return true;
  // Waits while the leader is queued or still reading the prompt; once it
  // has finished (or was cancelled) the follower reads what is cached.
  for (const auto& q : queue_)
    if (q && q->handle->id() == seq.leader) return false;
  // With drafting, also until the leader's MTP stack has caught up (the step
  // after), or the follower could reuse only the rows the MTP layer had read.
  const int64_t p = static_cast<int64_t>(seq.req.prompt.size());
  for (const auto& a : active_)
    if (a->handle->id() == seq.leader)
      return a->finished || (a->last_token >= 0 && (options_.draft_tokens == 0 || a->mtp_from >= p - 1));
  return true;
}

void Scheduler::Admit() {
  std::lock_guard<std::mutex> lock(mu_);
  // In arrival order; group followers whose leader has not read the prompt
  // yet keep their place while later requests go ahead.
  for (auto it = queue_.begin(); it != queue_.end() && slots_.num_free() > 0;) {
    if (!PromptReady(**it)) {
      ++it;
      continue;
    }
    std::unique_ptr<Sequence> seq = std::move(*it);
    it = queue_.erase(it);
    PlaceInSlot(*seq);
    stats_.prompt_tokens += static_cast<int64_t>(seq->req.prompt.size());
    stats_.cached_prompt_tokens += seq->cached;
    active_.push_back(std::move(seq));
  }
  free_slots_ = slots_.num_free();
  stats_.waiting = static_cast<int64_t>(queue_.size());
  stats_.running = static_cast<int64_t>(active_.size());
}

void Scheduler::PlaceInSlot(Sequence& seq) {
  const std::vector<int32_t>& prompt = seq.req.prompt;
  // A group follower copies its leader's rows however short the prompt, and
  // even with prefix reuse off (that setting is about reuse across requests).
  const bool follower = seq.leader != 0;
  const SlotChoice c = slots_.Pick(prompt, options_.prefix_reuse || follower, follower ? 1 : 16);
  int64_t reuse = c.reuse;
  if (options_.draft_tokens > 0 && reuse > 0) {
    // MTP row i was built with token i + 1 of its old sequence: rows are good
    // up to reuse - 1, and only as far as the MTP stack got. The main stack
    // restarts where the MTP one ends, so both advance together.
    reuse = std::min(reuse - 1, cache_.length(c.copy_from >= 0 ? c.copy_from : c.slot, /*stack=*/1));
  }
  std::vector<int32_t>& tokens = slots_.tokens(c.slot);
  if (c.copy_from >= 0) {
    runner_->CopyPrefix(cache_, c.copy_from, c.slot, reuse);
    tokens.assign(prompt.begin(), prompt.begin() + reuse);
  } else {
    runner_->Truncate(cache_, c.slot, reuse);
    tokens.resize(reuse);
  }
  slots_.Acquire(c.slot);
  seq.slot = c.slot;
  seq.next_prompt = seq.cached = seq.mtp_from = reuse;
}

void Scheduler::BuildBatch() {
  batch_.Clear();
  row_owner_.clear();
  for (auto& s : active_) s->batch_count = 0;
  // Every generating sequence advances by one token (or verifies its drafts)...
  for (auto& s : active_) {
    if (s->last_token < 0) continue;
    if (options_.draft_tokens > 0) {
      BuildSpecRows(*s);
      continue;
    }
    std::vector<int32_t>& tokens = slots_.tokens(s->slot);
    batch_.Add(s->last_token, static_cast<int32_t>(tokens.size()), static_cast<int32_t>(s->slot), true);
    tokens.push_back(s->last_token);
    row_owner_.push_back(s.get());
  }
  // ...and prompts are read in admission order within the chunk budget.
  int64_t budget = options_.prefill_chunk;
  for (auto& s : active_) {
    if (s->last_token >= 0 || budget == 0) continue;
    const std::vector<int32_t>& prompt = s->req.prompt;
    const int64_t p = static_cast<int64_t>(prompt.size());
    const int64_t n = std::min(p - s->next_prompt, budget);
    std::vector<int32_t>& tokens = slots_.tokens(s->slot);
    s->batch_row = batch_.size(), s->batch_count = n;
    for (int64_t i = s->next_prompt; i < s->next_prompt + n; ++i) {
      batch_.Add(prompt[i], static_cast<int32_t>(i), static_cast<int32_t>(s->slot), i == p - 1);
      tokens.push_back(prompt[i]);
    }
    s->next_prompt += n;
    budget -= n;
    if (s->next_prompt == p) row_owner_.push_back(s.get());
  }
}

void Scheduler::FailSlots(const Batch& batch, const Status& st) {
  // Nothing of this step is trustworthy: end its sequences and forget their rows.
  std::fill(in_batch_.begin(), in_batch_.end(), 0);
  for (int64_t i = 0; i < batch.size(); ++i) in_batch_[batch.slots[i]] = 1;
  for (auto& s : active_) {
    if (!in_batch_[s->slot] || s->finished) continue;
    runner_->Truncate(cache_, s->slot, 0);
    slots_.tokens(s->slot).clear();
    Finish(*s, FinishReason::kError, st.message());
  }
}

void Scheduler::RunStep() {
  step_emitted_ = 0;
  const Status st = runner_->Forward(model_, batch_, cache_, ws_);
  if (!st.ok()) {
    FailSlots(batch_, st);
  } else if (options_.draft_tokens > 0) {
    ConsumeSpec();
  } else {
    Consume();
  }
  std::erase_if(active_, [](const auto& s) { return s->finished; });
  std::lock_guard<std::mutex> lock(mu_);
  stats_.forward_passes += 1;
  stats_.batch_tokens += batch_.size();
  stats_.max_batch_tokens_seen = std::max(stats_.max_batch_tokens_seen, batch_.size());
  stats_.busy_seconds += MonotonicSeconds() - step_start_;
  stats_.generated_tokens += step_emitted_;
  if (options_.draft_tokens > 0) stats_.spec = spec_;  // same sizes: no allocation
  stats_.running = static_cast<int64_t>(active_.size());
  free_slots_ = slots_.num_free();
}

void Scheduler::Consume() {
  const int64_t vocab = model_.config().vocab_size;
  for (size_t r = 0; r < row_owner_.size(); ++r) Emit(*row_owner_[r], ws_.logits.data() + r * vocab);
}

void Scheduler::Emit(Sequence& seq, const float* logits) {
  EmitToken(seq, seq.sampler.Sample(logits, model_.config().vocab_size), logits, /*last_of_step=*/true);
}

bool Scheduler::EmitToken(Sequence& seq, int32_t token, const float* logits, bool last_of_step) {
  const Config& c = model_.config();
  const int64_t vocab = c.vocab_size;
  ++step_emitted_;
  seq.sampler.Accept(token);
  if (seq.sampler.constraint_failed()) {
    Finish(seq, FinishReason::kError, "no token of the vocabulary continues a document the JSON schema admits");
    return false;
  }
  TokenEvent ev;
  ev.token = token;
  ev.index = seq.generated++;
  ev.stop_token = (seq.req.stop_at_eos && std::count(c.eos_token_ids.begin(), c.eos_token_ids.end(), token)) ||
                  std::count(seq.req.stop_token_ids.begin(), seq.req.stop_token_ids.end(), token);
  if (seq.req.logprobs >= 0) {
    ev.logprob = TokenLogprobs(logits, vocab, token, seq.req.logprobs, seq.top.data());
    ev.top = std::span<const TokenLogprob>(seq.top.data(), seq.req.logprobs);
  }
  const bool keep_going = !seq.req.on_token || seq.req.on_token(ev);
  if (ev.stop_token || !keep_going) {
    Finish(seq, FinishReason::kStop);
  } else if (seq.generated >= seq.req.max_tokens ||
             (last_of_step && static_cast<int64_t>(slots_.tokens(seq.slot).size()) >= options_.context)) {
    Finish(seq, FinishReason::kLength);
  } else if (last_of_step) {
    seq.last_token = token;
  }
  return !seq.finished;
}

void Scheduler::Finish(Sequence& seq, FinishReason reason, std::string error) {
  if (seq.finished) return;
  seq.finished = true;
  if (seq.slot >= 0) slots_.Release(seq.slot);
  FinishInfo info;
  info.reason = reason;
  info.prompt_tokens = static_cast<int64_t>(seq.req.prompt.size());
  info.cached_prompt_tokens = seq.cached;
  info.completion_tokens = seq.generated;
  info.error = std::move(error);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.requests_finished += 1;
  }
  if (seq.req.on_finish) seq.req.on_finish(info);
}

}  // namespace dsv3
