// SDP (RFC 8866, formerly RFC 4566) parsed into a plain model for the SRS's offer/answer.
//
// Hand-written rather than sofia-sip's sdp_parse() so that sofia stays inside sip/ and so that we
// can tolerate what real SBCs send (see docs/sdp.md). The parser is on the message path: it never
// throws and never asserts on input; every failure is a common::Error with a stable code.
//
// Thread: any. The returned model owns all its strings (it copies out of the input view).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sgw::siprec {

// Media direction attributes, RFC 8866 §6.7 / RFC 3264 §5.1.
enum class Direction { kSendRecv, kSendOnly, kRecvOnly, kInactive };

// "sendrecv", "sendonly", "recvonly", "inactive".
std::string_view to_string(Direction d);

// o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>, RFC 8866 §5.2.
struct Origin {
  std::string username;
  std::string session_id;
  std::string session_version;
  std::string net_type;   // "IN"
  std::string addr_type;  // "IP4" / "IP6"
  std::string address;
};

// c=<nettype> <addrtype> <connection-address>, RFC 8866 §5.7. `address` has any /ttl/count removed.
struct Connection {
  std::string net_type;
  std::string addr_type;
  std::string address;
};

// a=<name>[:<value>] kept verbatim (name as received).
struct Attribute {
  std::string name;
  std::string value;
  bool has_value = false;
};

// Any other line kept verbatim, e.g. {'b', "AS:64"} or {'t', "0 0"}.
struct SdpLine {
  char type = 0;
  std::string value;
};

// One RTP payload format of an m= line: the numeric fmt token resolved through a=rtpmap
// (RFC 8866 §6.6) or, when there is no a=rtpmap, through the RFC 3551 static table.
struct PayloadFormat {
  int payload_type = 0;
  std::string encoding;          // as offered, e.g. "PCMA", "opus"; empty if unresolved
  std::uint32_t clock_rate = 0;  // 0 if unresolved
  std::uint32_t channels = 1;    // audio channels from the rtpmap encoding parameters
  std::string fmtp;              // a=fmtp parameters for this PT, empty if none
  bool from_static_table = false;

  bool resolved() const { return !encoding.empty(); }
};

// a=crypto:<tag> <crypto-suite> <key-params> [<session-params>], RFC 4568 §9.1.
struct Crypto {
  std::uint32_t tag = 0;
  std::string suite;
  std::string key_params;
  std::string session_params;
};

struct MediaDescription {
  std::string media;               // "audio", "video", "application", ...
  std::uint16_t port = 0;
  std::uint16_t port_count = 1;    // m=audio 49170/2 ... -> 2
  std::string proto;               // "RTP/AVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVP", ...
  std::vector<std::string> formats;      // fmt tokens in m= order
  std::vector<PayloadFormat> payloads;   // numeric fmts of an RTP proto, in m= order

  std::optional<Connection> connection;  // effective: media c= else session c=
  bool has_media_connection = false;     // true if the c= came from the media section
  Direction direction = Direction::kSendRecv;  // effective: media a= else session a= else sendrecv
  bool has_media_direction = false;

  std::optional<std::string> label;      // a=label, RFC 4574
  bool rtcp_mux = false;                 // a=rtcp-mux, RFC 5761
  std::optional<std::uint16_t> rtcp_port;  // a=rtcp, RFC 3605
  std::vector<Crypto> crypto;            // a=crypto, RFC 4568
  std::optional<std::uint32_t> ptime;    // a=ptime (ms)
  std::vector<Attribute> attributes;     // every other a= line, in order
  std::vector<SdpLine> other_lines;      // i=, b=, k=, unknown letters, in order

  // The payload format with this PT, or nullptr. The pointer lives as long as this object.
  const PayloadFormat* find_payload(int pt) const;
  // True if the proto is an RTP profile (contains "RTP/").
  bool is_rtp() const;
  // True if the proto is a secure RTP profile (RTP/SAVP, RTP/SAVPF, UDP/TLS/RTP/SAVP[F]).
  bool is_srtp() const;
};

struct SessionDescription {
  std::optional<Origin> origin;
  std::string session_name;                // s=, empty if missing
  std::optional<Connection> connection;    // session-level c=
  std::optional<Direction> direction;      // session-level direction attribute, if any
  std::vector<Attribute> attributes;       // other session-level a= lines, in order
  std::vector<SdpLine> other_lines;        // t=, b=, i=, unknown letters, ..., in order
  std::vector<MediaDescription> media;
};

// Limits applied by parse_sdp (inputs above them are rejected, not truncated).
inline constexpr std::size_t kMaxSdpBytes = 64 * 1024;
inline constexpr std::size_t kMaxSdpMedia = 64;

// Parses an SDP body.
// Tolerates: LF or CRLF line ends, leading/trailing whitespace on lines, blank lines, missing s=/t=,
// unknown line types and attributes (kept), malformed a=rtpmap/fmtp/rtcp/crypto/ptime (kept as plain
// attributes and otherwise ignored), zero m= lines (the answer step rejects that).
// Error codes: "sdp.too_large", "sdp.no_version" (first line is not v=), "sdp.bad_version",
// "sdp.malformed" (a line not of the form <letter>=...), "sdp.bad_origin", "sdp.bad_connection",
// "sdp.bad_media" (m= line with too few fields or a bad port/port count), "sdp.too_many_media".
common::Result<SessionDescription> parse_sdp(std::string_view text);

// RFC 3551 §6 static payload type table: {encoding, clock, channels} or nullopt for dynamic/unassigned.
std::optional<PayloadFormat> static_payload_format(int pt);

}  // namespace sgw::siprec
