#include "metadata/metadata_parser.h"

#include <string>

#include <gtest/gtest.h>
#include <pugixml.hpp>

#include "test_data.h"

namespace sgw::metadata {
namespace {

using testing::read_sample;

RecordingMetadata parse_ok(const std::string& xml) {
  auto r = parse(xml);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().code + ": " + r.error().message);
  return r.ok() ? std::move(r).value() : RecordingMetadata{};
}

RecordingMetadata parse_sample(const std::string& name) {
  const std::string xml = read_sample(name);
  EXPECT_FALSE(xml.empty()) << name;
  return parse_ok(xml);
}

const Participant* find_participant(const RecordingMetadata& md, const std::string& id) {
  for (const auto& p : md.participants)
    if (p.id == id) return &p;
  return nullptr;
}

bool has_field(const Extension& e, const std::string& name, const std::string& value) {
  for (const auto& f : e.fields)
    if (f.name == name && f.value == value) return true;
  return false;
}

bool has_warning(const RecordingMetadata& md, const std::string& needle) {
  for (const auto& w : md.warnings)
    if (w.find(needle) != std::string::npos) return true;
  return false;
}

std::string error_code(const std::string& xml, const ParseLimits& limits = {}) {
  auto r = parse(xml, limits);
  return r.ok() ? std::string("ok") : r.error().code;
}

TEST(MetadataParser, Rfc7865DefaultNamespace) {
  const RecordingMetadata md = parse_sample("rfc7865_complete.xml");
  EXPECT_EQ(md.dialect, Dialect::kRfc7865);
  EXPECT_EQ(md.data_mode, DataMode::kComplete);
  EXPECT_TRUE(md.warnings.empty());

  ASSERT_EQ(md.groups.size(), 1u);
  EXPECT_EQ(md.groups[0].id, "Zx7k2mQ9SxWm3q1vT0aB4w==");
  EXPECT_EQ(md.groups[0].associate_time, "2024-03-11T09:14:02Z");
  ASSERT_EQ(md.groups[0].extensions.size(), 1u);
  EXPECT_NE(md.groups[0].extensions[0].xml.find("<supervisor>sip:supervisor@cc.example.com</supervisor>"),
            std::string::npos);

  ASSERT_EQ(md.sessions.size(), 1u);
  const Session& s = md.sessions[0];
  EXPECT_EQ(s.id, "hN4m0cXWQq2Y9lDbq1r8Ug==");
  ASSERT_EQ(s.sip_session_ids.size(), 1u);
  EXPECT_EQ(s.sip_session_ids[0], "a3c9e1f0b2d44e6f8a1b2c3d4e5f6a7b;remote=00000000000000000000000000000000");
  EXPECT_EQ(s.group_id, "Zx7k2mQ9SxWm3q1vT0aB4w==");
  EXPECT_EQ(s.start_time, "2024-03-11T09:14:02Z");
  EXPECT_FALSE(s.stop_time.has_value());
  EXPECT_EQ(s.associate_time, "2024-03-11T09:14:02Z");  // from <sessionrecordingassoc>
  ASSERT_EQ(s.extensions.size(), 1u);
  EXPECT_NE(s.extensions[0].xml.find("<skill level=\"3\">disputes</skill>"), std::string::npos);
  EXPECT_TRUE(has_field(s.extensions[0], "queue", "billing-en"));
  EXPECT_TRUE(has_field(s.extensions[0], "level", "3"));

  ASSERT_EQ(md.participants.size(), 2u);
  const Participant* customer = find_participant(md, "Kq8d7Lw2TgWv5c0s3YhQ1A==");
  ASSERT_NE(customer, nullptr);
  EXPECT_EQ(customer->aors, std::vector<std::string>{"sip:+14155550123@carrier.example.net"});
  EXPECT_EQ(customer->display_name, "Dana Customer");
  ASSERT_EQ(customer->sessions.size(), 1u);
  EXPECT_EQ(customer->sessions[0].session_id, "hN4m0cXWQq2Y9lDbq1r8Ug==");
  EXPECT_EQ(customer->sessions[0].associate_time, "2024-03-11T09:14:02Z");
  EXPECT_FALSE(customer->sessions[0].disassociate_time.has_value());
  EXPECT_EQ(customer->send, std::vector<std::string>{"UAAMm5GRQKSCMVvLyl4rFw=="});
  EXPECT_EQ(customer->recv, std::vector<std::string>{"i1Pz3to5hGk8fuXl+PbwCw=="});

  const Participant* agent = find_participant(md, "Vb3n9Pp4R0yK2sX6dE7wZg==");
  ASSERT_NE(agent, nullptr);
  EXPECT_EQ(agent->aors, (std::vector<std::string>{"sip:agent.1042@cc.example.com", "tel:+14155550999"}));
  ASSERT_EQ(agent->names.size(), 2u);
  EXPECT_EQ(agent->names[0].lang, "en");
  EXPECT_EQ(agent->names[0].name, "Alex Agent");
  EXPECT_EQ(agent->names[1].lang, "fr");
  EXPECT_EQ(agent->names[1].name, "Alexandre Agent");
  EXPECT_EQ(agent->display_name, "Alex Agent");
  EXPECT_EQ(agent->sessions[0].associate_time, "2024-03-11T09:14:05Z");

  ASSERT_EQ(md.streams.size(), 2u);
  EXPECT_EQ(md.streams[0].id, "UAAMm5GRQKSCMVvLyl4rFw==");
  EXPECT_EQ(md.streams[0].label, "96");
  EXPECT_EQ(md.streams[0].session_id, "hN4m0cXWQq2Y9lDbq1r8Ug==");
  EXPECT_EQ(md.streams[1].label, "97");
  EXPECT_FALSE(md.call_data.has_value());
}

TEST(MetadataParser, Rfc7865PrefixedNamespace) {
  const RecordingMetadata md = parse_sample("rfc7865_prefixed.xml");
  EXPECT_EQ(md.dialect, Dialect::kRfc7865);
  EXPECT_TRUE(md.warnings.empty());
  ASSERT_EQ(md.sessions.size(), 1u);
  EXPECT_EQ(md.sessions[0].id, "sess-4711");
  EXPECT_EQ(md.sessions[0].sip_session_ids[0],
            "b7d1c0de00a14e8b9f2e3d4c5b6a7980;remote=c0ffee00112233445566778899aabbcc");
  EXPECT_EQ(md.sessions[0].start_time, "2024-05-02T16:40:00.250Z");

  // The vendor element's prefix is declared on the root; the kept text re-declares it.
  ASSERT_EQ(md.sessions[0].extensions.size(), 1u);
  const std::string& ext = md.sessions[0].extensions[0].xml;
  EXPECT_EQ(ext, "<vnd:trunk xmlns:vnd=\"http://vendor.example.com/siprec/ext\">PSTN-EU-2</vnd:trunk>");
  pugi::xml_document reparsed;
  EXPECT_TRUE(reparsed.load_string(ext.c_str()));

  ASSERT_EQ(md.participants.size(), 2u);
  EXPECT_EQ(md.participants[0].id, "p-caller");
  EXPECT_EQ(md.participants[0].aors[0], "sip:+442071234567@pstn.example.net");
  EXPECT_EQ(md.participants[0].names[0].lang, "en-GB");
  EXPECT_EQ(md.participants[0].display_name, "Sam Caller");
  EXPECT_EQ(md.participants[0].send, std::vector<std::string>{"s-1"});
  EXPECT_EQ(md.participants[1].display_name, "Reception");
  EXPECT_EQ(md.participants[1].sessions[0].associate_time, "2024-05-02T16:40:01Z");
  ASSERT_EQ(md.streams.size(), 2u);
  EXPECT_EQ(md.streams[1].id, "s-2");
  EXPECT_EQ(md.streams[1].label, "2");
}

TEST(MetadataParser, AnyPrefixGivesTheSameModelAsDefaultNamespace) {
  const std::string plain =
      "<recording xmlns='urn:ietf:params:xml:ns:recording:1'><datamode>partial</datamode>"
      "<participant participant_id='p1'><nameID aor='sip:a@x'><name>A</name></nameID></participant>"
      "<stream stream_id='s1' session_id='c1'><label>7</label></stream></recording>";
  const std::string prefixed =
      "<x:recording xmlns:x='urn:ietf:params:xml:ns:recording:1'><x:datamode>partial</x:datamode>"
      "<x:participant participant_id='p1'><x:nameID aor='sip:a@x'><x:name>A</x:name></x:nameID></x:participant>"
      "<x:stream stream_id='s1' session_id='c1'><x:label>7</x:label></x:stream></x:recording>";
  for (const auto& xml : {plain, prefixed}) {
    const RecordingMetadata md = parse_ok(xml);
    EXPECT_EQ(md.data_mode, DataMode::kPartial);
    ASSERT_EQ(md.participants.size(), 1u);
    EXPECT_EQ(md.participants[0].aors[0], "sip:a@x");
    EXPECT_EQ(md.participants[0].display_name, "A");
    ASSERT_EQ(md.streams.size(), 1u);
    EXPECT_EQ(md.streams[0].label, "7");
    EXPECT_EQ(md.streams[0].session_id, "c1");
  }
}

TEST(MetadataParser, DraftAcmePacket) {
  const RecordingMetadata md = parse_sample("draft_acme.xml");
  EXPECT_EQ(md.dialect, Dialect::kDraft);
  ASSERT_EQ(md.sessions.size(), 1u);
  EXPECT_EQ(md.sessions[0].id, "YzVhZDk2YjItNGU4Zi00");
  EXPECT_EQ(md.sessions[0].associate_time, "2023-11-20T14:02:17");
  ASSERT_EQ(md.sessions[0].extensions.size(), 1u);
  EXPECT_TRUE(has_field(md.sessions[0].extensions[0], "ucid", "00FA080018A2F1655B4E0C"));
  EXPECT_NE(md.sessions[0].extensions[0].xml.find("<apkt:ucid>00FA080018A2F1655B4E0C</apkt:ucid>"),
            std::string::npos);

  ASSERT_EQ(md.participants.size(), 2u);
  const Participant& caller = md.participants[0];
  EXPECT_EQ(caller.id, "ZDk3NWQ2MjQtYmY1My00");
  EXPECT_EQ(caller.aors[0], "sip:+12125550100@192.0.2.10");
  EXPECT_EQ(caller.display_name, "+12125550100");
  EXPECT_EQ(caller.send, std::vector<std::string>{"MzFlOGI0ZDEtNjBk"});
  EXPECT_EQ(caller.recv, std::vector<std::string>{"NDQ1ZTk3YjAtOTk2"});
  ASSERT_EQ(caller.sessions.size(), 1u);
  EXPECT_EQ(caller.sessions[0].session_id, "YzVhZDk2YjItNGU4Zi00");
  EXPECT_EQ(caller.sessions[0].associate_time, "2023-11-20T14:02:17");
  ASSERT_EQ(caller.extensions.size(), 1u);
  EXPECT_TRUE(has_field(caller.extensions[0], "callingParty", "true"));
  EXPECT_TRUE(has_field(caller.extensions[0], "in-realm", "carrier"));
  EXPECT_EQ(md.participants[1].display_name, "Agent 6001");

  ASSERT_EQ(md.streams.size(), 2u);
  EXPECT_EQ(md.streams[0].id, "MzFlOGI0ZDEtNjBk");
  EXPECT_EQ(md.streams[0].label, "917");
  EXPECT_EQ(md.streams[0].mode, "separate");
  EXPECT_EQ(md.streams[0].session_id, "YzVhZDk2YjItNGU4Zi00");
}

TEST(MetadataParser, DraftAudioCodes) {
  const RecordingMetadata md = parse_sample("draft_audiocodes.xml");
  EXPECT_EQ(md.dialect, Dialect::kDraft);
  ASSERT_EQ(md.groups.size(), 1u);
  EXPECT_EQ(md.groups[0].id, "00000000-0000-0000-0000-00008a1b2c3d");
  ASSERT_EQ(md.sessions.size(), 1u);
  EXPECT_EQ(md.sessions[0].group_id, "00000000-0000-0000-0000-00008a1b2c3d");
  EXPECT_EQ(md.sessions[0].sip_session_ids[0], "7f1a2b3c4d5e6f708192a3b4c5d6e7f8");
  EXPECT_TRUE(has_field(md.sessions[0].extensions[0], "CallID", "1234567890abcdef@10.1.1.5"));
  ASSERT_EQ(md.participants.size(), 2u);
  EXPECT_EQ(md.participants[0].id, "+4930123456");
  EXPECT_EQ(md.participants[0].aors[0], "+4930123456@10.1.1.5");
  EXPECT_EQ(md.participants[1].display_name, "Helpdesk 3300");
  EXPECT_EQ(md.participants[1].sessions[0].associate_time, "2024-01-08T08:30:46Z");
  EXPECT_EQ(md.participants[1].send, std::vector<std::string>{"2"});
  ASSERT_EQ(md.streams.size(), 2u);
  EXPECT_EQ(md.streams[1].label, "2");
}

TEST(MetadataParser, LegacyRecordingMetadataWithBroadWorksExtension) {
  const RecordingMetadata md = parse_sample("legacy_broadworks.xml");
  EXPECT_EQ(md.dialect, Dialect::kLegacySiprec);
  EXPECT_EQ(md.data_mode, DataMode::kComplete);
  ASSERT_EQ(md.groups.size(), 1u);
  EXPECT_EQ(md.groups[0].associate_time, "2022-09-14T11:05:09.118Z");
  ASSERT_EQ(md.sessions.size(), 1u);
  const Session& s = md.sessions[0];
  EXPECT_EQ(s.id, "bw-sess-55102-1");
  EXPECT_EQ(s.group_id, "bw-grp-55102");
  EXPECT_EQ(s.start_time, "2022-09-14T11:05:09.118Z");
  ASSERT_EQ(s.extensions.size(), 1u);
  EXPECT_NE(s.extensions[0].xml.find("<bw:callID>callhalf-1988331:0</bw:callID>"), std::string::npos);
  EXPECT_TRUE(has_field(s.extensions[0], "userID", "jsmith@acme.example.com"));
  EXPECT_TRUE(has_field(s.extensions[0], "address", "tel:+13015550188"));

  // Participants and streams nested in <session> belong to it.
  ASSERT_EQ(md.participants.size(), 2u);
  EXPECT_EQ(md.participants[0].aors[0], "sip:jsmith@acme.example.com");
  EXPECT_EQ(md.participants[0].display_name, "John Smith");
  ASSERT_EQ(md.participants[0].sessions.size(), 1u);
  EXPECT_EQ(md.participants[0].sessions[0].session_id, "bw-sess-55102-1");
  EXPECT_EQ(md.participants[1].aors[0], "tel:+13015550188");
  EXPECT_EQ(md.participants[1].send, std::vector<std::string>{"bw-strm-2"});
  ASSERT_EQ(md.streams.size(), 2u);
  EXPECT_EQ(md.streams[0].session_id, "bw-sess-55102-1");
  EXPECT_EQ(md.streams[1].label, "2");
}

// BroadWorks (as captured from a BroadWorks AS): flat <recording_metadata>, participants name
// their stream as <send><id>...</id></send>, no <recv>, and the BroadWorks block is a root
// <extensiondata parent="SESSION-ID">.
TEST(MetadataParser, BroadWorksSendIdChildElements) {
  const RecordingMetadata md = parse_sample("broadworks_send_id.xml");
  EXPECT_EQ(md.dialect, Dialect::kLegacySiprec);
  EXPECT_TRUE(md.warnings.empty()) << md.warnings[0];
  ASSERT_EQ(md.sessions.size(), 1u);
  const std::string sid = "urn:uuid:e4a0c7b2-61d9-4f3a-b8e5-07c2d9f1a634";
  EXPECT_EQ(md.sessions[0].id, sid);
  EXPECT_EQ(md.sessions[0].group_id, "urn:uuid:9b7d2e41-0c6a-4f38-8e15-2d4a6b8c0f73");
  EXPECT_EQ(md.sessions[0].start_time, "2023-05-17T09:41:26-04:00");
  ASSERT_EQ(md.participants.size(), 2u);
  const Participant& caller = md.participants[0];
  const Participant& agent = md.participants[1];
  EXPECT_EQ(caller.aors, std::vector<std::string>{"sip:+13015550188@as.voip.example.net;user=phone"});
  EXPECT_EQ(caller.send, std::vector<std::string>{"urn:uuid:a61e3d9f-7b20-4c85-9e4a-1f0d6c2b8a57"});
  EXPECT_TRUE(caller.recv.empty());
  ASSERT_EQ(caller.sessions.size(), 1u);
  EXPECT_EQ(caller.sessions[0].session_id, sid);
  EXPECT_EQ(agent.aors, std::vector<std::string>{"sip:agent-2201@as.voip.example.net"});
  EXPECT_EQ(agent.send, std::vector<std::string>{"urn:uuid:5d92b0e8-4a1c-4e67-8f3b-c7e1a0d9b246"});
  // <id> is a stream reference, not participant extension data.
  EXPECT_TRUE(caller.extensions.empty());
  EXPECT_TRUE(agent.extensions.empty());
  ASSERT_EQ(md.streams.size(), 2u);
  EXPECT_EQ(md.streams[0].id, caller.send[0]);
  EXPECT_EQ(md.streams[0].label, "1");
  EXPECT_EQ(md.streams[1].id, agent.send[0]);
  EXPECT_EQ(md.streams[1].label, "2");
  EXPECT_EQ(md.streams[1].mode, "separate");
  // The parent= extension data sits on its session, verbatim and indexed.
  ASSERT_EQ(md.sessions[0].extensions.size(), 1u);
  EXPECT_TRUE(has_field(md.sessions[0].extensions[0], "callID", "callhalf-88213570:0"));
  EXPECT_TRUE(has_field(md.sessions[0].extensions[0], "callingPartyNumber", "sip:+13015550188@as.voip.example.net"));
  // <recording id=...> (requestor, type) is not modelled: kept at the root.
  ASSERT_EQ(md.extensions.size(), 1u);
  EXPECT_NE(md.extensions[0].xml.find("<requestor>SRC</requestor>"), std::string::npos);
}

// Webex Calling (BroadWorks-based): pretty-printed, <send>/<recv> with nested <id>, the same
// stream sent by a user's desk phone and Webex app, a conference participant sending two
// streams in one <send>, and an <associate-time> whose value is wrapped in a child element.
TEST(MetadataParser, WebexNestedIdsSeveralSendersAndSends) {
  const RecordingMetadata md = parse_sample("webex_send_id.xml");
  EXPECT_EQ(md.dialect, Dialect::kLegacySiprec);
  const std::string s1 = "urn:uuid:1f6d8b3a-7e02-4c95-b8a1-5d3e9f0c6b27";
  const std::string s2 = "urn:uuid:9a2c4e6f-0b7d-4f13-8e5a-2c6b8d0f4e91";
  ASSERT_EQ(md.participants.size(), 4u);
  EXPECT_EQ(md.participants[0].send, std::vector<std::string>{s1});
  EXPECT_EQ(md.participants[0].recv, std::vector<std::string>{s2});
  EXPECT_EQ(md.participants[1].send, std::vector<std::string>{s2});
  EXPECT_EQ(md.participants[1].recv, std::vector<std::string>{s1});
  EXPECT_EQ(md.participants[2].aors[0], "jordan.lee-webexapp@wxc.example.com");
  EXPECT_EQ(md.participants[2].send, std::vector<std::string>{s2});
  const Participant& bridge = md.participants[3];
  EXPECT_EQ(bridge.send, (std::vector<std::string>{s1, s2}));
  EXPECT_TRUE(bridge.recv.empty());
  ASSERT_EQ(bridge.sessions.size(), 1u);
  EXPECT_EQ(bridge.sessions[0].associate_time, "2024-02-08T15:03:10+00:00");
  EXPECT_EQ(md.participants[0].sessions[0].associate_time, "2024-02-08T15:02:44+00:00");
  for (const auto& p : md.participants) EXPECT_TRUE(p.extensions.empty()) << p.id;
  ASSERT_EQ(md.sessions.size(), 1u);
  ASSERT_EQ(md.sessions[0].extensions.size(), 1u);
  EXPECT_TRUE(has_field(md.sessions[0].extensions[0], "serviceProviderID", "WebexCallingUK"));
}

TEST(MetadataParser, StreamReferenceForms) {
  // Every form names the same streams: text, <id> children (any prefix or case), attributes,
  // whitespace-separated text; in participant and in participantstreamassoc, send and recv.
  const std::string xml = R"(<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <participant participant_id="p1"><send>s1</send><recv><id>s2</id></recv></participant>
  <participant participant_id="p2"><send><ID> s2 </ID></send><recv stream_id="s1"/></participant>
  <participant participant_id="p3"><send id="s3"/><recv>s1 s2</recv></participant>
  <participantstreamassoc participant_id="p4">
    <send><x:id xmlns:x="urn:x">s4</x:id><x:streamRef xmlns:x="urn:x">s5</x:streamRef></send>
    <recv><id>s1</id><id>s2</id><other>ignored</other></recv>
  </participantstreamassoc>
</recording>)";
  const RecordingMetadata md = parse_ok(xml);
  ASSERT_EQ(md.participants.size(), 4u);
  EXPECT_EQ(md.participants[0].send, std::vector<std::string>{"s1"});
  EXPECT_EQ(md.participants[0].recv, std::vector<std::string>{"s2"});
  EXPECT_EQ(md.participants[1].send, std::vector<std::string>{"s2"});
  EXPECT_EQ(md.participants[1].recv, std::vector<std::string>{"s1"});
  EXPECT_EQ(md.participants[2].send, std::vector<std::string>{"s3"});
  EXPECT_EQ(md.participants[2].recv, (std::vector<std::string>{"s1", "s2"}));
  EXPECT_EQ(md.participants[3].send, (std::vector<std::string>{"s4", "s5"}));
  EXPECT_EQ(md.participants[3].recv, (std::vector<std::string>{"s1", "s2"}));
}

