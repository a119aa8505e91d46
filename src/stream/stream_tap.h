// StreamTap: a media::SessionSink that hands every call to the recording's own sink (the spool)
// first, unchanged, and then copies the packet into the recording's LiveStream for the
// streaming thread (docs/integrations.md "Live audio").
//
// Off the durability path: the spool sees exactly what it would see without streaming; the copy
// never waits (a full queue drops the packet and counts it) and never allocates per packet.
// Thread: as media::SessionSink (the session's media worker), except the constructor (SIP thread).
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "common/metrics.h"
#include "media/session_sink.h"
#include "stream/live_stream.h"

namespace sgw::stream {

class StreamTap final : public media::SessionSink {
 public:
  // `dropped`: sgw_stream_packets_dropped_total (may be null).
  StreamTap(std::unique_ptr<media::SessionSink> inner, std::shared_ptr<LiveStream> live,
            common::Counter* dropped);

  void start(std::int64_t now_us) override;
  void on_rtp(std::uint8_t stream, std::int64_t arrival_us, const media::RtpPacketView& packet) override;
  void on_event(std::int64_t at_us, std::string_view json) override;
  void on_metadata(std::int64_t at_us, std::string_view xml) override;
  void on_stream_counters(std::int64_t at_us, std::uint8_t stream, std::uint64_t wrong_source,
                          std::uint64_t kernel_drops) override;
  void on_srtp_counters(std::int64_t at_us, std::uint8_t stream, std::uint64_t auth_failures,
                        std::uint64_t replays) override;
  void on_tick(std::int64_t now_us) override;
  // Writes the stream's report (a "live_stream" spool event, recording/spool_events.h) into the
  // spool, then finishes the spool and tells the streaming thread the call ended.
  void finish(std::int64_t at_us, std::string_view end_json) override;

 private:
  std::unique_ptr<media::SessionSink> inner_;
  std::shared_ptr<LiveStream> live_;
  common::Counter* dropped_;  // not owned
  std::uint64_t packets_ = 0;
};

}  // namespace sgw::stream
