// `dsv3 bench`: prompt-processing and decode throughput of a checkpoint,
// each against this machine's limit measured in the same run (read
// bandwidth for decode, FMA peak for prefill), plus memory use. `--membw`
// alone measures only the machine. `--json` prints the same fields as JSON.
// `--spec mtp --draft-tokens K[,K...]` instead measures MTP speculative
// decoding: a greedy continuation with and without it, and the cost of
// verification and draft forwards relative to a one-token decode step.
// `--comm` (under mpirun) times MPI all-to-alls and fits latency and bandwidth.
// Under mpirun every rank runs the benchmark (experts split over the ranks)
// and rank 0 prints, with the expert exchange's time and bytes.
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>

#include "apps/dsv3/commands.h"
#include "core/parallel.h"
#include "dist/comm_bench.h"
#include "runtime/bench.h"
#include "runtime/data_parallel.h"
#include "runtime/bench_spec.h"

namespace dsv3::cli {

namespace {

struct BenchCmdOptions {
  std::string model_dir, batches = "1,4,16", head = "stored", router = "stored", kv = "f32";
  std::string spec = "none", draft_tokens = "1,2,3";
  std::string attention = "replicated";  // under mpirun: replicated | data
  int64_t draft_vocab = 0;
  BenchOptions bench;
  int64_t membw_mb = 1024;
  bool json = false, membw_only = false, bf16_act = false, mmap = false;
  bool comm = false;          // --comm: the MPI all-to-all microbenchmark
  int64_t comm_max_kb = 4096;
};

// A comma-separated list of integers in [1, max]; errors name `flag`.
Expected<std::vector<int64_t>> ParseList(const std::string& text, const std::string& flag, const std::string& what,
                                         int64_t max) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != 0 || v < 1 || v > max)
      return Status::Error(flag + ": '" + item + "' is not " + what + " (a list like 1,2,3 of 1.." +
                           std::to_string(max) + ")");
    out.push_back(v);
  }
  if (out.empty()) return Status::Error(flag + ": give at least one value");
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
  if (r.prefill_absorbed_seconds > 0)
    std::printf("prefill %lld tokens by MLA form (alternating runs): absorbed %.1f tok/s, decompressed %.1f tok/s "
                "(decompressed / absorbed %.3f)\n",
                static_cast<long long>(r.prompt_tokens), r.prompt_tokens / r.prefill_absorbed_seconds,
                r.prompt_tokens / r.prefill_decompressed_seconds,
                r.prefill_absorbed_seconds / r.prefill_decompressed_seconds);
  if (r.prefill_absorbed_cpu_seconds > 0)
    std::printf("  CPU seconds (all threads, best run): absorbed %.3f, decompressed %.3f (absorbed / decompressed %.3f)\n",
                r.prefill_absorbed_cpu_seconds, r.prefill_decompressed_cpu_seconds,
                r.prefill_absorbed_cpu_seconds / r.prefill_decompressed_cpu_seconds);
  if (!r.decode.empty() && r.decode[0].context > 0)
    std::printf("decode after %lld cache rows per sequence (--context: random latent rows)\n",
                static_cast<long long>(r.decode[0].context));
  std::printf("decode  batch  tok/s     experts/layer  weights MB/tok  kv MB/tok  GB/s    roofline tok/s  of roofline"
              "  GFLOP/tok  flop bound  of bound\n");
  for (const DecodeResult& d : r.decode)
    std::printf("        %5lld  %8.2f  %13.1f  %14.1f  %9.2f  %6.1f  %14.1f  %10.1f%%  %9.2f  %10.1f  %7.1f%%\n",
                static_cast<long long>(d.batch), d.tokens_per_s, d.experts_per_layer, d.weight_bytes_per_token / 1e6,
                d.kv_bytes_per_token / 1e6, d.achieved_bytes_per_s / 1e9, d.roofline_tokens_per_s,
                100.0 * d.fraction_of_roofline, d.flops_per_token / 1e9, d.flop_bound_tokens_per_s,
                100.0 * d.fraction_of_bound);
  std::printf("memory: peak RSS %.2f GB (now %.2f GB: %.2f file-backed, %.2f anonymous); weights %.2f GB, largest kv cache %.3f GB\n",
              r.peak_rss_bytes / 1e9, r.rss_bytes / 1e9, r.rss_file_bytes / 1e9, r.rss_anon_bytes / 1e9,
              r.weight_bytes / 1e9, r.kv_cache_bytes / 1e9);
}

