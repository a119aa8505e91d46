// Result<T>: a value or an error, returned by everything on a message/packet path.
// Errors carry a machine-readable code and a human-readable message; nothing throws.
// A layer with richer errors names its own type: Result<T, E> (storage::S3Result).
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace sgw::common {

struct Error {
  std::string code;     // short, stable identifier, e.g. "sdp.no_media"
  std::string message;  // one line for logs and SIP reason phrases
};

template <typename T, typename E = Error>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}            // NOLINT: implicit by design
  Result(E error) : v_(std::move(error)) {}            // NOLINT: implicit by design

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return std::get<0>(v_); }
  const T& operator*() const& { return std::get<0>(v_); }

  const E& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, E> v_;
};

// Result<void> equivalent.
struct Ok {};
using Status = Result<Ok>;

inline Error make_error(std::string code, std::string message) {
  return Error{std::move(code), std::move(message)};
}

}  // namespace sgw::common
