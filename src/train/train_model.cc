// Whole-network forward and backward for training; see train_model.h.
#include "train/train_model.h"

#include <algorithm>
#include <cstdlib>

#include "core/parallel.h"
#include "train/layers.h"

namespace dsv3::train {

namespace {
void Add(const float* a, const float* b, float* out, int64_t n) {
  ParallelFor(n, 4096, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) out[i] = a[i] + b[i];
  });
}
}  // namespace

TrainModel::TrainModel(TrainParams& params, const ModelOptions& options, int grad_slot)
    : params_(params), slot_(grad_slot), config_(params.config()), options_(options) {
  depth_ = static_cast<int>(config_.num_nextn_predict_layers);
  ctx_.Init(config_, options.batch, options.seq, options.precision, &lin_);
  ctx_.dims.attn_block = options.attn_block;
  dims_ = ctx_.dims;
  router_ = RouterParams::FromConfig(config_);
  const int64_t n = dims_.n, d = dims_.d, L = config_.num_hidden_layers;
  inputs_.assign(depth_ + 1, std::vector<int32_t>(n));
  targets_.assign(depth_ + 1, std::vector<int32_t>(n));
  hs_.assign(L + 1, std::vector<float>(n * d));
  blocks_.resize(L + depth_);
  for (int64_t l = 0; l < L + depth_; ++l) {
    Block& b = blocks_[l];
    b.x1.resize(n * d), b.rstd1.resize(n), b.h_mid.resize(n * d), b.x2.resize(n * d), b.rstd2.resize(n);
    b.attn.Reserve(dims_);
    if (params_.w().layers[l].is_moe) {
      b.moe.Reserve(dims_);
    } else {
      b.mlp.Reserve(n, dims_.F);
    }
  }
  mtp_.resize(depth_);
  for (Mtp& s : mtp_) {
    s.emb.resize(n * d), s.cat.resize(n * 2 * d), s.e_rstd.resize(n), s.h_rstd.resize(n);
    s.in.resize(n * d), s.out.resize(n * d), s.normed.resize(n * d), s.n_rstd.resize(n), s.d_normed.resize(n * d);
  }
  hidden_.resize(n * d), hidden_rstd_.resize(n), d_hidden_.resize(n * d);
  logits_.resize(n * dims_.V), ce_losses_.resize(n), hits_.resize(n);
  if (options_.mtp_targets != MtpTargets::kData) main_probs_.resize(n * dims_.V);
  dh_.resize(n * d), dtmp_.resize(n * d), dcat_.resize(n * 2 * d), norm_scratch_.resize(RmsNormScratch(n, d));
  mla_scratch_.Reserve(dims_, std::max(NumThreads(), omp_get_num_procs()));
  ffn_scratch_.Reserve(dims_);
}

std::vector<const std::vector<int64_t>*> TrainModel::Loads() const {
  std::vector<const std::vector<int64_t>*> out;
  for (size_t l = 0; l < blocks_.size(); ++l)
    out.push_back(params_.w().layers[l].is_moe ? &blocks_[l].moe.load : nullptr);
  return out;
}

uint64_t TrainModel::RoutingHash() const {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t l = 0; l < blocks_.size(); ++l) {
    if (!params_.w().layers[l].is_moe) continue;
    for (int64_t i = 0; i < dims_.n * dims_.K; ++i) h = (h ^ static_cast<uint32_t>(blocks_[l].moe.ids[i])) * 0x100000001b3ull;
  }
  return h;
}

void TrainModel::BlockForward(int64_t l, const float* h_in, float* h_out) {
  Block& b = blocks_[l];
  const LayerWeights& lw = params_.w().layers[l];
  const int64_t n = dims_.n, d = dims_.d;
  // h_mid = h + MLA(RMSNorm(h)); h_out = h_mid + FFN(RMSNorm(h_mid))
  RmsNormForward(h_in, d, lw.input_layernorm.data(), dims_.eps, b.x1.data(), d, b.rstd1.data(), n, d);
  MlaForward(ctx_, lw.attn, b.x1.data(), b.attn, dtmp_.data());
  Add(h_in, dtmp_.data(), b.h_mid.data(), n * d);
  RmsNormForward(b.h_mid.data(), d, lw.post_attention_layernorm.data(), dims_.eps, b.x2.data(), d, b.rstd2.data(),
                 n, d);
  if (lw.is_moe) {
    MoeForward(ctx_, router_, options_.balance, lw.moe, b.x2.data(), b.moe, ffn_scratch_, dtmp_.data());
  } else {
    MlpForward(ctx_, lw.mlp, dims_.F, b.x2.data(), n, b.mlp.At(0, dims_.F), dtmp_.data());
  }
  Add(b.h_mid.data(), dtmp_.data(), h_out, n * d);
}

