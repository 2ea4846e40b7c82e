// The data-parallel gradient reduction, ZeRO-1 gathers and the row gathers
// of losses; see data_parallel.h.
#include "train/data_parallel.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "core/parallel.h"

namespace dsv3::train {

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

DataParallel::DataParallel(dist::Comm& comm, TrainParams& params, int64_t bucket_elems)
    : comm_(comm), params_(params) {
  const auto& chunks = params_.chunks();
  const int64_t n = static_cast<int64_t>(chunks.size()), ranks = comm_.size();
  prefix_.assign(n + 1, 0);
  for (int64_t c = 0; c < n; ++c) prefix_[c + 1] = prefix_[c] + (chunks[c].end - chunks[c].begin);
  // Rank r owns the chunks that start at or after r/N of the elements.
  first_.assign(ranks + 1, n);
  first_[0] = 0;
  for (int64_t r = 1; r < ranks; ++r) {
    const int64_t target = prefix_[n] * r / ranks;
    first_[r] = std::lower_bound(prefix_.begin(), prefix_.end() - 1, target) - prefix_.begin();
    first_[r] = std::max(first_[r], first_[r - 1]);
  }
  // Buckets: each stage's chunks in chunk order, cut every bucket_elems.
  const int stages = TrainModel::GradStages(params_.config());
  std::vector<int> owner(n);
  for (int64_t r = 0; r < ranks; ++r)
    for (int64_t c = first_[r]; c < first_[r + 1]; ++c) owner[c] = static_cast<int>(r);
  for (int stage = 0; stage < stages; ++stage) {
    int64_t filled = bucket_elems;  // start a new bucket at the first chunk
    for (int64_t c = 0; c < n; ++c) {
      if (TrainModel::GradStage(params_.config(), params_.tensors()[chunks[c].tensor].name) != stage) continue;
      if (filled >= bucket_elems) {
        buckets_.emplace_back();
        buckets_.back().stage = stage, buckets_.back().owned.resize(ranks);
        filled = 0;
      }
      buckets_.back().owned[owner[c]].push_back(c);
      if (owner[c] == comm_.rank()) buckets_.back().elems_mine += ChunkElems(c);
      filled += ChunkElems(c);
    }
  }
}

MomentRange DataParallel::moment_range() const {
  // Rank r's moments: from its first chunk's flat offset to the next rank's
  // (frozen tensors between chunks ride with the range they fall in). The
  // flat space is AdamW's: every tensor with a gradient, in tensor order.
  const auto& chunks = params_.chunks();
  const auto& ts = params_.tensors();
  std::vector<int64_t> offset(ts.size() + 1, 0);
  for (size_t i = 0; i < ts.size(); ++i) offset[i + 1] = offset[i] + (ts[i].grad ? ts[i].numel : 0);
  auto start = [&](int64_t r) -> int64_t {
    if (r == 0) return 0;
    if (r >= comm_.size() || first_[r] >= static_cast<int64_t>(chunks.size())) return offset.back();
    return offset[chunks[first_[r]].tensor] + chunks[first_[r]].begin;
  };
  return {start(comm_.rank()), start(comm_.rank() + 1)};
}

void DataParallel::BeginReduce(const std::vector<int>& slots, CommStats* stats) {
  slots_ = slots, stats_ = stats, next_post_ = 0;
}

void DataParallel::StageReady(int stage) {
  const auto t0 = Clock::now();
  while (next_post_ < num_buckets() && buckets_[next_post_].stage <= stage) Post(buckets_[next_post_++]);
  comm_.Progress();
  stats_->post_s += Since(t0);
}

// send [ranks][a][owned[r]]: every local micro-batch's gradient of the
// chunks rank r owns.
void DataParallel::Post(Bucket& b) {
  const auto& chunks = params_.chunks();
  const int ranks = comm_.size(), me = comm_.rank();
  const int64_t a = static_cast<int64_t>(slots_.size());
  std::vector<int64_t> send_counts(ranks), recv_counts(ranks, a * b.elems_mine);
  int64_t total = 0;
  for (int r = 0; r < ranks; ++r) {
    int64_t e = 0;
    for (int64_t c : b.owned[r]) e += ChunkElems(c);
    send_counts[r] = a * e, total += a * e;
  }
  b.send.resize(total);
  float* out = b.send.data();
  for (int r = 0; r < ranks; ++r)
    for (int64_t j = 0; j < a; ++j)
      for (int64_t c : b.owned[r]) {
        const float* g = params_.GradPtr(slots_[j], chunks[c].tensor);
        out = std::copy(g + chunks[c].begin, g + chunks[c].end, out);
      }
  b.recv.resize(ranks * a * b.elems_mine);
  stats_->bytes_sent += (total - send_counts[me]) * static_cast<int64_t>(sizeof(float));
  b.handle = comm_.IAllToAllV(b.send.data(), send_counts.data(), b.recv.data(), recv_counts.data(), sizeof(float));
}

// recv [ranks][a][mine]: micro-batch s*a + j at block s*a + j; added from 0
// in that order, the one-process order.
void DataParallel::Sum(const Bucket& b) {
  const auto& chunks = params_.chunks();
  const std::vector<int64_t>& mine = b.owned[comm_.rank()];
  const int64_t blocks = comm_.size() * static_cast<int64_t>(slots_.size()), piece = b.elems_mine;
  std::vector<int64_t> at(mine.size() + 1, 0);
  for (size_t i = 0; i < mine.size(); ++i) at[i + 1] = at[i] + ChunkElems(mine[i]);
  const float* in = b.recv.data();
  ParallelFor(static_cast<int64_t>(mine.size()), 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const ParamChunk& ch = chunks[mine[i]];
      float* dst = params_.GradPtr(0, ch.tensor) + ch.begin;
      for (int64_t e = 0; e < ch.end - ch.begin; ++e) {
        float s = 0.0f;
        for (int64_t k = 0; k < blocks; ++k) s += in[k * piece + at[i] + e];
        dst[e] = s;
      }
    }
  });
}