void PrintSpecText(const std::string& dir, const SpecBenchResult& r) {
  std::printf("model: %s\n", dir.c_str());
  std::printf("speculative decoding (MTP drafts, greedy), prompt %lld tokens, %lld new tokens; without it %.2f tok/s\n",
              static_cast<long long>(r.prompt_tokens), static_cast<long long>(r.new_tokens), r.baseline_tokens_per_s);
  std::printf("   K  tok/s    speed-up  predicted  rounds  drafted  accepted  rate    per position     tok/forward  same\n");
  for (const SpecRun& run : r.runs) {
    const SpecStats& s = run.stats;
    std::string per;
    for (size_t p = 0; p < s.proposed_at.size(); ++p) {
      char b[16];
      std::snprintf(b, sizeof(b), "%s%.2f", p ? " " : "", s.proposed_at[p] ? 1.0 * s.accepted_at[p] / s.proposed_at[p] : 0.0);
      per += b;
    }
    std::printf("  %2d  %7.2f  %8.2fx  %8.2fx  %6lld  %7lld  %8lld  %5.1f%%  %-15s  %11.2f  %s\n", run.draft_tokens,
                run.tokens_per_s, run.speedup, run.predicted_speedup, static_cast<long long>(s.rounds),
                static_cast<long long>(s.drafted), static_cast<long long>(s.accepted), 100.0 * s.acceptance(),
                per.c_str(), TokensPerRound(s), run.same_output ? "yes" : "NO");
  }
  std::printf("cost per forward at context %lld, relative to a one-token decode step (mean of %lld steps):\n",
              static_cast<long long>(r.prompt_tokens), static_cast<long long>(r.new_tokens));
  auto line = [](const char* what, const SpecCost& c) {
    std::printf("  %-22s %8.2f ms  %5.2fx  experts/layer %.1f\n", what, 1e3 * c.seconds, c.relative, c.experts_per_layer);
  };
  line("decode 1 token", r.decode);
  line("MTP draft step", r.draft);
  for (const SpecCost& c : r.verify) {
    const std::string what = "verify " + std::to_string(c.tokens) + " tokens (K=" + std::to_string(c.tokens - 1) + ")";
    line(what.c_str(), c);
  }
}

int BenchSpec(const BenchCmdOptions& o, const Model& model) {
  auto ks = ParseList(o.draft_tokens, "--draft-tokens", "a draft length", 16);
  if (!ks.ok()) return Fail(ks.status());
  SpecBenchOptions so;
  so.draft_tokens.assign(ks->begin(), ks->end());
  so.draft_vocab = o.draft_vocab;
  so.prompt_tokens = o.bench.prompt_tokens, so.new_tokens = o.bench.decode_steps;
  so.repetitions = o.bench.repetitions, so.seed = o.bench.seed;
  so.progress = o.bench.progress;
  auto r = RunSpecBenchmark(model, so);
  if (!r.ok()) return Fail(r.status());
  if (o.json)
    std::printf("%s\n", SpecBenchJson(*r).c_str());
  else
    PrintSpecText(o.model_dir, *r);
  return 0;
}

// --comm: all-to-all time per message size over this job's ranks and
// transport, and the latency/bandwidth fit (rank 0 prints).
int BenchComm(const BenchCmdOptions& o, Common& common) {
  const dist::AllToAllFit f = dist::MeasureAllToAll(*common.comm, o.comm_max_kb << 10, o.bench.repetitions);
  const char* btl = std::getenv("OMPI_MCA_btl");
  std::printf("all-to-all over %d ranks, transport %s\n", common.comm->size(),
              common.distributed() ? (btl ? btl : "mpirun's default") : "none (one process: run under mpirun -np N)");
  std::printf("  bytes per rank pair  us per all-to-all  fit us\n");
  for (const dist::AllToAllPoint& p : f.points)
    std::printf("  %19lld  %17.2f  %6.2f\n", static_cast<long long>(p.bytes), p.seconds * 1e6,
                (f.latency_s + static_cast<double>(p.bytes) / f.bytes_per_s) * 1e6);
  std::printf("fit: latency %.2f us + bytes / %.3f GB/s per rank pair (largest error %.0f%%)\n", f.latency_s * 1e6,
              f.bytes_per_s / 1e9, 100.0 * f.max_rel_error);
  return 0;
}

