// GGUF parsing, validation and streaming writing; see gguf.h. Layout per the
// format's documentation (ggml docs/gguf.md): all integers little-endian,
// strings are a u64 byte length then the bytes (no terminator).
#include "io/gguf.h"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace dsv3 {

namespace {

struct GgmlTypeInfo {
  uint32_t id;
  const char* name;
  int64_t block_elems, block_bytes;
};

// Block geometry of the ggml types, so sizes of tensors dsv3 cannot decode
// are still validated (and named in errors).
constexpr GgmlTypeInfo kGgmlTypes[] = {
    {0, "F32", 1, 4},       {1, "F16", 1, 2},       {2, "Q4_0", 32, 18},    {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},    {7, "Q5_1", 32, 24},    {8, "Q8_0", 32, 34},    {9, "Q8_1", 32, 36},
    {10, "Q2_K", 256, 84},  {11, "Q3_K", 256, 110}, {12, "Q4_K", 256, 144}, {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210}, {15, "Q8_K", 256, 292}, {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74},
    {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50}, {20, "IQ4_NL", 32, 18}, {21, "IQ3_S", 256, 110},
    {22, "IQ2_S", 256, 82}, {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},     {25, "I16", 1, 2},
    {26, "I32", 1, 4},      {27, "I64", 1, 8},      {28, "F64", 1, 8},      {29, "IQ1_M", 256, 56},
    {30, "BF16", 1, 2},     {34, "TQ1_0", 256, 54}, {35, "TQ2_0", 256, 66}, {39, "MXFP4", 32, 17},
};

const GgmlTypeInfo* FindGgmlType(uint32_t id) {
  for (const auto& t : kGgmlTypes)
    if (t.id == id) return &t;
  return nullptr;
}

constexpr uint64_t kMaxString = 1ull << 30;
constexpr int kMaxArrayDepth = 4;
// Each parsed metadata element costs ~100 bytes of memory however few bytes
// it took in the file, so their number is bounded, not just by the file's
// size: a 262K-token vocabulary with its merges and types is under 1M.
constexpr uint64_t kMaxMetadataElements = 1ull << 22;
// DeepSeek-V3 as GGUF has ~1,100 tensors (experts stacked per layer).
constexpr uint64_t kMaxTensors = 1ull << 20;

// Bounds-checked little-endian reader over the mapped image.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, std::string label) : p_(data), size_(size), label_(std::move(label)) {}
  uint64_t pos() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }

  template <typename T>
  Status Read(T& out, const char* what) {
    if (left() < sizeof(T)) return Truncated(what);
    std::memcpy(&out, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::Ok();
  }
  Status String(std::string& out, const std::string& what) {
    uint64_t n = 0;
    DSV3_RETURN_IF_ERROR(Read(n, what.c_str()));
    if (n > kMaxString || n > left()) return Truncated(what);
    out.assign(reinterpret_cast<const char*>(p_ + pos_), n);
    pos_ += n;
    return Status::Ok();
  }
  Status Truncated(const std::string& what) const {
    return Status::Error(label_ + ": " + what + " at byte " + std::to_string(pos_) +
                         " runs past the end of the file (" + std::to_string(size_) + " bytes; truncated?)");
  }
  Status Error(const std::string& what) const {
    return Status::Error(label_ + ": " + what + " (at byte " + std::to_string(pos_) + ")");
  }
  // Counts `n` more metadata elements against kMaxMetadataElements.
  Status Spend(uint64_t n, const std::string& key) {
    if (n > kMaxMetadataElements - elements_)
      return Error("metadata '" + key + "': more than " + std::to_string(kMaxMetadataElements) +
                   " metadata array elements in total (dsv3's limit; a tokenizer needs under 1M)");
    elements_ += n;
    return Status::Ok();
  }
  const uint8_t* at() const { return p_ + pos_; }

 private:
  const uint8_t* p_;
  uint64_t size_, pos_ = 0, elements_ = 0;
  std::string label_;
};

Status ReadValue(Cursor& c, GgufType type, GgufValue& v, int depth, const std::string& key);

