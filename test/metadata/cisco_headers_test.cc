#include "metadata/cisco_headers.h"

#include <string>

#include <gtest/gtest.h>

#include "metadata/metadata_parser.h"

namespace sgw::metadata {
namespace {

constexpr std::string_view kCallId = "6E6CF813-506411E0-80EAE01B-4C27AA62@10.42.30.10";

TEST(CiscoHeaders, CubeForkingHeaders) {
  // As CUBE sends them: one header per recorded party, bare URI with a quoted media-index.
  const RecordingMetadata md = from_cisco_headers(
      {"sip:708090@10.42.30.5;media-index=\"0\"", "sip:10000@10.42.30.32;media-index=\"1\""}, kCallId);
  EXPECT_EQ(md.dialect, Dialect::kCiscoHeaders);
  EXPECT_EQ(md.data_mode, DataMode::kComplete);
  EXPECT_TRUE(md.warnings.empty());
  ASSERT_EQ(md.sessions.size(), 1u);
  EXPECT_EQ(md.sessions[0].id, kCallId);
  EXPECT_EQ(md.sessions[0].sip_session_ids, std::vector<std::string>{std::string(kCallId)});

  ASSERT_EQ(md.participants.size(), 2u);
  const Participant& a = md.participants[0];
  EXPECT_EQ(a.id, "cisco-0");
  EXPECT_EQ(a.aors, std::vector<std::string>{"sip:708090@10.42.30.5"});
  EXPECT_EQ(a.send, std::vector<std::string>{"0"});
  EXPECT_EQ(a.recv, std::vector<std::string>{"1"});
  ASSERT_EQ(a.sessions.size(), 1u);
  EXPECT_EQ(a.sessions[0].session_id, kCallId);
  const Participant& b = md.participants[1];
  EXPECT_EQ(b.aors, std::vector<std::string>{"sip:10000@10.42.30.32"});
  EXPECT_EQ(b.send, std::vector<std::string>{"1"});
  EXPECT_EQ(b.recv, std::vector<std::string>{"0"});

  ASSERT_EQ(md.streams.size(), 2u);
  EXPECT_EQ(md.streams[0].id, "0");
  EXPECT_EQ(md.streams[0].label, "0");
  EXPECT_EQ(md.streams[0].session_id, kCallId);
}

TEST(CiscoHeaders, NameAddrCommaSeparatedWithParams) {
  const RecordingMetadata md = from_cisco_headers(
      {"\"Smith, Jo\" <sip:1001@cucm.example.com;user=phone>;media-index=0, <tel:+15551234567>;x-farend",
       "Agent <sips:2002@cucm.example.com>"},
      "c1");
  ASSERT_EQ(md.participants.size(), 3u);
  EXPECT_EQ(md.participants[0].display_name, "Smith, Jo");
  EXPECT_EQ(md.participants[0].aors[0], "sip:1001@cucm.example.com;user=phone");
  EXPECT_EQ(md.participants[0].send, std::vector<std::string>{"0"});
  EXPECT_EQ(md.participants[1].aors[0], "tel:+15551234567");
  EXPECT_TRUE(md.participants[1].display_name.empty());
  EXPECT_TRUE(md.participants[1].send.empty());
  EXPECT_EQ(md.participants[1].recv, std::vector<std::string>{"0"});
  EXPECT_EQ(md.participants[2].display_name, "Agent");
  EXPECT_EQ(md.participants[2].aors[0], "sips:2002@cucm.example.com");
  EXPECT_EQ(md.streams.size(), 1u);
}

TEST(CiscoHeaders, GarbageIsSkippedWithWarning) {
  const RecordingMetadata md =
      from_cisco_headers({"", "not a uri", "<sip:unterminated", ",,", "\"\\", "sip:ok@h"}, "c1");
  ASSERT_EQ(md.participants.size(), 1u);
  EXPECT_EQ(md.participants[0].aors[0], "sip:ok@h");
  EXPECT_GE(md.warnings.size(), 2u);
}

TEST(CiscoHeaders, NoHeadersGivesSessionOnly) {
  const RecordingMetadata md = from_cisco_headers({}, " c1 ");
  EXPECT_TRUE(md.participants.empty());
  ASSERT_EQ(md.sessions.size(), 1u);
  EXPECT_EQ(md.sessions[0].id, "c1");
}

TEST(CiscoHeaders, ParticipantCountIsBounded) {
  std::string many;
  for (int i = 0; i < 100; ++i) many += "sip:" + std::to_string(i) + "@h,";
  const RecordingMetadata md = from_cisco_headers({many}, "c1");
  EXPECT_EQ(md.participants.size(), 32u);
  EXPECT_FALSE(md.warnings.empty());
}

const std::vector<std::string> kInitial = {"\"Caller\" <sip:+14085550100@10.42.30.5>;media-index=\"1\"",
                                           "\"Agent A\" <sip:10000@10.42.30.32>;media-index=\"2\""};

const Participant* by_aor(const RecordingMetadata& md, const std::string& aor) {
  for (const auto& p : md.participants)
    for (const auto& a : p.aors)
      if (a == aor) return &p;
  return nullptr;
}

TEST(CiscoHeadersUpdate, TransferReplacesTheAgentOnItsMediaIndex) {
  const RecordingMetadata base = from_cisco_headers(kInitial, kCallId);
  // CUBE's re-INVITE after the agent transferred the call to 10001.
  const auto md = merge_cisco_headers(
      &base,
      {"\"Caller\" <sip:+14085550100@10.42.30.5>;media-index=\"1\"",
       "\"Agent B\" <sip:10001@10.42.30.33>;media-index=\"2\""},
      kCallId, "2024-06-03T13:37:06.000Z");
  ASSERT_TRUE(md.has_value());
  EXPECT_EQ(md->dialect, Dialect::kCiscoHeaders);
  ASSERT_EQ(md->participants.size(), 3u);
  const Participant* caller = by_aor(*md, "sip:+14085550100@10.42.30.5");
  const Participant* a = by_aor(*md, "sip:10000@10.42.30.32");
  const Participant* b = by_aor(*md, "sip:10001@10.42.30.33");
  ASSERT_NE(caller, nullptr);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->id, "cisco-2");
  EXPECT_EQ(b->display_name, "Agent B");
  EXPECT_EQ(b->send, std::vector<std::string>{"2"});
  EXPECT_EQ(b->recv, std::vector<std::string>{"1"});
  ASSERT_EQ(b->sessions.size(), 1u);
  EXPECT_EQ(b->sessions[0].session_id, kCallId);
  EXPECT_EQ(b->sessions[0].associate_time, "2024-06-03T13:37:06.000Z");
  EXPECT_FALSE(b->sessions[0].disassociate_time);
  // Agent A left when B joined; it keeps its entry (and the stream it sent).
  ASSERT_EQ(a->sessions.size(), 1u);
  EXPECT_EQ(a->sessions[0].disassociate_time, "2024-06-03T13:37:06.000Z");
  EXPECT_EQ(a->send, std::vector<std::string>{"2"});
  // The caller stays, unchanged, and now also hears B's stream (the same media-index).
  EXPECT_FALSE(caller->sessions[0].disassociate_time);
  EXPECT_EQ(caller->send, std::vector<std::string>{"1"});
  EXPECT_EQ(md->streams.size(), 2u);

