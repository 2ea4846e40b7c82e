// Shared plumbing of the converters: opening an input checkpoint strictly
// (index and shards must agree exactly), staging an output directory so it
// appears under its final name only when complete, and copying the small
// non-weight files (tokenizer, generation config, code, docs) across.
// What --force may replace is decided here, on the output name itself (never
// through a symlink): a regular file, or a directory holding the marker file
// every dsv3 output directory gets; never a symlink, a device, a FIFO, a
// socket or a directory dsv3 did not write.
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

// The marker file inside every output directory convert writes (and inside
// its staging directory), so --force can tell its own outputs from others.
inline constexpr char kOutputMarker[] = ".dsv3-output";

// An output directory built as "<final>.dsv3-partial" and renamed onto
// <final> by Commit(); removed again if never committed, or by the signal
// handler (SignalCleanup) if the process is interrupted.
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
  int cleanup_slot_ = -1;
  bool force_ = false, committed_ = false;
};

// Refuses an existing output file unless `force` and it is a regular file.
Status CheckOutputFile(const std::string& path, bool force);

// Copies every entry of `in_dir` except weights (*.safetensors, the index),
// config.json and the output marker into `out_dir`; returns the number of
// files copied.
Expected<int64_t> CopyAuxiliaryFiles(const std::string& in_dir, const std::string& out_dir);

// Writes `text` to `path` through a temporary name.
Status WriteTextFile(const std::string& path, const std::string& text);

}  // namespace dsv3
