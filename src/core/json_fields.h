// Reading optional fields of untrusted JSON without exceptions.
// nlohmann's `j.value("type", "")` throws type_error when the field exists
// with another type ({"type": {}}), which a crafted tokenizer.json, chat file
// or request turned into an abort. These read a field of the expected type
// or give the fallback; callers that must reject a wrong type check
// is_string()/is_boolean() themselves and name the field. Templates over the
// JSON type, so core/ stays free of the JSON library.
#pragma once

#include <cstdint>
#include <string>

namespace dsv3 {

// j[key] if j is an object holding a string there, else `fallback`.
template <typename Json>
std::string StringField(const Json& j, const char* key, const std::string& fallback = "") {
  if (!j.is_object()) return fallback;
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->template get<std::string>() : fallback;
}

// j[key] if it is a boolean, else `fallback`.
template <typename Json>
bool BoolField(const Json& j, const char* key, bool fallback) {
  if (!j.is_object()) return fallback;
  const auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->template get<bool>() : fallback;
}

// j[key] if it is an integer that fits int64, else `fallback`.
template <typename Json>
int64_t IntField(const Json& j, const char* key, int64_t fallback) {
  if (!j.is_object()) return fallback;
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return fallback;
  if (it->is_number_unsigned() && it->template get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) return fallback;
  return it->template get<int64_t>();
}

}  // namespace dsv3
