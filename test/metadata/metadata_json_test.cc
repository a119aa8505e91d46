#include "metadata/metadata_json.h"

#include <string>

#include <gtest/gtest.h>

#include "metadata/metadata_parser.h"
#include "test_data.h"

namespace sgw::metadata {
namespace {

using testing::read_sample;

nlohmann::json json_of(const std::string& sample) {
  auto r = parse(read_sample(sample));
  EXPECT_TRUE(r.ok()) << sample;
  return r.ok() ? to_json(*r) : nlohmann::json();
}

TEST(MetadataJson, ShapeOfRfc7865Document) {
  const nlohmann::json j = json_of("rfc7865_complete.xml");
  EXPECT_EQ(j["dialect"], "rfc7865");
  EXPECT_EQ(j["data_mode"], "complete");
  EXPECT_TRUE(j["call_data"].is_null());
  EXPECT_TRUE(j["warnings"].is_array());
  EXPECT_TRUE(j["extensions"].is_array());

  ASSERT_EQ(j["groups"].size(), 1u);
  EXPECT_EQ(j["groups"][0]["associate_time"], "2024-03-11T09:14:02Z");
  EXPECT_TRUE(j["groups"][0]["disassociate_time"].is_null());

  const auto& s = j["sessions"][0];
  EXPECT_EQ(s["id"], "hN4m0cXWQq2Y9lDbq1r8Ug==");
  EXPECT_EQ(s["group_id"], "Zx7k2mQ9SxWm3q1vT0aB4w==");
  EXPECT_EQ(s["sip_session_ids"][0], "a3c9e1f0b2d44e6f8a1b2c3d4e5f6a7b;remote=00000000000000000000000000000000");
  EXPECT_EQ(s["start_time"], "2024-03-11T09:14:02Z");
  EXPECT_TRUE(s["stop_time"].is_null());
  ASSERT_EQ(s["extensions"].size(), 1u);
  EXPECT_TRUE(s["extensions"][0].is_string());

  const auto& p = j["participants"][1];
  EXPECT_EQ(p["id"], "Vb3n9Pp4R0yK2sX6dE7wZg==");
  EXPECT_EQ(p["aors"], nlohmann::json({"sip:agent.1042@cc.example.com", "tel:+14155550999"}));
  EXPECT_EQ(p["display_name"], "Alex Agent");
  EXPECT_EQ(p["names"][1], nlohmann::json({{"lang", "fr"}, {"name", "Alexandre Agent"}}));
  EXPECT_EQ(p["sessions"][0]["session_id"], "hN4m0cXWQq2Y9lDbq1r8Ug==");
  EXPECT_EQ(p["sessions"][0]["associate_time"], "2024-03-11T09:14:05Z");
  EXPECT_TRUE(p["sessions"][0]["disassociate_time"].is_null());
  EXPECT_EQ(p["send"], nlohmann::json({"i1Pz3to5hGk8fuXl+PbwCw=="}));
  EXPECT_EQ(p["recv"], nlohmann::json({"UAAMm5GRQKSCMVvLyl4rFw=="}));

  const auto& st = j["streams"][0];
  EXPECT_EQ(st["id"], "UAAMm5GRQKSCMVvLyl4rFw==");
  EXPECT_EQ(st["label"], "96");
  EXPECT_TRUE(st["mode"].is_null());
  EXPECT_EQ(st["session_id"], "hN4m0cXWQq2Y9lDbq1r8Ug==");
}

TEST(MetadataJson, CallDataAndDraftMode) {
  const nlohmann::json sonus = json_of("sonus_calldata.xml");
  EXPECT_EQ(sonus["call_data"]["gcid"], "2149673051");
  EXPECT_EQ(sonus["call_data"]["call_id"], "4f2a8c1e-91d3-4b77-a0e2-5d6c7b8a9f01@203.0.113.7");
  EXPECT_EQ(sonus["call_data"]["other"][0], nlohmann::json({{"name", "X-Customer-Ref"}, {"value", "CR-88123"}}));
  const nlohmann::json acme = json_of("draft_acme.xml");
  EXPECT_EQ(acme["dialect"], "draft");
  EXPECT_EQ(acme["streams"][0]["mode"], "separate");
  EXPECT_EQ(json_of("legacy_broadworks.xml")["dialect"], "siprec-legacy");
}

// The whole document, value for value: every key present, absent optionals null, document
// order kept, extensions verbatim (whitespace inside them as received).
TEST(MetadataJson, GenesysDocumentRendersExactly) {
  const std::string sid = "T3Vk3bQ4R7mJcC9rW0fQzA==";
  const std::string customer = "QkFyQ2xpZW50MQ==";
  const std::string agent = "QkFyQWdlbnQy";
  const nlohmann::json expected = {
      {"dialect", "rfc7865"},
      {"data_mode", "complete"},
      {"groups", nlohmann::json::array()},
      {"sessions",
       {{{"id", sid},
         {"group_id", nullptr},
         {"sip_session_ids", {"5f4e3d2c1b0a49988776655443322110;remote=00000000000000000000000000000000"}},
         {"start_time", "2024-06-03T13:37:00.000Z"},
         {"stop_time", nullptr},
         {"associate_time", nullptr},
         {"disassociate_time", nullptr},
         {"extensions",
          {"<extensiondata>\n      <genesys:GenesysConversationID xmlns:genesys=\"urn:genesys:cloud:recording\">"
           "7d3e9c1a-5b2f-4e8d-9a6c-0f1e2d3c4b5a</genesys:GenesysConversationID>\n      "
           "<genesys:GenesysEdgeID xmlns:genesys=\"urn:genesys:cloud:recording\">edge-us-east-1-a7"
           "</genesys:GenesysEdgeID>\n    </extensiondata>"}}}}},
      {"participants",
       {{{"id", customer},
         {"aors", {"sip:+16175550134@edge.example.com"}},
         {"display_name", "+16175550134"},
         {"names", {{{"lang", "en"}, {"name", "+16175550134"}}}},
         {"sessions", {{{"session_id", sid}, {"associate_time", "2024-06-03T13:37:00.000Z"}, {"disassociate_time", nullptr}}}},
         {"send", {"c3RyZWFtLTE="}},
         {"recv", {"c3RyZWFtLTI="}},
         {"extensions",
          {"<extensiondata>\n      <genesys:GenesysParticipant xmlns:genesys=\"urn:genesys:cloud:recording\" "
           "purpose=\"customer\" participantId=\"a1b2c3d4-0000-4000-8000-000000000001\"/>\n    </extensiondata>"}}},
        {{"id", agent},
         {"aors", {"sip:agent-77@edge.example.com"}},
         {"display_name", "Morgan Agent"},
         {"names", {{{"lang", "en"}, {"name", "Morgan Agent"}}}},
         {"sessions", {{{"session_id", sid}, {"associate_time", "2024-06-03T13:37:12.480Z"}, {"disassociate_time", nullptr}}}},
         {"send", {"c3RyZWFtLTI="}},
         {"recv", {"c3RyZWFtLTE="}},
         {"extensions",
          {"<extensiondata>\n      <genesys:GenesysParticipant xmlns:genesys=\"urn:genesys:cloud:recording\" "
           "purpose=\"agent\" participantId=\"a1b2c3d4-0000-4000-8000-000000000002\"/>\n    </extensiondata>"}}}}},
      {"streams",
       {{{"id", "c3RyZWFtLTE="}, {"label", "1"}, {"session_id", sid}, {"mode", nullptr}, {"extensions", nlohmann::json::array()}},
        {{"id", "c3RyZWFtLTI="}, {"label", "2"}, {"session_id", sid}, {"mode", nullptr}, {"extensions", nlohmann::json::array()}}}},
      {"extensions", nlohmann::json::array()},
      {"call_data", nullptr},
      {"warnings", nlohmann::json::array()},
  };
  const nlohmann::json j = json_of("genesys_conversation.xml");
  EXPECT_EQ(j, expected) << j.dump(2);
  // Keys are sorted in the text, so the same model always renders to the same bytes.
  EXPECT_EQ(j.dump().substr(0, 40), R"({"call_data":null,"data_mode":"complete")");
}

TEST(MetadataJson, HandBuiltModelWithInvalidUtf8StillDumps) {
  RecordingMetadata md;
  Participant p;
  p.id = "p\xC0\xAF";  // overlong '/'
  p.display_name = "\xED\xA0\x80";  // UTF-16 surrogate
  md.participants.push_back(p);
  const nlohmann::json j = to_json(md);
  std::string dumped;
  EXPECT_NO_THROW(dumped = j.dump());
  EXPECT_EQ(j["participants"][0]["id"], "p\xEF\xBF\xBD\xEF\xBF\xBD");
}

}  // namespace
}  // namespace sgw::metadata
