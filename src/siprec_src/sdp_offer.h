// The SRC's side of SIPREC offer/answer (RFC 7866 §7.1.1): one a=sendonly audio m-line per
// recorded stream with a=label, and the multipart/mixed body that carries SDP and metadata
// (RFC 7866 §9). Also the small answer parser siprec-src needs (where to send each stream).
// Pure functions, any thread; parse_answer never throws on peer input.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "media/codec.h"

namespace sgw::siprec_src {

struct OfferStream {
  std::uint16_t port = 0;
  std::string label;
  std::string direction = "sendonly";  // "sendonly" or "inactive" (paused); "": no attribute
  std::string crypto = "";  // SDES: the a=crypto value ("1 <suite> inline:..."): RTP/SAVP; "" = RTP/AVP
};

struct OfferParams {
  std::string address = "127.0.0.1";  // c= and o= (IPv4 or IPv6 literal)
  std::uint64_t session_id = 1;
  std::uint64_t version = 1;  // o= session version: +1 on each re-offer (RFC 3264 §8)
  media::CodecId codec = media::CodecId::kPcma;
  std::vector<OfferStream> streams;
  // Hold the RFC 2543 way (BroadWorks, Metaswitch): c=0.0.0.0 (o= keeps the address).
  bool hold_by_zero_address = false;
};

// RTP payload type siprec-src uses for a codec: the static ones of RFC 3551 (0, 8, 9, 18),
// 111 for Opus.
std::uint8_t payload_type(media::CodecId id);

std::string build_offer(const OfferParams& p);

// One m-line of the answer, in m-line order.
struct AnsweredStream {
  std::string address;  // media-level c= or the session c=
  std::uint16_t port = 0;  // 0: rejected
  std::string direction = "sendrecv";
  std::string label;
  std::string proto;         // "RTP/AVP", "RTP/SAVP", ...
  std::string crypto_suite;  // suite of the first a=crypto line; "" if none
};

// Errors: "sdp.answer" when there is no m-line or the text is not SDP.
common::Result<std::vector<AnsweredStream>> parse_answer(std::string_view sdp);

struct BodyPart {
  std::string content_type;
  std::string content;
};

// multipart/mixed (RFC 2046 §5.1) with the boundary; an rs-metadata part gets
// Content-Disposition: recording-session (RFC 7866 §9.1). Returns {content_type, body}.
std::pair<std::string, std::string> multipart(const std::vector<BodyPart>& parts,
                                              std::string_view boundary);

// Finds the SDP in a response body: the body itself for application/sdp, the first
// application/sdp part of a multipart body; empty if none.
std::string find_sdp(std::string_view content_type, std::string_view body);

}  // namespace sgw::siprec_src
