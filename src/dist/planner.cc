// The cluster planner's arithmetic; see planner.h. Weight bytes come from
// the same tensor list `dsv3 inspect --ranks` walks (a checkpoint's stored
// tensors, else config.json's), the cluster from a small JSON file whose
// every field is checked (present, a number, in range) with errors naming
// the file and the field.
#include "dist/planner.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/dtype.h"
#include "io/safetensors.h"

namespace dsv3::dist {

Expected<WeightFormat> ParseWeightFormat(const std::string& name) {
  if (name == "stored") return WeightFormat::kStored;
  if (name == "fp8") return WeightFormat::kFp8;
  if (name == "bf16") return WeightFormat::kBf16;
  if (name == "q8_0") return WeightFormat::kQ8_0;
  if (name == "q4_k") return WeightFormat::kQ4_K;
  return Status::Error("--format: unknown weight format '" + name + "' (stored, fp8, bf16, q8_0 or q4_k)");
}

const char* WeightFormatName(WeightFormat f) {
  switch (f) {
    case WeightFormat::kStored: return "as config.json says";
    case WeightFormat::kFp8: return "FP8 + F32 128x128 block scales";
    case WeightFormat::kBf16: return "BF16";
    case WeightFormat::kQ8_0: return "Q8_0";
    case WeightFormat::kQ4_K: return "Q4_K";
  }
  return "?";
}

uint64_t ConfigTensorBytes(const Config& c, const TensorDesc& t, WeightFormat format) {
  if (t.shape.size() == 1) return t.shape[0] * (t.role == TensorRole::kRouterBias ? 4 : 2);
  const uint64_t rows = t.shape[0], cols = t.shape[1];
  if (t.role != TensorRole::kLinear) return rows * cols * 2;
  if (format == WeightFormat::kStored) format = c.quantization ? WeightFormat::kFp8 : WeightFormat::kBf16;
  switch (format) {
    case WeightFormat::kFp8: {
      const uint64_t br = c.quantization ? c.quantization->block_rows : 128;
      const uint64_t bc = c.quantization ? c.quantization->block_cols : 128;
      return rows * cols + ((rows + br - 1) / br) * ((cols + bc - 1) / bc) * 4;
    }
    case WeightFormat::kQ8_0:
    case WeightFormat::kQ4_K: {
      const DType q = format == WeightFormat::kQ8_0 ? DType::kQ8_0 : DType::kQ4_K;
      const uint64_t per = DTypeBlockElems(q);  // rows padded to whole blocks
      return rows * ((cols + per - 1) / per) * DTypeBlockBytes(q);
    }
    default: return rows * cols * 2;
  }
}

int64_t RoutedExpertOf(const std::string& name) {
  const std::string key = ".mlp.experts.";
  const size_t at = name.find(key);
  return at == std::string::npos ? -1 : std::atoll(name.c_str() + at + key.size());
}

int64_t LayerOf(const std::string& name) {
  const std::string key = "model.layers.";
  return name.rfind(key, 0) == 0 ? std::atoll(name.c_str() + key.size()) : -1;
}

WeightBytes TallyWeightBytes(const Config& c, WeightFormat format, const TensorStore* store) {
  WeightBytes w;
  w.expert.assign(c.n_routed_experts, 0);
  w.from_store = store != nullptr;
  auto add = [&](const std::string& name, bool embedding, uint64_t bytes) {
    const int64_t e = RoutedExpertOf(name), layer = LayerOf(name);
    const bool mtp = layer >= c.num_hidden_layers;
    if (e >= 0 && e < c.n_routed_experts) {
      w.expert[e] += bytes;
      if (!mtp) w.expert_main += bytes;
      return;
    }
    w.replicated += bytes;
    if (embedding) w.embedding += bytes;
    if (mtp) w.mtp_replicated += bytes;
  };
  if (store) {
    for (const auto& name : store->Names()) add(name, name == "model.embed_tokens.weight", store->Find(name)->nbytes);
  } else {
    for (const TensorDesc& t : ListTensors(c))
      add(t.name, t.role == TensorRole::kEmbedding && LayerOf(t.name) < 0, ConfigTensorBytes(c, t, format));
  }
  return w;
}

namespace {

// A number field of the cluster object; `min` exclusive when `open`.
Expected<double> NumberField(const nlohmann::json& j, const std::string& name, const char* key, bool required,
                             double fallback, double min, bool open) {
  const auto it = j.find(key);
  if (it == j.end()) {
    if (!required) return fallback;
    return Status::Error(name + ": field '" + key + "' is missing");
  }
  if (!it->is_number()) return Status::Error(name + ": field '" + key + "' must be a number (got " + it->dump() + ")");
  const double v = it->get<double>();
  if (!std::isfinite(v) || (open ? v <= min : v < min)) {
    std::ostringstream s;
    s << name << ": field '" << key << "' must be " << (open ? "> " : ">= ") << min << " (got " << it->dump() << ")";
    return Status::Error(s.str());
  }
  return v;
}

Expected<int64_t> CountField(const nlohmann::json& j, const std::string& name, const char* key) {
  DSV3_ASSIGN_OR_RETURN(double v, NumberField(j, name, key, true, 0, 1, false));
  if (v != std::floor(v) || v > (1 << 20))
    return Status::Error(name + ": field '" + key + "' must be a whole number from 1 to 1048576 (got " +
                         j[key].dump() + ")");
  return static_cast<int64_t>(v);
}

}  // namespace

Expected<Cluster> ParseCluster(const std::string& text, const std::string& name) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Error(name + ": not a JSON object");
  static const char* kKnown[] = {"nodes", "ranks_per_node", "cores_per_node", "memory_per_node_gb",
                                 "memory_bandwidth_gbs", "link_bandwidth_gbits", "link_latency_us",
                                 "shm_bandwidth_gbs", "shm_latency_us", "efficiency", "fma_peak_gflops",
                                 "compute_efficiency", "comment"};
  for (const auto& [key, value] : j.items())
    if (std::find_if(std::begin(kKnown), std::end(kKnown), [&](const char* k) { return key == k; }) == std::end(kKnown))
      return Status::Error(name + ": unknown field '" + key + "'");
  Cluster c;
  DSV3_ASSIGN_OR_RETURN(c.nodes, CountField(j, name, "nodes"));
  DSV3_ASSIGN_OR_RETURN(c.ranks_per_node, CountField(j, name, "ranks_per_node"));
  DSV3_ASSIGN_OR_RETURN(c.cores_per_node, CountField(j, name, "cores_per_node"));
  DSV3_ASSIGN_OR_RETURN(double mem, NumberField(j, name, "memory_per_node_gb", true, 0, 0, true));
  DSV3_ASSIGN_OR_RETURN(double membw, NumberField(j, name, "memory_bandwidth_gbs", true, 0, 0, true));
  DSV3_ASSIGN_OR_RETURN(double link, NumberField(j, name, "link_bandwidth_gbits", true, 0, 0, true));
  DSV3_ASSIGN_OR_RETURN(double lat, NumberField(j, name, "link_latency_us", true, 0, 0, false));
  DSV3_ASSIGN_OR_RETURN(double shm, NumberField(j, name, "shm_bandwidth_gbs", false, 10.8, 0, true));
  DSV3_ASSIGN_OR_RETURN(double shm_lat, NumberField(j, name, "shm_latency_us", false, 1.0, 0, false));
  DSV3_ASSIGN_OR_RETURN(c.efficiency, NumberField(j, name, "efficiency", false, 1.0, 0, true));
  if (c.efficiency > 1) return Status::Error(name + ": field 'efficiency' must be in (0, 1] (got " + j["efficiency"].dump() + ")");
  DSV3_ASSIGN_OR_RETURN(double peak, NumberField(j, name, "fma_peak_gflops", false, 0, 0, false));
  DSV3_ASSIGN_OR_RETURN(c.compute_efficiency, NumberField(j, name, "compute_efficiency", false, 1.0, 0, true));
  if (c.compute_efficiency > 1)
    return Status::Error(name + ": field 'compute_efficiency' must be in (0, 1] (got " + j["compute_efficiency"].dump() + ")");
  c.flops_per_node = peak * 1e9;
  c.memory_per_node = mem * 1e9, c.membw_per_node = membw * 1e9;
  c.link_bytes_per_s = link * 1e9 / 8, c.link_latency_s = lat * 1e-6;
  c.shm_bytes_per_s = shm * 1e9, c.shm_latency_s = shm_lat * 1e-6;
  return c;
}