Status ReadScalar(Cursor& c, GgufType type, GgufValue& v, const std::string& key) {
  const std::string what = "value of '" + key + "'";
  switch (type) {
    case GgufType::kUint8: { uint8_t x = 0; DSV3_RETURN_IF_ERROR(c.Read(x, what.c_str())); v.u = x; break; }
    case GgufType::kInt8: { int8_t x = 0; DSV3_RETURN_IF_ERROR(c.Read(x, what.c_str())); v.i = x; break; }
    case GgufType::kUint16: { uint16_t x = 0; DSV3_RETURN_IF_ERROR(c.Read(x, what.c_str())); v.u = x; break; }
    case GgufType::kInt16: { int16_t x = 0; DSV3_RETURN_IF_ERROR(c.Read(x, what.c_str())); v.i = x; break; }
    case GgufType::kUint32: { uint32_t x = 0; DSV3_RETURN_IF_ERROR(c.Read(x, what.c_str())); v.u = x; break; }
    case GgufType::kInt32: { int32_t x = 0; DSV3_RETURN_IF_ERROR(c.Read(x, what.c_str())); v.i = x; break; }
    case GgufType::kUint64: DSV3_RETURN_IF_ERROR(c.Read(v.u, what.c_str())); break;
    case GgufType::kInt64: DSV3_RETURN_IF_ERROR(c.Read(v.i, what.c_str())); break;
    case GgufType::kFloat32: { float x = 0; DSV3_RETURN_IF_ERROR(c.Read(x, what.c_str())); v.f = x; break; }
    case GgufType::kFloat64: DSV3_RETURN_IF_ERROR(c.Read(v.f, what.c_str())); break;
    case GgufType::kBool: {
      uint8_t x;
      DSV3_RETURN_IF_ERROR(c.Read(x, what.c_str()));
      if (x > 1) return c.Error("metadata '" + key + "': bool value " + std::to_string(x) + " is not 0 or 1");
      v.b = x != 0;
      v.u = x;
      break;
    }
    case GgufType::kString: DSV3_RETURN_IF_ERROR(c.String(v.s, what)); break;
    default: return c.Error("metadata '" + key + "': unknown value type " + std::to_string(static_cast<uint32_t>(type)));
  }
  return Status::Ok();
}

Status ReadValue(Cursor& c, GgufType type, GgufValue& v, int depth, const std::string& key) {
  v.type = type;
  if (type != GgufType::kArray) return ReadScalar(c, type, v, key);
  if (depth >= kMaxArrayDepth) return c.Error("metadata '" + key + "': arrays nested too deeply");
  uint32_t elem = 0;
  uint64_t n = 0;
  DSV3_RETURN_IF_ERROR(c.Read(elem, "array type"));
  DSV3_RETURN_IF_ERROR(c.Read(n, "array length"));
  v.array_type = static_cast<GgufType>(elem);
  if (elem > static_cast<uint32_t>(GgufType::kFloat64))
    return c.Error("metadata '" + key + "': unknown array element type " + std::to_string(elem));
  if (n > c.left()) return c.Truncated("array '" + key + "' of " + std::to_string(n) + " elements");
  DSV3_RETURN_IF_ERROR(c.Spend(n, key));
  v.items.resize(n);
  for (auto& item : v.items) DSV3_RETURN_IF_ERROR(ReadValue(c, v.array_type, item, depth + 1, key));
  return Status::Ok();
}

