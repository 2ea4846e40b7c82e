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

DataParallel::DataParallel(dist::Comm& comm, TrainParams& params, const dist::ExpertPlacement* experts,
                           int64_t bucket_elems)
    : comm_(comm), params_(params) {
  const auto& chunks = params_.chunks();
  const int64_t n = static_cast<int64_t>(chunks.size()), ranks = comm_.size();
  prefix_.assign(n + 1, 0);
  for (int64_t c = 0; c < n; ++c) prefix_[c + 1] = prefix_[c] + (chunks[c].end - chunks[c].begin);
  owner_.assign(n, 0), fixed_.assign(n, 0);
  const std::vector<int32_t> expert = experts ? params_.RoutedExpertOfTensors() : std::vector<int32_t>();
  std::vector<int64_t> free;  // chunks split by balance, in order
  for (int64_t c = 0; c < n; ++c) {
    const int32_t e = expert.empty() ? -1 : expert[chunks[c].tensor];
    if (e >= 0) {
      fixed_[c] = 1, any_fixed_ = true, owner_[c] = experts->owner[e];
    } else {
      free.push_back(c);
    }
  }
  // Rank r owns the free chunks that start at or after r/N of their elements.
  std::vector<int64_t> before(free.size() + 1, 0);
  for (size_t i = 0; i < free.size(); ++i) before[i + 1] = before[i] + ChunkElems(free[i]);
  int64_t r = 0;
  for (size_t i = 0; i < free.size(); ++i) {
    while (r + 1 < ranks && before[i] >= before.back() * (r + 1) / ranks) ++r;
    owner_[free[i]] = static_cast<int>(r);
  }
  mine_.assign(ranks, {});
  for (int64_t c = 0; c < n; ++c) mine_[owner_[c]].push_back(c);
  // Buckets: each stage's free chunks in chunk order, cut every bucket_elems.
  const int stages = TrainModel::GradStages(params_.config());
  for (int stage = 0; stage < stages; ++stage) {
    int64_t filled = bucket_elems;  // start a new bucket at the first chunk
    for (int64_t c : free) {
      if (TrainModel::GradStage(params_.config(), params_.tensors()[chunks[c].tensor].name) != stage) continue;
      if (filled >= bucket_elems) {
        buckets_.emplace_back();
        buckets_.back().stage = stage, buckets_.back().owned.resize(ranks);
        filled = 0;
      }
      buckets_.back().owned[owner_[c]].push_back(c);
      if (owner_[c] == comm_.rank()) buckets_.back().elems_mine += ChunkElems(c);
      filled += ChunkElems(c);
    }
  }
}

MomentRanges DataParallel::moment_ranges(int r) const {
  // The flat space is AdamW's: every tensor with a gradient, in tensor order.
  const auto& chunks = params_.chunks();
  const auto& ts = params_.tensors();
  std::vector<int64_t> offset(ts.size() + 1, 0);
  for (size_t i = 0; i < ts.size(); ++i) offset[i + 1] = offset[i] + (ts[i].grad ? ts[i].numel : 0);
  if (!any_fixed_) {
    // Contiguous: from rank r's first chunk to the next rank's, so frozen
    // tensors between chunks ride with the range they fall in.
    auto start = [&](int q) -> int64_t {
      if (q == 0) return 0;
      for (; q < comm_.size(); ++q)
        if (!mine_[q].empty()) return offset[chunks[mine_[q][0]].tensor] + chunks[mine_[q][0]].begin;
      return offset.back();
    };
    return {{start(r), start(r + 1)}};
  }
  MomentRanges out;
  for (int64_t c : mine_[r]) {
    const int64_t b = offset[chunks[c].tensor] + chunks[c].begin, e = b + ChunkElems(c);
    if (!out.empty() && out.back().end == b) {
      out.back().end = e;
    } else {
      out.push_back({b, e});
    }
  }
  if (out.empty()) out.push_back({0, 0});
  return out;
}

std::vector<int64_t> DataParallel::ChunksOf(int r, bool fixed) const {
  std::vector<int64_t> out;
  for (int64_t c : mine_[r])
    if (fixed_[c] == static_cast<uint8_t>(fixed)) out.push_back(c);
  return out;
}

