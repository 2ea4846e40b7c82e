// `dsv3 inspect`: what a checkpoint is, from config.json alone (weights are
// summarised too when present): architecture, parameters total and active per
// token, bytes per dtype, latent KV-cache bytes per token and per context,
// and the sampling defaults the checkpoint's generation_config.json gives.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "apps/dsv3/commands.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "dist/expert_placement.h"
#include "dist/planner.h"
#include "model/config.h"
#include "model/weights.h"
#include "model/gguf_model.h"
#include "model/stats.h"
#include "runtime/generation_config.h"

namespace dsv3::cli {

namespace {

struct InspectOptions {
  std::string model_dir;
  int64_t context = 0;  // 0: max_position_embeddings
  int ranks = 0;        // --ranks: bytes per rank under expert parallelism
};

const char* Name(TopkMethod m) {
  return m == TopkMethod::kNoauxTc ? "noaux_tc" : m == TopkMethod::kGreedy ? "greedy" : "group_limited_greedy";
}

void PrintArchitecture(const Config& c) {
  std::printf("model_type          %s\n", c.model_type_name.c_str());
  std::printf("layers              %lld (+%lld MTP), hidden %lld, vocab %lld\n", (long long)c.num_hidden_layers,
              (long long)c.num_nextn_predict_layers, (long long)c.hidden_size, (long long)c.vocab_size);
  std::printf("attention           MLA, %lld heads, q_lora_rank %lld, kv_lora_rank %lld, qk %lld+%lld, v %lld\n",
              (long long)c.num_attention_heads, (long long)c.q_lora_rank, (long long)c.kv_lora_rank,
              (long long)c.qk_nope_head_dim, (long long)c.qk_rope_head_dim, (long long)c.v_head_dim);
  if (c.HasMoe()) {
    std::printf("moe                 %lld routed + %lld shared experts of width %lld, top-%lld, %s, %s scores, "
                "groups %lld keep %lld, scale %g%s\n",
                (long long)c.n_routed_experts, (long long)c.n_shared_experts, (long long)c.moe_intermediate_size,
                (long long)c.num_experts_per_tok, Name(c.topk_method),
                c.scoring_func == ScoringFunc::kSigmoid ? "sigmoid" : "softmax", (long long)c.n_group,
                (long long)c.topk_group, c.routed_scaling_factor, c.norm_topk_prob ? ", normalised" : "");
    std::printf("dense layers        first %lld (width %lld), MoE every %lld after\n",
                (long long)c.first_k_dense_replace, (long long)c.intermediate_size, (long long)c.moe_layer_freq);
  }
  if (c.rope_scaling)
    std::printf("rope                theta %g, YaRN factor %g from %lld positions, max %lld\n", c.rope_theta,
                c.rope_scaling->factor, (long long)c.rope_scaling->original_max_position_embeddings,
                (long long)c.max_position_embeddings);
  else
    std::printf("rope                theta %g, max %lld positions\n", c.rope_theta, (long long)c.max_position_embeddings);
  std::printf("softmax scale       %.6f\n", c.SoftmaxScale());
  if (c.quantization)
    std::printf("quantization        fp8 e4m3, blocks %lldx%lld%s\n", (long long)c.quantization->block_rows,
                (long long)c.quantization->block_cols, c.quantization->scale_fmt_ue8m0 ? ", ue8m0 scales" : "");
}

// "671.03B", "2.31M", "950K": three significant decimals in a readable unit.
std::string Count(int64_t n) {
  char buf[32];
  const double x = static_cast<double>(n);
  if (x >= 1e9) std::snprintf(buf, sizeof buf, "%.2fB", x / 1e9);
  else if (x >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", x / 1e6);
  else std::snprintf(buf, sizeof buf, "%.1fK", x / 1e3);
  return buf;
}

void PrintParams(const ModelStats& s) {
  std::printf("parameters          %s main (embedding %s, head %s, routed experts %s)\n", Count(s.main_params).c_str(),
              Count(s.embedding_params).c_str(), Count(s.head_params).c_str(), Count(s.routed_expert_params).c_str());
  std::printf("active per token    %s (embedding and head included)\n", Count(s.active_params).c_str());
  if (s.mtp_params)
    std::printf("mtp                 %s unique, %s active per token\n", Count(s.mtp_params).c_str(),
                Count(s.mtp_active_params).c_str());
}

void PrintKv(const ModelStats& s, const Config& c, int64_t context) {
  const int64_t per_bf16 = s.kv_elements_per_token * 2;
  // What KvCache allocates per token (every layer, MTP included): float32
  // rows, or e4m3 rows with two float32 scales (--kv-cache fp8).
  const int64_t layers = c.num_layers_with_mtp(), row = c.kv_latent_dim();
  const int64_t f32 = layers * row * 4, fp8 = layers * (row + 8);
  std::printf("kv cache per token  %lld bytes at BF16 (MTP adds %lld); as dsv3 stores it: %lld at F32, %lld at FP8\n",
              (long long)per_bf16, (long long)(s.kv_elements_per_token_mtp * 2), (long long)f32, (long long)fp8);
  const double ctx = static_cast<double>(context), gib = 1ull << 30;
  std::printf("kv cache @ %-9lld %.3f GiB at BF16; dsv3: %.3f GiB at F32, %.3f GiB at FP8\n", (long long)context,
              per_bf16 * ctx / gib, f32 * ctx / gib, fp8 * ctx / gib);
}

// The defaults run, chat and serve take from generation_config.json; a file
// that is present but invalid is an error, as it is for those commands.
Status PrintGenerationDefaults(const std::string& model_path) {
  DSV3_ASSIGN_OR_RETURN(GenerationConfig g, LoadGenerationConfig(model_path));
  if (g.found())
    std::printf("generation defaults %s (from %s)\n", g.Describe().c_str(), g.path.c_str());
  else
    std::printf("generation defaults none (no generation_config.json; built in: greedy for run and chat, "
                "temperature 1 for serve)\n");
  return Status::Ok();
}

// Weights that are present but unreadable are an error (exit 1): a summary
// that looks complete must not hide a broken checkpoint.
Status PrintStoredBytes(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  // symlink_status: a dangling link or a FIFO under the name is present, and must fail loudly.
  auto present = [&](const char* name) { return fs::exists(fs::symlink_status(fs::path(dir) / name, ec)); };
  if (!present("model.safetensors") && !present("model.safetensors.index.json")) {
    std::printf("weights             none found (config.json only)\n");
    return Status::Ok();
  }
  auto store = TensorStore::Open(dir);
  if (!store.ok()) return store.status().WithContext("weights");
  std::map<std::string, std::pair<int64_t, uint64_t>> by_dtype;  // count, bytes
  for (const auto& name : (*store)->Names()) {
    const TensorInfo* t = (*store)->Find(name);
    auto& e = by_dtype[std::string(DTypeName(t->dtype))];
    ++e.first, e.second += t->nbytes;
  }
  for (const auto& [dtype, e] : by_dtype)
    std::printf("weights %-11s %lld tensors, %.3f MB\n", dtype.c_str(), (long long)e.first, e.second / 1e6);
  return Status::Ok();
}

// "950.123 MB", "106.295 GB"
std::string Bytes(uint64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, b >= 10000000000ull ? "%.3f GB" : "%.3f MB", b >= 10000000000ull ? b / 1e9 : b / 1e6);
  return buf;
}

// "0-3 8 10-11"
std::string Ranges(const std::vector<int32_t>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size();) {
    size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    out += (out.empty() ? "" : " ") + std::to_string(ids[i]) + (j > i ? "-" + std::to_string(ids[j]) : "");
    i = j + 1;
  }
  return out;
}

// --ranks N: what each rank holds under expert parallelism (the placement
// of --expert-map, or contiguous blocks): replicated tensors plus its
// routed experts, from the checkpoint's tensors or else from config.json.
Status PrintRankBytes(const std::string& path, const Config& c, int ranks, const std::string& expert_map) {
  auto placement = expert_map.empty() ? dist::ContiguousPlacement(c.n_routed_experts, ranks)
                                      : dist::ReadExpertMap(expert_map, c.n_routed_experts, ranks);
  if (!placement.ok()) return placement.status().WithContext("--ranks");
  std::unique_ptr<TensorStore> store;
  if (!IsGgufPath(path) && std::filesystem::is_directory(path)) {
    if (auto opened = TensorStore::Open(path); opened.ok()) store = std::move(*opened);
  }
  // The planner's tally (dsv3 plan shares it): stored bytes, else config.json's.
  const dist::WeightBytes w = dist::TallyWeightBytes(c, dist::WeightFormat::kStored, store.get());
  const uint64_t replicated = w.replicated;
  const std::vector<uint64_t>& expert = w.expert;
  std::printf("expert parallel     %d ranks, %s; bytes %s\n", ranks,
              expert_map.empty() ? "contiguous blocks of experts" : ("experts per " + expert_map).c_str(),
              store ? "as stored" : "estimated from config.json (FP8 linear layers if quantized, else BF16)");
  std::printf("  replicated        %s on every rank (attention, dense MLPs, shared experts, routers, "
              "embedding, head, norms)\n", Bytes(replicated).c_str());
  for (int r = 0; r < ranks; ++r) {
    const std::vector<int32_t> mine = placement->ExpertsOf(r);
    uint64_t routed = 0;
    for (int32_t e : mine) routed += expert[e];
    std::printf("  rank %-12d %s: replicated + %s of %zu routed experts (%s)\n", r, Bytes(replicated + routed).c_str(),
                Bytes(routed).c_str(), mine.size(), Ranges(mine).c_str());
  }
  return Status::Ok();
}

// A GGUF file: config from its metadata, bytes per ggml type.
Expected<Config> InspectGguf(const std::string& path) {
  DSV3_ASSIGN_OR_RETURN(auto file, GgufFile::Open(path));
  DSV3_ASSIGN_OR_RETURN(Config c, ConfigFromGguf(*file));
  std::map<std::string, std::pair<int64_t, uint64_t>> by_type;  // count, bytes
  for (const auto& t : file->tensors()) {
    auto& e = by_type[GgmlTypeName(t.ggml_type)];
    ++e.first, e.second += t.nbytes;
  }
  for (const auto& [type, e] : by_type)
    std::printf("gguf %-14s %lld tensors, %.3f MB\n", type.c_str(), (long long)e.first, e.second / 1e6);
  return c;
}

int Inspect(const InspectOptions& o, const Common& common) {
  auto config = IsGgufPath(o.model_dir) ? InspectGguf(o.model_dir) : LoadConfig(o.model_dir);
  if (!config.ok()) return Fail(config.status());
  const Config& c = *config;
  PrintArchitecture(c);
  const ModelStats s = ComputeStats(c);
  PrintParams(s);
  PrintKv(s, c, o.context > 0 ? o.context : c.max_position_embeddings);
  std::fflush(stdout);  // the summary so far, then any error
  if (Status st = PrintGenerationDefaults(o.model_dir); !st.ok()) return Fail(st);
  if (!IsGgufPath(o.model_dir)) {
    std::fflush(stdout);
    if (Status st = PrintStoredBytes(o.model_dir); !st.ok()) return Fail(st);
  }
  if (o.ranks > 0) {
    std::fflush(stdout);
    if (Status st = PrintRankBytes(o.model_dir, c, o.ranks, common.expert_map); !st.ok()) return Fail(st);
  }
  return 0;
}

}  // namespace

void RegisterInspect(CLI::App& app, Common& common) {
  auto o = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand("inspect", "describe a model from its config.json (and weights if present)");
  cmd->add_option("-m,--model", o->model_dir, "checkpoint directory, config.json or .gguf file")->required();
  cmd->add_option("--context", o->context, "context length for the KV-cache total (default: max positions)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--ranks", o->ranks, "bytes each of N expert-parallel ranks holds (with --expert-map: that placement)")
      ->check(CLI::Range(1, 1 << 20));
  cmd->callback([o, &common] {
    common.Apply();
    common.exit_code = Inspect(*o, common);
  });
}

}  // namespace dsv3::cli