TEST(MetadataParser, ParticipantTimeVariants) {
  // draft-ram / early Acme Packet <start-time>/<end-time> inside a participant are its
  // association times; a time wrapped in a child element is read from the child.
  const std::string xml = R"(<recording xmlns="urn:ietf:params:xml:ns:recording">
  <datamode>complete</datamode>
  <session id="S"/>
  <participant id="a" session="S"><start-time>2011-06-27T17:03:57</start-time><end-time>2011-06-27T17:05:00</end-time></participant>
  <participant id="b" session="S"><associate-time><time>2011-06-27T17:04:00</time></associate-time></participant>
  <participantsessionassoc participant_id="c" session_id="S"><disassociate-time> <t>2011-06-27T17:06:00</t> </disassociate-time></participantsessionassoc>
</recording>)";
  const RecordingMetadata md = parse_ok(xml);
  ASSERT_EQ(md.participants.size(), 3u);
  ASSERT_EQ(md.participants[0].sessions.size(), 1u);
  EXPECT_EQ(md.participants[0].sessions[0].associate_time, "2011-06-27T17:03:57");
  EXPECT_EQ(md.participants[0].sessions[0].disassociate_time, "2011-06-27T17:05:00");
  EXPECT_EQ(md.participants[1].sessions[0].associate_time, "2011-06-27T17:04:00");
  EXPECT_EQ(md.participants[2].sessions[0].disassociate_time, "2011-06-27T17:06:00");
}