Status ReadTensorInfo(Cursor& c, GgufTensorInfo& t) {
  DSV3_RETURN_IF_ERROR(c.String(t.name, "tensor name"));
  uint32_t n_dims = 0;
  DSV3_RETURN_IF_ERROR(c.Read(n_dims, "tensor dims"));
  const std::string where = "tensor '" + t.name + "'";
  if (n_dims == 0 || n_dims > 4) return c.Error(where + " has " + std::to_string(n_dims) + " dims (1..4 allowed)");
  uint64_t numel = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    uint64_t ne = 0;
    DSV3_RETURN_IF_ERROR(c.Read(ne, "tensor dim"));
    if (ne == 0 || ne > (1ull << 40) || numel > (1ull << 48) / ne) return c.Error(where + " has a zero or too large dim");
    numel *= ne;
    t.ne.push_back(static_cast<int64_t>(ne));
  }
  DSV3_RETURN_IF_ERROR(c.Read(t.ggml_type, "tensor type"));
  DSV3_RETURN_IF_ERROR(c.Read(t.offset, "tensor offset"));
  const GgmlTypeInfo* info = FindGgmlType(t.ggml_type);
  if (!info) return c.Error(where + " has unknown ggml type " + std::to_string(t.ggml_type));
  if (t.ne[0] % info->block_elems != 0)
    return c.Error(where + " row length " + std::to_string(t.ne[0]) + " is not a multiple of the " + info->name +
                   " block size " + std::to_string(info->block_elems));
  t.nbytes = numel / info->block_elems * info->block_bytes;
  t.dtype = DTypeFromGgml(t.ggml_type);
  return Status::Ok();
}

// Checks offsets are aligned, in bounds and non-overlapping; sets data pointers.
Status PlaceTensors(std::vector<GgufTensorInfo>& tensors, const uint8_t* base, uint64_t data_size, uint32_t align,
                    const std::string& label) {
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return tensors[a].offset < tensors[b].offset; });
  uint64_t end_prev = 0;
  const GgufTensorInfo* prev = nullptr;
  for (size_t i : order) {
    GgufTensorInfo& t = tensors[i];
    const std::string where = label + ": tensor '" + t.name + "' (" + GgmlTypeName(t.ggml_type) + ")";
    if (t.offset % align != 0) return Status::Error(where + " offset " + std::to_string(t.offset) + " is not aligned to " + std::to_string(align));
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      return Status::Error(where + " data [" + std::to_string(t.offset) + ", +" + std::to_string(t.nbytes) +
                           ") runs past the end of the data section (" + std::to_string(data_size) + " bytes; truncated?)");
    if (prev && t.offset < end_prev) return Status::Error(where + " overlaps tensor '" + prev->name + "'");
    if (t.offset - end_prev >= align)
      return Status::Error(where + " starts " + std::to_string(t.offset - end_prev) + " bytes after " +
                           (prev ? "tensor '" + prev->name + "' ends" : "the data section's start") +
                           " (more than the alignment padding: a tensor is missing from the table)");
    t.data = base + t.offset;
    end_prev = t.offset + t.nbytes;
    prev = &t;
  }
  if (data_size - end_prev >= align && !tensors.empty())
    return Status::Error(label + ": " + std::to_string(data_size - end_prev) +
                         " bytes of tensor data after the last tensor (a tensor is missing from the table)");
  return Status::Ok();
}

}  // namespace

std::optional<DType> DTypeFromGgml(uint32_t id) {
  switch (id) {
    case 0: return DType::kF32;
    case 1: return DType::kF16;
    case 2: return DType::kQ4_0;
    case 3: return DType::kQ4_1;
    case 6: return DType::kQ5_0;
    case 7: return DType::kQ5_1;
    case 8: return DType::kQ8_0;
    case 10: return DType::kQ2_K;
    case 11: return DType::kQ3_K;
    case 12: return DType::kQ4_K;
    case 13: return DType::kQ5_K;
    case 14: return DType::kQ6_K;
    case 20: return DType::kIQ4_NL;
    case 23: return DType::kIQ4_XS;
    case 24: return DType::kI8;
    case 25: return DType::kI16;
    case 26: return DType::kI32;
    case 27: return DType::kI64;
    case 28: return DType::kF64;
    case 30: return DType::kBF16;
    default: return std::nullopt;
  }
}

std::optional<GgmlType> GgmlFromDType(DType t) {
  for (uint32_t id : {0u, 1u, 2u, 3u, 6u, 7u, 8u, 10u, 11u, 12u, 13u, 14u, 20u, 23u, 24u, 25u, 26u, 27u, 28u, 30u})
    if (DTypeFromGgml(id) == t) return static_cast<GgmlType>(id);
  return std::nullopt;
}

std::optional<DType> ParseGgufWeightType(const std::string& name) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1,
                  DType::kQ8_0, DType::kQ2_K, DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kIQ4_NL,
                  DType::kIQ4_XS}) {
    std::string lower(DTypeName(t));
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == name) return t;
  }
  return std::nullopt;
}

