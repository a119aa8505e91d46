// SourceAllowList: which peer addresses may talk SIP to us (sip.allowed_sources).
//
// A list of CIDR prefixes, IPv4 ("192.0.2.0/24", "10.1.2.3") and IPv6
// ("2001:db8::/32", "::1"); an address without a prefix length is one host.
// IPv4-mapped IPv6 peers (::ffff:192.0.2.7, a dual-stack socket) are matched
// against the IPv4 entries. An empty list allows everyone.
//
// The one policy function for every transport: UDP/TCP requests are answered
// 403 by the session manager, a TLS connection from a refused address is
// closed by the transport right after accept (call allows(sockaddr)).
//
// Thread: immutable after parse(); any thread may call allows().
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sgw::sip {

class SourceAllowList {
 public:
  SourceAllowList() = default;  // allows everyone

  // Parses the list; an error names the entry ("'10.0.0.0/33': prefix
  // length must be 0-32"). Start-up plane.
  static common::Result<SourceAllowList> parse(const std::vector<std::string>& cidrs);

  bool empty() const { return entries_.empty(); }
  // A literal address (IPv6 without brackets). False for an unparsable one
  // unless the list is empty.
  bool allows(std::string_view address) const;
  // A peer's socket address (AF_INET or AF_INET6); other families are refused
  // unless the list is empty.
  bool allows(const sockaddr* address, socklen_t length) const;

 private:
  struct Entry {
    std::array<std::uint8_t, 16> bytes{};  // IPv4 in the first 4
    bool v6 = false;
    unsigned prefix = 0;
  };
  bool matches(const std::uint8_t* bytes, bool v6) const;

  std::vector<Entry> entries_;
};

}  // namespace sgw::sip
