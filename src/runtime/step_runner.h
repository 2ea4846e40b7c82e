// The scheduler's only way to touch the model and its latent cache: every
// forward pass and every change of a slot's cached rows between passes goes
// through a StepRunner. In one process it calls the model and the cache
// directly. Under mpirun (step_broadcast.h) rank 0's runner also sends each
// step to the other ranks, which replay it on their own copy of the cache so
// that every MoE layer's expert exchange lines up; the model itself knows
// nothing of who drives it.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace dsv3 {

class StepRunner {
 public:
  virtual ~StepRunner() = default;
  // The scheduler has allocated `slots` x `capacity` cache rows (once, before
  // its first forward).
  virtual void Begin(int64_t /*slots*/, int64_t /*capacity*/) {}
  virtual Status Forward(const Model& model, const Batch& batch, KvCache& cache, Workspace& ws) {
    return model.Forward(batch, cache, ws);
  }
  // hidden_in [batch.size(), hidden_size]: Model::ForwardMtp's input.
  virtual Status ForwardMtp(const Model& model, int depth, const Batch& batch, const float* hidden_in,
                            KvCache& cache, Workspace& ws, int64_t draft_vocab) {
    return model.ForwardMtp(depth, batch, hidden_in, cache, ws, draft_vocab);
  }
  // KvCache's edits, as the scheduler makes them between forwards.
  virtual void Truncate(KvCache& cache, int64_t slot, int64_t n) { cache.Truncate(slot, n); }
  virtual void CopyPrefix(KvCache& cache, int64_t src, int64_t dst, int64_t n) { cache.CopyPrefix(src, dst, n); }
  virtual void SetLength(KvCache& cache, int64_t slot, int64_t n, int stack) { cache.set_length(slot, n, stack); }
};

}  // namespace dsv3