std::string GgmlTypeName(uint32_t id) {
  const GgmlTypeInfo* t = FindGgmlType(id);
  return t ? t->name : "type " + std::to_string(id);
}

GgufValue GgufValue::U32(uint32_t v) { GgufValue x; x.type = GgufType::kUint32; x.u = v; return x; }
GgufValue GgufValue::I32(int32_t v) { GgufValue x; x.type = GgufType::kInt32; x.i = v; return x; }
GgufValue GgufValue::U64(uint64_t v) { GgufValue x; x.type = GgufType::kUint64; x.u = v; return x; }
GgufValue GgufValue::F32(float v) { GgufValue x; x.type = GgufType::kFloat32; x.f = v; return x; }
GgufValue GgufValue::Bool(bool v) { GgufValue x; x.type = GgufType::kBool; x.b = v; x.u = v; return x; }
GgufValue GgufValue::Str(std::string v) { GgufValue x; x.type = GgufType::kString; x.s = std::move(v); return x; }

GgufValue GgufValue::StrArray(std::vector<std::string> v) {
  GgufValue x;
  x.type = GgufType::kArray;
  x.array_type = GgufType::kString;
  x.items.reserve(v.size());
  for (auto& s : v) x.items.push_back(Str(std::move(s)));
  return x;
}
GgufValue GgufValue::I32Array(const std::vector<int32_t>& v) {
  GgufValue x;
  x.type = GgufType::kArray;
  x.array_type = GgufType::kInt32;
  for (int32_t e : v) x.items.push_back(I32(e));
  return x;
}
GgufValue GgufValue::F32Array(const std::vector<float>& v) {
  GgufValue x;
  x.type = GgufType::kArray;
  x.array_type = GgufType::kFloat32;
  for (float e : v) x.items.push_back(F32(e));
  return x;
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::kUint8: case GgufType::kInt8: case GgufType::kUint16: case GgufType::kInt16:
    case GgufType::kUint32: case GgufType::kInt32: case GgufType::kUint64: case GgufType::kInt64:
    case GgufType::kBool: return true;
    default: return false;
  }
}

int64_t GgufValue::AsInt() const {
  switch (type) {
    case GgufType::kInt8: case GgufType::kInt16: case GgufType::kInt32: case GgufType::kInt64: return i;
    case GgufType::kFloat32: case GgufType::kFloat64: return static_cast<int64_t>(f);
    default: return static_cast<int64_t>(u);
  }
}

double GgufValue::AsDouble() const {
  if (type == GgufType::kFloat32 || type == GgufType::kFloat64) return f;
  return static_cast<double>(AsInt());
}

std::string GgufTensorInfo::NeString() const {
  std::string s = "{";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "}";
}

