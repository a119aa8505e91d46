#include "siprec_src/sdp_offer.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace sgw::siprec_src {
namespace {

std::vector<std::string_view> lines(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t pos = 0;
  while (pos < s.size()) {
    std::size_t nl = s.find('\n', pos);
    if (nl == std::string_view::npos) nl = s.size();
    std::string_view l = s.substr(pos, nl - pos);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    out.push_back(l);
    pos = nl + 1;
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string o(s);
  for (auto& c : o) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return o;
}

std::string_view field(std::string_view s, std::size_t n) {
  std::size_t i = 0;
  while (true) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    if (s.empty()) return {};
    std::size_t sp = s.find(' ');
    if (i == n) return s.substr(0, sp);
    if (sp == std::string_view::npos) return {};
    s.remove_prefix(sp);
    ++i;
  }
}

}  // namespace

std::uint8_t payload_type(media::CodecId id) {
  switch (id) {
    case media::CodecId::kPcmu: return 0;
    case media::CodecId::kPcma: return 8;
    case media::CodecId::kG722: return 9;
    case media::CodecId::kG729: return 18;
    case media::CodecId::kOpus: return 111;
  }
  return 0;
}

std::string build_offer(const OfferParams& p) {
  bool v6 = p.address.find(':') != std::string::npos;
  std::string ip = v6 ? "IP6 " : "IP4 ";
  std::string s;
  s += "v=0\r\n";
  s += "o=siprec-src " + std::to_string(p.session_id) + " " + std::to_string(p.version) + " IN " +
       ip + p.address + "\r\n";
  s += "s=SIPREC\r\n";
  s += "c=IN " + ip + (p.hold_by_zero_address ? (v6 ? "::" : "0.0.0.0") : p.address) + "\r\n";
  s += "t=0 0\r\n";
  std::uint8_t pt = payload_type(p.codec);
  std::string pts = std::to_string(pt);
  for (const auto& st : p.streams) {
    s += "m=audio " + std::to_string(st.port) + (st.crypto.empty() ? " RTP/AVP " : " RTP/SAVP ") + pts +
         " 101\r\n";
    switch (p.codec) {
      case media::CodecId::kPcmu: s += "a=rtpmap:0 PCMU/8000\r\n"; break;
      case media::CodecId::kPcma: s += "a=rtpmap:8 PCMA/8000\r\n"; break;
      case media::CodecId::kG722: s += "a=rtpmap:9 G722/8000\r\n"; break;
      case media::CodecId::kG729:
        s += "a=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\n";
        break;
      case media::CodecId::kOpus:
        s += "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\n";
        break;
    }
    s += "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";
    s += "a=ptime:20\r\n";
    if (!st.crypto.empty()) s += "a=crypto:" + st.crypto + "\r\n";  // RFC 4568 §9.1
    s += "a=label:" + st.label + "\r\n";
    if (!st.direction.empty()) s += "a=" + st.direction + "\r\n";
  }
  return s;
}

common::Result<std::vector<AnsweredStream>> parse_answer(std::string_view sdp) {
  std::vector<AnsweredStream> out;
  std::string session_addr;
  std::vector<bool> has_conn;
  bool saw_v = false;
  for (auto l : lines(sdp)) {
    if (l.size() < 2 || l[1] != '=') continue;
    char k = l[0];
    std::string_view v = l.substr(2);
    if (k == 'v') saw_v = true;
    if (k == 'm') {
      AnsweredStream a;
      auto port = field(v, 1);
      unsigned p = 0;
      auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
      if (ec != std::errc() || p > 65535) p = 0;
      a.port = static_cast<std::uint16_t>(p);
      a.proto = std::string(field(v, 2));
      a.address = session_addr;
      out.push_back(a);
      has_conn.push_back(false);
    } else if (k == 'c') {
      std::string addr(field(v, 2));
      if (auto slash = addr.find('/'); slash != std::string::npos) addr.resize(slash);
      if (out.empty()) {
        session_addr = addr;
      } else {
        out.back().address = addr;
        has_conn.back() = true;
      }
    } else if (k == 'a' && !out.empty()) {
      std::string a = lower(v);
      if (a == "sendrecv" || a == "sendonly" || a == "recvonly" || a == "inactive")
        out.back().direction = a;
      else if (a.rfind("label:", 0) == 0)
        out.back().label = std::string(v.substr(6));
      else if (a.rfind("crypto:", 0) == 0 && out.back().crypto_suite.empty())
        out.back().crypto_suite = std::string(field(v.substr(7), 1));  // "<tag> <suite> <key>"
    }
  }
  if (!saw_v || out.empty()) return common::make_error("sdp.answer", "answer has no m= line");
  for (std::size_t i = 0; i < out.size(); ++i)
    if (!has_conn[i] && out[i].address.empty()) out[i].address = session_addr;
  return out;
}

std::pair<std::string, std::string> multipart(const std::vector<BodyPart>& parts,
                                              std::string_view boundary) {
  std::string b(boundary);
  std::string body;
  for (const auto& p : parts) {
    body += "--" + b + "\r\nContent-Type: " + p.content_type + "\r\n";
    if (p.content_type == "application/rs-metadata+xml")
      body += "Content-Disposition: recording-session\r\n";
    body += "\r\n" + p.content + "\r\n";
  }
  body += "--" + b + "--\r\n";
  return {"multipart/mixed;boundary=" + b, body};
}

std::string find_sdp(std::string_view content_type, std::string_view body) {
  std::string ct = lower(content_type);
  if (ct.rfind("application/sdp", 0) == 0) return std::string(body);
  if (ct.rfind("multipart/", 0) != 0) return {};
  auto bpos = ct.find("boundary=");
  if (bpos == std::string::npos) return {};
  std::string_view raw = content_type.substr(bpos + 9);
  std::string boundary;
  if (!raw.empty() && raw.front() == '"') {
    raw.remove_prefix(1);
    boundary = std::string(raw.substr(0, raw.find('"')));
  } else {
    boundary = std::string(raw.substr(0, raw.find_first_of("; \t")));
  }
  if (boundary.empty()) return {};
  std::string delim = "--" + boundary;
  std::size_t pos = body.find(delim);
  while (pos != std::string_view::npos) {
    std::size_t start = body.find('\n', pos);
    if (start == std::string_view::npos) return {};
    std::size_t next = body.find(delim, start);
    if (next == std::string_view::npos) return {};
    std::string_view part = body.substr(start + 1, next - start - 1);
    std::size_t hdr_end = part.find("\r\n\r\n");
    std::size_t skip = 4;
    if (hdr_end == std::string_view::npos) {
      hdr_end = part.find("\n\n");
      skip = 2;
    }
    if (hdr_end != std::string_view::npos &&
        lower(part.substr(0, hdr_end)).find("application/sdp") != std::string::npos) {
      std::string_view content = part.substr(hdr_end + skip);
      // RFC 2046 §5.1.1: the CRLF before a delimiter belongs to the delimiter.
      if (content.ends_with("\r\n")) content.remove_suffix(2);
      else if (content.ends_with("\n")) content.remove_suffix(1);
      return std::string(content);
    }
    pos = next;
  }
  return {};
}

}  // namespace sgw::siprec_src
