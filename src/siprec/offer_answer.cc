#include "siprec/offer_answer.h"

#include <utility>

#include "common/strings.h"
#include "siprec/parse_util.h"
#include "siprec/sdes.h"

namespace sgw::siprec {

namespace {

using common::iequals;
using common::make_error;

constexpr std::size_t kMaxReasonChars = 400;  // the 488 Warning header text stays readable

// Peer text echoed into our SDP: drop control characters so nothing can end a line early.
std::string sdp_safe(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) out += c;
  return out;
}

std::string describe_payload(const PayloadFormat& p) {
  if (!p.resolved()) return std::to_string(p.payload_type);
  std::string s;
  detail::append(s, {detail::printable(p.encoding, 32), "/", std::to_string(p.clock_rate)});
  if (p.channels > 1) detail::append(s, {"/", std::to_string(p.channels)});
  return s;
}

// "PCMU/8000 telephone-event/8000", or the raw fmt tokens for a non-RTP m= line.
std::string describe_formats(const MediaDescription& m) {
  std::string s;
  if (m.is_rtp()) {
    for (const auto& p : m.payloads) {
      if (!s.empty()) s += ' ';
      s += describe_payload(p);
    }
  } else {
    for (const auto& f : m.formats) {
      if (!s.empty()) s += ' ';
      s += detail::printable(f, 32);
    }
  }
  return s.empty() ? "-" : s;
}

// Does offered payload `p` carry the recordable codec named `want`? Clock rates per RFC 3551 §4.5
// (G722 is 8000 in SDP), RFC 7587 §7 (opus is always 48000, with /2), RFC 3551 §4.5.6 (G729).
bool codec_matches(std::string_view want, const PayloadFormat& p) {
  if (!p.resolved() || !iequals(p.encoding, want)) return false;
  if (iequals(want, "PCMA") || iequals(want, "PCMU") || iequals(want, "G722") ||
      iequals(want, "G729"))
    return p.clock_rate == 8000 && p.channels == 1;
  if (iequals(want, "opus")) return p.clock_rate == 48000 && p.channels <= 2;
  return false;  // not a codec the media layer can decode
}

// The value of `key` in an fmtp parameter list "a=b; c=d" (RFC 8866 §6.15), or nullopt.
std::optional<std::string> fmtp_param(std::string_view fmtp, std::string_view key) {
  for (auto item : common::split(fmtp, ';')) {
    item = common::trim(item);
    auto eq = item.find('=');
    if (eq == std::string_view::npos) continue;
    if (iequals(common::trim(item.substr(0, eq)), key))
      return std::string(common::trim(item.substr(eq + 1)));
  }
  return std::nullopt;
}

ChosenCodec choose(const PayloadFormat& p) {
  ChosenCodec c;
  c.payload_type = p.payload_type;
  c.encoding = sdp_safe(p.encoding);
  c.clock_rate = p.clock_rate;
  c.channels = p.channels;
  if (iequals(p.encoding, "opus")) {
    c.channels = 2;        // RFC 7587 §7: the rtpmap is always opus/48000/2
    c.fmtp = sdp_safe(p.fmtp);  // echo: maxplaybackrate, stereo, useinbandfec describe the stream
  } else if (iequals(p.encoding, "G729")) {
    // RFC 4856 §2.1.9: annexb defaults to yes; answer the offered value so both sides agree.
    if (auto annexb = fmtp_param(p.fmtp, "annexb"))
      c.fmtp = "annexb=" + common::to_lower(sdp_safe(*annexb));
  }
  return c;
}

bool answered(const std::vector<ChosenCodec>& list, int payload_type) {
  for (const auto& c : list)
    if (c.payload_type == payload_type) return true;
  return false;
}

bool has_attribute(const MediaDescription& m, std::string_view name) {
  for (const auto& a : m.attributes)
    if (iequals(a.name, name)) return true;
  return false;
}

}  // namespace

bool is_supported_srtp_suite(std::string_view suite) {
  return media::srtp_suite_from_name(suite).has_value();
}

