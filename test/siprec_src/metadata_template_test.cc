// The metadata siprec-src sends must parse with the gateway's own parser (sgw_metadata) into
// the intended participants/streams, give the intended roles with the default channel layout
// rules, and yield the call's conversation id with the default conversation-id rules.
#include "siprec_src/metadata_template.h"

#include <gtest/gtest.h>

#include "metadata/cisco_headers.h"
#include "metadata/conversation_id.h"
#include "metadata/metadata_merge.h"
#include "metadata/metadata_parser.h"
#include "recording/channel_layout.h"

namespace sgw::siprec_src {
namespace {

const std::vector<std::string> kDefaultConversationRules = {
    "header:X-GenesysConversationID",          "header:X-Genesys-Conversation-ID",
    "header:X-Conversation-ID",                "extension:session:GenesysConversationID",
    "extension:group:GenesysConversationID",   "extension:any:ConversationID",
    "metadata:session_id"};

metadata::RecordingMetadata model_for(Dialect d, const CallIdentity& id) {
  if (d == Dialect::kCisco) {
    std::vector<std::string> values;
    for (const auto& [n, v] : dialect_headers(d, id))
      if (n == metadata::kCiscoParticipantHeader) values.push_back(v);
    return metadata::from_cisco_headers(values, "call-1@src");
  }
  auto md = metadata::parse(render_complete(d, id));
  EXPECT_TRUE(md.ok()) << dialect_name(d) << ": " << (md.ok() ? "" : md.error().message) << "\n"
                       << render_complete(d, id);
  return md.ok() ? md.value() : metadata::RecordingMetadata{};
}

const metadata::Participant* by_aor(const metadata::RecordingMetadata& md, const std::string& aor) {
  for (const auto& p : md.participants)
    for (const auto& a : p.aors)
      if (a == aor) return &p;
  return nullptr;
}

std::string label_of(const metadata::RecordingMetadata& md, const std::string& ref) {
  for (const auto& s : md.streams)
    if (s.id == ref || (s.id.empty() && s.label == ref)) return s.label;
  return {};
}

class EveryDialect : public ::testing::TestWithParam<Dialect> {};

TEST_P(EveryDialect, CompleteDocumentNamesCallerAndAgentWithTheirStreams) {
  Dialect d = GetParam();
  CallIdentity id = make_identity(d, 42, "2024-06-03T13:37:00.000Z");
  auto md = model_for(d, id);
  const auto* caller = by_aor(md, id.caller.aor);
  const auto* agent = by_aor(md, id.agent.aor);
  ASSERT_NE(caller, nullptr) << dialect_name(d);
  ASSERT_NE(agent, nullptr) << dialect_name(d);
  ASSERT_EQ(caller->send.size(), 1u);
  ASSERT_EQ(agent->send.size(), 1u);
  EXPECT_EQ(label_of(md, caller->send[0]), "1") << dialect_name(d);
  EXPECT_EQ(label_of(md, agent->send[0]), "2") << dialect_name(d);
  EXPECT_EQ(md.streams.size(), 2u);
}

TEST_P(EveryDialect, DefaultRoleRulesPutTheCallerLeftAndTheAgentRight) {
  Dialect d = GetParam();
  CallIdentity id = make_identity(d, 7, "2024-06-03T13:37:00.000Z");
  auto md = model_for(d, id);
  auto layout = recording::build_channel_layout(&md, {{0, "1"}, {1, "2"}},
                                                recording::default_layout_config());
  ASSERT_EQ(layout.files.size(), 1u);
  ASSERT_EQ(layout.files[0].channels.size(), 2u);
  const auto& left = layout.files[0].channels[0];
  const auto& right = layout.files[0].channels[1];
  ASSERT_TRUE(left.participant.has_value()) << dialect_name(d);
  ASSERT_TRUE(right.participant.has_value()) << dialect_name(d);
  EXPECT_EQ(left.participant->aor, id.caller.aor) << dialect_name(d);
  EXPECT_EQ(left.role, "caller") << dialect_name(d) << " rule " << left.role_rule;
  EXPECT_EQ(right.participant->aor, id.agent.aor) << dialect_name(d);
  EXPECT_EQ(right.role, "agent") << dialect_name(d) << " rule " << right.role_rule;
}

TEST_P(EveryDialect, DefaultConversationIdRulesFindTheCallsId) {
  Dialect d = GetParam();
  CallIdentity id = make_identity(d, 1, "2024-06-03T13:37:00.000Z");
  auto md = model_for(d, id);
  auto headers = dialect_headers(d, id);
  auto rules = metadata::parse_rules(kDefaultConversationRules);
  ASSERT_TRUE(rules.ok());
  metadata::HeaderLookup lookup = [&](std::string_view name) {
    std::vector<std::string> out;
    for (const auto& [n, v] : headers)
      if (n == name) out.push_back(v);
    return out;
  };
  auto m = metadata::find_conversation_id(*rules, &md, lookup, "call-1@src");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->value, id.conversation_id);
  EXPECT_EQ(m->rule, "header:X-GenesysConversationID");
  if (d != Dialect::kCisco) {
    // Without the header, the id is still in the metadata's extension data.
    auto m2 = metadata::find_conversation_id(*rules, &md, {}, "call-1@src");
    ASSERT_TRUE(m2.has_value()) << dialect_name(d);
    EXPECT_EQ(m2->value, id.conversation_id) << dialect_name(d) << " via " << m2->rule;
  }
}

TEST_P(EveryDialect, JoinAndTransferArePartialUpdatesThatMerge) {
  Dialect d = GetParam();
  if (d == Dialect::kCisco) {
    EXPECT_TRUE(render_join(d, make_identity(d, 1, "t"), "t").empty());
    return;
  }
  CallIdentity id = make_identity(d, 3, "2024-06-03T13:37:00.000Z");
  auto base = model_for(d, id);
  auto join = metadata::parse(render_join(d, id, "2024-06-03T13:37:05.000Z"));
  ASSERT_TRUE(join.ok()) << join.error().message;
  EXPECT_EQ(join->data_mode, metadata::DataMode::kPartial);
  auto merged = metadata::merge(base, *join);
  const auto* sup = by_aor(merged, id.supervisor.aor);
  ASSERT_NE(sup, nullptr) << dialect_name(d);
  EXPECT_EQ(sup->recv.size(), 2u);
  EXPECT_TRUE(sup->send.empty());

  auto tr = metadata::parse(render_transfer(d, id, "2024-06-03T13:37:06.000Z"));
  ASSERT_TRUE(tr.ok()) << tr.error().message;
  merged = metadata::merge(merged, *tr);
  const auto* agent = by_aor(merged, id.agent.aor);
  const auto* agent2 = by_aor(merged, id.agent2.aor);
  ASSERT_NE(agent, nullptr);
  ASSERT_NE(agent2, nullptr) << dialect_name(d);
  ASSERT_FALSE(agent->sessions.empty()) << dialect_name(d);
  EXPECT_EQ(agent->sessions[0].disassociate_time, "2024-06-03T13:37:06.000Z") << dialect_name(d);
  ASSERT_EQ(agent2->send.size(), 1u);
  EXPECT_EQ(label_of(merged, agent2->send[0]), "2") << dialect_name(d);
  // The merged model still has exactly the caller, both agents and the supervisor.
  EXPECT_EQ(merged.participants.size(), 4u) << dialect_name(d);
}

TEST_P(EveryDialect, CompleteDocumentAfterChangesCarriesThem) {
  Dialect d = GetParam();
  if (d == Dialect::kCisco) return;
  CallIdentity id = make_identity(d, 9, "2024-06-03T13:37:00.000Z");
  ParticipantState st;
  st.supervisor_joined = "2024-06-03T13:37:05.000Z";
  st.transferred = "2024-06-03T13:37:06.000Z";
  auto md = metadata::parse(render_complete(d, id, st));
  ASSERT_TRUE(md.ok()) << md.error().message;
  EXPECT_NE(by_aor(*md, id.supervisor.aor), nullptr);
  EXPECT_NE(by_aor(*md, id.agent2.aor), nullptr);
  // Same communication session identifiers as before (re-established recordings match).
  auto first = metadata::parse(render_complete(d, id));
  ASSERT_TRUE(first.ok());
  ASSERT_FALSE(md->sessions.empty());
  EXPECT_EQ(md->sessions[0].id, first->sessions[0].id);
  EXPECT_EQ(md->sessions[0].sip_session_ids, first->sessions[0].sip_session_ids);
}

INSTANTIATE_TEST_SUITE_P(Dialects, EveryDialect, ::testing::ValuesIn(all_dialects()),
                         [](const auto& p) { return std::string(dialect_name(p.param)); });

TEST(MetadataTemplate, RibbonCallDataNamesTheRecordedCall) {
  CallIdentity id = make_identity(Dialect::kRibbon, 5, "2024-06-03T13:37:00.000Z");
  auto md = metadata::parse(render_complete(Dialect::kRibbon, id));
  ASSERT_TRUE(md.ok());
  ASSERT_TRUE(md->call_data.has_value());
  EXPECT_EQ(md->call_data->call_id, id.recorded_call_id);
  EXPECT_NE(md->call_data->from.find(id.caller.aor), std::string::npos);
}

TEST(MetadataTemplate, IdentitiesAreUniquePerCall) {
  auto a = make_identity(Dialect::kRfc7865, 1, "t");
  auto b = make_identity(Dialect::kRfc7865, 2, "t");
  EXPECT_NE(a.conversation_id, b.conversation_id);
  EXPECT_NE(a.session_id, b.session_id);
  EXPECT_NE(a.caller.aor, b.caller.aor);
  EXPECT_EQ(a.conversation_id.size(), 36u);
}

TEST(MetadataTemplate, DialectNames) {
  for (auto d : all_dialects()) {
    auto p = parse_dialect(dialect_name(d));
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(*p, d);
  }
  EXPECT_EQ(*parse_dialect("genesys"), Dialect::kRfc7865);
  EXPECT_EQ(*parse_dialect("draft"), Dialect::kAcme);
  EXPECT_FALSE(parse_dialect("nope").ok());
}

TEST(MetadataTemplate, XmlEscape) { EXPECT_EQ(xml_escape("a<&>\"'"), "a&lt;&amp;&gt;&quot;&apos;"); }

}  // namespace
}  // namespace sgw::siprec_src
