// Continuous batching: one scheduler thread owns the model's latent KV cache
// and runs every active sequence through shared forward passes. Between two
// forwards it admits queued requests into free cache slots (reusing a cached
// prompt prefix when it can); each forward carries one decode token for every
// sequence that is generating plus at most `prefill_chunk` prompt tokens of
// sequences still reading their prompt, so a long prompt never stalls the
// running streams for more than one bounded chunk. A sequence that finishes,
// is cancelled or times out frees its slot before the next forward.
//
// Generalises Generate() (generate.h): with the same options a sequence gets
// the same tokens whatever else shares its batches, because every row of a
// ragged batch is computed exactly as it would be alone.
//
// With draft_tokens K > 0 (speculative decoding, speculative.h) each step
// first runs the model's MTP layer over every sequence: it catches the MTP
// latent cache up on the main hidden states of the previous step (prompt
// chunks and accepted tokens) and proposes up to K drafts per generating
// sequence; the main forward then verifies [pending token, drafts...] of every
// sequence at once, and each sequence accepts its own prefix plus one
// corrected token (exact match when greedy, rejection sampling otherwise), so
// greedy output is unchanged and sampled output keeps its distribution.
// Rejected rows are dropped by truncating the slot's lengths; after each
// draft phase the MTP stack of a slot holds exactly the positions of its main
// stack, so prefix reuse and cancellation keep the two in step.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "model/model.h"
#include "runtime/request.h"
#include "runtime/speculative.h"
#include "runtime/slot_table.h"
#include "runtime/step_runner.h"

namespace dsv3 {

struct SchedulerOptions {
  int64_t max_sequences = 8;   // sequences decoding at once (= latent-cache slots)
  int64_t context = 0;         // tokens per slot (prompt + completion); 0: min(max_position_embeddings, 4096)
  int64_t max_queue = 64;      // requests waiting for a slot before Submit refuses
  int64_t prefill_chunk = 128;  // prompt tokens per forward, over all sequences
  bool prefix_reuse = true;    // reuse cached prompt prefixes
  int threads = 0;             // forward-pass threads (0: the process default)
  int draft_tokens = 0;        // MTP speculative decoding: drafts per sequence and step (0: off; needs an MTP layer)
  int64_t draft_vocab = 0;     // drafts among token ids [0, draft_vocab) only (0: all; speculative.h DraftVocab)
  int attention_ranks = 1;     // data-parallel attention: slot s runs on rank s % attention_ranks (slot_table.h)
};

// Cancels a submitted request from any thread; the scheduler ends it (reason
// kCancelled) before its next forward and calls on_finish.
class SequenceHandle {
 public:
  explicit SequenceHandle(uint64_t id) : id_(id) {}
  uint64_t id() const { return id_; }
  void Cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

 private:
  uint64_t id_;
  std::atomic<bool> cancelled_{false};
};

enum class SubmitCode { kAccepted, kInvalid, kQueueFull, kShuttingDown };

struct SubmitResult {
  SubmitCode code = SubmitCode::kAccepted;
  std::string message;                     // why not accepted
  std::shared_ptr<SequenceHandle> handle;  // set when accepted
};

// Counters for /metrics and tests (a consistent snapshot).
struct SchedulerStats {
  int64_t waiting = 0, running = 0, slots = 0, context = 0;
  int64_t requests_finished = 0;
  int64_t prompt_tokens = 0, cached_prompt_tokens = 0, generated_tokens = 0;
  int64_t forward_passes = 0, batch_tokens = 0, max_batch_tokens_seen = 0;
  double busy_seconds = 0;  // time spent in forward passes and sampling
  size_t kv_cache_bytes = 0;
  int64_t draft_tokens = 0;  // K (0: no speculative decoding)
  // Speculative rounds (one per sequence per verifying step), drafts proposed
  // and accepted (also per draft position), tokens those rounds emitted.
  SpecStats spec;
};

// The per-sequence context a scheduler gets when SchedulerOptions::context
// is 0: the model's max_position_embeddings, at most 4096.
int64_t DefaultContext(const Model& model);

class Scheduler {
 public:
  // Allocates the cache and the workspace for the largest batch (so the token
  // loop never grows them) and starts the scheduler thread. Forwards and
  // cache edits go through `runner` (null: straight to the model and cache;
  // step_broadcast.h: also to the other ranks of an mpirun job), which must
  // outlive the scheduler.
  static Expected<std::unique_ptr<Scheduler>> Start(const Model& model, const SchedulerOptions& options,
                                                    StepRunner* runner = nullptr);
  ~Scheduler();  // cancels whatever is left and joins the thread

