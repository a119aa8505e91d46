#include "recording/timeline.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <array>
#include <climits>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "media/codec.h"
#include "recording/timeline_intervals.h"
#include "recording/timeline_resample.h"

namespace sgw::recording {
namespace {

constexpr std::int16_t kConcealValue = -7;

// A fake codec whose 4-byte payload is {value (int16 BE), count (u16 BE)}:
// decode() yields `count` samples of `value`, conceal() yields kConcealValue.
// Every packet thus carries a distinct marker we can find in the track.
class FakeDecoder : public media::Decoder {
 public:
  FakeDecoder(std::uint32_t rtp_clock, std::uint32_t native_rate)
      : rtp_clock_(rtp_clock), native_rate_(native_rate) {}
  media::CodecInfo info() const override {
    return {media::CodecId::kPcmu, "FAKE", rtp_clock_, native_rate_, 20};
  }
  common::Result<std::size_t> decode(std::span<const std::uint8_t> payload,
                                     std::span<std::int16_t> out) override {
    if (payload.size() != 4) return common::make_error("codec.bad_length", "fake");
    auto value = static_cast<std::int16_t>((payload[0] << 8) | payload[1]);
    std::size_t count = (std::size_t{payload[2]} << 8) | payload[3];
    if (count > out.size()) return common::make_error("codec.out_too_small", "fake");
    std::fill_n(out.begin(), count, value);
    return count;
  }
  std::size_t conceal(std::size_t samples, std::span<std::int16_t> out) override {
    std::size_t n = std::min(samples, out.size());
    std::fill_n(out.begin(), n, kConcealValue);
    return n;
  }

 private:
  std::uint32_t rtp_clock_, native_rate_;
};

std::vector<std::uint8_t> fake_payload(std::int16_t value, std::uint16_t count) {
  auto v = static_cast<std::uint16_t>(value);
  return {static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v & 0xff),
          static_cast<std::uint8_t>(count >> 8), static_cast<std::uint8_t>(count & 0xff)};
}

struct Pkt {
  std::uint16_t seq = 0;
  std::uint32_t ts = 0;
  std::uint32_t ssrc = 1;
  std::uint8_t pt = 0;
  std::int64_t arrival_us = 0;
  std::vector<std::uint8_t> payload;
};

void add(StreamTrack& t, const Pkt& p) {
  media::RtpPacketView v;
  v.sequence = p.seq;
  v.timestamp = p.ts;
  v.ssrc = p.ssrc;
  v.payload_type = p.pt;
  v.payload = p.payload;
  t.add_packet(v, p.arrival_us);
}

void feed(StreamTrack& t, std::vector<Pkt> pkts) {
  std::stable_sort(pkts.begin(), pkts.end(),
                   [](const Pkt& a, const Pkt& b) { return a.arrival_us < b.arrival_us; });
  for (const auto& p : pkts) add(t, p);
}

StreamCodecs fake_codecs(std::uint32_t rtp_clock = 8000, std::uint32_t native = 8000) {
  StreamCodecs c;
  c.decoders[0] = std::make_unique<FakeDecoder>(rtp_clock, native);
  c.telephone_event_pt = 101;
  return c;
}

StreamTrack make_track(std::uint32_t rate, std::int64_t duration_s, StreamCodecs c = fake_codecs()) {
  auto r = StreamTrack::create(TimelineParams{.output_rate = rate, .duration_us = duration_s * 1'000'000},
                               std::move(c));
  EXPECT_TRUE(r.ok());
  return std::move(r).value();
}

std::int16_t marker(std::int64_t k) { return static_cast<std::int16_t>(1000 + k % 20000); }

// 20 ms / 8 kHz packet k of a stream: marker payload.
Pkt audio(std::int64_t k, std::uint16_t seq0, std::uint32_t ts0, std::int64_t arrival_us,
          std::uint32_t ssrc = 1) {
  Pkt p;
  p.seq = static_cast<std::uint16_t>(seq0 + k);
  p.ts = static_cast<std::uint32_t>(ts0 + static_cast<std::uint32_t>(k) * 160);
  p.ssrc = ssrc;
  p.arrival_us = arrival_us;
  p.payload = fake_payload(marker(k), 160);
  return p;
}

// Where packet k's marker run starts, searching +-tol around `expect`; -1 if absent.
std::int64_t find_marker(std::span<const std::int16_t> s, std::int64_t k, std::int64_t expect,
                         std::int64_t tol) {
  const std::int16_t m = marker(k);
  for (std::int64_t i = std::max<std::int64_t>(0, expect - tol);
       i <= expect + tol && i < static_cast<std::int64_t>(s.size()); ++i) {
    if (s[static_cast<std::size_t>(i)] == m && (i == 0 || s[static_cast<std::size_t>(i - 1)] != m)) return i;
  }
  return -1;
}

bool all_zero(std::span<const std::int16_t> s, std::int64_t a, std::int64_t b) {
  for (std::int64_t i = a; i < b; ++i)
    if (s[static_cast<std::size_t>(i)] != 0) return false;
  return true;
}

void expect_gaps(const std::vector<Gap>& got, const std::vector<Gap>& want) {
  ASSERT_EQ(got.size(), want.size()) << [&] {
    std::string s;
    for (const auto& g : got)
      s += g.cause + "@" + std::to_string(g.start_ms) + "+" + std::to_string(g.length_ms) + " ";
    return s;
  }();
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].cause, want[i].cause) << i;
    EXPECT_EQ(got[i].start_ms, want[i].start_ms) << i;
    EXPECT_EQ(got[i].length_ms, want[i].length_ms) << i;
  }
}

Gap gap(std::int64_t start_ms, std::int64_t length_ms, std::string cause) {
  Gap g;
  g.start_ms = start_ms;
  g.length_ms = length_ms;
  g.cause = std::move(cause);
  return g;
}

