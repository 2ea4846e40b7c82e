// Feed-forward blocks for training, forward and backward: the dense SwiGLU
// MLP and DeepSeekMoE (router, routed experts grouped by expert, shared
// experts) with its balance terms. Routing uses the engine's RouteToken, so
// the trainer chooses exactly the experts inference chooses; gradients flow
// through the chosen experts' weights (normalised, scaled sigmoid or softmax
// scores), never through the discrete choice, and the correction bias only
// selects.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/router.h"
#include "model/weights.h"
#include "train/context.h"

namespace dsv3::train {

// The saved activations of an MLP over some rows (pointers into MlpActs).
struct MlpRows {
  float *gate, *up, *act;  // [rows, width] each
};

struct MlpActs {
  std::vector<float> gate, up, act;  // [rows, width]
  void Reserve(int64_t rows, int64_t width);
  MlpRows At(int64_t row, int64_t width) {
    return {gate.data() + row * width, up.data() + row * width, act.data() + row * width};
  }
  MlpRows At(int64_t row, int64_t width) const { return const_cast<MlpActs*>(this)->At(row, width); }
};

// Backward scratch shared by the MLPs of all layers.
struct FfnScratch {
  std::vector<float> dact, dgate, dup;  // [max rows, max width]
  std::vector<float> dxg, dyg;          // [n*K, d] gathered input / output grads
  std::vector<float> dweights;          // [n, K]
  std::vector<float> dlogits;           // [n, E] router logit grads
  std::vector<float> shared_y;          // [n, d] shared-expert output (forward)
  void Reserve(const Dims& m);
};

// out [rows, d] = down(silu(gate x) * up x).
void MlpForward(const TrainContext& ctx, const MlpWeights& w, int64_t width, const float* x, int64_t rows,
                const MlpRows& a, float* out);
// dx [rows, d] (= or +=) from dout; weight grads accumulate into g.
void MlpBackward(const TrainContext& ctx, const MlpWeights& w, MlpWeights& g, int64_t width, const float* x,
                 int64_t rows, const MlpRows& a, const float* dout, FfnScratch& s, float* dx, bool accumulate);

// How a MoE layer balances its experts' load.
enum class Balance { kAuxFree, kAuxLoss, kNone };
const char* BalanceName(Balance b);
bool ParseBalance(const std::string& s, Balance* out);

struct BalanceOptions {
  Balance mode = Balance::kAuxFree;
  double seq_alpha = 1e-4;  // sequence-wise balance loss weight (aux-free mode)
  double aux_alpha = 1e-2;  // classic batch-wise load-balance loss weight (aux-loss mode)
  // The loss weight and the token group it is computed over (T: per
  // sequence; n: the whole batch), or alpha 0 when none applies.
  double alpha() const { return mode == Balance::kAuxFree ? seq_alpha : mode == Balance::kAuxLoss ? aux_alpha : 0.0; }
  bool per_sequence() const { return mode == Balance::kAuxFree; }
};

// Expert parallelism (expert_parallel.h): the rows this rank's experts
// computed for every rank in a layer's forward, kept for its backward.
struct RemoteRows {
  std::vector<int64_t> counts;  // [ranks, most experts per rank] rows from rank r for this rank's i-th expert
  std::vector<int64_t> from;    // [ranks] rows received from each rank
  std::vector<float> x, y;      // [rows, d] inputs received, expert outputs
  MlpActs acts;                 // [rows, Fe]
};

struct MoeActs {
  std::vector<float> logits, scores;   // [n, E] router logits, unbiased scores s
  std::vector<int32_t> ids;            // [n, K] chosen experts
  std::vector<float> weights;          // [n, K] combine weights
  std::vector<int32_t> offset;         // [E+1] first gathered row of each expert
  std::vector<int32_t> slot;           // [n, K] gathered row of (token, k)
  std::vector<int32_t> token;          // [n*K] token of each gathered row
  std::vector<float> xg, yg;           // [n*K, d] gathered inputs, expert outputs
  MlpActs experts, shared;             // [n*K, Fe], [n, Fs]
  std::vector<float> frac;             // [groups, E] f_e of the balance loss
  std::vector<int64_t> load;           // [E] tokens routed to each expert
  std::vector<int32_t> cursor;         // [E] grouping scratch
  std::vector<double> mean_score;      // [E] balance-loss scratch (P_e sums)
  double balance_loss = 0.0;           // alpha * mean over groups of sum_e f_e P_e
  RemoteRows remote;                   // expert parallelism only
  void Reserve(const Dims& m);
};

// out [n, d] = MoE(x [n, d]); fills a (loads, balance loss) as a side effect.
void MoeForward(const TrainContext& ctx, const RouterParams& rp, const BalanceOptions& bal, const MoeWeights& w,
                const float* x, MoeActs& a, FfnScratch& s, float* out);
// dx [n, d] = dL/dx from dout (scaled by loss_scale already) plus the
// balance loss's gradient times balance_scale.
void MoeBackward(const TrainContext& ctx, const RouterParams& rp, const BalanceOptions& bal, const MoeWeights& w,
                 MoeWeights& g, const float* x, const MoeActs& a, const float* dout, float balance_scale,
                 FfnScratch& s, float* dx);

}  // namespace dsv3::train