  // Transferred back to A: A is a participant again under a new id (the old entry keeps its
  // leave time), B leaves.
  const auto back = merge_cisco_headers(&*md, kInitial, kCallId, "2024-06-03T13:38:00.000Z");
  ASSERT_TRUE(back.has_value());
  ASSERT_EQ(back->participants.size(), 4u);
  EXPECT_EQ(by_aor(*back, "sip:10001@10.42.30.33")->sessions[0].disassociate_time, "2024-06-03T13:38:00.000Z");
  EXPECT_EQ(back->participants[3].aors, std::vector<std::string>{"sip:10000@10.42.30.32"});
  EXPECT_EQ(back->participants[3].sessions[0].associate_time, "2024-06-03T13:38:00.000Z");
}

TEST(CiscoHeadersUpdate, SameHeadersChangeNothing) {
  const RecordingMetadata base = from_cisco_headers(kInitial, kCallId);
  EXPECT_FALSE(merge_cisco_headers(&base, kInitial, kCallId, "2024-06-03T13:37:06.000Z").has_value());
  // Order and a missing display name do not matter either.
  EXPECT_FALSE(merge_cisco_headers(&base, {"<sip:10000@10.42.30.32>;media-index=\"2\"", kInitial[0]}, kCallId, "t")
                   .has_value());
}

TEST(CiscoHeadersUpdate, AConferenceAddsAParticipantOnANewMediaIndex) {
  const RecordingMetadata base = from_cisco_headers(kInitial, kCallId);
  // Only the new party is named: nobody else is touched.
  const auto md = merge_cisco_headers(&base, {"sip:20000@10.42.30.40;media-index=\"3\""}, kCallId, "T");
  ASSERT_TRUE(md.has_value());
  ASSERT_EQ(md->participants.size(), 3u);
  for (std::size_t i = 0; i < 2; ++i) EXPECT_FALSE(md->participants[i].sessions[0].disassociate_time);
  EXPECT_EQ(md->participants[2].send, std::vector<std::string>{"3"});
  EXPECT_EQ(md->participants[2].recv, (std::vector<std::string>{"1", "2"}));
  ASSERT_EQ(md->streams.size(), 3u);
  EXPECT_EQ(md->streams[2].label, "3");
}

TEST(CiscoHeadersUpdate, WithoutMetadataBuildsItAndXmlMetadataIgnoresTheHeaders) {
  const auto fresh = merge_cisco_headers(nullptr, kInitial, kCallId, "T");
  ASSERT_TRUE(fresh.has_value());
  EXPECT_EQ(fresh->participants.size(), 2u);
  EXPECT_EQ(fresh->data_mode, DataMode::kComplete);

  auto xml = parse(R"(<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>complete</datamode>
    <participant participant_id="p"><nameID aor="sip:x@example.com"/></participant></recording>)");
  ASSERT_TRUE(xml.ok());
  EXPECT_FALSE(merge_cisco_headers(&*xml, kInitial, kCallId, "T").has_value());
}

TEST(CiscoHeadersUpdate, SpoolEventRoundTrip) {
  const CiscoHeadersEvent e{"2024-06-03T13:37:06.000Z", kInitial};
  const nlohmann::json j = encode_cisco_event(e);
  EXPECT_EQ(j["event"], "metadata updated (X-Cisco-Recording-Participant, 2 value(s))");
  const auto back = decode_cisco_event(nlohmann::json::parse(j.dump()));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->time, e.time);
  EXPECT_EQ(back->values, e.values);
  // Other events, and malformed ones, are not Cisco updates.
  EXPECT_FALSE(decode_cisco_event(nlohmann::json{{"event", "streams"}}));
  EXPECT_FALSE(decode_cisco_event(nlohmann::json{{"time", "t"}, {"cisco_participants", {1, 2}}}));
  EXPECT_FALSE(decode_cisco_event(nlohmann::json{{"cisco_participants", {"a"}}}));
  EXPECT_FALSE(decode_cisco_event(nlohmann::json::array()));
}

}  // namespace
}  // namespace sgw::metadata
