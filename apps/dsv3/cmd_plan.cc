// `dsv3 plan`: the cluster planner (issue 14, docs/distributed.md). Given a
// model (config.json or checkpoint directory) and a cluster file, prints
// what each rank holds, the KV cache per sequence and rank at a context,
// the expert exchange's bytes per token and MoE layer, and projected decode
// tokens/s per sequence and in all at several batch sizes, with the
// assumptions behind them. Arithmetic in src/dist/planner.h.
#include <cstdio>
#include <filesystem>

#include "apps/dsv3/commands.h"
#include "dist/planner.h"
#include "io/safetensors.h"
#include "model/config.h"

namespace dsv3::cli {

namespace {

struct PlanCliOptions {
  std::string model, cluster, format = "stored", kv = "f32", attention = "replicated";
  int64_t context = 4096;
  std::vector<int64_t> batches = {1, 8, 32, 128};
};

void PrintAssumptions(const dist::Cluster& cl, const Config& c, const dist::Plan& p, bool dp) {
  const char* seqs = dp ? "ceil(B/N)" : "B";
  if (cl.flops_per_node > 0) {
    std::printf("assumptions         step = bytes read per rank / (%.1f GB/s per node / %lld ranks x efficiency %.3f)"
                " + flops per rank / (%.0f GFLOP/s per node / %lld ranks x compute efficiency %.3f) + exchange\n",
                cl.membw_per_node / 1e9, (long long)cl.ranks_per_node, cl.efficiency, cl.flops_per_node / 1e9,
                (long long)cl.ranks_per_node, cl.compute_efficiency);
    std::printf("                    flops per rank = %s x (replicated layers + context x absorbed attention per "
                "cached row) + B x K/E x routed experts / N\n", seqs);
  } else {
    std::printf("assumptions         decode is memory-bandwidth bound: step = bytes read per rank / (%.1f GB/s per "
                "node / %lld ranks x efficiency %.2f) + exchange\n",
                cl.membw_per_node / 1e9, (long long)cl.ranks_per_node, cl.efficiency);
  }
  std::printf("                    bytes read = replicated weights (MTP layers and all but %s embedding rows "
              "excluded) + %lld MoE layers x E(1-(1-k/E)^B)/N experts + %s x context x KV per token (%s)\n",
              seqs, (long long)p.moe_layers, seqs,
              dp ? "data-parallel attention: a rank runs its own sequences" : "attention replicated");
  std::printf("                    exchange per MoE layer = %s, each latency %.1f us + max(off-node bytes / %.1f "
              "GB/s, pair bytes / %.1f GB/s shm); not overlapped\n",
              dp ? "3 collectives (counts, dispatch, combine)" : "4 collectives (counts, dispatch, combine, gather)",
              (cl.nodes > 1 ? cl.link_latency_s : cl.shm_latency_s) * 1e6, cl.link_bytes_per_s / 1e9,
              cl.shm_bytes_per_s / 1e9);
  std::printf("                    uniform routing over %lld experts (top-%lld); prefill and MTP not modelled%s\n",
              (long long)c.n_routed_experts, (long long)c.num_experts_per_tok,
              cl.flops_per_node > 0 ? "" : "; no compute limit (give fma_peak_gflops to model one)");
}

void PrintPlan(const PlanCliOptions& o, const Config& c, const dist::WeightBytes& w, const dist::Cluster& cl,
               const dist::Plan& p, double kv_per_token) {
  std::printf("cluster             %lld nodes x %lld ranks = %lld ranks; per node %.0f GB memory, %lld cores, "
              "%.1f GB/s memory, link %.1f Gbit/s %.1f us\n",
              (long long)cl.nodes, (long long)cl.ranks_per_node, (long long)p.ranks, cl.memory_per_node / 1e9,
              (long long)cl.cores_per_node, cl.membw_per_node / 1e9, cl.link_bytes_per_s * 8 / 1e9,
              cl.link_latency_s * 1e6);
  std::printf("weights             %s\n", w.from_store ? "as stored in the checkpoint"
                                                        : dist::WeightFormatName(*dist::ParseWeightFormat(o.format)));
  std::printf("per rank            %.3f GB replicated + %.3f GB routed experts (largest rank) = %.3f GB\n",
              p.replicated / 1e9, p.routed_max / 1e9, (p.replicated + p.routed_max) / 1e9);
  std::printf("kv cache (%s)      %.0f bytes per token; %.3f GB per sequence at context %lld, %s\n",
              o.kv.c_str(), kv_per_token, kv_per_token * o.context / 1e9, (long long)o.context,
              o.attention == "data" ? "on the rank running it" : "on every rank");
  std::printf("exchange            %.0f bytes per token per MoE layer (dispatch %.0f + combine %.0f of float32 rows "
              "of %lld, gather %.0f)\n",
              p.exchange.total(), p.exchange.dispatch, p.exchange.combine, (long long)c.hidden_size, p.exchange.gather);
  PrintAssumptions(cl, c, p, o.attention == "data");
  std::printf("%8s %10s %12s %13s %10s %10s %10s %12s %12s %s\n", "batch", "experts/L", "read/rank", "flops/rank",
              "compute", "exchange", "step", "tok/s/seq", "tok/s total", "memory/node");
  for (const dist::StepPlan& s : p.steps)
    std::printf("%8lld %10.1f %9.3f GB %7.2f GFLOP %7.2f ms %7.2f ms %7.2f ms %12.2f %12.1f %.1f GB%s\n",
                (long long)s.batch, s.experts_per_layer, (s.weight_read + s.kv_read) / 1e9, s.flops / 1e9,
                s.compute_s * 1e3, s.exchange_s * 1e3, s.step_s() * 1e3, s.tok_s_per_seq(), s.tok_s_total(),
                s.memory_per_node / 1e9, s.fits ? "" : " (does not fit)");
}

int Plan(const PlanCliOptions& o) {
  auto config = LoadConfig(o.model);
  if (!config.ok()) return Fail(config.status());
  auto format = dist::ParseWeightFormat(o.format);
  if (!format.ok()) return Fail(format.status());
  auto cluster = dist::ReadCluster(o.cluster);
  if (!cluster.ok()) return Fail(cluster.status());
  auto kv = dist::KvBytesPerToken(*config, o.kv);
  if (!kv.ok()) return Fail(kv.status());
  if (cluster->ranks() > config->n_routed_experts)
    return Fail(Status::Error(o.cluster + ": " + std::to_string(cluster->ranks()) + " ranks but the model has only " +
                              std::to_string(config->n_routed_experts) + " routed experts"));
  std::unique_ptr<TensorStore> store;  // stored bytes when the checkpoint is there and no format is asked for
  if (*format == dist::WeightFormat::kStored && std::filesystem::is_directory(o.model)) {
    if (auto opened = TensorStore::Open(o.model); opened.ok()) store = std::move(*opened);
  }
  const dist::WeightBytes w = dist::TallyWeightBytes(*config, *format, store.get());
  dist::PlanOptions po;
  po.context = o.context, po.kv_bytes_per_token = *kv, po.batches = o.batches;
  po.data_parallel_attention = o.attention == "data";
  PrintPlan(o, *config, w, *cluster, dist::MakePlan(*config, w, *cluster, po), *kv);
  return 0;
}

}  // namespace

void RegisterPlan(CLI::App& app, Common& common) {
  auto o = std::make_shared<PlanCliOptions>();
  CLI::App* cmd = app.add_subcommand("plan", "project per-rank memory and decode speed of a model on a cluster");
  cmd->add_option("-m,--model", o->model, "checkpoint directory or config.json")->required();
  cmd->add_option("--cluster", o->cluster, "cluster JSON file (fields: docs/distributed.md)")->required();
  cmd->add_option("--format", o->format, "weights: stored, fp8, bf16, q8_0 or q4_k")->capture_default_str();
  cmd->add_option("--kv", o->kv, "KV cache: f32 or fp8")->capture_default_str();
  cmd->add_option("--attention", o->attention, "replicated (run, bench: every rank runs every sequence) or data "
                 "(serve: each rank its own sequences and their KV cache)")
      ->check(CLI::IsMember({"replicated", "data"}))
      ->capture_default_str();
  cmd->add_option("--context", o->context, "tokens cached per sequence")->check(CLI::Range(1, 1 << 24))
      ->capture_default_str();
  cmd->add_option("-b,--batch", o->batches, "decode batch sizes")->delimiter(',')->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  cmd->callback([o, &common] {
    common.Apply();
    common.exit_code = Plan(*o);
  });
}

}  // namespace dsv3::cli
