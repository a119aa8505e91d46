#include "recording/recording_json.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "metadata/metadata_parser.h"

namespace sgw::recording {
namespace {

using nlohmann::json;

// A Genesys-style RFC 7865 document with a leave (disassociate) for the first agent.
const char* kXml = R"(<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <group group_id="GRP-1"><associate-time>2024-06-03T13:37:00.000Z</associate-time></group>
  <session session_id="SESS-1">
    <group-ref>GRP-1</group-ref>
    <sipSessionID>5f4e3d2c1b0a49988776655443322110;remote=00000000000000000000000000000000</sipSessionID>
    <start-time>2024-06-03T13:37:00.000Z</start-time>
    <extensiondata><genesys:GenesysConversationID xmlns:genesys="urn:genesys:cloud:recording">7d3e9c1a-5b2f-4e8d-9a6c-0f1e2d3c4b5a</genesys:GenesysConversationID></extensiondata>
  </session>
  <participant participant_id="PC">
    <nameID aor="sip:+16175550134@edge.example.com"><name xml:lang="en">+16175550134</name></nameID>
    <extensiondata><genesys:GenesysParticipant xmlns:genesys="urn:genesys:cloud:recording" purpose="customer"/></extensiondata>
  </participant>
  <participant participant_id="PA">
    <nameID aor="sip:agent-77@edge.example.com"><name xml:lang="en">Morgan Agent</name></nameID>
    <extensiondata><genesys:GenesysParticipant xmlns:genesys="urn:genesys:cloud:recording" purpose="agent"/></extensiondata>
  </participant>
  <participant participant_id="SUP">
    <nameID aor="sip:supervisor@edge.example.com"><name>Sam Supervisor</name></nameID>
  </participant>
  <stream stream_id="st1" session_id="SESS-1"><label>1</label></stream>
  <stream stream_id="st2" session_id="SESS-1"><label>2</label></stream>
  <participantsessionassoc participant_id="PC" session_id="SESS-1"><associate-time>2024-06-03T13:37:00.000Z</associate-time></participantsessionassoc>
  <participantsessionassoc participant_id="PA" session_id="SESS-1"><associate-time>2024-06-03T13:37:12.480Z</associate-time></participantsessionassoc>
  <participantsessionassoc participant_id="SUP" session_id="SESS-1">
    <associate-time>2024-06-03T13:38:00.000Z</associate-time>
    <disassociate-time>2024-06-03T13:39:30.000Z</disassociate-time>
  </participantsessionassoc>
  <participantstreamassoc participant_id="PC"><send>st1</send><recv>st2</recv></participantstreamassoc>
  <participantstreamassoc participant_id="PA"><send>st2</send><recv>st1</recv></participantstreamassoc>
</recording>)";

struct Fixture {
  metadata::RecordingMetadata md;
  ChannelLayout layout;
  std::vector<AudioFileInfo> audio;
  RecordingJsonInput in;
};

Fixture make_fixture() {
  Fixture f;
  auto parsed = metadata::parse(kXml);
  EXPECT_TRUE(parsed.ok());
  if (parsed.ok()) f.md = *parsed;
  // SDP lists the agent's stream first; the layout still puts the customer left.
  f.layout = build_channel_layout(&f.md, {{0, "2"}, {1, "1"}}, default_layout_config());
  f.audio.push_back(AudioFileInfo{"0f8e2a4c-rec.wav", "wav", 2, 8000, 1464000, 183000, 5856044,
                                  "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"});

  RecordingJsonInput& in = f.in;
  in.recording_id = "0f8e2a4c-1b2d-4e5f-8a9b-0c1d2e3f4a5b";
  in.conversation_id = "7d3e9c1a-5b2f-4e8d-9a6c-0f1e2d3c4b5a";
  in.conversation_id_rule = "extension:session:GenesysConversationID";
  in.siprec_session_id = siprec_session_id_of(f.md);
  in.recording_call_id = "a84b4c76e66710@src.example.com";
  in.fragment_of = in.conversation_id;
  in.previous_fragment = "5b1d0c9e-2f3a-4b5c-8d7e-6f5a4b3c2d1e";
  in.communication_sessions = communication_sessions_of(f.md);
  in.participants = participants_of(f.layout, f.audio, &f.md);
  in.streams = {
      StreamEntry{0, "2", "PCMA/8000", {0x1a2b3c4du}, 9140, 3, 1, 2, "2024-06-03T13:37:12.520Z",
                  "2024-06-03T13:40:03.020Z", {}, {}, {}},
      StreamEntry{1, "1", "PCMA/8000", {0x0badcafeu, 0x0badcaffu}, 9150, 0, 0, 0,
                  "2024-06-03T13:37:00.020Z", "2024-06-03T13:40:03.000Z", {}, {}, {}},
  };
  place_streams(in.streams, f.layout, f.audio);
  in.start_time = "2024-06-03T13:37:00.000Z";
  in.end_time = "2024-06-03T13:40:03.000Z";
  in.duration_ms = 183000;
  in.gaps = {GapEntry{61000, 2000, "no-rtp", std::string("2")}, GapEntry{120000, 500, "gateway-restart", std::nullopt}};
  in.dtmf = {DtmfEntry{"5", 42000, 120, "1", std::string("PC")}};
  in.complete = false;
  in.incomplete_reason = "gateway restarted; 500 ms of audio missing";
  in.gateway = {"gw-us-east-1a", "us-east"};
  in.metadata_xml = {{"2024-06-03T13:37:00.010Z", kXml}, {"2024-06-03T13:38:00.100Z", "<recording/>"}};
  in.metadata = f.md;
  in.metadata_errors = {{"2024-06-03T13:38:00.100Z", "metadata.xml", "not well-formed at offset 3"}};
  in.events = {{"2024-06-03T13:37:00.010Z", "invite"}, {"2024-06-03T13:40:03.000Z", "bye"}};
  in.audio = f.audio;
  return f;
}

TEST(RecordingJson, TopLevelFields) {
  const Fixture f = make_fixture();
  const json j = build_recording_json(f.in);
  EXPECT_EQ(j["schema_version"], 1);
  EXPECT_EQ(j["recording_id"], "0f8e2a4c-1b2d-4e5f-8a9b-0c1d2e3f4a5b");
  EXPECT_EQ(j["conversation_id"], "7d3e9c1a-5b2f-4e8d-9a6c-0f1e2d3c4b5a");
  EXPECT_EQ(j["conversation_id_rule"], "extension:session:GenesysConversationID");
  EXPECT_EQ(j["siprec_session_id"], "GRP-1");
  EXPECT_EQ(j["fragment_of"], "7d3e9c1a-5b2f-4e8d-9a6c-0f1e2d3c4b5a");
  EXPECT_EQ(j["previous_fragment"], "5b1d0c9e-2f3a-4b5c-8d7e-6f5a4b3c2d1e");
  EXPECT_EQ(j["recording_call_id"], "a84b4c76e66710@src.example.com");
  EXPECT_EQ(j["start_time"], "2024-06-03T13:37:00.000Z");
  EXPECT_EQ(j["end_time"], "2024-06-03T13:40:03.000Z");
  EXPECT_EQ(j["duration_ms"], 183000);
  EXPECT_EQ(j["complete"], false);
  EXPECT_EQ(j["incomplete_reason"], "gateway restarted; 500 ms of audio missing");
  EXPECT_EQ(j["gateway"], json({{"node", "gw-us-east-1a"}, {"region", "us-east"}}));
  EXPECT_EQ(j.size(), 26u) << j.dump(2);  // every documented key, no more
}

TEST(RecordingJson, CommunicationSessions) {
  const json j = build_recording_json(make_fixture().in);
  ASSERT_EQ(j["communication_sessions"].size(), 1u);
  const auto& cs = j["communication_sessions"][0];
  EXPECT_EQ(cs["session_id"], "SESS-1");
  EXPECT_EQ(cs["sip_session_ids"][0], "5f4e3d2c1b0a49988776655443322110;remote=00000000000000000000000000000000");
  EXPECT_EQ(cs["start_time"], "2024-06-03T13:37:00.000Z");
  EXPECT_TRUE(cs["stop_time"].is_null());
  EXPECT_EQ(cs["call_ids"], json::array());
}

TEST(RecordingJson, ParticipantsWithRolesChannelsAndTimes) {
  const json j = build_recording_json(make_fixture().in);
  const auto& ps = j["participants"];
  ASSERT_EQ(ps.size(), 3u);
  EXPECT_EQ(ps[0], json({{"id", "PC"},
                         {"aor", "sip:+16175550134@edge.example.com"},
                         {"name", "+16175550134"},
                         {"role", "caller"},
                         {"role_rule", "role-field:purpose"},
                         {"channel", 0},
                         {"file", "0f8e2a4c-rec.wav"},
                         {"join_time", "2024-06-03T13:37:00.000Z"},
                         {"leave_time", nullptr}}));
  EXPECT_EQ(ps[1]["id"], "PA");
  EXPECT_EQ(ps[1]["role"], "agent");
  EXPECT_EQ(ps[1]["channel"], 1);
  EXPECT_EQ(ps[1]["join_time"], "2024-06-03T13:37:12.480Z");
  // A participant without a stream: no channel or file; it left.
  EXPECT_EQ(ps[2]["id"], "SUP");
  EXPECT_EQ(ps[2]["name"], "Sam Supervisor");
  EXPECT_EQ(ps[2]["role"], "unknown");
  EXPECT_TRUE(ps[2]["role_rule"].is_null());
  EXPECT_TRUE(ps[2]["channel"].is_null());
  EXPECT_TRUE(ps[2]["file"].is_null());
  EXPECT_EQ(ps[2]["join_time"], "2024-06-03T13:38:00.000Z");
  EXPECT_EQ(ps[2]["leave_time"], "2024-06-03T13:39:30.000Z");
}

TEST(RecordingJson, StreamsGapsDtmf) {
  const json j = build_recording_json(make_fixture().in);
  const auto& s = j["streams"];
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0]["index"], 0);
  EXPECT_EQ(s[0]["label"], "2");
  EXPECT_EQ(s[0]["codec"], "PCMA/8000");
  EXPECT_EQ(s[0]["ssrcs"], json({0x1a2b3c4du}));
  EXPECT_EQ(s[0]["packets_received"], 9140);
  EXPECT_EQ(s[0]["packets_lost"], 3);
  EXPECT_EQ(s[0]["packets_late"], 1);
  EXPECT_EQ(s[0]["packets_duplicated"], 2);
  EXPECT_EQ(s[0]["first_packet_time"], "2024-06-03T13:37:12.520Z");
  EXPECT_EQ(s[0]["last_packet_time"], "2024-06-03T13:40:03.020Z");
  EXPECT_EQ(s[0]["file"], "0f8e2a4c-rec.wav");
  EXPECT_EQ(s[0]["channel"], 1);  // the agent's stream is on the right
  EXPECT_EQ(s[0]["participant"], "PA");
  EXPECT_EQ(s[1]["channel"], 0);
  EXPECT_EQ(s[1]["participant"], "PC");
  EXPECT_EQ(s[1]["ssrcs"].size(), 2u);

  ASSERT_EQ(j["gaps"].size(), 2u);
  EXPECT_EQ(j["gaps"][0], json({{"start_ms", 61000}, {"length_ms", 2000}, {"cause", "no-rtp"}, {"stream_label", "2"}}));
  EXPECT_TRUE(j["gaps"][1]["stream_label"].is_null());
  EXPECT_EQ(j["dtmf"][0], json({{"digit", "5"}, {"start_ms", 42000}, {"duration_ms", 120}, {"stream_label", "1"},
                                {"participant", "PC"}}));
}

