// Fragments of one conversation: coverage from the fragments' gaps, overlaps,
// checks of untrusted documents and audio (docs/failover.md "Fragments").
#include "recording/conversation.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <vector>

#include <gtest/gtest.h>
#include <sndfile.h>

#include "common/atomic_file.h"
#include "recording/audio_writer.h"
#include "test_support/temp_dir.h"

namespace sgw::recording {
namespace {

namespace fs = std::filesystem;

using test_support::TempDir;

// A 2-channel 8 kHz WAV of `ms`, caller tone on channel 0 where `on(ms)` says.
AudioFileInfo write_wav(const std::string& path, int ms, const std::function<bool(int)>& on) {
  std::vector<std::int16_t> c0(static_cast<std::size_t>(ms) * 8), c1(c0.size());
  for (std::size_t i = 0; i < c0.size(); ++i)
    if (on(static_cast<int>(i / 8))) {
      c0[i] = static_cast<std::int16_t>(8000 * std::sin(2 * M_PI * 440 * static_cast<double>(i) / 8000));
      c1[i] = static_cast<std::int16_t>(8000 * std::sin(2 * M_PI * 1000 * static_cast<double>(i) / 8000));
    }
  std::span<const std::int16_t> chans[2] = {c0, c1};
  auto info = write_audio_file(path, AudioFormat::kWavPcm16, 8000, chans);
  EXPECT_TRUE(info.ok());
  return *info;
}

nlohmann::json fragment_json(const std::string& id, const std::string& node, const std::string& start, int ms,
                             const AudioFileInfo& audio, nlohmann::json gaps) {
  return {{"recording_id", id}, {"fragment_of", "CONV"}, {"conversation_id", "CONV"},
          {"gateway", {{"node", node}, {"region", "r"}}}, {"start_time", start}, {"duration_ms", ms},
          {"complete", true}, {"gaps", gaps},
          {"streams", {{{"label", "1"}}, {{"label", "2"}}}},
          {"participants", {{{"role", "caller"}, {"channel", 0}}, {{"role", "agent"}, {"channel", 1}}}},
          {"audio", {to_json(audio)}}};
}

void put(const std::string& path, const nlohmann::json& j) {
  ASSERT_TRUE(common::write_file_atomically(path, j.dump()).ok());
}

DirFragmentStore store_of(const std::string& dir) {
  return DirFragmentStore({dir}, [](std::string_view v) { return std::string(v); });
}

TEST(Conversation, CoverageIsTheSpanMinusGapsEveryStreamSharesAndGapsBetweenFragmentsAreStated) {
  TempDir t;
  auto a = write_wav(t.path() + "/a.wav", 3000, [](int) { return true; });
  auto b = write_wav(t.path() + "/b.wav", 2000, [](int) { return true; });
  // A: stream 1 misses 1000-2000, stream 2 misses 1500-2500: only 1500-2000 is lost by both.
  put(t.path() + "/a.json", fragment_json("A", "london", "2026-01-01T00:00:00.000Z", 3000, a,
                                        {{{"start_ms", 1000}, {"length_ms", 1000}, {"cause", "no_media"}, {"stream_label", "1"}},
                                         {{"start_ms", 1500}, {"length_ms", 1000}, {"cause", "loss"}, {"stream_label", "2"}}}));
  put(t.path() + "/b.json", fragment_json("B", "frankfurt", "2026-01-01T00:00:04.000Z", 2000, b, nlohmann::json::array()));
  auto store = store_of(t.path());
  auto c = load_conversation(store, "CONV", t.path() + "/scratch");
  ASSERT_TRUE(c.ok()) << c.error().message;
  ASSERT_EQ(c->fragments.size(), 2u);
  EXPECT_EQ(c->fragments[0].recording_id, "A");
  EXPECT_EQ(c->wall.length(), 6000);
  EXPECT_EQ(c->covered_ms, 3000 - 500 + 2000);
  ASSERT_EQ(c->gaps.size(), 2u);
  EXPECT_EQ(c->gaps[0].span.start - c->wall.start, 1500);
  EXPECT_EQ(c->gaps[0].span.length(), 500);
  EXPECT_EQ(c->gaps[0].cause, "no_media");
  EXPECT_EQ(c->gaps[1].span.start - c->wall.start, 3000);
  EXPECT_EQ(c->gaps[1].span.length(), 1000);
  EXPECT_EQ(c->gaps[1].cause, "between_fragments");
  EXPECT_NEAR(c->coverage_percent, 100.0 * 4500 / 6000, 1e-9);
}

// A gateway killed right after it answered publishes a fragment with no audio: the time from
// its start to the next fragment is lost and must be stated (seen in the Kamailio drill).
TEST(Conversation, AFragmentWithNoAudioStillStartsTheWall) {
  TempDir t;
  auto a = write_wav(t.path() + "/a.wav", 0, [](int) { return true; });
  auto b = write_wav(t.path() + "/b.wav", 2000, [](int) { return true; });
  auto lost = fragment_json("A", "gw-c", "2026-01-01T00:00:00.000Z", 0, a, nlohmann::json::array());
  lost["complete"] = false;
  put(t.path() + "/a.json", lost);
  put(t.path() + "/b.json", fragment_json("B", "gw-a", "2026-01-01T00:00:02.000Z", 2000, b, nlohmann::json::array()));
  auto store = store_of(t.path());
  auto c = load_conversation(store, "CONV", t.path() + "/scratch");
  ASSERT_TRUE(c.ok()) << c.error().message;
  ASSERT_EQ(c->fragments.size(), 2u) << (c->skipped.empty() ? "" : c->skipped[0].reason);
  EXPECT_EQ(c->wall.length(), 4000);
  EXPECT_EQ(c->covered_ms, 2000);
  ASSERT_EQ(c->gaps.size(), 1u);
  EXPECT_EQ(c->gaps[0].span.start - c->wall.start, 0);
  EXPECT_EQ(c->gaps[0].span.length(), 2000);
  EXPECT_EQ(c->gaps[0].cause, "between_fragments");
  EXPECT_NEAR(c->coverage_percent, 50.0, 1e-9);
}

TEST(Conversation, OverlapTakesPerIntervalTheFragmentWithAudioAndSaysWhich) {
  TempDir t;
  // Dual-forked: both cover 0-4 s; A lost 2-4 s (gap), B lost 0-1 s.
  auto a = write_wav(t.path() + "/a.wav", 4000, [](int ms) { return ms < 2000; });
  auto b = write_wav(t.path() + "/b.wav", 4000, [](int ms) { return ms >= 1000; });
  put(t.path() + "/a.json", fragment_json("A", "london", "2026-01-01T00:00:00.000Z", 4000, a,
                                        {{{"start_ms", 2000}, {"length_ms", 2000}, {"cause", "end"}, {"stream_label", nullptr}}}));
  put(t.path() + "/b.json", fragment_json("B", "frankfurt", "2026-01-01T00:00:00.000Z", 4000, b,
                                        {{{"start_ms", 0}, {"length_ms", 1000}, {"cause", "late_start"}, {"stream_label", nullptr}}}));
  auto store = store_of(t.path());
  auto c = load_conversation(store, "CONV", t.path() + "/scratch");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->covered_ms, 4000);
  EXPECT_TRUE(c->gaps.empty());
  ASSERT_EQ(c->overlaps.size(), 1u);
  EXPECT_EQ(c->overlaps[0].first.length(), 1000);
  auto st = stitch_conversation(*c, t.path() + "/out.wav");
  ASSERT_TRUE(st.ok()) << st.error().message;
  ASSERT_EQ(st->segments.size(), 3u);
  EXPECT_EQ(st->segments[0].source, "A");
  EXPECT_FALSE(st->segments[0].overlap);
  EXPECT_TRUE(st->segments[1].overlap);  // 1-2 s: both have audio
  EXPECT_EQ(st->segments[2].source, "B");
  EXPECT_EQ(st->segments[2].span.length(), 2000);
  // Every output sample sounds: the stitch took the fragment with audio everywhere.
  SF_INFO info{};
  SNDFILE* f = sf_open((t.path() + "/out.wav").c_str(), SFM_READ, &info);
  ASSERT_NE(f, nullptr);
  std::vector<std::int16_t> buf(static_cast<std::size_t>(info.frames) * 2);
  sf_readf_short(f, buf.data(), info.frames);
  sf_close(f);
  EXPECT_EQ(info.frames, 32000);
  for (int sec = 0; sec < 4; ++sec) {
    double e = 0;
    for (int i = sec * 8000; i < (sec + 1) * 8000; ++i) e += std::abs(buf[static_cast<std::size_t>(i) * 2]);
    EXPECT_GT(e / 8000, 1000) << "second " << sec;
  }
}

TEST(Conversation, HostileOrCorruptDocumentsAreSkippedWithAReason) {
  TempDir t;
  auto a = write_wav(t.path() + "/a.wav", 1000, [](int) { return true; });
  fs::create_directories(t.path() + "/CONV");
  std::ofstream(t.path() + "/CONV/torn.json") << "{\"recording_id\": \"X\", \"start_";
  auto bad_file = fragment_json("P", "n", "2026-01-01T00:00:00.000Z", 1000, a, nlohmann::json::array());
  bad_file["audio"][0]["file"] = "../../etc/passwd";
  put(t.path() + "/p.json", bad_file);
  auto bad_types = fragment_json("Q", "n", "2026-01-01T00:00:00.000Z", 1000, a, "not a list");
  bad_types["duration_ms"] = -5;
  put(t.path() + "/q.json", bad_types);
  auto wrong_sha = fragment_json("R", "n", "2026-01-01T00:00:00.000Z", 1000, a, nlohmann::json::array());
  wrong_sha["audio"][0]["sha256"] = std::string(64, '0');
  put(t.path() + "/r.json", wrong_sha);
  put(t.path() + "/other.json", nlohmann::json{{"fragment_of", "OTHER"}});
  auto store = store_of(t.path());
  auto c = load_conversation(store, "CONV", t.path() + "/scratch");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_TRUE(c->fragments.empty());
  ASSERT_EQ(c->skipped.size(), 4u);  // torn (named by its folder), P, Q, R; OTHER is not ours
  for (const auto& s : c->skipped) EXPECT_FALSE(s.reason.empty());
  EXPECT_FALSE(stitch_conversation(*c, t.path() + "/out.wav").ok());
  auto none = load_conversation(store, "../CONV", t.path() + "/scratch");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, "conversation.not_found");
}

}  // namespace
}  // namespace sgw::recording
