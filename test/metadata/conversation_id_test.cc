#include "metadata/conversation_id.h"

#include <map>
#include <string>

#include <gtest/gtest.h>

#include "common/strings.h"
#include "metadata/metadata_parser.h"
#include "test_data.h"

namespace sgw::metadata {
namespace {

using testing::read_sample;

std::vector<ConversationIdRule> rules(const std::vector<std::string>& text) {
  auto r = parse_rules(text);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? std::move(r).value() : std::vector<ConversationIdRule>{};
}

// A header lookup over a fixed map, case-insensitive like a SIP stack's (RFC 3261 §7.3.5).
HeaderLookup headers(std::multimap<std::string, std::string> h) {
  return [h = std::move(h)](std::string_view name) {
    std::vector<std::string> out;
    for (const auto& [k, v] : h)
      if (common::iequals(k, name)) out.push_back(v);
    return out;
  };
}

RecordingMetadata genesys() {
  auto r = parse(read_sample("genesys_conversation.xml"));
  EXPECT_TRUE(r.ok());
  return r.ok() ? std::move(r).value() : RecordingMetadata{};
}

constexpr std::string_view kCallId = "a84b4c76e66710@pc33.atlanta.example.com";

TEST(ConversationId, ParseRulesRejectsBadRulesNamingThem) {
  auto bad_regex = parse_rules({"call-id", "regex:call-id:([a-z"});
  ASSERT_FALSE(bad_regex.ok());
  EXPECT_EQ(bad_regex.error().code, "metadata.rule");
  EXPECT_NE(bad_regex.error().message.find("'regex:call-id:([a-z'"), std::string::npos);

  for (const std::string bad : {"header:", "extension:session", "extension:call:X", "extension:any:",
                                "extension:any:ns:X", "regex:from:.*", "regex:call-id:", "metadata:group_id",
                                "callid", ""}) {
    auto r = parse_rules({bad});
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.error().code, "metadata.rule");
      EXPECT_NE(r.error().message.find("'" + bad + "'"), std::string::npos) << r.error().message;
    }
  }
  const auto ok = rules({"header:X-Genesys-ConversationId", "extension:session:GenesysConversationID",
                         "regex:session-id:^(.*)$", "regex:call-id:^([^@]+)@", "metadata:session_id", "call-id"});
  ASSERT_EQ(ok.size(), 6u);
  EXPECT_EQ(ok[0].kind, ConversationIdRule::Kind::kHeader);
  EXPECT_EQ(ok[0].name, "X-Genesys-ConversationId");
  EXPECT_EQ(ok[1].kind, ConversationIdRule::Kind::kExtension);
  EXPECT_EQ(ok[1].scope, ExtensionScope::kSession);
  EXPECT_EQ(ok[2].kind, ConversationIdRule::Kind::kRegexSessionId);
  EXPECT_EQ(ok[3].kind, ConversationIdRule::Kind::kRegexCallId);
  EXPECT_NE(ok[3].regex, nullptr);
  EXPECT_EQ(ok[4].kind, ConversationIdRule::Kind::kSessionId);
  EXPECT_EQ(ok[5].kind, ConversationIdRule::Kind::kCallId);
}

TEST(ConversationId, HeaderRuleIsCaseInsensitiveAndTrimmed) {
  const auto r = rules({"header:x-conversation-id", "call-id"});
  const auto m = find_conversation_id(r, nullptr, headers({{"X-Conversation-ID", "  conv-42 \t"}}), kCallId);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->value, "conv-42");
  EXPECT_EQ(m->rule, "header:x-conversation-id");
}

TEST(ConversationId, EmptyOrInsaneHeaderFallsThroughToNextRule) {
  const auto r = rules({"header:X-Conversation-ID", "call-id"});
  for (const std::string& v : std::vector<std::string>{"", "   ", std::string(257, 'a'), "ab\x01" "cd"}) {
    const auto m = find_conversation_id(r, nullptr, headers({{"X-Conversation-ID", v}}), kCallId);
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->rule, "call-id");
    EXPECT_EQ(m->value, kCallId);
  }
  // The second value of a repeated header is used when the first is empty; 256 bytes is fine.
  const auto m = find_conversation_id(
      r, nullptr, headers({{"X-Conversation-ID", ""}, {"x-conversation-id", std::string(256, 'b')}}), kCallId);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->value, std::string(256, 'b'));
  // No lookup at all: header rules never match.
  EXPECT_EQ(find_conversation_id(r, nullptr, HeaderLookup{}, kCallId)->rule, "call-id");
}

TEST(ConversationId, GenesysExtensionInSessionScope) {
  const RecordingMetadata md = genesys();
  const auto r = rules({"extension:session:GenesysConversationID", "call-id"});
  const auto m = find_conversation_id(r, &md, headers({}), kCallId);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->value, "7d3e9c1a-5b2f-4e8d-9a6c-0f1e2d3c4b5a");
  EXPECT_EQ(m->rule, "extension:session:GenesysConversationID");
}

