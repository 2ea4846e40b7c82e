// Test tool: compares tensors of two safetensors files (e.g. `dsv3 logits`
// output against a golden file) with the golden bound
// max|diff| <= tol * max(1, max|ref|) per row of the last dimension, plus
// identical argmax. Usage: compare_logits OUT REF TENSOR [TOL]
#include <cmath>
#include <cstdio>
#include <string>

#include "io/safetensors.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: compare_logits OUT REF TENSOR [TOL]\n");
    return 2;
  }
  const double tol = argc > 4 ? std::stod(argv[4]) : 1e-3;
  auto out = dsv3::SafetensorsFile::Open(argv[1]);
  auto ref = dsv3::SafetensorsFile::Open(argv[2]);
  if (!out.ok() || !ref.ok()) {
    std::fprintf(stderr, "%s\n", (!out.ok() ? out.status() : ref.status()).message().c_str());
    return 1;
  }
  const dsv3::TensorInfo* a = (*out)->Find(argv[3]);
  const dsv3::TensorInfo* b = (*ref)->Find(argv[3]);
  if (!a || !b || a->shape != b->shape || a->dtype != dsv3::DType::kF32 || b->dtype != dsv3::DType::kF32) {
    std::fprintf(stderr, "tensor %s missing or shapes/dtypes differ\n", argv[3]);
    return 1;
  }
  const float* x = reinterpret_cast<const float*>(a->data);
  const float* y = reinterpret_cast<const float*>(b->data);
  const int64_t V = a->shape.back(), rows = a->numel() / V;
  double worst = 0;
  int64_t bad = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double max_ref = 0, max_diff = 0;
    int64_t ax = 0, ay = 0;
    for (int64_t v = 0; v < V; ++v) {
      max_ref = std::max(max_ref, std::fabs(double(y[r * V + v])));
      max_diff = std::max(max_diff, std::fabs(double(x[r * V + v]) - y[r * V + v]));
      if (x[r * V + v] > x[r * V + ax]) ax = v;
      if (y[r * V + v] > y[r * V + ay]) ay = v;
    }
    const double rel = max_diff / std::max(1.0, max_ref);
    worst = std::max(worst, rel);
    if (rel > tol || ax != ay) ++bad;
  }
  std::printf("%s: %lld rows, worst max|diff|/max(1,max|ref|) = %.3g (bound %.3g), %lld rows out of bound\n",
              argv[3], (long long)rows, worst, tol, (long long)bad);
  return bad ? 1 : 0;
}
