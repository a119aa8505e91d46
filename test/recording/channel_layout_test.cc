#include "recording/channel_layout.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "metadata/cisco_headers.h"
#include "metadata/metadata_parser.h"

namespace sgw::recording {
namespace {

metadata::RecordingMetadata parse_xml(const std::string& xml) {
  auto r = metadata::parse(xml);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : metadata::RecordingMetadata{};
}

// A sample from test/metadata/data (SGW_TEST_DATA_DIR is test/recording/data).
std::string metadata_sample(const std::string& name) {
  const auto dir = std::filesystem::path(SGW_TEST_DATA_DIR).parent_path().parent_path() / "metadata" / "data";
  std::ifstream in(dir / name, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  EXPECT_FALSE(ss.str().empty()) << name;
  return ss.str();
}

std::vector<RecordedStream> streams_of(const std::vector<std::string>& labels) {
  std::vector<RecordedStream> out;
  for (std::size_t i = 0; i < labels.size(); ++i) out.push_back({i, labels[i]});
  return out;
}

// Oracle/Acme Packet SBC, draft dialect: apkt:callingParty marks the calling party.
const char* kAcme = R"(<?xml version='1.0' encoding='UTF-8'?>
<recording xmlns='urn:ietf:params:xml:ns:recording'>
  <datamode>complete</datamode>
  <session id="YzVhZDk2YjItNGU4Zi00"><associate-time>2023-11-20T14:02:17</associate-time></session>
  <participant id="AGENT" session="YzVhZDk2YjItNGU4Zi00">
    <nameID aor="sip:6001@198.51.100.20"><name>Agent 6001</name></nameID>
    <send>NDQ1</send><recv>MzFl</recv>
    <extensiondata xmlns:apkt="http://acmepacket.com/siprec/extensiondata">
      <apkt:callingParty>false</apkt:callingParty>
    </extensiondata>
  </participant>
  <participant id="CUSTOMER" session="YzVhZDk2YjItNGU4Zi00">
    <nameID aor="sip:+12125550100@192.0.2.10"><name>+12125550100</name></nameID>
    <send>MzFl</send><recv>NDQ1</recv>
    <extensiondata xmlns:apkt="http://acmepacket.com/siprec/extensiondata">
      <apkt:callingParty>true</apkt:callingParty>
    </extensiondata>
  </participant>
  <stream id="MzFl" session="YzVhZDk2YjItNGU4Zi00"><label>917</label></stream>
  <stream id="NDQ1" session="YzVhZDk2YjItNGU4Zi00"><label>918</label></stream>
</recording>)";

// Genesys: participant extension with a purpose attribute.
const char* kGenesys = R"(<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <session session_id="S1"/>
  <participant participant_id="PA">
    <nameID aor="sip:agent-77@edge.example.com"><name xml:lang="en">Morgan Agent</name></nameID>
    <extensiondata><genesys:GenesysParticipant xmlns:genesys="urn:genesys:cloud:recording" purpose="agent"/></extensiondata>
  </participant>
  <participant participant_id="PC">
    <nameID aor="sip:+16175550134@edge.example.com"><name xml:lang="en">+16175550134</name></nameID>
    <extensiondata><genesys:GenesysParticipant xmlns:genesys="urn:genesys:cloud:recording" purpose="customer"/></extensiondata>
  </participant>
  <stream stream_id="st1" session_id="S1"><label>1</label></stream>
  <stream stream_id="st2" session_id="S1"><label>2</label></stream>
  <participantsessionassoc participant_id="PA" session_id="S1"><associate-time>2024-06-03T13:37:12.480Z</associate-time></participantsessionassoc>
  <participantstreamassoc participant_id="PA"><send>st1</send><recv>st2</recv></participantstreamassoc>
  <participantstreamassoc participant_id="PC"><send>st2</send><recv>st1</recv></participantstreamassoc>
</recording>)";

// AudioCodes, draft dialect: participants are the From then the To user; no role field.
const char* kAudioCodes = R"(<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns='urn:ietf:params:xml:ns:recording'>
  <datamode>complete</datamode>
  <session id="0000-ab12"><start-time>2024-01-08T08:30:45Z</start-time></session>
  <participant id="+4930123456" session="0000-ab12">
    <nameID aor="+4930123456@10.1.1.5"><name>+4930123456</name></nameID>
    <send>1</send><recv>2</recv>
  </participant>
  <participant id="3300" session="0000-ab12">
    <nameID aor="3300@10.2.2.8"><name>Helpdesk 3300</name></nameID>
    <send>2</send><recv>1</recv>
  </participant>
  <stream id="1" session="0000-ab12"><label>1</label></stream>
  <stream id="2" session="0000-ab12"><label>2</label></stream>
</recording>)";

