// The expert exchange: the one seam between a MoE layer and the processes
// holding its routed experts. Per layer the model
//   1. routes every token and asks which tokens it owns (OwnedTokens),
//   2. Dispatch()es the owned tokens' rows: afterwards this process holds
//      the rows of every token (of any process) that chose one of its
//      experts, grouped by expert id and, within an expert, in batch order,
//   3. runs its experts over those rows,
//   4. Combine()s: each owned (token, k) assignment gets a pointer to its
//      expert's output row, and the model adds them in k order as always,
//   5. GatherTokens() gives every process every token's result.
// In one process (LocalExpertExchange) steps 2 and 4 are the grouping the
// MoE layer always did and 5 does nothing. Across ranks (MpiExpertExchange)
// tokens are owned in contiguous blocks and only the selected rows travel
// (MPI all-to-all-v), so each expert sees exactly the rows, in exactly the
// order, it sees in one process: the logits are bit-identical to -np 1.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "dist/comm.h"
#include "dist/expert_placement.h"

namespace dsv3::dist {

// Tokens [begin, end) of a batch.
struct TokenRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

// How the ranks' batches relate in a forward. kSharedBatch: every rank runs
// the same batch (attention replicated) and owns a contiguous block of its
// tokens; GatherTokens then gives every rank every result. kOwnBatch: each
// rank runs its own tokens (data-parallel attention,
// runtime/data_parallel.h), owns all of them and needs no gather.
enum class TokenSplit { kSharedBatch, kOwnBatch };

// Per-forward buffers of an exchange; live in the caller's workspace, grown
// on demand, so exchanges on different workspaces do not share state.
struct ExchangeBuffers {
  // Set by whoever drives this workspace's forwards (the same on every rank):
  // how tokens are owned, and whether a MoE layer exchanges its owned
  // tokens as two micro-batches (Model::Moe; the first buffers' field counts).
  TokenSplit split = TokenSplit::kSharedBatch;
  int micro_batches = 1;
  bool second_half = false;         // the second micro-batch's buffers (its layers are not counted again)
  int64_t m = 0;                    // owned tokens of the exchange in progress
  const float* x = nullptr;         // the local exchange's pending input (Start -> Finish)
  const int32_t* ids = nullptr;
  int handle = -1;                  // the MPI exchange in flight
  std::vector<int32_t> slot;        // [A] row of each owned assignment (grouped or sent layout)
  std::vector<int64_t> send_count;  // [ranks, E] rows sent to each rank per expert
  std::vector<int64_t> recv_count;  // [ranks, E] rows received from each rank per expert
  std::vector<int64_t> rank_send, rank_recv, cursor;  // [ranks] rows; [E] fill positions
  std::vector<int32_t> group_row;   // [received] grouped row of each received row
  std::vector<float> send, recv, back;  // [rows, d]

  static ExchangeBuffers SecondHalf() {
    ExchangeBuffers b;
    b.second_half = true;
    return b;
  }
};

// What an exchange did so far, for benchmarks: seconds inside MPI calls
// (waiting for slower ranks included), MoE layers and token rows this rank
// sent to other ranks (dispatch and combine; the final all-gather apart).
struct ExchangeStats {
  double seconds = 0.0;          // blocked in MPI calls: the exposed exchange time
  double overlap_seconds = 0.0;  // work run while a dispatch was in flight (the shared experts)
  int64_t layers = 0, tokens = 0, rows_sent = 0, bytes_sent = 0;
};

class ExpertExchange {
 public:
  virtual ~ExpertExchange() = default;
  // The tokens of an n-token batch whose expert outputs this process combines.
  virtual TokenRange OwnedTokens(int64_t n, TokenSplit split) const = 0;
  // Whether rows travel to other processes (then the caller has work to
  // overlap with the dispatch).
  virtual bool remote() const = 0;
  // x [m, d]: the owned tokens' rows; ids [m, K] their experts. Writes the
  // rows for this process's experts to rows [<= n*K, d] and offset [E+1]
  // (expert e's rows are offset[e] .. offset[e+1]; empty for other ranks').
  // `in_flight` (may be empty) runs once, while the rows travel; it must
  // not touch x, rows, offset or b.
  virtual void Dispatch(const float* x, const int32_t* ids, int64_t m, float* rows, int32_t* offset,
                        ExchangeBuffers& b, const std::function<void()>& in_flight = {}) = 0;
  // y [rows, d]: the outputs of Dispatch's rows. Sets out[a], a < m*K, to
  // the output row of owned assignment a.
  virtual void Combine(const float* y, int64_t m, const float** out, ExchangeBuffers& b) = 0;
  // Dispatch and Combine in halves, so that two micro-batches' exchanges can
  // be in flight while either's experts compute: Start posts, Finish
  // completes with Dispatch's / Combine's results. x and ids stay valid
  // until FinishDispatch, y until the combined rows have been read.
  virtual void StartDispatch(const float* x, const int32_t* ids, int64_t m, ExchangeBuffers& b) = 0;
  virtual void FinishDispatch(float* rows, int32_t* offset, ExchangeBuffers& b) = 0;
  virtual void StartCombine(const float* y, ExchangeBuffers& b) = 0;
  virtual void FinishCombine(const float** out, ExchangeBuffers& b) = 0;
  // rows [n, d], correct for the owned tokens -> correct for all n.
  virtual void GatherTokens(float* rows, int64_t n, ExchangeBuffers& b) = 0;
  const ExchangeStats& stats() const { return stats_; }

