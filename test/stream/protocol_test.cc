#include "stream/protocol.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace sgw::stream {
namespace {

TEST(IsoDuration, WritesAndReadsBack) {
  EXPECT_EQ(iso_duration(0), "PT0S");
  EXPECT_EQ(iso_duration(1240), "PT1.24S");
  EXPECT_EQ(iso_duration(62500), "PT62.5S");
  EXPECT_EQ(iso_duration(3000), "PT3S");
  for (std::int64_t ms : {0, 20, 1240, 62500, 3000, 86400000})
    EXPECT_EQ(parse_iso_duration(iso_duration(ms)), ms);
  EXPECT_FALSE(parse_iso_duration("P1D"));
  EXPECT_FALSE(parse_iso_duration("PT.5S"));
  EXPECT_FALSE(parse_iso_duration("PT1.xS"));
  EXPECT_FALSE(parse_iso_duration(""));
}

CallInfo call() {
  CallInfo c;
  c.recording_id = "rec-1";
  c.call_id = "call-1";
  c.conversation_id = "conv-1";
  c.organization_id = "org-1";
  c.caller_aor = "sip:+1555@x";
  c.agent_aor = "sip:agent@y";
  return c;
}

TEST(AudioHook, OpenPingCloseCarrySeqIdAndPosition) {
  ProtocolSession p(Protocol::kAudioHook, "sess-1", call());
  auto open = nlohmann::json::parse(p.open_message());
  EXPECT_EQ(open["type"], "open");
  EXPECT_EQ(open["version"], "2");
  EXPECT_EQ(open["seq"], 1);
  EXPECT_EQ(open["id"], "sess-1");
  EXPECT_EQ(open["position"], "PT0S");
  EXPECT_EQ(open["parameters"]["conversationId"], "conv-1");
  EXPECT_EQ(open["parameters"]["organizationId"], "org-1");
  EXPECT_EQ(open["parameters"]["participant"]["ani"], "sip:+1555@x");
  EXPECT_EQ(open["parameters"]["media"][0]["format"], "PCMU");
  EXPECT_EQ(open["parameters"]["media"][0]["channels"], nlohmann::json({"external", "internal"}));
  EXPECT_FALSE(p.ready()) << "audio waits for opened";
  EXPECT_EQ(p.on_text(R"({"version":"2","type":"opened","seq":1,"clientseq":1,"id":"sess-1","parameters":{}})").action,
            ProtocolSession::Action::kOpened);
  EXPECT_TRUE(p.ready());

  Frame f;
  f.channels[0].fill(0);
  f.channels[1].fill(1000);
  auto audio = p.frame_message(f);
  ASSERT_EQ(audio.size(), 320u);  // 160 stereo µ-law samples
  EXPECT_EQ(audio[0], 0xff);       // µ-law zero on the external channel
  EXPECT_NE(audio[1], 0xff);       // internal carries the signal
  auto ping = nlohmann::json::parse(p.ping_message());
  EXPECT_EQ(ping["seq"], 2);
  EXPECT_EQ(ping["serverseq"], 1);
  EXPECT_EQ(ping["position"], "PT0.02S");
  p.skip_frame();
  auto discarded = nlohmann::json::parse(p.discarded_message(20, 20));
  EXPECT_EQ(discarded["type"], "discarded");
  EXPECT_EQ(discarded["parameters"]["discarded"], "PT0.02S");
  EXPECT_EQ(discarded["position"], "PT0.04S");
  auto close = nlohmann::json::parse(p.close_message());
  EXPECT_EQ(close["type"], "close");
  EXPECT_EQ(close["parameters"]["reason"], "end");
  EXPECT_EQ(nlohmann::json::parse(p.close_message("disconnect"))["parameters"]["reason"], "disconnect");
  EXPECT_EQ(p.on_text(R"({"type":"closed","seq":2})").action, ProtocolSession::Action::kClosed);
  EXPECT_EQ(p.on_text(R"({"type":"disconnect","seq":3,"parameters":{"reason":"error"}})").detail, "error");
  // The server's text goes into a log line and the JSON: printable, bounded.
  EXPECT_EQ(p.on_text(R"({"type":"disconnect","seq":4,"parameters":{"reason":"a\nb"}})").detail, "a?b");
  EXPECT_EQ(p.on_text(R"({"type":"disconnect","seq":5,"parameters":{"reason":")" + std::string(300, 'x') + R"("}})")
                .detail.size(),
            100u);
}

TEST(AudioHook, AConnectionAfterALostOneContinuesTheSessionInANewOne) {
  ProtocolSession p(Protocol::kAudioHook, "sess-1", call());
  auto open1 = nlohmann::json::parse(p.open_message(0));
  EXPECT_FALSE(open1["parameters"].contains("continuedSessions")) << "the first session continues nothing";
  p.sent(open1["seq"].get<std::uint64_t>());
  p.on_text(R"({"version":"2","type":"opened","seq":1,"clientseq":1,"id":"sess-1","parameters":{}})");
  ASSERT_TRUE(p.ready());
  Frame f;
  for (int i = 0; i < 3; ++i) p.frame_message(f);
  auto ping = nlohmann::json::parse(p.ping_message());
  p.sent(ping["seq"].get<std::uint64_t>());
  (void)p.ping_message();  // built, never written: the connection went first
  p.on_text(R"({"version":"2","type":"pong","seq":2,"clientseq":2,"id":"sess-1","parameters":{}})");
  p.skip_frame();  // lost in the outage

  // The next connection: a new session (seq from 1, serverseq 0) naming the one it continues
  // with the last seq each side wrote in it; the position goes on where the written audio ended.
  auto open2 = nlohmann::json::parse(p.open_message(60));
  EXPECT_FALSE(p.ready()) << "audio waits for the new session's opened";
  EXPECT_EQ(open2["type"], "open");
  EXPECT_NE(open2["id"], "sess-1");
  EXPECT_EQ(open2["id"], p.session_id());
  EXPECT_EQ(open2["seq"], 1);
  EXPECT_EQ(open2["serverseq"], 0);
  EXPECT_EQ(open2["position"], "PT0.06S");
  EXPECT_EQ(open2["parameters"]["continuedSessions"],
            nlohmann::json::parse(R"([{"id":"sess-1","serverseq":2,"clientseq":2}])"));
  EXPECT_EQ(open2["parameters"]["conversationId"], "conv-1") << "the same call";
  auto h = p.handshake_headers("");
  EXPECT_EQ(h[0], (std::pair<std::string, std::string>{"Audiohook-Session-Id:", p.session_id()}));
  // A discarded message then moves the position over the lost audio.
  auto d = nlohmann::json::parse(p.discarded_message(60, 20));
  EXPECT_EQ(d["seq"], 2);
  EXPECT_EQ(d["position"], "PT0.08S");

  // An attempt whose open never went out leaves no session behind: the next one starts over
  // under the same id.
  const std::string second = p.session_id();
  auto open3 = nlohmann::json::parse(p.open_message(60));
  EXPECT_EQ(open3["id"], second);
  EXPECT_EQ(open3["seq"], 1);
  EXPECT_EQ(open3["parameters"]["continuedSessions"].size(), 1u);
  p.sent(1);
  auto open4 = nlohmann::json::parse(p.open_message(100));
  EXPECT_EQ(open4["parameters"]["continuedSessions"].size(), 2u);
  EXPECT_EQ(open4["parameters"]["continuedSessions"][1]["id"], second);
  EXPECT_EQ(open4["parameters"]["continuedSessions"][1]["clientseq"], 1);
  EXPECT_EQ(p.connections(), 4u);
}

TEST(AudioHook, AFlappingServerDoesNotGrowTheOpenWithoutBound) {
  ProtocolSession p(Protocol::kAudioHook, "s0", call());
  for (int i = 0; i < 100; ++i) {
    (void)p.open_message(i * 20);
    p.sent(1);
  }
  auto open = nlohmann::json::parse(p.open_message(0));
  const auto& cs = open["parameters"]["continuedSessions"];
  ASSERT_EQ(cs.size(), ProtocolSession::kMaxContinuedSessions);
  EXPECT_EQ(cs.back()["id"], p.continued().back().id);
  EXPECT_NE(cs.front()["id"], "s0") << "the oldest went first";
  EXPECT_LT(open.dump().size(), 16u * 1024u);
}

TEST(AudioHook, GarbageFromTheServerIsAnErrorNotACrash) {
  ProtocolSession p(Protocol::kAudioHook, "s", call());
  for (const char* bad : {"", "[", "null", "[1,2]", R"({"type":7})", "\xff\xfe"})
    EXPECT_NE(p.on_text(bad).action, ProtocolSession::Action::kOpened) << bad;
  EXPECT_FALSE(p.ready());
}

TEST(Plain, StartThenLittleEndianInterleavedFrames) {
  ProtocolSession p(Protocol::kPlain, "s", call());
  auto start = nlohmann::json::parse(p.open_message());
  EXPECT_EQ(start["type"], "start");
  EXPECT_EQ(start["recording_id"], "rec-1");
  EXPECT_EQ(start["format"]["encoding"], "s16le");
  EXPECT_EQ(start["format"]["channels"], 2);
  EXPECT_TRUE(p.ready());
  Frame f;
  f.channels[0].fill(0x0102);
  f.channels[1].fill(-2);
  auto audio = p.frame_message(f);
  ASSERT_EQ(audio.size(), 640u);
  EXPECT_EQ(audio[0], 0x02);
  EXPECT_EQ(audio[1], 0x01);
  EXPECT_EQ(audio[2], 0xfe);
  EXPECT_EQ(audio[3], 0xff);
  EXPECT_EQ(nlohmann::json::parse(p.close_message())["type"], "end");
  EXPECT_EQ(start["connection"], 1);
  EXPECT_EQ(start["position_ms"], 0);
  // A new connection starts with "start" again, saying which connection and where the audio goes on.
  auto again = nlohmann::json::parse(p.open_message(1240));
  EXPECT_EQ(again["type"], "start");
  EXPECT_EQ(again["connection"], 2);
  EXPECT_EQ(again["position_ms"], 1240);
  EXPECT_EQ(again["recording_id"], "rec-1");
  EXPECT_TRUE(p.ready());
}

TEST(Url, RedactedWithoutQueryAndCredentials) {
  EXPECT_EQ(redact_url("wss://user:pw@h.example:8443/p?token=x#f"), "wss://h.example:8443/p");
  EXPECT_EQ(redact_url("ws://h/p"), "ws://h/p");
}

}  // namespace
}  // namespace sgw::stream