// Ribbon/Sonus: callData From/To; participants listed To first to prove order is not used.
const char* kSonus = R"(<?xml version="1.0" encoding="UTF-8"?>
<rs:recording xmlns:rs="urn:ietf:params:xml:ns:recording:1">
  <rs:datamode>complete</rs:datamode>
  <rs:group group_id="G1">
    <rs:extensiondata>
      <callData xmlns="http://sonusnet.com/siprec/calldata">
        <callid>4f2a@203.0.113.7</callid>
        <from>"Pat Q" &lt;sip:+33142685300@203.0.113.7&gt;;tag=gK0a</from>
        <to>&lt;sip:+33900000100@sbc.example.fr&gt;;tag=9f8e</to>
      </callData>
    </rs:extensiondata>
  </rs:group>
  <rs:session session_id="S"><rs:group-ref>G1</rs:group-ref></rs:session>
  <rs:participant participant_id="p2"><rs:nameID aor="sip:+33900000100@sbc.example.fr"/></rs:participant>
  <rs:participant participant_id="p1"><rs:nameID aor="sip:+33142685300@203.0.113.7"><rs:name>Pat Q</rs:name></rs:nameID></rs:participant>
  <rs:stream stream_id="st1" session_id="S"><rs:label>1</rs:label></rs:stream>
  <rs:stream stream_id="st2" session_id="S"><rs:label>2</rs:label></rs:stream>
  <rs:participantstreamassoc participant_id="p1"><rs:send>st1</rs:send></rs:participantstreamassoc>
  <rs:participantstreamassoc participant_id="p2"><rs:send>st2</rs:send></rs:participantstreamassoc>
</rs:recording>)";

// Plain RFC 7865 with three participants (a conference): only order is known.
const char* kThreeParty = R"(<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <session session_id="S"/>
  <participant participant_id="a"><nameID aor="sip:alice@example.com"><name>Alice</name></nameID></participant>
  <participant participant_id="b"><nameID aor="sip:bob@cc.example.com"/></participant>
  <participant participant_id="c"><nameID aor="sip:carol@cc.example.com"/></participant>
  <participant participant_id="silent"><nameID aor="sip:supervisor@cc.example.com"/></participant>
  <stream stream_id="x" session_id="S"><label>a1</label></stream>
  <stream stream_id="y" session_id="S"><label>b1</label></stream>
  <stream stream_id="z" session_id="S"><label>c1</label></stream>
  <participantstreamassoc participant_id="a"><send>x</send></participantstreamassoc>
  <participantstreamassoc participant_id="b"><send>y</send></participantstreamassoc>
  <participantstreamassoc participant_id="c"><send>z</send></participantstreamassoc>
</recording>)";

TEST(RoleRules, DefaultsParse) {
  auto r = parse_role_rules(default_role_rules());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->size(), default_role_rules().size());
  EXPECT_EQ(default_layout_config().rules.size(), default_role_rules().size());
}

TEST(RoleRules, RejectsBadRulesQuotingThem) {
  for (const char* bad : {"extension:callingParty=true", "extension:=x:caller", "extension:a:b=c:caller",
                          "extension:a=b:boss", "role-field:", "aor-regex:([=agent", "aor-regex:x=nobody",
                          "name-regex:=agent", "first-ssrc", ""}) {
    auto r = parse_role_rules({bad});
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, "layout.rule");
    EXPECT_NE(r.error().message.find("'" + std::string(bad) + "'"), std::string::npos) << r.error().message;
  }
  auto ok = parse_role_rules({"aor-regex:^sip:[0-9]{4}@=agent", "extension:x=a:b:customer", " mline-order "});
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ((*ok)[1].value, "a:b");
  EXPECT_EQ((*ok)[1].role, "caller");
  EXPECT_EQ((*ok)[2].text, "mline-order");
}

