// Plain, owning copies of SIP requests and responses as the layers above sip/
// see them. Nothing here references sofia-sip; a Request outlives the callback
// that delivered it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sgw::sip {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct Request {
  std::string method;        // "INVITE", "OPTIONS", ...
  std::string request_uri;
  std::string call_id;
  std::string from;          // full header values
  std::string to;
  std::string contact;
  std::uint32_t cseq = 0;
  HeaderList headers;        // every header in arrival order, value as received (folded)
  std::string content_type;  // full Content-Type value incl. parameters; empty if none
  std::string body;
  std::string transport;     // "udp" / "tcp"
  std::string local_host;    // address:port the request arrived on
  std::string local_port;
  // The peer's IP address as the transport saw it (literal, IPv6 without
  // brackets; empty when unknown): who sent it, for per-source policy.
  std::string source_address;

  // All values of a header, case-insensitive name match; comma-joined lists
  // are returned as sent (one entry per header line).
  std::vector<std::string> header_values(std::string_view name) const;
  // First value or empty.
  std::string header(std::string_view name) const;
  // Option tags of Require / Supported / Proxy-Require, split on commas, lower-cased.
  std::vector<std::string> option_tags(std::string_view header_name) const;
};

struct Response {
  int status = 200;
  std::string reason;
  HeaderList headers;        // extra headers to add
  std::string content_type;  // empty: no body
  std::string body;
};

}  // namespace sgw::sip
