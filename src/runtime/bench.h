// The engine's benchmark (what `dsv3 bench` prints): prompt processing and
// decode throughput measured against this machine's own limits, taken in the
// same run: read bandwidth (best of several passes, same thread count) for
// decode, which is memory-bound, and the float32 FMA peak for prefill, which
// is compute-bound. Decode uses random tokens in every slot (as llama-bench's
// tg does), so routing is as varied as real traffic; the number of distinct
// experts each step actually ran gives the bytes of weights it read.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/model.h"
#include "runtime/step_runner.h"

namespace dsv3 {

struct BenchOptions {
  int64_t prompt_tokens = 512;      // -p
  int64_t decode_steps = 64;        // -n
  // --context: decode starts after this many cache rows per slot, filled with
  // random latent rows (attention's cost does not depend on their values),
  // so decode at 128K is measured without a 128K prefill.
  int64_t context = 0;
  std::vector<int64_t> batches = {1, 4, 16};
  int repetitions = 3;              // best of
  int threads = 1;                  // for the bandwidth and peak measurements
  int64_t membw_bytes = 1ll << 30;  // buffer for the bandwidth measurement
  int membw_reps = 20;
  uint64_t seed = 1;
  // Prefill also with MLA forced to the absorbed and to the decompressed
  // form, repetitions alternating between them (one run: same machine state).
  bool compare_attention = false;
  std::function<void(const std::string&)> progress;  // status lines; may be empty
  // Runs every forward (under mpirun with data-parallel attention,
  // runtime/data_parallel.h: sequence s on rank s % ranks); null: the model.
  StepRunner* runner = nullptr;
};

struct DecodeResult {
  int64_t batch = 0, steps = 0, context = 0;
  double seconds = 0;          // best repetition, `steps` steps
  double tokens_per_s = 0;     // aggregate over the batch
  double experts_per_layer = 0;  // distinct routed experts run per MoE layer per step
  double weight_bytes_per_token = 0;  // weights read per step / batch
  double kv_bytes_per_token = 0;      // cache rows read per step / batch (mean context)
  double achieved_bytes_per_s = 0;    // (weights + kv) per step / step time
  double roofline_tokens_per_s = 0;   // membw / bytes per token
  double fraction_of_roofline = 0;
  // Absorbed MLA costs 2 H (rc + dr + rc) flops per cache row per token, so at
  // long contexts the FMA units, not the bytes, set the limit: the flop bound
  // is the FMA peak / flops per token (linear layers + attention), and the
  // bound is the lower of it and the byte roofline.
  double flops_per_token = 0;
  double flop_bound_tokens_per_s = 0;
  double bound_tokens_per_s = 0;
  double fraction_of_bound = 0;
};

struct BenchResult {
  std::string target;           // SIMD target
  bool vdpbf16ps = false;
  int threads = 0;
  double membw_bytes_per_s = 0;
  double fma_peak_flops = 0;
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0, prefill_tokens_per_s = 0, prefill_flops = 0;
  double prefill_flops_per_s = 0, prefill_fraction_of_peak = 0;
  // With compare_attention: best seconds of the prefill per form.
  double prefill_absorbed_seconds = 0, prefill_decompressed_seconds = 0;
  double prefill_absorbed_cpu_seconds = 0, prefill_decompressed_cpu_seconds = 0;  // all threads, best run
  std::vector<DecodeResult> decode;
  uint64_t weight_bytes = 0, kv_cache_bytes = 0;
  uint64_t peak_rss_bytes = 0, rss_bytes = 0, rss_file_bytes = 0, rss_anon_bytes = 0;
};

// Measures only the machine (bandwidth and FMA peak).
BenchResult MeasureMachine(const BenchOptions& options);

// Runs the whole benchmark on a loaded model.
Expected<BenchResult> RunBenchmark(const Model& model, const BenchOptions& options);

// Floating-point operations of a prefill of `tokens` positions from an empty
// cache with logits for the last one: 2 per multiply-add of every linear
// layer a token runs (top-k routed experts) plus the attention scores and sums.
double PrefillFlops(const Config& config, int64_t tokens);

// Floating-point operations of one decode token at a (mean) context of
// `context` cache rows: every linear layer it runs and the head, plus
// absorbed attention over the rows.
double DecodeFlops(const Config& config, double context);

// The same fields as JSON, keys prefill_tokens_per_s and decode_tokens_per_s
// (an object keyed by batch size) included.
std::string BenchJson(const BenchResult& r);

}  // namespace dsv3