TEST(RecordingJson, MetadataDocumentsErrorsEventsAudio) {
  const json j = build_recording_json(make_fixture().in);
  ASSERT_EQ(j["metadata_xml"].size(), 2u);
  EXPECT_EQ(j["metadata_xml"][0]["received_at"], "2024-06-03T13:37:00.010Z");
  EXPECT_EQ(j["metadata_xml"][0]["xml"], kXml);
  EXPECT_EQ(j["metadata_xml"][1]["xml"], "<recording/>");
  EXPECT_EQ(j["metadata"]["dialect"], "rfc7865");
  EXPECT_EQ(j["metadata"]["participants"].size(), 3u);
  EXPECT_EQ(j["metadata_errors"][0],
            json({{"received_at", "2024-06-03T13:38:00.100Z"}, {"code", "metadata.xml"},
                  {"message", "not well-formed at offset 3"}}));
  EXPECT_EQ(j["events"][1], json({{"time", "2024-06-03T13:40:03.000Z"}, {"what", "bye"}}));
  ASSERT_EQ(j["audio"].size(), 1u);
  EXPECT_EQ(j["audio"][0], json({{"file", "0f8e2a4c-rec.wav"},
                                 {"format", "wav"},
                                 {"channels", 2},
                                 {"sample_rate", 8000},
                                 {"frames", 1464000},
                                 {"duration_ms", 183000},
                                 {"size_bytes", 5856044},
                                 {"sha256", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}}));
}