std::size_t OfferPlan::accepted_count() const {
  std::size_t n = 0;
  for (const auto& s : streams)
    if (s.accepted) ++n;
  return n;
}

bool is_paused(const MediaDescription& m) {
  return m.direction == Direction::kInactive || m.direction == Direction::kRecvOnly || is_held(m);
}

bool is_held(const MediaDescription& m) {
  if (!m.connection) return false;
  const std::string& a = m.connection->address;
  return a == "0.0.0.0" || a == "::" || a == "0:0:0:0:0:0:0:0";
}

common::Result<OfferPlan> plan_answer(const SessionDescription& offer, const CodecPolicy& policy) {
  if (offer.media.empty())
    return make_error("sdp.no_media", "offer has no m= line");  // RFC 7866 §6.1: nothing to record
  OfferPlan plan;
  std::string listing;  // for the no_recordable_codec message
  bool any_srtp_policy = false;
  for (std::size_t i = 0; i < offer.media.size(); ++i) {
    const MediaDescription& m = offer.media[i];
    StreamPlan sp;
    sp.index = i;
    sp.media = m.media;
    sp.proto = m.proto;
    sp.label = m.label;
    sp.rtcp_mux = m.rtcp_mux;
    sp.ptime = m.ptime;
    sp.paused = is_paused(m);
    sp.held = is_held(m);
    sp.remote_port = m.port;
    if (m.connection) sp.remote_address = m.connection->address;
    if (m.rtcp_port) {
      sp.remote_rtcp_port = *m.rtcp_port;  // RFC 3605
    } else if (m.rtcp_mux) {
      sp.remote_rtcp_port = m.port;  // RFC 5761
    } else if (m.port != 0 && m.port < 65535) {
      sp.remote_rtcp_port = static_cast<std::uint16_t>(m.port + 1);  // RFC 3550 §11
    }

    bool codec_reason = false;
    bool srtp_policy = false;  // refused by media.srtp itself
    if (m.port == 0) {
      sp.reason = "stream removed by offerer (port 0)";  // RFC 3264 §8.2
    } else if (m.media != "audio") {
      sp.reason = detail::printable(m.media, 32) + " not recorded";
      codec_reason = true;
    } else if (!m.is_rtp()) {
      sp.reason = "unsupported transport " + detail::printable(m.proto, 32);
    } else if (m.is_srtp() && (common::istarts_with(m.proto, "UDP/TLS") ||
                               (m.crypto.empty() && has_attribute(m, "fingerprint")))) {
      sp.reason = "DTLS-SRTP not supported";
    } else if (m.is_srtp() && policy.srtp == CodecPolicy::Srtp::kOff) {
      sp.reason = "RTP/SAVP refused: media.srtp is off";
      srtp_policy = true;
    } else if (!m.is_srtp() && policy.srtp == CodecPolicy::Srtp::kRequire) {
      sp.reason = "RTP/AVP refused: media.srtp is require";
      srtp_policy = true;
    } else if (m.is_srtp()) {
      // RFC 4568 §7.1.2: the first acceptable line in offer order; one we cannot use (unknown
      // suite, bad key, unsupported session parameter) is skipped. Errors never carry key bytes.
      std::string first_error;
      for (const auto& c : m.crypto) {
        auto keys = parse_sdes_keys(c);
        if (keys) {
          sp.srtp = c;
          sp.srtp_keys = std::make_shared<const media::SrtpKeys>(std::move(keys).value());
          break;
        }
        if (first_error.empty()) first_error = keys.error().message;
      }
      if (!sp.srtp)
        sp.reason = m.crypto.empty() ? "no a=crypto line" : "no usable a=crypto line (" + first_error + ")";
    }

    if (sp.reason.empty()) {
      // Every recordable codec offered is answered (the SRC switches between them mid-call);
      // our preference only orders them, ties in offer order.
      for (const auto& want : policy.preference)
        for (const auto& p : m.payloads)
          if (codec_matches(want, p) && !answered(sp.codecs, p.payload_type)) sp.codecs.push_back(choose(p));
      if (sp.codecs.empty()) {
        sp.reason = "no recordable codec (offered: " + describe_formats(m) + ")";
        codec_reason = true;
      } else {
        // RFC 4733 §7.1.1 (telephone-event) and RFC 3389 §5 (CN): only at the clock rate of an
        // answered audio codec.
        for (const auto& p : m.payloads) {
          const bool te = iequals(p.encoding, "telephone-event");
          auto& list = te ? sp.telephone_events : sp.comfort_noise;
          if ((!te && !iequals(p.encoding, "CN")) || answered(sp.codecs, p.payload_type) ||
              answered(list, p.payload_type))
            continue;
          for (const auto& c : sp.codecs)
            if (c.clock_rate == p.clock_rate) {
              list.push_back({p.payload_type, te ? "telephone-event" : "CN", p.clock_rate, 1, ""});
              break;
            }
        }
        sp.accepted = true;
        // RFC 7866 §7.1.1 / RFC 3264 §6.1: sendonly or sendrecv -> recvonly (we only receive);
        // inactive or recvonly (paused) -> inactive.
        sp.direction = sp.paused ? Direction::kInactive : Direction::kRecvOnly;
      }
    }

    if (!listing.empty()) listing += "; ";
    listing += "m=" + detail::printable(m.media, 32) + " " + describe_formats(m);
    if (!codec_reason && !sp.accepted) listing += " [" + sp.reason + "]";
    any_srtp_policy |= srtp_policy;
    plan.streams.push_back(std::move(sp));
  }
  if (plan.accepted_count() == 0) {
    if (any_srtp_policy) {
      std::string msg = std::string(policy.srtp == CodecPolicy::Srtp::kRequire
                                        ? "SRTP required (media.srtp: require): "
                                        : "SRTP disabled (media.srtp: off): ") + listing;
      if (msg.size() > kMaxReasonChars) msg = msg.substr(0, kMaxReasonChars - 3) + "...";
      return make_error("sdp.srtp_policy", std::move(msg));
    }
    std::string msg = "no recordable codec offered: " + listing;
    if (msg.size() > kMaxReasonChars) msg = msg.substr(0, kMaxReasonChars - 3) + "...";
    return make_error("sdp.no_recordable_codec", std::move(msg));
  }
  return plan;
}