int Bench(BenchCmdOptions& o, Common& common) {
  BenchOptions& b = o.bench;
  b.threads = NumThreads();
  b.membw_bytes = o.membw_mb << 20;
  if (!o.json && common.rank() == 0) b.progress = [](const std::string& s) { std::fprintf(stderr, "  %s\n", s.c_str()); };
  if (o.membw_only) {
    const BenchResult r = MeasureMachine(b);
    if (o.json)
      std::printf("%s\n", BenchJson(r).c_str());
    else
      PrintText("", r, true);
    return 0;
  }
  if (o.model_dir.empty()) return Fail(Status::Error("bench: --model DIR is required (or --membw alone)"));
  auto batches = ParseList(o.batches, "-b", "a batch size", 4096);
  if (!batches.ok()) return Fail(batches.status());
  b.batches = *batches;
  LoadOptions lo;
  auto head = ParseWeightFormat(o.head, "--head");
  if (!head.ok()) return Fail(head.status());
  auto router = ParseWeightFormat(o.router, "--router");
  if (!router.ok()) return Fail(router.status());
  if (o.spec != "none" && o.spec != "mtp") return Fail(Status::Error("--spec must be none or mtp, not '" + o.spec + "'"));
  if (o.kv != "f32" && o.kv != "fp8") return Fail(Status::Error("--kv must be f32 or fp8, not '" + o.kv + "'"));
  lo.head = *head, lo.router = *router, lo.bf16_activations = o.bf16_act;
  lo.kv_cache = o.kv == "fp8" ? KvCacheType::kF8E4M3 : KvCacheType::kF32;
  lo.verbose = !o.json && common.rank() == 0;
  lo.load_to_memory = !o.mmap;
  const bool data_parallel = common.distributed() && o.attention == "data";
  if (data_parallel && o.spec == "mtp")
    return Fail(Status::Error("--spec mtp measures replicated attention only; leave out --attention data"));
  auto model = LoadOnRanks(common, o.model_dir, lo);
  if (!model.ok()) return Fail(model.status());
  if (o.spec == "mtp") return BenchSpec(o, **model);
  std::optional<DataParallelForward> dp;
  if (data_parallel) dp.emplace(*common.comm, DataParallelOptions{.micro_batches = common.micro_batches});
  if (dp) b.runner = &*dp;
  auto r = RunBenchmark(**model, b);  // under mpirun: the same forwards on every rank
  if (Status st = common.Agree(r.status()); !st.ok()) return Fail(st);
  PrintExchangeStats(common, **model);
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
  cmd->add_option("--context", o->bench.context,
                  "decode after N cache rows per sequence (random latent rows: decode at depth N without an N-token "
                  "prefill)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--reps", o->bench.repetitions, "repetitions (the best is reported)")->capture_default_str();
  cmd->add_option("--head", o->head, "output head: stored, bf16 or fp8 (quantized at load)")->capture_default_str();
  cmd->add_option("--router", o->router, "router weights: stored, bf16 or fp8")->capture_default_str();
  cmd->add_option("--kv", o->kv, "latent KV cache: f32 or fp8 (e4m3, per-token scales)")->capture_default_str();
  cmd->add_flag("--bf16-act", o->bf16_act, "round activations of linear layers to bf16 (VDPBF16PS)");
  cmd->add_option("--membw-mb", o->membw_mb, "buffer for the bandwidth measurement, MiB")->capture_default_str();
  cmd->add_option("--membw-reps", o->bench.membw_reps, "bandwidth passes (best is kept)")->capture_default_str();
  cmd->add_flag("--compare-attention", o->bench.compare_attention,
                "prefill also with MLA forced to the absorbed and to the decompressed form, runs alternating (the "
                "crossover of --attention-form auto; docs/performance.md)");
  cmd->add_flag("--membw", o->membw_only, "measure only read bandwidth and FMA peak");
  cmd->add_flag("--mmap", o->mmap, "run the weights from the file mapping (no copy to huge-page memory)");
  cmd->add_flag("--json", o->json, "print JSON");
  cmd->add_option("--spec", o->spec, "none, or mtp: measure MTP speculative decoding (-p prompt, -n new tokens)")
      ->capture_default_str();
  cmd->add_option("--draft-tokens", o->draft_tokens, "draft lengths K for --spec mtp, e.g. 1,2,3")->capture_default_str();
  cmd->add_option("--draft-vocab", o->draft_vocab, "draft only among token ids [0, N) (BPE lists frequent tokens first): a cheaper MTP head; 0 = all")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30))->capture_default_str();
  cmd->add_option("--attention", o->attention, "under mpirun: replicated (every rank runs every sequence) or data "
                 "(sequence s's attention and dense layers on rank s % ranks only)")
      ->check(CLI::IsMember({"replicated", "data"}))
      ->capture_default_str();
  cmd->add_flag("--comm", o->comm, "MPI all-to-all latency and bandwidth over the job's ranks (under mpirun)");
  cmd->add_option("--comm-max-kb", o->comm_max_kb, "largest all-to-all message per rank pair, KiB")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))->capture_default_str();
  cmd->callback([o, &common] {
    common.Apply();
    common.exit_code = o->comm ? BenchComm(*o, common) : Bench(*o, common);
  });
}

}  // namespace dsv3::cli
