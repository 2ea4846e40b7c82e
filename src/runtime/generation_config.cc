// generation_config.json and sampling parameters from text; see
// generation_config.h.
#include "runtime/generation_config.h"

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/json_depth.h"
#include "core/json_fields.h"
#include "core/mapped_file.h"

namespace dsv3 {

namespace {

using nlohmann::json;

// "0.6", "1e-05": short, and exact enough to recognise the value written.
std::string Num(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

// The value of one field as the file wrote it, for messages.
std::string Shown(const json& v) { return v.is_number() ? Num(v.get<double>()) : v.type_name(); }

Status FieldError(const std::string& label, const char* key, const std::string& what) {
  return Status::Error(label + ": field '" + key + "' " + what);
}

// A real-valued field that must satisfy `in_range`, described by `range`
// ("in (0, 1]") in the error. Absent or null: left empty.
template <typename InRange>
Status ReadReal(const json& j, const std::string& label, const char* key, InRange in_range, const char* range,
                std::optional<float>& out) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_number()) return FieldError(label, key, std::string("must be a number (got ") + it->type_name() + ")");
  const double v = it->get<double>();
  const float f = static_cast<float>(v);
  if (!std::isfinite(f) || !in_range(f)) return FieldError(label, key, std::string("must be ") + range + " (got " + Shown(*it) + ")");
  out = f;
  return Status::Ok();
}

Status ReadTopK(const json& j, const std::string& label, std::optional<int>& out) {
  const auto it = j.find("top_k");
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_number_integer())
    return FieldError(label, "top_k", "must be an integer (got " + std::string(it->is_number() ? Shown(*it) : it->type_name()) + ")");
  const int64_t k = IntField(j, "top_k", -1);  // -1 also for an integer beyond int64
  if (k < 0 || k > INT32_MAX)
    return FieldError(label, "top_k", "must be in [0, 2147483647] (got " + it->dump() + ")");
  out = static_cast<int>(k);
  return Status::Ok();
}

Status ReadDoSample(const json& j, const std::string& label, std::optional<bool>& out) {
  const auto it = j.find("do_sample");
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_boolean()) return FieldError(label, "do_sample", "must be true or false (got " + Shown(*it) + ")");
  out = BoolField(j, "do_sample", false);
  return Status::Ok();
}

Expected<double> ParseReal(const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v))
    return Status::Error("'" + text + "' is not a finite number");
  return v;
}

Expected<int64_t> ParseInt(const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE) return Status::Error("'" + text + "' is not an integer");
  return static_cast<int64_t>(v);
}

Expected<uint64_t> ParseSeed(const std::string& text) {
  char* end = nullptr;
  errno = 0;
  // strtoull would wrap "-1" around to 2^64 - 1: refuse any sign.
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || text[0] == '-' || text[0] == '+' || *end != '\0' || errno == ERANGE)
    return Status::Error("'" + text + "' is not a seed (an integer in [0, 2^64))");
  return static_cast<uint64_t>(v);
}

// "15=-100,16=5" appended to `out`, all or nothing.
Status ParseLogitBias(const std::string& text, std::vector<LogitBias>& out) {
  std::vector<LogitBias> parsed;
  size_t start = 0;
  do {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? text.size() + 1 : comma + 1;
    const size_t eq = item.find('=');
    const std::string bad = "'" + item + "' is not TOKEN=BIAS (e.g. 15=-100; -100 bans the token)";
    if (eq == std::string::npos) return Status::Error(bad);
    auto token = ParseInt(item.substr(0, eq));
    auto bias = ParseReal(item.substr(eq + 1));
    if (!token.ok() || !bias.ok() || *token < 0 || *token > INT32_MAX) return Status::Error(bad);
    parsed.push_back({static_cast<int32_t>(*token), static_cast<float>(*bias)});
  } while (start <= text.size());
  out.insert(out.end(), parsed.begin(), parsed.end());
  return Status::Ok();
}

}  // namespace

std::string GenerationConfig::Describe() const {
  std::string s;
  auto add = [&](const std::string& part) { s += (s.empty() ? "" : ", ") + part; };
  if (do_sample) add(std::string("do_sample ") + (*do_sample ? "true" : "false (greedy)"));
  if (temperature) add("temperature " + Num(*temperature));
  if (top_k) add("top_k " + std::to_string(*top_k));
  if (top_p) add("top_p " + Num(*top_p));
  if (min_p) add("min_p " + Num(*min_p));
  if (repetition_penalty) add("repetition_penalty " + Num(*repetition_penalty));
  return s.empty() ? "no sampling fields" : s;
}

