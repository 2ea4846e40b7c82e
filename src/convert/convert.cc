// Convert(): option checks, dispatch, timing and the summary; see convert.h.
#include "convert/convert.h"

#include <sys/resource.h>

#include <chrono>
#include <cstdio>

#include "convert/internal.h"
#include "io/gguf.h"  // GGUF quants (issue 16)

namespace dsv3 {

int64_t PeakRssKb() {
  struct rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;  // KiB on Linux
}

Expected<ConvertSummary> Convert(const ConvertOptions& o) {
  if (o.buffer_bytes < (1 << 16)) return Status::Error("--buffer-mb: the conversion buffer must be at least 64 KiB");
  if (o.target == ConvertTarget::kGguf && o.gguf_type != DType::kF32 && o.gguf_type != DType::kF16 &&
      o.gguf_type != DType::kBF16 && !IsBlockType(o.gguf_type))  // GGUF quants (issue 16)
    return Status::Error(std::string("--type: GGUF output type must be ") + kGgufWeightTypeNames);
  const auto start = std::chrono::steady_clock::now();
  ConvertSummary s;
  DSV3_RETURN_IF_ERROR(o.target == ConvertTarget::kGguf ? ConvertToGguf(o, s) : ConvertSafetensors(o, s));
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  s.peak_rss_kb = PeakRssKb();
  return s;
}

std::string FormatSummary(const ConvertOptions& o, const ConvertSummary& s) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "converted %s -> %s: %lld tensors in, %lld out (%lld converted, %lld copied, %lld dropped), "
                "%lld other files copied; %.1f MB read, %.1f MB written in %.2f s (%.0f MB/s); peak RSS %.1f MB",
                o.input.c_str(), o.output.c_str(), (long long)s.tensors_in, (long long)s.tensors_out,
                (long long)s.converted, (long long)s.copied, (long long)s.dropped, (long long)s.files_copied,
                s.bytes_in / 1e6, s.bytes_out / 1e6, s.seconds, s.seconds > 0 ? s.bytes_out / 1e6 / s.seconds : 0.0,
                s.peak_rss_kb / 1024.0);
  std::string out = buf;
  for (const auto& w : s.warnings) out += "\nwarning: " + w;
  return out;
}

}  // namespace dsv3