  // Validates and queues a request. kInvalid: bad prompt/limits (message
  // names the field); kQueueFull: max_queue requests already wait.
  SubmitResult Submit(GenerationRequest request);
  // Several sequences of one prompt (a request's n > 1 choices), all queued
  // or none: the first reads the prompt, the others wait until it has and
  // then copy its cache rows, computing only the last prompt token (whose
  // logits start each one's completion). The result's handle is the first
  // sequence's; `handles` gets one per request, in order.
  SubmitResult SubmitGroup(std::vector<GenerationRequest> requests,
                           std::vector<std::shared_ptr<SequenceHandle>>* handles);

  // Refuses new requests (kShuttingDown, with `reason` when given) and ends
  // queued ones (kCancelled); running sequences continue. Then CancelAll()
  // ends those too.
  void BeginDrain(const std::string& reason = {});
  void CancelAll();
  // Blocks until nothing is queued or running, or `timeout_s` passes; true if idle.
  bool WaitIdle(double timeout_s);

  SchedulerStats Stats() const;
  const SchedulerOptions& options() const { return options_; }
  const Model& model() const { return model_; }

 private:
  struct Sequence;
  Scheduler(const Model& model, const SchedulerOptions& options, StepRunner* runner);
  Status Warmup();
  void Loop();
  bool WaitForWork();
  void ReapCancelled();
  SubmitResult Check(const GenerationRequest& r) const;  // kAccepted or kInvalid
  void Admit();
  bool PromptReady(const Sequence& seq) const;  // a group follower may be admitted
  void PlaceInSlot(Sequence& seq);
  void BuildBatch();
  void RunStep();
  void Consume();
  void Emit(Sequence& seq, const float* logits);
  // Hands one token to the request; false when the sequence finished. Only
  // the last token of a step becomes the next decode input.
  bool EmitToken(Sequence& seq, int32_t token, const float* logits, bool last_of_step);
  void FailSlots(const Batch& batch, const Status& st);
  // Speculative decoding (scheduler_spec.cc).
  Status WarmupSpec();
  void Draft();
  int64_t DraftPick(int64_t depth);
  int64_t DraftBudget(const Sequence& seq) const;
  int32_t TokenAfter(const Sequence& seq, int64_t pos) const;
  void BuildSpecRows(Sequence& seq);
  void ConsumeSpec();
  void Verify(Sequence& seq, const float* logits);
  void Carry(Sequence& seq, int64_t batch_row, int64_t count);
  void Finish(Sequence& seq, FinishReason reason, std::string error = {});

  const Model& model_;
  SchedulerOptions options_;
  StepRunner local_runner_;
  StepRunner* runner_;  // local_runner_ or the caller's
  KvCache cache_;
  Workspace ws_;
  Batch batch_;
  SlotTable slots_;

  // Shared with submitting threads (guarded by mu_).
  mutable std::mutex mu_;
  std::condition_variable work_cv_, idle_cv_;
  std::deque<std::unique_ptr<Sequence>> queue_;
  bool accepting_ = true, stop_ = false, cancel_all_ = false;
  std::string refusal_ = "the server is shutting down";  // why Submit refuses once !accepting_
  int64_t free_slots_ = 0;  // mirrors slots_.num_free() for Submit's queue limit
  uint64_t next_id_ = 1;
  SchedulerStats stats_;

  // Owned by the scheduler thread.
  std::deque<std::unique_ptr<Sequence>> active_;  // in admission order
  std::vector<Sequence*> row_owner_;              // logit row -> sequence
  std::vector<char> in_batch_;                    // [slots] scratch: slot has tokens in this step
  int64_t step_emitted_ = 0;                      // tokens handed out in this step
  double step_start_ = 0;                         // when this step's work began
  // Speculative decoding buffers, sized at start (rows = the largest main batch).
  std::vector<float> carry_;               // [rows, d] main hidden states the MTP layer has not read yet
  std::vector<float> hidden_in_;           // [rows, d] the MTP batch's hidden inputs
  std::vector<float> mtp_h_;               // [slots, d] MTP outputs feeding the next draft depth
  std::vector<int32_t> drafts_;            // [slots, K] by slot
  std::vector<float> q_;                   // [slots, K, V] draft distributions (sampling only)
  int64_t draft_vocab_ = 0;                // drafts among ids [0, draft_vocab_)
  std::vector<float> probs_, residual_;    // [V] acceptance scratch
  std::vector<Sequence*> draft_owner_;     // MTP logit row -> sequence
  int64_t carry_used_ = 0;
  SpecStats spec_;                         // copied into stats_ after every step
  std::thread thread_;
};

}  // namespace dsv3
