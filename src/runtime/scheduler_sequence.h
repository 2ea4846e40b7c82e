// The scheduler's record of one request while it is queued or running; shared
// by scheduler.cc (admission, batching, sampling) and scheduler_spec.cc
// (speculative decoding). Owned by the scheduler thread once admitted.
#pragma once

#include <algorithm>
#include <memory>
#include <vector>

#include "runtime/request.h"
#include "runtime/sampler.h"
#include "runtime/scheduler.h"

namespace dsv3 {

struct Scheduler::Sequence {
  Sequence(GenerationRequest r, std::shared_ptr<SequenceHandle> h)
      : req(std::move(r)), handle(std::move(h)), sampler(req.sampling), top(std::max(req.logprobs, 0)) {}
  GenerationRequest req;
  std::shared_ptr<SequenceHandle> handle;
  Sampler sampler;
  std::vector<TokenLogprob> top;  // [logprobs] scratch for each token's alternatives
  uint64_t leader = 0;      // SubmitGroup: the id of the group's first sequence (0: none, or this is it)
  int64_t slot = -1;
  int64_t next_prompt = 0;  // prompt tokens already scheduled into the slot
  int64_t cached = 0;       // of which reused from the prefix cache
  int64_t generated = 0;
  int32_t last_token = -1;  // the sampled token the next decode step feeds; -1 while prefilling
  bool finished = false;
  int64_t batch_row = 0, batch_count = 0;  // its rows in this step's main batch
  // Speculative decoding: the MTP stack holds positions [0, mtp_from); the
  // main hidden states of positions [mtp_from, mtp_from + carry_count) wait
  // in carry_ from row carry_row on.
  int64_t mtp_from = 0, carry_row = 0, carry_count = 0;
  int64_t drafts_n = 0;  // drafts proposed in this step
};

}  // namespace dsv3