 protected:
  ExchangeStats stats_;
};

// Every expert in this process.
class LocalExpertExchange : public ExpertExchange {
 public:
  LocalExpertExchange(int64_t num_experts, int64_t top_k, int64_t dim) : E_(num_experts), K_(top_k), d_(dim) {}
  TokenRange OwnedTokens(int64_t n, TokenSplit) const override { return {0, n}; }
  bool remote() const override { return false; }
  void Dispatch(const float* x, const int32_t* ids, int64_t m, float* rows, int32_t* offset, ExchangeBuffers& b,
                const std::function<void()>& in_flight = {}) override;
  void Combine(const float* y, int64_t m, const float** out, ExchangeBuffers& b) override;
  void StartDispatch(const float* x, const int32_t* ids, int64_t m, ExchangeBuffers& b) override;
  void FinishDispatch(float* rows, int32_t* offset, ExchangeBuffers& b) override;
  void StartCombine(const float* y, ExchangeBuffers& b) override;
  void FinishCombine(const float** out, ExchangeBuffers& b) override;
  void GatherTokens(float*, int64_t, ExchangeBuffers&) override {}

 private:
  int64_t E_, K_, d_;
};

// Experts spread over the ranks of `comm` by `placement`. Every rank must
// call each step for every MoE layer, with or without tokens of its own.
class MpiExpertExchange : public ExpertExchange {
 public:
  // overlap: run Dispatch's in_flight work while the rows travel (else
  // after they arrived, so the whole exchange is exposed).
  MpiExpertExchange(Comm& comm, ExpertPlacement placement, int64_t top_k, int64_t dim, bool overlap = true);
  TokenRange OwnedTokens(int64_t n, TokenSplit split) const override;
  bool remote() const override { return true; }
  void Dispatch(const float* x, const int32_t* ids, int64_t m, float* rows, int32_t* offset, ExchangeBuffers& b,
                const std::function<void()>& in_flight = {}) override;
  void Combine(const float* y, int64_t m, const float** out, ExchangeBuffers& b) override;
  void StartDispatch(const float* x, const int32_t* ids, int64_t m, ExchangeBuffers& b) override;
  void FinishDispatch(float* rows, int32_t* offset, ExchangeBuffers& b) override;
  void StartCombine(const float* y, ExchangeBuffers& b) override;
  void FinishCombine(const float** out, ExchangeBuffers& b) override;
  void GatherTokens(float* rows, int64_t n, ExchangeBuffers& b) override;
  const ExpertPlacement& placement() const { return placement_; }

 private:
  Comm& comm_;
  ExpertPlacement placement_;
  int64_t E_, K_, d_;
  int ranks_;
  bool overlap_ = true;
  std::vector<int32_t> order_;  // experts sorted by (owner, id): the send layout
  std::vector<int32_t> mine_;   // this rank's experts, ascending
};

}  // namespace dsv3::dist
