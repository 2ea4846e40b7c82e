// All-to-all timing and its latency/bandwidth fit; see comm_bench.h.
#include "dist/comm_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace dsv3::dist {

namespace {

// Seconds per all-to-all of `bytes` per pair: mean over enough calls to
// last about 20 ms, the slowest rank's, best of `reps`.
double TimeAllToAll(Comm& comm, int64_t bytes, int reps, std::vector<char>& send, std::vector<char>& recv) {
  const int N = comm.size();
  std::vector<int64_t> counts(N, bytes);
  counts[comm.rank()] = 0;  // nothing to oneself: only the transport is timed
  const int64_t calls = std::clamp<int64_t>((int64_t{1} << 22) / std::max<int64_t>(bytes, 1), 4, 2000);
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    comm.Barrier();
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < calls; ++i) comm.AllToAllV(send.data(), counts.data(), recv.data(), counts.data(), 1);
    const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, static_cast<double>(comm.AllReduceMax(ns)) * 1e-9 / static_cast<double>(calls));
  }
  return best;
}

}  // namespace

AllToAllFit MeasureAllToAll(Comm& comm, int64_t max_bytes, int reps) {
  AllToAllFit fit;
  std::vector<char> send(static_cast<size_t>(max_bytes) * comm.size(), 1), recv(send.size());
  for (int64_t b = 8; b <= max_bytes; b *= 8) fit.points.push_back({b, TimeAllToAll(comm, b, reps, send, recv)});
  // Minimise sum ((a + c B - t) / t)^2 over a, c: 2x2 normal equations with weights 1/t^2.
  double s00 = 0, s01 = 0, s11 = 0, r0 = 0, r1 = 0;
  for (const AllToAllPoint& p : fit.points) {
    const double w = 1.0 / (p.seconds * p.seconds), B = static_cast<double>(p.bytes);
    s00 += w, s01 += w * B, s11 += w * B * B, r0 += w * p.seconds, r1 += w * B * p.seconds;
  }
  const double det = s00 * s11 - s01 * s01;
  double a = (r0 * s11 - r1 * s01) / det, c = (s00 * r1 - s01 * r0) / det;
  if (!(a > 0 && c > 0)) {  // noise (a busy machine) bent the fit: the end points instead
    const AllToAllPoint& last = fit.points.back();
    a = std::min(fit.points[0].seconds, fit.points[1].seconds);
    c = last.seconds > a ? (last.seconds - a) / static_cast<double>(last.bytes) : last.seconds / static_cast<double>(last.bytes);
  }
  fit.latency_s = a;
  fit.bytes_per_s = 1.0 / c;
  for (const AllToAllPoint& p : fit.points)
    fit.max_rel_error = std::max(fit.max_rel_error, std::abs(a + c * static_cast<double>(p.bytes) - p.seconds) / p.seconds);
  return fit;
}

}  // namespace dsv3::dist
