#include "sip/source_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>

namespace sgw::sip {

namespace {

// ::ffff:a.b.c.d (RFC 4291 §2.5.5.2): the IPv4 address in the last 4 bytes.
bool v4_mapped(const std::uint8_t* b) {
  static constexpr std::uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(b, kPrefix, sizeof kPrefix) == 0;
}

bool prefix_equal(const std::uint8_t* a, const std::uint8_t* b, unsigned bits) {
  unsigned whole = bits / 8;
  if (std::memcmp(a, b, whole) != 0) return false;
  unsigned rest = bits % 8;
  if (rest == 0) return true;
  auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

}  // namespace

common::Result<SourceAllowList> SourceAllowList::parse(const std::vector<std::string>& cidrs) {
  SourceAllowList list;
  for (const auto& text : cidrs) {
    auto bad = [&](const std::string& why) {
      return common::make_error("config.invalid", "'" + text + "': " + why);
    };
    std::string_view addr = text;
    std::string_view len;
    if (auto slash = addr.find('/'); slash != std::string_view::npos) {
      len = addr.substr(slash + 1);
      addr = addr.substr(0, slash);
    }
    Entry e;
    std::string a(addr);
    if (inet_pton(AF_INET, a.c_str(), e.bytes.data()) == 1) {
      e.v6 = false;
    } else if (inet_pton(AF_INET6, a.c_str(), e.bytes.data()) == 1) {
      e.v6 = true;
    } else {
      return bad("expected ADDRESS or ADDRESS/PREFIX with a literal IPv4 or IPv6 address");
    }
    unsigned max = e.v6 ? 128 : 32;
    e.prefix = max;
    if (text.find('/') != std::string::npos) {
      unsigned n = 0;
      auto [p, ec] = std::from_chars(len.data(), len.data() + len.size(), n);
      if (len.empty() || ec != std::errc() || p != len.data() + len.size() || n > max)
        return bad("prefix length must be 0-" + std::to_string(max));
      e.prefix = n;
    }
    // A v4-mapped IPv6 entry is an IPv4 entry.
    if (e.v6 && v4_mapped(e.bytes.data()) && e.prefix >= 96) {
      std::memmove(e.bytes.data(), e.bytes.data() + 12, 4);
      e.v6 = false;
      e.prefix -= 96;
    }
    list.entries_.push_back(e);
  }
  return list;
}

bool SourceAllowList::matches(const std::uint8_t* bytes, bool v6) const {
  if (v6 && v4_mapped(bytes)) {
    bytes += 12;
    v6 = false;
  }
  for (const auto& e : entries_)
    if (e.v6 == v6 && prefix_equal(e.bytes.data(), bytes, e.prefix)) return true;
  return false;
}

bool SourceAllowList::allows(std::string_view address) const {
  if (entries_.empty()) return true;
  std::array<std::uint8_t, 16> b{};
  std::string a(address);
  if (inet_pton(AF_INET, a.c_str(), b.data()) == 1) return matches(b.data(), false);
  if (inet_pton(AF_INET6, a.c_str(), b.data()) == 1) return matches(b.data(), true);
  return false;
}

bool SourceAllowList::allows(const sockaddr* address, socklen_t length) const {
  if (entries_.empty()) return true;
  if (address == nullptr) return false;
  if (address->sa_family == AF_INET && length >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    sockaddr_in in{};
    std::memcpy(&in, address, sizeof in);
    return matches(reinterpret_cast<const std::uint8_t*>(&in.sin_addr), false);
  }
  if (address->sa_family == AF_INET6 && length >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, address, sizeof in6);
    return matches(in6.sin6_addr.s6_addr, true);
  }
  return false;
}

}  // namespace sgw::sip
