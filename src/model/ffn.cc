// Feed-forward blocks: the dense SwiGLU MLP and DeepSeekMoE (shared experts
// plus routed experts chosen per token). Tokens are grouped by expert, so
// each expert runs once per forward over all the tokens that chose it and its
// weights are read once per batch, not once per token. The gate/up stage of
// every active expert (and the shared experts) is one batch of fused
// SwiGLU jobs, the down stage another: two parallel passes per MoE layer,
// split over the threads by rows of all experts together. Only the routed
// experts this process holds run here (expert parallelism: see Moe).
#include <algorithm>
#include <functional>

#include "core/parallel.h"
#include "model/model.h"
#include "ops/ops.h"

namespace dsv3 {

// out [n, d] = down(silu(gate x) * up x), x [n, d].
void Model::Mlp(const MlpWeights& w, const float* x, float* out, int64_t n, Workspace& ws) const {
  const int64_t width = w.gate_proj.rows, d = config_.hidden_size;
  const ops::GateUpJob job{&w.gate_proj, &w.up_proj, x, d, ws.ffn_gate.data(), ws.ffn_up.data(), width, n};
  ops::GateUpSiluBatch({&job, 1}, mm_);  // ffn_gate [n, width]
  ops::MatMul(w.down_proj, ws.ffn_gate.data(), out, n, mm_);
}

void Model::RouteTokens(const MoeWeights& w, int64_t n, Workspace& ws) const {
  const int64_t E = router_.num_experts, K = router_.top_k;
  ops::MatMul(w.gate, ws.x.data(), ws.router_logits.data(), n);  // [n, E], float32 activations always
  const float* bias = w.e_score_correction_bias.empty() ? nullptr : w.e_score_correction_bias.data();
  ParallelFor(n, 8, [&](int64_t i0, int64_t i1) {
    float* scratch = ws.router_scratch.data() + omp_get_thread_num() * router_.scratch_size();
    for (int64_t i = i0; i < i1; ++i)
      RouteToken(router_, ws.router_logits.data() + i * E, bias, scratch, ws.expert_ids.data() + i * K,
                 ws.expert_weights.data() + i * K);
  });
}

namespace {

// The shared experts' two jobs over all n tokens: gate/up into the
// workspace after the routed rows' part [n*K, inter], down straight into
// ws.proj. One definition for both ways they run (with the routed experts,
// or alone during a dispatch): a job's result does not depend on the
// others in its batch.
struct SharedJobs {
  ops::GateUpJob gate_up;
  ops::MatMulJob down;
};
SharedJobs SharedExpertJobs(const MlpWeights& m, int64_t n, int64_t d, int64_t routed_floats, Workspace& ws) {
  float* hidden = ws.ffn_gate.data() + routed_floats;  // [n, shared width]
  const int64_t width = m.gate_proj.rows;
  return {{&m.gate_proj, &m.up_proj, ws.x.data(), d, hidden, ws.ffn_up.data() + routed_floats, width, n},
          {&m.down_proj, hidden, width, ws.proj.data(), d, n}};
}

}  // namespace

// The shared experts alone (all tokens, straight to ws.proj), for running
// while a dispatch is in flight.
void Model::RunSharedExperts(const MoeWeights& w, int64_t n, Workspace& ws) const {
  if (!w.has_shared()) return;
  const SharedJobs jobs = SharedExpertJobs(w.shared_experts, n, config_.hidden_size,
                                           n * router_.top_k * config_.moe_intermediate_size, ws);
  ops::GateUpSiluBatch({&jobs.gate_up, 1}, mm_);
  ops::MatMulBatch({&jobs.down, 1}, mm_);
}

// Runs every routed expert with tokens (rows of ws.gathered, grouped by
// expert) and, unless `shared_done`, the shared experts (all tokens,
// written straight to ws.proj).
void Model::RunExperts(const MoeWeights& w, int64_t n, Workspace& ws, bool shared_done) const {
  const int64_t d = config_.hidden_size, E = router_.num_experts, K = router_.top_k;
  const int64_t inter = config_.moe_intermediate_size;
  const bool shared = w.has_shared() && !shared_done;
  const SharedJobs shared_jobs = shared ? SharedExpertJobs(w.shared_experts, n, d, n * K * inter, ws) : SharedJobs{};
  ws.gate_up_jobs.clear();
  for (int64_t e = 0; e < E; ++e) {
    const int64_t first = ws.expert_offset[e], count = ws.expert_offset[e + 1] - first;
    if (count == 0) continue;
    const MlpWeights& m = w.experts[e];
    ws.gate_up_jobs.push_back({&m.gate_proj, &m.up_proj, ws.gathered.data() + first * d, d,
                               ws.ffn_gate.data() + first * inter, ws.ffn_up.data() + first * inter, inter, count});
  }
  ws.experts_run += static_cast<int64_t>(ws.gate_up_jobs.size());
  if (shared) ws.gate_up_jobs.push_back(shared_jobs.gate_up);
  ++ws.moe_layers_run;
  ops::GateUpSiluBatch(ws.gate_up_jobs, mm_);
  ws.mm_jobs.clear();
  for (int64_t e = 0; e < E; ++e) {
    const int64_t first = ws.expert_offset[e], count = ws.expert_offset[e + 1] - first;
    if (count == 0) continue;
    ws.mm_jobs.push_back({&w.experts[e].down_proj, ws.ffn_gate.data() + first * inter, inter,
                          ws.gathered_out.data() + first * d, d, count});
  }
  if (shared) ws.mm_jobs.push_back(shared_jobs.down);
  ops::MatMulBatch(ws.mm_jobs, mm_);
}

// Routed experts go through the expert exchange (dist/expert_exchange.h):
// in one process it only groups rows by expert; across ranks it moves the
// owned tokens' rows to the ranks holding their experts and the outputs
// back. With replicated attention the router and shared experts run on the
// whole batch on every rank, so every product sees the rows it sees in one
// process (same bits).
void Model::Moe(const MoeWeights& w, const Batch& b, Workspace& ws) const {
  const int64_t n = b.size(), d = config_.hidden_size, K = router_.top_k;
  RouteTokens(w, n, ws);  // expert_ids, expert_weights [n, K]
  const dist::TokenRange own = exchange_->OwnedTokens(n, ws.exchange.split);
  if (!w.has_shared()) std::fill(ws.proj.begin(), ws.proj.begin() + n * d, 0.0f);
  const bool remote = exchange_->remote();
  if (remote && ws.exchange.micro_batches == 2) {
    ExchangeTwoMicroBatches(w, n, own, ws);
  } else {
    // gathered [rows, d]: rows of this process's experts, grouped by expert_offset.
    // Across ranks the shared experts run while the rows travel.
    exchange_->Dispatch(ws.x.data() + own.begin * d, ws.expert_ids.data() + own.begin * K, own.size(),
                        ws.gathered.data(), ws.expert_offset.data(), ws.exchange,
                        remote ? [&] { RunSharedExperts(w, n, ws); } : std::function<void()>());
    RunExperts(w, n, ws, /*shared_done=*/remote);  // proj = shared experts(x); gathered_out = routed outputs
    exchange_->Combine(ws.gathered_out.data(), own.size(), ws.routed_rows.data(), ws.exchange);
  }
  // proj[i] += sum_k weight * expert output in k order, per owned token in parallel.
  ParallelFor(own.size(), 16, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t i = own.begin + j;
      for (int64_t k = 0; k < K; ++k)
        ops::Axpy(ws.expert_weights[i * K + k], ws.routed_rows[j * K + k], ws.proj.data() + i * d, d);
    }
  });
  exchange_->GatherTokens(ws.proj.data(), n, ws.exchange);  // every token's proj on every rank
}