common::Result<SessionDescription> delayed_offer_template(const CodecPolicy& policy,
                                                          const std::vector<std::string>& labels) {
  // Static payload types where RFC 3551 has one; dynamic ones as most SRCs number them.
  struct Known {
    const char* name;
    const char* rtpmap;
    int pt;
  };
  static constexpr Known kKnown[] = {{"PCMA", "PCMA/8000", 8},   {"PCMU", "PCMU/8000", 0},
                                     {"G722", "G722/8000", 9},   {"G729", "G729/8000", 18},
                                     {"opus", "opus/48000/2", 111}};
  std::string fmts, maps;
  bool narrow = false, opus = false;
  for (const auto& want : policy.preference)
    for (const auto& k : kKnown) {
      if (!iequals(want, k.name) || fmts.find(" " + std::to_string(k.pt) + " ") != std::string::npos)
        continue;
      fmts += " " + std::to_string(k.pt) + " ";
      maps += "a=rtpmap:" + std::to_string(k.pt) + " " + k.rtpmap + "\r\n";
      (k.pt == 111 ? opus : narrow) = true;
    }
  if (narrow) {  // RFC 4733 §7.1.1: at the audio codec's clock rate
    fmts += " 101 ";
    maps += "a=rtpmap:101 telephone-event/8000\r\n";
  }
  if (opus) {
    fmts += " 102 ";
    maps += "a=rtpmap:102 telephone-event/48000\r\n";
  }
  std::string m_fmts;
  for (auto tok : common::split(fmts, ' '))
    if (!tok.empty()) m_fmts += " " + std::string(tok);
  std::string text = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n";
  for (const auto& label : labels)
    text += "m=audio 9 RTP/AVP" + m_fmts + "\r\n" + maps + "a=label:" + sdp_safe(label) + "\r\na=sendonly\r\n";
  return parse_sdp(text);
}

