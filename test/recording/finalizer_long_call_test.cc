// A 30-hour call through the real finaliser (issue 8 item 10, docs/timeline.md "Streaming"): a
// synthetic spool written by SpoolWriter with sparse packets - a tone at the start, at hour 15
// and at the end, nothing in between - is finalised into FLAC. The file must last exactly 30 h
// with each tone where it was sent, and the finaliser's peak memory must not depend on the
// call's length (a whole-track timeline needed 2 x 1.7 GB here and refused calls over 24 h).
#include <sndfile.h>
#include <sys/resource.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <memory>
#include <numbers>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "media/codec.h"
#include "recording/finalizer.h"
#include "recording/spool_writer.h"
#include "spool_test_util.h"

namespace sgw::recording {
namespace {

constexpr std::int64_t kHourUs = 3600LL * 1'000'000;
constexpr std::int64_t kDurationUs = 30 * kHourUs;
constexpr std::int64_t kRate = 8000;

long max_rss_kb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

// Appends `seconds` of a PCMA tone to stream `stream` from `from_us`, 20 ms packets arriving on
// time, sequence numbers and timestamps continuing from *seq / the RTP clock (the sender kept its
// clock running while it sent nothing).
void tone(SpoolWriter& w, std::uint8_t stream, std::uint32_t ssrc, std::int64_t from_us, int seconds, double hz,
          std::uint16_t* seq) {
  auto enc = media::make_encoder(media::CodecId::kPcma);
  ASSERT_TRUE(enc.ok());
  std::vector<std::int16_t> pcm(160);
  std::vector<std::uint8_t> payload(160);
  for (int k = 0; k < seconds * 50; ++k) {
    const std::int64_t at = from_us + std::int64_t{k} * 20'000;
    for (int i = 0; i < 160; ++i)
      pcm[static_cast<std::size_t>(i)] = static_cast<std::int16_t>(
          std::lround(8000 * std::sin(2 * std::numbers::pi * hz * static_cast<double>(k * 160 + i) / kRate)));
    ASSERT_EQ(*(*enc)->encode(pcm, payload), 160u);
    const auto ts = static_cast<std::uint32_t>(at * kRate / 1'000'000);
    w.append_rtp(stream, at, (*seq)++, ts, ssrc, 8, k == 0, payload);
  }
  ASSERT_TRUE(w.flush().ok());
}

// Energy of `hz` relative to the window's total energy (Goertzel), and its RMS.
std::pair<double, double> tone_share(const std::vector<std::int16_t>& x, double hz) {
  const double w = 2 * std::numbers::pi * hz / kRate;
  double s1 = 0, s2 = 0, total = 0;
  for (std::int16_t v : x) {
    const double s0 = v + 2 * std::cos(w) * s1 - s2;
    s2 = s1;
    s1 = s0;
    total += static_cast<double>(v) * v;
  }
  const double power = s1 * s1 + s2 * s2 - 2 * std::cos(w) * s1 * s2;
  const double n = static_cast<double>(x.size());
  return {total > 0 ? 2 * power / (n * total) : 0, std::sqrt(total / n)};
}

class LongCall : public ::testing::Test {
 protected:
  testing::TempDir dir_;
};

TEST_F(LongCall, ThirtyHourCallIsStreamedWithTonesInPlaceAndBoundedMemory) {
  const std::string spool_dir = dir_.file("spool");
  const std::string rec_dir = dir_.file("rec");
  std::filesystem::create_directories(spool_dir);
  {
    auto w = SpoolWriter::create(spool_dir, "long-call");
    ASSERT_TRUE(w.ok()) << w.error().message;
    SpoolWriter& sw = **w;
    sw.append_json(RecordType::kSessionStart, 0,
                   R"({"recording_id":"long-call","start_unix_us":1700000000000000,"call_id":"c1"})");
    const std::string pcma = R"({"pt":8,"encoding":"PCMA","clock_rate":8000,"channels":1,"fmtp":""})";
    sw.append_json(RecordType::kEvent, 0,
                   R"({"event":"streams","why":"answer","streams":[)"
                   R"({"index":0,"label":"1","recorded":true,"paused":false,"codec":"PCMA/8000","payloads":[)" +
                       pcma + R"(]},{"index":1,"label":"2","recorded":true,"paused":false,"codec":"PCMA/8000","payloads":[)" +
                       pcma + "]}]}");
    std::uint16_t seq0 = 1000, seq1 = 5000;
    tone(sw, 0, 11, 0, 3, 440, &seq0);                       // 0 s .. 3 s
    tone(sw, 0, 11, 15 * kHourUs, 3, 440, &seq0);            // 15 h .. 15 h + 3 s
    tone(sw, 1, 22, 15 * kHourUs + 1'000'000, 2, 1000, &seq1);  // 15 h + 1 s .. + 3 s, other stream
    tone(sw, 0, 11, kDurationUs - 3'000'000, 3, 440, &seq0);  // the last 3 s
    sw.append_json(RecordType::kSessionEnd, kDurationUs,
                   R"({"answered":true,"complete":true,"cause":"BYE from the SRC"})");
    ASSERT_TRUE(sw.close().ok());
  }

  FinalizerOptions o;
  o.spool_dir = spool_dir;
  o.recordings_dir = rec_dir;
  o.format = AudioFormat::kFlac;
  Finalizer f(o, FinalizerMetrics{});
  const long rss_before = max_rss_kb();
  auto r = f.finalize_file(spool_dir + "/long-call.spool");
  const long rss_growth_kb = max_rss_kb() - rss_before;
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_TRUE(r->published);
  EXPECT_TRUE(r->complete);
  EXPECT_TRUE(r->problems.empty()) << r->problems.front();
  // Memory: a whole-track timeline holds 2 x 30 h x 8000 x 2 bytes = 1.7 GB; streaming needs a few
  // MB whatever the length (measured: see docs/timeline.md).
  EXPECT_LT(rss_growth_kb, 64 * 1024) << "peak RSS grew by " << rss_growth_kb << " kB";
  std::printf("finaliser peak RSS growth for a 30 h stereo call: %ld kB\n", rss_growth_kb);

  std::ifstream jf(r->json_path);
  const auto doc = nlohmann::json::parse(jf);
  EXPECT_EQ(doc["duration_ms"], kDurationUs / 1000);
  EXPECT_EQ(doc["complete"], true);
  ASSERT_EQ(r->audio_paths.size(), 1u);
  SF_INFO info{};
  std::unique_ptr<SNDFILE, int (*)(SNDFILE*)> sf(sf_open(r->audio_paths[0].c_str(), SFM_READ, &info), &sf_close);
  ASSERT_TRUE(sf) << sf_strerror(nullptr);
  EXPECT_EQ(info.frames, kDurationUs * kRate / 1'000'000);
  EXPECT_EQ(info.channels, 2);
  EXPECT_EQ(info.samplerate, kRate);

  // channel c of [at_s, at_s + len_s) in the file
  auto window = [&](double at_s, double len_s, int c) {
    const auto frames = static_cast<sf_count_t>(len_s * kRate);
    std::vector<std::int16_t> inter(static_cast<std::size_t>(frames) * 2);
    EXPECT_EQ(sf_seek(sf.get(), static_cast<sf_count_t>(at_s * kRate), SEEK_SET), static_cast<sf_count_t>(at_s * kRate));
    EXPECT_EQ(sf_readf_short(sf.get(), inter.data(), frames), frames);
    std::vector<std::int16_t> x(static_cast<std::size_t>(frames));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = inter[i * 2 + static_cast<std::size_t>(c)];
    return x;
  };
  // First sample above the noise floor in [at_s - 0.5 s, at_s + 0.5 s), in seconds.
  auto onset = [&](double at_s, int c) {
    auto x = window(at_s - 0.5, 1.0, c);
    for (std::size_t i = 0; i < x.size(); ++i)
      if (std::abs(x[i]) > 500) return at_s - 0.5 + static_cast<double>(i) / kRate;
    return -1.0;
  };
  const double h15 = 15 * 3600.0, end = 30 * 3600.0;
  struct Want {
    double start_s, len_s, hz;
    int channel;
  };
  for (const Want& w : {Want{0.0, 3, 440, 0}, Want{h15, 3, 440, 0}, Want{h15 + 1, 2, 1000, 1}, Want{end - 3, 3, 440, 0}}) {
    SCOPED_TRACE(::testing::Message() << "tone " << w.hz << " Hz at " << w.start_s << " s, channel " << w.channel);
    if (w.start_s > 0) {
      const double at = onset(w.start_s, w.channel);
      EXPECT_NEAR(at, w.start_s, 0.02);
    }
    auto [share, rms] = tone_share(window(w.start_s + 0.1, w.len_s - 0.2, w.channel), w.hz);
    EXPECT_GT(share, 0.9);
    EXPECT_GT(rms, 3000);
    if (w.start_s + w.len_s < end) {
      auto after = window(w.start_s + w.len_s + 0.05, 1.0, w.channel);
      EXPECT_EQ(tone_share(after, w.hz).second, 0) << "silence after the tone";
    }
  }
  // Silence in between: the middle of each long gap, both channels.
  for (double at : {7.5 * 3600, 22.5 * 3600})
    for (int c : {0, 1}) EXPECT_EQ(tone_share(window(at, 1.0, c), 440).second, 0) << at << " s ch " << c;
  EXPECT_EQ(tone_share(window(1.0, 1.0, 1), 1000).second, 0) << "stream 2 silent at the start";

  // The gaps of stream 1: no_media between the tones, exact to the ms.
  std::vector<std::tuple<std::int64_t, std::int64_t, std::string>> gaps1;
  for (const auto& g : doc["gaps"])
    if (g["stream_label"] == "1") gaps1.emplace_back(g["start_ms"], g["length_ms"], g["cause"]);
  const std::int64_t h15ms = 15 * 3600 * 1000, endms = 30LL * 3600 * 1000;
  EXPECT_EQ(gaps1, (std::vector<std::tuple<std::int64_t, std::int64_t, std::string>>{
                       {3000, h15ms - 3000, "no_media"}, {h15ms + 3000, endms - 3000 - h15ms - 3000, "no_media"}}));
}

}  // namespace
}  // namespace sgw::recording
