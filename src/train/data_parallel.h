// Data parallelism over the ranks of a dist::Comm, bit-identical to one
// process with the same --grad-accum. One process adds the micro-batch
// gradients into a zeroed set in micro-batch order (0 + g0 + g1 + ...), so
// every element of the sum depends on that order. Here the trainable
// elements (TrainParams::chunks(), in order) are split into one contiguous
// range of whole chunks per rank; the owner of a chunk receives every
// micro-batch's gradient for it (ranks hold consecutive micro-batches) and
// adds them from 0 in micro-batch order: the same additions, so the same
// bits. The exchange runs in buckets: the chunks of one backward stage
// (TrainModel::GradStage: MTP and head, norm, each layer, embedding), at
// most bucket_elems each, posted non-blocking (Comm::IAllToAllV) as soon as
// the backward of the last local micro-batch finishes that stage, and summed
// in bucket order after the backward. Buckets are always posted in the same
// order on every rank (stage order), whether or not a rank overlaps, and
// timing decides nothing: only which sums wait.
// With expert parallelism (expert_parallel.h) the routed experts' chunks
// are owned by the experts' ranks, which compute their whole gradient
// themselves: they are left out of the buckets and of the per-step gather,
// and reach rank 0 only for checkpoints (GatherExperts).
// ZeRO-1: the owner alone holds AdamW moments for its chunks (MomentRanges)
// and updates it; the updated values are then gathered on every rank. The
// gradient norm gathers the owners' per-chunk sums of squares and adds them
// in chunk order, as AdamW::GradNorm does. Checkpoints gather the moments
// on rank 0, which writes the same files one process writes.
#pragma once

#include <cstdint>
#include <vector>

#include "dist/comm.h"
#include "dist/expert_placement.h"
#include "train/optimizer.h"
#include "train/params.h"
#include "train/train_model.h"

namespace dsv3::train {

// Communication accounting of one step (seconds, bytes). Everything but
// sum_s is time the training thread spends in MPI calls, so exposed; the
// exchanges themselves progress during the backward (between the posts).
struct CommStats {
  double post_s = 0.0;     // packing and posting buckets (inside the backward)
  double wait_s = 0.0;     // blocked waiting for buckets after the backward
  double sum_s = 0.0;      // adding the received gradients (arithmetic, not communication)
  double gather_s = 0.0;   // parameter all-gather after the update
  double sync_s = 0.0;     // the loss gather: where ranks wait for the slowest one's compute
  double other_s = 0.0;    // norm parts, expert loads
  int64_t bytes_sent = 0;  // this rank's payload over the step
  // Expert parallelism: time blocked in the token exchanges (the shared
  // experts' compute between posting and waiting is not counted), the
  // exchanges' span from posting to completion, and rows sent.
  double expert_s = 0.0, expert_span_s = 0.0;
  int64_t expert_bytes = 0;
  double exposed() const { return post_s + wait_s + gather_s + sync_s + other_s + expert_s; }
  void Add(const CommStats& o) {
    post_s += o.post_s, wait_s += o.wait_s, sum_s += o.sum_s, gather_s += o.gather_s, sync_s += o.sync_s;
    other_s += o.other_s, bytes_sent += o.bytes_sent;
    expert_s += o.expert_s, expert_span_s += o.expert_span_s, expert_bytes += o.expert_bytes;
  }
};

class DataParallel {
 public:
  // Plans the split of params.chunks() over comm's ranks (balanced by
  // elements, whole chunks; with `experts`, each routed expert's chunks to
  // its rank) and the buckets (per backward stage, at most bucket_elems
  // elements each).
  DataParallel(dist::Comm& comm, TrainParams& params, const dist::ExpertPlacement* experts = nullptr,
               int64_t bucket_elems = 1 << 20);

  int rank() const { return comm_.rank(); }
  int size() const { return comm_.size(); }
  // The flat moment ranges rank r owns (for AdamW).
  MomentRanges moment_ranges(int r) const;
  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }

  // The reduction of one step. slots: this rank's micro-batch gradient sets,
  // in micro-batch order (the ranks hold consecutive micro-batches, rank 0
  // first). Begin before the last local micro-batch's backward; StageReady(s)
  // when stage s of every local slot is final (posts its buckets; call it
  // from the thread that created the Comm); Finish posts whatever was not
  // posted, waits, and leaves in slot 0, for the chunks this rank owns, 0 +
  // the sum of every micro-batch's gradient in global micro-batch order.
  // Other chunks of slot 0 are stale.
  void BeginReduce(const std::vector<int>& slots, CommStats* stats);
  void StageReady(int stage);
  void FinishReduce();
  // The global gradient norm from the owners' parts, in chunk order.
  double GradNorm(const AdamW& opt, CommStats* stats);
  // Every rank's owned chunk values -> every rank (expert chunks stay).
  void GatherParams(CommStats* stats);
  // The expert chunks' values -> rank 0 (before it writes a checkpoint).
  void GatherExperts();
  // AdamW's moments of every rank -> rank 0 (AdamW::SetGathered there).
  void GatherMoments(AdamW& opt);

  // Each rank's `mine` ([items, width] doubles) -> [sum items, width] on
  // every rank, rank order.
  std::vector<double> AllGatherRows(const std::vector<double>& mine, int64_t items, int64_t width);
  void SumLoads(std::vector<int64_t>* flat) { comm_.AllReduceSum(flat->data(), static_cast<int64_t>(flat->size())); }
  dist::Comm& comm() { return comm_; }

 private:
  struct Bucket {
    int stage = 0;
    std::vector<std::vector<int64_t>> owned;  // [ranks] its chunks each rank owns, in order
    int64_t elems_mine = 0;                   // elements of owned[rank]
    std::vector<float> send, recv;            // [ranks][a][owned[r]], [ranks][a][owned[me]]
    int handle = -1;                          // posted exchange, -1: not posted
  };
  void Post(Bucket& b);
  void Sum(const Bucket& b);
  int64_t ChunkElems(int64_t c) const { return prefix_[c + 1] - prefix_[c]; }
  // Rank r's chunks, fixed (expert) ones or the others.
  std::vector<int64_t> ChunksOf(int r, bool fixed) const;
  // Every rank's fixed or other chunks, their element counts and where each
  // rank's block starts in rank order (the layout of a gather).
  struct RankChunks {
    std::vector<std::vector<int64_t>> lists;
    std::vector<int64_t> counts, start;
  };
  RankChunks Layout(bool fixed) const;
  // Values of `chunks` into / out of buf, one after the other.
  void Copy(const std::vector<int64_t>& chunks, float* buf, bool to_buf) const;

  dist::Comm& comm_;
  TrainParams& params_;
  std::vector<int64_t> prefix_;      // [chunks + 1] elements before chunk c
  std::vector<int> owner_;           // [chunks] owning rank
  std::vector<uint8_t> fixed_;       // [chunks] 1: a routed expert's (owner computes it all)
  bool any_fixed_ = false;
  std::vector<std::vector<int64_t>> mine_;  // [size] chunks each rank owns, ascending
  std::vector<Bucket> buckets_;      // in stage order
  std::vector<int> slots_;           // this step's local micro-batch slots
  CommStats* stats_ = nullptr;
  int next_post_ = 0;                // buckets [0, next_post_) are posted
  std::vector<float> values_;        // [all chunk elements] for GatherParams
};

}  // namespace dsv3::train
