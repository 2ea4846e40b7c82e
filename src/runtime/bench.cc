// The benchmark runner; see bench.h.
#include "runtime/bench.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "model/stats.h"
#include "ops/ops.h"

namespace dsv3 {

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// CPU seconds this process has run (all threads, user + system). On a
// shared machine it moves less than wall time when other work takes the
// cores; with OMP_WAIT_POLICY=passive idle threads do not add to it.
double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// A field of /proc/self/status in bytes (0 when unavailable).
uint64_t StatusBytes(const std::string& key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key + ":", 0) == 0) {
      std::istringstream in(line.substr(key.size() + 1));
      uint64_t kb = 0;
      in >> kb;
      return kb * 1024;
    }
  return 0;
}

void Say(const BenchOptions& o, const std::string& s) {
  if (o.progress) o.progress(s);
}

Status Forward(const Model& m, const BenchOptions& o, const Batch& batch, KvCache& cache, Workspace& ws) {
  return o.runner ? o.runner->Forward(m, batch, cache, ws) : m.Forward(batch, cache, ws);
}

Status RunPrefill(const Model& m, const BenchOptions& o, BenchResult& r) {
  const int64_t p = o.prompt_tokens, V = m.config().vocab_size;
  std::mt19937_64 rng(o.seed);
  Batch batch;
  for (int64_t i = 0; i < p; ++i) batch.Add(static_cast<int32_t>(2 + rng() % (V - 2)), static_cast<int32_t>(i), 0, i == p - 1);
  KvCache cache = m.NewCache(1, p);
  Workspace ws;
  // An untimed first run maps every weight page in (its first touch costs
  // page faults, not compute) and sizes the workspace.
  Say(o, "prefill: warm-up run");
  DSV3_RETURN_IF_ERROR(Forward(m, o, batch, cache, ws));
  double best = 1e30;
  // Each repetition runs the model's own choice, then (when comparing) the
  // absorbed and the decompressed form: alternating, so a slower moment of
  // the machine does not fall on one form only.
  const AttentionForm forms[] = {AttentionForm::kAuto, AttentionForm::kAbsorbed, AttentionForm::kDecompressed};
  double best_of[3] = {1e30, 1e30, 1e30}, cpu_of[3] = {1e30, 1e30, 1e30};
  for (int rep = 0; rep < o.repetitions; ++rep)
    for (int f = 0; f < (o.compare_attention ? 3 : 1); ++f) {
      ws.attention_form = forms[f];
      cache.Clear(0);
      const double t0 = Now(), c0 = CpuSeconds();
      DSV3_RETURN_IF_ERROR(Forward(m, o, batch, cache, ws));
      best_of[f] = std::min(best_of[f], Now() - t0);
      cpu_of[f] = std::min(cpu_of[f], CpuSeconds() - c0);
      char line[160];
      std::snprintf(line, sizeof(line), "prefill %lld tokens%s: run %d/%d %.3f s", static_cast<long long>(p),
                    f == 0 ? "" : f == 1 ? " (absorbed)" : " (decompressed)", rep + 1, o.repetitions, Now() - t0);
      Say(o, line);
    }
  ws.attention_form = AttentionForm::kAuto;
  best = best_of[0];
  if (o.compare_attention) {
    r.prefill_absorbed_seconds = best_of[1], r.prefill_decompressed_seconds = best_of[2];
    r.prefill_absorbed_cpu_seconds = cpu_of[1], r.prefill_decompressed_cpu_seconds = cpu_of[2];
  }
  r.prompt_tokens = p;
  r.prefill_seconds = best;
  r.prefill_tokens_per_s = static_cast<double>(p) / best;
  r.prefill_flops = PrefillFlops(m.config(), p);
  r.prefill_flops_per_s = r.prefill_flops / best;
  return Status::Ok();
}

