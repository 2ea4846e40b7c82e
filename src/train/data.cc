// Token shards: reading, validation, window sampling, writing; see data.h.
#include "train/data.h"

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/json_depth.h"
#include "core/json_fields.h"
#include "train/rng.h"

namespace dsv3::train {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

Status OpenShard(const std::string& path, int64_t model_vocab, DataSplit::Shard& s) {
  std::error_code ec;
  const auto bytes = fs::file_size(path, ec);
  if (ec) return Status::Error(path + ": cannot read token shard (" + ec.message() + ")");
  if (bytes == 0) return Status::Error(path + ": token shard is empty");
  if (bytes % 4 != 0) return Status::Error(path + ": size " + std::to_string(bytes) + " is not a multiple of 4 (uint32 ids)");
  DSV3_ASSIGN_OR_RETURN(s.file, MappedFile::Open(path));
  s.path = path;
  s.tokens = reinterpret_cast<const uint32_t*>(s.file->data());
  s.size = static_cast<int64_t>(bytes / 4);
  for (int64_t i = 0; i < s.size; ++i)
    if (s.tokens[i] >= static_cast<uint64_t>(model_vocab))
      return Status::Error(path + ": token " + std::to_string(i) + " has id " + std::to_string(s.tokens[i]) +
                           ", outside the model's vocabulary of " + std::to_string(model_vocab));
  return Status::Ok();
}

Status OpenSplit(const std::string& dir, const json& j, const char* name, int64_t model_vocab, DataSplit& split) {
  const std::string where = dir + "/data.json: '" + name + "'";
  if (!j.contains(name) || !j[name].is_object()) return Status::Error(where + " is missing");
  const json& s = j[name];
  if (!s.contains("shards") || !s["shards"].is_array()) return Status::Error(where + " has no 'shards' list");
  for (const json& f : s["shards"]) {
    if (!f.is_string()) return Status::Error(where + ": shard names must be strings");
    DataSplit::Shard shard;
    DSV3_RETURN_IF_ERROR(OpenShard(dir + "/" + f.get<std::string>(), model_vocab, shard));
    split.tokens += shard.size;
    split.shards.push_back(std::move(shard));
  }
  split.documents = IntField(s, "documents", 0);
  if (split.tokens == 0) return Status::Error(where + " split is empty (no tokens)");
  return Status::Ok();
}

// The shard and offset of global window start `index` among the window
// starts of all shards long enough (shard sizes minus window - 1).
void Locate(const DataSplit& split, int64_t window, int64_t index, const uint32_t** start) {
  for (const DataSplit::Shard& s : split.shards) {
    const int64_t starts = s.size - window + 1;
    if (starts <= 0) continue;
    if (index < starts) {
      *start = s.tokens + index;
      return;
    }
    index -= starts;
  }
  *start = nullptr;
}

int64_t WindowStarts(const DataSplit& split, int64_t window) {
  int64_t total = 0;
  for (const DataSplit::Shard& s : split.shards) total += std::max<int64_t>(0, s.size - window + 1);
  return total;
}

void CopyWindow(const uint32_t* src, int64_t window, int32_t* out) {
  for (int64_t i = 0; i < window; ++i) out[i] = static_cast<int32_t>(src[i]);
}

}  // namespace

Expected<std::unique_ptr<TokenData>> TokenData::Open(const std::string& dir, int64_t model_vocab) {
  const std::string meta = dir + "/data.json";
  if (!fs::exists(dir)) return Status::Error(dir + ": data directory does not exist");
  if (!fs::exists(meta)) return Status::Error(dir + ": no data.json (not a directory written by dsv3 prepare-data)");
  DSV3_ASSIGN_OR_RETURN(std::string text, ReadTextFile(meta));
  DSV3_RETURN_IF_ERROR(CheckJsonDepth(text, meta));
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Error(meta + ": not a JSON object");
  if (StringField(j, "format") != kDataFormat)
    return Status::Error(meta + ": field 'format' must be \"" + std::string(kDataFormat) + "\"");
  if (StringField(j, "dtype") != "uint32") return Status::Error(meta + ": field 'dtype' must be \"uint32\"");
  auto data = std::unique_ptr<TokenData>(new TokenData());
  data->dir_ = dir;
  if (!j.contains("vocab_size") || !j["vocab_size"].is_number_integer() || j["vocab_size"].get<int64_t>() <= 0)
    return Status::Error(meta + ": field 'vocab_size' must be a positive integer");
  data->info_.vocab_size = j["vocab_size"].get<int64_t>();
  data->info_.eos_token_id = IntField(j, "eos_token_id", -1);
  data->info_.tokenizer = StringField(j, "tokenizer");
  if (data->info_.vocab_size > model_vocab)
    return Status::Error(meta + ": the data's tokenizer has vocab_size " + std::to_string(data->info_.vocab_size) +
                         " but the model config has vocab_size " + std::to_string(model_vocab) +
                         " (the model must cover every token id)");
  DSV3_RETURN_IF_ERROR(OpenSplit(dir, j, "train", model_vocab, data->train_));
  DSV3_RETURN_IF_ERROR(OpenSplit(dir, j, "validation", model_vocab, data->val_));
  return data;
}