TEST(RecordingJson, MinimalInputWithoutMetadata) {
  RecordingJsonInput in;
  in.recording_id = "r1";
  in.start_time = "2024-01-01T00:00:00.000Z";
  in.end_time = "2024-01-01T00:00:01.000Z";
  in.duration_ms = 1000;
  in.incomplete_reason = "ignored when complete";
  const json j = build_recording_json(in);
  EXPECT_TRUE(j["metadata"].is_null());
  EXPECT_TRUE(j["conversation_id"].is_null());
  EXPECT_TRUE(j["conversation_id_rule"].is_null());
  EXPECT_TRUE(j["fragment_of"].is_null());
  EXPECT_TRUE(j["previous_fragment"].is_null());
  EXPECT_TRUE(j["siprec_session_id"].is_null());
  EXPECT_TRUE(j["recording_call_id"].is_null());
  EXPECT_EQ(j["complete"], true);
  EXPECT_TRUE(j["incomplete_reason"].is_null());
  for (const char* k : {"communication_sessions", "participants", "streams", "gaps", "dtmf", "metadata_xml",
                        "metadata_errors", "events", "audio"})
    EXPECT_EQ(j[k], json::array()) << k;
}

TEST(RecordingJson, DeterministicAndSafeToRender) {
  Fixture f = make_fixture();
  const std::string a = render_recording_json(build_recording_json(f.in));
  const std::string b = render_recording_json(build_recording_json(make_fixture().in));
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.back(), '\n');
  EXPECT_LT(a.find("\"audio\""), a.find("\"recording_id\""));  // sorted keys
  // A raw metadata body with invalid UTF-8 does not make rendering throw.
  f.in.metadata_xml.push_back({"2024-06-03T13:39:00.000Z", std::string("<x>\xff\xfe</x>")});
  std::string out;
  EXPECT_NO_THROW(out = render_recording_json(build_recording_json(f.in)));
  EXPECT_NE(out.find("<x>\xef\xbf\xbd"), std::string::npos);  // U+FFFD
}