// Rows [0, n) of every slot and layer: uniform values in [-1, 1), as a
// prompt of n tokens would leave (for speed, only their count matters).
void FillContext(KvCache& cache, int64_t n, uint64_t seed) {
  std::vector<float> row(cache.row_dim());
  uint64_t x = seed | 1;
  for (int64_t s = 0; s < cache.num_slots(); ++s) {
    for (int64_t l = 0; l < cache.num_layers(); ++l)
      for (int64_t p = 0; p < n; ++p) {
        for (float& v : row) {
          x ^= x << 13, x ^= x >> 7, x ^= x << 17;  // xorshift64
          v = static_cast<float>(static_cast<double>(x >> 11) * 0x1.0p-52 - 1.0);
        }
        cache.Store(s, l, p, row.data());
      }
    for (int stack = 0; stack < cache.num_stacks(); ++stack) cache.set_length(s, n, stack);
  }
}

Status RunDecode(const Model& m, const BenchOptions& o, int64_t B, DecodeResult& d) {
  const Config& c = m.config();
  const int64_t V = c.vocab_size, steps = o.decode_steps, ctx = o.context;
  std::mt19937_64 rng(o.seed * 7919 + static_cast<uint64_t>(B));
  KvCache cache = m.NewCache(B, ctx + steps + 1);
  if (ctx > 0) {
    Say(o, "decode batch " + std::to_string(B) + ": filling " + std::to_string(ctx) + " cache rows per slot");
    FillContext(cache, ctx, o.seed + static_cast<uint64_t>(B));
  }
  Workspace ws;
  Batch batch;
  double best = 1e30, experts = 0;
  for (int rep = 0; rep < o.repetitions; ++rep) {
    for (int64_t s = 0; s < B; ++s) cache.Truncate(s, ctx);
    double t0 = 0;
    int64_t e0 = 0, l0 = 0;
    for (int64_t step = 0; step <= steps; ++step) {  // step 0 warms up, untimed
      if (step == 1) t0 = Now(), e0 = ws.experts_run, l0 = ws.moe_layers_run;
      batch.Clear();
      for (int64_t s = 0; s < B; ++s)
        batch.Add(static_cast<int32_t>(2 + rng() % (V - 2)), static_cast<int32_t>(ctx + step), static_cast<int32_t>(s),
                  true);
      DSV3_RETURN_IF_ERROR(Forward(m, o, batch, cache, ws));
    }
    const double secs = Now() - t0;
    if (secs < best) {
      best = secs;
      experts = ws.moe_layers_run > l0 ? static_cast<double>(ws.experts_run - e0) / (ws.moe_layers_run - l0) : 0.0;
    }
    char line[128];
    std::snprintf(line, sizeof(line), "decode batch %lld: run %d/%d %.1f tok/s", static_cast<long long>(B), rep + 1,
                  o.repetitions, static_cast<double>(B * steps) / secs);
    Say(o, line);
  }
  d.batch = B, d.steps = steps, d.context = ctx, d.seconds = best;
  d.tokens_per_s = static_cast<double>(B * steps) / best;
  d.experts_per_layer = experts;
  const double weights_per_step = static_cast<double>(m.DecodeWeightBytes(experts));
  const double row_bytes = cache.type() == KvCacheType::kF32 ? 4.0 * c.kv_latent_dim() : c.kv_latent_dim() + 8.0;
  const double mean_context = static_cast<double>(ctx) + 1.0 + static_cast<double>(steps + 1) / 2.0;
  d.kv_bytes_per_token = static_cast<double>(c.num_hidden_layers) * mean_context * row_bytes;
  d.weight_bytes_per_token = weights_per_step / static_cast<double>(B);
  d.flops_per_token = DecodeFlops(c, mean_context);
  const double per_step = weights_per_step + d.kv_bytes_per_token * static_cast<double>(B);
  d.achieved_bytes_per_s = per_step / (best / static_cast<double>(steps));
  return Status::Ok();
}

}  // namespace

