// Small bounds-checked text helpers shared by the SDP, multipart and offer/answer code.
// Internal to the siprec body-handling library (namespace detail); not a public interface.
#pragma once

#include <charconv>
#include <initializer_list>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sgw::siprec::detail {

inline bool is_space(char c) { return c == ' ' || c == '\t'; }

// Splits on runs of spaces/tabs; no empty tokens. SBCs sometimes emit double spaces.
inline std::vector<std::string_view> split_ws(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    std::size_t start = i;
    while (i < s.size() && !is_space(s[i])) ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

// Parses a whole string of decimal digits into T; nullopt on empty, sign, junk or overflow.
template <typename T>
std::optional<T> parse_uint(std::string_view s, T max = std::numeric_limits<T>::max()) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  for (char c : s)
    if (c < '0' || c > '9') return std::nullopt;
  std::uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || ptr != s.data() + s.size()) return std::nullopt;
  if (v > static_cast<std::uint64_t>(max)) return std::nullopt;
  return static_cast<T>(v);
}

// Copies `s` keeping only printable ASCII, replacing others (and '"', '\\') with '?'; at most `max`
// characters. For peer-provided text that ends up in log lines and SIP Warning headers.
inline std::string printable(std::string_view s, std::size_t max = 64) {
  std::string out;
  for (char c : s) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    out += (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? c : '?';
  }
  return out;
}

// Appends pieces in order. Used instead of chains of operator+ on temporaries, which GCC 12 -O2
// flags with a false -Wrestrict (GCC bug 105651).
inline void append(std::string& out, std::initializer_list<std::string_view> pieces) {
  for (auto p : pieces) out.append(p);
}

}  // namespace sgw::siprec::detail