Expected<std::unique_ptr<GgufFile>> GgufFile::Parse(const uint8_t* data, size_t size, const std::string& label) {
  Cursor c(data, size, label);
  uint32_t magic = 0;
  DSV3_RETURN_IF_ERROR(c.Read(magic, "GGUF magic"));
  if (magic != kGgufMagic) return Status::Error(label + ": not a GGUF file (bad magic)");
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = label;
  DSV3_RETURN_IF_ERROR(c.Read(f->version_, "GGUF version"));
  if (f->version_ != 2 && f->version_ != 3)
    return Status::Error(label + ": GGUF version " + std::to_string(f->version_) + " is not supported (2 or 3)");
  uint64_t n_tensors = 0, n_kv = 0;
  DSV3_RETURN_IF_ERROR(c.Read(n_tensors, "tensor count"));
  DSV3_RETURN_IF_ERROR(c.Read(n_kv, "metadata count"));
  if (n_kv > c.left() / 13) return c.Truncated("metadata of " + std::to_string(n_kv) + " entries");
  if (n_tensors > c.left() / 28) return c.Truncated("tensor infos of " + std::to_string(n_tensors) + " tensors");
  if (n_tensors > kMaxTensors)
    return c.Error("tensor count " + std::to_string(n_tensors) + " exceeds dsv3's limit of " + std::to_string(kMaxTensors));
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key;
    uint32_t type = 0;
    DSV3_RETURN_IF_ERROR(c.String(key, "metadata key"));
    DSV3_RETURN_IF_ERROR(c.Read(type, "metadata type"));
    GgufValue v;
    DSV3_RETURN_IF_ERROR(ReadValue(c, static_cast<GgufType>(type), v, 0, key));
    if (!f->kv_index_.emplace(key, f->kv_.size()).second) return c.Error("duplicate metadata key '" + key + "'");
    f->kv_.emplace_back(std::move(key), std::move(v));
  }
  if (const GgufValue* a = f->Find("general.alignment")) {
    if (a->type != GgufType::kUint32 || a->u == 0 || (a->u & (a->u - 1)) != 0)
      return Status::Error(label + ": metadata 'general.alignment' must be a power-of-two u32");
    f->alignment_ = static_cast<uint32_t>(a->u);
  }
  f->tensors_.resize(n_tensors);
  for (auto& t : f->tensors_) {
    DSV3_RETURN_IF_ERROR(ReadTensorInfo(c, t));
    if (!f->tensor_index_.emplace(t.name, &t - f->tensors_.data()).second) return c.Error("duplicate tensor '" + t.name + "'");
  }
  f->data_offset_ = (c.pos() + f->alignment_ - 1) / f->alignment_ * f->alignment_;
  if (f->data_offset_ > size) {
    if (n_tensors > 0) return c.Truncated("data section");
    f->data_offset_ = size;
  }
  // Writers pad the header with zeros; anything else there means the tensor
  // count does not match the tensor infos that follow it.
  for (const uint8_t* p = c.at(); p < data + f->data_offset_; ++p)
    if (*p != 0)
      return c.Error("non-zero bytes after the " + std::to_string(n_tensors) +
                     " tensor infos (the header's tensor count does not match the tensor table)");
  DSV3_RETURN_IF_ERROR(PlaceTensors(f->tensors_, data + f->data_offset_, size - f->data_offset_, f->alignment_, label));
  return f;
}

Expected<std::unique_ptr<GgufFile>> GgufFile::OpenOne(const std::string& path) {
  DSV3_ASSIGN_OR_RETURN(auto mapped, MappedFile::Open(path));
  DSV3_ASSIGN_OR_RETURN(auto f, Parse(mapped->data(), mapped->size(), path));
  f->file_ = std::move(mapped);
  return f;
}

const GgufValue* GgufFile::Find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensorInfo* GgufFile::FindTensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

// ---- writer ----

namespace {

void PutRaw(std::string& out, const void* p, size_t n) { out.append(static_cast<const char*>(p), n); }
template <typename T>
void PutPod(std::string& out, T v) { PutRaw(out, &v, sizeof(T)); }
void PutString(std::string& out, const std::string& s) {
  PutPod<uint64_t>(out, s.size());
  out += s;
}

void PutValue(std::string& out, const GgufValue& v, bool with_type) {
  if (with_type) PutPod<uint32_t>(out, static_cast<uint32_t>(v.type));
  switch (v.type) {
    case GgufType::kUint8: PutPod<uint8_t>(out, static_cast<uint8_t>(v.u)); break;
    case GgufType::kInt8: PutPod<int8_t>(out, static_cast<int8_t>(v.i)); break;
    case GgufType::kUint16: PutPod<uint16_t>(out, static_cast<uint16_t>(v.u)); break;
    case GgufType::kInt16: PutPod<int16_t>(out, static_cast<int16_t>(v.i)); break;
    case GgufType::kUint32: PutPod<uint32_t>(out, static_cast<uint32_t>(v.u)); break;
    case GgufType::kInt32: PutPod<int32_t>(out, static_cast<int32_t>(v.i)); break;
    case GgufType::kUint64: PutPod<uint64_t>(out, v.u); break;
    case GgufType::kInt64: PutPod<int64_t>(out, v.i); break;
    case GgufType::kFloat32: PutPod<float>(out, static_cast<float>(v.f)); break;
    case GgufType::kFloat64: PutPod<double>(out, v.f); break;
    case GgufType::kBool: PutPod<uint8_t>(out, v.b ? 1 : 0); break;
    case GgufType::kString: PutString(out, v.s); break;
    case GgufType::kArray:
      PutPod<uint32_t>(out, static_cast<uint32_t>(v.array_type));
      PutPod<uint64_t>(out, v.items.size());
      for (const auto& item : v.items) PutValue(out, item, false);
      break;
  }
}

}  // namespace

