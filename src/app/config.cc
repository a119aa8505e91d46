// Start-up plane: configuration is read once, before any thread starts. yaml-cpp
// throws; its exceptions are caught in this file only and turned into one error
// line naming the file, the line and the key.
#include "app/config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cctype>
#include <charconv>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string_view>

#include <yaml-cpp/yaml.h>

#include "common/logging.h"
#include "common/strings.h"
#include "sip/source_policy.h"

namespace sgw::app {

using common::Error;
using common::make_error;
using common::Ok;
using common::Result;
using common::Status;

namespace {

// ---------------------------------------------------------------------------
// Value checks shared by the YAML loader, the flag overrides and validate().
// Each returns the problem without a key; the caller prefixes the key or flag.

constexpr std::array<std::string_view, 5> kCodecs{"PCMA", "PCMU", "G722", "opus", "G729"};
constexpr std::array<std::string_view, 7> kLogLevels{"trace", "debug", "info",    "warn",
                                                     "error", "critical", "off"};
constexpr std::array<std::string_view, 4> kRulePrefixes{"header:", "extension:", "regex:",
                                                        "metadata:"};

struct Range {
  std::uint64_t min;
  std::uint64_t max;
};
constexpr Range kMaxSessions{1, 1'000'000};
constexpr Range kRetryAfter{1, 86'400};
constexpr Range kMaxMessageBytes{1500, 16 * 1024 * 1024};
constexpr Range kUdpReceiveBuffer{65536, 256 * 1024 * 1024};
constexpr Range kAnswerDelay{0, 60000};
constexpr Range kTcpIdleTimeout{0, 86400};
constexpr Range kTcpMessageTimeout{0, 3600};
constexpr Range kMaxConnectionsPerSource{0, 100000};
constexpr Range kInviteRatePerSource{0, 100000};
constexpr Range kInviteBurstPerSource{1, 1'000'000};
constexpr Range kMaxSessionsPerSource{0, 1'000'000};
constexpr Range kMaxStreamsPerSession{1, 64};  // the SDP parser refuses more than 64 m-lines anyway
constexpr Range kReorderWindow{0, 2000};
constexpr Range kFsyncInterval{10, 60000};
constexpr Range kFinalizeWorkers{1, 64};
constexpr Range kFinalizeQueue{1, 1'000'000};
constexpr Range kFinalizeRescan{1, 86'400};
constexpr Range kSegment{0, 3600};           // recording.segment_s (0: shipping off)
constexpr Range kOrphanAfter{1, 86'400};     // recovery.orphan_after_s
constexpr Range kRecoveryInterval{1, 86'400};  // recovery.interval_s
constexpr Range kSilenceWarning{1, 86'400};
constexpr Range kMinFreeMb{0, 1'000'000'000};
constexpr Range kMaxBacklogAge{0, 30 * 86'400};
constexpr Range kDrainMax{0, 7 * 86'400};
constexpr Range kTlsHandshakeTimeout{100, 120'000};

Status check_format(std::string_view v) {
  if (v == "wav" || v == "wav-ulaw" || v == "wav-alaw" || v == "flac" || v == "ogg-opus") return Ok{};
  return make_error("config.invalid", "expected one of wav, wav-ulaw, wav-alaw, flac, ogg-opus, got '" +
                                          std::string(v) + "'");
}
Status check_channel(std::string_view v) {
  if (v == "left" || v == "right") return Ok{};
  return make_error("config.invalid", "expected left or right, got '" + std::string(v) + "'");
}
Status check_latch(std::string_view v) {
  if (v == "address_port" || v == "address") return Ok{};
  return make_error("config.invalid", "expected address_port or address, got '" + std::string(v) + "'");
}
Status check_tls_min_version(std::string_view v) {
  if (v == "1.2" || v == "1.3") return Ok{};
  return make_error("config.invalid", "expected 1.2 or 1.3, got '" + std::string(v) + "'");
}
Status check_srtp(std::string_view v) {
  if (v == "off" || v == "allow" || v == "require") return Ok{};
  return make_error("config.invalid", "expected off, allow or require, got '" + std::string(v) + "'");
}
Status check_stream_url(std::string_view v) {
  if (v.empty() || v.starts_with("ws://") || v.starts_with("wss://")) return Ok{};
  return make_error("config.invalid", "expected a ws:// or wss:// URL, got '" + std::string(v) + "'");
}
Status check_stream_protocol(std::string_view v) {
  if (v == "audiohook" || v == "plain") return Ok{};
  return make_error("config.invalid", "expected audiohook or plain, got '" + std::string(v) + "'");
}
Status check_spool_sync(std::string_view v) {
  if (v == "filesystem" || v == "file") return Ok{};
  return make_error("config.invalid", "expected filesystem or file, got '" + std::string(v) + "'");
}
Status check_multi_stream_mode(std::string_view v) {
  if (v == "multichannel" || v == "mono-files") return Ok{};
  return make_error("config.invalid", "expected multichannel or mono-files, got '" + std::string(v) + "'");
}
Status check_key_template(std::string_view v) {
  if (v.empty()) return make_error("config.invalid", "must not be empty");
  if (v.front() == '/') return make_error("config.invalid", "must be relative (no leading '/')");
  return Ok{};
}
constexpr Range kLocalRetentionDays{0, 36500};
constexpr Range kRetentionDays{0, 36500};
constexpr Range kRetentionYears{0, 100};
constexpr Range kMultipartThresholdMb{1, 5120};
constexpr Range kPartSizeMb{5, 5120};  // S3: parts are at least 5 MiB (but the last)
constexpr Range kParallelUploads{1, 64};
constexpr Range kMaxBackoff{1, 86'400};
constexpr Range kFallbackAfter{1, 86'400};  // s3.fallback_after_s

Status check_retention_mode(std::string_view v) {
  if (v.empty() || v == "COMPLIANCE" || v == "GOVERNANCE") return Ok{};
  return make_error("config.invalid", "expected COMPLIANCE or GOVERNANCE (or empty for none), got '" +
                                          std::string(v) + "'");
}
Status check_sse(std::string_view v) {
  if (v.empty() || v == "AES256" || v == "aws:kms") return Ok{};
  return make_error("config.invalid", "expected AES256 (SSE-S3) or aws:kms (SSE-KMS), or empty for none, got '" +
                                          std::string(v) + "'");
}
Status check_endpoint(std::string_view v) {
  if (v.empty() || v.rfind("http://", 0) == 0 || v.rfind("https://", 0) == 0) return Ok{};
  return make_error("config.invalid", "expected http://HOST[:PORT] or https://HOST[:PORT], got '" +
                                          std::string(v) + "'");
}
Status check_hook_url(std::string_view v) {
  if (v.empty() || v.rfind("http://", 0) == 0 || v.rfind("https://", 0) == 0) return Ok{};
  return make_error("config.invalid", "expected an http:// or https:// URL, got '" + std::string(v) + "'");
}
Status check_on_error(std::string_view v) {
  if (v == "record" || v == "reject") return Ok{};
  return make_error("config.invalid", "expected record or reject, got '" + std::string(v) + "'");
}
constexpr Range kHookTimeout{10, 60'000};
constexpr Range kEventTimeout{100, 60'000};
constexpr Range kEventBackoff{1, 3600};
Status check_prefix(std::string_view v) {
  if (!v.empty() && v.front() == '/') return make_error("config.invalid", "must not start with '/'");
  return Ok{};
}
constexpr Range kMediaWorkers{0, 1024};
constexpr Range kMediaTimeout{1, 86'400};
constexpr Range kMaxPaused{0, 2'592'000};         // 30 days
constexpr Range kMinSessionExpires{1, 86'400};
constexpr Range kMetadataMaxBytes{1024, 16 * 1024 * 1024};
constexpr Range kMetadataMaxDepth{1, 1024};
constexpr Range kStreamQueuePackets{16, 65536};
constexpr Range kStreamQueuedFrames{1, 3000};
constexpr Range kStreamDelay{20, 1000};
constexpr Range kStreamPing{0, 3600};
constexpr std::size_t kMaxNameLength = 63;

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string join(const auto& items) {
  std::string out;
  for (const auto& i : items) {
    if (!out.empty()) out += ", ";
    out += i;
  }
  return out;
}

// Unsigned decimal, no sign, no spaces, no trailing characters.
std::optional<std::uint64_t> parse_unsigned(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<std::uint16_t> parse_port(std::string_view s) {
  auto v = parse_unsigned(s);
  if (!v || *v < 1 || *v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(*v);
}

// Canonical text of a literal address, or nullopt. IPv6 without brackets.
std::optional<std::string> canonical_ip(std::string_view s) {
  if (s.empty() || s.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  std::string text(s);
  unsigned char buf[sizeof(struct in6_addr)];
  char out[INET6_ADDRSTRLEN];
  int family = text.find(':') == std::string::npos ? AF_INET : AF_INET6;
  if (inet_pton(family, text.c_str(), buf) != 1) return std::nullopt;
  if (inet_ntop(family, buf, out, sizeof(out)) == nullptr) return std::nullopt;
  return std::string(out);
}

bool is_unspecified(std::string_view canonical) {
  return canonical == "0.0.0.0" || canonical == "::";
}

// "ADDR:PORT" or "[V6]:PORT"; the problem text on failure quotes `shown`.
Result<HostPort> split_host_port(std::string_view s, std::string_view shown) {
  const auto bad = [&](std::string why) {
    return make_error("config.invalid", std::move(why) + ", got " + quoted(shown));
  };
  std::string_view host;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':')
      return bad("expected [IPV6]:PORT");
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
    if (host.find(':') == std::string_view::npos)
      return bad("brackets are only for IPv6 addresses");
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return bad("expected ADDR:PORT");
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    if (host.find(':') != std::string_view::npos)
      return bad("an IPv6 address must be in brackets, e.g. [::1]:5060");
  }
  auto ip = canonical_ip(host);
  if (!ip) return bad("expected a literal IPv4 or IPv6 address");
  auto p = parse_port(port);
  if (!p) return bad("expected a port 1-65535");
  return HostPort{*ip, *p};
}

Status check_range(std::uint64_t v, Range r) {
  if (v < r.min || v > r.max)
    return make_error("config.range", "expected " + std::to_string(r.min) + "-" +
                                          std::to_string(r.max) + ", got " + std::to_string(v));
  return Ok{};
}

// Node and region names end up in storage keys, log lines and metric labels.
Status check_name(std::string_view s) {
  if (s.empty()) return make_error("config.invalid", "must not be empty");
  if (s.size() > kMaxNameLength)
    return make_error("config.invalid",
                      "at most " + std::to_string(kMaxNameLength) + " characters, got " + quoted(s));
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok)
      return make_error("config.invalid",
                        "only letters, digits, '.', '_' and '-' are allowed, got " + quoted(s));
  }
  return Ok{};
}

Status check_non_empty(std::string_view s) {
  if (s.empty()) return make_error("config.invalid", "must not be empty");
  return Ok{};
}

struct PortRange {
  std::uint16_t min;
  std::uint16_t max;
};

constexpr std::string_view kRtpPortsRule =
    "expected MIN-MAX with 1 <= MIN < MAX <= 65535 and MIN even (RTP on even ports, RTCP on the "
    "next odd one)";

Status check_port_range(std::uint64_t min, std::uint64_t max, std::string_view shown) {
  if (min < 1 || max > 65535 || min >= max || min % 2 != 0)
    return make_error("config.range", std::string(kRtpPortsRule) + ", got " + quoted(shown));
  return Ok{};
}

Result<PortRange> parse_port_range(std::string_view s) {
  auto dash = s.find('-');
  if (dash == std::string_view::npos)
    return make_error("config.invalid", std::string(kRtpPortsRule) + ", got " + quoted(s));
  auto min = parse_unsigned(s.substr(0, dash));
  auto max = parse_unsigned(s.substr(dash + 1));
  if (!min || !max)
    return make_error("config.invalid", std::string(kRtpPortsRule) + ", got " + quoted(s));
  if (auto st = check_port_range(*min, *max, s); !st) return st.error();
  return PortRange{static_cast<std::uint16_t>(*min), static_cast<std::uint16_t>(*max)};
}

Result<std::string> canonical_log_level(std::string_view s) {
  auto lower = common::to_lower(s);
  for (auto l : kLogLevels)
    if (lower == l && common::valid_log_level(l)) return std::string(l);
  return make_error("config.invalid",
                    "expected one of " + join(kLogLevels) + ", got " + quoted(s));
}

Result<std::string> canonical_codec(std::string_view s) {
  for (auto c : kCodecs)
    if (common::iequals(s, c)) return std::string(c);
  return make_error("config.invalid",
                    "unknown codec " + quoted(s) + ", expected one of " + join(kCodecs));
}

// Canonicalises names and rejects unknown names and duplicates.
Result<std::vector<std::string>> canonical_codecs(const std::vector<std::string>& in) {
  if (in.empty()) return make_error("config.invalid", "at least one codec is required");
  std::vector<std::string> out;
  for (const auto& name : in) {
    auto c = canonical_codec(name);
    if (!c) return c.error();
    if (std::find(out.begin(), out.end(), *c) != out.end())
      return make_error("config.invalid", "codec " + quoted(*c) + " is listed twice");
    out.push_back(std::move(*c));
  }
  return out;
}

// Only the rule's kind is checked here; the metadata layer parses the rest.
Status check_rule(std::string_view rule) {
  if (rule.empty()) return make_error("config.invalid", "a rule must not be empty");
  if (rule == "call-id") return Ok{};
  for (auto p : kRulePrefixes) {
    if (rule.substr(0, p.size()) == p) {
      if (rule.size() == p.size())
        return make_error("config.invalid", "rule " + quoted(rule) + " has nothing after the ':'");
      return Ok{};
    }
  }
  return make_error("config.invalid",
                    "rule " + quoted(rule) +
                        " must be 'call-id' or start with header:, extension:, regex: or metadata:");
}

Status check_media_address(std::string_view s) {
  auto ip = canonical_ip(s);
  if (!ip)
    return make_error("config.invalid",
                      "expected a literal IPv4 or IPv6 address (no brackets), got " + quoted(s));
  // It is also the address put in the SDP answer's c= line; 0.0.0.0 there
  // means "hold" (RFC 3264 §8.4) and the SRC would send no media.
  if (is_unspecified(*ip))
    return make_error("config.invalid", "must be a specific address (it is advertised in SDP), got " +
                                            quoted(s));
  return Ok{};
}

Status check_http_listen(std::string_view s) {
  if (s.empty()) return Ok{};
  auto hp = split_host_port(s, s);
  if (!hp) return hp.error();
  return Ok{};
}

Status check_listen_list(const std::vector<ListenAddress>& list) {
  if (list.empty()) return make_error("config.invalid", "at least one listen address is required");
  std::set<std::string> seen;
  for (const auto& l : list) {
    auto ip = canonical_ip(l.address);
    if (!ip)
      return make_error("config.invalid", "expected a literal IPv4 or IPv6 address, got " +
                                              quoted(l.address));
    if (l.port == 0) return make_error("config.invalid", "port 0 in " + quoted(l.to_string()));
    ListenAddress canon = l;
    canon.address = *ip;
    if (!seen.insert(canon.to_string()).second)
      return make_error("config.invalid", "duplicate entry " + quoted(canon.to_string()));
    // tcp: and tls: on one address and port would both bind that TCP port.
    ListenAddress other = canon;
    if (canon.transport != Transport::kUdp) {
      other.transport = canon.transport == Transport::kTcp ? Transport::kTls : Transport::kTcp;
      if (seen.count(other.to_string()))
        return make_error("config.invalid", quoted(canon.to_string()) + " and " +
                                                quoted(other.to_string()) + " share a TCP port");
    }
  }
  return Ok{};
}

Error keyed(std::string_view key, const Error& e) {
  return make_error(e.code, std::string(key) + ": " + e.message);
}

// ---------------------------------------------------------------------------
// YAML reading.

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1);
  std::vector<std::size_t> cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

class Loader {
 public:
  Loader(std::string source, Config& config) : source_(std::move(source)), config_(config) {}

  Status load(const YAML::Node& root) {
    if (!root || root.IsNull()) return Ok{};  // empty document: all defaults
    if (!root.IsMap()) return fail(root, "", "config.type", "expected a map of sections at the top level");
    std::set<std::string> seen;
    for (auto it = root.begin(); it != root.end(); ++it) {
      auto name = key_text(it->first);
      if (!name) return fail(it->first, "", "config.type", "expected a section name");
      if (!seen.insert(*name).second)
        return fail(it->first, *name, "config.duplicate", "section given twice");
      auto st = section(*name, it->first, it->second);
      if (!st) return st;
    }
    return Ok{};
  }

 private:
  using Handler = std::function<Status(const std::string& key, const YAML::Node&)>;
  struct Field {
    std::string_view name;
    Handler handler;
  };

  std::string where(const YAML::Node& n) const {
    auto mark = n.Mark();
    if (mark.line < 0) return source_ + ": ";
    return source_ + ":" + std::to_string(mark.line + 1) + ": ";
  }

  Error fail(const YAML::Node& n, std::string_view key, std::string code, std::string_view msg) const {
    std::string m = where(n);
    if (!key.empty()) m += std::string(key) + ": ";
    m += msg;
    return make_error(std::move(code), std::move(m));
  }

  Error fail(const YAML::Node& n, std::string_view key, const Error& e) const {
    return fail(n, key, e.code, e.message);
  }

  static std::optional<std::string> key_text(const YAML::Node& n) {
    if (!n.IsScalar()) return std::nullopt;
    return n.Scalar();
  }

  static std::string describe(const YAML::Node& n) {
    if (n.IsNull()) return "nothing";
    if (n.IsSequence()) return "a list";
    if (n.IsMap()) return "a map";
    return quoted(n.Scalar());
  }

  Error type_error(const YAML::Node& n, std::string_view key, std::string_view expected) const {
    return fail(n, key, "config.type",
                "expected " + std::string(expected) + ", got " + describe(n));
  }

  Result<std::string> as_string(const std::string& key, const YAML::Node& n) const {
    if (!n.IsScalar()) return type_error(n, key, "a string");
    return n.Scalar();
  }

  Result<std::uint64_t> as_unsigned(const std::string& key, const YAML::Node& n, Range r) const {
    if (!n.IsScalar()) return type_error(n, key, "an unsigned integer");
    auto v = parse_unsigned(n.Scalar());
    if (!v) return type_error(n, key, "an unsigned integer");
    if (auto st = check_range(*v, r); !st) return fail(n, key, st.error());
    return *v;
  }

  Result<bool> as_bool(const std::string& key, const YAML::Node& n) const {
    if (n.IsScalar()) {
      auto s = common::to_lower(n.Scalar());
      if (s == "true" || s == "yes" || s == "on") return true;
      if (s == "false" || s == "no" || s == "off") return false;
    }
    return type_error(n, key, "a boolean (true or false)");
  }

  Result<std::vector<std::string>> as_string_list(const std::string& key, const YAML::Node& n) const {
    if (!n.IsSequence()) return type_error(n, key, "a list of strings");
    std::vector<std::string> out;
    std::size_t index = 0;
    for (const auto& item : n) {
      if (!item.IsScalar())
        return type_error(item, key + "[" + std::to_string(index) + "]", "a string");
      out.push_back(item.Scalar());
      ++index;
    }
    return out;
  }

  // Binds a handler that parses a value of one kind and stores it.
  Handler str(std::string& out, Status (*check)(std::string_view) = nullptr) {
    return [this, &out, check](const std::string& key, const YAML::Node& n) -> Status {
      auto v = as_string(key, n);
      if (!v) return v.error();
      if (check != nullptr)
        if (auto st = check(*v); !st) return fail(n, key, st.error());
      out = std::move(*v);
      return Ok{};
    };
  }
  template <typename T>
  Handler uint(T& out, Range r) {
    return [this, &out, r](const std::string& key, const YAML::Node& n) -> Status {
      auto v = as_unsigned(key, n, r);
      if (!v) return v.error();
      out = static_cast<T>(*v);
      return Ok{};
    };
  }
  Handler boolean(bool& out) {
    return [this, &out](const std::string& key, const YAML::Node& n) -> Status {
      auto v = as_bool(key, n);
      if (!v) return v.error();
      out = *v;
      return Ok{};
    };
  }

  std::vector<Field> fields_of(std::string_view section) {
    Config& c = config_;
    if (section == "node")
      return {{"name", str(c.node_name, check_name)}, {"region", str(c.region, check_name)}};
    if (section == "sip")
      return {{"listen", [this, &c](const std::string& key, const YAML::Node& n) -> Status {
                 if (!n.IsSequence()) return type_error(n, key, "a list of TRANSPORT:ADDR:PORT");
                 std::vector<ListenAddress> list;
                 for (const auto& item : n) {
                   if (!item.IsScalar()) return type_error(item, key, "TRANSPORT:ADDR:PORT");
                   auto l = parse_listen(item.Scalar());
                   if (!l) return fail(item, key, l.error());
                   list.push_back(std::move(*l));
                 }
                 if (auto st = check_listen_list(list); !st) return fail(n, key, st.error());
                 c.listen = std::move(list);
                 return Ok{};
               }},
              {"max_sessions", uint(c.max_sessions, kMaxSessions)},
              {"retry_after_s", uint(c.retry_after_s, kRetryAfter)},
              {"max_message_bytes", uint(c.max_message_bytes, kMaxMessageBytes)},
              {"udp_receive_buffer_bytes", uint(c.udp_receive_buffer_bytes, kUdpReceiveBuffer)},
              {"answer_delay_ms", uint(c.answer_delay_ms, kAnswerDelay)},
              {"tcp_idle_timeout_s", uint(c.tcp_idle_timeout_s, kTcpIdleTimeout)},
              {"tcp_message_timeout_s", uint(c.tcp_message_timeout_s, kTcpMessageTimeout)},
              {"max_connections_per_source",
               uint(c.max_connections_per_source, kMaxConnectionsPerSource)},
              {"min_session_expires_s", uint(c.min_session_expires_s, kMinSessionExpires)},
              {"allowed_sources", [this, &c](const std::string& key, const YAML::Node& n) -> Status {
                 auto v = as_string_list(key, n);
                 if (!v) return v.error();
                 if (auto list = sip::SourceAllowList::parse(*v); !list) return fail(n, key, list.error());
                 c.allowed_sources = std::move(*v);
                 return Ok{};
               }},
              {"invite_rate_per_source", uint(c.invite_rate_per_source, kInviteRatePerSource)},
              {"invite_burst_per_source", uint(c.invite_burst_per_source, kInviteBurstPerSource)},
              {"max_sessions_per_source", uint(c.max_sessions_per_source, kMaxSessionsPerSource)},
              {"max_streams_per_session", uint(c.max_streams_per_session, kMaxStreamsPerSession)}};
    if (section == "media")
      return {{"address", str(c.media_address, check_media_address)},
              {"rtp_ports", [this, &c](const std::string& key, const YAML::Node& n) -> Status {
                 auto v = as_string(key, n);
                 if (!v) return v.error();
                 auto r = parse_port_range(*v);
                 if (!r) return fail(n, key, r.error());
                 c.rtp_port_min = r->min;
                 c.rtp_port_max = r->max;
                 return Ok{};
               }},
              {"workers", uint(c.media_workers, kMediaWorkers)},
              {"timeout_s", uint(c.media_timeout_s, kMediaTimeout)},
              {"max_paused_s", uint(c.max_paused_s, kMaxPaused)},
              {"latch", str(c.latch, check_latch)},
              {"codecs", [this, &c](const std::string& key, const YAML::Node& n) -> Status {
                 auto v = as_string_list(key, n);
                 if (!v) return v.error();
                 auto codecs = canonical_codecs(*v);
                 if (!codecs) return fail(n, key, codecs.error());
                 c.codecs = std::move(*codecs);
                 return Ok{};
               }},
              {"srtp", str(c.srtp, check_srtp)},
              {"reorder_window_ms", uint(c.reorder_window_ms, kReorderWindow)}};
    if (section == "recording")
      return {{"dir", str(c.recordings_dir, check_non_empty)},
              {"spool_dir", str(c.spool_dir, check_non_empty)},
              {"format", str(c.recording_format, check_format)},
              {"key_template", str(c.key_template, check_key_template)},
              {"fsync_interval_ms", uint(c.fsync_interval_ms, kFsyncInterval)},
              {"spool_sync", str(c.spool_sync, check_spool_sync)},
              {"caller_channel", str(c.caller_channel, check_channel)},
              {"multi_stream_mode", str(c.multi_stream_mode, check_multi_stream_mode)},
              {"keep_spool", boolean(c.keep_spool)},
              {"finalize_workers", uint(c.finalize_workers, kFinalizeWorkers)},
              {"finalize_queue", uint(c.finalize_queue, kFinalizeQueue)},
              {"finalize_rescan_s", uint(c.finalize_rescan_s, kFinalizeRescan)},
              {"silence_warning_s", uint(c.silence_warning_s, kSilenceWarning)},
              {"min_free_mb", uint(c.min_free_mb, kMinFreeMb)},
              {"segment_s", uint(c.segment_s, kSegment)}};
    if (section == "storage")
      return {{"queue_dir", str(c.queue_dir)},
              {"local_retention_days", uint(c.local_retention_days, kLocalRetentionDays)},
              {"max_backlog_age_s", uint(c.max_backlog_age_s, kMaxBacklogAge)}};
    if (section == "drain") return {{"max_s", uint(c.drain_max_s, kDrainMax)}};
    if (section == "s3")
      return {{"bucket", str(c.s3_bucket)},
              {"endpoint", str(c.s3_endpoint, check_endpoint)},
              {"region", str(c.s3_region, check_non_empty)},
              {"path_style", boolean(c.s3_path_style)},
              {"prefix", str(c.s3_prefix, check_prefix)},
              {"key_template", str(c.s3_key_template, check_key_template)},
              {"retention_mode", str(c.s3_retention_mode, check_retention_mode)},
              {"retention_days", uint(c.s3_retention_days, kRetentionDays)},
              {"retention_years", uint(c.s3_retention_years, kRetentionYears)},
              {"legal_hold", boolean(c.s3_legal_hold)},
              {"sse", str(c.s3_sse, check_sse)},
              {"kms_key_id", str(c.s3_kms_key_id)},
              {"tags", [this, &c](const std::string& key, const YAML::Node& n) -> Status {
                 if (n.IsNull()) {
                   c.s3_tags.clear();
                   return Ok{};
                 }
                 if (!n.IsMap()) return type_error(n, key, "a map of tag names to values");
                 std::map<std::string, std::string> tags;
                 for (auto it = n.begin(); it != n.end(); ++it) {
                   if (!it->first.IsScalar() || !it->second.IsScalar())
                     return type_error(it->second, key, "a map of tag names to string values");
                   tags[it->first.Scalar()] = it->second.Scalar();
                 }
                 c.s3_tags = std::move(tags);
                 return Ok{};
               }},
              {"multipart_threshold_mb", uint(c.s3_multipart_threshold_mb, kMultipartThresholdMb)},
              {"part_size_mb", uint(c.s3_part_size_mb, kPartSizeMb)},
              {"parallel_uploads", uint(c.s3_parallel_uploads, kParallelUploads)},
              {"max_backoff_s", uint(c.s3_max_backoff_s, kMaxBackoff)},
              {"access_key", str(c.s3_access_key)},
              {"secret_key", str(c.s3_secret_key)},
              {"session_token", str(c.s3_session_token)},
              {"profile", str(c.s3_profile)},
              {"ca_file", str(c.s3_ca_file)},
              {"partials_bucket", str(c.s3_partials_bucket)},
              {"zone", str(c.s3_zone)},
              {"fallback_after_s", uint(c.s3_fallback_after_s, kFallbackAfter)},
              {"fallback_buckets", [this, &c](const std::string& key, const YAML::Node& n) -> Status {
                 c.s3_fallback_buckets.clear();
                 if (n.IsNull()) return Ok{};
                 if (!n.IsSequence()) return type_error(n, key, "a list of {bucket: NAME, zone: ZONE}");
                 for (std::size_t i = 0; i < n.size(); ++i) {
                   const YAML::Node& b = n[i];
                   std::string at = key + "[" + std::to_string(i) + "]";
                   if (!b.IsMap()) return type_error(b, at, "a map {bucket: NAME, zone: ZONE}");
                   Config::S3FallbackBucket fb;
                   for (auto it = b.begin(); it != b.end(); ++it) {
                     std::string name = it->first.Scalar();
                     if (name != "bucket" && name != "zone") return fail(it->first, at + "." + name, "config.unknown_key", "unknown key (bucket, zone)");
                     if (!it->second.IsScalar()) return type_error(it->second, at + "." + name, "a string");
                     (name == "bucket" ? fb.bucket : fb.zone) = it->second.Scalar();
                   }
                   c.s3_fallback_buckets.push_back(std::move(fb));
                 }
                 return Ok{};
               }}};
    if (section == "recovery")
      return {{"adopt", boolean(c.recovery_adopt)},
              {"orphan_after_s", uint(c.recovery_orphan_after_s, kOrphanAfter)},
              {"interval_s", uint(c.recovery_interval_s, kRecoveryInterval)}};
    if (section == "metadata")
      return {{"max_bytes", uint(c.metadata_max_bytes, kMetadataMaxBytes)},
              {"max_depth", uint(c.metadata_max_depth, kMetadataMaxDepth)},
              {"conversation_id_rules", [this, &c](const std::string& key, const YAML::Node& n) -> Status {
                 auto v = as_string_list(key, n);
                 if (!v) return v.error();
                 std::size_t index = 0;
                 for (const auto& rule : *v) {
                   if (auto st = check_rule(rule); !st)
                     return fail(n[index], key + "[" + std::to_string(index) + "]", st.error());
                   ++index;
                 }
                 c.conversation_id_rules = std::move(*v);
                 return Ok{};
               }}};
    if (section == "tls")
      return {{"cert_file", str(c.tls_cert_file)},
              {"key_file", str(c.tls_key_file)},
              {"ca_file", str(c.tls_ca_file)},
              {"verify_client", boolean(c.tls_verify_client)},
              {"allowed_subjects", [this, &c](const std::string& key, const YAML::Node& n) -> Status {
                 if (n.IsNull()) {
                   c.tls_allowed_subjects.clear();
                   return Ok{};
                 }
                 auto v = as_string_list(key, n);
                 if (!v) return v.error();
                 c.tls_allowed_subjects = std::move(*v);
                 return Ok{};
               }},
              {"ciphers", str(c.tls_ciphers)},
              {"min_version", str(c.tls_min_version, check_tls_min_version)},
              {"handshake_timeout_ms", uint(c.tls_handshake_timeout_ms, kTlsHandshakeTimeout)}};
    if (section == "stream")
      return {{"url", str(c.stream_url, check_stream_url)},
              {"protocol", str(c.stream_protocol, check_stream_protocol)},
              {"ca_file", str(c.stream_ca_file)},
              {"api_key", str(c.stream_api_key)},
              {"organization_id", str(c.stream_organization_id)},
              {"queue_packets", uint(c.stream_queue_packets, kStreamQueuePackets)},
              {"max_queued_frames", uint(c.stream_max_queued_frames, kStreamQueuedFrames)},
              {"delay_ms", uint(c.stream_delay_ms, kStreamDelay)},
              {"ping_interval_s", uint(c.stream_ping_interval_s, kStreamPing)}};
    if (section == "http")
      return {{"listen", [this, &c](const std::string& key, const YAML::Node& n) -> Status {
                 if (n.IsNull()) {  // "listen:" with no value: disabled
                   c.http_listen.clear();
                   return Ok{};
                 }
                 auto v = as_string(key, n);
                 if (!v) return v.error();
                 if (auto st = check_http_listen(*v); !st) return fail(n, key, st.error());
                 c.http_listen = std::move(*v);
                 return Ok{};
               }}};
    if (section == "log")
      return {{"level", [this, &c](const std::string& key, const YAML::Node& n) -> Status {
                 auto v = as_string(key, n);
                 if (!v) return v.error();
                 auto level = canonical_log_level(*v);
                 if (!level) return fail(n, key, level.error());
                 c.log_level = std::move(*level);
                 return Ok{};
               }},
              {"redact_personal_data", boolean(c.redact_personal_data)},
              {"redact", boolean(c.redact_personal_data)},
              {"format", [this, &c](const std::string& key, const YAML::Node& n) -> Status {
                 auto v = as_string(key, n);
                 if (!v) return v.error();
                 if (!common::valid_log_format(*v))
                   return fail(n, key, make_error("config.invalid", "expected text or json, got " + quoted(*v)));
                 c.log_format = std::move(*v);
                 return Ok{};
               }}};
    if (section == "hooks")
      return {{"invite_url", str(c.hooks_invite_url, check_hook_url)},
              {"update_url", str(c.hooks_update_url, check_hook_url)},
              {"timeout_ms", uint(c.hooks_timeout_ms, kHookTimeout)},
              {"on_error", str(c.hooks_on_error, check_on_error)}};
    if (section == "events")
      return {{"url", str(c.events_url, check_hook_url)},
              {"secret", str(c.events_secret)},
              {"timeout_ms", uint(c.events_timeout_ms, kEventTimeout)},
              {"max_backoff_s", uint(c.events_max_backoff_s, kEventBackoff)}};
    return {};
  }

  static constexpr std::array<std::string_view, 15> kSections{"node",     "sip",  "media", "recording",
                                                              "storage",  "s3",   "metadata", "http", "log",
                                                              "drain", "recovery", "tls", "stream", "hooks", "events"};

  // "did you mean" for a typo within edit distance 2 of a known key.
  std::string suggestion(std::string_view dotted) {
    std::string best;
    std::size_t best_d = 3;
    for (auto s : kSections) {
      for (const auto& f : fields_of(s)) {
        std::string full = std::string(s) + "." + std::string(f.name);
        auto d = edit_distance(dotted, full);
        if (d < best_d) {
          best_d = d;
          best = full;
        }
      }
      auto d = edit_distance(dotted, s);
      if (d < best_d) {
        best_d = d;
        best = std::string(s);
      }
    }
    return best.empty() ? "" : " (did you mean '" + best + "'?)";
  }

  Status section(const std::string& name, const YAML::Node& key_node, const YAML::Node& body) {
    auto fields = fields_of(name);
    if (fields.empty())
      return fail(key_node, "", "config.unknown_key",
                  "unknown key " + quoted(name) + suggestion(name));
    if (body.IsNull()) return Ok{};  // "sip:" with nothing under it
    if (!body.IsMap()) return type_error(body, name, "a map");
    std::set<std::string> seen;
    for (auto it = body.begin(); it != body.end(); ++it) {
      auto key = key_text(it->first);
      if (!key) return fail(it->first, name, "config.type", "expected a key name");
      std::string dotted = name + "." + *key;
      if (!seen.insert(*key).second)
        return fail(it->first, dotted, "config.duplicate", "key given twice");
      auto f = std::find_if(fields.begin(), fields.end(),
                            [&](const Field& fd) { return fd.name == *key; });
      if (f == fields.end())
        return fail(it->first, "", "config.unknown_key",
                    "unknown key " + quoted(dotted) + suggestion(dotted));
      if (auto st = f->handler(dotted, it->second); !st) return st;
    }
    return Ok{};
  }

  std::string source_;
  Config& config_;
};

}  // namespace

// ---------------------------------------------------------------------------

std::string ListenAddress::to_string() const {
  std::string out = transport == Transport::kUdp ? "udp:" : transport == Transport::kTcp ? "tcp:" : "tls:";
  if (address.find(':') != std::string::npos)
    out += "[" + address + "]";
  else
    out += address;
  out += ":" + std::to_string(port);
  return out;
}

Config default_config() {
  Config c;
  c.node_name = "siprecd";
  std::array<char, 256> host{};
  if (gethostname(host.data(), host.size() - 1) == 0) {
    host.back() = '\0';
    std::string name(host.data());
    if (check_name(name)) c.node_name = std::move(name);
  }
  c.listen = {ListenAddress{Transport::kUdp, "127.0.0.1", 5060},
              ListenAddress{Transport::kTcp, "127.0.0.1", 5060}};
  return c;
}

Result<ListenAddress> parse_listen(const std::string& text) {
  auto colon = text.find(':');
  const auto bad = [&](std::string why) {
    return make_error("config.invalid", std::move(why) + ", got " + quoted(text));
  };
  if (colon == std::string::npos) return bad("expected udp:ADDR:PORT, tcp:ADDR:PORT or tls:ADDR:PORT");
  ListenAddress out;
  auto transport = common::to_lower(std::string_view(text).substr(0, colon));
  if (transport == "udp")
    out.transport = Transport::kUdp;
  else if (transport == "tcp")
    out.transport = Transport::kTcp;
  else if (transport == "tls")
    out.transport = Transport::kTls;
  else
    return bad("transport must be udp, tcp or tls");
  auto hp = split_host_port(std::string_view(text).substr(colon + 1), text);
  if (!hp) return hp.error();
  out.address = std::move(hp->address);
  out.port = hp->port;
  return out;
}

Result<HostPort> parse_host_port(const std::string& text) { return split_host_port(text, text); }

// The tls.* rules; errors name the key. The files themselves are loaded (and
// a bad one named) when the TLS listener starts.
static Status tls_checks(const Config& c) {
  const auto bad = [](std::string_view key, std::string msg) {
    return make_error("config.invalid", std::string(key) + ": " + msg);
  };
  if (auto st = check_tls_min_version(c.tls_min_version); !st) return keyed("tls.min_version", st.error());
  if (auto st = check_range(c.tls_handshake_timeout_ms, kTlsHandshakeTimeout); !st)
    return keyed("tls.handshake_timeout_ms", st.error());
  bool tls = std::any_of(c.listen.begin(), c.listen.end(),
                         [](const ListenAddress& l) { return l.transport == Transport::kTls; });
  if (tls && c.tls_cert_file.empty()) return bad("tls.cert_file", "required by a tls: listen address");
  if (tls && c.tls_key_file.empty()) return bad("tls.key_file", "required by a tls: listen address");
  if (c.tls_verify_client && c.tls_ca_file.empty())
    return bad("tls.ca_file", "required with tls.verify_client: true");
  if (!c.tls_allowed_subjects.empty() && !c.tls_verify_client)
    return bad("tls.allowed_subjects", "needs tls.verify_client: true (subjects come from client certificates)");
  for (std::size_t i = 0; i < c.tls_allowed_subjects.size(); ++i)
    if (c.tls_allowed_subjects[i].empty())
      return bad("tls.allowed_subjects[" + std::to_string(i) + "]", "empty pattern");
  return Ok{};
}

// The s3.* cross-field rules; errors name the key.
static Status s3_checks(const Config& c) {
  const auto bad = [](std::string_view key, std::string msg) {
    return make_error("config.invalid", std::string(key) + ": " + msg);
  };
  if (auto st = check_endpoint(c.s3_endpoint); !st) return keyed("s3.endpoint", st.error());
  if (auto st = check_retention_mode(c.s3_retention_mode); !st) return keyed("s3.retention_mode", st.error());
  if (auto st = check_sse(c.s3_sse); !st) return keyed("s3.sse", st.error());
  if (auto st = check_prefix(c.s3_prefix); !st) return keyed("s3.prefix", st.error());
  if (auto st = check_key_template(c.s3_key_template); !st) return keyed("s3.key_template", st.error());
  if (c.s3_region.empty()) return bad("s3.region", "must not be empty");
  if (auto st = check_range(c.s3_retention_days, kRetentionDays); !st) return keyed("s3.retention_days", st.error());
  if (auto st = check_range(c.s3_retention_years, kRetentionYears); !st) return keyed("s3.retention_years", st.error());
  if (auto st = check_range(c.s3_multipart_threshold_mb, kMultipartThresholdMb); !st)
    return keyed("s3.multipart_threshold_mb", st.error());
  if (auto st = check_range(c.s3_part_size_mb, kPartSizeMb); !st) return keyed("s3.part_size_mb", st.error());
  if (auto st = check_range(c.s3_parallel_uploads, kParallelUploads); !st)
    return keyed("s3.parallel_uploads", st.error());
  if (auto st = check_range(c.s3_max_backoff_s, kMaxBackoff); !st) return keyed("s3.max_backoff_s", st.error());
  if (c.s3_retention_days > 0 && c.s3_retention_years > 0)
    return bad("s3.retention_years", "give s3.retention_days or s3.retention_years, not both");
  if (!c.s3_retention_mode.empty() && c.s3_retention_days == 0 && c.s3_retention_years == 0)
    return bad("s3.retention_days", "required (or s3.retention_years) when s3.retention_mode is " + c.s3_retention_mode);
  if (c.s3_retention_mode.empty() && (c.s3_retention_days > 0 || c.s3_retention_years > 0))
    return bad("s3.retention_mode", "required (COMPLIANCE or GOVERNANCE) when a retention period is set");
  if (!c.s3_kms_key_id.empty() && c.s3_sse != "aws:kms")
    return bad("s3.kms_key_id", "needs s3.sse: aws:kms");
  if (c.s3_access_key.empty() != c.s3_secret_key.empty())
    return bad(c.s3_access_key.empty() ? "s3.access_key" : "s3.secret_key",
               "s3.access_key and s3.secret_key go together");
  if (c.s3_bucket.empty() && (!c.s3_endpoint.empty() || !c.s3_retention_mode.empty() || !c.s3_prefix.empty()))
    return bad("s3.bucket", "required when other s3.* settings are given");
  // Partials (docs/failover.md) must be deletable: never in a bucket under Object Lock.
  if (!c.s3_partials_bucket.empty() && c.s3_bucket.empty())
    return bad("s3.partials_bucket", "needs s3.bucket (partials are shipped with the same endpoint and credentials)");
  if (c.s3_partials_bucket == c.s3_bucket && !c.s3_bucket.empty() && !c.s3_retention_mode.empty())
    return bad("s3.partials_bucket", "is s3.bucket, which has Object Lock (s3.retention_mode " + c.s3_retention_mode +
                                         "): partials would be undeletable; name a bucket without Object Lock");
  // Residency (docs/failover.md): a fallback bucket never leaves the primary's zone.
  if (auto st = check_range(c.s3_fallback_after_s, kFallbackAfter); !st) return keyed("s3.fallback_after_s", st.error());
  if (!c.s3_fallback_buckets.empty() && c.s3_bucket.empty())
    return bad("s3.fallback_buckets", "needs s3.bucket (fallbacks use its endpoint and credentials)");
  if (!c.s3_fallback_buckets.empty() && c.s3_zone.empty())
    return bad("s3.zone", "required with s3.fallback_buckets: the residency zone of s3.bucket");
  for (std::size_t i = 0; i < c.s3_fallback_buckets.size(); ++i) {
    const auto& fb = c.s3_fallback_buckets[i];
    const std::string at = "s3.fallback_buckets[" + std::to_string(i) + "]";
    if (fb.bucket.empty()) return bad(at + ".bucket", "required");
    if (fb.zone.empty()) return bad(at + ".zone", "required: the bucket's residency zone");
    if (fb.bucket == c.s3_bucket) return bad(at + ".bucket", "is s3.bucket itself");
    for (std::size_t j = 0; j < i; ++j)
      if (c.s3_fallback_buckets[j].bucket == fb.bucket) return bad(at + ".bucket", "listed twice");
    if (fb.zone != c.s3_zone)
      return bad(at + ".zone", "bucket " + fb.bucket + " is in zone '" + fb.zone + "', not s3.zone '" + c.s3_zone +
                                   "': recordings must not leave their residency zone");
  }
  if (auto st = check_range(c.segment_s, kSegment); !st) return keyed("recording.segment_s", st.error());
  if (auto st = check_range(c.recovery_orphan_after_s, kOrphanAfter); !st)
    return keyed("recovery.orphan_after_s", st.error());
  if (auto st = check_range(c.recovery_interval_s, kRecoveryInterval); !st)
    return keyed("recovery.interval_s", st.error());
  if (c.segment_s > 0 && c.recovery_orphan_after_s <= 2 * c.segment_s)
    return bad("recovery.orphan_after_s", "must be more than twice recording.segment_s (" +
                                              std::to_string(c.segment_s) + " s): a live call ships every segment");
  if (!c.events_url.empty() && c.events_secret.size() < 16)
    return bad("events.secret", "required when events.url is set: at least 16 characters (the signing key)");
  if (c.recovery_adopt && partials_bucket(c).empty())
    return bad("recovery.adopt", "needs s3.partials_bucket (or an s3.bucket without Object Lock)");
  return Ok{};
}

std::string partials_bucket(const Config& c) {
  if (!c.s3_partials_bucket.empty()) return c.s3_partials_bucket;
  return c.s3_retention_mode.empty() ? c.s3_bucket : std::string();
}

std::string delivery_queue_dir(const Config& c) {
  if (!c.queue_dir.empty()) return c.queue_dir;
  std::string spool = c.spool_dir;
  while (spool.size() > 1 && spool.back() == '/') spool.pop_back();
  auto slash = spool.rfind('/');
  if (slash == std::string::npos) return "deliveries";
  if (slash == 0) return "/deliveries";
  return spool.substr(0, slash) + "/deliveries";
}

Status validate(const Config& c) {
  const auto check = [](std::string_view key, const Status& st) -> Status {
    if (!st) return keyed(key, st.error());
    return Ok{};
  };
  if (auto st = check("node.name", check_name(c.node_name)); !st) return st;
  if (auto st = check("node.region", check_name(c.region)); !st) return st;
  if (auto st = check("sip.listen", check_listen_list(c.listen)); !st) return st;
  if (auto st = check("sip.max_sessions", check_range(c.max_sessions, kMaxSessions)); !st) return st;
  if (auto st = check("sip.retry_after_s", check_range(c.retry_after_s, kRetryAfter)); !st) return st;
  if (auto st = check("sip.max_message_bytes", check_range(c.max_message_bytes, kMaxMessageBytes)); !st)
    return st;
  if (auto st = check("sip.udp_receive_buffer_bytes",
                      check_range(c.udp_receive_buffer_bytes, kUdpReceiveBuffer));
      !st)
    return st;
  if (auto st = check("sip.tcp_idle_timeout_s", check_range(c.tcp_idle_timeout_s, kTcpIdleTimeout)); !st)
    return st;
  if (auto st = check("sip.tcp_message_timeout_s",
                      check_range(c.tcp_message_timeout_s, kTcpMessageTimeout));
      !st)
    return st;
  if (auto st = check("sip.max_connections_per_source",
                      check_range(c.max_connections_per_source, kMaxConnectionsPerSource));
      !st)
    return st;
  if (auto list = sip::SourceAllowList::parse(c.allowed_sources); !list)
    return keyed("sip.allowed_sources", list.error());
  if (auto st = check("sip.invite_rate_per_source", check_range(c.invite_rate_per_source, kInviteRatePerSource)); !st)
    return st;
  if (auto st = check("sip.invite_burst_per_source", check_range(c.invite_burst_per_source, kInviteBurstPerSource));
      !st)
    return st;
  if (auto st = check("sip.max_sessions_per_source", check_range(c.max_sessions_per_source, kMaxSessionsPerSource));
      !st)
    return st;
  if (auto st = check("sip.max_streams_per_session", check_range(c.max_streams_per_session, kMaxStreamsPerSession));
      !st)
    return st;
  if (auto st = check("media.address", check_media_address(c.media_address)); !st) return st;
  {
    std::string shown = std::to_string(c.rtp_port_min) + "-" + std::to_string(c.rtp_port_max);
    if (auto st = check("media.rtp_ports", check_port_range(c.rtp_port_min, c.rtp_port_max, shown)); !st)
      return st;
  }
  if (auto st = check("media.workers", check_range(c.media_workers, kMediaWorkers)); !st) return st;
  if (auto st = check("media.timeout_s", check_range(c.media_timeout_s, kMediaTimeout)); !st) return st;
  if (auto st = check("media.max_paused_s", check_range(c.max_paused_s, kMaxPaused)); !st) return st;
  if (auto st = check("media.latch", check_latch(c.latch)); !st) return st;
  if (auto st = check("media.srtp", check_srtp(c.srtp)); !st) return st;
  if (auto st = check("sip.min_session_expires_s", check_range(c.min_session_expires_s, kMinSessionExpires)); !st)
    return st;
  {
    auto codecs = canonical_codecs(c.codecs);
    if (!codecs) return keyed("media.codecs", codecs.error());
    if (*codecs != c.codecs)
      return make_error("config.invalid", "media.codecs: use the canonical spelling " +
                                              join(*codecs));
  }
  if (auto st = check("recording.dir", check_non_empty(c.recordings_dir)); !st) return st;
  if (auto st = check("recording.spool_dir", check_non_empty(c.spool_dir)); !st) return st;
  if (c.recordings_dir == c.spool_dir)
    return make_error("config.invalid",
                      "recording.spool_dir: must differ from recording.dir (both are " +
                          quoted(c.spool_dir) + ")");
  if (auto st = check("storage.local_retention_days", check_range(c.local_retention_days, kLocalRetentionDays)); !st)
    return st;
  if (auto st = check("storage.max_backlog_age_s", check_range(c.max_backlog_age_s, kMaxBacklogAge)); !st)
    return st;
  if (auto st = check("recording.min_free_mb", check_range(c.min_free_mb, kMinFreeMb)); !st) return st;
  if (auto st = check("drain.max_s", check_range(c.drain_max_s, kDrainMax)); !st) return st;
  if (auto st = s3_checks(c); !st) return st;
  if (auto st = tls_checks(c); !st) return st;
  if (auto st = check("metadata.max_bytes", check_range(c.metadata_max_bytes, kMetadataMaxBytes)); !st)
    return st;
  if (auto st = check("metadata.max_depth", check_range(c.metadata_max_depth, kMetadataMaxDepth)); !st)
    return st;
  for (std::size_t i = 0; i < c.conversation_id_rules.size(); ++i)
    if (auto st = check_rule(c.conversation_id_rules[i]); !st)
      return keyed("metadata.conversation_id_rules[" + std::to_string(i) + "]", st.error());
  if (auto st = check("http.listen", check_http_listen(c.http_listen)); !st) return st;
  if (auto st = check("stream.url", check_stream_url(c.stream_url)); !st) return st;
  if (auto st = check("stream.protocol", check_stream_protocol(c.stream_protocol)); !st) return st;
  if (auto st = check("stream.queue_packets", check_range(c.stream_queue_packets, kStreamQueuePackets)); !st)
    return st;
  if (auto st = check("stream.max_queued_frames", check_range(c.stream_max_queued_frames, kStreamQueuedFrames));
      !st)
    return st;
  if (auto st = check("stream.delay_ms", check_range(c.stream_delay_ms, kStreamDelay)); !st) return st;
  if (auto st = check("stream.ping_interval_s", check_range(c.stream_ping_interval_s, kStreamPing)); !st)
    return st;
  {
    auto level = canonical_log_level(c.log_level);
    if (!level) return keyed("log.level", level.error());
    if (*level != c.log_level)
      return make_error("config.invalid", "log.level: use lower case, got " + quoted(c.log_level));
  }
  if (!common::valid_log_format(c.log_format))
    return make_error("config.invalid", "log.format: expected text or json, got " + quoted(c.log_format));
  return Ok{};
}

Result<Config> load_config_text(const std::string& text, const std::string& source) {
  Config config = default_config();
  try {
    std::vector<YAML::Node> docs = YAML::LoadAll(text);
    if (docs.size() > 1)
      return make_error("config.syntax", source + ": expected one YAML document, found " +
                                             std::to_string(docs.size()));
    if (!docs.empty()) {
      Loader loader(source, config);
      if (auto st = loader.load(docs.front()); !st) return st.error();
    }
  } catch (const YAML::Exception& e) {
    std::string where = source;
    if (e.mark.line >= 0)
      where += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
    return make_error("config.syntax", where + ": YAML syntax error: " + e.msg);
  } catch (const std::exception& e) {
    return make_error("config.syntax", source + ": " + e.what());
  }
  if (auto st = validate(config); !st) return keyed(source, st.error());
  return config;
}

Result<Config> load_config_file(const std::string& path) {
  // POSIX I/O rather than iostreams: a directory or an I/O error must be
  // reported with its errno, not read as an empty (all-defaults) file.
  constexpr std::size_t kMaxFileBytes = 1024 * 1024;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return make_error("config.file",
                      path + ": cannot open config file: " + std::strerror(errno));
  std::string text;
  std::array<char, 8192> buf{};
  while (true) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return make_error("config.file", path + ": cannot read config file: " + std::strerror(err));
    }
    if (n == 0) break;
    text.append(buf.data(), static_cast<std::size_t>(n));
    if (text.size() > kMaxFileBytes) {
      ::close(fd);
      return make_error("config.file", path + ": config file larger than 1 MiB");
    }
  }
  ::close(fd);
  return load_config_text(text, path);
}

Result<Config> apply_overrides(Config config, const CliOverrides& cli) {
  if (!cli.listen.empty()) {
    std::vector<ListenAddress> list;
    for (const auto& text : cli.listen) {
      auto l = parse_listen(text);
      if (!l) return keyed("--listen", l.error());
      list.push_back(std::move(*l));
    }
    if (auto st = check_listen_list(list); !st) return keyed("--listen", st.error());
    config.listen = std::move(list);
  }
  if (!cli.media_address.empty()) {
    if (auto st = check_media_address(cli.media_address); !st)
      return keyed("--media-address", st.error());
    config.media_address = cli.media_address;
  }
  if (!cli.rtp_ports.empty()) {
    auto r = parse_port_range(cli.rtp_ports);
    if (!r) return keyed("--rtp-ports", r.error());
    config.rtp_port_min = r->min;
    config.rtp_port_max = r->max;
  }
  if (!cli.recordings_dir.empty()) config.recordings_dir = cli.recordings_dir;
  if (!cli.spool_dir.empty()) config.spool_dir = cli.spool_dir;
  if (!cli.http_listen.empty()) {
    if (auto st = check_http_listen(cli.http_listen); !st) return keyed("--http", st.error());
    config.http_listen = cli.http_listen;
  }
  if (!cli.log_level.empty()) {
    auto level = canonical_log_level(cli.log_level);
    if (!level) return keyed("--log-level", level.error());
    config.log_level = std::move(*level);
  }
  if (!cli.s3_bucket.empty()) config.s3_bucket = cli.s3_bucket;
  if (!cli.s3_endpoint.empty()) {
    if (auto st = check_endpoint(cli.s3_endpoint); !st) return keyed("--s3-endpoint", st.error());
    config.s3_endpoint = cli.s3_endpoint;
  }
  if (!cli.s3_region.empty()) config.s3_region = cli.s3_region;
  if (cli.s3_path_style) config.s3_path_style = true;
  if (!cli.s3_prefix.empty()) {
    if (auto st = check_prefix(cli.s3_prefix); !st) return keyed("--s3-prefix", st.error());
    config.s3_prefix = cli.s3_prefix;
  }
  if (!cli.retention_mode.empty()) {
    std::string mode = cli.retention_mode;
    for (auto& ch : mode) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    if (auto st = check_retention_mode(mode); !st) return keyed("--retention-mode", st.error());
    config.s3_retention_mode = mode;
  }
  if (!cli.retention_days.empty()) {
    auto v = parse_unsigned(cli.retention_days);
    if (!v) return make_error("config.invalid", "--retention-days: expected an unsigned integer, got " +
                                                    quoted(cli.retention_days));
    if (auto st = check_range(*v, kRetentionDays); !st) return keyed("--retention-days", st.error());
    config.s3_retention_days = static_cast<std::uint32_t>(*v);
    config.s3_retention_years = 0;
  }
  if (auto st = validate(config); !st) return st.error();
  return config;
}

std::uint64_t descriptors_required(const Config& config) {
  return static_cast<std::uint64_t>(config.rtp_port_max - config.rtp_port_min + 1) + kDescriptorHeadroom;
}

std::uint64_t descriptors_needed(const Config& config) {
  // A spool per session, and while shipping (docs/failover.md) each partial waiting for its upload
  // holds a descriptor per spool.
  const std::uint64_t shipping = config.segment_s > 0 && !config.s3_bucket.empty() ? kPartialsInFlight : 0;
  return descriptors_required(config) + config.max_sessions * (1 + shipping);
}

}  // namespace sgw::app
