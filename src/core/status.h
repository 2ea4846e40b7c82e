// Errors as values. Every boundary (files, configs, requests, flags) returns a
// Status or an Expected<T> whose message names the culprit (file, tensor,
// field or parameter) so the CLI can print one clear line and exit non-zero.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace dsv3 {

class Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(std::string message) { return Status(std::move(message), true); }

  bool ok() const { return !failed_; }
  const std::string& message() const { return message_; }

  // Prefixes context ("loading X: ") to an error; no-op on success.
  Status WithContext(const std::string& context) const {
    if (ok()) return *this;
    return Error(context + ": " + message_);
  }

 private:
  Status(std::string message, bool failed) : message_(std::move(message)), failed_(failed) {}
  std::string message_;
  bool failed_ = false;
};

// A value or the Status explaining why there is none.
template <typename T>
class Expected {
 public:
  Expected(T value) : data_(std::move(value)) {}  // NOLINT: implicit by design
  Expected(Status status) : data_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(data_).ok());
  }

  bool ok() const { return std::holds_alternative<T>(data_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(data_);
  }
  T& value() & { return std::get<T>(data_); }
  const T& value() const& { return std::get<T>(data_); }
  T&& value() && { return std::get<T>(std::move(data_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace dsv3

// Returns early from the enclosing function with the error of `expr`.
#define DSV3_RETURN_IF_ERROR(expr)          \
  do {                                      \
    ::dsv3::Status dsv3_status_ = (expr);   \
    if (!dsv3_status_.ok()) return dsv3_status_; \
  } while (0)

#define DSV3_CONCAT_INNER(a, b) a##b
#define DSV3_CONCAT(a, b) DSV3_CONCAT_INNER(a, b)
// Declares `lhs` from an Expected, returning its Status on failure.
#define DSV3_ASSIGN_OR_RETURN(lhs, expr)                                   \
  auto DSV3_CONCAT(dsv3_expected_, __LINE__) = (expr);                      \
  if (!DSV3_CONCAT(dsv3_expected_, __LINE__).ok())                          \
    return DSV3_CONCAT(dsv3_expected_, __LINE__).status();                  \
  lhs = std::move(DSV3_CONCAT(dsv3_expected_, __LINE__)).value()
