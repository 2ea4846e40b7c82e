// Metric storage and the Prometheus text exposition; see metrics.h.
#include "server/metrics.h"

#include <unistd.h>

#include <cstdio>

namespace dsv3::server {

namespace {
std::string Num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}
std::string Escape(const std::string& s) {  // label values: backslash, quote, newline
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"') out += '\\', out += c;
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}
void Scalar(std::string& out, const std::string& name, const char* type, const std::string& help, double v) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " " + Num(v) + "\n";
}
// MTP speculative decoding: drafts proposed and accepted overall and per
// draft position (1-based), and tokens per verification round.
void RenderSpec(const SchedulerStats& s, std::string& out) {
  Scalar(out, "dsv3_spec_draft_tokens", "gauge", "MTP draft tokens per sequence and step (0: speculation off).",
         static_cast<double>(s.draft_tokens));
  if (s.draft_tokens == 0) return;
  const SpecStats& p = s.spec;
  Scalar(out, "dsv3_spec_rounds_total", "counter", "Speculative verification rounds (one per sequence per step).",
         p.rounds);
  Scalar(out, "dsv3_spec_drafted_tokens_total", "counter", "Draft tokens proposed by the MTP layer.", p.drafted);
  Scalar(out, "dsv3_spec_accepted_tokens_total", "counter", "Draft tokens the main model accepted.", p.accepted);
  Scalar(out, "dsv3_spec_emitted_tokens_total", "counter", "Tokens emitted by speculative rounds.", p.emitted);
  Scalar(out, "dsv3_spec_acceptance_ratio", "gauge", "Accepted / proposed draft tokens so far.", p.acceptance());
  Scalar(out, "dsv3_spec_tokens_per_round", "gauge", "Tokens emitted per verification round so far.",
         p.tokens_per_forward());
  out += "# HELP dsv3_spec_position_drafted_total Draft tokens proposed at each draft position.\n"
         "# TYPE dsv3_spec_position_drafted_total counter\n";
  for (size_t j = 0; j < p.proposed_at.size(); ++j)
    out += "dsv3_spec_position_drafted_total{position=\"" + std::to_string(j + 1) + "\"} " +
           std::to_string(p.proposed_at[j]) + "\n";
  out += "# HELP dsv3_spec_position_accepted_total Draft tokens accepted at each draft position.\n"
         "# TYPE dsv3_spec_position_accepted_total counter\n";
  for (size_t j = 0; j < p.accepted_at.size(); ++j)
    out += "dsv3_spec_position_accepted_total{position=\"" + std::to_string(j + 1) + "\"} " +
           std::to_string(p.accepted_at[j]) + "\n";
}
void RenderConnections(const ConnectionCounters& c, std::string& out) {
  Scalar(out, "dsv3_http_connections", "gauge", "Client connections open.", static_cast<double>(c.open.load()));
  Scalar(out, "dsv3_http_request_memory_bytes", "gauge", "Bytes charged to requests in flight (--max-request-memory).",
         static_cast<double>(c.request_memory.load()));
  Scalar(out, "dsv3_http_request_memory_limit_bytes", "gauge", "--max-request-memory.",
         static_cast<double>(c.request_memory_limit.load()));
  out += "# HELP dsv3_http_connections_closed_total Connections the server closed or refused to protect itself.\n"
         "# TYPE dsv3_http_connections_closed_total counter\n";
  const std::pair<const char*, uint64_t> reasons[] = {
      {"header_timeout", c.head_timeouts.load()}, {"body_timeout", c.body_timeouts.load()},
      {"evicted", c.evicted.load()}, {"refused", c.refused.load()}};
  for (const auto& [reason, n] : reasons)
    out += "dsv3_http_connections_closed_total{reason=\"" + std::string(reason) + "\"} " + std::to_string(n) + "\n";
  Scalar(out, "dsv3_http_requests_over_memory_total", "counter", "Requests refused (503) by --max-request-memory.",
         static_cast<double>(c.busy.load()));
}
}  // namespace

void Histogram::Observe(double v) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += v;
  ++count_;
}

