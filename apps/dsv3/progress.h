// A one-line progress bar on stderr for long jobs (writing checkpoints,
// benchmarks): redrawn in place only when the shown percentage changes, so
// calling it often costs nothing; finished with a newline by Done().
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace dsv3::cli {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label) : label_(std::move(label)), start_(std::chrono::steady_clock::now()) {}

  void Update(uint64_t done, uint64_t total) {
    const int pct = total ? static_cast<int>(done * 100 / total) : 100;
    if (pct == last_pct_) return;
    last_pct_ = pct;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    char bar[31];
    for (int i = 0; i < 30; ++i) bar[i] = i < pct * 30 / 100 ? '=' : ' ';
    bar[30] = 0;
    std::fprintf(stderr, "\r%s [%s] %3d%% %.2f/%.2f GB %.0f s", label_.c_str(), bar, pct, done / 1e9, total / 1e9,
                 secs);
    std::fflush(stderr);
  }
  void Done() {
    if (last_pct_ >= 0) std::fprintf(stderr, "\n");
  }

 private:
  std::string label_;
  std::chrono::steady_clock::time_point start_;
  int last_pct_ = -1;
};

}  // namespace dsv3::cli
