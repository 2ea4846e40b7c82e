// A progress bar on stderr for long conversions: tensors done, bytes done,
// throughput and ETA. On a terminal it redraws one line at most ten times a
// second; otherwise (logs, CI) it prints a line every 10% so output stays short.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace dsv3 {

class Progress {
 public:
  Progress(std::string label, int64_t total_tensors, uint64_t total_bytes, bool enabled);
  void AddBytes(uint64_t n);
  void TensorDone();
  void Finish();  // final redraw and newline

 private:
  void Draw(bool force);
  std::string label_;
  int64_t total_tensors_, tensors_ = 0;
  uint64_t total_bytes_, bytes_ = 0;
  bool enabled_, tty_;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace dsv3