void TrainModel::BlockBackward(int64_t l, const float* h_in, float* dh) {
  Block& b = blocks_[l];
  const LayerWeights& lw = params_.w().layers[l];
  LayerWeights& lg = params_.g(slot_).layers[l];
  const int64_t n = dims_.n, d = dims_.d;
  if (lw.is_moe) {
    MoeBackward(ctx_, router_, options_.balance, lw.moe, lg.moe, b.x2.data(), b.moe, dh, loss_scale_, ffn_scratch_,
                dtmp_.data());
  } else {
    MlpBackward(ctx_, lw.mlp, lg.mlp, dims_.F, b.x2.data(), n, b.mlp.At(0, dims_.F), dh, ffn_scratch_,
                dtmp_.data(), false);
  }
  RmsNormBackward(dtmp_.data(), d, b.h_mid.data(), d, lw.post_attention_layernorm.data(), b.rstd2.data(), dh, d,
                  true, lg.post_attention_layernorm.data(), norm_scratch_.data(), n, d);
  MlaBackward(ctx_, lw.attn, lg.attn, b.x1.data(), b.attn, dh, mla_scratch_, dtmp_.data(), false);
  RmsNormBackward(dtmp_.data(), d, h_in, d, lw.input_layernorm.data(), b.rstd1.data(), dh, d, true,
                  lg.input_layernorm.data(), norm_scratch_.data(), n, d);
}

double TrainModel::HeadLoss(const float* x, const int32_t* targets, float scale, bool backward, float* dx,
                            std::vector<float>* logits_copy, double* accuracy, float* probs, const float* soft) {
  const int64_t n = dims_.n, d = dims_.d, V = dims_.V;
  const Precision hp = ctx_.head_precision();
  lin_.Forward(hp, x, d, Data(params_.head()), V, d, logits_.data(), V, n);  // logits [n, V]
  if (logits_copy) logits_copy->assign(logits_.begin(), logits_.begin() + n * V);
  const double sum = soft ? SoftCrossEntropyForward(logits_.data(), soft, targets, ce_losses_.data(), n, V, hits_.data())
                          : CrossEntropyForward(logits_.data(), targets, ce_losses_.data(), n, V, hits_.data());
  if (probs) std::copy_n(logits_.data(), n * V, probs);  // the softmax, before the backward reuses the buffer
  int64_t hits = 0, scored = 0;
  for (int64_t i = 0; i < n; ++i) hits += hits_[i], scored += targets[i] >= 0;
  *accuracy = scored ? static_cast<double>(hits) / static_cast<double>(scored) : 0.0;
  if (backward) {
    if (soft) SoftCrossEntropyBackward(logits_.data(), soft, targets, scale, n, V);
    else CrossEntropyBackward(logits_.data(), targets, scale, n, V);
    lin_.Backward(hp, logits_.data(), V, x, d, Data(params_.head()), V, d, dx, d, false, Mut(params_.head_grad(slot_)),
                  n);
  }
  return sum;
}

