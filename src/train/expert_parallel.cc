// The expert-parallel dispatch and combine of training; see
// expert_parallel.h.
#include "train/expert_parallel.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "train/data_parallel.h"
#include "train/params.h"

namespace dsv3::train {

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

template <typename V>
void Grow(V& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(n);
}

}  // namespace

ExpertParallel::ExpertParallel(dist::Comm& comm, dist::ExpertPlacement placement, int64_t d, int64_t expert_width)
    : comm_(comm), placement_(std::move(placement)), d_(d), width_(expert_width) {
  const int ranks = comm_.size();
  experts_.resize(ranks);
  for (int r = 0; r < ranks; ++r) {
    experts_[r] = placement_.ExpertsOf(r);
    most_ = std::max<int64_t>(most_, static_cast<int64_t>(experts_[r].size()));
  }
  rows_to_.assign(ranks, 0), rows_from_.assign(ranks, 0), count_send_.assign(ranks * most_, 0);
  tmp_.assign(3 * width_ * d_, 0.0f);
}

void ExpertParallel::Pack(const MoeActs& a, const float* rows) {
  const int ranks = comm_.size();
  int64_t total = 0;
  for (int q = 0; q < ranks; ++q) {
    rows_to_[q] = 0;
    for (int32_t e : experts_[q]) rows_to_[q] += a.offset[e + 1] - a.offset[e];
    total += rows_to_[q];
  }
  Grow(send_, total * d_);
  float* out = send_.data();
  for (int q = 0; q < ranks; ++q)
    for (int32_t e : experts_[q]) {
      const int64_t n = a.offset[e + 1] - a.offset[e];
      std::memcpy(out, rows + a.offset[e] * d_, n * d_ * sizeof(float));
      out += n * d_;
    }
}

void ExpertParallel::Unpack(const MoeActs& a, const float* recv, float* out) const {
  for (int q = 0; q < comm_.size(); ++q)
    for (int32_t e : experts_[q]) {
      const int64_t n = a.offset[e + 1] - a.offset[e];
      std::memcpy(out + a.offset[e] * d_, recv, n * d_ * sizeof(float));
      recv += n * d_;
    }
}

void ExpertParallel::Exchange(const float* send, const int64_t* send_rows, float* recv, const int64_t* recv_rows,
                              const std::function<void()>& overlap) {
  const auto t0 = Clock::now();
  const int handle = comm_.IAllToAllV(send, send_rows, recv, recv_rows, d_ * sizeof(float));
  const double post = Since(t0);
  if (overlap) overlap();
  const auto t1 = Clock::now();
  comm_.Wait(handle);
  if (!stats_) return;
  stats_->expert_s += post + Since(t1);
  stats_->expert_span_s += Since(t0);
  for (int q = 0; q < comm_.size(); ++q)
    if (q != comm_.rank()) stats_->expert_bytes += send_rows[q] * d_ * static_cast<int64_t>(sizeof(float));
}

void ExpertParallel::Forward(const TrainContext& ctx, const MoeWeights& w, MoeActs& a,
                             const std::function<void()>& overlap) {
  const int ranks = comm_.size(), me = comm_.rank();
  const int64_t n_mine = static_cast<int64_t>(experts_[me].size());
  RemoteRows& rr = a.remote;
  // Each owner learns how many rows of each of its experts every rank sends.
  for (int q = 0; q < ranks; ++q)
    for (size_t i = 0; i < experts_[q].size(); ++i) count_send_[q * most_ + i] = a.load[experts_[q][i]];
  rr.counts.assign(ranks * most_, 0);
  auto t0 = Clock::now();
  comm_.AllToAll(count_send_.data(), most_, rr.counts.data());
  if (stats_) stats_->expert_s += Since(t0), stats_->expert_span_s += Since(t0);
  rr.from.assign(ranks, 0);
  int64_t total = 0;
  for (int r = 0; r < ranks; ++r) {
    for (int64_t i = 0; i < n_mine; ++i) rr.from[r] += rr.counts[r * most_ + i];
    total += rr.from[r];
  }
  Pack(a, a.xg.data());
  Grow(rr.x, total * d_), Grow(rr.y, total * d_);
  rr.acts.Reserve(total, width_);
  Exchange(send_.data(), rows_to_.data(), rr.x.data(), rr.from.data(), overlap);
  // Each source's rows of each expert in one call, as one process calls it
  // for that micro-batch.
  int64_t at = 0;
  for (int r = 0; r < ranks; ++r)
    for (int64_t i = 0; i < n_mine; ++i) {
      const int64_t rows = rr.counts[r * most_ + i];
      if (rows > 0)
        MlpForward(ctx, w.experts[experts_[me][i]], width_, rr.x.data() + at * d_, rows, rr.acts.At(at, width_),
                   rr.y.data() + at * d_);
      at += rows;
    }
  Grow(back_, ctx.dims.n * ctx.dims.K * d_);
  Exchange(rr.y.data(), rr.from.data(), back_.data(), rows_to_.data(), nullptr);
  Unpack(a, back_.data(), a.yg.data());
}

void ExpertParallel::AddInto(const MlpWeights& tmp, MlpWeights& acc) {
  for (auto m : {&MlpWeights::gate_proj, &MlpWeights::up_proj, &MlpWeights::down_proj}) {
    const float* src = Data(tmp.*m);
    float* dst = Mut(acc.*m);
    const int64_t n = (acc.*m).rows * (acc.*m).cols;
    for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
  }
}

void ExpertParallel::Backward(const TrainContext& ctx, const MoeWeights& w, MoeWeights& g, const MoeActs& a,
                              FfnScratch& s, const std::function<void()>& overlap) {
  const int ranks = comm_.size(), me = comm_.rank();
  const int64_t n_mine = static_cast<int64_t>(experts_[me].size());
  const RemoteRows& rr = a.remote;
  int64_t total = 0;
  for (int r = 0; r < ranks; ++r) total += rr.from[r];
  // Output gradients to the owners (dy_), input gradients back to the
  // sources (computed into send_, free again once the rows went out).
  Pack(a, s.dyg.data());
  Grow(dy_, total * d_);
  Exchange(send_.data(), rows_to_.data(), dy_.data(), rr.from.data(), overlap);
  std::vector<float>& dx = send_;  // [total, d]
  Grow(dx, total * d_);
  int64_t at = 0;
  for (int r = 0; r < ranks; ++r)
    for (int64_t i = 0; i < n_mine; ++i) {
      const int64_t rows = rr.counts[r * most_ + i];
      if (rows > 0) {
        // This source's gradient alone (a zeroed set, as one process's
        // micro-batch slot), then added to the sum in rank order.
        const int32_t e = experts_[me][i];
        MlpWeights part = g.experts[e];
        const int64_t fd = width_ * d_;
        std::fill(tmp_.begin(), tmp_.end(), 0.0f);
        part.gate_proj.data = tmp_.data(), part.up_proj.data = tmp_.data() + fd, part.down_proj.data = tmp_.data() + 2 * fd;
        MlpBackward(ctx, w.experts[e], part, width_, rr.x.data() + at * d_, rows, rr.acts.At(at, width_),
                    dy_.data() + at * d_, s, dx.data() + at * d_, false);
        AddInto(part, g.experts[e]);
      }
      at += rows;
    }
  Grow(back_, ctx.dims.n * ctx.dims.K * d_);
  Exchange(dx.data(), rr.from.data(), back_.data(), rows_to_.data(), nullptr);
  Unpack(a, back_.data(), s.dxg.data());
}

}  // namespace dsv3::train
