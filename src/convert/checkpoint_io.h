// Shared plumbing of the converters: opening an input checkpoint strictly
// (index and shards must agree exactly), staging an output directory so it
// appears under its final name only when complete, and copying the small
// non-weight files (tokenizer, generation config, code, docs) across.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "convert/convert.h"
#include "io/safetensors.h"

namespace dsv3 {

struct InputShard {
  std::string file_name;                  // base name, reused for the output shard
  const SafetensorsFile* file = nullptr;
  std::vector<const TensorInfo*> tensors;  // in data-offset order
};

struct InputCheckpoint {
  std::unique_ptr<TensorStore> store;
  std::vector<InputShard> shards;
  bool indexed = false;  // model.safetensors.index.json present
  std::string config_path, config_text;
  int64_t num_tensors = 0;
  uint64_t total_bytes = 0;
};

// Opens DIR: every tensor of every shard must be listed in the index (and
// vice versa, checked by TensorStore); config.json must exist.
Expected<InputCheckpoint> OpenInputCheckpoint(const std::string& dir);

// An output directory built as "<final>.dsv3-partial" and renamed onto
// <final> by Commit(); removed again if never committed.
class StagedDir {
 public:
  // Refuses an existing <final> unless `force`; refuses outputs that overlap
  // the input directory.
  static Expected<std::unique_ptr<StagedDir>> Create(const std::string& final_dir, const std::string& input_dir,
                                                     bool force);
  ~StagedDir();
  const std::string& path() const { return staging_; }
  Status Commit();

 private:
  StagedDir() = default;
  std::string final_, staging_;
  bool force_ = false, committed_ = false;
};

// Refuses an existing output file unless `force`.
Status CheckOutputFile(const std::string& path, bool force);

// Copies every entry of `in_dir` except weights (*.safetensors, the index)
// and config.json into `out_dir`; returns the number of files copied.
Expected<int64_t> CopyAuxiliaryFiles(const std::string& in_dir, const std::string& out_dir);

// Writes `text` to `path` through a temporary name.
Status WriteTextFile(const std::string& path, const std::string& text);

}  // namespace dsv3