TEST(ConversationId, ExtensionScopeIsRespected) {
  const RecordingMetadata md = genesys();
  // The element lives in the session's extension data, not in a group's or participant's.
  EXPECT_EQ(find_conversation_id(rules({"extension:group:GenesysConversationID", "metadata:session_id"}), &md,
                                 headers({}), kCallId)
                ->rule,
            "metadata:session_id");
  EXPECT_EQ(find_conversation_id(rules({"extension:participant:GenesysConversationID", "call-id"}), &md,
                                 headers({}), kCallId)
                ->rule,
            "call-id");
  EXPECT_EQ(find_conversation_id(rules({"extension:any:GenesysConversationID"}), &md, headers({}), kCallId)->value,
            "7d3e9c1a-5b2f-4e8d-9a6c-0f1e2d3c4b5a");
  // Attributes match too: the first participant's participantId attribute.
  const auto attr = find_conversation_id(rules({"extension:participant:participantId"}), &md, headers({}), kCallId);
  ASSERT_TRUE(attr.has_value());
  EXPECT_EQ(attr->value, "a1b2c3d4-0000-4000-8000-000000000001");
  // Without metadata, extension rules do not match.
  EXPECT_FALSE(find_conversation_id(rules({"extension:any:GenesysConversationID"}), nullptr, headers({}), kCallId));
}

// The gateway's default rules (src/app/config.h, docs/configuration.md), without any header.
const std::vector<std::string> kDefaultRules = {
    "header:X-GenesysConversationID",        "header:X-Genesys-Conversation-ID",
    "header:X-Conversation-ID",              "extension:session:GenesysConversationID",
    "extension:group:GenesysConversationID", "extension:any:ConversationID",
    "metadata:session_id"};

RecordingMetadata parse_ok(const std::string& xml) {
  auto r = parse(xml);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? std::move(r).value() : RecordingMetadata{};
}

// An RFC 7865 document whose session carries `ext` as its extension data.
std::string with_session_extension(const std::string& ext) {
  return R"(<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <session session_id="c2Vzc2lvbi0x">)" +
         ext + R"(</session>
  <participant participant_id="cA=="><nameID aor="sip:a@example.com"/></participant>
</recording>)";
}

TEST(ConversationId, DefaultRulesFindGenesysGcConversationIdNestedInExtensionData) {
  // Genesys Cloud: <gc:conversationId> two levels below <extensiondata>, no header.
  const RecordingMetadata md = parse_ok(read_sample("genesys_gc_conversation.xml"));
  const auto m = find_conversation_id(rules(kDefaultRules), &md, headers({}), kCallId);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->value, "2f6c9b1e-8a4d-4c3f-b7e2-91d05a6c3e84");
  EXPECT_EQ(m->rule, "extension:any:ConversationID");
  // A header still wins: it comes first in the default order.
  const auto h = find_conversation_id(rules(kDefaultRules), &md,
                                      headers({{"X-GenesysConversationID", "from-header"}}), kCallId);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->value, "from-header");
  EXPECT_EQ(h->rule, "header:X-GenesysConversationID");
}

TEST(ConversationId, ExtensionNamesMatchCaseInsensitivelyWithAnyPrefixAtAnyDepth) {
  struct Variant {
    const char* what;
    std::string ext;
  };
  const std::vector<Variant> variants = {
      {"gc: prefix, camel case, directly in extensiondata",
       R"(<extensiondata><gc:conversationId xmlns:gc="urn:genesys:x">conv-1</gc:conversationId></extensiondata>)"},
      {"no prefix, upper-case ID",
       R"(<extensiondata><ConversationID xmlns="urn:vendor:x">conv-1</ConversationID></extensiondata>)"},
      {"all lower case",
       R"(<extensiondata><x:conversationid xmlns:x="urn:vendor:x">conv-1</x:conversationid></extensiondata>)"},
      {"hyphenated",
       R"(<extensiondata><x:conversation-id xmlns:x="urn:vendor:x">conv-1</x:conversation-id></extensiondata>)"},
      {"three levels deep",
       R"(<extensiondata><a:one xmlns:a="urn:a"><a:two><a:three><a:CONVERSATIONID>conv-1</a:CONVERSATIONID>)"
       R"(</a:three></a:two></a:one></extensiondata>)"},
      {"as an attribute",
       R"(<extensiondata><a:call xmlns:a="urn:a" a:conversationId="conv-1"/></extensiondata>)"},
  };
  for (const auto& v : variants) {
    const RecordingMetadata md = parse_ok(with_session_extension(v.ext));
    const auto m = find_conversation_id(rules(kDefaultRules), &md, headers({}), kCallId);
    ASSERT_TRUE(m.has_value()) << v.what;
    EXPECT_EQ(m->value, "conv-1") << v.what;
    EXPECT_EQ(m->rule, "extension:any:ConversationID") << v.what;
  }
  // A rule's own spelling does not matter either.
  const RecordingMetadata md = parse_ok(with_session_extension(variants[0].ext));
  const auto m = find_conversation_id(rules({"extension:session:CONVERSATION_ID"}), &md, headers({}), kCallId);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->value, "conv-1");
  // A different name does not match: without it, the default rules fall back to the session id.
  const RecordingMetadata other = parse_ok(with_session_extension(
      R"(<extensiondata><gc:conversationIdx xmlns:gc="urn:g">conv-1</gc:conversationIdx></extensiondata>)"));
  const auto fb = find_conversation_id(rules(kDefaultRules), &other, headers({}), kCallId);
  ASSERT_TRUE(fb.has_value());
  EXPECT_EQ(fb->rule, "metadata:session_id");
  EXPECT_EQ(fb->value, "c2Vzc2lvbi0x");
}

