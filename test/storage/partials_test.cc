// Partial keys, metadata and file names (storage/partials.h), and the
// node_lost spool event (recording/spool_events.h): parsers of what comes
// back from S3 or a disk, so hostile or damaged input must be refused.
#include "storage/partials.h"

#include <gtest/gtest.h>

#include "recording/spool_events.h"

namespace sgw::storage {
namespace {

TEST(PartialKey, RoundTripsAndRefusesEverythingElse) {
  EXPECT_EQ(partial_key("london", "rec-1.a", 7), "london/partial/rec-1.a/00000007");
  auto k = parse_partial_key("london/partial/rec-1.a/00000007");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->region, "london");
  EXPECT_EQ(k->recording_id, "rec-1.a");
  EXPECT_EQ(k->seq, 7u);
  EXPECT_FALSE(k->lease);
  auto l = parse_partial_key("london/partial/rec-1/lease");
  ASSERT_TRUE(l);
  EXPECT_TRUE(l->lease);
  for (const char* bad : {"", "london/partial/rec/", "london/partial//00000001", "london/other/rec/00000001",
                          "london/partial/rec/0000001", "london/partial/rec/0000000x",
                          "london/partial/rec/00000001/x", "a/b/london/partial/rec/00000001",
                          "/partial/rec/00000001", "london/partial/rec/-0000001"})
    EXPECT_FALSE(parse_partial_key(bad)) << bad;
}

TEST(PartialInfo, MetadataRoundTripAndMalformedFieldsAreRefused) {
  PartialInfo p;
  p.node = "london";
  p.region = "london";
  p.recording_id = "r1";
  p.conversation_id = "c1";
  p.seq = 3;
  p.offset = 1234;
  p.length = 99;
  p.sha256 = std::string(64, 'a');
  p.start_unix_us = 1'700'000'000'000'000;
  p.segment_ms = 5000;
  auto m = p.to_metadata();
  auto back = PartialInfo::from_metadata(m);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->offset, 1234u);
  EXPECT_EQ(back->length, 99u);
  EXPECT_EQ(back->start_unix_us, p.start_unix_us);
  auto broken = m;
  broken["length"] = "12x";
  EXPECT_FALSE(PartialInfo::from_metadata(broken));
  broken = m;
  broken["sha256"] = "abc";
  EXPECT_FALSE(PartialInfo::from_metadata(broken));
  broken = m;
  broken.erase("seq");
  EXPECT_FALSE(PartialInfo::from_metadata(broken));
}

TEST(PartialFileName, RoundTripsWithDotsInTheRecordingId) {
  auto n = parse_partial_file_name(partial_file_name("a.b.c", 12, 345));
  ASSERT_TRUE(n);
  EXPECT_EQ(n->recording_id, "a.b.c");
  EXPECT_EQ(n->seq, 12u);
  EXPECT_EQ(n->offset, 345u);
  for (const char* bad : {"x.part", ".1.2.part", "a.1.part", "a.x.2.part", "a.1.2.spool"})
    EXPECT_FALSE(parse_partial_file_name(bad)) << bad;
}

TEST(PartialsDeleteEntry, NamesThePrefixUnderItsOwnRecordingId) {
  DeliveryEntry s3;
  s3.recording_id = "r1";
  s3.sink = "s3";
  s3.partials_prefix = partials_prefix("london", "r1");
  auto e = partials_delete_entry(s3);
  EXPECT_EQ(e.recording_id, "r1.partials");
  EXPECT_EQ(e.sink, kPartialsDeleteSink);
  ASSERT_EQ(e.objects.size(), 1u);
  EXPECT_EQ(e.objects[0].key, "london/partial/r1/");
}

TEST(S3Time, ParsesListTimes) {
  EXPECT_EQ(parse_s3_time_ms("1970-01-01T00:00:01.250Z"), 1250);
  EXPECT_EQ(parse_s3_time_ms("2026-12-04T06:20:01Z"), 1796365201000);
  EXPECT_FALSE(parse_s3_time_ms("yesterday"));
}

TEST(NodeLost, RoundTripsAndIgnoresOtherEvents) {
  recording::NodeLost n{"london", "eu", "frankfurt", 123, 4, 1, "x: corrupt"};
  auto back = recording::decode_node_lost(n.encode());
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, n);
  EXPECT_FALSE(recording::decode_node_lost(R"({"event":"spool_fault"})"));
  EXPECT_FALSE(recording::decode_node_lost("not json"));
}

}  // namespace
}  // namespace sgw::storage