Expected<Cluster> ReadCluster(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error("--cluster: cannot read '" + path + "'");
  std::ostringstream s;
  s << in.rdbuf();
  return ParseCluster(s.str(), path);
}

double DistinctExperts(int64_t E, int64_t k, int64_t B) {
  if (E <= 0) return 0;
  return E * (1.0 - std::pow(1.0 - static_cast<double>(k) / E, static_cast<double>(B)));
}

ExchangeBytes ExchangePerTokenLayer(int64_t d, int64_t k, int64_t ranks, bool data_parallel_attention) {
  ExchangeBytes x;
  const double row = 4.0 * d, remote = static_cast<double>(ranks - 1) / ranks;
  x.dispatch = k * row * remote;
  x.combine = k * row * remote;
  x.gather = data_parallel_attention ? 0.0 : row * (ranks - 1);
  return x;
}

Expected<double> KvBytesPerToken(const Config& c, const std::string& kv_type) {
  const double elements = static_cast<double>(c.num_hidden_layers) * c.kv_latent_dim();
  if (kv_type == "f32") return elements * 4;
  if (kv_type == "fp8") return elements + 4.0 * c.num_hidden_layers;
  return Status::Error("--kv: unknown KV cache type '" + kv_type + "' (f32 or fp8)");
}