TEST(MetadataParser, RootExtensionDataWithParentAttachesToThatEntity) {
  const std::string xml = R"(<recording_metadata xmlns="urn:ietf:params:xml:ns:siprec">
  <dataMode>complete</dataMode>
  <extensiondata parent="P1"><v:a xmlns:v="urn:v">on-participant</v:a></extensiondata>
  <group id="G"/>
  <session id="S" group="G"/>
  <participant id="P1" session="S"><send><id>T</id></send></participant>
  <stream id="T" session="S"><label>1</label></stream>
  <extensiondata parent="G"><v:a xmlns:v="urn:v">on-group</v:a></extensiondata>
  <extensiondata parent="T"><v:a xmlns:v="urn:v">on-stream</v:a></extensiondata>
  <extensiondata parent="S"><v:a xmlns:v="urn:v">on-session</v:a></extensiondata>
  <extensiondata parent="nowhere"><v:a xmlns:v="urn:v">at-root</v:a></extensiondata>
</recording_metadata>)";
  const RecordingMetadata md = parse_ok(xml);
  ASSERT_EQ(md.participants.size(), 1u);
  ASSERT_EQ(md.participants[0].extensions.size(), 1u);
  EXPECT_TRUE(has_field(md.participants[0].extensions[0], "a", "on-participant"));
  ASSERT_EQ(md.groups[0].extensions.size(), 1u);
  EXPECT_TRUE(has_field(md.groups[0].extensions[0], "a", "on-group"));
  ASSERT_EQ(md.streams[0].extensions.size(), 1u);
  EXPECT_TRUE(has_field(md.streams[0].extensions[0], "a", "on-stream"));
  ASSERT_EQ(md.sessions[0].extensions.size(), 1u);
  EXPECT_TRUE(has_field(md.sessions[0].extensions[0], "a", "on-session"));
  ASSERT_EQ(md.extensions.size(), 1u);
  EXPECT_TRUE(has_field(md.extensions[0], "a", "at-root"));
}

