// Safetensors reading: one memory-mapped file or a sharded checkpoint
// directory (model.safetensors.index.json). Every header is validated before
// any tensor is handed out: header length within the file and under a size
// limit, JSON well-formed, known dtypes, shapes whose byte size matches the
// offsets, offsets in bounds and non-overlapping. Tensor bytes are never
// copied: a TensorInfo points into the mapping.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "core/status.h"

namespace dsv3 {

// The largest JSON header accepted (the reference library uses the same).
inline constexpr uint64_t kMaxSafetensorsHeader = 100ull << 20;

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // into the mapped file
  uint64_t nbytes = 0;
  std::string file;  // the file it lives in, for error messages

  int64_t numel() const;
  std::string ShapeString() const;  // "[2, 3]"
};

class SafetensorsFile {
 public:
  static Expected<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  // Validates an in-memory image (used by Open and by the fuzzer); `data`
  // must outlive the result.
  static Expected<std::vector<TensorInfo>> ParseImage(const uint8_t* data, size_t size,
                                                      const std::string& label,
                                                      std::map<std::string, std::string>* metadata);

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorInfo* Find(const std::string& name) const;
  const std::string& path() const { return file_->path(); }

 private:
  std::unique_ptr<MappedFile> file_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, size_t> index_;
};

// model.safetensors.index.json's weight_map: tensor name -> shard file name
// (a plain name inside the checkpoint directory). Errors name `label`.
Expected<std::map<std::string, std::string>> ParseSafetensorsIndex(std::string_view text, const std::string& label);

// All tensors of a checkpoint directory (or of one .safetensors file).
class TensorStore {
 public:
  // `path` is a directory holding model.safetensors.index.json or
  // model.safetensors, or a single .safetensors file.
  static Expected<std::unique_ptr<TensorStore>> Open(const std::string& path);

  const TensorInfo* Find(const std::string& name) const;
  std::vector<std::string> Names() const;
  const std::string& path() const { return path_; }
  size_t num_files() const { return files_.size(); }
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }

 private:
  // Registers the file's tensors (only those in `only` when given).
  Status AddFile(std::unique_ptr<SafetensorsFile> file, const std::set<std::string>* only);
  std::string path_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorInfo*> by_name_;
};

}  // namespace dsv3
