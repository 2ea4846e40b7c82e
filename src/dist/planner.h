// The cluster planner behind `dsv3 plan` (issue 14, docs/distributed.md):
// from a model config and a cluster description (nodes, ranks per node,
// memory, memory bandwidth, link bandwidth and latency), what each rank
// holds (the same tally `dsv3 inspect --ranks` prints), the latent KV cache
// per sequence and per rank, the bytes the expert exchange sends per token
// and MoE layer (the row format of expert_exchange.cc: float32 rows of
// hidden_size), and a projected decode rate at several batch sizes. The
// projection is bandwidth-bound decode: each step reads the replicated
// weights, the rank's share of the distinct experts the batch selects
// (E * (1 - (1 - k/E)^B), uniform routing) and every sequence's KV cache
// (replicated attention, as run/bench run it) or only its own sequences'
// (data-parallel attention, as serve runs it: ceil(B/N) on the busiest
// rank), at the node's memory bandwidth split over its ranks times a
// measured efficiency; plus, per MoE layer, four collectives (counts,
// dispatch, combine, gather; no gather with data-parallel attention) of
// latency + bytes / bandwidth, not overlapped with compute;
// optionally plus the step's flops at a measured fraction of the FMA peak
// (batched decode is partly compute-bound on CPUs).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/config.h"
#include "model/weights.h"

namespace dsv3 {
class TensorStore;
}

namespace dsv3::dist {

// Bytes of the linear layers' weights: as stored (a checkpoint), FP8 with
// F32 128x128 block scales (DeepSeek's), BF16, or ggml's Q8_0 / Q4_K blocks.
enum class WeightFormat { kStored, kFp8, kBf16, kQ8_0, kQ4_K };
Expected<WeightFormat> ParseWeightFormat(const std::string& name);  // "fp8", "bf16", "q8_0", "q4_k"
const char* WeightFormatName(WeightFormat f);

// Bytes of a tensor of config.json's tensor list at `format`. kStored means
// what config.json says: FP8 linear layers when quantization_config is set,
// else BF16. Embedding, head and routers stay BF16, norms BF16, router bias F32.
uint64_t ConfigTensorBytes(const Config& c, const TensorDesc& t, WeightFormat format);

// Where a model's weight bytes sit.
struct WeightBytes {
  uint64_t replicated = 0;      // on every rank: all but the routed experts
  uint64_t embedding = 0;       // of which the embedding table (decode reads B rows)
  uint64_t mtp_replicated = 0;  // of which the MTP layers (not read by plain decode)
  std::vector<uint64_t> expert;  // [E] routed expert e over all its layers, MTP included
  uint64_t expert_main = 0;      // all routed experts of the main layers
  bool from_store = false;       // tallied from a checkpoint's tensors
};
// From `store` when given (its tensors as stored), else config.json's tensor list at `format`.
WeightBytes TallyWeightBytes(const Config& c, WeightFormat format, const TensorStore* store);
// Routed expert of a tensor name ("model.layers.L.mlp.experts.E...."), or -1; its layer, or -1.
int64_t RoutedExpertOf(const std::string& name);
int64_t LayerOf(const std::string& name);

// A cluster: identical nodes; bandwidths in bytes/s, latencies in seconds.
struct Cluster {
  int64_t nodes = 0, ranks_per_node = 0, cores_per_node = 0;
  double memory_per_node = 0;     // bytes
  double membw_per_node = 0;      // bytes/s, read
  double link_bytes_per_s = 0;    // per node, each direction
  double link_latency_s = 0;      // per collective between nodes
  double shm_bytes_per_s = 10.8e9;  // per rank pair within a node
  double shm_latency_s = 1.0e-6;    // per collective within a node
  double efficiency = 1.0;          // measured decode rate / bandwidth-bound rate, (0, 1]
  // Optional compute term: the node's FMA peak (FLOP/s; 0: decode is
  // modelled as bandwidth-bound only) and the fraction of it the decode
  // kernels reach. With it, step = bytes / (bandwidth x efficiency) +
  // flops / (peak x compute_efficiency) + exchange.
  double flops_per_node = 0;
  double compute_efficiency = 1.0;
  int64_t ranks() const { return nodes * ranks_per_node; }
};
// JSON object (docs/distributed.md lists the fields); errors name `name` and the field.
Expected<Cluster> ParseCluster(const std::string& text, const std::string& name);
Expected<Cluster> ReadCluster(const std::string& path);

// Expected distinct experts among E when B tokens each pick k: E * (1 - (1 - k/E)^B).
double DistinctExperts(int64_t E, int64_t k, int64_t B);

// Bytes the exchange sends to other ranks per token and MoE layer over N
// ranks, uniform routing: dispatch and combine each K rows of d float32
// values times (N-1)/N (the rows for the owner's own experts stay put), and
// the gather of the token's output row to the N-1 other ranks.
struct ExchangeBytes {
  double dispatch = 0, combine = 0, gather = 0;
  double total() const { return dispatch + combine + gather; }
};
// With data-parallel attention a token's output stays on its rank: no gather.
ExchangeBytes ExchangePerTokenLayer(int64_t d, int64_t k, int64_t ranks, bool data_parallel_attention = false);

// Latent KV bytes per token of the main layers: "f32" (as dsv3 stores it)
// or "fp8" (e4m3 plus one F32 scale per token and layer).
Expected<double> KvBytesPerToken(const Config& c, const std::string& kv_type);

// Multiply-add flops (2 per weight) of one decoded token in the main
// layers: the replicated linear layers, router and head, and the routed
// experts (all of them; a token uses K of every layer's E), plus the
// absorbed attention's per cached row, 2H(2 rc + dr) per layer.
struct DecodeFlopsPerToken {
  double replicated = 0, routed_all = 0, attention_per_row = 0;
};
DecodeFlopsPerToken CountDecodeFlops(const Config& c);

struct PlanOptions {
  int64_t context = 4096;  // tokens cached per sequence when decoding
  double kv_bytes_per_token = 0;
  std::vector<int64_t> batches = {1, 8, 32, 128};
  // Each rank runs attention, the replicated layers and the KV cache of its
  // own ceil(B/N) sequences (serve's default) instead of all B.
  bool data_parallel_attention = false;
};

// One batch size's projection, per rank and step.
struct StepPlan {
  int64_t batch = 0;
  double experts_per_layer = 0;  // distinct, whole job
  double weight_read = 0, kv_read = 0;  // bytes per rank per step
  double flops = 0;                     // per rank per step
  double memory_s = 0, flop_s = 0;      // the two parts of compute_s
  double compute_s = 0, exchange_s = 0;
  double memory_per_node = 0;  // weights + KV of the batch on each rank, times ranks per node
  bool fits = false;
  double step_s() const { return compute_s + exchange_s; }
  double tok_s_per_seq() const { return 1.0 / step_s(); }
  double tok_s_total() const { return batch / step_s(); }
};

struct Plan {
  int64_t ranks = 0, moe_layers = 0;
  uint64_t replicated = 0, routed_max = 0;  // bytes on each rank; the largest rank's experts
  ExchangeBytes exchange;                   // per token per MoE layer
  DecodeFlopsPerToken flops;                // per decoded token
  std::vector<StepPlan> steps;
};

Plan MakePlan(const Config& c, const WeightBytes& w, const Cluster& cl, const PlanOptions& o);
// One collective of `pair_bytes` to every other rank: latency + the slower
// of the node's off-node bytes over its link and the bytes over shared memory.
double CollectiveSeconds(const Cluster& cl, double pair_bytes);

}  // namespace dsv3::dist
