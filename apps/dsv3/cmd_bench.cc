// `dsv3 bench`: prompt-processing and decode throughput of a checkpoint,
// each against this machine's limit measured in the same run (read
// bandwidth for decode, FMA peak for prefill), plus memory use. `--membw`
// alone measures only the machine. `--json` prints the same fields as JSON.
#include <cstdio>
#include <sstream>

#include "apps/dsv3/commands.h"
#include "core/parallel.h"
#include "runtime/bench.h"

namespace dsv3::cli {

namespace {

struct BenchCmdOptions {
  std::string model_dir, batches = "1,4,16", head = "stored", router = "stored", kv = "f32";
  BenchOptions bench;
  int64_t membw_mb = 1024;
  bool json = false, membw_only = false, bf16_act = false, mmap = false;
};

Expected<std::vector<int64_t>> ParseBatches(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != 0 || v < 1 || v > 4096)
      return Status::Error("-b: '" + item + "' is not a batch size (a list like 1,4,16)");
    out.push_back(v);
  }
  if (out.empty()) return Status::Error("-b: give at least one batch size");
  return out;
}

void PrintText(const std::string& dir, const BenchResult& r, bool machine_only) {
  std::printf("machine: %d threads, kernels %s%s; read bandwidth %.1f GB/s (best of runs), FMA peak %.0f GFLOP/s\n",
              r.threads, r.target.c_str(), r.vdpbf16ps ? " + VDPBF16PS" : "", r.membw_bytes_per_s / 1e9,
              r.fma_peak_flops / 1e9);
  if (machine_only) return;
  std::printf("model: %s\n", dir.c_str());
  std::printf("prefill %lld tokens: %.3f s = %.1f tok/s, %.1f GFLOP/s = %.1f%% of the FMA peak\n",
              static_cast<long long>(r.prompt_tokens), r.prefill_seconds, r.prefill_tokens_per_s,
              r.prefill_flops_per_s / 1e9, 100.0 * r.prefill_fraction_of_peak);
  std::printf("decode  batch  tok/s     experts/layer  weights MB/tok  kv MB/tok  GB/s    roofline tok/s  of roofline\n");
  for (const DecodeResult& d : r.decode)
    std::printf("        %5lld  %8.2f  %13.1f  %14.1f  %9.2f  %6.1f  %14.1f  %10.1f%%\n", static_cast<long long>(d.batch),
                d.tokens_per_s, d.experts_per_layer, d.weight_bytes_per_token / 1e6, d.kv_bytes_per_token / 1e6,
                d.achieved_bytes_per_s / 1e9, d.roofline_tokens_per_s, 100.0 * d.fraction_of_roofline);
  std::printf("memory: peak RSS %.2f GB (now %.2f GB: %.2f file-backed, %.2f anonymous); weights %.2f GB, largest kv cache %.3f GB\n",
              r.peak_rss_bytes / 1e9, r.rss_bytes / 1e9, r.rss_file_bytes / 1e9, r.rss_anon_bytes / 1e9,
              r.weight_bytes / 1e9, r.kv_cache_bytes / 1e9);
}

int Bench(BenchCmdOptions& o) {
  BenchOptions& b = o.bench;
  b.threads = NumThreads();
  b.membw_bytes = o.membw_mb << 20;
  if (!o.json) b.progress = [](const std::string& s) { std::fprintf(stderr, "  %s\n", s.c_str()); };
  if (o.membw_only) {
    const BenchResult r = MeasureMachine(b);
    if (o.json)
      std::printf("%s\n", BenchJson(r).c_str());
    else
      PrintText("", r, true);
    return 0;
  }
  if (o.model_dir.empty()) return Fail(Status::Error("bench: --model DIR is required (or --membw alone)"));
  auto batches = ParseBatches(o.batches);
  if (!batches.ok()) return Fail(batches.status());
  b.batches = *batches;
  LoadOptions lo;
  auto head = ParseWeightFormat(o.head, "--head");
  if (!head.ok()) return Fail(head.status());
  auto router = ParseWeightFormat(o.router, "--router");
  if (!router.ok()) return Fail(router.status());
  if (o.kv != "f32" && o.kv != "fp8") return Fail(Status::Error("--kv must be f32 or fp8, not '" + o.kv + "'"));
  lo.head = *head, lo.router = *router, lo.bf16_activations = o.bf16_act;
  lo.kv_cache = o.kv == "fp8" ? KvCacheType::kF8E4M3 : KvCacheType::kF32;
  lo.verbose = !o.json;
  lo.load_to_memory = !o.mmap;
  auto model = Model::Load(o.model_dir, lo);
  if (!model.ok()) return Fail(model.status());
  auto r = RunBenchmark(**model, b);
  if (!r.ok()) return Fail(r.status());
  if (o.json)
    std::printf("%s\n", BenchJson(*r).c_str());
  else
    PrintText(o.model_dir, *r, false);
  return 0;
}

}  // namespace

void RegisterBench(CLI::App& app, Common& common) {
  auto o = std::make_shared<BenchCmdOptions>();
  CLI::App* cmd = app.add_subcommand("bench", "prefill and decode throughput against the machine's limits");
  cmd->add_option("-m,--model", o->model_dir, "checkpoint directory");
  cmd->add_option("-p,--prompt", o->bench.prompt_tokens, "prompt tokens for the prefill test")->capture_default_str();
  cmd->add_option("-n,--decode", o->bench.decode_steps, "decode steps per batch size")->capture_default_str();
  cmd->add_option("-b,--batch", o->batches, "decode batch sizes, e.g. 1,4,16")->capture_default_str();
  cmd->add_option("--reps", o->bench.repetitions, "repetitions (the best is reported)")->capture_default_str();
  cmd->add_option("--head", o->head, "output head: stored, bf16 or fp8 (quantized at load)")->capture_default_str();
  cmd->add_option("--router", o->router, "router weights: stored, bf16 or fp8")->capture_default_str();
  cmd->add_option("--kv", o->kv, "latent KV cache: f32 or fp8 (e4m3, per-token scales)")->capture_default_str();
  cmd->add_flag("--bf16-act", o->bf16_act, "round activations of linear layers to bf16 (VDPBF16PS)");
  cmd->add_option("--membw-mb", o->membw_mb, "buffer for the bandwidth measurement, MiB")->capture_default_str();
  cmd->add_option("--membw-reps", o->bench.membw_reps, "bandwidth passes (best is kept)")->capture_default_str();
  cmd->add_flag("--membw", o->membw_only, "measure only read bandwidth and FMA peak");
  cmd->add_flag("--mmap", o->mmap, "run the weights from the file mapping (no copy to huge-page memory)");
  cmd->add_flag("--json", o->json, "print JSON");
  cmd->callback([o, &common] {
    common.Apply();
    common.exit_code = Bench(*o);
  });
}

}  // namespace dsv3::cli
