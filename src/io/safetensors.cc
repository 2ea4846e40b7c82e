// Safetensors parsing and validation; see safetensors.h.
#include "io/safetensors.h"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "core/json_depth.h"

namespace dsv3 {

namespace fs = std::filesystem;
using nlohmann::json;

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorInfo::ShapeString() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

namespace {

// Parses one header entry into `t` (offsets relative to the data section).
Status ParseEntry(const std::string& name, const json& v, uint64_t data_size, TensorInfo& t,
                  uint64_t& begin, uint64_t& end) {
  const std::string where = "tensor '" + name + "'";
  if (!v.is_object()) return Status::Error(where + ": entry is not an object");
  if (!v.contains("dtype") || !v["dtype"].is_string())
    return Status::Error(where + ": missing string field 'dtype'");
  auto dtype = ParseDType(v["dtype"].get<std::string>());
  if (!dtype) return Status::Error(where + ": unknown dtype '" + v["dtype"].get<std::string>() + "'");
  t.dtype = *dtype;
  if (!v.contains("shape") || !v["shape"].is_array())
    return Status::Error(where + ": missing array field 'shape'");
  uint64_t numel = 1;
  for (const auto& d : v["shape"]) {
    if (!d.is_number_unsigned()) return Status::Error(where + ": shape has a non-integer or negative entry");
    const uint64_t dim = d.get<uint64_t>();
    if (dim > (1ull << 40) || (dim != 0 && numel > (1ull << 48) / dim))
      return Status::Error(where + ": shape too large");
    numel *= dim;
    t.shape.push_back(static_cast<int64_t>(dim));
  }
  const auto& off = v.contains("data_offsets") ? v["data_offsets"] : json();
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
    return Status::Error(where + ": 'data_offsets' must be two non-negative integers");
  begin = off[0].get<uint64_t>();
  end = off[1].get<uint64_t>();
  if (begin > end) return Status::Error(where + ": data_offsets begin > end");
  if (end > data_size)
    return Status::Error(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                         ") past the end of the data section (" + std::to_string(data_size) + " bytes)");
  const uint64_t expect = numel * DTypeSize(t.dtype);
  if (end - begin != expect)
    return Status::Error(where + ": byte size " + std::to_string(end - begin) + " does not match dtype " +
                         std::string(DTypeName(t.dtype)) + " x shape " + t.ShapeString() + " = " +
                         std::to_string(expect));
  t.name = name;
  t.nbytes = expect;
  return Status::Ok();
}

}  // namespace

Expected<std::vector<TensorInfo>> SafetensorsFile::ParseImage(
    const uint8_t* data, size_t size, const std::string& label,
    std::map<std::string, std::string>* metadata) {
  if (size < 8) return Status::Error(label + ": file too short for a safetensors header (" +
                                     std::to_string(size) + " bytes)");
  uint64_t header_len = 0;
  std::memcpy(&header_len, data, 8);  // little-endian on every supported host
  if (header_len > kMaxSafetensorsHeader)
    return Status::Error(label + ": header length " + std::to_string(header_len) + " exceeds the " +
                         std::to_string(kMaxSafetensorsHeader) + "-byte limit");
  if (header_len > size - 8)
    return Status::Error(label + ": header length " + std::to_string(header_len) +
                         " runs past the end of the file (" + std::to_string(size) + " bytes; truncated?)");
  const std::string_view header_text(reinterpret_cast<const char*>(data) + 8, header_len);
  DSV3_RETURN_IF_ERROR(CheckJsonDepth(header_text, label + ": header"));
  json header = json::parse(data + 8, data + 8 + header_len, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object())
    return Status::Error(label + ": header is not a JSON object");
  const uint8_t* base = data + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  std::vector<TensorInfo> tensors;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) return Status::Error(label + ": __metadata__ is not an object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) return Status::Error(label + ": __metadata__ value '" + m.key() + "' is not a string");
        if (metadata) (*metadata)[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    TensorInfo t;
    uint64_t begin = 0, end = 0;
    DSV3_RETURN_IF_ERROR(ParseEntry(it.key(), it.value(), data_size, t, begin, end).WithContext(label));
    t.data = base + begin;
    t.file = label;
    ranges.emplace_back(begin, end);
    tensors.push_back(std::move(t));
  }
  std::vector<size_t> order(ranges.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ranges[a] < ranges[b]; });
  // Walk in offset order keeping the furthest end seen; empty tensors never overlap.
  size_t furthest = order.empty() ? 0 : order[0];
  for (size_t i = 1; i < order.size(); ++i) {
    const auto& cur = ranges[order[i]];
    if (cur.first == cur.second) continue;
    if (cur.first < ranges[furthest].second)
      return Status::Error(label + ": tensors '" + tensors[furthest].name + "' and '" +
                           tensors[order[i]].name + "' overlap in the data section");
    if (cur.second > ranges[furthest].second || ranges[furthest].first == ranges[furthest].second)
      furthest = order[i];
  }
  return tensors;
}

