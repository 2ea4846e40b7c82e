// Expert exchanges; see expert_exchange.h. Layouts: the local exchange
// groups assignments by expert id, then token. The MPI exchange sends each
// owned assignment's row to its expert's rank, ordered by (rank, expert,
// token); the receiver regroups rows by expert, then source rank, then
// token, which is batch order because ranks own consecutive token blocks.
#include "dist/expert_exchange.h"

#include <algorithm>
#include <chrono>
#include <numeric>

namespace dsv3::dist {

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <class T>
void Grow(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(n);
}

}  // namespace

void LocalExpertExchange::Dispatch(const float* x, const int32_t* ids, int64_t m, float* rows, int32_t* offset,
                                   ExchangeBuffers& b, const std::function<void()>& in_flight) {
  if (in_flight) in_flight();
  const int64_t A = m * K_;
  Grow(b.cursor, E_), Grow(b.slot, A);
  std::fill(b.cursor.begin(), b.cursor.begin() + E_, 0);
  for (int64_t a = 0; a < A; ++a) ++b.cursor[ids[a]];
  offset[0] = 0;
  for (int64_t e = 0; e < E_; ++e) offset[e + 1] = offset[e] + static_cast<int32_t>(b.cursor[e]);
  for (int64_t e = 0; e < E_; ++e) b.cursor[e] = offset[e];
  for (int64_t a = 0; a < A; ++a) b.slot[a] = static_cast<int32_t>(b.cursor[ids[a]]++);
  for (int64_t a = 0; a < A; ++a) std::copy_n(x + (a / K_) * d_, d_, rows + b.slot[a] * d_);
}

void LocalExpertExchange::Combine(const float* y, int64_t m, const float** out, ExchangeBuffers& b) {
  for (int64_t a = 0; a < m * K_; ++a) out[a] = y + b.slot[a] * d_;
}

void LocalExpertExchange::StartDispatch(const float* x, const int32_t* ids, int64_t m, ExchangeBuffers& b) {
  b.x = x, b.ids = ids, b.m = m;
}
void LocalExpertExchange::FinishDispatch(float* rows, int32_t* offset, ExchangeBuffers& b) {
  Dispatch(b.x, b.ids, b.m, rows, offset, b);
}
void LocalExpertExchange::StartCombine(const float* y, ExchangeBuffers& b) { b.x = y; }
void LocalExpertExchange::FinishCombine(const float** out, ExchangeBuffers& b) { Combine(b.x, b.m, out, b); }

MpiExpertExchange::MpiExpertExchange(Comm& comm, ExpertPlacement placement, int64_t top_k, int64_t dim,
                                     bool overlap)
    : comm_(comm), placement_(std::move(placement)), K_(top_k), d_(dim), overlap_(overlap) {
  E_ = placement_.num_experts();
  ranks_ = comm_.size();
  order_.resize(E_);
  std::iota(order_.begin(), order_.end(), 0);
  std::stable_sort(order_.begin(), order_.end(),
                   [&](int32_t a, int32_t b) { return placement_.owner[a] < placement_.owner[b]; });
  mine_ = placement_.ExpertsOf(comm_.rank());
}

TokenRange MpiExpertExchange::OwnedTokens(int64_t n, TokenSplit split) const {
  if (split == TokenSplit::kOwnBatch) return {0, n};
  const int64_t r = comm_.rank();
  return {n * r / ranks_, n * (r + 1) / ranks_};
}

// Packs the owned assignments' rows by (owner, expert, token), agrees the
// per-expert counts (a blocking all-to-all) and posts the rows.
void MpiExpertExchange::StartDispatch(const float* x, const int32_t* ids, int64_t m, ExchangeBuffers& b) {
  const int64_t A = m * K_, N = ranks_, E = E_, d = d_;
  Grow(b.send_count, N * E), Grow(b.recv_count, N * E), Grow(b.cursor, E), Grow(b.slot, A);
  Grow(b.rank_send, N), Grow(b.rank_recv, N), Grow(b.send, A * d);
  std::fill(b.send_count.begin(), b.send_count.begin() + N * E, 0);
  for (int64_t a = 0; a < A; ++a) ++b.send_count[placement_.owner[ids[a]] * E + ids[a]];
  int64_t at = 0;
  for (int32_t e : order_) b.cursor[e] = at, at += b.send_count[placement_.owner[e] * E + e];
  for (int64_t a = 0; a < A; ++a) {
    b.slot[a] = static_cast<int32_t>(b.cursor[ids[a]]++);
    std::copy_n(x + (a / K_) * d, d, b.send.data() + b.slot[a] * d);
  }
  const double t0 = Now();
  comm_.AllToAll(b.send_count.data(), E, b.recv_count.data());
  int64_t received = 0;
  for (int64_t r = 0; r < N; ++r) {
    b.rank_send[r] = std::accumulate(b.send_count.begin() + r * E, b.send_count.begin() + (r + 1) * E, int64_t{0});
    b.rank_recv[r] = std::accumulate(b.recv_count.begin() + r * E, b.recv_count.begin() + (r + 1) * E, int64_t{0});
    received += b.rank_recv[r];
  }
  Grow(b.recv, received * d), Grow(b.group_row, received);
  b.m = m;
  b.handle = comm_.IAllToAllV(b.send.data(), b.rank_send.data(), b.recv.data(), b.rank_recv.data(), d * sizeof(float));
  stats_.seconds += Now() - t0;
}