TEST(MetadataParser, SonusRibbonCallData) {
  const RecordingMetadata md = parse_sample("sonus_calldata.xml");
  EXPECT_EQ(md.dialect, Dialect::kRfc7865);
  ASSERT_TRUE(md.call_data.has_value());
  EXPECT_EQ(md.call_data->gcid, "2149673051");
  EXPECT_EQ(md.call_data->call_id, "4f2a8c1e-91d3-4b77-a0e2-5d6c7b8a9f01@203.0.113.7");
  EXPECT_EQ(md.call_data->from, "\"Pat Q\" <sip:+33142685300@203.0.113.7>;tag=gK0a1b2c3d");
  EXPECT_EQ(md.call_data->to, "<sip:+33900000100@sbc.example.fr>;tag=9f8e7d6c");
  ASSERT_EQ(md.call_data->other_fields.size(), 1u);
  EXPECT_EQ(md.call_data->other_fields[0].name, "X-Customer-Ref");
  EXPECT_EQ(md.call_data->other_fields[0].value, "CR-88123");
  // The block also stays in the group's extension data, verbatim.
  ASSERT_EQ(md.groups.size(), 1u);
  ASSERT_EQ(md.groups[0].extensions.size(), 1u);
  EXPECT_NE(md.groups[0].extensions[0].xml.find("<gcid>2149673051</gcid>"), std::string::npos);
  ASSERT_EQ(md.participants.size(), 2u);
  EXPECT_EQ(md.participants[0].names[0].lang, "fr");
  EXPECT_EQ(md.participants[1].aors[0], "sip:+33900000100@sbc.example.fr");
  EXPECT_TRUE(md.participants[1].display_name.empty());
}