TEST(LayoutConfig, ParsesModes) {
  EXPECT_EQ(*parse_caller_channel("right"), CallerChannel::kRight);
  EXPECT_EQ(*parse_multi_stream_mode("mono-files"), MultiStreamMode::kMonoFiles);
  EXPECT_EQ(parse_caller_channel("center").error().code, "layout.config");
  EXPECT_FALSE(parse_multi_stream_mode("stereo").ok());
  EXPECT_EQ(caller_channel_name(CallerChannel::kLeft), "left");
  EXPECT_EQ(multi_stream_mode_name(MultiStreamMode::kMultichannel), "multichannel");
}

TEST(ChannelLayout, AcmeCallingPartyGoesLeftWhateverTheMlineOrder) {
  const auto md = parse_xml(kAcme);
  // The SDP lists the agent's stream (918) first.
  const auto layout = build_channel_layout(&md, streams_of({"918", "917"}), default_layout_config());
  ASSERT_EQ(layout.files.size(), 1u);
  const auto& ch = layout.files[0].channels;
  ASSERT_EQ(ch.size(), 2u);
  EXPECT_EQ(layout.files[0].name_suffix, "");
  EXPECT_EQ(ch[0].stream_index, 1u);
  EXPECT_EQ(ch[0].label, "917");
  ASSERT_TRUE(ch[0].participant);
  EXPECT_EQ(ch[0].participant->id, "CUSTOMER");
  EXPECT_EQ(ch[0].participant->aor, "sip:+12125550100@192.0.2.10");
  EXPECT_EQ(ch[0].role, "caller");
  EXPECT_EQ(ch[0].role_rule, "extension:callingParty=true:caller");
  EXPECT_EQ(ch[1].stream_index, 0u);
  ASSERT_TRUE(ch[1].participant);
  EXPECT_EQ(ch[1].participant->id, "AGENT");
  EXPECT_EQ(ch[1].participant->name, "Agent 6001");
  EXPECT_EQ(ch[1].role, "agent");
  EXPECT_EQ(ch[1].role_rule, "extension:callingParty=false:agent");
  ASSERT_EQ(layout.participants.size(), 2u);
  EXPECT_EQ(layout.participants[0].id, "AGENT");  // document order
  EXPECT_EQ(layout.participants[0].role, "agent");
}

TEST(ChannelLayout, CallerChannelRightSwapsSides) {
  const auto md = parse_xml(kAcme);
  auto cfg = default_layout_config();
  cfg.caller_channel = CallerChannel::kRight;
  const auto layout = build_channel_layout(&md, streams_of({"918", "917"}), cfg);
  ASSERT_EQ(layout.files.size(), 1u);
  EXPECT_EQ(layout.files[0].channels[0].label, "918");
  EXPECT_EQ(layout.files[0].channels[1].label, "917");
  EXPECT_EQ(layout.files[0].channels[1].role, "caller");
}

TEST(ChannelLayout, AcmeWithOnlyTheCallingPartyFlagCompletesByOrder) {
  std::string xml = kAcme;
  xml.erase(xml.find("<apkt:callingParty>false</apkt:callingParty>"), 44);
  const auto md = parse_xml(xml);
  const auto layout = build_channel_layout(&md, streams_of({"917", "918"}), default_layout_config());
  const auto& ch = layout.files[0].channels;
  EXPECT_EQ(ch[0].participant->id, "CUSTOMER");
  EXPECT_EQ(ch[1].participant->id, "AGENT");
  EXPECT_EQ(ch[1].role, "agent");
  EXPECT_EQ(ch[1].role_rule, "metadata-order");
}

TEST(ChannelLayout, GenesysPurpose) {
  const auto md = parse_xml(kGenesys);
  const auto layout = build_channel_layout(&md, streams_of({"1", "2"}), default_layout_config());
  const auto& ch = layout.files[0].channels;
  EXPECT_EQ(ch[0].label, "2");
  EXPECT_EQ(ch[0].participant->id, "PC");
  EXPECT_EQ(ch[0].role, "caller");
  EXPECT_EQ(ch[0].role_rule, "role-field:purpose");
  EXPECT_EQ(ch[1].participant->id, "PA");
  EXPECT_EQ(ch[1].participant->name, "Morgan Agent");
  EXPECT_EQ(ch[1].role, "agent");
}

TEST(ChannelLayout, AudioCodesFallsBackToMetadataOrder) {
  const auto md = parse_xml(kAudioCodes);
  const auto layout = build_channel_layout(&md, streams_of({"2", "1"}), default_layout_config());
  const auto& ch = layout.files[0].channels;
  EXPECT_EQ(ch[0].label, "1");
  EXPECT_EQ(ch[0].participant->id, "+4930123456");
  EXPECT_EQ(ch[0].role, "caller");
  EXPECT_EQ(ch[0].role_rule, "metadata-order");
  EXPECT_EQ(ch[1].participant->id, "3300");
  EXPECT_EQ(ch[1].role, "agent");
}

