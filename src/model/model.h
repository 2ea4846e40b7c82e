// A loaded DeepSeek-V3/V2 model and its forward pass over a ragged batch:
// any mix of prefill chunks and one-token decode steps from different
// sequences, each token naming its cache slot and position. Linear layers see
// all tokens of the batch at once (each expert's weights are read once per
// call); attention reads the latent cache of the token's own slot.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/status.h"
#include "dist/expert_exchange.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/rope.h"
#include "model/router.h"
#include "model/weights.h"
#include "ops/ops.h"

namespace dsv3 {

// Token i of the batch is tokens[i] at positions[i] in cache slot slots[i].
// Tokens of one slot must be in increasing, consecutive positions starting at
// or before the slot's current length. Logits are produced for the tokens
// listed in logit_rows (indices into tokens), in that order.
struct Batch {
  std::vector<int32_t> tokens, positions, slots, logit_rows;
  void Clear() { tokens.clear(), positions.clear(), slots.clear(), logit_rows.clear(); }
  void Add(int32_t token, int32_t pos, int32_t slot, bool want_logits) {
    if (want_logits) logit_rows.push_back(static_cast<int32_t>(tokens.size()));
    tokens.push_back(token), positions.push_back(pos), slots.push_back(slot);
  }
  int64_t size() const { return static_cast<int64_t>(tokens.size()); }
};

// Which form of MLA attention a forward uses (Model::Attention): absorbed
// (queries in the latent space; cheapest for decode), decompressed (K/V
// expanded per head; cheapest for prefill), or per batch by estimated cost.
enum class AttentionForm { kAuto, kAbsorbed, kDecompressed };

// Activation buffers sized for a batch; grown on demand, reused across calls
// so the token loop does not allocate.
struct Workspace {
  int64_t tokens = 0;  // capacity in tokens
  std::vector<float> h, x, proj;        // [N, d]
  std::vector<float> hidden;            // [N, d] final hidden state after model.norm
  std::vector<float> q_a, q, kv;        // [N, rq], [N, H*(dn+dr)], [N, rc+dr]
  std::vector<float> q_full, o_lat;     // [N, H, rc+dr], [N, H, rc]
  std::vector<float> attn;              // [N, H*dv]
  // Decompressed attention (prefill): cache rows and their expansion per
  // chunk of ops::kMhaChunk rows, and the streaming-softmax state.
  std::vector<float> mha_lat, mha_kv;   // [chunk, rc+dr], [chunk, H*(dn+dv)]
  std::vector<float> mha_max, mha_sum;  // [N, H]
  // Forces this caller's forwards to one form of MLA attention; kAuto
  // follows LoadOptions::attention_form (`dsv3 bench --compare-attention`
  // alternates the forms on one loaded model).
  AttentionForm attention_form = AttentionForm::kAuto;
  std::vector<float> rope_cos, rope_sin;  // [N, dr/2]
  std::vector<float> ffn_gate, ffn_up;  // [N, max ffn width]
  std::vector<float> router_logits, router_scratch;  // [N, E], [threads, scratch]
  std::vector<int32_t> expert_ids;      // [N, K]
  std::vector<float> expert_weights;    // [N, K]
  std::vector<int32_t> expert_offset;   // [E+1] rows of each expert in gathered
  std::vector<float> gathered, gathered_out;  // [N*K, d] rows grouped by expert
  std::vector<const float*> routed_rows;  // [N*K] expert output of each owned (token, k)
  dist::ExchangeBuffers exchange;       // the expert exchange's buffers and counters
  dist::ExchangeBuffers exchange_b = dist::ExchangeBuffers::SecondHalf();  // the second micro-batch's (Model::Moe)
  std::vector<ops::AttentionBlock> attn_blocks;  // runs of one slot's consecutive tokens
  std::vector<ops::MatMulJob> mm_jobs;  // per-head and per-expert products of one stage
  std::vector<Weight> head_views;       // [H] per-head slices the jobs point at
  std::vector<ops::GateUpJob> gate_up_jobs;
  std::vector<float> mtp_in;            // [N, 2d]
  std::vector<float> logits;            // [rows, V]
  std::vector<int64_t> slot_next;       // [slots] batch validation
  // Counters for benchmarks: routed experts run and MoE layers run so far.
  int64_t experts_run = 0, moe_layers_run = 0;
};

// How a weight is held in memory: as the checkpoint stores it, or converted
// at load (FP8 = e4m3 with 128x128 block scales, amax/448 per block).
enum class WeightFormat { kAsStored, kBf16, kFp8 };

struct LoadOptions {
  bool verbose = false;  // print a loading summary to stderr
  WeightFormat head = WeightFormat::kAsStored;    // lm_head and MTP shared heads
  WeightFormat router = WeightFormat::kAsStored;  // MoE gate weights
  KvCacheType kv_cache = KvCacheType::kF32;       // what NewCache() allocates
  // Linear layers (not the router) round activations to bf16 so BF16/FP8
  // weights use VDPBF16PS; a reduced-precision mode with its own bound.
  bool bf16_activations = false;
  // GGUF block-type weights: keep float32 activations (the exact path)
  // instead of int8 per-32 activations with VNNI from 8 tokens on (issue 16).
  bool exact_block_activations = false;
  // FP8 weights: int8 products with VNNI (MatMulOptions::int8_fp8). Copied
  // into memory (load_to_memory) the FP8 matrices but routers become int8
  // tiles at load (DType::kI8T32) and every product, decode included, is
  // int8; read from the mapping, from 8 tokens on only.
  bool int8_fp8 = false;
  // While copying the weights into memory, Q4_K matrices (all but the
  // embedding, whose rows are looked up) with rows in fours are interleaved
  // four rows at a time (DType::kQ4_KR4, core/q4k_r4.h: the same bytes, a
  // faster decode kernel) and Q8_0 matrices become int8 tiles with their
  // scales (DType::kQ8_0T32: the same bytes; no per-call tile preparation
  // in prefill, a faster decode kernel). Needs load_to_memory.
  bool repack = false;
  // Weights whose bytes do not start on a 64-byte boundary in the mapped
  // file are copied into aligned memory: the kernels stream misaligned rows
  // at half speed. Off: read in place, except tensors not even aligned to
  // their element size (an unpadded safetensors header), always copied.
  bool align_weights = true;
  // Copy every matrix but the embedding (read one row per token) out of the
  // page cache into anonymous memory with transparent huge pages: the decode
  // kernels stream 2 MiB pages faster than 4 KiB page-cache pages. Resident
  // memory is the same; loading costs one copy. Off: run from the mapping.
  bool load_to_memory = true;
  // Expert parallelism (docs/distributed.md): with a group of several ranks,
  // this process loads only its routed experts (contiguous blocks, or the
  // placement of the `expert_map` file) and every MoE layer exchanges token
  // rows with the other ranks, which must run the same forwards. The group
  // outlives the model. Null or one rank: every expert here.
  dist::Comm* comm = nullptr;
  std::string expert_map = {};
  // Across ranks: run the shared experts while the dispatch's rows travel
  // (false: after it, so the whole exchange is exposed; `bench` measures
  // both to report how much the overlap hides).
  bool overlap_exchange = true;
  // kAuto: the decompressed form for a single-sequence block when it costs
  // fewer flops; the others force one form everywhere (tests, measurement).
  AttentionForm attention_form = AttentionForm::kAuto;
};

// Parses "stored" / "bf16" / "fp8"; the error names `flag`.
Expected<WeightFormat> ParseWeightFormat(const std::string& text, const std::string& flag);
// Parses "auto" / "absorbed" / "decompressed"; the error names `flag`.
Expected<AttentionForm> ParseAttentionForm(const std::string& text, const std::string& flag);

class Model {
 public:
  // Loads config.json and the safetensors checkpoint from `dir`, or a
  // llama.cpp "deepseek2" GGUF file when `path` names a .gguf file.
  static Expected<std::unique_ptr<Model>> Load(const std::string& path, const LoadOptions& options = {});