TEST(MetadataParser, AvayaCamelCaseEmptyStreamIdsAndStringLabels) {
  const RecordingMetadata md = parse_sample("avaya_camelcase.xml");
  EXPECT_EQ(md.dialect, Dialect::kRfc7865);
  EXPECT_EQ(md.data_mode, DataMode::kComplete);
  ASSERT_EQ(md.streams.size(), 2u);  // two id-less streams are not folded into one
  EXPECT_EQ(md.streams[0].id, "");
  EXPECT_EQ(md.streams[0].label, "audio-agent");
  EXPECT_EQ(md.streams[1].label, "18446744073709551617");
  EXPECT_TRUE(has_warning(md, "stream with empty id (label 'audio-agent')"));
  const Participant* p = find_participant(md, "ext1001");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->display_name, "John Doe Ext 1001");
  ASSERT_EQ(p->sessions.size(), 1u);
  EXPECT_EQ(p->sessions[0].associate_time, "2024-02-29T23:59:58Z");  // <participantSessionAssoc><associateTime>
}

TEST(MetadataParser, DataModePartialAndUnknown) {
  EXPECT_EQ(parse_ok("<recording xmlns='urn:ietf:params:xml:ns:recording:1'><datamode> Partial </datamode></recording>")
                .data_mode,
            DataMode::kPartial);
  const RecordingMetadata md =
      parse_ok("<recording xmlns='urn:ietf:params:xml:ns:recording:1'><datamode>bogus</datamode></recording>");
  EXPECT_EQ(md.data_mode, DataMode::kComplete);
  EXPECT_TRUE(has_warning(md, "unknown datamode 'bogus'"));
}

