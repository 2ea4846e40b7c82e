// GGUF (the llama.cpp/ggml file format, version 2 and 3): a validated,
// memory-mapped reader and a streaming writer. A file is a header (magic
// "GGUF", version, tensor count, metadata count), typed key/value metadata,
// tensor infos (name, dims innermost-first as ggml's ne[], ggml type, offset)
// and an aligned data section. The reader checks every length, count, type,
// offset and size against the file before handing anything out and never
// copies tensor bytes. The writer computes the whole header from the specs up
// front, streams tensor bytes (padding each tensor to the alignment), writes
// to "<path>.tmp" and renames onto <path> only in a successful Finish().
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "core/status.h"
#include "io/temp_file.h"

namespace dsv3 {

inline constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" little-endian
inline constexpr uint32_t kGgufDefaultAlignment = 32;

enum class GgufType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5, kFloat32 = 6,
  kBool = 7, kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12,
};

// ggml tensor type ids used by dsv3 (ggml.h enum ggml_type).
enum class GgmlType : uint32_t { kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ5_0 = 6, kQ5_1 = 7, kQ8_0 = 8,
                                 kQ2_K = 10, kQ3_K = 11, kQ4_K = 12, kQ5_K = 13, kQ6_K = 14, kIQ4_NL = 20,
                                 kIQ4_XS = 23, kI8 = 24, kI16 = 25, kI32 = 26, kI64 = 27, kF64 = 28, kBF16 = 30 };

// The dsv3 dtype of a ggml type id, or nullopt for types dsv3 cannot read.
std::optional<DType> DTypeFromGgml(uint32_t ggml_type);
std::optional<GgmlType> GgmlFromDType(DType t);
// "F32", "Q4_K", ... or "type 123" for ids unknown here.
std::string GgmlTypeName(uint32_t ggml_type);
// The matrix types a GGUF file can be written in, by lowercase ggml name
// ("f32", "f16", "bf16", "q8_0", "q4_k", "iq4_xs", ...); nullopt otherwise.
std::optional<DType> ParseGgufWeightType(const std::string& name);
inline constexpr const char* kGgufWeightTypeNames =
    "f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl or iq4_xs";

// One metadata value. Integers keep their exact value in `i` (signed) or `u`
// (unsigned); floats in `f`; arrays hold their elements in `items`.
struct GgufValue {
  GgufType type = GgufType::kUint32;
  GgufType array_type = GgufType::kUint8;  // element type when type == kArray
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string s;
  std::vector<GgufValue> items;

  static GgufValue U32(uint32_t v);
  static GgufValue I32(int32_t v);
  static GgufValue U64(uint64_t v);
  static GgufValue F32(float v);
  static GgufValue Bool(bool v);
  static GgufValue Str(std::string v);
  static GgufValue StrArray(std::vector<std::string> v);
  static GgufValue I32Array(const std::vector<int32_t>& v);
  static GgufValue F32Array(const std::vector<float>& v);

  bool is_integer() const;
  bool is_number() const { return is_integer() || type == GgufType::kFloat32 || type == GgufType::kFloat64; }
  int64_t AsInt() const;     // integers (and bools); floats truncated
  double AsDouble() const;   // any number
};

struct GgufTensorInfo {
  std::string name;
  uint32_t ggml_type = 0;
  std::optional<DType> dtype;   // nullopt: a ggml type dsv3 does not read
  std::vector<int64_t> ne;      // ggml order: ne[0] is the innermost (row) length
  uint64_t offset = 0;          // within the data section
  const uint8_t* data = nullptr;
  uint64_t nbytes = 0;

  // Row-major shape (ne reversed), as safetensors/PyTorch write it.
  std::vector<int64_t> shape() const { return {ne.rbegin(), ne.rend()}; }
  std::string NeString() const;  // "{192, 256}" like llama.cpp prints it
};

// A split set (llama.cpp gguf-split: keys split.count, split.no,
// split.tensors.count; files PREFIX-00001-of-00003.gguf ...) opens as one
// GgufFile from any of its parts: metadata of part 1, the tensors of all.
class GgufFile {
 public:
  static Expected<std::unique_ptr<GgufFile>> Open(const std::string& path);
  // Validates an in-memory image; `data` must outlive the result's tensors.
  static Expected<std::unique_ptr<GgufFile>> Parse(const uint8_t* data, size_t size, const std::string& label);

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  const std::string& path() const { return path_; }
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufValue* Find(const std::string& key) const;
  const GgufTensorInfo* FindTensor(const std::string& name) const;
  uint64_t data_offset() const { return data_offset_; }

 private:
  GgufFile() = default;
  static Expected<std::unique_ptr<GgufFile>> OpenOne(const std::string& path);
  static Expected<std::unique_ptr<GgufFile>> OpenSplit(const std::string& path, int64_t count);
  std::unique_ptr<MappedFile> file_;
  std::vector<std::unique_ptr<GgufFile>> parts_;  // the other parts of a split set (their mappings)
  std::string path_;
  uint32_t version_ = 0, alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

struct GgufTensorSpec {
  std::string name;
  GgmlType type = GgmlType::kF32;
  std::vector<int64_t> ne;  // ggml order
  uint64_t nbytes() const;
};

class GgufWriter {
 public:
  static Expected<std::unique_ptr<GgufWriter>> Create(const std::string& path,
                                                      const std::vector<std::pair<std::string, GgufValue>>& kv,
                                                      const std::vector<GgufTensorSpec>& specs,
                                                      uint32_t alignment = kGgufDefaultAlignment);

  // Appends bytes of the current tensor(s) in spec order; may be called in
  // pieces. Alignment padding between tensors is inserted automatically.
  Status Write(const void* data, size_t n);
  // Renames PATH.tmp to PATH once every tensor is written; until then (or
  // if the writer is destroyed first) only PATH.tmp exists (TempFile).
  Status Finish();
  const std::string& tmp_path() const { return file_->tmp_path(); }

 private:
  GgufWriter() = default;
  Status Put(const void* data, size_t n);
  Status PadTo(uint64_t alignment);
  std::unique_ptr<TempFile> file_;
  std::vector<uint64_t> sizes_;  // bytes of each tensor in order
  size_t current_ = 0;           // tensor being written
  uint64_t in_current_ = 0;      // bytes of it written so far
  uint64_t position_ = 0;        // bytes written to the file
  uint32_t alignment_ = kGgufDefaultAlignment;
};

}  // namespace dsv3
