// MediaEngine: RTP port allocation and the media worker threads.
//
// A recording session is installed on ONE worker (all its streams too), so its
// timeline and its spool have a single writer. open_stream() runs on the SIP
// thread and binds the RTP (and RTCP, port+1) sockets synchronously, before
// the 200 OK is sent, so RTP arriving before the ACK is queued by the kernel
// and read from its first packet. Workers run their own epoll loop with
// recvmmsg and take no locks per packet.
//
// Thread: all methods are for the SIP thread unless stated otherwise.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/metrics.h"
#include "common/result.h"
#include "media/session_sink.h"

namespace sgw::media {

struct MediaOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port_min = 10000;  // even
  std::uint16_t port_max = 20000;
  unsigned workers = 1;            // 0: one per core
  std::uint32_t media_timeout_ms = 60000;
};

// Counters the engine updates; declared once by the application. Any may be null.
struct MediaMetrics {
  common::Counter* packets_received = nullptr;
  common::Counter* packets_lost = nullptr;
  common::Counter* packets_invalid = nullptr;
  common::Gauge* streams_open = nullptr;
  common::Counter* packets_wrong_source = nullptr;
  common::Counter* posts_dropped = nullptr;
};

using SessionHandle = std::uint64_t;
using StreamId = std::uint64_t;

struct StreamSpec {
  std::uint8_t index = 0;        // m-line index, as written to the sink
  std::string remote_address;    // from the SDP; empty, 0.0.0.0 or :: → latch the first source
  bool paused = false;           // on hold / paused: not counted for the media timeout
};

struct OpenedStream {
  StreamId id = 0;
  std::uint16_t rtp_port = 0;
};

class MediaEngine {
 public:
  virtual ~MediaEngine() = default;
  // on_media_timeout is called on a worker thread (post it where it belongs)
  // once per session whose unpaused streams have been silent for the timeout.
  static common::Result<std::unique_ptr<MediaEngine>> create(
      const MediaOptions& options, const MediaMetrics& metrics,
      std::function<void(SessionHandle)> on_media_timeout);

  virtual SessionHandle open_session(const std::string& tag, std::unique_ptr<SessionSink> sink) = 0;
  // Error "media.no_ports" when the range is exhausted.
  virtual common::Result<OpenedStream> open_stream(SessionHandle session, const StreamSpec& spec) = 0;
  virtual void update_stream(SessionHandle session, StreamId stream, const StreamSpec& spec) = 0;
  virtual void close_stream(SessionHandle session, StreamId stream) = 0;
  virtual void post_event(SessionHandle session, std::string json) = 0;
  virtual void post_metadata(SessionHandle session, std::string xml) = 0;
  // Closes every stream (after reading what is queued), calls sink->finish(),
  // destroys the sink, then calls on_closed on the worker thread.
  virtual void close_session(SessionHandle session, std::string end_json,
                             std::function<void()> on_closed) = 0;
  virtual std::size_t open_streams() const = 0;
  // Stops the workers (sessions still open are finished as by close_session
  // without a callback); joins them.
  virtual void stop() = 0;
};

// Monotonic clock in µs (the sessions' clock).
std::int64_t monotonic_us();

}  // namespace sgw::media