TEST(RecordingJson, CleanIntegrityHasNoCausesAndNoWarnings) {
  Integrity in;
  StreamIntegrity s;
  s.label = "1";
  s.packets_expected = s.packets_received = 500;
  in.streams.push_back(s);
  EXPECT_TRUE(integrity_causes(in).empty());
  EXPECT_TRUE(integrity_warnings(in).empty());
  RecordingJsonInput rin;
  rin.integrity = in;
  const json j = build_recording_json(rin);
  EXPECT_EQ(j["warnings"], json::array());
  EXPECT_EQ(j["integrity"]["causes"], json::array());
  EXPECT_TRUE(j["integrity"]["streams"][0]["packets_wrong_source"].is_null());  // not measured
  EXPECT_TRUE(j["integrity"]["spool"]["last_error"].is_null());
}

TEST(RecordingJson, DamageIsACauseAndAWarning) {
  Integrity in;
  in.spool.records_dropped = 12;
  in.spool.last_error = "write /s/x.spool: No space left on device";
  in.spool.sync_failures = 1;
  in.spool.bytes_unreadable = 40;
  in.spool.regions_unreadable = 1;
  StreamIntegrity s;
  s.label = "2";
  s.role = "agent";
  s.packets_late = 3;
  s.packets_kernel_dropped = 7;
  in.streams.push_back(s);
  const auto causes = integrity_causes(in);
  ASSERT_EQ(causes.size(), 5u);
  EXPECT_EQ(causes[0], "spool: 12 record(s) dropped before reaching the disk (write /s/x.spool: No space left on device)");
  EXPECT_NE(causes[1].find("1 failed sync(s)"), std::string::npos);
  EXPECT_EQ(causes[2], "spool: 40 byte(s) in 1 region(s) unreadable (corrupt or torn)");
  EXPECT_EQ(causes[3], "stream 2 (agent): 3 packet(s) received too late for the timeline");
  EXPECT_EQ(causes[4], "stream 2 (agent): 7 packet(s) dropped by the kernel (receive buffer full)");
  EXPECT_EQ(integrity_warnings(in), causes);
}