uint64_t GgufTensorSpec::nbytes() const {
  const GgmlTypeInfo* info = FindGgmlType(static_cast<uint32_t>(type));
  uint64_t numel = 1;
  for (int64_t d : ne) numel *= static_cast<uint64_t>(d);
  return numel / info->block_elems * info->block_bytes;
}

Expected<std::unique_ptr<GgufWriter>> GgufWriter::Create(const std::string& path,
                                                         const std::vector<std::pair<std::string, GgufValue>>& kv,
                                                         const std::vector<GgufTensorSpec>& specs, uint32_t alignment) {
  std::string head;
  PutPod<uint32_t>(head, kGgufMagic);
  PutPod<uint32_t>(head, 3);
  PutPod<uint64_t>(head, specs.size());
  PutPod<uint64_t>(head, kv.size());
  for (const auto& [key, value] : kv) {
    PutString(head, key);
    PutValue(head, value, true);
  }
  std::unique_ptr<GgufWriter> w(new GgufWriter());
  w->alignment_ = alignment;
  uint64_t offset = 0;
  for (const auto& s : specs) {
    const GgmlTypeInfo* info = FindGgmlType(static_cast<uint32_t>(s.type));
    if (!info || s.ne.empty() || s.ne.size() > 4 || s.ne[0] % info->block_elems != 0)
      return Status::Error(path + ": tensor '" + s.name + "' has an invalid type or shape for GGUF");
    PutString(head, s.name);
    PutPod<uint32_t>(head, static_cast<uint32_t>(s.ne.size()));
    for (int64_t d : s.ne) PutPod<uint64_t>(head, static_cast<uint64_t>(d));
    PutPod<uint32_t>(head, static_cast<uint32_t>(s.type));
    PutPod<uint64_t>(head, offset);
    w->sizes_.push_back(s.nbytes());
    offset += (s.nbytes() + alignment - 1) / alignment * alignment;
  }
  DSV3_ASSIGN_OR_RETURN(w->file_, TempFile::Create(path));
  DSV3_RETURN_IF_ERROR(w->Put(head.data(), head.size()));
  DSV3_RETURN_IF_ERROR(w->PadTo(alignment));
  while (w->current_ < w->sizes_.size() && w->sizes_[w->current_] == 0) ++w->current_;
  return w;
}

Status GgufWriter::Put(const void* data, size_t n) {
  DSV3_RETURN_IF_ERROR(file_->Write(data, n));
  position_ += n;
  return Status::Ok();
}

Status GgufWriter::PadTo(uint64_t alignment) {
  static const uint8_t kZeros[64] = {};
  const uint64_t pad = (alignment - position_ % alignment) % alignment;
  return Put(kZeros, pad);
}

Status GgufWriter::Write(const void* data, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    if (current_ >= sizes_.size()) return Status::Error(tmp_path() + ": more tensor bytes written than the header declares");
    const uint64_t take = std::min<uint64_t>(n, sizes_[current_] - in_current_);
    DSV3_RETURN_IF_ERROR(Put(p, take));
    p += take, n -= take, in_current_ += take;
    if (in_current_ == sizes_[current_]) {  // tensor complete: pad for the next one
      in_current_ = 0;
      ++current_;
      DSV3_RETURN_IF_ERROR(PadTo(alignment_));
      while (current_ < sizes_.size() && sizes_[current_] == 0) ++current_;
    }
  }
  return Status::Ok();
}

Status GgufWriter::Finish() {
  if (current_ != sizes_.size())
    return Status::Error(tmp_path() + ": only " + std::to_string(current_) + " of " + std::to_string(sizes_.size()) +
                         " tensors written");
  return file_->Commit();
}

}  // namespace dsv3