std::string build_answer(const SessionDescription& offer, const OfferPlan& plan,
                         const AnswerParams& params) {
  std::string addr = params.media_address;
  if (addr.size() >= 2 && addr.front() == '[' && addr.back() == ']') addr = addr.substr(1, addr.size() - 2);
  const char* addr_type = addr.find(':') != std::string::npos ? "IP6" : "IP4";
  constexpr std::string_view crlf = "\r\n";

  // RFC 8866 §5: v, o, s, c, t in this order; RFC 3264 §6: same m= lines in the same order.
  using detail::append;
  std::string out;
  append(out, {"v=0", crlf});
  append(out, {"o=", params.username, " ", std::to_string(params.session_id), " ",
               std::to_string(params.session_version), " IN ", addr_type, " ", addr, crlf});
  append(out, {"s=-", crlf});
  append(out, {"c=IN ", addr_type, " ", addr, crlf});
  append(out, {"t=0 0", crlf});

  for (std::size_t i = 0; i < offer.media.size(); ++i) {
    const MediaDescription& m = offer.media[i];
    const StreamPlan* sp = i < plan.streams.size() ? &plan.streams[i] : nullptr;
    const std::uint16_t port = i < params.ports.size() ? params.ports[i] : 0;
    const std::string* key =
        i < params.srtp_key_params.size() && !params.srtp_key_params[i].empty()
            ? &params.srtp_key_params[i]
            : nullptr;
    const std::string media = sdp_safe(m.media);
    const std::string proto = sdp_safe(m.proto);
    const std::optional<std::string> label =
        m.label ? std::optional<std::string>(sdp_safe(*m.label)) : std::nullopt;
    const bool ok = sp && sp->accepted && !sp->codecs.empty() && port != 0 && (!sp->srtp || key);
    if (!ok) {
      // RFC 3264 §6: a rejected stream keeps its m= line with port 0 and at least one format.
      const std::string fmt = m.formats.empty() ? std::string("0") : sdp_safe(m.formats.front());
      append(out, {"m=", media, " 0 ", proto, " ", fmt, crlf});
      if (label) append(out, {"a=label:", *label, crlf});
      continue;
    }
    append(out, {"m=", media, " ", std::to_string(port), " ", proto});
    for (const auto* list : {&sp->codecs, &sp->telephone_events, &sp->comfort_noise})
      for (const ChosenCodec& c : *list) append(out, {" ", std::to_string(c.payload_type)});
    out += crlf;
    for (const ChosenCodec& c : sp->codecs) {
      const std::string pt = std::to_string(c.payload_type);
      append(out, {"a=rtpmap:", pt, " ", c.encoding, "/", std::to_string(c.clock_rate)});
      if (c.channels > 1) append(out, {"/", std::to_string(c.channels)});
      out += crlf;
      if (!c.fmtp.empty()) append(out, {"a=fmtp:", pt, " ", c.fmtp, crlf});
    }
    for (const ChosenCodec& te : sp->telephone_events) {
      const std::string pt = std::to_string(te.payload_type);
      append(out, {"a=rtpmap:", pt, " telephone-event/", std::to_string(te.clock_rate), crlf});
      append(out, {"a=fmtp:", pt, " 0-16", crlf});  // RFC 4733 §7.1.1: DTMF events 0-15 and flash
    }
    for (const ChosenCodec& cn : sp->comfort_noise)
      append(out, {"a=rtpmap:", std::to_string(cn.payload_type), " CN/", std::to_string(cn.clock_rate), crlf});
    if (sp->ptime) append(out, {"a=ptime:", std::to_string(*sp->ptime), crlf});
    if (sp->srtp)
      append(out, {"a=crypto:", std::to_string(sp->srtp->tag), " ", sdp_safe(sp->srtp->suite), " ",
                   sdp_safe(*key), crlf});
    if (label) append(out, {"a=label:", *label, crlf});  // RFC 7866 §7.1.1 correlates by label
    if (sp->rtcp_mux) append(out, {"a=rtcp-mux", crlf});  // RFC 5761 §5.1.1
    append(out, {"a=", to_string(sp->direction), crlf});
  }
  return out;
}

}  // namespace sgw::siprec
