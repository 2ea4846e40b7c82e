// Writes a random-weight checkpoint in Hugging Face layout (config.json,
// sharded model-0000i-of-0000N.safetensors and model.safetensors.index.json)
// for any valid Config: linear weights normal(0, std) in FP8 e4m3 with
// 128x128 block scales (as the release stores them) or BF16; embedding, head
// and router normal in BF16; norms ones; router bias zeros (F32). Tensors are
// generated a row block at a time and streamed to disk, so memory stays
// bounded by one 128-row block whatever the model size. Values depend only on
// (seed, tensor name, row), never on the thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/status.h"
#include "model/config.h"

namespace dsv3 {

struct InitOptions {
  bool fp8 = true;          // linear weights in FP8 e4m3 + block scales; false: BF16
  uint64_t seed = 0;
  double std = 0.006;       // normal init std (the paper's value)
  uint64_t max_shard_bytes = 2ull << 30;
  // Called as bytes are written (done, total); may be empty.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

// Writes the checkpoint into `out_dir` (created if missing). `config_json` is
// the config.json text to start from; quantization_config and torch_dtype are
// set to match `options`. The error names the file or field at fault.
Status WriteRandomCheckpoint(const std::string& config_json, const std::string& out_dir, const InitOptions& options);

// The deterministic normal stream used for tensor `name`, row `row`: fills
// out [n] with normal(0, std) values (exposed for tests).
void RandomNormalRow(uint64_t seed, const std::string& name, int64_t row, double std, float* out, int64_t n);

}  // namespace dsv3
