#include "metadata/cisco_headers.h"

#include <string>

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace sgw::metadata
