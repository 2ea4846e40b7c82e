// The whole DeepSeek-V3 network for training: embedding, L decoder blocks
// (MLA + dense MLP or MoE), final norm and head with next-token
// cross-entropy, then D sequential MTP depths (depth k combines the
// embedding of token i+k with depth k-1's hidden state — the main model's
// state after model.norm for k = 1, as the engine's MTP does — runs its own
// block, and predicts token i+k+1 through the shared head). One call runs
// the forward, computes every loss, and (optionally) the full backward,
// accumulating float32 gradients into TrainParams. All activation buffers
// are sized once for the batch shape.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/router.h"
#include "train/attention.h"
#include "train/context.h"
#include "train/ffn.h"
#include "train/params.h"

namespace dsv3::train {

// What MTP depth k learns at position i: the data's token i+k+1 (the
// paper's objective), or the main model's prediction of that token (its
// output at position i+k): the argmax, or the whole distribution
// (self-distillation for speculative drafts, docs/speculative.md).
enum class MtpTargets { kData, kMainArgmax, kMainProbs };

struct ModelOptions {
  int64_t batch = 8, seq = 128;  // B sequences of T positions
  Precision precision = Precision::kFp32;
  BalanceOptions balance;
  double mtp_lambda = 0.3;  // loss = CE + lambda/D * sum_k CE_k + balance
  // false: the backward covers only the MTP depths (their loss, unweighted;
  // the main model is frozen) and stops at the main hidden state.
  bool train_main = true;
  // With kMain*, the last k positions of each sequence, whose main
  // prediction lies outside the window, are not scored.
  MtpTargets mtp_targets = MtpTargets::kData;
  int64_t attn_block = 64;  // attention block (queries x keys); memory per thread is O(block^2)
};

struct Losses {
  double main = 0.0;          // mean next-token cross-entropy
  std::vector<double> mtp;    // [D] mean cross-entropy of each MTP depth
  double main_acc = 0.0;      // top-1 accuracy of the next-token prediction
  std::vector<double> mtp_acc;  // [D] top-1 accuracy of MTP depth k (token i+k+1, or main's prediction of it)
  double balance = 0.0;       // balance / aux loss, summed over MoE layers, weighted
  double total = 0.0;         // what the gradients are of
};

class TrainModel {
 public:
  // The MTP depth D is params.config().num_nextn_predict_layers. Gradients
  // go to params' gradient set `grad_slot`.
  TrainModel(TrainParams& params, const ModelOptions& options, int grad_slot = 0);

  // Later Steps write their gradients to set `slot` (data-parallel ranks keep
  // each micro-batch's gradient apart until the reduction).
  void set_grad_slot(int slot) { slot_ = slot; }
  // MoE layers compute their routed experts through `ep` (several ranks,
  // expert_parallel.h); null: here.
  void set_expert_parallel(ExpertParallel* ep) { ctx_.ep = ep; }
  // Backward calls ready(s) on the calling thread as soon as the gradients
  // of stage s are final, s = 0 .. GradStages() - 1 in order: 0 the MTP
  // layers and the untied head, 1 model.norm, 2 + (L-1-l) layer l, L + 2
  // the embedding (and a tied head). Data-parallel ranks start sending a
  // stage's gradients while the backward computes the next ones.
  void set_grads_ready(std::function<void(int)> ready) { grads_ready_ = std::move(ready); }
  static int GradStages(const Config& c) { return static_cast<int>(c.num_hidden_layers) + 3; }
  static int GradStage(const Config& c, const std::string& tensor_name);
  int64_t window() const { return dims_.T + depth_ + 1; }  // tokens per sequence a step reads
  const Dims& dims() const { return dims_; }
  int depth() const { return depth_; }

  // tokens [B, window()]: position i of sequence b reads tokens[b][i] and
  // predicts tokens[b][i+1]; MTP depth k reads tokens[b][i+k], predicts
  // tokens[b][i+k+1]. With `backward`, gradients of loss_scale * total are
  // added to the parameters' grads. `logits`, if given, receives copies of
  // the logits (before softmax): [D+1] arrays of [B*T, V], main first.
  Losses Step(const int32_t* tokens, bool backward, float loss_scale,
              std::vector<std::vector<float>>* logits = nullptr);

  // Tokens routed to each expert in the last Step, per layer (empty for
  // dense layers), main layers then MTP layers.
  std::vector<const std::vector<int64_t>*> Loads() const;
  double flops() const { return lin_.flops(); }  // GEMM flops issued so far
  // A hash of every routing decision of the last Step (tests use it to see
  // that a perturbation did not change which experts were chosen).
  uint64_t RoutingHash() const;

 private:
  struct Block {
    std::vector<float> x1, rstd1, h_mid, x2, rstd2;  // [n, d], [n], [n, d], [n, d], [n]
    MlaActs attn;
    MlpActs mlp;  // dense layers
    MoeActs moe;  // MoE layers
  };
  struct Mtp {
    std::vector<float> emb, cat, e_rstd, h_rstd;  // [n, d], [n, 2d], [n], [n]
    std::vector<float> in, out, normed, n_rstd;   // [n, d] block input / output / after shared_head.norm, [n]
    std::vector<float> d_normed;                  // [n, d] head gradient, kept for the backward
  };

  void BlockForward(int64_t l, const float* h_in, float* h_out);
  void BlockBackward(int64_t l, const float* h_in, float* dh);
  // logits [n, V] = x head^T; returns the summed CE; with backward writes dx.
  // Scored positions are those with a target >= 0; CE and accuracy are their
  // sum / fraction. With `soft`, targets are rows of soft [*, V] (target
  // distributions). `probs` [n, V], if given, receives the softmax.
  double HeadLoss(const float* x, const int32_t* targets, float scale, bool backward, float* dx,
                  std::vector<float>* logits_copy, double* accuracy, float* probs = nullptr,
                  const float* soft = nullptr);
  // targets_[k] from the main model's distributions main_probs_: its top
  // token at position i+k, or (kMainProbs) that row's index; -1 past the window.
  void MainTargets();
  double MtpForward(int k, const float* prev, bool backward, float scale, std::vector<float>* logits_copy,
                    double* accuracy);
  void MtpBackward(int k, float* dprev);

  TrainParams& params_;
  int slot_ = 0;  // gradient set written
  std::function<void(int)> grads_ready_;  // see set_grads_ready
  void Ready(int first, int last);        // stages [first, last] are final
  const Config& config_;
  ModelOptions options_;
  int depth_ = 0;
  float loss_scale_ = 1.0f;  // of the current Step, for the balance-loss gradients
  Dims dims_;
  LinearOps lin_;
  TrainContext ctx_;
  RouterParams router_;
  // Forward state.
  std::vector<std::vector<int32_t>> inputs_, targets_;  // [D+1][n]
  std::vector<std::vector<float>> hs_;                   // [L+1][n, d] residual stream
  std::vector<Block> blocks_;                            // [L + D]
  std::vector<Mtp> mtp_;                                 // [D]
  std::vector<float> hidden_, hidden_rstd_, d_hidden_;   // [n, d], [n], [n, d]
  std::vector<float> logits_, ce_losses_;                // [n, V], [n]
  std::vector<uint8_t> hits_;                            // [n] top-1 hits
  std::vector<float> main_probs_;                        // [n, V] main model's distributions (kMain* targets)
  // Backward scratch.
  std::vector<float> dh_, dtmp_, dcat_, norm_scratch_;   // [n, d], [n, d], [n, 2d]
  MlaScratch mla_scratch_;
  FfnScratch ffn_scratch_;
};

}  // namespace dsv3::train