void Histogram::Render(const std::string& name, const std::string& help, std::string& out) const {
  std::lock_guard<std::mutex> lock(mu_);
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  uint64_t cum = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cum += counts_[i];
    const std::string le = i < bounds_.size() ? Num(bounds_[i]) : "+Inf";
    out += name + "_bucket{le=\"" + le + "\"} " + std::to_string(cum) + "\n";
  }
  out += name + "_sum " + Num(sum_) + "\n" + name + "_count " + std::to_string(count_) + "\n";
}

Metrics::Metrics()
    : ttft_({0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}),
      itl_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}),
      duration_({0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}) {}

void Metrics::CountRequest(const std::string& endpoint, int status) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{endpoint, status}];
}

void Metrics::SampleThroughput(double now, int64_t generated_tokens) {
  std::lock_guard<std::mutex> lock(mu_);
  window_.emplace_back(now, generated_tokens);
  while (window_.size() > 2 && now - window_.front().first > 10.0) window_.erase(window_.begin());
}

std::string Metrics::Render(const SchedulerStats& s, const std::string& model_name) const {
  std::string out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    out += "# HELP dsv3_requests_total HTTP requests by endpoint and status code.\n# TYPE dsv3_requests_total counter\n";
    for (const auto& [key, n] : requests_)
      out += "dsv3_requests_total{endpoint=\"" + Escape(key.first) + "\",code=\"" + std::to_string(key.second) +
             "\"} " + std::to_string(n) + "\n";
    double rate = 0;
    if (window_.size() >= 2 && window_.back().first > window_.front().first)
      rate = (window_.back().second - window_.front().second) / (window_.back().first - window_.front().first);
    Scalar(out, "dsv3_generation_tokens_per_second", "gauge", "Generated tokens per second over the last 10 s.", rate);
  }
  out += "# HELP dsv3_model_info The served model.\n# TYPE dsv3_model_info gauge\ndsv3_model_info{model=\"" +
         Escape(model_name) + "\"} 1\n";
  Scalar(out, "dsv3_prompt_tokens_total", "counter", "Prompt tokens admitted.", s.prompt_tokens);
  // A request's n choices count their prompt n times; all but one copy the
  // first one's rows (SubmitGroup), so they show as cached, not computed.
  Scalar(out, "dsv3_prompt_tokens_cached_total", "counter",
         "Prompt tokens whose cache rows were reused (prefix cache, or another choice of the same request).",
         s.cached_prompt_tokens);
  Scalar(out, "dsv3_prompt_tokens_computed_total", "counter", "Prompt tokens run through the model (prefilled).",
         s.prompt_tokens - s.cached_prompt_tokens);
  Scalar(out, "dsv3_generation_tokens_total", "counter", "Tokens generated.", s.generated_tokens);
  Scalar(out, "dsv3_requests_waiting", "gauge", "Requests queued for a sequence slot (queue depth).", s.waiting);
  Scalar(out, "dsv3_requests_running", "gauge", "Sequences being prefilled or decoded.", s.running);
  Scalar(out, "dsv3_sequence_slots", "gauge", "Latent-cache slots (max concurrent sequences).", s.slots);
  Scalar(out, "dsv3_context_tokens", "gauge", "Tokens per sequence slot.", s.context);
  Scalar(out, "dsv3_kv_cache_bytes", "gauge", "Bytes of latent KV cache allocated.", static_cast<double>(s.kv_cache_bytes));
  Scalar(out, "dsv3_forward_passes_total", "counter", "Batched forward passes run.", s.forward_passes);
  Scalar(out, "dsv3_batch_tokens_total", "counter", "Tokens over all forward passes.", s.batch_tokens);
  Scalar(out, "dsv3_busy_seconds_total", "counter", "Seconds spent in forward passes and sampling.", s.busy_seconds);
  RenderSpec(s, out);
  RenderConnections(connections_, out);
  ttft_.Render("dsv3_time_to_first_token_seconds", "Time from request arrival to its first generated token.", out);
  itl_.Render("dsv3_inter_token_latency_seconds", "Time between consecutive tokens of one sequence.", out);
  duration_.Render("dsv3_request_duration_seconds", "Time from request arrival to its last token.", out);
  Scalar(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
         static_cast<double>(ResidentBytes()));
  return out;
}

int64_t ResidentBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%lld %lld", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * sysconf(_SC_PAGESIZE) : 0;
}

}  // namespace dsv3::server