double TrainModel::MtpForward(int k, const float* prev, bool backward, float scale,
                              std::vector<float>* logits_copy, double* accuracy) {
  Mtp& s = mtp_[k - 1];
  const int64_t l = config_.num_hidden_layers + k - 1, n = dims_.n, d = dims_.d;
  const MtpWeights& mw = params_.w().layers[l].mtp;
  // cat [n, 2d] = [enorm(embed(t_{i+k})) ; hnorm(prev_i)]; in = eh_proj(cat)
  EmbeddingForward(Data(params_.w().embed_tokens), inputs_[k].data(), n, d, s.emb.data(), d);
  RmsNormForward(s.emb.data(), d, mw.enorm.data(), dims_.eps, s.cat.data(), 2 * d, s.e_rstd.data(), n, d);
  RmsNormForward(prev, d, mw.hnorm.data(), dims_.eps, s.cat.data() + d, 2 * d, s.h_rstd.data(), n, d);
  lin_.Forward(ctx_.precision, s.cat.data(), 2 * d, Data(mw.eh_proj), d, 2 * d, s.in.data(), d, n);
  BlockForward(l, s.in.data(), s.out.data());
  RmsNormForward(s.out.data(), d, mw.shared_head_norm.data(), dims_.eps, s.normed.data(), d, s.n_rstd.data(), n, d);
  const float* soft = options_.mtp_targets == MtpTargets::kMainProbs ? main_probs_.data() : nullptr;
  return HeadLoss(s.normed.data(), targets_[k].data(), scale, backward, s.d_normed.data(), logits_copy, accuracy,
                  nullptr, soft);
}

// dprev: in, the gradient reaching depth k's output from depth k+1; out, the
// gradient of depth k's `prev` input (depth k-1's output, or the main hidden).
void TrainModel::MtpBackward(int k, float* dprev) {
  Mtp& s = mtp_[k - 1];
  const int64_t l = config_.num_hidden_layers + k - 1, n = dims_.n, d = dims_.d;
  const MtpWeights& mw = params_.w().layers[l].mtp;
  MtpWeights& mg = params_.g(slot_).layers[l].mtp;
  const float* prev = k == 1 ? hidden_.data() : mtp_[k - 2].out.data();
  RmsNormBackward(s.d_normed.data(), d, s.out.data(), d, mw.shared_head_norm.data(), s.n_rstd.data(), dprev, d, true,
                  mg.shared_head_norm.data(), norm_scratch_.data(), n, d);
  BlockBackward(l, s.in.data(), dprev);
  lin_.Backward(ctx_.precision, dprev, d, s.cat.data(), 2 * d, Data(mw.eh_proj), d, 2 * d, dcat_.data(), 2 * d,
                false, Mut(mg.eh_proj), n);
  RmsNormBackward(dcat_.data(), 2 * d, s.emb.data(), d, mw.enorm.data(), s.e_rstd.data(), dtmp_.data(), d, false,
                  mg.enorm.data(), norm_scratch_.data(), n, d);
  EmbeddingBackward(dtmp_.data(), d, inputs_[k].data(), n, d, Mut(params_.g(slot_).embed_tokens));
  RmsNormBackward(dcat_.data() + d, 2 * d, prev, d, mw.hnorm.data(), s.h_rstd.data(), dprev, d, false,
                  mg.hnorm.data(), norm_scratch_.data(), n, d);
}

void TrainModel::MainTargets() {
  const Dims& m = dims_;
  const bool rows = options_.mtp_targets == MtpTargets::kMainProbs;
  for (int k = 1; k <= depth_; ++k)
    for (int64_t b = 0; b < m.B; ++b)
      for (int64_t t = 0; t < m.T; ++t) {
        const int64_t r = b * m.T + t + k;  // main position i+k
        const float* p = main_probs_.data() + r * m.V;
        targets_[k][b * m.T + t] = t + k >= m.T ? -1
                                   : rows        ? static_cast<int32_t>(r)
                                                 : static_cast<int32_t>(std::max_element(p, p + m.V) - p);
      }
}