Expected<GenerationConfig> ParseGenerationConfig(std::string_view text, const std::string& label) {
  DSV3_RETURN_IF_ERROR(CheckJsonDepth(text, label));
  const json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::Error(label + ": not valid JSON");
  if (!j.is_object()) return Status::Error(label + ": not a JSON object");
  GenerationConfig c;
  c.path = label;
  DSV3_RETURN_IF_ERROR(ReadDoSample(j, label, c.do_sample));
  DSV3_RETURN_IF_ERROR(ReadReal(j, label, "temperature", [](float x) { return x >= 0.0f; }, "a number >= 0", c.temperature));
  DSV3_RETURN_IF_ERROR(ReadReal(j, label, "top_p", [](float x) { return x > 0.0f && x <= 1.0f; }, "in (0, 1]", c.top_p));
  DSV3_RETURN_IF_ERROR(ReadReal(j, label, "min_p", [](float x) { return x >= 0.0f && x <= 1.0f; }, "in [0, 1]", c.min_p));
  DSV3_RETURN_IF_ERROR(ReadReal(j, label, "repetition_penalty", [](float x) { return x > 0.0f && x <= 10.0f; },
                                "in (0, 10]", c.repetition_penalty));
  DSV3_RETURN_IF_ERROR(ReadTopK(j, label, c.top_k));
  return c;
}

Expected<GenerationConfig> LoadGenerationConfig(const std::string& model_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(model_path, ec)) return GenerationConfig{};
  const fs::path path = fs::path(model_path) / "generation_config.json";
  // Only a name that is not there means "no defaults": a dangling symlink,
  // a FIFO or an unreadable file under it is an error ReadTextFile names.
  if (fs::symlink_status(path, ec).type() == fs::file_type::not_found) return GenerationConfig{};
  DSV3_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path.string(), kMaxGenerationConfigBytes));
  return ParseGenerationConfig(text, path.string());
}

SamplingOptions ApplyGenerationConfig(const GenerationConfig& c, SamplingOptions base) {
  if (c.temperature) base.temperature = *c.temperature;
  if (c.top_k) base.top_k = *c.top_k;
  if (c.top_p) base.top_p = *c.top_p;
  if (c.min_p) base.min_p = *c.min_p;
  if (c.repetition_penalty) base.repetition_penalty = *c.repetition_penalty;
  if (c.do_sample == false) base.temperature = 0.0f;
  return base;
}

const std::vector<std::string>& SamplingParamNames() {
  static const std::vector<std::string> names = {"temperature",      "top_k",             "top_p",
                                                 "min_p",            "presence_penalty",  "frequency_penalty",
                                                 "repetition_penalty", "seed"};
  return names;
}

Status SetSamplingParam(SamplingOptions& o, std::string_view name, const std::string& value) {
  if (name == "logit_bias") return ParseLogitBias(value, o.logit_bias);
  if (name == "seed") {
    DSV3_ASSIGN_OR_RETURN(o.seed, ParseSeed(value));
    return Status::Ok();
  }
  if (name == "top_k") {
    DSV3_ASSIGN_OR_RETURN(int64_t k, ParseInt(value));
    if (k < INT32_MIN || k > INT32_MAX) return Status::Error("'" + value + "' is out of range for top_k");
    o.top_k = static_cast<int>(k);
    return Status::Ok();
  }
  float* field = name == "temperature"          ? &o.temperature
                 : name == "top_p"              ? &o.top_p
                 : name == "min_p"              ? &o.min_p
                 : name == "presence_penalty"   ? &o.presence_penalty
                 : name == "frequency_penalty"  ? &o.frequency_penalty
                 : name == "repetition_penalty" ? &o.repetition_penalty
                                                : nullptr;
  if (field == nullptr) return Status::Error("unknown sampling parameter '" + std::string(name) + "'");
  DSV3_ASSIGN_OR_RETURN(double v, ParseReal(value));
  if (!std::isfinite(static_cast<float>(v))) return Status::Error("'" + value + "' is out of range");
  *field = static_cast<float>(v);
  return Status::Ok();
}

std::string DescribeSampling(const SamplingOptions& o) {
  std::string s;
  auto add = [&](const std::string& part) { s += (s.empty() ? "" : ", ") + part; };
  if (o.greedy()) {
    add("greedy");
  } else {
    add("temperature " + Num(o.temperature));
    if (o.top_k > 0) add("top_k " + std::to_string(o.top_k));
    if (o.top_p < 1.0f) add("top_p " + Num(o.top_p));
    if (o.min_p > 0.0f) add("min_p " + Num(o.min_p));
    add("seed " + std::to_string(o.seed));
  }
  if (o.repetition_penalty != 1.0f) add("repetition_penalty " + Num(o.repetition_penalty));
  if (o.presence_penalty != 0.0f) add("presence_penalty " + Num(o.presence_penalty));
  if (o.frequency_penalty != 0.0f) add("frequency_penalty " + Num(o.frequency_penalty));
  if (!o.logit_bias.empty()) {
    std::string list = "logit_bias";
    for (const LogitBias& b : o.logit_bias) list.append(" ").append(std::to_string(b.token)).append("=").append(Num(b.bias));
    add(list);
  }
  return s;
}

}  // namespace dsv3
