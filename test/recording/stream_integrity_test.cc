// StreamAccounting: RFC 3550 A.3 expected counts (wrap, reorder, duplicates,
// SSRC change, sequence reset) and silence while the stream is active.
#include "recording/stream_integrity.h"

#include <gtest/gtest.h>

namespace sgw::recording {
namespace {

constexpr std::int64_t kS = 1'000'000;

StreamAccounting always_active(std::int64_t duration_us, std::int64_t threshold_us = 10 * kS) {
  return StreamAccounting({{0, true}}, duration_us, threshold_us);
}

TEST(StreamAccounting, ExpectedAcrossWrapWithReorderAndDuplicates) {
  auto a = always_active(10 * kS);
  // 65530..65535, 0..9 with 3 missing, 65534 duplicated, 2 arriving after 4.
  std::vector<std::uint16_t> seqs{65530, 65531, 65532, 65533, 65534, 65534, 65535, 0, 1, 4, 2, 5, 6, 7, 8, 9};
  std::int64_t t = 0;
  for (auto s : seqs) a.on_packet(7, s, t += 20000);
  a.finish();
  EXPECT_EQ(a.expected(), 16U);  // 65530 .. 9 (extended), 3 never came
  EXPECT_EQ(a.received(), 16U);  // duplicates included (A.3)
}

TEST(StreamAccounting, SsrcChangeAndSequenceResetStartNewSegments) {
  auto a = always_active(10 * kS);
  std::int64_t t = 0;
  for (std::uint16_t s = 100; s < 110; ++s) a.on_packet(1, s, t += 20000);  // 10
  for (std::uint16_t s = 5000; s < 5005; ++s) a.on_packet(2, s, t += 20000);  // new SSRC: 5
  for (std::uint16_t s = 40000; s < 40004; ++s) a.on_packet(1, s, t += 20000);  // reset: 4
  a.finish();
  EXPECT_EQ(a.expected(), 19U);
  EXPECT_EQ(a.received(), 19U);
}

TEST(StreamAccounting, ASingleFarJumpIsNotBelieved) {
  auto a = always_active(10 * kS);
  std::int64_t t = 0;
  for (std::uint16_t s = 100; s < 110; ++s) a.on_packet(1, s, t += 20000);
  a.on_packet(1, 30000, t += 20000);  // stray: no follower
  for (std::uint16_t s = 110; s < 115; ++s) a.on_packet(1, s, t += 20000);
  a.finish();
  EXPECT_EQ(a.expected(), 15U);
  EXPECT_EQ(a.received(), 16U);
}

TEST(StreamAccounting, SilenceIsActiveTimeWithoutPackets) {
  // Active 0-30 s, paused 30-40 s, active 40-60 s. Packets at 1 s, 25 s, 45 s.
  StreamAccounting a({{0, true}, {30 * kS, false}, {40 * kS, true}}, 60 * kS, 10 * kS);
  for (std::int64_t t : {1, 25, 45}) a.on_packet(1, static_cast<std::uint16_t>(t), t * kS);
  a.finish();
  // 1->25: 24 s; 25->45: 5 + 5 = 10 s (not over 10); 45->60: 15 s.
  ASSERT_EQ(a.silences().size(), 2U);
  EXPECT_EQ(a.silences()[0].start_ms, 1000);
  EXPECT_EQ(a.silences()[0].length_ms, 24000);
  EXPECT_EQ(a.silences()[1].start_ms, 45000);
  EXPECT_EQ(a.silences()[1].length_ms, 15000);
  EXPECT_EQ(a.longest_silence_ms(), 24000);
}

TEST(StreamAccounting, NotYetAddedIsNotSilence) {
  // The stream is added by a re-INVITE at 50 s; the call lasts 55 s; no packet.
  StreamAccounting late_stream({{50 * kS, true}}, 55 * kS, 10 * kS);
  late_stream.finish();
  EXPECT_TRUE(late_stream.silences().empty());
  StreamAccounting nothing({{0, true}}, 55 * kS, 10 * kS);
  nothing.finish();
  ASSERT_EQ(nothing.silences().size(), 1U);
  EXPECT_EQ(nothing.silences()[0].length_ms, 55000);
}

TEST(StreamAccounting, HostileArrivalTimesAreClamped) {
  auto a = always_active(10 * kS, 1 * kS);
  a.on_packet(1, 1, 5 * kS);
  a.on_packet(1, 2, -100 * kS);  // before the previous: clamped, no negative silence
  a.on_packet(1, 3, 1000 * kS);  // after the end: clamped to the end
  a.finish();
  ASSERT_EQ(a.silences().size(), 2U);
  EXPECT_EQ(a.silences()[0].length_ms, 5000);
  EXPECT_EQ(a.silences()[1].length_ms, 5000);
}

}  // namespace
}  // namespace sgw::recording