TEST(RecordingJson, SilenceWrongSourceAndPayloadTypesAreWarningsNotCauses) {
  Integrity in;
  StreamIntegrity a;
  a.label = "1";
  a.role = "agent";
  a.packets_received = 100;
  a.silences = {{5000, 42000}, {60000, 11000}};
  StreamIntegrity b;
  b.label = "2";
  b.role = "unknown";
  b.packets_wrong_source = 350;
  b.packets_unexpected_payload_type = 4;
  StreamIntegrity c;
  c.label = "3";
  c.silences = {{0, 60000}};  // nothing at all
  in.streams = {a, b, c};
  in.finalize_failures = 2;
  in.last_finalize_error = "open /r/x.wav.tmp: No space left on device";
  EXPECT_TRUE(integrity_causes(in).empty());
  EXPECT_EQ(integrity_warnings(in),
            (std::vector<std::string>{"stream 1 (agent): no audio received for 42.0 s (2 silent periods over 10.0 s)",
                                      "stream 2: 350 packet(s) from an unexpected source dropped",
                                      "stream 2: 4 packet(s) in a payload type that was not negotiated",
                                      "stream 3: no audio received at all (60.0 s)",
                                      "published after 2 failed finalisation attempt(s): open /r/x.wav.tmp: No "
                                      "space left on device"}));
}

TEST(RecordingJson, WarningsComeFirstWhenRendered) {
  Fixture f = make_fixture();
  f.in.warnings = {"stream 2: 350 packet(s) from an unexpected source dropped"};
  const std::string text = render_recording_json(build_recording_json(f.in));
  EXPECT_EQ(text.rfind("{\n  \"warnings\": [\n    \"stream 2:", 0), 0u) << text.substr(0, 200);
  EXPECT_LT(text.find("\"audio\""), text.find("\"recording_id\""));  // the rest stays sorted
  EXPECT_EQ(json::parse(text), build_recording_json(f.in));
}

TEST(RecordingJson, CallDataCallIdGoesToTheSingleSession) {
  metadata::RecordingMetadata md;
  md.sessions.push_back({});
  md.sessions[0].id = "S";
  md.call_data = metadata::CallData{"from", "to", "abc@host", "", {}};
  const auto cs = communication_sessions_of(md);
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(cs[0].call_ids, std::vector<std::string>{"abc@host"});
  EXPECT_EQ(siprec_session_id_of(md), "S");
}

}  // namespace
}  // namespace sgw::recording
