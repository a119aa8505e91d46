// MediaEngine: RTP port allocation and the media worker threads.
//
// A recording session is installed on ONE worker (all its streams too), so its
// timeline and its spool have a single writer. open_stream() runs on the SIP
// thread and binds the RTP (and RTCP, port+1) sockets synchronously, before
// the 200 OK is sent, so RTP arriving before the ACK is queued by the kernel
// and read from its first packet. Workers run their own epoll loop with
// recvmmsg and take no locks per packet.
//
// Source check: a stream accepts RTP only from the host its SDP names (any
// host when the SDP gives none) and, once the first valid packet arrives,
// only from that packet's address and port (MediaOptions::latch_port). What it
// refuses, and what the kernel dropped because the socket buffer was full
// (SO_RXQ_OVFL), is counted per stream and handed to the session's sink
// (SessionSink::on_stream_counters: cumulative per m-line index; at most once
// a second while it changes, and when the stream closes).
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
#include "media/srtp_session.h"

namespace sgw::media {

struct MediaOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port_min = 10000;  // even
  std::uint16_t port_max = 20000;
  unsigned workers = 1;            // 0: one per core
  std::uint32_t media_timeout_ms = 60000;
  // Admission high-water mark of each worker's queue of posted work: while a
  // worker has this many items waiting, reserve_session() refuses new
  // sessions on it (the SIP side answers 503). Work for sessions already
  // admitted (streams, events, close) is never refused nor dropped: the
  // queue's length beyond the mark is bounded by what admitted sessions post.
  std::size_t queue_capacity = 65536;
  // Source check (media.latch): true latches address AND port of the first
  // valid RTP packet; false latches the address only (SRCs behind odd NATs).
  bool latch_port = true;
  // Packets read from one socket per wake-up: a flooded port cannot starve the
  // worker's other streams (epoll is level-triggered; the rest waits a turn).
  unsigned max_packets_per_wake = 64;
};

// Counters the engine updates; declared once by the application. Any may be null.
struct MediaMetrics {
  common::Counter* packets_received = nullptr;
  common::Counter* packets_lost = nullptr;
  common::Counter* packets_invalid = nullptr;
  common::Gauge* streams_open = nullptr;
  common::Counter* packets_wrong_source = nullptr;
  common::Counter* admissions_refused = nullptr;  // reserve_session() refused: worker queue full
  common::Counter* packets_dropped_kernel = nullptr;  // SO_RXQ_OVFL: socket buffer overflows
  common::Counter* srtp_auth_failures = nullptr;  // SRTP packets that failed authentication: dropped
  common::Counter* srtp_replays = nullptr;        // SRTP packets refused as replays: dropped
  common::Counter* rtcp_packets = nullptr;        // RTCP/SRTCP on a muxed RTP port: not recorded, not invalid
};

// Monotonic clock in µs (the sessions' clock).
std::int64_t monotonic_us();

using SessionHandle = std::uint64_t;
using StreamId = std::uint64_t;

struct StreamSpec {
  std::uint8_t index = 0;        // m-line index, as written to the sink
  std::string remote_address;    // from the SDP; empty, 0.0.0.0 or :: → latch the first source
  bool paused = false;           // on hold / paused: not counted for the media timeout
  std::uint16_t remote_port = 0; // SDP port; a change (like a new address) re-latches the source
  // SDES-SRTP: the SRC's keys (RTP/SAVP), null for plain RTP. Packets are
  // authenticated and decrypted on the worker before anything else sees them;
  // those that fail are counted (SessionSink::on_srtp_counters) and dropped.
  // New keys in update_stream (a rekeying re-offer) take over at once; the
  // previous keys still decrypt packets that were in flight (tried second,
  // for kRekeyOverlapUs), so rekeying loses no audio.
  std::shared_ptr<const SrtpKeys> srtp = nullptr;
};

// How long a stream's previous SRTP keys are still tried after a rekey.
inline constexpr std::int64_t kRekeyOverlapUs = 10'000'000;

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

  // Places a new session on a worker without starting it: nothing is posted
  // and no sink exists yet, so streams can be opened (ports bound) before
  // anything is written for the call. Returns 0 (counted, admissions_refused)
  // when the chosen worker's queue is at options.queue_capacity.
  virtual SessionHandle reserve_session(const std::string& tag) = 0;
  // Installs a reserved session on its worker with its sink (sink->start()
  // runs there), then the streams opened so far. Never refused. start_us is
  // the session's time zero on monotonic_us(): the instant the caller wrote
  // as the recording's start time, so audio positions and start_time agree.
  virtual void start_session(SessionHandle session, std::unique_ptr<SessionSink> sink,
                             std::int64_t start_us) = 0;
  // reserve_session + start_session; 0 when refused (the sink is dropped unused).
  SessionHandle open_session(const std::string& tag, std::unique_ptr<SessionSink> sink) {
    SessionHandle h = reserve_session(tag);
    if (h != 0) start_session(h, std::move(sink), monotonic_us());
    return h;
  }
  // Error "media.no_ports" when the range is exhausted; "srtp.*" when the
  // spec's SRTP keys cannot make a libsrtp context.
  virtual common::Result<OpenedStream> open_stream(SessionHandle session, const StreamSpec& spec) = 0;
  virtual void update_stream(SessionHandle session, StreamId stream, const StreamSpec& spec) = 0;
  virtual void close_stream(SessionHandle session, StreamId stream) = 0;
  virtual void post_event(SessionHandle session, std::string json) = 0;
  virtual void post_metadata(SessionHandle session, std::string xml) = 0;
  // Closes every stream (after reading what is queued), calls sink->finish(),
  // destroys the sink, then calls on_closed on the worker thread. For a
  // session reserved but never started, only releases its ports (on this
  // thread; nothing was written) and does not call on_closed.
  virtual void close_session(SessionHandle session, std::string end_json,
                             std::function<void()> on_closed) = 0;
  virtual std::size_t open_streams() const = 0;
  // Stops the workers (sessions still open are finished as by close_session
  // without a callback); joins them. Afterwards every method is a no-op for
  // sessions opened before (so late callers, e.g. a SessionManager being
  // destroyed, never reach a freed worker) and reserve_session() refuses.
  virtual void stop() = 0;
};


}  // namespace sgw::media