TEST(TimelineTest, RejectsBadParams) {
  EXPECT_FALSE(StreamTrack::create(TimelineParams{.output_rate = 0, .duration_us = 1}, fake_codecs()).ok());
  EXPECT_FALSE(StreamTrack::create(TimelineParams{.output_rate = 8000, .duration_us = -1}, fake_codecs()).ok());
  StreamCodecs c;
  c.decoders[0] = nullptr;
  auto r = StreamTrack::create(TimelineParams{.output_rate = 8000, .duration_us = 1}, std::move(c));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "timeline.no_decoder");
}

TEST(TimelineTest, TwoStreamsWithLateStartAreAligned) {
  // A from 0 s to 10 s; B from 3 s to 9 s, its seq and timestamp wrapping.
  auto a = make_track(8000, 10);
  auto b = make_track(8000, 10);
  std::vector<Pkt> pa, pb;
  for (std::int64_t k = 0; k < 500; ++k) pa.push_back(audio(k, 100, 5000, k * 20'000, 1));
  for (std::int64_t k = 0; k < 300; ++k)
    pb.push_back(audio(k, 65500, 0xFFFFF000u, 3'000'000 + k * 20'000, 2));
  feed(a, pa);
  feed(b, pb);
  a.finish();
  b.finish();
  ASSERT_EQ(a.samples().size(), 80000u);
  ASSERT_EQ(b.samples().size(), 80000u);
  expect_gaps(a.gaps(), {});
  expect_gaps(b.gaps(), {gap(0, 3000, "late_start"), gap(9000, 1000, "end")});
  EXPECT_EQ(b.gaps()[0].length_samples, 24000);
  EXPECT_TRUE(all_zero(b.samples(), 0, 24000));
  for (std::int64_t k = 0; k < 300; ++k) ASSERT_EQ(find_marker(b.samples(), k, 24000 + k * 160, 160), 24000 + k * 160) << k;
  for (std::int64_t k = 0; k < 500; ++k) ASSERT_EQ(find_marker(a.samples(), k, k * 160, 160), k * 160) << k;
  EXPECT_EQ(b.stats().received, 300u);
  EXPECT_EQ(b.stats().lost, 0u);
  EXPECT_EQ(b.stats().first_arrival_us, 3'000'000);
  EXPECT_EQ(b.stats().codecs, std::vector<std::string>{"FAKE"});
}

TEST(TimelineTest, RandomLossAndReorderKeepDurationAndReportLoss) {
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> jitter(0, 40'000);
  std::uniform_real_distribution<double> u(0, 1);
  auto t = make_track(8000, 60);
  std::vector<Pkt> pkts;
  std::vector<bool> lost(3000, false);
  std::uint64_t nlost = 0;
  for (std::int64_t k = 0; k < 3000; ++k) {
    if (k > 5 && k < 2995 && u(rng) < 0.05) {
      lost[static_cast<std::size_t>(k)] = true;
      ++nlost;
      continue;
    }
    pkts.push_back(audio(k, 30000, 777, k * 20'000 + jitter(rng)));
  }
  pkts.push_back(audio(10, 30000, 777, 10 * 20'000 + 45'000));  // a duplicate
  feed(t, pkts);
  t.finish();
  ASSERT_EQ(t.samples().size(), 480000u);
  auto st = t.stats();
  EXPECT_EQ(st.lost, nlost);
  EXPECT_EQ(st.late, 0u);
  EXPECT_EQ(st.duplicated, 1u);
  EXPECT_GT(st.reordered, 50u);

  // Expected runs of lost packets.
  std::vector<std::pair<std::int64_t, std::int64_t>> runs;
  for (std::int64_t k = 0; k < 3000; ++k) {
    if (!lost[static_cast<std::size_t>(k)]) continue;
    if (!runs.empty() && runs.back().second == k)
      runs.back().second = k + 1;
    else
      runs.emplace_back(k, k + 1);
  }
  std::vector<Gap> loss_gaps;
  for (const auto& g : t.gaps()) {
    if (g.cause == "loss")
      loss_gaps.push_back(g);
    else
      EXPECT_LE(g.length_samples, 8) << g.cause << "@" << g.start_ms;  // jitter rounding only
  }
  ASSERT_EQ(loss_gaps.size(), runs.size());
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const auto [k0, k1] = runs[i];
    EXPECT_NEAR(static_cast<double>(loss_gaps[i].start_ms), static_cast<double>(k0 * 20), 1.0) << i;
    EXPECT_EQ(loss_gaps[i].length_samples, (k1 - k0) * 160) << i;
    // <= 60 ms is concealed by the codec, longer is silence.
    const std::int16_t want = (k1 - k0) * 20 <= 60 ? kConcealValue : 0;
    const std::int64_t mid = loss_gaps[i].start_sample + loss_gaps[i].length_samples / 2;
    EXPECT_EQ(t.samples()[static_cast<std::size_t>(mid)], want) << i;
  }
  // Every received packet sits where its timestamp says (within 1 ms).
  for (std::int64_t k = 0; k < 3000; k += 7)
    if (!lost[static_cast<std::size_t>(k)]) {
      auto pos = find_marker(t.samples(), k, k * 160, 80);
      ASSERT_GE(pos, 0) << k;
      EXPECT_LE(std::abs(pos - k * 160), 8) << k;
    }
}

TEST(TimelineTest, JitterDoesNotMovePlacement) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> jitter(0, 40'000);
  auto t = make_track(8000, 30);
  std::vector<Pkt> pkts;
  for (std::int64_t k = 0; k < 1500; ++k) pkts.push_back(audio(k, 1, 1, k * 20'000 + jitter(rng)));
  feed(t, pkts);
  t.finish();
  std::int64_t worst = 0;
  for (std::int64_t k = 0; k < 1500; ++k) {
    auto pos = find_marker(t.samples(), k, k * 160, 160);
    ASSERT_GE(pos, 0) << k;
    worst = std::max(worst, std::abs(pos - k * 160));
  }
  EXPECT_LE(worst, 8) << "1 ms at 8 kHz";
  EXPECT_EQ(t.stats().timestamp_jumps, 0u);
}

TEST(TimelineTest, HourLongDriftStaysWithin20ms) {
  // A's RTP clock runs 100 ppm fast, B's 100 ppm slow: after an hour their
  // timestamps are 360 ms ahead/behind real time. Both must still sit within
  // 20 ms of when their packets were really sent.
  constexpr std::int64_t kSeconds = 3600;
  std::mt19937 rng(99);
  std::uniform_int_distribution<int> jitter(0, 20'000);
  for (double ppm : {+100.0, -100.0}) {
    auto t = make_track(8000, kSeconds);
    std::vector<std::int64_t> send_us;
    std::vector<Pkt> pkts;
    for (std::int64_t k = 0;; ++k) {
      auto send = static_cast<std::int64_t>(std::llround(static_cast<double>(k) * 20'000.0 / (1.0 + ppm * 1e-6)));
      if (send >= kSeconds * 1'000'000 - 20'000) break;
      send_us.push_back(send);
      pkts.push_back(audio(k, 0, 0, send + jitter(rng)));
    }
    feed(t, std::move(pkts));
    t.finish();
    std::int64_t worst = 0;
    const auto n = static_cast<std::int64_t>(send_us.size());
    for (std::int64_t k = 0; k < n; k += (k + 1000 < n ? 997 : 1)) {
      const std::int64_t truth = send_us[static_cast<std::size_t>(k)] * 8 / 1000;
      auto pos = find_marker(t.samples(), k, truth, 800);
      ASSERT_GE(pos, 0) << "ppm " << ppm << " packet " << k;
      worst = std::max(worst, std::abs(pos - truth));
    }
    EXPECT_LE(worst, 160) << "ppm " << ppm << ": worst " << worst / 8.0 << " ms";
    std::printf("drift %+.0f ppm: worst placement error %.2f ms, %llu corrections\n", ppm,
                static_cast<double>(worst) / 8.0,
                static_cast<unsigned long long>(t.stats().drift_corrections));
    EXPECT_GE(t.stats().drift_corrections, 30u);
    for (const auto& g : t.gaps()) {
      // Only the edges: the first packet's own jitter (< 1 ms) and the tail.
      EXPECT_TRUE(g.cause == "end" || (g.cause == "late_start" && g.length_samples <= 8))
          << g.cause << "@" << g.start_ms << "+" << g.length_ms;
    }
  }
}

class PauseTest : public ::testing::TestWithParam<bool> {};

TEST_P(PauseTest, FiveSecondPauseIsSilenceWithPauseGap) {
  const bool frozen_ts = GetParam();  // SRC stops its RTP clock too (-> timestamp jump)
  auto t = make_track(8000, 15);
  std::vector<Pkt> pkts;
  for (std::int64_t k = 0; k < 250; ++k) pkts.push_back(audio(k, 10, 0, k * 20'000));
  for (std::int64_t k = 250; k < 500; ++k) {
    Pkt p = audio(k, 10, 0, 10'000'000 + (k - 250) * 20'000);
    if (!frozen_ts) p.ts += 5 * 8000;
    pkts.push_back(p);
  }
  const std::string cause = frozen_ts ? "hold" : "pause";
  t.set_paused(5'000'000, true, cause);
  t.set_paused(10'000'000, false, "");
  feed(t, pkts);
  t.finish();
  expect_gaps(t.gaps(), {gap(5000, 5000, cause)});
  EXPECT_TRUE(all_zero(t.samples(), 40000, 80000));
  EXPECT_EQ(find_marker(t.samples(), 249, 39840, 10), 39840);
  EXPECT_EQ(find_marker(t.samples(), 250, 80000, 160), 80000);
  EXPECT_EQ(find_marker(t.samples(), 499, 119840, 160), 119840);
  EXPECT_EQ(t.stats().timestamp_jumps, frozen_ts ? 1u : 0u);
}

INSTANTIATE_TEST_SUITE_P(TsRunningOrFrozen, PauseTest, ::testing::Bool());

TEST(TimelineTest, TimestampJumpWhileSendingReanchorsWithoutGap) {
  auto t = make_track(8000, 10);
  std::vector<Pkt> pkts;
  for (std::int64_t k = 0; k < 500; ++k) {
    Pkt p = audio(k, 10, 0, k * 20'000);
    if (k >= 200) p.ts += 1'000'000;  // +125 s at once
    pkts.push_back(p);
  }
  feed(t, pkts);
  t.finish();
  expect_gaps(t.gaps(), {});
  for (std::int64_t k = 0; k < 500; ++k) ASSERT_EQ(find_marker(t.samples(), k, k * 160, 160), k * 160) << k;
  EXPECT_EQ(t.stats().timestamp_jumps, 1u);
}

TEST(TimelineTest, TimestampJumpAfterSilenceIsReported) {
  auto t = make_track(8000, 10);
  std::vector<Pkt> pkts;
  for (std::int64_t k = 0; k < 200; ++k) pkts.push_back(audio(k, 10, 100000, k * 20'000));
  for (std::int64_t k = 300; k < 500; ++k) {
    Pkt p = audio(k, 10, 100000, k * 20'000);
    p.seq = static_cast<std::uint16_t>(p.seq - 100);  // no seq loss: the sender just stopped
    p.ts -= 90000;                                    // and restarted its clock backwards
    pkts.push_back(p);
  }
  feed(t, pkts);
  t.finish();
  expect_gaps(t.gaps(), {gap(4000, 2000, "timestamp_jump")});
  EXPECT_EQ(find_marker(t.samples(), 300, 48000, 160), 48000);
  EXPECT_EQ(t.stats().timestamp_jumps, 1u);
}

TEST(TimelineTest, ShortFrozenClockIsCorrectedWithinAWindow) {
  // The sender stops 300 ms and freezes its clock: below the 500 ms jump
  // threshold, so the drift windows catch it (the first 5 s window that lies
  // wholly after it: here the one from 6.32 s to 11.32 s) and report the hole
  // the correction opens as a timestamp jump.
  auto t = make_track(8000, 20);
  std::vector<Pkt> pkts;
  for (std::int64_t k = 0; k < 985; ++k) {
    if (k >= 300 && k < 315) continue;
    Pkt p = audio(k, 10, 0, k * 20'000);
    if (k >= 315) {
      p.seq = static_cast<std::uint16_t>(p.seq - 15);
      p.ts -= 15 * 160;
    }
    pkts.push_back(p);
  }
  feed(t, pkts);
  t.finish();
  auto gaps = t.gaps();
  ASSERT_EQ(gaps.size(), 2u);
  EXPECT_EQ(gaps[0].cause, "timestamp_jump");
  EXPECT_EQ(gaps[0].length_ms, 300);
  EXPECT_EQ(gaps[0].start_ms, 11020);
  EXPECT_EQ(gaps[1].cause, "end");
  for (std::int64_t k = 600; k < 985; ++k) ASSERT_EQ(find_marker(t.samples(), k, k * 160, 160), k * 160) << k;
}

TEST(TimelineTest, SilenceWithoutJumpOrLossIsNoMedia) {
  auto t = make_track(8000, 10);
  std::vector<Pkt> pkts;
  for (std::int64_t k = 0; k < 500; ++k) {
    if (k >= 200 && k < 300) continue;
    Pkt p = audio(k, 10, 0, k * 20'000);
    if (k >= 300) p.seq = static_cast<std::uint16_t>(p.seq - 100);
    pkts.push_back(p);
  }
  feed(t, pkts);
  t.finish();
  expect_gaps(t.gaps(), {gap(4000, 2000, "no_media")});
  EXPECT_EQ(t.stats().lost, 0u);
}

TEST(TimelineTest, NetworkStallIsNotATimestampJump) {
  // Packets 100..129 (2.0-2.58 s) are held up and all arrive at 2.6 s.
  auto t = make_track(8000, 5);
  std::vector<Pkt> pkts;
  for (std::int64_t k = 0; k < 250; ++k) {
    std::int64_t at = k * 20'000;
    if (k >= 100 && k < 130) at = 2'600'000 + k;
    pkts.push_back(audio(k, 10, 0, at));
  }
  feed(t, pkts);
  t.finish();
  expect_gaps(t.gaps(), {});
  for (std::int64_t k = 0; k < 250; ++k) ASSERT_EQ(find_marker(t.samples(), k, k * 160, 160), k * 160) << k;
  EXPECT_EQ(t.stats().timestamp_jumps, 0u);
}

TEST(TimelineTest, SsrcChangeReanchorsOnArrival) {
  auto t = make_track(8000, 6);
  std::vector<Pkt> pkts;
  for (std::int64_t k = 0; k < 150; ++k) pkts.push_back(audio(k, 10, 0, k * 20'000, 0xa));
  for (std::int64_t k = 175; k < 300; ++k) pkts.push_back(audio(k, 5000, 0x7654321, k * 20'000, 0xb));
  feed(t, pkts);
  t.finish();
  expect_gaps(t.gaps(), {gap(3000, 500, "no_media")});
  EXPECT_EQ(find_marker(t.samples(), 175, 28000, 160), 28000);
  EXPECT_EQ(t.stats().ssrcs, (std::vector<std::uint32_t>{0xa, 0xb}));
  EXPECT_EQ(t.stats().segments, 2u);
}

Pkt dtmf(std::uint16_t seq, std::uint32_t ts, std::int64_t at, std::uint8_t event, bool end,
         std::uint16_t duration) {
  Pkt p;
  p.seq = seq;
  p.ts = ts;
  p.pt = 101;
  p.arrival_us = at;
  p.payload = {event, static_cast<std::uint8_t>((end ? 0x80 : 0) | 10), static_cast<std::uint8_t>(duration >> 8),
               static_cast<std::uint8_t>(duration & 0xff)};
  return p;
}

TEST(TimelineTest, Rfc4733EventsAppearOnceWithTimesAndNoAudio) {
  auto t = make_track(8000, 5);
  std::vector<Pkt> pkts;
  std::uint16_t seq = 1;
  for (std::int64_t k = 0; k < 100; ++k) {
    Pkt p = audio(k, 0, 0, k * 20'000);
    p.seq = seq++;
    pkts.push_back(p);
  }
  // '5' from 2.0 s, 200 ms; the end packet sent three times (RFC 4733 §2.5.1.4).
  for (auto [at, dur, end] : {std::tuple{2'050'000, 400, false}, {2'100'000, 800, false},
                              {2'150'000, 1200, false}, {2'200'000, 1600, true},
                              {2'210'000, 1600, true}, {2'220'000, 1600, true}})
    pkts.push_back(dtmf(seq++, 16000, at, 5, end, static_cast<std::uint16_t>(dur)));
  // '#' from 3.0 s, 100 ms.
  for (auto [at, dur, end] : {std::tuple{3'050'000, 400, false}, {3'100'000, 800, true},
                              {3'110'000, 800, true}, {3'120'000, 800, true}})
    pkts.push_back(dtmf(seq++, 24000, at, 11, end, static_cast<std::uint16_t>(dur)));
  for (std::int64_t k = 175; k < 250; ++k) {
    Pkt p = audio(k, 0, 0, k * 20'000);
    p.seq = seq++;
    pkts.push_back(p);
  }
  feed(t, pkts);
  t.finish();
  auto ev = t.dtmf_events();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].digit, '5');
  EXPECT_EQ(ev[0].start_ms, 2000);
  EXPECT_EQ(ev[0].duration_ms, 200);
  EXPECT_EQ(ev[0].volume, 10);
  EXPECT_TRUE(ev[0].ended);
  EXPECT_EQ(ev[1].digit, '#');
  EXPECT_EQ(ev[1].start_ms, 3000);
  EXPECT_EQ(ev[1].duration_ms, 100);
  EXPECT_TRUE(all_zero(t.samples(), 16000, 28000)) << "events produce no audio";
  expect_gaps(t.gaps(), {gap(2200, 800, "no_media"), gap(3100, 400, "no_media")});
  EXPECT_EQ(find_marker(t.samples(), 175, 28000, 160), 28000);
  EXPECT_EQ(t.stats().telephone_events, 10u);
  EXPECT_EQ(t.stats().lost, 0u);
}

TEST(TimelineTest, ComfortNoiseIsSilenceNotAGap) {
  auto t = make_track(8000, 4);
  std::vector<Pkt> pkts;
  std::uint16_t seq = 100;
  for (std::int64_t k = 0; k < 50; ++k) {
    Pkt p = audio(k, 0, 0, k * 20'000);
    p.seq = seq++;
    pkts.push_back(p);
  }
  for (std::int64_t i = 0; i < 5; ++i) {
    Pkt p;
    p.seq = seq++;
    p.ts = static_cast<std::uint32_t>(8000 + i * 1600);
    p.pt = 13;
    p.arrival_us = 1'000'000 + i * 200'000;
    p.payload = {40};
    pkts.push_back(p);
  }
  for (std::int64_t k = 100; k < 200; ++k) {
    Pkt p = audio(k, 0, 0, k * 20'000);
    p.seq = seq++;
    pkts.push_back(p);
  }
  feed(t, pkts);
  t.finish();
  expect_gaps(t.gaps(), {});
  EXPECT_TRUE(all_zero(t.samples(), 8000, 16000));
  EXPECT_EQ(find_marker(t.samples(), 49, 7840, 10), 7840);
  EXPECT_EQ(find_marker(t.samples(), 100, 16000, 160), 16000);
  EXPECT_EQ(t.stats().comfort_noise, 5u);
}

TEST(TimelineTest, WidebandCodecWithNarrowRtpClock) {
  // G.722-style: RTP clock 8000, 16000 samples a second (RFC 3551 §4.5.2).
  auto t = make_track(16000, 2, fake_codecs(8000, 16000));
  std::vector<Pkt> pkts;
  for (std::int64_t k = 0; k < 100; ++k) {
    Pkt p = audio(k, 0, 0, k * 20'000);
    p.payload = fake_payload(marker(k), 320);  // 20 ms at 16 kHz, 160 ticks
    pkts.push_back(p);
  }
  feed(t, pkts);
  t.finish();
  expect_gaps(t.gaps(), {});
  ASSERT_EQ(t.samples().size(), 32000u);
  for (std::int64_t k = 0; k < 100; ++k)
    for (std::int64_t i = 0; i < 320; ++i) ASSERT_EQ(t.samples()[static_cast<std::size_t>(k * 320 + i)], marker(k));
}

TEST(TimelineTest, NarrowbandOnWidebandTimelineIsUpsampled) {
  auto t = make_track(16000, 2);
  std::vector<Pkt> pkts;
  for (std::int64_t k = 0; k < 100; ++k) pkts.push_back(audio(k, 0, 0, k * 20'000));
  feed(t, pkts);
  t.finish();
  expect_gaps(t.gaps(), {});
  auto s = t.samples();
  for (std::int64_t k = 1; k < 100; ++k) {
    // Linear interpolation one input sample late: the first two output
    // samples ramp from the previous packet's value.
    ASSERT_EQ(s[static_cast<std::size_t>(k * 320)], marker(k - 1));
    ASSERT_EQ(s[static_cast<std::size_t>(k * 320 + 1)], (marker(k - 1) + marker(k)) / 2);
    for (std::int64_t i = 2; i < 320; ++i) ASSERT_EQ(s[static_cast<std::size_t>(k * 320 + i)], marker(k));
  }
}

TEST(TimelineTest, ResampleDownAveragesAndUpInterpolates) {
  std::vector<std::int16_t> in{0, 100, 200, 300};
  std::vector<std::int16_t> down(2), up(8);
  resample(in, 0, down);
  EXPECT_EQ(down, (std::vector<std::int16_t>{50, 250}));
  resample(in, -100, up);
  EXPECT_EQ(up, (std::vector<std::int16_t>{-100, -50, 0, 50, 100, 150, 200, 250}));
}

TEST(TimelineTest, IntervalSetMerges) {
  IntervalSet s;
  s.add(10, 20);
  s.add(30, 40);
  s.add(20, 30);
  EXPECT_EQ(s.size(), 1u);
  EXPECT_TRUE(s.contains(10));
  EXPECT_TRUE(s.contains(39));
  EXPECT_FALSE(s.contains(40));
  s.add(5, 6);
  s.add(0, 100);
  EXPECT_EQ(s.size(), 1u);
  EXPECT_EQ(s.first(), 0);
  EXPECT_EQ(s.last(), 100);
}

TEST(TimelineTest, NothingReceivedIsNoMedia) {
  auto t = make_track(8000, 3);
  t.set_paused(1'000'000, true, "hold");
  t.set_paused(2'000'000, false, "");
  t.finish();
  expect_gaps(t.gaps(), {gap(0, 1000, "no_media"), gap(1000, 1000, "hold"), gap(2000, 1000, "no_media")});
  EXPECT_EQ(t.samples().size(), 24000u);
}

TEST(TimelineTest, GarbageDoesNotCrash) {
  auto t = make_track(8000, 2);
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int i = 0; i < 5000; ++i) {
    std::vector<std::uint8_t> payload(static_cast<std::size_t>(byte(rng) % 8));
    for (auto& b : payload) b = static_cast<std::uint8_t>(byte(rng));
    media::RtpPacketView v;
    v.sequence = static_cast<std::uint16_t>(byte(rng) << 8 | byte(rng));
    v.timestamp = static_cast<std::uint32_t>(rng());
    v.ssrc = static_cast<std::uint32_t>(byte(rng) % 3);
    v.payload_type = static_cast<std::uint8_t>(std::array<int, 4>{0, 13, 101, 96}[static_cast<std::size_t>(byte(rng) % 4)]);
    v.payload = payload;
    std::int64_t at = i * 400;
    if (i % 500 == 7) at = (i % 1000 == 7) ? INT64_MAX : INT64_MIN;  // corrupt spool times
    t.add_packet(v, at);
  }
  t.set_paused(INT64_MIN, true, "pause");
  t.set_paused(INT64_MAX, false, "");
  t.finish();
  EXPECT_EQ(t.samples().size(), 16000u);
  EXPECT_EQ(t.stats().received, 5000u);
}

TEST(TimelineTest, RealPcmaDecoderPlacesDecodedAudio) {
  auto dec = media::make_decoder(media::CodecId::kPcma);
  auto ref = media::make_decoder(media::CodecId::kPcma);
  ASSERT_TRUE(dec.ok() && ref.ok());
  StreamCodecs c;
  c.decoders[8] = std::move(dec).value();
  auto t = make_track(8000, 2, std::move(c));
  std::vector<Pkt> pkts;
  for (std::int64_t k = 0; k < 75; ++k) {  // 0.5 s .. 2.0 s
    Pkt p;
    p.seq = static_cast<std::uint16_t>(k);
    p.ts = static_cast<std::uint32_t>(k * 160);
    p.pt = 8;
    p.arrival_us = 500'000 + k * 20'000;
    for (int i = 0; i < 160; ++i) p.payload.push_back(static_cast<std::uint8_t>(k * 3 + i));
    pkts.push_back(p);
  }
  feed(t, pkts);
  t.finish();
  expect_gaps(t.gaps(), {gap(0, 500, "late_start")});
  std::vector<std::int16_t> want(160);
  for (std::int64_t k = 0; k < 75; ++k) {
    auto n = (*ref)->decode(pkts[static_cast<std::size_t>(k)].payload, want);
    ASSERT_TRUE(n.ok());
    ASSERT_EQ(*n, 160u);
    for (std::size_t i = 0; i < 160; ++i)
      ASSERT_EQ(t.samples()[static_cast<std::size_t>(4000 + k * 160) + i], want[i]) << k << " " << i;
  }
  EXPECT_EQ(t.stats().codecs, std::vector<std::string>{"PCMA"});
}


// A fake whose decoded samples are twice the payload's value: tells which mapping decoded a packet.
class DoublingFakeDecoder : public FakeDecoder {
 public:
  DoublingFakeDecoder() : FakeDecoder(8000, 8000) {}
  media::CodecInfo info() const override { return {media::CodecId::kPcma, "FAKE2", 8000, 8000, 20}; }
  common::Result<std::size_t> decode(std::span<const std::uint8_t> payload, std::span<std::int16_t> out) override {
    auto n = FakeDecoder::decode(payload, out);
    if (n.ok())
      for (std::size_t i = 0; i < *n; ++i) out[i] = static_cast<std::int16_t>(out[i] * 2);
    return n;
  }
};

// 20 ms packet k at 8 kHz in payload type pt, carrying raw payload bytes.
Pkt raw(std::int64_t k, std::uint8_t pt, std::vector<std::uint8_t> payload) {
  Pkt p;
  p.seq = static_cast<std::uint16_t>(k);
  p.ts = static_cast<std::uint32_t>(k * 160);
  p.pt = pt;
  p.arrival_us = k * 20'000;
  p.payload = std::move(payload);
  return p;
}

TEST(TimelineCodecsTest, SwitchesBetweenAnsweredPtsAndDecodesUnnegotiatedStaticPt) {
  // Answered: PT 0 and PT 96 (both fakes, the second doubling). One SSRC sends PT 0 for 1 s,
  // PT 96 for 1 s, PT 8 (PCMA, never negotiated) for 1 s, PT 100 (dynamic, never negotiated)
  // for 1 s, PT 0 again for 1 s.
  StreamCodecs c = fake_codecs();
  c.decoders[96] = std::make_unique<DoublingFakeDecoder>();
  auto t = make_track(8000, 5, std::move(c));
  auto pcma = media::make_encoder(media::CodecId::kPcma);
  auto ref = media::make_decoder(media::CodecId::kPcma);
  ASSERT_TRUE(pcma.ok() && ref.ok());
  std::vector<std::int16_t> tone(160);
  for (std::size_t i = 0; i < tone.size(); ++i) tone[i] = static_cast<std::int16_t>(i % 2 ? 3000 : -3000);
  std::vector<std::uint8_t> alaw(160);
  ASSERT_EQ(*(*pcma)->encode(tone, alaw), 160u);
  std::vector<std::int16_t> want(160);
  ASSERT_EQ(*(*ref)->decode(alaw, want), 160u);
  std::vector<Pkt> pkts;
  for (std::int64_t k = 0; k < 250; ++k) {
    if (k < 50 || k >= 200) pkts.push_back(raw(k, 0, fake_payload(marker(k), 160)));
    else if (k < 100) pkts.push_back(raw(k, 96, fake_payload(100, 160)));
    else if (k < 150) pkts.push_back(raw(k, 8, alaw));
    else pkts.push_back(raw(k, 100, fake_payload(7, 160)));
  }
  feed(t, pkts);
  t.finish();
  auto s = t.samples();
  for (std::int64_t k : {0, 49, 200, 249}) EXPECT_EQ(find_marker(s, k, k * 160, 0), k * 160) << k;
  EXPECT_EQ(s[8000], 200);  // PT 96 decoded by its own (doubling) decoder
  EXPECT_EQ(s[15999], 200);
  for (std::size_t i = 0; i < 160; ++i) EXPECT_EQ(s[16000 + 20 * 160 + i], want[i]) << i;  // PT 8: PCMA
  EXPECT_TRUE(all_zero(s, 24000, 32000));  // PT 100: dropped
  expect_gaps(t.gaps(), {gap(3000, 1000, "loss")});
  const auto st = t.stats();
  EXPECT_EQ(st.unknown_payload_type, 100u);
  EXPECT_EQ(st.unknown_payload_dropped, 50u);
  EXPECT_EQ(st.codecs, (std::vector<std::string>{"FAKE", "FAKE2", "PCMA"}));
  EXPECT_EQ(st.segments, 1u);
}

TEST(TimelineCodecsTest, SetCodecsAppliesFromItsArrivalTime) {
  // PT 96 means FAKE until 2 s, then a re-offer maps it to FAKE2 (doubling) and adds PT 8 as a
  // fake too; PT 0 is not mentioned again and keeps its meaning (packets in flight).
  StreamCodecs c = fake_codecs();
  c.decoders[96] = std::make_unique<FakeDecoder>(8000, 8000);
  auto t = make_track(8000, 4, std::move(c));
  StreamCodecs later;
  later.decoders[96] = std::make_unique<DoublingFakeDecoder>();
  later.decoders[8] = std::make_unique<FakeDecoder>(8000, 8000);
  ASSERT_TRUE(t.set_codecs(2'000'000, std::move(later)).ok());
  std::vector<Pkt> pkts;
  for (std::int64_t k = 0; k < 200; ++k) {
    std::uint8_t pt = k < 150 ? 96 : (k < 175 ? 8 : 0);
    pkts.push_back(raw(k, pt, fake_payload(100, 160)));
  }
  feed(t, pkts);
  t.finish();
  auto s = t.samples();
  EXPECT_EQ(s[0], 100);
  EXPECT_EQ(s[15999], 100);  // 1.999 s: still FAKE
  EXPECT_EQ(s[16000], 200);  // from 2 s: FAKE2
  EXPECT_EQ(s[23999], 200);
  EXPECT_EQ(s[24000], 100);  // PT 8 (a fake now), then PT 0 (kept)
  EXPECT_EQ(s[31999], 100);
  EXPECT_TRUE(t.gaps().empty());
  EXPECT_EQ(t.stats().unknown_payload_type, 0u);
  EXPECT_EQ(t.stats().segments, 1u);
}

TEST(TimelineCodecsTest, SetCodecsValidates) {
  auto t = make_track(8000, 1);
  StreamCodecs bad;
  bad.decoders[8] = nullptr;
  EXPECT_EQ(t.set_codecs(0, std::move(bad)).error().code, "timeline.no_decoder");
  StreamCodecs te;
  te.telephone_event_pt = 101;
  te.telephone_event_clock = 10;
  EXPECT_EQ(t.set_codecs(0, std::move(te)).error().code, "timeline.bad_params");
}

TEST(TimelineCodecsTest, TelephoneEventsAtTwoClocks) {
  // telephone-event/8000 at PT 101 and /48000 at PT 126: each event's duration in its own clock.
  StreamCodecs c = fake_codecs();
  c.more_telephone_events[126] = 48000;
  auto t = make_track(8000, 2, std::move(c));
  std::vector<Pkt> pkts;
  for (std::int64_t k = 0; k < 100; ++k) pkts.push_back(raw(k, 0, fake_payload(marker(k), 160)));
  // '5' at 0.5 s, 800 ticks at 8 kHz = 100 ms; '7' at 1.0 s, 4800 ticks at 48 kHz = 100 ms.
  Pkt a = raw(25, 101, {5, 0x80 | 10, 0x03, 0x20});
  a.seq = 1000;
  Pkt b = raw(50, 126, {7, 0x80 | 10, 0x12, 0xc0});
  b.seq = 1001;
  for (auto& p : pkts) p.seq = static_cast<std::uint16_t>(p.seq + (p.seq >= 25 ? 1 : 0) + (p.seq >= 50 ? 1 : 0));
  a.seq = 25;
  b.seq = 51;
  pkts.push_back(a);
  pkts.push_back(b);
  feed(t, pkts);
  t.finish();
  auto d = t.dtmf_events();
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].digit, '5');
  EXPECT_EQ(d[0].duration_ms, 100);
  EXPECT_EQ(d[1].digit, '7');
  EXPECT_EQ(d[1].duration_ms, 100);
}


// The finaliser's streaming (advance() as the replay goes, read() in chunks) must give exactly the
// track, gaps and statistics of building it whole (docs/timeline.md "Streaming"): jitter, loss,
// reordering, a stall, a timestamp jump, a pause and a stream idle for minutes.
TEST(TimelineStreamingTest, StreamedTrackEqualsWholeTrack) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> jitter(0, 40'000);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<Pkt> pkts;
  for (std::int64_t k = 0; k < 6000; ++k) {
    if (k > 5 && u(rng) < 0.03) continue;  // loss
    std::int64_t at = k * 20'000 + jitter(rng);
    if (k >= 1000 && k < 1030) at = 1030 * 20'000;          // a 600 ms stall, then a burst
    if (k >= 3000) at += 200'000'000;                       // 200 s without packets
    Pkt p = audio(k, 100, 5000, at);
    if (k >= 4500) p.ts += 8000 * 300;                      // the sender's clock jumps 300 s
    pkts.push_back(p);
  }
  std::stable_sort(pkts.begin(), pkts.end(), [](const Pkt& a, const Pkt& b) { return a.arrival_us < b.arrival_us; });
  const std::int64_t duration_s = 400;
  auto whole = make_track(8000, duration_s);
  auto streamed = make_track(8000, duration_s);
  for (auto* t : {&whole, &streamed}) {
    t->set_paused(30'000'000, true, "pause");
    t->set_paused(35'000'000, false, "");
  }
  feed(whole, pkts);
  whole.finish();

  std::vector<std::int16_t> out;
  std::vector<std::int16_t> chunk(1000);
  std::int64_t next_step = 0;
  auto drain = [&] {
    while (std::size_t n = streamed.read(chunk)) out.insert(out.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
  };
  for (const auto& p : pkts) {
    add(streamed, p);
    if (p.arrival_us >= next_step) {
      streamed.advance(p.arrival_us);
      next_step = p.arrival_us + 250'000;
      drain();
    }
  }
  EXPECT_GT(out.size(), 0u) << "samples became final before the end";
  streamed.finish();
  drain();
  ASSERT_EQ(out.size(), whole.samples().size());
  EXPECT_TRUE(std::equal(out.begin(), out.end(), whole.samples().begin()));
  const auto ga = whole.gaps(), gb = streamed.gaps();
  ASSERT_EQ(ga.size(), gb.size());
  for (std::size_t i = 0; i < ga.size(); ++i) {
    EXPECT_EQ(ga[i].cause, gb[i].cause) << i;
    EXPECT_EQ(ga[i].start_sample, gb[i].start_sample) << i;
    EXPECT_EQ(ga[i].length_samples, gb[i].length_samples) << i;
  }
  EXPECT_EQ(whole.stats().drift_corrections, streamed.stats().drift_corrections);
  EXPECT_EQ(whole.stats().timestamp_jumps, streamed.stats().timestamp_jumps);
  EXPECT_GE(streamed.stats().timestamp_jumps, 1u);
  EXPECT_EQ(streamed.stats().samples_dropped_behind_horizon, 0);
}

TEST(TimelineStreamingTest, IdleStreamIsPlacedWhileAnotherAdvancesTime) {
  // Stream B sends 0.3 s at 5 s (less than its 1 s anchor window) and nothing else; the replay
  // goes on (other streams) to 60 s. B's audio must be final and in place long before the end.
  auto t = make_track(8000, 60);
  std::vector<Pkt> pkts;
  for (std::int64_t k = 0; k < 15; ++k) pkts.push_back(audio(k, 7, 0, 5'000'000 + k * 20'000));
  feed(t, pkts);
  std::vector<std::int16_t> out(static_cast<std::size_t>(60 * 8000));
  std::size_t got = 0;
  for (std::int64_t now = 5'300'000; now <= 60'000'000; now += 250'000) {
    t.advance(now);
    got += t.read(std::span<std::int16_t>(out).subspan(got));
  }
  EXPECT_GE(got, static_cast<std::size_t>(49 * 8000));
  for (std::int64_t k = 0; k < 15; ++k) EXPECT_EQ(find_marker(out, k, 40000 + k * 160, 0), 40000 + k * 160) << k;
  t.finish();
  got += t.read(std::span<std::int16_t>(out).subspan(got));
  EXPECT_EQ(got, out.size());
  EXPECT_EQ(t.stats().samples_dropped_behind_horizon, 0);
}

TEST(TimelineStreamingTest, AudioPlacedBehindTheHorizonIsDroppedAndCounted) {
  // 0-5 s sent on time; the replay (other streams) reaches 20 s; then packets 250-259 (timestamps
  // 5.0-5.2 s) arrive at 20 s, stuck 15 s in a queue, followed by packets on time from 20 s. The
  // stuck ones are a network stall, placed by their timestamps - 10 s behind the final point:
  // dropped and counted, never written over what was already handed out.
  auto t = make_track(8000, 30);
  std::vector<Pkt> pkts;
  for (std::int64_t k = 0; k < 250; ++k) pkts.push_back(audio(k, 1, 0, k * 20'000));
  feed(t, pkts);
  t.advance(20'000'000);
  std::vector<std::int16_t> out(static_cast<std::size_t>(30 * 8000));
  std::size_t got = t.read(out);
  EXPECT_EQ(got, static_cast<std::size_t>(10 * 8000));
  std::vector<Pkt> later;
  for (std::int64_t k = 250; k < 260; ++k) later.push_back(audio(k, 1, 0, 20'000'000));
  for (std::int64_t k = 1000; k < 1100; ++k) later.push_back(audio(k, 1, 0, k * 20'000 + 1'000));
  feed(t, later);
  t.finish();
  got += t.read(std::span<std::int16_t>(out).subspan(got));
  EXPECT_EQ(got, out.size());
  EXPECT_EQ(t.stats().samples_dropped_behind_horizon, 10 * 160);
  EXPECT_TRUE(all_zero(out, 40000, 41600));
  EXPECT_EQ(find_marker(out, 1000, 160000, 8), 160000);
}

}  // namespace
}  // namespace sgw::recording
