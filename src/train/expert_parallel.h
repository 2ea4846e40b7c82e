// Expert parallelism for training: the routed experts of every MoE layer are
// split over the ranks of a dist::Comm (contiguous blocks, the placement
// inference uses), and each rank computes, for every rank's tokens, only the
// experts it owns. A MoE layer's forward sends each gathered row (one per
// token and chosen expert, grouped by expert) to the expert's owner with one
// all-to-all-v, the owner runs the expert MLP on the rows of each source
// rank separately, and a second all-to-all-v brings the outputs back; the
// backward sends the output gradients the same way and returns the input
// gradients. The shared experts run while the rows travel (the overlap the
// DeepSeek-V3 schedule uses within one micro-batch).
// Why the results equal one process bit for bit: one process with
// --grad-accum N computes micro-batch m's rows for expert e in one MLP call
// and adds the micro-batch gradients into a zeroed sum in micro-batch order.
// Here rank r runs micro-batch r, its rows for expert e reach the owner in
// the same order and go through the same call, and the owner computes each
// source's weight gradient into a zeroed buffer and adds them to the sum in
// rank (= micro-batch) order. The owner alone keeps its experts' gradients
// and AdamW state (data_parallel.h excludes them from the reduction).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "dist/comm.h"
#include "dist/expert_placement.h"
#include "train/context.h"
#include "train/ffn.h"

namespace dsv3::train {

struct CommStats;

class ExpertParallel {
 public:
  ExpertParallel(dist::Comm& comm, dist::ExpertPlacement placement, int64_t d, int64_t expert_width);

  const dist::ExpertPlacement& placement() const { return placement_; }
  bool Owns(int64_t expert) const { return placement_.owner[expert] == comm_.rank(); }
  // Where exchange times and bytes of the current step go (may be null).
  void set_stats(CommStats* stats) { stats_ = stats; }

  // a.yg [n*K, d] = each gathered row of a.xg through its expert, computed
  // by the expert's owner; this rank computes its experts for every rank's
  // rows (kept in a.remote for the backward). `overlap` runs while the
  // rows travel.
  void Forward(const TrainContext& ctx, const MoeWeights& w, MoeActs& a, const std::function<void()>& overlap);
  // s.dxg [n*K, d] from s.dyg [n*K, d]; this rank's experts' weight
  // gradients from every rank's rows are added into g in rank order.
  void Backward(const TrainContext& ctx, const MoeWeights& w, MoeWeights& g, const MoeActs& a, FfnScratch& s,
                const std::function<void()>& overlap);

 private:
  // The rows of `rows` [n*K, d] (grouped by expert, a.offset) packed by
  // destination rank into send_, and the per-rank counts.
  void Pack(const MoeActs& a, const float* rows);
  // recv [sum rows_to_, d] (by destination rank, its experts ascending) ->
  // out [n*K, d] at each expert's offset.
  void Unpack(const MoeActs& a, const float* recv, float* out) const;
  // Posts one exchange and waits for it, `overlap` in between; timed.
  void Exchange(const float* send, const int64_t* send_rows, float* recv, const int64_t* recv_rows,
                const std::function<void()>& overlap);
  // acc += tmp over the three matrices of one expert.
  static void AddInto(const MlpWeights& tmp, MlpWeights& acc);

  dist::Comm& comm_;
  dist::ExpertPlacement placement_;
  std::vector<std::vector<int32_t>> experts_;  // [ranks] experts of each rank, ascending
  int64_t most_ = 0;                           // the most experts a rank holds
  int64_t d_ = 0, width_ = 0;
  CommStats* stats_ = nullptr;
  std::vector<int64_t> rows_to_, rows_from_;   // [ranks] rows sent to / received from each rank
  std::vector<int64_t> count_send_;            // [ranks, most_] loads of each rank's experts
  std::vector<float> send_, back_;             // [n*K, d] packed rows out, rows returned
  std::vector<float> dy_;                      // [rows received, d] output gradients of the rows computed here
  std::vector<float> tmp_;                     // one expert's weight gradients (gate, up, down)
};

}  // namespace dsv3::train
