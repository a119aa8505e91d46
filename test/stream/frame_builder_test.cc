#include "stream/frame_builder.h"

#include <cmath>
#include <map>
#include <vector>

#include <gtest/gtest.h>

#include "media/codec.h"

namespace sgw::stream {
namespace {

const char* kStreams =
    R"({"event":"streams","why":"offer","streams":[)"
    R"({"index":0,"label":"1","recorded":true,"paused":false,"payloads":[{"pt":0,"encoding":"PCMU","clock_rate":8000}]},)"
    R"({"index":1,"label":"2","recorded":true,"paused":false,"payloads":[{"pt":0,"encoding":"PCMU","clock_rate":8000}]}]})";

PacketSlot packet(std::uint8_t stream, std::uint16_t seq, std::int64_t arrival_us, std::int16_t level) {
  auto enc = media::make_encoder(media::CodecId::kPcmu).value();
  std::vector<std::int16_t> pcm(160, level);
  PacketSlot p;
  p.stream = stream;
  p.seq = seq;
  p.timestamp = 1000u + seq * 160u;
  p.ssrc = 7u + stream;
  p.arrival_us = arrival_us;
  p.payload_type = 0;
  p.length = static_cast<std::uint16_t>(enc->encode(pcm, p.payload).value());
  return p;
}

TEST(FrameBuilder, PlacesEachStreamOnItsChannelByArrivalAndTimestamp) {
  FrameBuilder b(60);
  b.apply_streams_event(0, kStreams);
  b.set_channels(1, 0);  // m-line 1 is the caller (external), m-line 0 the agent
  // 10 packets per stream from 100 ms on; the second stream's packets come in reverse order.
  for (int i = 0; i < 10; ++i) b.add_packet(packet(0, static_cast<std::uint16_t>(i), 120'000 + i * 20'000, 1000));
  for (int i = 9; i >= 0; --i) b.add_packet(packet(1, static_cast<std::uint16_t>(i), 120'000 + 9 * 20'000, -3000));
  std::vector<Frame> frames;
  b.advance(400'000, [&](const Frame& f) { frames.push_back(f); });
  // Frames are due 60 ms after their end: those ending by 340 ms.
  ASSERT_EQ(frames.size(), 17u);
  for (std::size_t i = 0; i < frames.size(); ++i) EXPECT_EQ(frames[i].index, static_cast<std::int64_t>(i));
  EXPECT_EQ(frames[2].channels[0][80], 0) << "before the first packet: silence";
  EXPECT_NEAR(frames[8].channels[1][80], 1000, 40) << "m-line 0 (agent) on internal";
  EXPECT_NEAR(frames[8].channels[0][80], -3000, 100) << "m-line 1 (caller) on external, reordered packets placed";
  EXPECT_GE(frames[8].first_arrival_us, 0);
  EXPECT_FALSE(frames[8].paused);
  // A packet for a frame already sent is dropped and counted, never placed into a later frame.
  b.add_packet(packet(0, 1, 400'000, 1000));
  EXPECT_GT(b.stats().late_samples, 0u);
}

TEST(FrameBuilder, ACompleteFrameGoesOutTwentyMsAfterItsEndAnIncompleteOneAfterTheDelay) {
  FrameBuilder b(60);
  b.apply_streams_event(0, kStreams);
  b.set_channels(0, 1);
  // Both streams send a packet every 20 ms from 120 ms on (packet i is frame 5 + i); the second
  // stream's packet 5 (frame 10) is lost. The streaming thread's 10 ms cadence.
  std::map<std::int64_t, std::int64_t> sent_at;  // frame -> clock when emitted
  int next = 0;
  for (std::int64_t now = 0; now <= 400'000; now += 10'000) {
    for (; next < 10 && 120'000 + next * 20'000 <= now; ++next) {
      b.add_packet(packet(0, static_cast<std::uint16_t>(next), 120'000 + next * 20'000, 1000));
      if (next != 5) b.add_packet(packet(1, static_cast<std::uint16_t>(next), 120'000 + next * 20'000, -1000));
    }
    b.advance(now, [&](const Frame& f) { sent_at[f.index] = now; });
  }
  // Frames before the first packet: after the delay, or once audio has started after them.
  EXPECT_EQ(sent_at.at(0), 80'000);
  EXPECT_EQ(sent_at.at(1), 100'000);
  for (std::int64_t i = 2; i < 5; ++i) EXPECT_EQ(sent_at.at(i), 120'000) << "frame " << i;
  // Complete frames: 20 ms after their end, not 60.
  for (std::int64_t i = 5; i < 10; ++i) EXPECT_EQ(sent_at.at(i), (i + 1) * 20'000 + 20'000) << "frame " << i;
  // The frame with a packet missing waits the full delay; the complete ones after it follow in
  // order as soon as they are due.
  EXPECT_EQ(sent_at.at(10), 11 * 20'000 + 60'000);
  EXPECT_EQ(sent_at.at(11), 280'000);
  EXPECT_EQ(sent_at.at(12), 280'000);
  EXPECT_EQ(sent_at.at(13), 300'000);
  EXPECT_EQ(sent_at.at(14), 320'000);
  // After the last packets nothing is on its way: the delay again.
  EXPECT_EQ(sent_at.at(15), 16 * 20'000 + 60'000);
  EXPECT_EQ(b.stats().late_samples, 0u);
}

TEST(FrameBuilder, PauseAppliesFromItsTime) {
  FrameBuilder b(20);
  b.apply_streams_event(0, kStreams);
  b.set_channels(0, 1);
  std::string paused = kStreams;
  for (auto at = paused.find("\"paused\":false"); at != std::string::npos; at = paused.find("\"paused\":false"))
    paused.replace(at, 14, "\"paused\":true");
  b.apply_streams_event(100'000, paused);
  b.apply_streams_event(200'000, kStreams);
  std::vector<bool> p;
  b.advance(300'000, [&](const Frame& f) { p.push_back(f.paused); });
  ASSERT_EQ(p.size(), 14u);
  EXPECT_FALSE(p[4]);
  EXPECT_TRUE(p[5]);
  EXPECT_TRUE(p[9]);
  EXPECT_FALSE(p[10]);
}

TEST(FrameBuilder, GarbageEventsAndPayloadsAreIgnored) {
  FrameBuilder b(60);
  for (const char* bad : {"", "{", "[]", R"({"streams":7})", R"({"streams":[1,{"index":-1},{"index":999}]})"})
    b.apply_streams_event(0, bad);
  b.apply_streams_event(0, kStreams);
  b.set_channels(0, 1);
  PacketSlot p;
  p.payload_type = 96;  // not negotiated, not static
  p.length = 10;
  b.add_packet(p);
  p.payload_type = 0;
  p.length = 0;  // empty: the codec refuses it
  b.add_packet(p);
  EXPECT_EQ(b.stats().unknown_payload, 1u);
  EXPECT_EQ(b.stats().decode_errors, 1u);
}

}  // namespace
}  // namespace sgw::stream
