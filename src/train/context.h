// What every training layer needs to know about the run: the batch shape
// (B sequences of T tokens, n = B*T rows), the model dimensions in the
// DESIGN.md notation, the GEMM precision, the RoPE tables for positions
// 0..T-1 and the linear-layer helper that counts GEMM flops.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "train/linear.h"

namespace dsv3::train {

class ExpertParallel;  // expert_parallel.h

struct Dims {
  int64_t B = 0, T = 0, n = 0;            // sequences, tokens per sequence, rows
  int64_t d = 0, V = 0, H = 0;            // hidden, vocabulary, heads
  int64_t dn = 0, dr = 0, dv = 0, dq = 0;  // qk_nope, qk_rope, v, dn + dr
  int64_t rc = 0, rq = 0, lat = 0;        // kv_lora_rank, q_lora_rank, rc + dr
  int64_t E = 0, K = 0;                   // routed experts, experts per token
  int64_t F = 0, Fe = 0, Fs = 0;          // dense, expert and shared-expert widths
  float eps = 1e-6f, softmax_scale = 1.0f;
  int64_t attn_block = 64;  // queries x keys per attention block (train/attention.cc)

  static Dims From(const Config& c, int64_t batch, int64_t seq);
};

struct TrainContext {
  const Config* config = nullptr;
  Dims dims;
  Precision precision = Precision::kFp32;
  std::vector<float> rope_cos, rope_sin;  // [T, dr/2], YaRN magnitude folded in
  LinearOps* lin = nullptr;
  // Set when the routed experts are split over ranks: MoE layers compute
  // their experts through it (expert_parallel.h); null in one process.
  ExpertParallel* ep = nullptr;

  // Computes dims and the RoPE tables exactly as Model::ComputeRope does.
  void Init(const Config& c, int64_t batch, int64_t seq, Precision p, LinearOps* linear);
  // GEMM precision of the output head: FP8 runs keep it in BF16 (as the recipe does).
  Precision head_precision() const { return precision == Precision::kFp8 ? Precision::kBf16 : precision; }
};

}  // namespace dsv3::train