void DataParallel::FinishReduce() {
  const auto t0 = Clock::now();
  while (next_post_ < num_buckets()) Post(buckets_[next_post_++]);
  stats_->post_s += Since(t0);
  for (Bucket& b : buckets_) {
    const auto w0 = Clock::now();
    comm_.Wait(b.handle);
    const auto s0 = Clock::now();
    stats_->wait_s += std::chrono::duration<double>(s0 - w0).count();
    Sum(b);
    b.handle = -1;
    stats_->sum_s += Since(s0);
  }
}

double DataParallel::GradNorm(const AdamW& opt, CommStats* stats) {
  std::vector<double> parts;
  opt.GradNormParts(&parts);  // owned chunks; this rank's block is contiguous
  const auto t0 = Clock::now();
  std::vector<int64_t> counts(comm_.size());
  for (int r = 0; r < comm_.size(); ++r) counts[r] = first_[r + 1] - first_[r];
  comm_.AllGatherV(parts.data(), counts.data(), sizeof(double));
  stats->other_s += Since(t0);
  double total = 0.0;
  for (double s : parts) total += s;
  return std::sqrt(total);
}

void DataParallel::GatherParams(CommStats* stats) {
  const auto& chunks = params_.chunks();
  const int64_t n = static_cast<int64_t>(chunks.size());
  values_.resize(prefix_[n]);
  auto pack = [&](int64_t c0, int64_t c1, bool in) {
    for (int64_t c = c0; c < c1; ++c) {
      float* v = params_.tensors()[chunks[c].tensor].value + chunks[c].begin;
      float* buf = values_.data() + prefix_[c];
      const size_t bytes = (chunks[c].end - chunks[c].begin) * sizeof(float);
      in ? std::memcpy(buf, v, bytes) : std::memcpy(v, buf, bytes);
    }
  };
  const int me = comm_.rank();
  pack(first_[me], first_[me + 1], true);
  const auto t0 = Clock::now();
  std::vector<int64_t> counts(comm_.size());
  for (int r = 0; r < comm_.size(); ++r) counts[r] = Elems(first_[r], first_[r + 1]);
  comm_.AllGatherV(values_.data(), counts.data(), sizeof(float));
  stats->gather_s += Since(t0);
  stats->bytes_sent += counts[me] * static_cast<int64_t>(sizeof(float)) * (comm_.size() - 1);
  pack(0, first_[me], false);
  pack(first_[me + 1], n, false);
}

void DataParallel::GatherMoments(AdamW& opt) {
  std::vector<float> m, v;
  opt.LocalMoments(&m, &v);
  std::vector<int64_t> counts(comm_.size());
  MomentRange mine = opt.range();
  // Every rank's range size: the ranges tile [0, flat_size) in rank order.
  const std::vector<uint64_t> sizes = comm_.AllGather(static_cast<uint64_t>(mine.end - mine.begin));
  for (int r = 0; r < comm_.size(); ++r) counts[r] = static_cast<int64_t>(sizes[r]);
  std::vector<float> all_m, all_v;
  if (comm_.rank() == 0) {
    all_m.resize(opt.flat_size()), all_v.resize(opt.flat_size());
    std::copy(m.begin(), m.end(), all_m.begin()), std::copy(v.begin(), v.end(), all_v.begin());
  }
  comm_.GatherV(m.data(), all_m.data(), counts.data(), sizeof(float), 0);
  comm_.GatherV(v.data(), all_v.data(), counts.data(), sizeof(float), 0);
  if (comm_.rank() == 0) opt.SetGathered(std::move(all_m), std::move(all_v));
}

std::vector<double> DataParallel::AllGatherRows(const std::vector<double>& mine, int64_t items, int64_t width) {
  const std::vector<uint64_t> per_rank = comm_.AllGather(static_cast<uint64_t>(items));
  std::vector<int64_t> counts(comm_.size());
  int64_t total = 0, before = 0;
  for (int r = 0; r < comm_.size(); ++r) {
    counts[r] = static_cast<int64_t>(per_rank[r]) * width;
    if (r < comm_.rank()) before += counts[r];
    total += counts[r];
  }
  std::vector<double> all(total);
  std::copy(mine.begin(), mine.begin() + items * width, all.begin() + before);
  comm_.AllGatherV(all.data(), counts.data(), sizeof(double));
  return all;
}

}  // namespace dsv3::train
