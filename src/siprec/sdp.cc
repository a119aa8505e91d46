#include "siprec/sdp.h"

#include <map>
#include <utility>

#include "common/strings.h"
#include "siprec/parse_util.h"

namespace sgw::siprec {

namespace {

using common::make_error;
using detail::parse_uint;
using detail::split_ws;

std::optional<Direction> direction_from_attribute(std::string_view name) {
  if (common::iequals(name, "sendrecv")) return Direction::kSendRecv;
  if (common::iequals(name, "sendonly")) return Direction::kSendOnly;
  if (common::iequals(name, "recvonly")) return Direction::kRecvOnly;
  if (common::iequals(name, "inactive")) return Direction::kInactive;
  return std::nullopt;
}

Attribute split_attribute(std::string_view v) {
  Attribute a;
  auto colon = v.find(':');
  if (colon == std::string_view::npos) {
    a.name = std::string(v);
  } else {
    a.name = std::string(v.substr(0, colon));
    a.value = std::string(v.substr(colon + 1));
    a.has_value = true;
  }
  return a;
}

// "<pt> <encoding>/<clock>[/<channels>]", RFC 8866 §6.6.
struct ParsedRtpmap {
  int pt;
  std::string encoding;
  std::uint32_t clock;
  std::uint32_t channels;
};
std::optional<ParsedRtpmap> parse_rtpmap(std::string_view v) {
  auto tok = split_ws(v);
  if (tok.size() < 2) return std::nullopt;
  auto pt = parse_uint<int>(tok[0], 127);
  if (!pt) return std::nullopt;
  auto parts = common::split(tok[1], '/');
  if (parts.size() < 2 || parts.size() > 3 || parts[0].empty()) return std::nullopt;
  auto clock = parse_uint<std::uint32_t>(parts[1]);
  if (!clock || *clock == 0) return std::nullopt;
  std::uint32_t channels = 1;
  if (parts.size() == 3) {
    auto ch = parse_uint<std::uint32_t>(parts[2], 255);
    if (!ch || *ch == 0) return std::nullopt;
    channels = *ch;
  }
  return ParsedRtpmap{*pt, std::string(parts[0]), *clock, channels};
}

// "<tag> <suite> <key-params> [<session-params>...]", RFC 4568 §9.1.
std::optional<Crypto> parse_crypto(std::string_view v) {
  auto tok = split_ws(v);
  if (tok.size() < 3) return std::nullopt;
  auto tag = parse_uint<std::uint32_t>(tok[0], 999999999);
  if (!tag) return std::nullopt;
  Crypto c;
  c.tag = *tag;
  c.suite = std::string(tok[1]);
  c.key_params = std::string(tok[2]);
  for (std::size_t i = 3; i < tok.size(); ++i) {
    if (!c.session_params.empty()) c.session_params += ' ';
    c.session_params += tok[i];
  }
  return c;
}

// a=ptime:<ms>; tolerates a fractional part ("20.0"), which some gateways send.
std::optional<std::uint32_t> parse_ptime(std::string_view v) {
  v = common::trim(v);
  auto dot = v.find('.');
  if (dot != std::string_view::npos) v = v.substr(0, dot);
  auto p = parse_uint<std::uint32_t>(v, 10000);
  if (!p || *p == 0) return std::nullopt;
  return p;
}

std::optional<Connection> parse_connection(std::string_view v) {
  auto tok = split_ws(v);
  if (tok.size() != 3) return std::nullopt;
  Connection c;
  c.net_type = std::string(tok[0]);
  c.addr_type = std::string(tok[1]);
  // RFC 8866 §5.7: IPv4 multicast carries /ttl[/count]; IPv6 multicast /count. Unicast has neither.
  std::string_view addr = tok[2];
  auto slash = addr.find('/');
  if (slash != std::string_view::npos) addr = addr.substr(0, slash);
  if (addr.empty()) return std::nullopt;
  c.address = std::string(addr);
  return c;
}

std::optional<Origin> parse_origin(std::string_view v) {
  auto tok = split_ws(v);
  if (tok.size() != 6) return std::nullopt;
  return Origin{std::string(tok[0]), std::string(tok[1]), std::string(tok[2]),
                std::string(tok[3]), std::string(tok[4]), std::string(tok[5])};
}

// m=<media> <port>[/<number of ports>] <proto> <fmt> ..., RFC 8866 §5.14.
common::Result<MediaDescription> parse_media_line(std::string_view v, std::size_t line_no) {
  auto bad = [&](std::string_view why) {
    return make_error("sdp.bad_media", "line " + std::to_string(line_no) + ": " + std::string(why) +
                                           ": m=" + detail::printable(v));
  };
  auto tok = split_ws(v);
  if (tok.size() < 4) return bad("m= needs media, port, proto and at least one format");
  // RFC 8866 §9: media, proto and fmt are tokens of visible ASCII; we echo them in the answer.
  for (auto t : tok)
    for (char c : t)
      if (c < 0x21 || c > 0x7e) return bad("non-token character");
  MediaDescription m;
  m.media = common::to_lower(tok[0]);
  std::string_view port = tok[1];
  auto slash = port.find('/');
  if (slash != std::string_view::npos) {
    auto count = parse_uint<std::uint16_t>(port.substr(slash + 1));
    if (!count || *count == 0) return bad("bad port count");
    m.port_count = *count;
    port = port.substr(0, slash);
  }
  auto p = parse_uint<std::uint16_t>(port);
  if (!p) return bad("bad port");
  m.port = *p;
  m.proto = std::string(tok[2]);
  for (std::size_t i = 3; i < tok.size(); ++i) m.formats.emplace_back(tok[i]);
  return m;
}

// Per-media state collected while parsing, resolved when the section ends.
struct MediaState {
  std::map<int, ParsedRtpmap> rtpmaps;
  std::map<std::string, std::string> fmtps;
};

void resolve_payloads(MediaDescription& m, const MediaState& st) {
  if (!m.is_rtp()) return;
  for (const auto& fmt : m.formats) {
    auto pt = parse_uint<int>(fmt, 127);
    if (!pt) continue;  // not a payload type; kept in formats only
    PayloadFormat pf;
    pf.payload_type = *pt;
    if (auto it = st.rtpmaps.find(*pt); it != st.rtpmaps.end()) {
      pf.encoding = it->second.encoding;
      pf.clock_rate = it->second.clock;
      pf.channels = it->second.channels;
    } else if (auto s = static_payload_format(*pt)) {
      pf = *s;
    }
    if (auto it = st.fmtps.find(fmt); it != st.fmtps.end()) pf.fmtp = it->second;
    m.payloads.push_back(std::move(pf));
  }
}

// Handles a media-level a= line. Known attributes are parsed into fields; malformed ones and
// everything else are kept in `attributes`.
void media_attribute(MediaDescription& m, MediaState& st, std::string_view v) {
  Attribute a = split_attribute(v);
  const std::string_view name = a.name;
  const std::string_view value = a.value;
  if (auto d = direction_from_attribute(name); d && !a.has_value) {
    m.direction = *d;  // if repeated, the last one wins
    m.has_media_direction = true;
    return;
  }
  if (common::iequals(name, "rtpmap") && a.has_value) {
    if (auto r = parse_rtpmap(value)) {
      st.rtpmaps.insert_or_assign(r->pt, std::move(*r));
      return;
    }
  } else if (common::iequals(name, "fmtp") && a.has_value) {
    auto t = common::trim(value);
    auto sp = t.find_first_of(" \t");
    std::string_view fmt = t.substr(0, sp);
    if (!fmt.empty()) {
      std::string_view params = sp == std::string_view::npos ? std::string_view{} : t.substr(sp);
      st.fmtps.insert_or_assign(std::string(fmt), std::string(common::trim(params)));
      return;
    }
  } else if (common::iequals(name, "label") && a.has_value) {
    m.label = std::string(common::trim(value));
    return;
  } else if (common::iequals(name, "rtcp-mux") && !a.has_value) {
    m.rtcp_mux = true;
    return;
  } else if (common::iequals(name, "rtcp") && a.has_value) {
    auto tok = split_ws(value);
    if (!tok.empty()) {
      if (auto port = parse_uint<std::uint16_t>(tok[0])) {
        m.rtcp_port = *port;
        return;
      }
    }
  } else if (common::iequals(name, "crypto") && a.has_value) {
    if (auto c = parse_crypto(value)) {
      m.crypto.push_back(std::move(*c));
      return;
    }
  } else if (common::iequals(name, "ptime") && a.has_value) {
    if (auto p = parse_ptime(value)) {
      m.ptime = *p;
      return;
    }
  }
  m.attributes.push_back(std::move(a));
}

}  // namespace

std::string_view to_string(Direction d) {
  switch (d) {
    case Direction::kSendRecv: return "sendrecv";
    case Direction::kSendOnly: return "sendonly";
    case Direction::kRecvOnly: return "recvonly";
    case Direction::kInactive: return "inactive";
  }
  return "sendrecv";
}

std::optional<PayloadFormat> static_payload_format(int pt) {
  // RFC 3551 §6, Tables 4 and 5 (audio and video static assignments).
  struct Entry {
    int pt;
    const char* enc;
    std::uint32_t clock;
    std::uint32_t channels;
  };
  static constexpr Entry kTable[] = {
      {0, "PCMU", 8000, 1},   {3, "GSM", 8000, 1},    {4, "G723", 8000, 1},
      {5, "DVI4", 8000, 1},   {6, "DVI4", 16000, 1},  {7, "LPC", 8000, 1},
      {8, "PCMA", 8000, 1},   {9, "G722", 8000, 1},   {10, "L16", 44100, 2},
      {11, "L16", 44100, 1},  {12, "QCELP", 8000, 1}, {13, "CN", 8000, 1},
      {14, "MPA", 90000, 1},  {15, "G728", 8000, 1},  {16, "DVI4", 11025, 1},
      {17, "DVI4", 22050, 1}, {18, "G729", 8000, 1},  {25, "CelB", 90000, 1},
      {26, "JPEG", 90000, 1}, {28, "nv", 90000, 1},   {31, "H261", 90000, 1},
      {32, "MPV", 90000, 1},  {33, "MP2T", 90000, 1}, {34, "H263", 90000, 1},
  };
  for (const auto& e : kTable) {
    if (e.pt == pt) {
      PayloadFormat pf;
      pf.payload_type = pt;
      pf.encoding = e.enc;
      pf.clock_rate = e.clock;
      pf.channels = e.channels;
      pf.from_static_table = true;
      return pf;
    }
  }
  return std::nullopt;
}

const PayloadFormat* MediaDescription::find_payload(int pt) const {
  for (const auto& p : payloads)
    if (p.payload_type == pt) return &p;
  return nullptr;
}

bool MediaDescription::is_rtp() const {
  return common::to_lower(proto).find("rtp/") != std::string::npos;
}

bool MediaDescription::is_srtp() const {
  auto p = common::to_lower(proto);
  return p.find("rtp/savp") != std::string::npos;
}

common::Result<SessionDescription> parse_sdp(std::string_view text) {
  if (text.size() > kMaxSdpBytes)
    return make_error("sdp.too_large", "SDP body of " + std::to_string(text.size()) +
                                           " bytes exceeds " + std::to_string(kMaxSdpBytes));
  SessionDescription sd;
  MediaState state;
  bool seen_version = false;
  std::size_t line_no = 0;

  auto finish_media = [&]() {
    if (!sd.media.empty()) resolve_payloads(sd.media.back(), state);
    state = MediaState{};
  };

  std::size_t pos = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    std::string_view raw = nl == std::string_view::npos ? text.substr(pos) : text.substr(pos, nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    // RFC 8866 §5 requires CRLF but says parsers SHOULD accept LF; trailing whitespace is common.
    std::string_view line = common::trim(raw);
    if (line.empty()) continue;
    const char type = line[0];
    const bool letter = (type >= 'a' && type <= 'z') || (type >= 'A' && type <= 'Z');
    if (line.size() < 2 || line[1] != '=' || !letter)
      return make_error("sdp.malformed",
                        "line " + std::to_string(line_no) + " is not <type>=<value>: " +
                            detail::printable(line, 40));
    std::string_view value = line.substr(2);

    if (!seen_version) {
      // RFC 8866 §5.1: v= is the first line.
      if (type != 'v')
        return make_error("sdp.no_version", "SDP does not start with v= (line " +
                                                std::to_string(line_no) + ")");
      if (common::trim(value) != "0")
        return make_error("sdp.bad_version", "unsupported SDP version v=" + detail::printable(value));
      seen_version = true;
      continue;
    }

    const bool in_media = !sd.media.empty();
    if (type == 'm') {
      finish_media();
      if (sd.media.size() >= kMaxSdpMedia)
        return make_error("sdp.too_many_media",
                          "more than " + std::to_string(kMaxSdpMedia) + " m= lines");
      auto m = parse_media_line(value, line_no);
      if (!m) return m.error();
      sd.media.push_back(std::move(*m));
      continue;
    }
    if (!in_media) {
      switch (type) {
        case 'o': {
          auto o = parse_origin(value);
          if (!o)
            return make_error("sdp.bad_origin", "line " + std::to_string(line_no) +
                                                    ": bad o= line: " + detail::printable(value));
          sd.origin = std::move(*o);
          continue;
        }
        case 's':
          sd.session_name = std::string(value);
          continue;
        case 'c': {
          auto c = parse_connection(value);
          if (!c)
            return make_error("sdp.bad_connection", "line " + std::to_string(line_no) +
                                                        ": bad c= line: " + detail::printable(value));
          sd.connection = std::move(*c);
          continue;
        }
        case 'a': {
          Attribute a = split_attribute(value);
          if (auto d = direction_from_attribute(a.name); d && !a.has_value) {
            sd.direction = *d;
          } else {
            sd.attributes.push_back(std::move(a));
          }
          continue;
        }
        default:
          sd.other_lines.push_back(SdpLine{type, std::string(value)});
          continue;
      }
    }
    MediaDescription& m = sd.media.back();
    switch (type) {
      case 'c': {
        auto c = parse_connection(value);
        if (!c)
          return make_error("sdp.bad_connection", "line " + std::to_string(line_no) +
                                                      ": bad c= line: " + detail::printable(value));
        m.connection = std::move(*c);
        m.has_media_connection = true;
        break;
      }
      case 'a':
        media_attribute(m, state, value);
        break;
      default:
        m.other_lines.push_back(SdpLine{type, std::string(value)});
        break;
    }
  }
  if (!seen_version) return make_error("sdp.no_version", "empty SDP (no v= line)");
  finish_media();

  // Effective values: a media section inherits session-level c= and direction (RFC 8866 §5.7,
  // RFC 3264 §5.1) unless it has its own.
  for (auto& m : sd.media) {
    if (!m.has_media_connection) m.connection = sd.connection;
    if (!m.has_media_direction) m.direction = sd.direction.value_or(Direction::kSendRecv);
  }
  return sd;
}

}  // namespace sgw::siprec