  const Config& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  bool has_mtp() const { return config_.num_nextn_predict_layers > 0; }

  // Runs the main model. Writes ws.logits [logit_rows, V] and ws.hidden
  // [N, d] (the final normalised hidden state, the MTP module's input).
  Status Forward(const Batch& batch, KvCache& cache, Workspace& ws) const;

  // Runs MTP depth `depth` (0-based): token i of `batch` is t_{i+1} (the token
  // after the one whose main hidden state is hidden_in[i]) at position i's
  // position. Writes ws.logits (predictions for t_{i+2}) for logit_rows and
  // leaves the MTP block's output (before shared_head.norm) in ws.h.
  // draft_vocab > 0 projects only onto token ids [0, draft_vocab): ws.logits
  // is then [logit_rows, draft_vocab] (a cheaper head for speculative drafts).
  Status ForwardMtp(int depth, const Batch& batch, const float* hidden_in, KvCache& cache, Workspace& ws,
                    int64_t draft_vocab = 0) const;

  // Data-parallel attention (runtime/data_parallel.h; ws.exchange.split is
  // kOwnBatch): a rank with no tokens in a step still serves its experts to
  // the others. Takes
  // part in the expert exchange of every MoE layer of the main model
  // (mtp_depth < 0) or of MTP depth `mtp_depth`, as Forward / ForwardMtp do.
  void ServeExpertsOnly(int mtp_depth, Workspace& ws) const;
  // Grows ws for forwards of up to n tokens; with data-parallel attention
  // n is the whole step's, since a rank's experts may get rows of all of it.
  void ReserveTokens(Workspace& ws, int64_t n) const { Reserve(ws, n, 0, 1); }

