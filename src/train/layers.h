// Forward and backward of the trainer's elementwise and small layers, one
// pair per op in the llm.c style: embedding, RMSNorm, interleaved RoPE,
// SwiGLU's silu(gate) * up, and softmax cross-entropy. Forwards reproduce
// the inference ops' float32 arithmetic (ops/ops.cc) so trainer and engine
// agree; backwards are the exact derivatives of those forwards. Weight-vector
// gradients are reduced over fixed token chunks in a fixed order, so results
// do not depend on the thread count.
#pragma once

#include <cstdint>

namespace dsv3::train {

// out [n, d] (rows ldo apart) = table[tokens[i]] ; table [V, d].
void EmbeddingForward(const float* table, const int32_t* tokens, int64_t n, int64_t d, float* out, int64_t ldo);
// dtable[tokens[i]] += dout[i]
void EmbeddingBackward(const float* dout, int64_t ldd, const int32_t* tokens, int64_t n, int64_t d, float* dtable);

// out [n, d] = x / sqrt(mean(x^2) + eps) * w; rstd [n] keeps 1/sqrt(...).
void RmsNormForward(const float* x, int64_t ldx, const float* w, float eps, float* out, int64_t ldo, float* rstd,
                    int64_t n, int64_t d);
// dx [n, d] (= or +=) d out/d x^T dout; dw [d] += sum_i dout_i * x_i * rstd_i.
// `chunk_scratch` holds ceil(n / 64) * d floats.
void RmsNormBackward(const float* dout, int64_t ldd, const float* x, int64_t ldx, const float* w, const float* rstd,
                     float* dx, int64_t lddx, bool accumulate, float* dw, float* chunk_scratch, int64_t n, int64_t d);
int64_t RmsNormScratch(int64_t n, int64_t d);

// x [dim] rotated in place: pairs (x[2i], x[2i+1]) by cos/sin [dim/2] (which
// may carry the YaRN magnitude factor, so this is a scaled rotation).
void RopeForward(float* x, const float* cos, const float* sin, int64_t dim);
// The transpose of RopeForward's linear map, applied in place to dx.
void RopeBackward(float* dx, const float* cos, const float* sin, int64_t dim);

// act [n, f] = silu(gate) * up, inputs kept for the backward.
void SiluMulForward(const float* gate, const float* up, float* act, int64_t n, int64_t f);
// dgate, dup [n, f] from dact.
void SiluMulBackward(const float* dact, const float* gate, const float* up, float* dgate, float* dup, int64_t n,
                     int64_t f);

// Softmax cross-entropy over logits [n, V] against targets [n]. Overwrites
// logits with the probabilities, writes loss_i to losses [n], and returns
// the sum of the losses (double). Targets < 0 are ignored (loss 0). With
// `hits` [n], also marks the rows whose target has the largest logit
// (top-1 accuracy; a tie counts as a hit).
double CrossEntropyForward(float* logits, const int32_t* targets, float* losses, int64_t n, int64_t V,
                           uint8_t* hits = nullptr);
// dlogits [n, V] = scale * (probs - onehot(target)); in place on probs.
void CrossEntropyBackward(float* probs, const int32_t* targets, float scale, int64_t n, int64_t V);

// Cross-entropy against distributions: row i's target is row rows[i] of
// target_probs [*, V] (rows[i] < 0: ignored): loss_i = -sum_v p_v log q_v
// with q = softmax(logits_i). Overwrites logits with q; `hits` marks rows
// whose largest logit is the target distribution's most likely token.
double SoftCrossEntropyForward(float* logits, const float* target_probs, const int32_t* rows, float* losses,
                               int64_t n, int64_t V, uint8_t* hits = nullptr);
// dlogits [n, V] = scale * (q - p); in place on q.
void SoftCrossEntropyBackward(float* probs, const float* target_probs, const int32_t* rows, float scale, int64_t n,
                              int64_t V);

}  // namespace dsv3::train
