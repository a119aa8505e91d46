// Streamer: the streaming thread. It owns a libwebsockets client context and, per streamed
// recording, one WebSocket connection fed from the recording's LiveStream (docs/integrations.md
// "Live audio").
//
// Every 10 ms the thread takes what the taps queued (packets, events), builds the due 20 ms frames
// (FrameBuilder) and queues them for the socket. A connection whose server does not keep up has
// at most `max_queued_frames` frames queued: further frames are dropped (counted per stream and
// in sgw_stream_frames_dropped_total, reported to an AudioHook server as "discarded"). A lost or
// refused connection is retried (1 s, doubling to 10 s) while the call lasts: what the lost
// connection had not written, and every frame until the next connection, is dropped (outage);
// the next connection opens a new AudioHook session that continues the earlier ones
// (continuedSessions) at the position where the written audio ended, then reports the lost
// audio as "discarded" (plain: "start" again, then "discarded"). Nothing here ever waits for a
// media worker, the spool or the finaliser, and they never wait for it.
//
// Thread: attach() and stop() from any thread; everything else on the streaming thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "common/result.h"
#include "metadata/metadata_parser.h"
#include "recording/channel_layout.h"
#include "stream/live_stream.h"

struct lws;
struct lws_context;

namespace sgw::stream {

struct StreamerMetrics {
  common::Counter* frames_sent = nullptr;       // sgw_stream_frames_sent_total
  common::Counter* frames_dropped = nullptr;    // sgw_stream_frames_dropped_total
  common::Counter* connect_failures = nullptr;  // sgw_stream_connect_failures_total
  common::Gauge* active = nullptr;              // sgw_stream_active
  common::Counter* connections_lost = nullptr;  // sgw_stream_connections_lost_total
  common::Counter* reconnects = nullptr;        // sgw_stream_reconnects_total
};

struct StreamerOptions {
  std::string ca_file;          // wss://: CA bundle to verify the server (empty: system store)
  std::uint32_t delay_ms = 60;  // how late a packet may arrive and still be in its frame
  std::uint32_t max_queued_frames = 50;
  std::uint32_t ping_interval_s = 5;
  std::uint32_t connect_timeout_s = 5;
  recording::LayoutConfig layout;  // roles: which stream is external (caller) / internal (agent)
  metadata::ParseLimits metadata_limits;
  StreamerMetrics metrics;
};

// True for ws://host[:port][/path] and wss://... (what the streamer can connect to).
bool valid_stream_url(const std::string& url);

class Streamer {
 public:
  // Creates the client context (errors: "stream.init", e.g. an unreadable CA file) and starts
  // the thread.
  static common::Result<std::unique_ptr<Streamer>> start(StreamerOptions options);
  ~Streamer();
  Streamer(const Streamer&) = delete;
  Streamer& operator=(const Streamer&) = delete;

  // Any thread: stream this recording (its tap feeds `live`). Picked up within 10 ms.
  void attach(std::shared_ptr<LiveStream> live);
  // Any thread, idempotent: closes every connection and joins the thread.
  void stop();

  struct Conn;  // one connection (streamer.cc)

 private:
  explicit Streamer(StreamerOptions options);
  friend struct StreamerAccess;  // the libwebsockets callback (streamer.cc)
  void run();
  void pump();
  void adopt(std::shared_ptr<LiveStream> live);
  void connect(Conn& c);
  void process(Conn& c, std::int64_t now_mono);
  void write(Conn& c);
  // Removes the audio frames queued on the connection (its text messages stay) and counts them
  // as dropped (and as outage when the connection is gone). Returns how many.
  std::uint64_t drop_queued_frames(Conn& c, bool outage);
  // AudioHook "disconnect" from the server: close the session, for good.
  void close_on_disconnect(Conn& c, const std::string& reason);

  StreamerOptions options_;
  lws_context* context_ = nullptr;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;  // pending_ only
  std::vector<std::shared_ptr<LiveStream>> pending_;
  std::vector<std::unique_ptr<Conn>> conns_;  // streaming thread only
  struct Timer;
  std::unique_ptr<Timer> timer_;
};

}  // namespace sgw::stream
