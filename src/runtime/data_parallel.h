// Data-parallel attention under mpirun (docs/distributed.md): every rank
// holds the description of the whole step (the same Batch), but runs the
// forward only over the tokens of the cache slots it owns (slot % ranks ==
// rank), so attention, the dense layers and the shared experts of a token
// run on one rank, and each rank's latent cache holds only its own
// sequences' rows. The MoE layers still exchange token rows with the ranks
// holding their experts (its workspace's exchange split is kOwnBatch: a
// rank owns all its tokens, no final gather); a rank with no tokens in a
// step serves its experts all the same. Rank 0 (which samples) then receives
// every requested logit row, and the hidden rows if asked, in the step's
// order, exactly where a one-process forward leaves them in its Workspace.
//
// Exactness: with several sequences each product sees one rank's rows, not
// the whole batch's, and the matrix kernels' rounding depends on the rows
// in a call, so logits differ from -np 1 by that rounding (bound measured
// and tested in mpi_tests.cmake). One sequence (run, chat) runs wholly on
// rank 0, every product seeing one process's rows: the same bits.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "dist/comm.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "runtime/step_runner.h"

namespace dsv3 {

// Which outputs of a step go where, and how the MoE layers exchange.
struct DataParallelOptions {
  bool hidden = false;      // ws.hidden too (MTP drafting reads it), not only ws.logits
  bool every_rank = false;  // every rank gets them (every rank samples: run); else rank 0 only (serve)
  // 2: when a step holds tokens of several sequences, each MoE layer
  // exchanges each rank's tokens as two micro-batches (Model::Moe), one's
  // rows travelling while the other's experts run. Steps of one sequence
  // keep one (their bits are one process's).
  int micro_batches = 1;
};

// A StepRunner, so loops written against one (generate.h, speculative.h)
// run data-parallel unchanged; cache edits stay the plain ones.
class DataParallelForward : public StepRunner {
 public:
  DataParallelForward(dist::Comm& comm, DataParallelOptions options) : comm_(comm), options_(options) {
    ws_.exchange.split = dist::TokenSplit::kOwnBatch;
  }

  static int OwnerOfSlot(int64_t slot, int ranks) { return static_cast<int>(slot % ranks); }

  // Every rank calls these with the same batch (and, for MTP, the same
  // hidden_in [n, d]). On rank 0 (every rank with options.every_rank),
  // ws.logits [logit_rows, width] and with options.hidden ws.hidden [n, d]
  // are filled as Model::Forward / ForwardMtp fill them; other ranks get
  // (with options.hidden) the ws.hidden rows of their own tokens. A rank
  // whose own part fails still serves its experts; the ranks that receive
  // outputs return the first failing rank's error, the others their own.
  Status Forward(const Model& model, const Batch& batch, KvCache& cache, Workspace& ws) override;
  Status ForwardMtp(const Model& model, int depth, const Batch& batch, const float* hidden_in, KvCache& cache,
                    Workspace& ws, int64_t draft_vocab) override;

 private:
  // depth < 0: the main model.
  Status Run(const Model& model, int depth, const Batch& batch, const float* hidden_in, KvCache& cache,
             Workspace& ws, int64_t width);
  void Split(const Batch& batch, const float* hidden_in, int64_t d);
  Status Collect(const Batch& batch, int64_t width, int64_t d, const Status& mine, Workspace& ws);
  void Scatter(const Batch& batch, int64_t width, int64_t d, Workspace& ws);

  dist::Comm& comm_;
  DataParallelOptions options_;
  Batch local_;                       // this rank's tokens, in the step's order
  std::vector<int32_t> rows_;         // [n_local] row of each local token in the step
  std::vector<float> hidden_in_;      // [n_local, d] MTP input rows of the local tokens
  Workspace ws_;                      // the local forward's buffers
  std::vector<int32_t> local_of_;     // [n] local index of each step row, -1 if another rank's
  std::vector<int64_t> counts_;       // [ranks] floats each rank sends (or 1: its flag)
  std::vector<int64_t> tokens_of_;    // [ranks] tokens each rank runs this step
  std::vector<int64_t> cursor_;       // [2, ranks] read positions in all_: logit rows, hidden rows
  std::vector<int64_t> failed_;       // [ranks] 0 or 1 per rank
  std::vector<float> all_;            // every rank's outputs, rank by rank (a non-receiving rank: its own)
};

}  // namespace dsv3