TEST(ChannelLayout, AorRegexRuleBeatsOrder) {
  const auto md = parse_xml(kAudioCodes);
  auto cfg = default_layout_config();
  auto rules = parse_role_rules({"aor-regex:^[0-9]{4}@=agent", "metadata-order"});
  ASSERT_TRUE(rules.ok());
  cfg.rules = *rules;
  // Reverse the document order so that order alone would choose wrongly.
  auto md2 = md;
  std::swap(md2.participants[0], md2.participants[1]);
  const auto layout = build_channel_layout(&md2, streams_of({"1", "2"}), cfg);
  const auto& ch = layout.files[0].channels;
  EXPECT_EQ(ch[1].participant->id, "3300");
  EXPECT_EQ(ch[1].role_rule, "aor-regex:^[0-9]{4}@=agent");
  EXPECT_EQ(ch[0].participant->id, "+4930123456");
  EXPECT_EQ(ch[0].role, "caller");
  EXPECT_EQ(ch[0].role_rule, "metadata-order");
}

TEST(ChannelLayout, RibbonCallDataFromIsTheCaller) {
  const auto md = parse_xml(kSonus);
  ASSERT_TRUE(md.call_data);
  const auto layout = build_channel_layout(&md, streams_of({"2", "1"}), default_layout_config());
  const auto& ch = layout.files[0].channels;
  EXPECT_EQ(ch[0].participant->id, "p1");
  EXPECT_EQ(ch[0].role, "caller");
  EXPECT_EQ(ch[0].role_rule, "calldata-from");
  EXPECT_EQ(ch[1].participant->id, "p2");
  EXPECT_EQ(ch[1].role, "agent");
  EXPECT_EQ(ch[1].role_rule, "calldata-from");
}

TEST(ChannelLayout, CiscoHeadersUseOrder) {
  const auto md = metadata::from_cisco_headers(
      {"sip:708090@10.42.30.5;media-index=\"0\"", "sip:10000@10.42.30.32;media-index=\"1\""}, "call@x");
  const auto layout = build_channel_layout(&md, streams_of({"0", "1"}), default_layout_config());
  ASSERT_EQ(layout.files.size(), 1u);
  const auto& ch = layout.files[0].channels;
  ASSERT_TRUE(ch[0].participant);
  EXPECT_EQ(ch[0].participant->aor, "sip:708090@10.42.30.5");
  EXPECT_EQ(ch[0].role, "caller");
  EXPECT_EQ(ch[1].participant->aor, "sip:10000@10.42.30.32");
}

TEST(ChannelLayout, NoMetadataUsesMlineOrder) {
  const auto layout = build_channel_layout(nullptr, streams_of({"b", "a"}), default_layout_config());
  ASSERT_EQ(layout.files.size(), 1u);
  const auto& ch = layout.files[0].channels;
  EXPECT_EQ(ch[0].label, "b");
  EXPECT_FALSE(ch[0].participant);
  EXPECT_EQ(ch[0].role, "caller");
  EXPECT_EQ(ch[0].role_rule, "mline-order");
  EXPECT_EQ(ch[1].label, "a");
  EXPECT_EQ(ch[1].role, "agent");
  EXPECT_TRUE(layout.participants.empty());

  LayoutConfig no_rules;  // nothing configured: roles unknown, still m-line order
  const auto l2 = build_channel_layout(nullptr, streams_of({"b", "a"}), no_rules);
  EXPECT_EQ(l2.files[0].channels[0].label, "b");
  EXPECT_EQ(l2.files[0].channels[0].role, "unknown");
  EXPECT_EQ(l2.files[0].channels[0].role_rule, "");
}

TEST(ChannelLayout, NoStreamsNoFiles) {
  const auto md = parse_xml(kGenesys);
  const auto layout = build_channel_layout(&md, {}, default_layout_config());
  EXPECT_TRUE(layout.files.empty());
  EXPECT_EQ(layout.participants.size(), 2u);
}

