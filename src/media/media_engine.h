// MediaEngine: RTP port allocation and the media worker threads.
//
// open_stream() runs on the SIP thread and binds the RTP (and RTCP, port+1)
// sockets synchronously, before the 200 OK is sent, so RTP arriving before
// the ACK is queued by the kernel and read from its first packet. The socket
// is then handed to one worker (round robin), which owns it from then on;
// workers run their own epoll loop with recvmmsg and take no locks per packet.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/metrics.h"
#include "common/result.h"

namespace sgw::media {

struct MediaOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port_min = 10000;  // even
  std::uint16_t port_max = 20000;
  unsigned workers = 1;
};

// Counters the engine updates; declared once by the application.
struct MediaMetrics {
  common::Counter* packets_received = nullptr;
  common::Counter* packets_lost = nullptr;
  common::Counter* packets_invalid = nullptr;
  common::Gauge* streams_open = nullptr;
};

using StreamId = std::uint64_t;

struct OpenedStream {
  StreamId id = 0;
  std::uint16_t rtp_port = 0;
};

class MediaEngine {
 public:
  virtual ~MediaEngine() = default;
  static common::Result<std::unique_ptr<MediaEngine>> create(const MediaOptions& options,
                                                             const MediaMetrics& metrics);
  // SIP thread. Error "media.no_ports" when the range is exhausted.
  virtual common::Result<OpenedStream> open_stream(const std::string& session_tag) = 0;
  // SIP thread. Closes the sockets (on the owning worker) and frees the ports.
  virtual void close_stream(StreamId id) = 0;
  virtual std::size_t open_streams() const = 0;
  // Stops the workers; joins them.
  virtual void stop() = 0;
};

}  // namespace sgw::media
