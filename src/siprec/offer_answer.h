// SDP offer/answer for a Session Recording Server (RFC 7866 §6.1 and §7, RFC 3264).
//
// The SRC offers one m= line per recorded stream, normally a=sendonly. The SRS only receives: it
// accepts each audio stream it can record with EVERY recordable codec that was offered (ordered by
// our preference) plus telephone-event and CN at those codecs' clock rates — the SRC sends whatever the
// recorded call uses and may switch between the offered codecs at any time (RFC 3264 §5.1, §6.1) —,
// answers a=recvonly (a=inactive for a paused stream), and rejects everything else with port 0
// (RFC 3264 §6). The same two calls serve initial offers and re-offers (re-INVITE/UPDATE: pause and resume
// via a=inactive <-> a=sendonly, streams added or removed, new ports; RFC 7866 §6.2, §7.1.1).
//
// Pure functions on the message path: no I/O, never throw. Thread: any.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "media/srtp_session.h"
#include "siprec/sdp.h"

namespace sgw::siprec {

struct CodecPolicy {
  // Recordable codecs, compared case-insensitively: an offered codec is answered when it is in this
  // list, and the answer lists the answered codecs in this order. Only these five are
  // known to the media layer: PCMA/8000, PCMU/8000, G722/8000 (RFC 3551 §4.5.2: 8000 in SDP although
  // sampled at 16 kHz), opus/48000/2 (RFC 7587 §7), G729/8000 (with or without annexb).
  std::vector<std::string> preference{"PCMA", "PCMU", "G722", "opus", "G729"};
  // SDES-SRTP (RFC 4568 a=crypto) on RTP/SAVP[F] (media.srtp). kOff: SAVP streams are refused;
  // kAllow: each stream is answered in kind (AVP or SAVP); kRequire: AVP streams are refused.
  // DTLS-SRTP is never supported.
  enum class Srtp { kOff, kAllow, kRequire };
  Srtp srtp = Srtp::kOff;
};

// SRTP crypto suites we can receive with (RFC 4568 §6.2, RFC 6188, RFC 7714).
bool is_supported_srtp_suite(std::string_view suite);

struct ChosenCodec {
  int payload_type = 0;
  std::string encoding;  // as spelled in the offer, e.g. "PCMA", "OPUS"
  std::uint32_t clock_rate = 0;
  std::uint32_t channels = 1;
  std::string fmtp;  // the a=fmtp we answer with ("" = none): annexb for G729, echo for opus
};

// The plan for one offered m= line.
struct StreamPlan {
  std::size_t index = 0;  // position of the m= line in the offer
  std::string media;      // offered media type
  std::string proto;      // offered proto (echoed in the answer)
  bool accepted = false;
  // Non-empty iff accepted: every offered payload type carrying a recordable codec, in the
  // policy's preference order (ties in offer order). codecs.front() is "the" codec in logs.
  std::vector<ChosenCodec> codecs;
  // RFC 4733 telephone-event payload types offered at the clock rate of an answered codec
  // (§7.1.1: the event clock is the audio codec's), in offer order; encoding "telephone-event".
  std::vector<ChosenCodec> telephone_events;
  // RFC 3389 comfort noise (CN) offered at the clock rate of an answered codec; encoding "CN".
  std::vector<ChosenCodec> comfort_noise;
  Direction direction = Direction::kInactive;  // our answer: kRecvOnly or kInactive
  bool paused = false;                       // offer was inactive or recvonly, or held
  bool held = false;                         // held by c=0.0.0.0 (RFC 2543 style; paused too)
  std::optional<std::string> label;          // a=label (RFC 4574), echoed
  bool rtcp_mux = false;                     // offered a=rtcp-mux (we accept it)
  std::optional<std::uint32_t> ptime;        // offered a=ptime, echoed
  std::optional<Crypto> srtp;                // accepted SDES crypto line (offerer's key)
  std::shared_ptr<const media::SrtpKeys> srtp_keys;  // srtp parsed: what the SRC encrypts with
  // Where the SRC sends from / expects RTCP, for symmetric RTCP and logging.
  std::string remote_address;
  std::uint16_t remote_port = 0;
  std::uint16_t remote_rtcp_port = 0;  // a=rtcp, or port+1, or port with rtcp-mux
  std::string reason;                  // why rejected, e.g. "video not recorded"
};

struct OfferPlan {
  std::vector<StreamPlan> streams;  // one per offered m= line, same order
  std::size_t accepted_count() const;
};

// True if the stream is paused by the SRC: offered inactive or recvonly (RFC 7866 §7.1.1), or held.
bool is_paused(const MediaDescription& m);
// True if the stream is held the RFC 2543 way: connection address 0.0.0.0 (or ::), whatever the
// direction attribute says (RFC 3264 §8.4; BroadWorks and Metaswitch send it, often with none).
bool is_held(const MediaDescription& m);

// Decides the answer. Error codes: "sdp.no_media" (offer has no m= line),
// "sdp.srtp_policy" (no stream accepted and at least one refused by media.srtp: an RTP/AVP stream
// under kRequire, an RTP/SAVP one under kOff; the message names the setting and lists the streams),
// "sdp.no_recordable_codec" (no stream accepted; the message lists every offered m= line with its
// codecs, e.g. "no recordable codec offered: m=video H264/90000; m=audio G726-32/8000", suitable
// for a 488 Warning header: printable ASCII, no '"', bounded length).
common::Result<OfferPlan> plan_answer(const SessionDescription& offer, const CodecPolicy& policy);

// Delayed offer (RFC 3261 §13.2.1: an INVITE without SDP; RFC 7866 §7.1.1 lets the SRS offer the
// streams it wants): the offer of an SRC that would send every codec of `policy` (and
// telephone-event at their clock rates) on one sendonly audio m= line per label, from no particular
// address. Our own offer in the 2xx is the answer to it — plan_answer + build_answer, so it follows
// the same rules as every answer we write (a=recvonly, our ports, the labels echoed). Labels are
// used as given (the caller keeps them SDP-safe). Never fails for a non-empty label list.
common::Result<SessionDescription> delayed_offer_template(const CodecPolicy& policy,
                                                          const std::vector<std::string>& labels);

struct AnswerParams {
  std::string media_address;  // our RTP address: IPv4 -> "IP4", IPv6 (with or without []) -> "IP6"
  std::vector<std::uint16_t> ports;  // our RTP port per offered m= line; ignored for rejected ones
  std::uint64_t session_id = 0;
  std::uint64_t session_version = 0;  // increment on every re-answer within the dialog (RFC 3264 §8)
  std::string username = "siprec-gateway";
  // For SRTP streams: our key-params per m= line, e.g. "inline:<base64 key||salt>" (RFC 4568 §6.1).
  std::vector<std::string> srtp_key_params;
};

// Writes the answer (CRLF line ends): per accepted stream the payload types of plan.codecs, then
// plan.telephone_events and plan.comfort_noise, each with its a=rtpmap (and a=fmtp). Preconditions: `plan` came from plan_answer(offer, ...);
// every accepted stream has a non-zero entry in params.ports (and, if SRTP, in
// params.srtp_key_params). A stream violating this is written as rejected (port 0) instead.
std::string build_answer(const SessionDescription& offer, const OfferPlan& plan,
                         const AnswerParams& params);

}  // namespace sgw::siprec