DecodeFlopsPerToken CountDecodeFlops(const Config& c) {
  DecodeFlopsPerToken f;
  for (const TensorDesc& t : ListTensors(c)) {
    if (t.shape.size() != 2 || t.optional || LayerOf(t.name) >= c.num_hidden_layers) continue;
    if (t.role != TensorRole::kLinear && t.role != TensorRole::kRouter && t.role != TensorRole::kHead) continue;
    const double flops = 2.0 * t.shape[0] * t.shape[1];
    (RoutedExpertOf(t.name) >= 0 ? f.routed_all : f.replicated) += flops;
  }
  f.attention_per_row = 2.0 * c.num_hidden_layers * c.num_attention_heads *
                        (2.0 * c.kv_lora_rank + c.qk_rope_head_dim);
  return f;
}

double CollectiveSeconds(const Cluster& cl, double pair_bytes) {
  const double rpn = static_cast<double>(cl.ranks_per_node), n = static_cast<double>(cl.ranks());
  const double off_node = rpn * (n - rpn) * pair_bytes;  // leaves each node over its link
  const double link_s = cl.nodes > 1 ? off_node / cl.link_bytes_per_s : 0.0;
  const double shm_s = rpn > 1 ? pair_bytes / cl.shm_bytes_per_s : 0.0;
  return (cl.nodes > 1 ? cl.link_latency_s : cl.shm_latency_s) + std::max(link_s, shm_s);
}

namespace {

// Seconds of one MoE layer's exchange for a step whose busiest rank owns
// `owned` tokens: the expert counts (E int64 per rank pair), dispatch and
// combine (its tokens' K rows, 1/N to each rank) and, with replicated
// attention, the gather of its output rows.
double ExchangeSeconds(const Config& c, const Cluster& cl, double owned, bool gather) {
  const double n = static_cast<double>(cl.ranks());
  if (n <= 1) return 0.0;
  const double row = 4.0 * c.hidden_size;
  return CollectiveSeconds(cl, 8.0 * c.n_routed_experts) +
         2 * CollectiveSeconds(cl, owned * c.num_experts_per_tok * row / n) +
         (gather ? CollectiveSeconds(cl, owned * row) : 0.0);
}

StepPlan MakeStep(const Config& c, const WeightBytes& w, const Cluster& cl, const PlanOptions& o, const Plan& p,
                  int64_t batch) {
  StepPlan s;
  s.batch = batch;
  const int64_t E = c.n_routed_experts;
  s.experts_per_layer = DistinctExperts(E, c.num_experts_per_tok, batch);
  const double per_expert_layer = p.moe_layers > 0 && E > 0 ? double(w.expert_main) / (E * p.moe_layers) : 0.0;
  // Sequences whose attention the busiest rank runs: all, or its ceil(B/N).
  const bool dp = o.data_parallel_attention;
  const double own = dp ? double((batch + p.ranks - 1) / p.ranks) : double(batch);
  const double embedding_rows = c.vocab_size > 0 ? double(w.embedding) / c.vocab_size * own : 0.0;
  s.weight_read = double(w.replicated - w.embedding - w.mtp_replicated) + embedding_rows +
                  p.moe_layers * s.experts_per_layer / p.ranks * per_expert_layer;
  s.kv_read = o.kv_bytes_per_token * o.context * own;
  const double bw = cl.membw_per_node / cl.ranks_per_node * cl.efficiency;
  s.memory_s = (s.weight_read + s.kv_read) / bw;
  // A rank runs attention and the replicated layers for its sequences (all
  // of them, or its own), and its share of the routed experts' rows.
  const DecodeFlopsPerToken& f = p.flops;
  const double routed_per_token = E > 0 ? f.routed_all * c.num_experts_per_tok / E : 0.0;
  s.flops = own * (f.replicated + f.attention_per_row * o.context) + batch * routed_per_token / p.ranks;
  if (cl.flops_per_node > 0) s.flop_s = s.flops / (cl.flops_per_node / cl.ranks_per_node * cl.compute_efficiency);
  s.compute_s = s.memory_s + s.flop_s;
  s.exchange_s = p.moe_layers * ExchangeSeconds(c, cl, dp ? own : batch / double(p.ranks), !dp);
  s.memory_per_node = cl.ranks_per_node * (double(p.replicated + p.routed_max) + s.kv_read);
  s.fits = s.memory_per_node <= cl.memory_per_node;
  return s;
}

}  // namespace

Plan MakePlan(const Config& c, const WeightBytes& w, const Cluster& cl, const PlanOptions& o) {
  Plan p;
  p.ranks = cl.ranks();
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) p.moe_layers += c.IsMoeLayer(l) ? 1 : 0;
  p.replicated = w.replicated;
  const int64_t E = c.n_routed_experts;
  for (int64_t r = 0; r < p.ranks; ++r) {  // contiguous blocks, as ContiguousPlacement
    uint64_t mine = 0;
    for (int64_t e = E * r / p.ranks; e < E * (r + 1) / p.ranks; ++e) mine += w.expert[e];
    p.routed_max = std::max(p.routed_max, mine);
  }
  p.exchange = ExchangePerTokenLayer(c.hidden_size, c.num_experts_per_tok, p.ranks, o.data_parallel_attention);
  p.flops = CountDecodeFlops(c);
  for (int64_t b : o.batches) p.steps.push_back(MakeStep(c, w, cl, o, p, b));
  return p;
}

}  // namespace dsv3::dist
