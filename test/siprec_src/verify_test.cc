#include "siprec_src/verify.h"

#include <sndfile.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "siprec_src/tone.h"

namespace sgw::siprec_src {
namespace {
namespace fs = std::filesystem;

class Verify : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("siprec_src_verify_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "2024" / "06");
    e_.call_id = "call-1";
    e_.conversation_id = "conv-1";
    e_.caller_aor = "sip:+15550000001@carrier.example.net";
    e_.agent_aor = "sip:agent-1@cc.example.com";
    e_.caller_hz = 440;
    e_.agent_hz = 1000;
    e_.duration_ms = 3000;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A recording as the gateway publishes it: stereo WAV + JSON next to it.
  // lead_silence_ms: zeros first (a late start); noise_windows: 100 ms windows whose caller
  // channel carries white noise instead of the tone.
  std::string write(const std::string& name, double left_hz, double right_hz, int ms,
                    const std::string& caller_role = "caller", int silent_from_ms = -1,
                    int lead_silence_ms = 0, std::vector<int> noise_windows = {}) {
    fs::path sub = dir_ / "2024" / "06";
    std::string wav = name + ".wav";
    SF_INFO info{};
    info.samplerate = 8000;
    info.channels = 2;
    info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
    SNDFILE* f = sf_open((sub / wav).c_str(), SFM_WRITE, &info);
    EXPECT_NE(f, nullptr);
    std::size_t n = static_cast<std::size_t>(ms) * 8;
    auto l = make_tone(left_hz, 8000, n), r = make_tone(right_hz, 8000, n);
    std::vector<std::int16_t> inter;
    std::uint32_t noise = 12345;
    for (std::size_t i = 0; i < n; ++i) {
      bool silent = (silent_from_ms >= 0 && i >= static_cast<std::size_t>(silent_from_ms) * 8) ||
                    i < static_cast<std::size_t>(lead_silence_ms) * 8;
      bool noisy = std::find(noise_windows.begin(), noise_windows.end(), static_cast<int>(i / 800)) !=
                   noise_windows.end();
      noise = noise * 1103515245u + 12345u;
      std::int16_t left = noisy ? static_cast<std::int16_t>(static_cast<int>(noise >> 16) - 32768) : l[i];
      inter.push_back(silent ? 0 : left);
      inter.push_back(silent ? 0 : r[i]);
    }
    sf_writef_short(f, inter.data(), static_cast<sf_count_t>(n));
    sf_close(f);
    nlohmann::json j = {
        {"conversation_id", e_.conversation_id},
        {"duration_ms", ms},
        {"participants",
         {{{"aor", e_.caller_aor}, {"role", caller_role}, {"channel", 0}, {"file", wav}},
          {{"aor", e_.agent_aor}, {"role", "agent"}, {"channel", 1}, {"file", wav}}}}};
    std::string path = (sub / (name + ".json")).string();
    std::ofstream(path) << j.dump(2);
    return path;
  }

  fs::path dir_;
  VerifyExpectation e_;
};

TEST_F(Verify, PassesWhenTonesRolesAndDurationMatch) {
  write("rec1", 440, 1000, 3000);
  std::ofstream(dir_ / "other.json") << "{not json";
  auto idx = index_recordings(dir_.string());
  ASSERT_EQ(idx.count("conv-1"), 1u);
  auto r = verify_all({dir_.string()}, {e_}, 0);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_TRUE(r[0].pass) << r[0].line;
  EXPECT_EQ(r[0].line.rfind("PASS call-1 ", 0), 0u) << r[0].line;
}

TEST_F(Verify, FailsWhenTheChannelsAreSwapped) {
  auto p = write("rec1", 1000, 440, 3000);
  auto r = verify_call(e_, {p});
  EXPECT_FALSE(r.pass);
  EXPECT_NE(r.line.find("caller channel 0"), std::string::npos) << r.line;
}

TEST_F(Verify, FailsOnDurationRoleAndMissingRecording) {
  auto p = write("rec1", 440, 1000, 2500);
  auto r = verify_call(e_, {p});
  EXPECT_FALSE(r.pass);
  EXPECT_NE(r.line.find("duration 2500"), std::string::npos) << r.line;
  p = write("rec2", 440, 1000, 3000, "unknown");
  r = verify_call(e_, {p});
  EXPECT_NE(r.line.find("role 'unknown'"), std::string::npos) << r.line;
  r = verify_call(e_, {});
  EXPECT_EQ(r.line, "FAIL call-1 no recording with conversation_id conv-1");
}

// A busy machine: the client's timer fired late and the BYE took a while, so the session was
// 3350 ms long although 3000 were planned. With the measured bounds the check is about the
// session that happened: inside [200 OK received -> BYE sent, INVITE sent -> BYE answered + 200].
TEST_F(Verify, DurationIsCheckedAgainstTheMeasuredSessionWhenKnown) {
  auto late = write("rec1", 440, 1000, 3350);
  EXPECT_FALSE(verify_call(e_, {late}).pass);  // planned 3000 +-200 only
  e_.call_min_ms = 3300;
  e_.call_max_ms = 3380;
  auto r = verify_call(e_, {late});
  EXPECT_TRUE(r.pass) << r.line;
  // Shorter than 200 OK -> BYE: the recorder lost the end of the session.
  e_.call_min_ms = 3400;
  e_.call_max_ms = 3450;
  r = verify_call(e_, {late});
  EXPECT_FALSE(r.pass);
  EXPECT_NE(r.line.find("duration 3350 ms, expected 3399..3650 ms"), std::string::npos) << r.line;
  // Far longer than the client's whole transaction span: recorded past the BYE.
  e_.call_min_ms = 2900;
  e_.call_max_ms = 3000;
  r = verify_call(e_, {late});
  EXPECT_FALSE(r.pass);
  EXPECT_NE(r.line.find("expected 2899..3200 ms"), std::string::npos) << r.line;
}

TEST_F(Verify, SilenceBeyondWhatWasPausedFails) {
  auto p = write("rec1", 440, 1000, 3000, "caller", 1000);  // 2 s of silence
  EXPECT_FALSE(verify_call(e_, {p}).pass);
  e_.silent_ms = 2000;  // the call was paused that long
  auto r = verify_call(e_, {p});
  EXPECT_TRUE(r.pass) << r.line;
}

TEST_F(Verify, FragmentsOnlyWhenReestablished) {
  auto a = write("rec1", 440, 1000, 1500);
  auto b = write("rec2", 440, 1000, 1400);
  auto r = verify_call(e_, {a, b});
  EXPECT_FALSE(r.pass);
  e_.fragments_allowed = true;
  r = verify_call(e_, {a, b});
  EXPECT_TRUE(r.pass) << r.line;
  EXPECT_NE(r.line.find("fragments=2 total=2900ms"), std::string::npos) << r.line;
}

// The gateway records from the INVITE and we send RTP from its 200 OK: a slow setup (a busy
// proxy on the way) is a late start at the head of the recording, allowed up to the setup time.
TEST_F(Verify, ASlowSetupLengthensTheRecordingByAtMostTheSetupTime) {
  auto p = write("rec1", 440, 1000, 3700, "caller", -1, 700);
  auto r = verify_call(e_, {p});
  EXPECT_FALSE(r.pass) << r.line;
  EXPECT_NE(r.line.find("duration 3700 ms, expected 3000 ms (+-200)"), std::string::npos) << r.line;
  e_.setup_ms = 650;
  r = verify_call(e_, {p});
  EXPECT_TRUE(r.pass) << r.line;
  e_.setup_ms = 400;  // 300 ms more than the setup explains
  r = verify_call(e_, {p});
  EXPECT_FALSE(r.pass) << r.line;
  EXPECT_NE(r.line.find("+ setup 400 ms"), std::string::npos) << r.line;
}

// The windows where the sound starts and stops may hold less tone than noise; only those two
// are forgiven: a third window without the tone fails a short recording.
TEST_F(Verify, OnlyTheEdgeWindowsMayMissTheTone) {
  e_.fragments_allowed = true;  // a 500 ms fragment: no duration check
  auto p = write("rec1", 440, 1000, 500, "caller", -1, 0, {0, 4});
  auto r = verify_call(e_, {p});
  EXPECT_TRUE(r.pass) << r.line;
  p = write("rec2", 440, 1000, 500, "caller", -1, 0, {0, 2, 4});
  r = verify_call(e_, {p});
  EXPECT_FALSE(r.pass) << r.line;
  EXPECT_NE(r.line.find("dominates only 2 of 5"), std::string::npos) << r.line;
}

// A fragment its gateway published incomplete with (almost) no audio (lost before its spool was
// synced) passes as a fragment; a call whose fragments hold no audio at all does not.
TEST_F(Verify, AnEmptyIncompleteFragmentPassesOnlyBesideOneWithAudio) {
  auto lost = write("rec1", 440, 1000, 0);
  {
    std::ifstream in(lost);
    auto j = nlohmann::json::parse(in);
    j["complete"] = false;
    std::ofstream(lost) << j.dump(2);
  }
  auto b = write("rec2", 440, 1000, 1400);
  EXPECT_FALSE(verify_call(e_, {lost, b}).pass);  // not re-established: two recordings
  e_.fragments_allowed = true;
  auto r = verify_call(e_, {lost, b});
  EXPECT_TRUE(r.pass) << r.line;
  EXPECT_NE(r.line.find("duration=0ms (incomplete, too short to check)"), std::string::npos) << r.line;
  r = verify_call(e_, {lost});
  EXPECT_FALSE(r.pass) << r.line;
  EXPECT_NE(r.line.find("no fragment with audio"), std::string::npos) << r.line;
  e_.fragments_allowed = false;
  EXPECT_FALSE(verify_call(e_, {lost}).pass);  // a whole call: checked for sound and duration
}

// The SRC re-established the call just before its end: the new gateway's fragment is complete
// and holds a packet or two, too short for a 100 ms window to show the tone. It passes beside a
// fragment with sound; fragments that are all too short to check fail, whatever their total.
TEST_F(Verify, AShortCompleteFragmentPassesOnlyBesideOneWithAudio) {
  auto first = write("rec1", 440, 1000, 1400);
  auto last = write("rec2", 440, 1000, 29);
  e_.fragments_allowed = true;
  auto r = verify_call(e_, {first, last});
  EXPECT_TRUE(r.pass) << r.line;
  EXPECT_NE(r.line.find("duration=29ms (too short to check)"), std::string::npos) << r.line;
  auto a = write("rec3", 440, 1000, 150), b = write("rec4", 440, 1000, 150);
  r = verify_call(e_, {a, b});
  EXPECT_FALSE(r.pass) << r.line;
  EXPECT_NE(r.line.find("no fragment with audio (300 ms in all)"), std::string::npos) << r.line;
}

// --verify DIR --verify DIR2: the gateways behind a load balancer each publish into their own
// folder; a re-established call's fragments are found across them, and a call that was not
// re-established but has a recording in two folders (a duplicate) fails.
TEST_F(Verify, LooksInEveryFolderGiven) {
  write("rec1", 440, 1000, 1500);
  write("rec2", 440, 1000, 1400);
  fs::path gw_b = dir_ / "gw-b";
  fs::create_directories(gw_b);
  for (const char* f : {"rec2.wav", "rec2.json"}) fs::rename(dir_ / "2024" / "06" / f, gw_b / f);
  std::string gw_a = (dir_ / "2024").string();
  e_.fragments_allowed = true;
  auto one = verify_all({gw_a}, {e_}, 0);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_TRUE(one[0].pass) << one[0].line;
  EXPECT_EQ(one[0].line.find("fragments="), std::string::npos) << one[0].line;
  auto both = verify_all({gw_a, gw_b.string()}, {e_}, 0);
  ASSERT_EQ(both.size(), 1u);
  EXPECT_TRUE(both[0].pass) << both[0].line;
  EXPECT_NE(both[0].line.find("fragments=2 total=2900ms"), std::string::npos) << both[0].line;
  e_.fragments_allowed = false;
  auto dup = verify_all({gw_a, gw_b.string()}, {e_}, 0);
  EXPECT_FALSE(dup[0].pass) << dup[0].line;
  EXPECT_NE(dup[0].line.find("2 recordings"), std::string::npos) << dup[0].line;
}

}  // namespace
}  // namespace sgw::siprec_src
