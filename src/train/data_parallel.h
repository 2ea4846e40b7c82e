// Data parallelism over the ranks of a dist::Comm, bit-identical to one
// process with the same --grad-accum. One process adds the micro-batch
// gradients into a zeroed set in micro-batch order (0 + g0 + g1 + ...), so
// every element of the sum depends on that order. Here the trainable
// elements (TrainParams::chunks(), in order) are split into one contiguous
// range of whole chunks per rank; the owner of a chunk receives every
// micro-batch's gradient for it (ranks hold consecutive micro-batches) and
// adds them from 0 in micro-batch order: the same additions, so the same
// bits. The exchange runs in buckets (pieces of every owner's range), posted
// non-blocking at once and summed in bucket order as each one arrives.
// ZeRO-1: the owner alone holds AdamW moments for its range (MomentRange)
// and updates it; the updated values are then gathered on every rank. The
// gradient norm gathers the owners' per-chunk sums of squares and adds them
// in chunk order, as AdamW::GradNorm does. Checkpoints gather the moments
// on rank 0, which writes the same files one process writes.
#pragma once

#include <cstdint>
#include <vector>

#include "dist/comm.h"
#include "train/optimizer.h"
#include "train/params.h"

namespace dsv3::train {

// Communication accounting of one step (seconds, bytes).
struct CommStats {
  double reduce_s = 0.0;   // gradient reduction: pack, post, wait, sum
  double wait_s = 0.0;     // of which blocked waiting for buckets (exposed)
  double gather_s = 0.0;   // parameter all-gather after the update (exposed)
  double other_s = 0.0;    // losses, loads, norm parts (exposed)
  int64_t bytes_sent = 0;  // this rank's payload over the step
  double exposed() const { return wait_s + gather_s + other_s; }
};

class DataParallel {
 public:
  // Plans the split of params.chunks() over comm's ranks (balanced by
  // elements, whole chunks) and the buckets (at most bucket_elems elements
  // of one owner's range each).
  DataParallel(dist::Comm& comm, TrainParams& params, int64_t bucket_elems = 1 << 20);

  int rank() const { return comm_.rank(); }
  int size() const { return comm_.size(); }
  // The flat moment range this rank owns (for AdamW).
  MomentRange moment_range() const;
  int64_t buckets() const { return buckets_; }

  // slots: this rank's micro-batch gradient sets, in micro-batch order (the
  // ranks hold consecutive micro-batches, rank 0 first). Leaves in slot 0,
  // for the chunks this rank owns, 0 + the sum of every rank's micro-batch
  // gradients in global micro-batch order. Other chunks of slot 0 are stale.
  void ReduceGrads(const std::vector<int>& slots, CommStats* stats);
  // The global gradient norm from the owners' parts, in chunk order.
  double GradNorm(const AdamW& opt, CommStats* stats);
  // Every rank's owned chunk values -> every rank.
  void GatherParams(CommStats* stats);
  // AdamW's moments of every rank -> rank 0 (AdamW::SetGathered there).
  void GatherMoments(AdamW& opt);

  // Each rank's `mine` ([items, width] doubles) -> [sum items, width] on
  // every rank, rank order.
  std::vector<double> AllGatherRows(const std::vector<double>& mine, int64_t items, int64_t width);
  void SumLoads(std::vector<int64_t>* flat) { comm_.AllReduceSum(flat->data(), static_cast<int64_t>(flat->size())); }
  dist::Comm& comm() { return comm_; }

 private:
  // Chunks [begin, end) of owner r's bucket k.
  void Piece(int r, int64_t k, int64_t* begin, int64_t* end) const;
  int64_t Elems(int64_t c0, int64_t c1) const { return prefix_[c1] - prefix_[c0]; }

  dist::Comm& comm_;
  TrainParams& params_;
  std::vector<int64_t> prefix_;      // [chunks + 1] elements before chunk c
  std::vector<int64_t> first_;       // [size + 1] first chunk of each rank
  int64_t buckets_ = 1;
  std::vector<std::vector<float>> send_, recv_;  // per bucket
  std::vector<float> values_;                    // [all chunk elements] for GatherParams
};

}  // namespace dsv3::train
