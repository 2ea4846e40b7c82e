// Streaming safetensors writer. The header is computed from the tensor specs
// up front, then tensor bytes are appended in spec order, so a converter or a
// checkpoint saver never holds more than one tensor. Output goes to
// "<path>.tmp" and is renamed onto <path> only by a successful Finish(): an
// interrupted or failed write never leaves a half-written file under the
// final name.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "io/temp_file.h"

namespace dsv3 {

struct TensorSpec {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t nbytes() const;
};

class SafetensorsWriter {
 public:
  static Expected<std::unique_ptr<SafetensorsWriter>> Create(
      const std::string& path, const std::vector<TensorSpec>& specs,
      const std::map<std::string, std::string>& metadata = {});

  // Appends bytes of the current tensor(s); may be called in pieces.
  Status Write(const void* data, size_t n);
  // Writes n bytes at byte `offset` of the data section (0 = the first
  // tensor's first byte), for outputs produced out of order (dsv3 logits
  // fills [B, T, V] a chunk of positions of every sequence at a time).
  // Each byte must be written exactly once; do not mix with Write().
  Status WriteAt(uint64_t offset, const void* data, size_t n);
  // Verifies every byte was written, flushes, renames PATH.tmp to PATH; a
  // writer destroyed before that leaves nothing behind (TempFile).
  Status Finish();

 private:
  SafetensorsWriter() = default;
  std::unique_ptr<TempFile> file_;
  uint64_t header_bytes_ = 0, expected_bytes_ = 0, written_bytes_ = 0;
};

struct TensorToWrite {
  TensorSpec spec;
  const void* data = nullptr;  // spec.nbytes() bytes
};

// One-shot convenience over SafetensorsWriter.
Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                        const std::map<std::string, std::string>& metadata = {});

}  // namespace dsv3
