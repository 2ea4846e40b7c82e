// Continuous batching under mpirun (docs/distributed.md, "serve"): rank 0
// runs the HTTP server and the scheduler; the other ranks hold a copy of the
// latent cache and replay every step rank 0 takes, so that each MoE layer's
// expert exchange has all ranks in it. Rank 0's StepLeader is the
// scheduler's StepRunner: it broadcasts a compact description of each step
// (the cache edits since the last one, then the batch: tokens, positions,
// slots, and for an MTP pass its hidden-state input) and runs the forward
// itself. Only rank 0 samples; the followers compute no logits. With
// data-parallel attention (a DataParallelForward on every rank) each rank
// runs only its own slots' tokens, computes their logits and sends them to
// rank 0 (runtime/data_parallel.h).
//
// Threads: MPI is used by the thread that initialised it only
// (MPI_THREAD_FUNNELED), so the leader's Run() loop owns that thread and the
// scheduler thread hands it each forward and waits. Fail() (a rank died, or
// mpirun is ending the job) makes every waiting and later forward return an
// error at once, while the MPI thread may stay blocked in an exchange that
// will never complete; the process must then exit without MPI_Finalize.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "dist/comm.h"
#include "runtime/data_parallel.h"
#include "runtime/step_runner.h"

namespace dsv3 {

class StepLeader : public StepRunner {
 public:
  // dp: data-parallel attention (null: every rank runs every token).
  StepLeader(const Model& model, dist::Comm& comm, DataParallelForward* dp = nullptr)
      : model_(model), comm_(comm), dp_(dp), runner_(dp ? *dp : direct_) {}

  // On the MPI thread: broadcasts and runs the steps the scheduler asks for
  // until Stop(), then tells the followers to exit with Stop's code. Does
  // not return after Fail() if the thread is blocked in an exchange.
  void Run();
  // Any thread: Run() returns once the steps already asked for are done.
  void Stop(int exit_code);
  // Any thread: the job cannot go on; forwards fail with `reason` from now.
  void Fail(const std::string& reason);
  bool failed() const;
  std::string failure() const;

  void Begin(int64_t slots, int64_t capacity) override;
  Status Forward(const Model& model, const Batch& batch, KvCache& cache, Workspace& ws) override;
  Status ForwardMtp(const Model& model, int depth, const Batch& batch, const float* hidden_in, KvCache& cache,
                    Workspace& ws, int64_t draft_vocab) override;
  void Truncate(KvCache& cache, int64_t slot, int64_t n) override;
  void CopyPrefix(KvCache& cache, int64_t src, int64_t dst, int64_t n) override;
  void SetLength(KvCache& cache, int64_t slot, int64_t n, int stack) override;

 private:
  struct Job {
    int op = 0, depth = 0;
    const Batch* batch = nullptr;
    const float* hidden_in = nullptr;
    KvCache* cache = nullptr;
    Workspace* ws = nullptr;
    int64_t draft_vocab = 0, slots = 0, capacity = 0;
  };
  Status Post(const Job& job);        // scheduler thread: hand over, wait
  void Send(const Job& job);          // MPI thread: the step's message
  Status Execute(const Job& job);
  void Edit(KvCache& cache, int64_t kind, int64_t a, int64_t b, int64_t c);

  const Model& model_;
  dist::Comm& comm_;
  DataParallelForward* dp_ = nullptr;
  StepRunner direct_;   // the model itself, without data-parallel attention
  StepRunner& runner_;  // *dp_ or direct_: runs each forward
  mutable std::mutex mu_;
  std::condition_variable cv_;
  Job job_;
  uint64_t posted_ = 0, done_ = 0;
  Status result_;
  bool stop_ = false, failed_ = false;
  int exit_code_ = 0;
  std::string failure_;
  std::vector<int64_t> edits_;   // [n, 4] cache edits since the last message (kind, a, b, c)
  std::vector<uint8_t> body_;    // the message being sent (MPI thread)
};

// On every rank but 0: replays rank 0's steps until it says stop; *exit_code
// is the code rank 0 chose. Errors of a forward are rank 0's to report (the
// same batch fails the same way here; with `dp`, rank 0 learns that this
// rank's part failed and this rank prints why).
Status RunStepFollower(const Model& model, dist::Comm& comm, int* exit_code, DataParallelForward* dp = nullptr);

}  // namespace dsv3