namespace {

// Absorbed MLA per token and cache row: 2 flops per multiply-add of the
// scores (rc + dr) and of the values (rc), every head of every layer.
double AttentionFlopsPerRow(const Config& c) {
  return 2.0 * static_cast<double>(c.num_hidden_layers * c.num_attention_heads) *
         static_cast<double>(c.kv_latent_dim() + c.kv_lora_rank);
}

}  // namespace

double DecodeFlops(const Config& c, double context) {
  const ModelStats s = ComputeStats(c);
  const double linear = static_cast<double>(s.active_params - s.embedding_params);  // head included
  return 2.0 * linear + AttentionFlopsPerRow(c) * context;
}

double PrefillFlops(const Config& c, int64_t tokens) {
  const ModelStats s = ComputeStats(c);
  const double linear = static_cast<double>(s.active_params - s.embedding_params - s.head_params);
  double flops = 2.0 * linear * static_cast<double>(tokens) + 2.0 * static_cast<double>(s.head_params);
  flops += AttentionFlopsPerRow(c) * static_cast<double>(tokens) * static_cast<double>(tokens + 1) / 2.0;  // rows 0..p
  return flops;
}

BenchResult MeasureMachine(const BenchOptions& o) {
  BenchResult r;
  r.target = ops::KernelTarget();
  r.vdpbf16ps = ops::HasVdpbf16ps();
  r.threads = o.threads;
  Say(o, "measuring read bandwidth and FMA peak");
  r.membw_bytes_per_s = ops::MeasureReadBandwidth(o.threads, o.membw_bytes, o.membw_reps);
  r.fma_peak_flops = ops::MeasureFmaPeak(o.threads);
  return r;
}

// Forgets the process's peak RSS so far (Linux: clear_refs 5), so the
// bandwidth buffer does not count as the model's memory.
void ResetPeakRss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
}

Expected<BenchResult> RunBenchmark(const Model& m, const BenchOptions& o) {
  if (o.prompt_tokens < 1 || o.decode_steps < 1 || o.repetitions < 1)
    return Status::Error("bench: -p, -n and --reps must be >= 1");
  for (int64_t b : o.batches)
    if (b < 1) return Status::Error("bench: batch sizes (-b) must be >= 1");
  const int64_t max_pos = m.config().max_position_embeddings;
  if (o.context < 0 || o.context + o.decode_steps + 1 > max_pos)
    return Status::Error("bench: --context " + std::to_string(o.context) + " + -n " + std::to_string(o.decode_steps) +
                         " + 1 exceeds max_position_embeddings " + std::to_string(max_pos));
  // The machine's limits before and after the model runs, best of both:
  // other processes sharing the cores lower a measurement, never raise it.
  const BenchResult before = MeasureMachine(o);
  ResetPeakRss();
  BenchResult r;
  DSV3_RETURN_IF_ERROR(RunPrefill(m, o, r));
  for (int64_t b : o.batches) {
    r.decode.emplace_back();
    DSV3_RETURN_IF_ERROR(RunDecode(m, o, b, r.decode.back()));
  }
  // Memory figures before the second bandwidth buffer exists.
  r.rss_bytes = StatusBytes("VmRSS");
  r.peak_rss_bytes = StatusBytes("VmHWM");  // read second: the peak only grows
  r.rss_file_bytes = StatusBytes("RssFile"), r.rss_anon_bytes = StatusBytes("RssAnon");
  r.weight_bytes = m.weight_bytes();
  const Config& c = m.config();
  const int64_t max_b = *std::max_element(o.batches.begin(), o.batches.end());
  const int64_t row = m.options().kv_cache == KvCacheType::kF32 ? 4 * c.kv_latent_dim() : c.kv_latent_dim() + 8;
  r.kv_cache_bytes = static_cast<uint64_t>(std::max(o.prompt_tokens, max_b * (o.context + o.decode_steps + 1)) *
                                           c.num_layers_with_mtp() * row);
  const BenchResult after = MeasureMachine(o);
  r.target = after.target, r.vdpbf16ps = after.vdpbf16ps, r.threads = after.threads;
  r.membw_bytes_per_s = std::max(before.membw_bytes_per_s, after.membw_bytes_per_s);
  r.fma_peak_flops = std::max(before.fma_peak_flops, after.fma_peak_flops);
  r.prefill_fraction_of_peak = r.prefill_flops_per_s / r.fma_peak_flops;
  for (DecodeResult& d : r.decode) {
    d.roofline_tokens_per_s = r.membw_bytes_per_s / (d.weight_bytes_per_token + d.kv_bytes_per_token);
    d.fraction_of_roofline = d.tokens_per_s / d.roofline_tokens_per_s;
    d.flop_bound_tokens_per_s = r.fma_peak_flops / d.flops_per_token;
    d.bound_tokens_per_s = std::min(d.roofline_tokens_per_s, d.flop_bound_tokens_per_s);
    d.fraction_of_bound = d.tokens_per_s / d.bound_tokens_per_s;
  }
  return r;
}

