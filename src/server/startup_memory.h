// What `dsv3 serve` will allocate at start-up, checked against what the
// machine and the process limits allow before anything is allocated. The
// latent KV cache (--parallel x --ctx-size rows per layer), the forward
// workspace sized by a warm-up pass over the largest batch (--parallel x
// (1 + draft tokens) + --prefill-chunk tokens) and the HTTP worker stacks
// are each fine alone, but flags inside their advertised ranges multiply to
// tens of gigabytes: without this check such a start-up is OOM-killed or dies
// of an uncaught std::bad_alloc. The estimate follows Model::Reserve and
// KvCache's layout, so it is a lower bound of what start-up touches.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"
#include "model/config.h"
#include "model/kv_cache.h"

namespace dsv3::server {

struct StartupPlan {
  int64_t slots = 8, context = 0, prefill_chunk = 128;
  int draft_tokens = 0;
  KvCacheType kv_cache = KvCacheType::kF32;
  int threads = 0;          // HTTP worker threads (both pools)
  size_t stack_bytes = 0;   // each
};

struct StartupMemory {
  uint64_t kv_cache = 0, workspace = 0, thread_stacks = 0;
  int64_t batch_tokens = 0;  // the warm-up batch
  uint64_t resident() const { return kv_cache + workspace; }          // touched: must fit in RAM
  uint64_t address_space() const { return resident() + thread_stacks; }  // reserved: must fit RLIMIT_AS
};

StartupMemory EstimateStartupMemory(const Config& config, const StartupPlan& plan);

struct MemoryLimits {
  uint64_t available = 0;         // MemAvailable (/proc/meminfo); 0: unknown
  uint64_t address_limit = 0;     // RLIMIT_AS (ulimit -v); 0: unlimited
  uint64_t address_used = 0;      // this process's VmSize now
};

MemoryLimits ReadMemoryLimits();

// An error naming `flags` and the memory needed against what is available
// when the estimate does not fit; Ok otherwise (or when nothing is known).
Status CheckStartupMemory(const StartupMemory& need, const MemoryLimits& have, const std::string& flags);

// "1.5 GiB" / "12.0 MiB".
std::string FormatBytes(uint64_t bytes);

}  // namespace dsv3::server
