// SessionSink: where a recording session's media goes. media/ only knows this
// interface; the recording layer implements it (the spool) and the
// application wires the two together.
//
// Thread: every call happens on the media worker that owns the session, in
// order. The RtpPacketView is valid only during on_rtp().
#pragma once

#include <cstdint>
#include <string_view>

#include "media/rtp_packet_view.h"

namespace sgw::media {

class SessionSink {
 public:
  virtual ~SessionSink() = default;
  // The session was installed on its worker: open files here, not earlier.
  virtual void start(std::int64_t now_us) = 0;
  // One RTP packet of stream `stream` (m-line index), arrival time in µs on the
  // session clock (0 = session start).
  virtual void on_rtp(std::uint8_t stream, std::int64_t arrival_us, const RtpPacketView& packet) = 0;
  // A signalling event (JSON object text) or a metadata document (XML text).
  virtual void on_event(std::int64_t at_us, std::string_view json) = 0;
  virtual void on_metadata(std::int64_t at_us, std::string_view xml) = 0;
  // What the worker measured for stream `stream` (m-line index), cumulative
  // over the session: packets refused by the source check and packets the
  // kernel dropped because the socket buffer was full (SO_RXQ_OVFL). Called
  // when they change (at most about once a second) and when the stream closes.
  virtual void on_stream_counters(std::int64_t /*at_us*/, std::uint8_t /*stream*/,
                                  std::uint64_t /*wrong_source*/, std::uint64_t /*kernel_drops*/) {}
  // SRTP streams only: packets of stream `stream` (m-line index) that failed
  // authentication and packets refused as replays, cumulative over the
  // session; none of them reached on_rtp(). Called like on_stream_counters.
  virtual void on_srtp_counters(std::int64_t /*at_us*/, std::uint8_t /*stream*/,
                                std::uint64_t /*auth_failures*/, std::uint64_t /*replays*/) {}
  // Called about every 100 ms: a chance to flush buffers.
  virtual void on_tick(std::int64_t now_us) = 0;
  // Last call: the session ended (end_json says how); flush and close.
  virtual void finish(std::int64_t at_us, std::string_view end_json) = 0;
};

}  // namespace sgw::media
