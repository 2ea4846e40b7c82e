// Writes a random-weight BF16 checkpoint for a config.json, for the server's
// load test on a model bigger than the golden ones (dev tool; `dsv3 init` from
// the performance work replaces it once that is on main). Weights are
// N(0, std) from a seeded generator, norms are 1, router biases 0.
//   random_model CONFIG.json OUT_DIR [std]
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "io/safetensors_writer.h"
#include "model/config.h"
#include "model/weights.h"
#include "runtime/sampler.h"

int main(int argc, char** argv) {
  using namespace dsv3;
  if (argc < 3) {
    std::fprintf(stderr, "usage: random_model CONFIG.json OUT_DIR [std]\n");
    return 2;
  }
  const double stddev = argc > 3 ? std::atof(argv[3]) : 0.02;
  auto text = ReadTextFile(argv[1]);
  if (!text.ok()) return std::fprintf(stderr, "error: %s\n", text.status().message().c_str()), 1;
  auto config = ParseConfig(*text, argv[1]);
  if (!config.ok()) return std::fprintf(stderr, "error: %s\n", config.status().message().c_str()), 1;
  const std::filesystem::path out(argv[2]);
  std::filesystem::create_directories(out);
  std::filesystem::copy_file(argv[1], out / "config.json", std::filesystem::copy_options::overwrite_existing);
  std::vector<TensorSpec> specs;
  std::vector<TensorDesc> tensors;
  for (const TensorDesc& t : ListTensors(*config)) {
    if (t.optional) continue;  // MTP copies of embed/head may be absent
    const bool f32 = t.role == TensorRole::kRouterBias;
    specs.push_back({t.name, f32 ? DType::kF32 : DType::kBF16, t.shape});
    tensors.push_back(t);
  }
  auto writer = SafetensorsWriter::Create((out / "model.safetensors").string(), specs);
  if (!writer.ok()) return std::fprintf(stderr, "error: %s\n", writer.status().message().c_str()), 1;
  Rng rng(1234);
  std::vector<uint16_t> row;
  uint64_t params = 0;
  for (const TensorDesc& t : tensors) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    params += n;
    if (t.role == TensorRole::kRouterBias) {
      std::vector<float> zeros(n, 0.0f);
      if (!(*writer)->Write(zeros.data(), n * sizeof(float)).ok()) return 1;
      continue;
    }
    row.resize(n);
    for (int64_t i = 0; i < n; ++i) {
      float v = 1.0f;
      if (t.role != TensorRole::kNorm) {  // Box-Muller
        const double u1 = std::max(rng.Uniform(), 1e-300), u2 = rng.Uniform();
        v = static_cast<float>(stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
      }
      row[i] = F32ToBf16(v);
    }
    if (!(*writer)->Write(row.data(), n * sizeof(uint16_t)).ok()) return 1;
  }
  if (Status st = (*writer)->Finish(); !st.ok()) return std::fprintf(stderr, "error: %s\n", st.message().c_str()), 1;
  std::printf("wrote %s: %.1f M parameters\n", out.c_str(), params / 1e6);
  return 0;
}