// The owned tokens as two micro-batches (first and second half): both
// halves' rows travel while the shared experts run, the second half's while
// the first half's experts run, and the first half's outputs return while
// the second half's experts run; only the last combine is exposed. Each
// expert then runs twice on fewer rows, so the bits differ from one call
// (data-parallel attention only, whose bound covers it).
void Model::ExchangeTwoMicroBatches(const MoeWeights& w, int64_t n, dist::TokenRange own, Workspace& ws) const {
  const int64_t d = config_.hidden_size, K = router_.top_k, mid = own.begin + own.size() / 2;
  const dist::TokenRange half[2] = {{own.begin, mid}, {mid, own.end}};
  dist::ExchangeBuffers* buffers[2] = {&ws.exchange, &ws.exchange_b};
  for (int h = 0; h < 2; ++h)
    exchange_->StartDispatch(ws.x.data() + half[h].begin * d, ws.expert_ids.data() + half[h].begin * K,
                             half[h].size(), *buffers[h]);
  RunSharedExperts(w, n, ws);
  ExpertHalves(w, buffers, ws);
  for (int h = 0; h < 2; ++h)
    exchange_->FinishCombine(ws.routed_rows.data() + (half[h].begin - own.begin) * K, *buffers[h]);
}

// Each half's rows arrive, its experts run, its outputs leave (copied out,
// so the next half reuses gathered and gathered_out).
void Model::ExpertHalves(const MoeWeights& w, dist::ExchangeBuffers* const buffers[2], Workspace& ws) const {
  for (int h = 0; h < 2; ++h) {
    exchange_->FinishDispatch(ws.gathered.data(), ws.expert_offset.data(), *buffers[h]);
    RunExperts(w, 0, ws, /*shared_done=*/true);
    exchange_->StartCombine(ws.gathered_out.data(), *buffers[h]);
  }
  --ws.moe_layers_run;  // one layer in two calls (experts_run counts both: each reads its experts)
}

// No tokens here this step: route nothing, send nothing, but receive the
// other ranks' rows for this rank's experts, run them and send the outputs
// back, layer by layer and micro-batch by micro-batch in the order the
// others run them.
void Model::ServeExpertsOnly(int mtp_depth, Workspace& ws) const {
  const int64_t first = mtp_depth < 0 ? 0 : config_.num_hidden_layers + mtp_depth;
  const int64_t end = mtp_depth < 0 ? config_.num_hidden_layers : first + 1;
  dist::ExchangeBuffers* buffers[2] = {&ws.exchange, &ws.exchange_b};
  for (int64_t l = first; l < end; ++l) {
    const LayerWeights& w = weights_.layers[l];
    if (!w.is_moe) continue;
    if (ws.exchange.micro_batches == 2) {
      for (dist::ExchangeBuffers* b : buffers) exchange_->StartDispatch(nullptr, nullptr, 0, *b);
      ExpertHalves(w.moe, buffers, ws);
      for (dist::ExchangeBuffers* b : buffers) exchange_->FinishCombine(ws.routed_rows.data(), *b);
      continue;
    }
    exchange_->Dispatch(nullptr, nullptr, 0, ws.gathered.data(), ws.expert_offset.data(), ws.exchange);
    RunExperts(w.moe, 0, ws, /*shared_done=*/true);
    exchange_->Combine(ws.gathered_out.data(), 0, ws.routed_rows.data(), ws.exchange);
  }
}

}  // namespace dsv3