TEST(MetadataParser, MissingNamespaceIsToleratedWithWarning) {
  const RecordingMetadata md = parse_ok("<recording><session session_id='c1'/></recording>");
  EXPECT_EQ(md.dialect, Dialect::kRfc7865);
  EXPECT_TRUE(has_warning(md, "unrecognised metadata namespace"));
  const RecordingMetadata draft = parse_ok("<recording><session id='c1'/></recording>");
  EXPECT_EQ(draft.dialect, Dialect::kDraft);
  EXPECT_EQ(draft.sessions[0].id, "c1");
}

TEST(MetadataParser, ForeignNamespaceElementsAreExtensionsNotModel) {
  const RecordingMetadata md = parse_ok(
      "<recording xmlns='urn:ietf:params:xml:ns:recording:1'>"
      "<o:participant xmlns:o='urn:example:other' participant_id='evil'>x</o:participant>"
      "<participant participant_id='p1'/></recording>");
  ASSERT_EQ(md.participants.size(), 1u);
  EXPECT_EQ(md.participants[0].id, "p1");
  ASSERT_EQ(md.extensions.size(), 1u);
  EXPECT_EQ(md.extensions[0].xml, "<o:participant xmlns:o=\"urn:example:other\" participant_id=\"evil\">x</o:participant>");
}