Expected<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  DSV3_ASSIGN_OR_RETURN(auto mapped, MappedFile::Open(path));
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  DSV3_ASSIGN_OR_RETURN(f->tensors_, ParseImage(mapped->data(), mapped->size(), path, &f->metadata_));
  f->file_ = std::move(mapped);
  for (size_t i = 0; i < f->tensors_.size(); ++i) f->index_[f->tensors_[i].name] = i;
  return f;
}

const TensorInfo* SafetensorsFile::Find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Status TensorStore::AddFile(std::unique_ptr<SafetensorsFile> file, const std::set<std::string>* only) {
  for (const auto& t : file->tensors()) {
    if (only && !only->count(t.name)) continue;
    auto [it, inserted] = by_name_.emplace(t.name, &t);
    if (!inserted)
      return Status::Error("tensor '" + t.name + "' appears in both " + it->second->file + " and " + t.file);
  }
  files_.push_back(std::move(file));
  return Status::Ok();
}

Expected<std::map<std::string, std::string>> ParseSafetensorsIndex(std::string_view text, const std::string& label) {
  DSV3_RETURN_IF_ERROR(CheckJsonDepth(text, label));
  const json index = json::parse(text.begin(), text.end(), nullptr, false);
  if (index.is_discarded() || !index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    return Status::Error(label + ": not a JSON object with a 'weight_map' object");
  std::map<std::string, std::string> weight_map;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
    if (!it.value().is_string()) return Status::Error(label + ": weight_map entry '" + it.key() + "' is not a file name");
    const std::string shard = it.value().get<std::string>();
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..")
      return Status::Error(label + ": shard name '" + shard + "' must be a plain file name");
    weight_map.emplace(it.key(), shard);
  }
  return weight_map;
}

Expected<std::unique_ptr<TensorStore>> TensorStore::Open(const std::string& path) {
  std::unique_ptr<TensorStore> store(new TensorStore());
  store->path_ = path;
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    DSV3_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
    DSV3_RETURN_IF_ERROR(store->AddFile(std::move(file), nullptr));
    return store;
  }
  const fs::path index_path = fs::path(path) / "model.safetensors.index.json";
  if (!fs::exists(index_path, ec)) {
    const fs::path single = fs::path(path) / "model.safetensors";
    if (!fs::exists(single, ec))
      return Status::Error(path + ": no model.safetensors.index.json or model.safetensors found");
    DSV3_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(single.string()));
    DSV3_RETURN_IF_ERROR(store->AddFile(std::move(file), nullptr));
    return store;
  }
  DSV3_ASSIGN_OR_RETURN(std::string text, ReadTextFile(index_path.string()));
  DSV3_ASSIGN_OR_RETURN(const auto weight_map, ParseSafetensorsIndex(text, index_path.string()));
  std::set<std::string> shards, listed;
  for (const auto& [tensor, shard] : weight_map) shards.insert(shard), listed.insert(tensor);
  for (const auto& shard : shards) {
    DSV3_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open((fs::path(path) / shard).string()));
    // Like Hugging Face, only what the index lists is part of the checkpoint.
    DSV3_RETURN_IF_ERROR(store->AddFile(std::move(file), &listed));
  }
  for (const auto& [tensor, shard] : weight_map) {
    const TensorInfo* t = store->Find(tensor);
    if (!t || t->file != (fs::path(path) / shard).string())
      return Status::Error(index_path.string() + ": tensor '" + tensor + "' is listed in shard " + shard +
                           " but that file does not contain it");
  }
  return store;
}

const TensorInfo* TensorStore::Find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::vector<std::string> TensorStore::Names() const {
  std::vector<std::string> names;
  names.reserve(by_name_.size());
  for (const auto& [name, t] : by_name_) names.push_back(name);
  return names;
}

}  // namespace dsv3
