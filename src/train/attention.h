// Multi-head Latent Attention for training, forward and backward, in the
// expanded form: K and V are materialised per head from the latent
// (k_nope, v = kv_b_proj c) and causal softmax attention runs per (sequence,
// head) with the GEMM kernel, flash-style in blocks (online softmax; the
// backward recomputes the probabilities from each row's saved log-sum-exp),
// so no [T, T] tensor exists and attention memory is linear in T. This
// computes the same function as the engine's absorbed latent-cache form
// (DESIGN.md §3), YaRN included; the trainer-vs-engine tests check that.
#pragma once

#include <cstdint>
#include <vector>

#include "model/weights.h"
#include "train/context.h"

namespace dsv3::train {

// Saved activations of one MLA layer.
struct MlaActs {
  std::vector<float> q_a, q_a_n, q_a_rstd;  // [n, rq], [n, rq], [n] (q LoRA only)
  std::vector<float> q;       // [n, H*dq], rope applied to each head's last dr
  std::vector<float> kv;      // [n, rc+dr]: raw latent, then k_pe with rope applied
  std::vector<float> c, c_rstd;  // [n, rc] normalised latent, [n]
  std::vector<float> kvb;     // [n, H*(dn+dv)]: per head k_nope then v
  std::vector<float> lse;     // [B, H, T] log-sum-exp of each query's scaled scores
  std::vector<float> o;       // [n, H*dv] attention output before o_proj
  void Reserve(const Dims& m);
};

// Backward scratch shared by all layers.
struct MlaScratch {
  std::vector<float> dq, dkv, dc, dkvb, d_o;  // shapes of q, kv, c, kvb, o
  std::vector<float> dq_a, dq_an;             // [n, rq]
  std::vector<float> dkpe_heads;              // [n, H, dr] per-head k_pe grads, summed in order
  std::vector<float> norm_scratch;            // RmsNormBackward chunks
  void Reserve(const Dims& m, int threads);  // threads: unused (block scratch is per thread)
};

// out [n, d] = MLA(x [n, d]) (x is the layer's normalised input).
void MlaForward(const TrainContext& ctx, const AttentionWeights& w, const float* x, MlaActs& a, float* out);

// dx [n, d] = (accumulate ? dx : 0) + dL/dx; parameter grads accumulate into g.
// dout [n, d] is read only.
void MlaBackward(const TrainContext& ctx, const AttentionWeights& w, AttentionWeights& g, const float* x,
                 const MlaActs& a, const float* dout, MlaScratch& s, float* dx, bool accumulate);

}  // namespace dsv3::train
