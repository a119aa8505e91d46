#include "stream/stream_tap.h"

#include <algorithm>

#include "media/media_engine.h"

namespace sgw::stream {

StreamTap::StreamTap(std::unique_ptr<media::SessionSink> inner, std::shared_ptr<LiveStream> live,
                     common::Counter* dropped)
    : inner_(std::move(inner)), live_(std::move(live)), dropped_(dropped) {}

void StreamTap::start(std::int64_t now_us) {
  inner_->start(now_us);
  live_->set_origin(media::monotonic_us() - now_us);
}

void StreamTap::on_rtp(std::uint8_t stream, std::int64_t arrival_us, const media::RtpPacketView& packet) {
  inner_->on_rtp(stream, arrival_us, packet);  // the recording first, whatever happens below
  const std::uint64_t counter = ++packets_;
  bool queued = packet.payload.size() <= PacketSlot::kMaxPayload &&
                live_->ring().push([&](PacketSlot& s) {
                  s.counter = counter;
                  s.arrival_us = arrival_us;
                  s.timestamp = packet.timestamp;
                  s.ssrc = packet.ssrc;
                  s.seq = packet.sequence;
                  s.stream = stream;
                  s.payload_type = packet.payload_type;
                  s.length = static_cast<std::uint16_t>(packet.payload.size());
                  std::copy(packet.payload.begin(), packet.payload.end(), s.payload.begin());
                });
  if (!queued) {
    live_->stats().packets_dropped.fetch_add(1, std::memory_order_relaxed);
    if (dropped_) dropped_->inc();
  }
}

void StreamTap::on_event(std::int64_t at_us, std::string_view json) {
  inner_->on_event(at_us, json);
  // Only "streams" events matter to the stream (pause/resume, codecs); they are rare.
  if (json.find("\"event\":\"streams\"") != std::string_view::npos)
    live_->post_event({packets_, at_us, std::string(json)});
}

void StreamTap::on_metadata(std::int64_t at_us, std::string_view xml) { inner_->on_metadata(at_us, xml); }

void StreamTap::on_stream_counters(std::int64_t at_us, std::uint8_t stream, std::uint64_t wrong_source,
                                   std::uint64_t kernel_drops) {
  inner_->on_stream_counters(at_us, stream, wrong_source, kernel_drops);
}

void StreamTap::on_srtp_counters(std::int64_t at_us, std::uint8_t stream, std::uint64_t auth_failures,
                                 std::uint64_t replays) {
  inner_->on_srtp_counters(at_us, stream, auth_failures, replays);
}

void StreamTap::on_tick(std::int64_t now_us) { inner_->on_tick(now_us); }

void StreamTap::finish(std::int64_t at_us, std::string_view end_json) {
  live_->end(at_us, packets_);
  inner_->on_event(at_us, live_->report().encode());
  inner_->finish(at_us, end_json);
}

}  // namespace sgw::stream
