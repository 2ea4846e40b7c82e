// Start-up memory estimate and check; see startup_memory.h.
#include "server/startup_memory.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "ops/ops.h"

namespace dsv3::server {

namespace {

// 4-byte elements per token of the forward workspace (Model::Reserve).
uint64_t WorkspaceElementsPerToken(const Config& c) {
  const int64_t d = c.hidden_size, H = c.num_attention_heads;
  const int64_t K = std::max<int64_t>(c.num_experts_per_tok, 1), E = std::max<int64_t>(c.n_routed_experts, 1);
  const int64_t ffn =
      std::max(c.intermediate_size, K * c.moe_intermediate_size + c.moe_intermediate_size * c.n_shared_experts);
  const int64_t per = 4 * d                                   // h, x, proj, hidden
                      + std::max<int64_t>(c.q_lora_rank, 1)   // q_a
                      + H * c.qk_head_dim() + c.kv_latent_dim()  // q, kv
                      + H * c.kv_latent_dim() + H * c.kv_lora_rank + H * c.v_head_dim  // q_full, o_lat, attn
                      + 2 * H                                 // mha_max, mha_sum (decompressed attention)
                      + c.qk_rope_head_dim                    // rope cos + sin
                      + 2 * ffn                               // ffn gate, up
                      + E + 5 * K                             // router logits, expert ids/weights/slots
                      + 2 * K * d + 2 * d;                    // gathered rows in and out, MTP input
  return static_cast<uint64_t>(per);
}

// A "Key:   123 kB" line of a /proc file, in bytes; 0 if absent.
uint64_t ProcKilobytes(const char* path, const std::string& key) {
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(key + ":", 0) != 0) continue;
    unsigned long long kb = 0;
    if (std::sscanf(line.c_str() + key.size() + 1, "%llu", &kb) == 1) return kb * 1024;
  }
  return 0;
}

}  // namespace

std::string FormatBytes(uint64_t bytes) {
  char buf[32];
  if (bytes >= (uint64_t{1} << 30)) std::snprintf(buf, sizeof(buf), "%.1f GiB", bytes / 1073741824.0);
  else std::snprintf(buf, sizeof(buf), "%.1f MiB", bytes / 1048576.0);
  return buf;
}

StartupMemory EstimateStartupMemory(const Config& c, const StartupPlan& p) {
  StartupMemory m;
  const uint64_t rows = static_cast<uint64_t>(p.slots) * c.num_layers_with_mtp() * p.context;
  const uint64_t row_dim = static_cast<uint64_t>(c.kv_latent_dim());
  m.kv_cache = p.kv_cache == KvCacheType::kF32 ? rows * row_dim * 4 : rows * (row_dim + 8);
  const int64_t per_slot = 1 + p.draft_tokens;
  m.batch_tokens = std::min(p.slots * per_slot + p.prefill_chunk, p.slots * p.context);
  const uint64_t n = static_cast<uint64_t>(m.batch_tokens), d = static_cast<uint64_t>(c.hidden_size);
  const uint64_t logit_rows = std::min<uint64_t>(static_cast<uint64_t>(p.slots * per_slot), n);
  uint64_t elements = n * WorkspaceElementsPerToken(c) + logit_rows * c.vocab_size;
  // The decompressed attention's chunk of cache rows and their expansion per head.
  elements += static_cast<uint64_t>(ops::kMhaChunk) *
              (c.kv_latent_dim() + c.num_attention_heads * (c.qk_nope_head_dim + c.v_head_dim));
  if (p.draft_tokens > 0)  // MTP carry and input rows, per-slot MTP state and draft distributions
    elements += 2 * n * d + p.slots * d + static_cast<uint64_t>(p.slots) * p.draft_tokens * c.vocab_size;
  m.workspace = elements * 4;
  m.thread_stacks = static_cast<uint64_t>(p.threads) * p.stack_bytes;
  return m;
}

MemoryLimits ReadMemoryLimits() {
  MemoryLimits m;
  m.available = ProcKilobytes("/proc/meminfo", "MemAvailable");
  rlimit r{};
  if (getrlimit(RLIMIT_AS, &r) == 0 && r.rlim_cur != RLIM_INFINITY) m.address_limit = r.rlim_cur;
  m.address_used = ProcKilobytes("/proc/self/status", "VmSize");
  return m;
}

Status CheckStartupMemory(const StartupMemory& need, const MemoryLimits& have, const std::string& flags) {
  const std::string parts = "KV cache " + FormatBytes(need.kv_cache) + ", forward workspace " +
                            FormatBytes(need.workspace) + " for a " + std::to_string(need.batch_tokens) +
                            "-token warm-up batch";
  if (have.available > 0 && need.resident() > have.available)
    return Status::Error(flags + ": start-up needs at least " + FormatBytes(need.resident()) + " of memory (" + parts +
                         ") but only " + FormatBytes(have.available) +
                         " is available (MemAvailable); lower these flags");
  if (have.address_limit > 0) {
    const uint64_t left = have.address_limit > have.address_used ? have.address_limit - have.address_used : 0;
    if (need.address_space() > left)
      return Status::Error(flags + ": start-up needs at least " + FormatBytes(need.address_space()) +
                           " of address space (" + parts + ", HTTP worker stacks " + FormatBytes(need.thread_stacks) +
                           ") but the address-space limit (ulimit -v, RLIMIT_AS) of " +
                           FormatBytes(have.address_limit) + " leaves " + FormatBytes(left) +
                           "; lower these flags or raise the limit");
  }
  return Status::Ok();
}

}  // namespace dsv3::server