  // The cache a batch of `slots` sequences of up to `capacity` tokens needs.
  KvCache NewCache(int64_t slots, int64_t capacity) const {
    return KvCache(config_, slots, capacity, options_.kv_cache);
  }
  const LoadOptions& options() const { return options_; }
  // Bytes of weights the model holds (mapped from the checkpoint or converted
  // at load), and of the weights one token of decode reads (every matrix but
  // the routed experts, plus top-k of them per MoE layer).
  uint64_t weight_bytes() const { return weight_bytes_; }
  // Bytes read for one decode step in which `experts_used` routed experts run
  // per MoE layer (batch 1: num_experts_per_tok), embedding rows excluded.
  uint64_t DecodeWeightBytes(double experts_used) const;
  // A hash of config.json (or a GGUF file's tensor list), the tensor index
  // (names, dtypes, shapes, sizes) and the final norm: ranks compare it to
  // check that they all loaded the same checkpoint.
  uint64_t fingerprint() const { return fingerprint_; }
  // Where the routed experts live; null when all are in this process.
  const dist::ExpertPlacement* placement() const { return placement_ ? &*placement_ : nullptr; }
  // The expert exchange's totals so far (zero in one process).
  const dist::ExchangeStats& exchange_stats() const { return exchange_->stats(); }

 private:
  Model() = default;
  static Expected<std::unique_ptr<Model>> LoadGguf(const std::string& path, const LoadOptions& options);
  void Prepare();  // after binding: ties, MTP fallbacks, router and RoPE tables
  Status ValidateBatch(const Batch& batch, const KvCache& cache, int stack, Workspace& ws) const;
  void Reserve(Workspace& ws, int64_t n, int64_t logit_rows, int64_t max_context) const;
  void ComputeRope(const Batch& batch, Workspace& ws) const;
  void DecoderLayer(int64_t layer, const Batch& batch, KvCache& cache, Workspace& ws) const;
  void Attention(int64_t layer, const Batch& batch, KvCache& cache, Workspace& ws) const;
  void AttentionBlocks(int64_t layer, const Batch& batch, const KvCache& cache, Workspace& ws) const;
  bool UseDecompressed(int64_t layer, std::span<const ops::AttentionBlock> blocks, AttentionForm forced) const;
  void AbsorbedAttention(int64_t layer, Workspace& ws) const;
  void DecompressedAttention(int64_t layer, Workspace& ws) const;
  void Mlp(const MlpWeights& w, const float* x, float* out, int64_t n, Workspace& ws) const;
  void RunExperts(const MoeWeights& w, int64_t n, Workspace& ws, bool shared_done) const;
  void RunSharedExperts(const MoeWeights& w, int64_t n, Workspace& ws) const;  // proj = shared experts(x)
  void Moe(const MoeWeights& w, const Batch& batch, Workspace& ws) const;
  void ExchangeTwoMicroBatches(const MoeWeights& w, int64_t n, dist::TokenRange own, Workspace& ws) const;
  void ExpertHalves(const MoeWeights& w, dist::ExchangeBuffers* const buffers[2], Workspace& ws) const;
  void RouteTokens(const MoeWeights& w, int64_t n, Workspace& ws) const;
  void Logits(const Weight& head, const Batch& batch, Workspace& ws) const;  // from ws.hidden
  void Embed(const Weight& table, const Batch& batch, float* out) const;

  Status ConvertWeights();  // applies options_ (formats, W_uk^T) after binding
  void MakeWUkT(AttentionWeights& a);  // a.w_uk_t from a.kv_b_proj
  uint64_t CopyToMemory();  // options_.load_to_memory; returns bytes copied
  uint64_t CopyMatrix(const Weight& w, bool tiles, std::vector<Weight*>& users);
  // After Prepare(), for every loader: load options, conversions, the copy.
  Status Finish(const LoadOptions& options);
  // From options.comm / expert_map: placement_ and resident_ (before binding).
  Status PlaceExperts(const LoadOptions& options);
  void DropForeignExperts();  // empties the routed experts of other ranks
  const Weight& Convert(const Weight& w, WeightFormat format);

  Config config_;
  LoadOptions options_;
  ops::MatMulOptions mm_;  // linear layers; the router always uses float32
  std::unique_ptr<TensorStore> store_;
  std::unique_ptr<GgufFile> gguf_;
  std::vector<std::vector<uint8_t>> owned_;  // tensors rebuilt at load (GGUF attn_k_b/v_b -> kv_b_proj)
  std::vector<AlignedBuffer<uint8_t>> aligned_;  // converted and realigned weights
  HugePageArena copied_;                         // the weights CopyToMemory copies
  std::vector<Weight> converted_;
  uint64_t weight_bytes_ = 0, copied_bytes_ = 0;
  ModelWeights weights_;
  RouterParams router_;
  std::optional<dist::ExpertPlacement> placement_;
  std::vector<uint8_t> resident_;  // [E] routed experts held here; empty = all
  std::unique_ptr<dist::ExpertExchange> exchange_;
  uint64_t fingerprint_ = 0;
  RopeTable rope_;
  float softmax_scale_ = 1.0f;
};

}  // namespace dsv3
