// Token data for training. A data directory (written by `dsv3 prepare-data`,
// or by tests) holds data.json and shards of little-endian uint32 token ids,
// split into train and validation (whole documents on each side, documents
// separated by the tokenizer's end-of-sequence id). The loader maps the
// shards, checks every id against the model's vocabulary, and draws
// fixed-length windows: training windows at positions that depend only on
// (seed, step, micro-batch, row), so a resumed run sees exactly the windows
// the uninterrupted run would have; validation windows at fixed, evenly
// spread positions.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "core/status.h"

namespace dsv3::train {

inline constexpr const char* kDataFormat = "dsv3-tokens-v1";

struct DataSplit {
  struct Shard {
    std::string path;
    std::unique_ptr<MappedFile> file;
    const uint32_t* tokens = nullptr;
    int64_t size = 0;  // tokens
  };
  std::vector<Shard> shards;
  int64_t tokens = 0, documents = 0;
};

// What data.json records.
struct DataInfo {
  int64_t vocab_size = 0;
  int64_t eos_token_id = -1;
  std::string tokenizer;  // the tokenizer directory (checkpoints copy its files), or a description
};

class TokenData {
 public:
  // Opens DIR/data.json and its shards; every id must be < model_vocab and
  // data.json's vocab_size must not exceed it. Errors name the file.
  static Expected<std::unique_ptr<TokenData>> Open(const std::string& dir, int64_t model_vocab);

  const DataInfo& info() const { return info_; }
  const DataSplit& train() const { return train_; }
  const DataSplit& validation() const { return val_; }

  // Checks both splits can supply windows of `window` tokens.
  Status CheckWindow(int64_t window) const;
  // Row r of micro-batch a of step s: `window` tokens into out.
  void TrainWindow(uint64_t seed, int64_t step, int64_t micro, int64_t row, int64_t window, int32_t* out) const;
  // Validation window i of `count`, evenly spread over the split.
  void ValidationWindow(int64_t i, int64_t count, int64_t window, int32_t* out) const;

 private:
  std::string dir_;
  DataInfo info_;
  DataSplit train_, val_;
};

// Writes a data directory from token ids (used by prepare-data and tests):
// documents are concatenated with `eos` between them (when eos >= 0); shards
// hold at most shard_tokens ids. Files are written under temporary names and
// renamed, data.json last.
struct DataWriterSplit {
  std::vector<std::vector<uint32_t>> documents;
};
Status WriteTokenData(const std::string& dir, const DataInfo& info, const DataWriterSplit& train,
                      const DataWriterSplit& validation, int64_t shard_tokens = int64_t{1} << 26);

}  // namespace dsv3::train
