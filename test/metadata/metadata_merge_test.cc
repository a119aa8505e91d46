#include "metadata/metadata_merge.h"

#include <string>

#include <gtest/gtest.h>

#include "metadata/metadata_json.h"
#include "metadata/metadata_parser.h"
#include "test_data.h"

namespace sgw::metadata {
namespace {

using testing::read_sample;

RecordingMetadata sample(const std::string& name) {
  auto r = parse(read_sample(name));
  EXPECT_TRUE(r.ok()) << name;
  return r.ok() ? std::move(r).value() : RecordingMetadata{};
}

RecordingMetadata doc(const std::string& xml) {
  auto r = parse(xml);
  EXPECT_TRUE(r.ok()) << xml;
  return r.ok() ? std::move(r).value() : RecordingMetadata{};
}

const Participant& participant(const RecordingMetadata& md, const std::string& id) {
  for (const auto& p : md.participants)
    if (p.id == id) return p;
  ADD_FAILURE() << "no participant " << id;
  static const Participant kNone;
  return kNone;
}

constexpr const char* kSession = "hN4m0cXWQq2Y9lDbq1r8Ug==";
constexpr const char* kCustomer = "Kq8d7Lw2TgWv5c0s3YhQ1A==";
constexpr const char* kAgent = "Vb3n9Pp4R0yK2sX6dE7wZg==";
constexpr const char* kSupervisor = "Sv2c8Hq0QeKx7aN1mB5tYw==";

TEST(MetadataMerge, ParticipantJoinsThenParticipantsLeave) {
  const RecordingMetadata base = sample("rfc7865_complete.xml");
  const RecordingMetadata join = sample("partial_join.xml");
  const RecordingMetadata leave = sample("partial_leave.xml");
  ASSERT_EQ(join.data_mode, DataMode::kPartial);

  const RecordingMetadata joined = merge(base, join);
  EXPECT_EQ(joined.data_mode, DataMode::kComplete);  // still describes the whole recording
  ASSERT_EQ(joined.participants.size(), 3u);
  const Participant& sup = participant(joined, kSupervisor);
  EXPECT_EQ(sup.display_name, "Sue Supervisor");
  ASSERT_EQ(sup.sessions.size(), 1u);
  EXPECT_EQ(sup.sessions[0].session_id, kSession);
  EXPECT_EQ(sup.sessions[0].associate_time, "2024-03-11T09:20:41Z");
  EXPECT_FALSE(sup.sessions[0].disassociate_time.has_value());
  EXPECT_EQ(sup.send, std::vector<std::string>{"8zc6e0lYTlWIINA6GR+3ag=="});
  EXPECT_EQ(sup.recv.size(), 2u);
  ASSERT_EQ(joined.streams.size(), 3u);
  EXPECT_EQ(joined.streams[2].label, "98");
  // Earlier participants are untouched.
  EXPECT_EQ(participant(joined, kCustomer).display_name, "Dana Customer");
  EXPECT_EQ(participant(joined, kCustomer).sessions[0].associate_time, "2024-03-11T09:14:02Z");

  const RecordingMetadata left = merge(joined, leave);
  ASSERT_EQ(left.participants.size(), 3u);  // leaving does not forget anyone
  const Participant& customer = participant(left, kCustomer);
  EXPECT_EQ(customer.sessions[0].associate_time, "2024-03-11T09:14:02Z");
  EXPECT_EQ(customer.sessions[0].disassociate_time, "2024-03-11T09:29:03Z");
  EXPECT_EQ(customer.aors[0], "sip:+14155550123@carrier.example.net");
  EXPECT_EQ(participant(left, kSupervisor).sessions[0].disassociate_time, "2024-03-11T09:31:15Z");
  EXPECT_FALSE(participant(left, kAgent).sessions[0].disassociate_time.has_value());
  ASSERT_EQ(left.sessions.size(), 1u);
  EXPECT_EQ(left.sessions[0].stop_time, "2024-03-11T09:31:15Z");
  EXPECT_EQ(left.sessions[0].start_time, "2024-03-11T09:14:02Z");
  EXPECT_EQ(left.sessions[0].sip_session_ids.size(), 1u);

  // Inputs are values: merge() changed neither.
  EXPECT_EQ(base.participants.size(), 2u);
  EXPECT_FALSE(joined.sessions[0].stop_time.has_value());
}

TEST(MetadataMerge, CompleteUpdateReplaces) {
  const RecordingMetadata base = sample("rfc7865_complete.xml");
  const RecordingMetadata update = sample("rfc7865_prefixed.xml");
  const RecordingMetadata out = merge(base, update);
  EXPECT_EQ(to_json(out), to_json(update));
  ASSERT_EQ(out.participants.size(), 2u);
  EXPECT_EQ(out.participants[0].id, "p-caller");
}

TEST(MetadataMerge, PartialUpdateOverwritesAndUnions) {
  const RecordingMetadata base = doc(
      "<recording xmlns='urn:ietf:params:xml:ns:recording:1'>"
      "<participant participant_id='p1'><nameID aor='sip:a@x'><name xml:lang='en'>Old</name></nameID>"
      "<ext xmlns='urn:e'>1</ext></participant>"
      "<participantstreamassoc participant_id='p1'><send>s1</send></participantstreamassoc></recording>");
  const RecordingMetadata update = doc(
      "<recording xmlns='urn:ietf:params:xml:ns:recording:1'><datamode>partial</datamode>"
      "<participant participant_id='p1'><nameID aor='sip:b@x'><name xml:lang='en'>New</name>"
      "<name xml:lang='de'>Neu</name></nameID><ext xmlns='urn:e'>1</ext></participant>"
      "<participantstreamassoc participant_id='p1'><send>s1</send><send>s2</send></participantstreamassoc>"
      "</recording>");
  const RecordingMetadata out = merge(base, update);
  ASSERT_EQ(out.participants.size(), 1u);
  const Participant& p = out.participants[0];
  EXPECT_EQ(p.aors, (std::vector<std::string>{"sip:a@x", "sip:b@x"}));
  EXPECT_EQ(p.display_name, "New");
  ASSERT_EQ(p.names.size(), 2u);
  EXPECT_EQ(p.names[0].name, "New");
  EXPECT_EQ(p.names[1].lang, "de");
  EXPECT_EQ(p.send, (std::vector<std::string>{"s1", "s2"}));
  EXPECT_EQ(p.extensions.size(), 1u);  // the identical extension is not duplicated
}

TEST(MetadataMerge, IdlessStreamsMatchByLabelAndCallDataIsTaken) {
  RecordingMetadata base = sample("avaya_camelcase.xml");
  const RecordingMetadata update = doc(
      "<recording xmlns='urn:ietf:params:xml:ns:recording:1'><datamode>partial</datamode>"
      "<stream stream_id='' session_id='other'><label>audio-agent</label></stream>"
      "<stream stream_id='' session_id='other'><label>audio-new</label></stream>"
      "<extensiondata><callData xmlns='urn:c'><callid>abc@h</callid></callData></extensiondata></recording>");
  const RecordingMetadata out = merge(base, update);
  ASSERT_EQ(out.streams.size(), 3u);
  EXPECT_EQ(out.streams[0].session_id, "other");
  EXPECT_EQ(out.streams[2].label, "audio-new");
  ASSERT_TRUE(out.call_data.has_value());
  EXPECT_EQ(out.call_data->call_id, "abc@h");
}

TEST(MetadataMerge, SelfMergeOfPartialIsIdempotent) {
  const RecordingMetadata join = sample("partial_join.xml");
  const RecordingMetadata out = merge(join, join);
  EXPECT_EQ(to_json(out), to_json(join));
}

}  // namespace
}  // namespace sgw::metadata