Losses TrainModel::Step(const int32_t* tokens, bool backward, float loss_scale,
                        std::vector<std::vector<float>>* logits) {
  const Dims& m = dims_;
  const int64_t n = m.n, d = m.d, W = window(), L = config_.num_hidden_layers;
  loss_scale_ = loss_scale;
  for (int k = 0; k <= depth_; ++k)
    for (int64_t b = 0; b < m.B; ++b)
      for (int64_t t = 0; t < m.T; ++t) {
        inputs_[k][b * m.T + t] = tokens[b * W + t + k];
        targets_[k][b * m.T + t] = tokens[b * W + t + k + 1];
      }
  if (logits) logits->resize(depth_ + 1);
  const ModelWeights& w = params_.w();
  EmbeddingForward(Data(w.embed_tokens), inputs_[0].data(), n, d, hs_[0].data(), d);
  for (int64_t l = 0; l < L; ++l) BlockForward(l, hs_[l].data(), hs_[l + 1].data());
  RmsNormForward(hs_[L].data(), d, w.norm.data(), m.eps, hidden_.data(), d, hidden_rstd_.data(), n, d);
  Losses out;
  const bool main_backward = backward && options_.train_main;
  out.main = HeadLoss(hidden_.data(), targets_[0].data(), loss_scale / n, main_backward, d_hidden_.data(),
                      logits ? &(*logits)[0] : nullptr, &out.main_acc,
                      main_probs_.empty() ? nullptr : main_probs_.data()) / n;
  if (!main_probs_.empty()) MainTargets();
  // Frozen main model: the MTP losses alone, unweighted.
  const double mtp_weight = options_.train_main ? options_.mtp_lambda : 1.0;
  const float mtp_scale = depth_ ? static_cast<float>(loss_scale * mtp_weight / depth_ / n) : 0.0f;
  double mtp_sum = 0.0;
  for (int k = 1; k <= depth_; ++k) {
    const float* prev = k == 1 ? hidden_.data() : mtp_[k - 2].out.data();
    out.mtp_acc.push_back(0.0);
    out.mtp.push_back(MtpForward(k, prev, backward, mtp_scale, logits ? &(*logits)[k] : nullptr, &out.mtp_acc.back()) / n);
    mtp_sum += out.mtp.back();
  }
  // A frozen main model's balance losses are not trained, so not counted.
  for (size_t l = options_.train_main ? 0 : L; l < blocks_.size(); ++l)
    if (w.layers[l].is_moe) out.balance += blocks_[l].moe.balance_loss;
  out.total = (options_.train_main ? out.main : 0.0) + (depth_ ? mtp_weight / depth_ * mtp_sum : 0.0) + out.balance;
  if (!backward) return out;
  // MTP depths last to first; dh_ carries the gradient of each depth's input hidden.
  std::fill(dh_.begin(), dh_.end(), 0.0f);
  for (int k = depth_; k >= 1; --k) MtpBackward(k, dh_.data());
  const int stages = GradStages(config_);
  if (!options_.train_main) {
    Ready(0, stages - 1);  // the main model is frozen: nothing more comes
    return out;
  }
  Ready(0, 0);
  if (depth_ > 0) Add(d_hidden_.data(), dh_.data(), d_hidden_.data(), n * d);
  ModelWeights& g = params_.g(slot_);
  RmsNormBackward(d_hidden_.data(), d, hs_[L].data(), d, w.norm.data(), hidden_rstd_.data(), dh_.data(), d, false,
                  g.norm.data(), norm_scratch_.data(), n, d);
  Ready(1, 1);
  for (int64_t l = L - 1; l >= 0; --l) {
    BlockBackward(l, hs_[l].data(), dh_.data());
    Ready(static_cast<int>(2 + (L - 1 - l)), static_cast<int>(2 + (L - 1 - l)));
  }
  EmbeddingBackward(dh_.data(), d, inputs_[0].data(), n, d, Mut(g.embed_tokens));
  Ready(stages - 1, stages - 1);
  return out;
}

void TrainModel::Ready(int first, int last) {
  if (!grads_ready_) return;
  for (int s = first; s <= last; ++s) grads_ready_(s);
}

int TrainModel::GradStage(const Config& c, const std::string& name) {
  static const std::string kLayers = "model.layers.";
  const int64_t L = c.num_hidden_layers;
  if (name.rfind(kLayers, 0) == 0) {
    const int64_t l = std::strtoll(name.c_str() + kLayers.size(), nullptr, 10);
    return l >= L ? 0 : static_cast<int>(2 + (L - 1 - l));
  }
  if (name.rfind("model.norm", 0) == 0) return 1;
  if (name.rfind("lm_head", 0) == 0 && !c.tie_word_embeddings) return 0;
  return static_cast<int>(L + 2);  // the embedding, and a head tied to it
}

}  // namespace dsv3::train