TEST(ChannelLayout, OneStreamIsOneMonoFile) {
  const auto md = parse_xml(kGenesys);
  for (auto mode : {MultiStreamMode::kMultichannel, MultiStreamMode::kMonoFiles}) {
    auto cfg = default_layout_config();
    cfg.multi_stream_mode = mode;
    const auto layout = build_channel_layout(&md, streams_of({"2"}), cfg);
    ASSERT_EQ(layout.files.size(), 1u);
    EXPECT_EQ(layout.files[0].name_suffix, "");
    ASSERT_EQ(layout.files[0].channels.size(), 1u);
    EXPECT_EQ(layout.files[0].channels[0].participant->id, "PC");
    EXPECT_EQ(layout.files[0].channels[0].role, "caller");
    // The agent has no recorded stream but is still listed, with its role.
    ASSERT_EQ(layout.participants.size(), 2u);
    EXPECT_EQ(layout.participants[0].id, "PA");
    EXPECT_EQ(layout.participants[0].role, "agent");
  }
}

TEST(ChannelLayout, ThreeStreamsMultichannelInMlineOrder) {
  const auto md = parse_xml(kThreeParty);
  const auto layout = build_channel_layout(&md, streams_of({"c1", "a1", "b1"}), default_layout_config());
  ASSERT_EQ(layout.files.size(), 1u);
  const auto& ch = layout.files[0].channels;
  ASSERT_EQ(ch.size(), 3u);
  EXPECT_EQ(ch[0].label, "c1");
  EXPECT_EQ(ch[1].label, "a1");
  EXPECT_EQ(ch[2].label, "b1");
  EXPECT_EQ(ch[1].participant->id, "a");
  EXPECT_EQ(ch[1].role, "caller");  // first in the metadata
  EXPECT_EQ(ch[2].role, "agent");
  EXPECT_EQ(ch[0].role, "unknown");
  EXPECT_EQ(ch[0].participant->id, "c");
  // The supervisor sends nothing: listed, role unknown.
  ASSERT_EQ(layout.participants.size(), 4u);
  EXPECT_EQ(layout.participants[3].id, "silent");
  EXPECT_EQ(layout.participants[3].role, "unknown");
  EXPECT_EQ(layout.participants[3].role_rule, "");
}

TEST(ChannelLayout, ThreeStreamsMonoFiles) {
  const auto md = parse_xml(kThreeParty);
  auto cfg = default_layout_config();
  cfg.multi_stream_mode = MultiStreamMode::kMonoFiles;
  auto streams = streams_of({"a1", "b1", "c/1"});
  const auto layout = build_channel_layout(&md, streams, cfg);
  ASSERT_EQ(layout.files.size(), 3u);
  EXPECT_EQ(layout.files[0].name_suffix, "-0-a1");
  EXPECT_EQ(layout.files[1].name_suffix, "-1-b1");
  EXPECT_EQ(layout.files[2].name_suffix, "-2-c_1");  // sanitised
  for (const auto& f : layout.files) EXPECT_EQ(f.channels.size(), 1u);
  EXPECT_EQ(layout.files[0].channels[0].role, "caller");
  EXPECT_FALSE(layout.files[2].channels[0].participant);  // label c/1 matches no metadata stream
}

TEST(ChannelLayout, StreamWithoutParticipant) {
  // Genesys metadata, but the SDP has a third, unannounced stream and the agent's stream is absent.
  const auto md = parse_xml(kGenesys);
  const auto layout = build_channel_layout(&md, streams_of({"9", "2"}), default_layout_config());
  const auto& ch = layout.files[0].channels;
  ASSERT_EQ(ch.size(), 2u);
  EXPECT_EQ(ch[0].label, "2");  // the customer's stream goes left
  EXPECT_EQ(ch[0].role, "caller");
  EXPECT_EQ(ch[1].label, "9");
  EXPECT_FALSE(ch[1].participant);
  EXPECT_EQ(ch[1].role, "agent");  // the only other channel, by m-line order
  EXPECT_EQ(ch[1].role_rule, "mline-order");
}

TEST(ChannelLayout, AgentKnownOnlyPutsTheOtherStreamOnTheCallerSide) {
  auto md = parse_xml(kGenesys);
  md.participants.pop_back();  // only the agent (sends st1, label 1) remains
  LayoutConfig cfg;
  cfg.rules = *parse_role_rules({"role-field:purpose"});
  const auto layout = build_channel_layout(&md, streams_of({"1", "2"}), cfg);
  const auto& ch = layout.files[0].channels;
  EXPECT_EQ(ch[0].label, "2");
  EXPECT_EQ(ch[0].role, "unknown");
  EXPECT_EQ(ch[1].label, "1");
  EXPECT_EQ(ch[1].role, "agent");
}