// Waits for the rows, then groups them: expert e's rows are those of rank 0,
// then rank 1, ...
void MpiExpertExchange::FinishDispatch(float* rows, int32_t* offset, ExchangeBuffers& b) {
  const int64_t N = ranks_, E = E_, d = d_;
  const double t0 = Now();
  comm_.Wait(b.handle);
  stats_.seconds += Now() - t0;
  if (!b.second_half) ++stats_.layers;
  stats_.tokens += b.m;
  for (int64_t r = 0; r < N; ++r)
    if (r != comm_.rank()) stats_.rows_sent += b.rank_send[r], stats_.bytes_sent += b.rank_send[r] * d * 4;
  std::fill(offset, offset + E + 1, 0);
  for (int64_t r = 0; r < N; ++r)
    for (int32_t e : mine_) offset[e + 1] += static_cast<int32_t>(b.recv_count[r * E + e]);
  for (int64_t e = 0; e < E; ++e) offset[e + 1] += offset[e], b.cursor[e] = offset[e];
  int64_t q = 0;  // received row: ranks in order, each rank's rows by expert ascending
  for (int64_t r = 0; r < N; ++r)
    for (int32_t e : mine_)
      for (int64_t j = 0; j < b.recv_count[r * E + e]; ++j, ++q) {
        b.group_row[q] = static_cast<int32_t>(b.cursor[e]++);
        std::copy_n(b.recv.data() + q * d, d, rows + b.group_row[q] * d);
      }
}

void MpiExpertExchange::Dispatch(const float* x, const int32_t* ids, int64_t m, float* rows, int32_t* offset,
                                 ExchangeBuffers& b, const std::function<void()>& in_flight) {
  StartDispatch(x, ids, m, b);
  if (in_flight && overlap_) {
    const double t0 = Now();
    in_flight();
    stats_.overlap_seconds += Now() - t0;
  }
  FinishDispatch(rows, offset, b);
  if (in_flight && !overlap_) in_flight();
}

// Copies the outputs y [received rows, grouped] back into the received
// layout and posts them to the rows' owners.
void MpiExpertExchange::StartCombine(const float* y, ExchangeBuffers& b) {
  const int64_t N = ranks_, d = d_;
  const int64_t received = std::accumulate(b.rank_recv.begin(), b.rank_recv.begin() + N, int64_t{0});
  for (int64_t q = 0; q < received; ++q) std::copy_n(y + b.group_row[q] * d, d, b.recv.data() + q * d);
  Grow(b.back, b.m * K_ * d);
  const double t0 = Now();
  b.handle = comm_.IAllToAllV(b.recv.data(), b.rank_recv.data(), b.back.data(), b.rank_send.data(), d * sizeof(float));
  stats_.seconds += Now() - t0;
}

void MpiExpertExchange::FinishCombine(const float** out, ExchangeBuffers& b) {
  const double t0 = Now();
  comm_.Wait(b.handle);
  stats_.seconds += Now() - t0;
  for (int64_t r = 0; r < ranks_; ++r)
    if (r != comm_.rank()) stats_.rows_sent += b.rank_recv[r], stats_.bytes_sent += b.rank_recv[r] * d_ * 4;
  for (int64_t a = 0; a < b.m * K_; ++a) out[a] = b.back.data() + b.slot[a] * d_;
}

void MpiExpertExchange::Combine(const float* y, int64_t m, const float** out, ExchangeBuffers& b) {
  b.m = m;
  StartCombine(y, b);
  FinishCombine(out, b);
}

void MpiExpertExchange::GatherTokens(float* rows, int64_t n, ExchangeBuffers& b) {
  if (b.split == TokenSplit::kOwnBatch) return;
  Grow(b.rank_send, ranks_);
  for (int r = 0; r < ranks_; ++r) b.rank_send[r] = n * (r + 1) / ranks_ - n * r / ranks_;
  const double t0 = Now();
  comm_.AllGatherV(rows, b.rank_send.data(), d_ * sizeof(float));
  stats_.seconds += Now() - t0;
}

}  // namespace dsv3::dist