TEST(MetadataParser, AssociationForUndeclaredParticipantCreatesEntry) {
  const RecordingMetadata md = parse_ok(
      "<recording xmlns='urn:ietf:params:xml:ns:recording:1'><datamode>partial</datamode>"
      "<participantsessionassoc participant_id='p9' session_id='c1'>"
      "<disassociate-time>2024-01-01T00:00:09Z</disassociate-time></participantsessionassoc></recording>");
  ASSERT_EQ(md.participants.size(), 1u);
  EXPECT_EQ(md.participants[0].id, "p9");
  EXPECT_EQ(md.participants[0].sessions[0].disassociate_time, "2024-01-01T00:00:09Z");
}

TEST(MetadataParser, AssociationsWithoutIdsAreIgnoredWithWarning) {
  const RecordingMetadata md = parse_ok(
      "<recording xmlns='urn:ietf:params:xml:ns:recording:1'>"
      "<participantsessionassoc session_id='c1'/><participantstreamassoc><send>s</send></participantstreamassoc>"
      "<sessionrecordingassoc/></recording>");
  EXPECT_TRUE(md.participants.empty());
  EXPECT_TRUE(md.sessions.empty());
  EXPECT_EQ(md.warnings.size(), 3u);
}

TEST(MetadataParser, InvalidUtf8IsReplaced) {
  const RecordingMetadata md = parse_ok(
      "<recording xmlns='urn:ietf:params:xml:ns:recording:1'><participant participant_id='p1'>"
      "<nameID aor='sip:a@x'><name>Ren\xC3\xA9 \xFF</name></nameID></participant></recording>");
  EXPECT_EQ(md.participants[0].display_name, "Ren\xC3\xA9 \xEF\xBF\xBD");
}