std::string BenchJson(const BenchResult& r) {
  nlohmann::ordered_json j;
  j["target"] = r.target;
  j["vdpbf16ps"] = r.vdpbf16ps;
  j["threads"] = r.threads;
  j["membw_gb_per_s"] = r.membw_bytes_per_s / 1e9;
  j["fma_peak_gflop_per_s"] = r.fma_peak_flops / 1e9;
  j["prompt_tokens"] = r.prompt_tokens;
  j["prefill_seconds"] = r.prefill_seconds;
  j["prefill_tokens_per_s"] = r.prefill_tokens_per_s;
  if (r.prefill_absorbed_seconds > 0) {
    j["prefill_absorbed_tokens_per_s"] = static_cast<double>(r.prompt_tokens) / r.prefill_absorbed_seconds;
    j["prefill_decompressed_tokens_per_s"] = static_cast<double>(r.prompt_tokens) / r.prefill_decompressed_seconds;
    j["prefill_absorbed_cpu_seconds"] = r.prefill_absorbed_cpu_seconds;
    j["prefill_decompressed_cpu_seconds"] = r.prefill_decompressed_cpu_seconds;
  }
  j["prefill_gflop_per_s"] = r.prefill_flops_per_s / 1e9;
  j["prefill_fraction_of_fma_peak"] = r.prefill_fraction_of_peak;
  nlohmann::ordered_json per_batch = nlohmann::ordered_json::object(), details = nlohmann::ordered_json::array();
  for (const DecodeResult& d : r.decode) {
    per_batch[std::to_string(d.batch)] = d.tokens_per_s;
    details.push_back({{"batch", d.batch},
                       {"steps", d.steps},
                       {"context", d.context},
                       {"seconds", d.seconds},
                       {"tokens_per_s", d.tokens_per_s},
                       {"experts_per_layer", d.experts_per_layer},
                       {"weight_bytes_per_token", d.weight_bytes_per_token},
                       {"kv_bytes_per_token", d.kv_bytes_per_token},
                       {"achieved_gb_per_s", d.achieved_bytes_per_s / 1e9},
                       {"roofline_tokens_per_s", d.roofline_tokens_per_s},
                       {"fraction_of_roofline", d.fraction_of_roofline},
                       {"flops_per_token", d.flops_per_token},
                       {"flop_bound_tokens_per_s", d.flop_bound_tokens_per_s},
                       {"bound_tokens_per_s", d.bound_tokens_per_s},
                       {"fraction_of_bound", d.fraction_of_bound}});
  }
  j["decode_tokens_per_s"] = per_batch;
  j["decode"] = details;
  j["weight_bytes"] = r.weight_bytes;
  j["kv_cache_bytes"] = r.kv_cache_bytes;
  j["peak_rss_bytes"] = r.peak_rss_bytes;
  j["rss_bytes"] = r.rss_bytes;
  j["rss_file_bytes"] = r.rss_file_bytes;
  j["rss_anon_bytes"] = r.rss_anon_bytes;
  return j.dump(2);
}

}  // namespace dsv3
