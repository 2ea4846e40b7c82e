// Progress bar; see progress.h.
#include "convert/progress.h"

#include <unistd.h>

#include <cstdio>

namespace dsv3 {

namespace {
std::string Duration(double s) {
  if (!(s >= 0) || s > 99 * 3600) return "--:--";
  const long t = static_cast<long>(s + 0.5);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
  return buf;
}
}  // namespace

Progress::Progress(std::string label, int64_t total_tensors, uint64_t total_bytes, bool enabled)
    : label_(std::move(label)), total_tensors_(total_tensors), total_bytes_(total_bytes), enabled_(enabled),
      tty_(::isatty(STDERR_FILENO) == 1), start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

void Progress::AddBytes(uint64_t n) {
  bytes_ += n;
  Draw(false);
}

void Progress::TensorDone() {
  ++tensors_;
  Draw(false);
}

void Progress::Finish() {
  Draw(true);
  if (enabled_ && tty_) std::fputc('\n', stderr);
}

void Progress::Draw(bool force) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  const double frac = total_bytes_ ? static_cast<double>(bytes_) / total_bytes_
                                   : (total_tensors_ ? static_cast<double>(tensors_) / total_tensors_ : 1.0);
  const int decile = static_cast<int>(frac * 10);
  if (!force) {
    if (tty_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    if (!tty_ && decile == last_decile_) return;
  }
  last_draw_ = now;
  last_decile_ = decile;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? bytes_ / elapsed : 0;
  const double eta = rate > 0 ? (total_bytes_ - bytes_) / rate : -1;
  char bar[21];
  const int filled = static_cast<int>(frac * 20);
  for (int i = 0; i < 20; ++i) bar[i] = i < filled ? '#' : '.';
  bar[20] = 0;
  std::fprintf(stderr, "%s%s [%s] %3.0f%%  %lld/%lld tensors  %.1f/%.1f MB  %.0f MB/s  ETA %s%s",
               tty_ ? "\r" : "", label_.c_str(), bar, frac * 100, (long long)tensors_, (long long)total_tensors_,
               bytes_ / 1e6, total_bytes_ / 1e6, rate / 1e6, Duration(eta).c_str(), tty_ ? "\x1b[K" : "\n");
  std::fflush(stderr);
}

}  // namespace dsv3