TEST(MetadataParser, MalformedXmlIsAnError) {
  auto r = parse(read_sample("malformed.xml"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "metadata.xml");
  EXPECT_NE(r.error().message.find("offset"), std::string::npos);
  EXPECT_EQ(error_code(""), "metadata.xml");
  EXPECT_EQ(error_code("   "), "metadata.xml");
  EXPECT_EQ(error_code("<recording"), "metadata.xml");
  EXPECT_EQ(error_code(std::string("<recording>\0</recording>", 23)), "metadata.xml");
}

TEST(MetadataParser, OtherRootIsNotARecording) {
  EXPECT_EQ(error_code(read_sample("not_recording.xml")), "metadata.not_recording");
  EXPECT_EQ(error_code("<recordings/>"), "metadata.not_recording");
}

TEST(MetadataParser, TooLargeIsRejectedBeforeParsing) {
  const std::string xml = read_sample("rfc7865_complete.xml");
  ParseLimits limits;
  limits.max_bytes = xml.size() - 1;
  EXPECT_EQ(error_code(xml, limits), "metadata.too_large");
  limits.max_bytes = xml.size();
  EXPECT_EQ(error_code(xml, limits), "ok");
  // The size check comes first: even garbage over the limit is "too large".
  EXPECT_EQ(error_code(std::string(300 * 1024, '<')), "metadata.too_large");
}

TEST(MetadataParser, TooDeepIsRejected) {
  auto nested = [](int depth) {
    std::string xml = "<recording xmlns='urn:ietf:params:xml:ns:recording:1'><session session_id='c'>";
    for (int i = 0; i < depth; ++i) xml += "<e>";
    for (int i = 0; i < depth; ++i) xml += "</e>";
    return xml + "</session></recording>";
  };
  EXPECT_EQ(error_code(nested(30)), "ok");       // 32 levels: recording, session, 30 x <e>
  EXPECT_EQ(error_code(nested(31)), "metadata.depth");
  EXPECT_EQ(error_code(nested(30000)), "metadata.depth");  // 210 KB, no recursion to overflow
}

TEST(MetadataParser, TooManyAttributesIsRejected) {
  auto with_attributes = [](int n) {
    std::string xml = "<recording xmlns='urn:ietf:params:xml:ns:recording:1'><session";
    for (int i = 0; i < n; ++i) xml += " a" + std::to_string(i) + "='v'";
    return xml + "/></recording>";
  };
  EXPECT_EQ(error_code(with_attributes(64)), "ok");
  EXPECT_EQ(error_code(with_attributes(65)), "metadata.attributes");
}

TEST(MetadataParser, ManyRepeatedIdsAreDeduplicated) {
  std::string xml = "<recording xmlns='urn:ietf:params:xml:ns:recording:1'><participantstreamassoc participant_id='p'>";
  for (int i = 0; i < 10000; ++i) xml += "<send>s" + std::to_string(i % 3) + "</send>";
  xml += "</participantstreamassoc></recording>";
  const RecordingMetadata md = parse_ok(xml);
  ASSERT_EQ(md.participants.size(), 1u);
  EXPECT_EQ(md.participants[0].send, (std::vector<std::string>{"s0", "s1", "s2"}));
}

TEST(MetadataParser, BillionLaughsIsRefusedNotExpanded) {
  auto r = parse(read_sample("billion_laughs.xml"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "metadata.doctype");
  EXPECT_EQ(error_code("<!doctype recording><recording/>"), "metadata.doctype");
  // Without a DTD an entity reference is never expanded either: it stays literal text.
  const RecordingMetadata md =
      parse_ok("<recording xmlns='urn:ietf:params:xml:ns:recording:1'><session session_id='&lol9;'/></recording>");
  ASSERT_EQ(md.sessions.size(), 1u);
  EXPECT_EQ(md.sessions[0].id, "&lol9;");
}

TEST(MetadataParser, PredefinedEntitiesAndCdataAreDecoded) {
  const RecordingMetadata md = parse_ok(
      "<recording xmlns='urn:ietf:params:xml:ns:recording:1'><participant participant_id='a&amp;b'>"
      "<nameID aor='sip:x@y'><name><![CDATA[O'Brien & Sons]]></name></nameID></participant></recording>");
  EXPECT_EQ(md.participants[0].id, "a&b");
  EXPECT_EQ(md.participants[0].display_name, "O'Brien & Sons");
}

TEST(MetadataParser, DialectNames) {
  EXPECT_EQ(dialect_name(Dialect::kRfc7865), "rfc7865");
  EXPECT_EQ(dialect_name(Dialect::kDraft), "draft");
  EXPECT_EQ(dialect_name(Dialect::kLegacySiprec), "siprec-legacy");
  EXPECT_EQ(dialect_name(Dialect::kCiscoHeaders), "cisco-headers");
}

}  // namespace
}  // namespace sgw::metadata
