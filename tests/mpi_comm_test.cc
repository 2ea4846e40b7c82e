// Checks the process group's collectives and the MPI expert exchange
// against what one process computes, on every rank of an mpirun job (or as
// one rank without mpirun). Exits 1 with the failed check on any rank.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "dist/comm.h"
#include "dist/expert_exchange.h"

namespace {

using dsv3::dist::Comm;

int failures = 0;
void Check(bool ok, const std::string& what, const Comm& c) {
  if (ok) return;
  std::fprintf(stderr, "rank %d: FAILED %s\n", c.rank(), what.c_str());
  ++failures;
}

void TestAllToAllV(Comm& c) {
  const int N = c.size(), r = c.rank();
  std::vector<int64_t> send_n(N), recv_n(N);
  std::vector<int32_t> send;
  for (int q = 0; q < N; ++q) {  // rank r sends r + q + 1 values to rank q
    send_n[q] = r + q + 1, recv_n[q] = q + r + 1;
    for (int i = 0; i < r + q + 1; ++i) send.push_back(r * 1000 + q * 10 + i);
  }
  std::vector<int32_t> recv(2 * N * N);
  c.AllToAllV(send.data(), send_n.data(), recv.data(), recv_n.data(), sizeof(int32_t));
  size_t at = 0;
  for (int q = 0; q < N; ++q)
    for (int i = 0; i < q + r + 1; ++i, ++at) Check(recv[at] == q * 1000 + r * 10 + i, "AllToAllV value", c);
}

void TestAllGatherAndReduce(Comm& c) {
  const int N = c.size(), r = c.rank();
  std::vector<int64_t> counts(N);
  std::vector<float> rows;
  for (int q = 0; q < N; ++q) {
    counts[q] = q + 1;
    for (int i = 0; i <= q; ++i) rows.push_back(q == r ? static_cast<float>(q) : -1.0f);
  }
  c.AllGatherV(rows.data(), counts.data(), sizeof(float));
  size_t at = 0;
  for (int q = 0; q < N; ++q)
    for (int i = 0; i <= q; ++i) Check(rows[at++] == static_cast<float>(q), "AllGatherV row", c);
  // Sum of values that round differently in different orders: must be the rank-order sum, bit for bit.
  const int64_t n = 1003;
  auto value = [](int rank, int64_t i) { return 1.0f / static_cast<float>(3 + 7 * rank + i % 11) * (i % 2 ? 1e4f : 1e-3f); };
  std::vector<float> data(n);
  for (int64_t i = 0; i < n; ++i) data[i] = value(r, i);
  c.AllReduceSum(data.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    float s = value(0, i);
    for (int q = 1; q < N; ++q) s += value(q, i);
    Check(data[i] == s, "AllReduceSum element " + std::to_string(i) + " is not the rank-order sum", c);
  }
}

// Several non-blocking exchanges in flight at once, waited on out of order,
// with Progress between: each delivers what AllToAllV would (issue 15).
void TestNonBlocking(Comm& c) {
  const int N = c.size(), r = c.rank();
  constexpr int kExchanges = 3;
  std::vector<std::vector<float>> send(kExchanges), recv(kExchanges);
  std::vector<int64_t> send_n(N), recv_n(N);
  std::vector<int> handles;
  for (int x = 0; x < kExchanges; ++x) {
    for (int q = 0; q < N; ++q) {  // exchange x: rank r sends x + q + r values to q
      send_n[q] = x + q + r, recv_n[q] = x + r + q;
      for (int i = 0; i < x + q + r; ++i) send[x].push_back(static_cast<float>(x * 10000 + r * 100 + q * 10 + i));
    }
    recv[x].assign(send[x].size() + 4 * N, -1.0f);
    handles.push_back(c.IAllToAllV(send[x].data(), send_n.data(), recv[x].data(), recv_n.data(), sizeof(float)));
    c.Progress();
  }
  for (int x = kExchanges - 1; x >= 0; --x) {
    c.Wait(handles[x]);
    size_t at = 0;
    for (int q = 0; q < N; ++q)
      for (int i = 0; i < x + r + q; ++i, ++at)
        Check(recv[x][at] == static_cast<float>(x * 10000 + q * 100 + r * 10 + i), "IAllToAllV value", c);
  }
}

// GatherV to rank 0 and the exact integer all-reduce.
void TestGatherAndIntegerSum(Comm& c) {
  const int N = c.size(), r = c.rank();
  std::vector<int64_t> counts(N);
  int64_t total = 0;
  for (int q = 0; q < N; ++q) counts[q] = 2 * q + 1, total += counts[q];
  std::vector<double> mine(counts[r], r + 0.5), all(r == 0 ? total : 0);
  if (r == 0) std::copy(mine.begin(), mine.end(), all.begin());
  c.GatherV(mine.data(), all.data(), counts.data(), sizeof(double), 0);
  if (r == 0)
    for (int q = 0, at = 0; q < N; ++q)
      for (int i = 0; i < counts[q]; ++i) Check(all[at++] == q + 0.5, "GatherV row", c);
  std::vector<int64_t> v = {r + 1, int64_t{1} << 40, -r};
  c.AllReduceSum(v.data(), 3);
  Check(v[0] == int64_t{N} * (N + 1) / 2 && v[1] == N * (int64_t{1} << 40) && v[2] == -int64_t{N} * (N - 1) / 2,
        "AllReduceSum of integers", c);
}

void TestAgree(Comm& c) {
  Check(c.Agree(dsv3::Status::Ok()).ok(), "Agree on success", c);
  const int bad = c.size() - 1;
  const dsv3::Status st = c.Agree(c.rank() == bad ? dsv3::Status::Error("boom") : dsv3::Status::Ok());
  const std::string want = c.size() > 1 ? "rank " + std::to_string(bad) + ": boom" : "boom";
  Check(!st.ok() && st.message() == want, "Agree message '" + st.message() + "'", c);
}

// Every rank knows the whole batch; the exchange must hand each rank's
// experts the rows a single process would group, and bring back outputs.
void TestExchange(Comm& c, int64_t n) {
  const int64_t E = 12, K = 3, d = 5;
  auto placement = dsv3::dist::ContiguousPlacement(E, c.size());
  if (!placement.ok()) return Check(false, placement.status().message(), c);
  dsv3::dist::MpiExpertExchange ex(c, *placement, K, d);
  std::vector<float> x(n * d);
  std::vector<int32_t> ids(n * K);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < d; ++j) x[t * d + j] = static_cast<float>(t * 100 + j);
    for (int64_t k = 0; k < K; ++k) ids[t * K + k] = static_cast<int32_t>((t * 5 + k * 4 + t / 3) % E);
  }
  const auto own = ex.OwnedTokens(n, dsv3::dist::TokenSplit::kSharedBatch);
  std::vector<float> rows(n * K * d, -1.0f), y(n * K * d);
  std::vector<int32_t> offset(E + 1);
  dsv3::dist::ExchangeBuffers b;
  ex.Dispatch(x.data() + own.begin * d, ids.data() + own.begin * K, own.size(), rows.data(), offset.data(), b);
  for (int64_t e = 0, g = 0; e < E; ++e) {  // expected: tokens choosing e, in batch order, if e is here
    if (placement->owner[e] != c.rank()) {
      Check(offset[e + 1] == offset[e], "rows for a foreign expert", c);
      continue;
    }
    for (int64_t t = 0; t < n; ++t)
      for (int64_t k = 0; k < K; ++k)
        if (ids[t * K + k] == e) {
          Check(g < offset[e + 1] && rows[g * d] == x[t * d], "expert " + std::to_string(e) + " row order", c);
          for (int64_t j = 0; j < d; ++j) y[g * d + j] = rows[g * d + j] + static_cast<float>(e) * 0.5f;
          ++g;
        }
  }
  std::vector<const float*> out(own.size() * K);
  ex.Combine(y.data(), own.size(), out.data(), b);
  for (int64_t a = 0; a < own.size() * K; ++a) {
    const int64_t t = own.begin + a / K;
    Check(out[a][1] == x[t * d + 1] + ids[t * K + a % K] * 0.5f, "combined output of an assignment", c);
  }
  std::vector<float> proj(n * d, 0.0f);
  for (int64_t t = own.begin; t < own.end; ++t) proj[t * d] = static_cast<float>(t);
  ex.GatherTokens(proj.data(), n, b);
  for (int64_t t = 0; t < n; ++t) Check(proj[t * d] == static_cast<float>(t), "gathered token row", c);
}

}  // namespace

int main(int argc, char** argv) {
  auto comm = Comm::Init(&argc, &argv);
  if (!comm.ok()) {
    std::fprintf(stderr, "%s\n", comm.status().message().c_str());
    return 1;
  }
  Comm& c = **comm;
  TestAllToAllV(c);
  TestAllGatherAndReduce(c);
  TestNonBlocking(c);
  TestGatherAndIntegerSum(c);
  TestAgree(c);
  for (int64_t n : {1, 2, 7, 40}) TestExchange(c, n);
  if (failures == 0 && c.rank() == 0) std::printf("ok: %d ranks\n", c.size());
  return failures == 0 ? 0 : 1;
}