TEST(ChannelLayout, EmptyStreamIdsAndLabelReferences) {
  // Avaya-style stream_id="" (the label identifies the stream), and a send that names a label.
  const char* xml = R"(<recording xmlns="urn:ietf:params:xml:ns:recording:1">
    <datamode>complete</datamode><session session_id="S"/>
    <participant participant_id="x"><nameID aor="sip:x@a"/></participant>
    <participant participant_id="y"><nameID aor="sip:y@a"/></participant>
    <stream stream_id="" session_id="S"><label>10</label></stream>
    <participantstreamassoc participant_id="x"><send>10</send></participantstreamassoc>
    <participantstreamassoc participant_id="y"><send>20</send></participantstreamassoc>
  </recording>)";
  const auto md = parse_xml(xml);
  const auto layout = build_channel_layout(&md, streams_of({"20", "10"}), default_layout_config());
  const auto& ch = layout.files[0].channels;
  ASSERT_TRUE(ch[0].participant);
  ASSERT_TRUE(ch[1].participant);
  EXPECT_EQ(ch[0].participant->id, "x");
  EXPECT_EQ(ch[0].label, "10");
  EXPECT_EQ(ch[1].participant->id, "y");
}

// BroadWorks names each participant's stream as <send><id>urn:uuid:...</id></send>: the
// mapping follows those ids to the stream labels, whatever the m-line order.
TEST(ChannelLayout, BroadWorksSendIdMapsEachParticipantToItsStream) {
  const auto md = parse_xml(metadata_sample("broadworks_send_id.xml"));
  const auto layout = build_channel_layout(&md, streams_of({"2", "1"}), default_layout_config());
  ASSERT_EQ(layout.files.size(), 1u);
  const auto& ch = layout.files[0].channels;
  ASSERT_EQ(ch.size(), 2u);
  ASSERT_TRUE(ch[0].participant.has_value());
  ASSERT_TRUE(ch[1].participant.has_value());
  EXPECT_EQ(ch[0].label, "1");
  EXPECT_EQ(ch[0].stream_index, 1u);
  EXPECT_EQ(ch[0].participant->aor, "sip:+13015550188@as.voip.example.net;user=phone");
  EXPECT_EQ(ch[0].role, "caller");
  EXPECT_EQ(ch[0].role_rule, "metadata-order");
  EXPECT_EQ(ch[1].label, "2");
  EXPECT_EQ(ch[1].stream_index, 0u);
  EXPECT_EQ(ch[1].participant->aor, "sip:agent-2201@as.voip.example.net");
  EXPECT_EQ(ch[1].role, "agent");
}

TEST(ChannelLayout, WebexSeveralSendersOfOneStream) {
  const auto md = parse_xml(metadata_sample("webex_send_id.xml"));
  const auto layout = build_channel_layout(&md, streams_of({"1", "2"}), default_layout_config());
  ASSERT_EQ(layout.files.size(), 1u);
  const auto& ch = layout.files[0].channels;
  ASSERT_EQ(ch.size(), 2u);
  ASSERT_TRUE(ch[0].participant.has_value());
  ASSERT_TRUE(ch[1].participant.has_value());
  EXPECT_EQ(ch[0].participant->aor, "sip:+442079460321@wxc.example.com");
  EXPECT_EQ(ch[0].role, "caller");
  // Desk phone, Webex app and a conference bridge all send stream 2: the first agent wins.
  EXPECT_EQ(ch[1].participant->aor, "sip:jordan.lee@wxc.example.com");
  EXPECT_EQ(ch[1].role, "agent");
  ASSERT_EQ(layout.participants.size(), 4u);
}

TEST(ChannelLayout, ConflictingRolesKeepMlineOrder) {
  auto md = parse_xml(kGenesys);
  LayoutConfig cfg;
  cfg.rules = *parse_role_rules({"aor-regex:edge\\.example\\.com=agent"});
  const auto layout = build_channel_layout(&md, streams_of({"1", "2"}), cfg);
  const auto& ch = layout.files[0].channels;
  EXPECT_EQ(ch[0].label, "1");
  EXPECT_EQ(ch[0].role, "agent");
  EXPECT_EQ(ch[1].role, "agent");
}

}  // namespace
}  // namespace sgw::recording
