#include "stream/stream_tap.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "recording/spool_events.h"

namespace sgw::stream {
namespace {

// The recording's own sink: what it is handed, in order.
class RecordingSink : public media::SessionSink {
 public:
  std::vector<std::string> calls;
  void start(std::int64_t) override { calls.push_back("start"); }
  void on_rtp(std::uint8_t stream, std::int64_t, const media::RtpPacketView& p) override {
    calls.push_back("rtp " + std::to_string(stream) + " " + std::to_string(p.sequence));
  }
  void on_event(std::int64_t, std::string_view json) override { calls.push_back("event " + std::string(json)); }
  void on_metadata(std::int64_t, std::string_view) override { calls.push_back("metadata"); }
  void on_tick(std::int64_t) override {}
  void finish(std::int64_t, std::string_view) override { calls.push_back("finish"); }
};

TEST(StreamTap, TheRecordingGetsEverythingEvenWhenTheStreamQueueIsFull) {
  auto inner = std::make_unique<RecordingSink>();
  auto* seen = inner.get();
  auto live = std::make_shared<LiveStream>(StreamTarget{"ws://h/p?token=secret", Protocol::kAudioHook, "", ""},
                                           StreamSetup{}, 16);
  common::Counter dropped;
  StreamTap tap(std::move(inner), live, &dropped);
  tap.start(0);
  std::uint8_t payload[160] = {};
  std::uint8_t huge[PacketSlot::kMaxPayload + 1] = {};
  for (std::uint16_t i = 0; i < 20; ++i) {
    media::RtpPacketView p;
    p.sequence = i;
    p.payload = std::span<const std::uint8_t>(payload, sizeof payload);
    tap.on_rtp(0, i * 20'000, p);
  }
  media::RtpPacketView big;
  big.sequence = 99;
  big.payload = std::span<const std::uint8_t>(huge, sizeof huge);
  tap.on_rtp(1, 500'000, big);
  tap.on_event(1, R"({"event":"streams","streams":[]})");
  // What the streaming thread counted about lost connections (docs/integrations.md).
  live->stats().connects = 3;
  live->stats().reconnects = 2;
  live->stats().connections_lost = 2;
  live->stats().frames_dropped = 80;
  live->stats().outage_frames = 75;
  tap.finish(600'000, "{}");

  // The spool saw all 21 packets, the event, then the stream's report, then finish.
  ASSERT_EQ(seen->calls.size(), 1u + 21u + 1u + 1u + 1u);
  EXPECT_EQ(seen->calls[1], "rtp 0 0");
  EXPECT_EQ(seen->calls[21], "rtp 1 99");
  auto report = recording::decode_live_stream(seen->calls[23].substr(6));
  ASSERT_TRUE(report) << seen->calls[23];
  EXPECT_EQ(seen->calls.back(), "finish");
  // The stream's queue holds 16: 4 of the 20 and the oversized one were dropped and counted.
  EXPECT_EQ(report->packets_dropped, 5u);
  EXPECT_EQ(dropped.value(), 5u);
  EXPECT_EQ(report->url, "ws://h/p") << "no token in the recording";
  EXPECT_EQ(report->protocol, "audiohook");
  EXPECT_EQ((std::vector<std::uint64_t>{report->connects, report->reconnects, report->connections_lost,
                                        report->frames_dropped, report->outage_frames}),
            (std::vector<std::uint64_t>{3, 2, 2, 80, 75}));
  EXPECT_NE(seen->calls[23].find(R"("outage_ms":1500)"), std::string::npos) << seen->calls[23];
  std::size_t queued = live->ring().drain([](const PacketSlot&) {});
  EXPECT_EQ(queued, 16u);
  auto events = live->take_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].counter, 21u) << "after the 21st packet";
  EXPECT_TRUE(live->ended());
  EXPECT_EQ(recording::decode_live_stream(report->encode()), report) << "round trip";
}

}  // namespace
}  // namespace sgw::stream