Status TokenData::CheckWindow(int64_t window) const {
  for (const auto* split : {&train_, &val_})
    if (WindowStarts(*split, window) <= 0)
      return Status::Error(dir_ + ": the " + std::string(split == &train_ ? "train" : "validation") +
                           " split has no shard of at least " + std::to_string(window) +
                           " tokens (sequence length + MTP depth + 1); it has " + std::to_string(split->tokens) +
                           " tokens in all");
  return Status::Ok();
}

void TokenData::TrainWindow(uint64_t seed, int64_t step, int64_t micro, int64_t row, int64_t window,
                            int32_t* out) const {
  Rng rng(seed, Mix64(Mix64(static_cast<uint64_t>(step)) ^ (static_cast<uint64_t>(micro) << 32) ^
                      static_cast<uint64_t>(row)));
  const uint32_t* start = nullptr;
  Locate(train_, window, static_cast<int64_t>(rng.Below(WindowStarts(train_, window))), &start);
  CopyWindow(start, window, out);
}

void TokenData::ValidationWindow(int64_t i, int64_t count, int64_t window, int32_t* out) const {
  const int64_t starts = WindowStarts(val_, window);
  const int64_t index = count <= 1 ? 0 : static_cast<int64_t>((static_cast<__int128>(starts - 1) * i) / (count - 1));
  const uint32_t* start = nullptr;
  Locate(val_, window, index, &start);
  CopyWindow(start, window, out);
}

namespace {

Status WriteFileAtomic(const std::string& path, const void* data, size_t bytes) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return Status::Error(tmp + ": cannot open for writing");
  const bool ok = std::fwrite(data, 1, bytes, f) == bytes;
  if (std::fclose(f) != 0 || !ok) {
    std::remove(tmp.c_str());
    return Status::Error(tmp + ": write failed (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return Status::Error(path + ": rename from " + tmp + " failed");
  return Status::Ok();
}

Expected<json> WriteSplit(const std::string& dir, const char* name, const DataWriterSplit& split, int64_t eos,
                          int64_t shard_tokens) {
  std::vector<uint32_t> all;
  for (const auto& doc : split.documents) {
    all.insert(all.end(), doc.begin(), doc.end());
    if (eos >= 0) all.push_back(static_cast<uint32_t>(eos));
  }
  json shards = json::array();
  for (int64_t begin = 0, i = 0; begin < static_cast<int64_t>(all.size()); begin += shard_tokens, ++i) {
    char file[64];
    std::snprintf(file, sizeof(file), "%s-%05lld.bin", name, static_cast<long long>(i));
    const int64_t n = std::min<int64_t>(shard_tokens, static_cast<int64_t>(all.size()) - begin);
    DSV3_RETURN_IF_ERROR(WriteFileAtomic(dir + "/" + file, all.data() + begin, n * sizeof(uint32_t)));
    shards.push_back(file);
  }
  return json{{"shards", shards}, {"tokens", all.size()}, {"documents", split.documents.size()}};
}

}  // namespace

Status WriteTokenData(const std::string& dir, const DataInfo& info, const DataWriterSplit& train,
                      const DataWriterSplit& validation, int64_t shard_tokens) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::Error(dir + ": cannot create directory (" + ec.message() + ")");
  json j = {{"format", kDataFormat}, {"dtype", "uint32"}, {"vocab_size", info.vocab_size},
            {"eos_token_id", info.eos_token_id}, {"tokenizer", info.tokenizer}};
  DSV3_ASSIGN_OR_RETURN(j["train"], WriteSplit(dir, "train", train, info.eos_token_id, shard_tokens));
  DSV3_ASSIGN_OR_RETURN(j["validation"], WriteSplit(dir, "validation", validation, info.eos_token_id, shard_tokens));
  const std::string text = j.dump(2) + "\n";
  return WriteFileAtomic(dir + "/data.json", text.data(), text.size());
}

}  // namespace dsv3::train
