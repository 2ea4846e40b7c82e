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
  buckets_ = 1;
  for (int64_t r = 0; r < ranks; ++r)
    buckets_ = std::max(buckets_, (Elems(first_[r], first_[r + 1]) + bucket_elems - 1) / std::max<int64_t>(bucket_elems, 1));
  buckets_ = std::min(buckets_, std::max<int64_t>(n, 1));
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

void DataParallel::Piece(int r, int64_t k, int64_t* begin, int64_t* end) const {
  const int64_t c0 = first_[r], count = first_[r + 1] - first_[r];
  *begin = c0 + count * k / buckets_;
  *end = c0 + count * (k + 1) / buckets_;
}

void DataParallel::ReduceGrads(const std::vector<int>& slots, CommStats* stats) {
  const auto t0 = Clock::now();
  const auto& chunks = params_.chunks();
  const int ranks = comm_.size(), me = comm_.rank();
  const int64_t a = static_cast<int64_t>(slots.size());
  send_.resize(buckets_), recv_.resize(buckets_);
  std::vector<int> handles(buckets_);
  std::vector<int64_t> send_counts(ranks), recv_counts(ranks);
  for (int64_t k = 0; k < buckets_; ++k) {
    // send [ranks][a][piece(r, k)]: every micro-batch's gradient of the piece r owns.
    int64_t total = 0, m0, m1;
    for (int r = 0; r < ranks; ++r) {
      Piece(r, k, &m0, &m1);
      send_counts[r] = a * Elems(m0, m1), total += send_counts[r];
    }
    send_[k].resize(total);
    float* out = send_[k].data();
    for (int r = 0; r < ranks; ++r) {
      Piece(r, k, &m0, &m1);
      for (int64_t j = 0; j < a; ++j)
        for (int64_t c = m0; c < m1; ++c) {
          const float* g = params_.GradPtr(slots[j], chunks[c].tensor);
          out = std::copy(g + chunks[c].begin, g + chunks[c].end, out);
        }
    }
    Piece(me, k, &m0, &m1);
    for (int r = 0; r < ranks; ++r) recv_counts[r] = a * Elems(m0, m1);
    recv_[k].resize(ranks * a * Elems(m0, m1));
    stats->bytes_sent += (total - send_counts[me]) * static_cast<int64_t>(sizeof(float));
    handles[k] = comm_.IAllToAllV(send_[k].data(), send_counts.data(), recv_[k].data(), recv_counts.data(),
                                  sizeof(float));
  }
  for (int64_t k = 0; k < buckets_; ++k) {
    const auto w0 = Clock::now();
    comm_.Wait(handles[k]);
    stats->wait_s += Since(w0);
    // recv [ranks][a][piece]: micro-batch s*a + j at block s*a + j; add from
    // 0 in that order, the one-process order.
    int64_t m0, m1;
    Piece(me, k, &m0, &m1);
    const int64_t piece = Elems(m0, m1), blocks = ranks * a;
    const float* in = recv_[k].data();
    ParallelFor(m1 - m0, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t c = m0 + i0; c < m0 + i1; ++c) {
        float* dst = params_.GradPtr(0, chunks[c].tensor) + chunks[c].begin;
        const int64_t at = prefix_[c] - prefix_[m0], len = chunks[c].end - chunks[c].begin;
        for (int64_t i = 0; i < len; ++i) {
          float s = 0.0f;
          for (int64_t b = 0; b < blocks; ++b) s += in[b * piece + at + i];
          dst[i] = s;
        }
      }
    });
  }
  stats->reduce_s += Since(t0);
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
