// Prometheus text-format metrics for GET /metrics: request counts by endpoint
// and status, token counters, queue depth and running sequences (from the
// scheduler), time to first token, inter-token latency and request duration
// histograms, recent generation throughput, KV-cache size and resident memory,
// and the connection gate's counters (open connections, heads that missed
// their deadline, evictions, refusals, request memory in flight).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "runtime/scheduler.h"

namespace dsv3::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}
  void Observe(double v);
  // Appends the _bucket/_sum/_count lines of metric `name`.
  void Render(const std::string& name, const std::string& help, std::string& out) const;

 private:
  mutable std::mutex mu_;
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative); last is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Updated by the connection gate and the HTTP transport, read by Render.
struct ConnectionCounters {
  std::atomic<int64_t> open{0};               // client connections open
  std::atomic<int64_t> request_memory{0};     // bytes charged to requests in flight
  std::atomic<int64_t> request_memory_limit{0};
  std::atomic<uint64_t> head_timeouts{0};     // closed for missing --header-timeout
  std::atomic<uint64_t> body_timeouts{0};     // answered 408 for missing --body-timeout
  std::atomic<uint64_t> evicted{0};           // closed to make room under a connection cap
  std::atomic<uint64_t> refused{0};           // new connections refused (503) at a cap
  std::atomic<uint64_t> busy{0};              // requests refused (503) by --max-request-memory
};

class Metrics {
 public:
  Metrics();
  void CountRequest(const std::string& endpoint, int status);
  void ObserveTimeToFirstToken(double s) { ttft_.Observe(s); }
  void ObserveInterTokenLatency(double s) { itl_.Observe(s); }
  void ObserveRequestDuration(double s) { duration_.Observe(s); }
  // Called about once a second: keeps a 10 s window of generated-token counts.
  void SampleThroughput(double now, int64_t generated_tokens);

  std::string Render(const SchedulerStats& s, const std::string& model_name) const;
  ConnectionCounters& connections() { return connections_; }

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::vector<std::pair<double, int64_t>> window_;  // (time, generated tokens so far)
  Histogram ttft_, itl_, duration_;
  ConnectionCounters connections_;
};

// Resident set size of this process in bytes (/proc/self/statm), 0 if unknown.
int64_t ResidentBytes();

}  // namespace dsv3::server