TEST(ConversationId, SessionScopeComesBeforeParticipantScopeInTheAnyRule) {
  // A participant's extension names another conversation (e.g. a consult); the session's wins
  // although the participant comes first in the document.
  const std::string xml = R"(<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <participant participant_id="cA=="><nameID aor="sip:a@example.com"/>
    <extensiondata><gc:conversationId xmlns:gc="urn:g">consult-conv</gc:conversationId></extensiondata>
  </participant>
  <session session_id="c2Vzc2lvbi0x">
    <extensiondata><gc:conversationId xmlns:gc="urn:g">main-conv</gc:conversationId></extensiondata>
  </session>
</recording>)";
  const RecordingMetadata md = parse_ok(xml);
  const auto m = find_conversation_id(rules(kDefaultRules), &md, headers({}), kCallId);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->value, "main-conv");
}

TEST(ConversationId, RegexOnCallIdUsesGroupOneOrWholeMatch) {
  const auto grp = rules({"regex:call-id:^([0-9a-f]+)@"});
  auto m = find_conversation_id(grp, nullptr, headers({}), kCallId);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->value, "a84b4c76e66710");
  EXPECT_EQ(m->rule, "regex:call-id:^([0-9a-f]+)@");

  m = find_conversation_id(rules({"regex:call-id:pc[0-9]+"}), nullptr, headers({}), kCallId);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->value, "pc33");

  EXPECT_FALSE(find_conversation_id(rules({"regex:call-id:^nomatch"}), nullptr, headers({}), kCallId));
  // A pattern may contain ':' (only the first two separate the rule).
  m = find_conversation_id(rules({"regex:call-id:x:(\\d+)"}), nullptr, headers({}), "x:123");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->value, "123");
}

TEST(ConversationId, RegexOnSessionIdAndSessionIdFallback) {
  const RecordingMetadata md = genesys();
  auto m = find_conversation_id(rules({"regex:session-id:^([A-Za-z0-9]{6})"}), &md, headers({}), kCallId);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->value, "T3Vk3b");
  m = find_conversation_id(rules({"metadata:session_id", "call-id"}), &md, headers({}), kCallId);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->value, "T3Vk3bQ4R7mJcC9rW0fQzA==");
  EXPECT_EQ(m->rule, "metadata:session_id");
  m = find_conversation_id(rules({"metadata:session_id", "call-id"}), nullptr, headers({}), kCallId);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->rule, "call-id");
}

TEST(ConversationId, FirstMatchingRuleWinsInConfiguredOrder) {
  const RecordingMetadata md = genesys();
  const auto h = headers({{"X-Conv", "from-header"}});
  const auto a = find_conversation_id(rules({"header:X-Conv", "extension:any:GenesysConversationID", "call-id"}),
                                      &md, h, kCallId);
  EXPECT_EQ(a->rule, "header:X-Conv");
  EXPECT_EQ(a->value, "from-header");
  const auto b = find_conversation_id(rules({"extension:any:GenesysConversationID", "header:X-Conv", "call-id"}),
                                      &md, h, kCallId);
  EXPECT_EQ(b->rule, "extension:any:GenesysConversationID");
  const auto c = find_conversation_id(rules({"call-id", "header:X-Conv"}), &md, h, kCallId);
  EXPECT_EQ(c->rule, "call-id");
}

TEST(ConversationId, NothingMatches) {
  EXPECT_FALSE(find_conversation_id({}, nullptr, headers({}), kCallId));
  EXPECT_FALSE(find_conversation_id(rules({"call-id"}), nullptr, headers({}), ""));
  EXPECT_FALSE(find_conversation_id(rules({"regex:call-id:(a*)b"}), nullptr, headers({}), std::string(5000, 'a')));
}

}  // namespace
}  // namespace sgw::metadata