void DataParallel::Copy(const std::vector<int64_t>& list, float* buf, bool to_buf) const {
  const auto& chunks = params_.chunks();
  for (int64_t c : list) {
    float* v = params_.tensors()[chunks[c].tensor].value + chunks[c].begin;
    const size_t bytes = ChunkElems(c) * sizeof(float);
    to_buf ? std::memcpy(buf, v, bytes) : std::memcpy(v, buf, bytes);
    buf += ChunkElems(c);
  }
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
  opt.GradNormParts(&parts);  // this rank's chunks
  const auto t0 = Clock::now();
  const int ranks = comm_.size();
  std::vector<int64_t> counts(ranks);
  for (int r = 0; r < ranks; ++r) counts[r] = static_cast<int64_t>(mine_[r].size());
  std::vector<double> all(parts.size());
  int64_t at = 0;
  for (int r = 0; r < ranks; ++r) {
    if (r == comm_.rank())
      for (size_t i = 0; i < mine_[r].size(); ++i) all[at + i] = parts[mine_[r][i]];
    at += counts[r];
  }
  comm_.AllGatherV(all.data(), counts.data(), sizeof(double));
  stats->other_s += Since(t0);
  at = 0;
  for (int r = 0; r < ranks; ++r)
    for (int64_t c : mine_[r]) parts[c] = all[at++];
  double total = 0.0;  // in chunk order, as one process adds them
  for (double s : parts) total += s;
  return std::sqrt(total);
}

DataParallel::RankChunks DataParallel::Layout(bool fixed) const {
  const int ranks = comm_.size();
  RankChunks l;
  l.lists.resize(ranks), l.counts.assign(ranks, 0), l.start.assign(ranks + 1, 0);
  for (int r = 0; r < ranks; ++r) {
    l.lists[r] = ChunksOf(r, fixed);
    for (int64_t c : l.lists[r]) l.counts[r] += ChunkElems(c);
    l.start[r + 1] = l.start[r] + l.counts[r];
  }
  return l;
}

void DataParallel::GatherParams(CommStats* stats) {
  const int ranks = comm_.size(), me = comm_.rank();
  const RankChunks l = Layout(false);
  values_.resize(l.start[ranks]);
  Copy(l.lists[me], values_.data() + l.start[me], true);
  const auto t0 = Clock::now();
  comm_.AllGatherV(values_.data(), l.counts.data(), sizeof(float));
  stats->gather_s += Since(t0);
  stats->bytes_sent += l.counts[me] * static_cast<int64_t>(sizeof(float)) * (ranks - 1);
  for (int r = 0; r < ranks; ++r)
    if (r != me) Copy(l.lists[r], values_.data() + l.start[r], false);
}

void DataParallel::GatherExperts() {
  if (!any_fixed_) return;
  const int ranks = comm_.size(), me = comm_.rank();
  const RankChunks l = Layout(true);
  std::vector<float> mine(l.counts[me]), all(me == 0 ? l.start[ranks] : 0);
  Copy(l.lists[me], mine.data(), true);
  if (me == 0) std::copy(mine.begin(), mine.end(), all.begin());
  comm_.GatherV(mine.data(), all.data(), l.counts.data(), sizeof(float), 0);
  if (me != 0) return;
  for (int r = 1; r < ranks; ++r) Copy(l.lists[r], all.data() + l.start[r], false);
}

void DataParallel::GatherMoments(AdamW& opt) {
  std::vector<float> m, v;
  opt.LocalMoments(&m, &v);
  const int ranks = comm_.size();
  std::vector<int64_t> counts(ranks, 0);
  std::vector<MomentRanges> ranges(ranks);
  for (int r = 0; r < ranks; ++r) {
    ranges[r] = moment_ranges(r);
    for (const MomentRange& g : ranges[r]) counts[r] += g.end - g.begin;
  }
  // Rank order -> flat order; the same layout when the ranges tile it in
  // rank order (data parallelism alone), so no copy then.
  auto gather = [&](std::vector<float>& mine) {
    std::vector<float> rows(comm_.rank() == 0 ? opt.flat_size() : 0);
    if (comm_.rank() == 0) std::copy(mine.begin(), mine.end(), rows.begin());
    comm_.GatherV(mine.data(), rows.data(), counts.data(), sizeof(float), 0);
    if (comm_.rank() != 0 || !any_fixed_) return rows;
    std::vector<float> flat(opt.flat_size(), 0.0f);
    int64_t at = 0;
    for (int r = 0; r < ranks; ++r)
      for (const MomentRange& g : ranges[r]) {
        std::copy(rows.begin() + at, rows.begin() + at + (g.end - g.begin), flat.begin() + g.begin);
        at += g.end - g.begin;
      }
    return flat;
  };
  std::vector<float> all_m = gather(m);
  std::vector<float> all_v = gather(v);
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
