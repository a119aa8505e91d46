// Partial keys, bodies, metadata and file names (storage/partials.h), and the
// node_lost spool event (recording/spool_events.h): parsers of what comes
// back from S3 or a disk, so hostile or damaged input must be refused.
#include "storage/partials.h"

#include <gtest/gtest.h>

#include "recording/spool_events.h"

namespace sgw::storage {
namespace {

TEST(PartialKey, RoundTripsAndRefusesEverythingElse) {
  EXPECT_EQ(partial_key("london", "gw-1", 1764900000123, 7), "london/partial/gw-1/1764900000123/00000007");
  auto k = parse_partial_key("london/partial/gw-1/1764900000123/00000007");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->region, "london");
  EXPECT_EQ(k->node, "gw-1");
  EXPECT_EQ(k->run, 1764900000123u);
  EXPECT_EQ(k->seq, 7u);
  EXPECT_FALSE(k->lease);
  auto l = parse_partial_key("london/partial/gw-1/5/lease");
  ASSERT_TRUE(l);
  EXPECT_TRUE(l->lease);
  EXPECT_FALSE(l->seq);
  auto a = parse_partial_key("london/partial/gw-1/5/adopted");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->adopted);
  EXPECT_EQ(run_prefix("london", "gw-1", 5), "london/partial/gw-1/5/");
  for (const char* bad : {"", "london/partial/gw/5/", "london/partial//5/00000001", "london/other/gw/5/00000001",
                          "london/partial/gw/5/0000001", "london/partial/gw/5/0000000x", "london/partial/gw/x/00000001",
                          "london/partial/gw/5/00000001/x", "a/b/london/partial/gw/5/00000001",
                          "/partial/gw/5/00000001", "london/partial/gw/-5/00000001", "london/partial/rec/00000001",
                          "london/partial/gw/5/leases"})
    EXPECT_FALSE(parse_partial_key(bad)) << bad;
}

TEST(PartialBody, RoundTripsTheIndexAndEveryChunksBytes) {
  PartialIndex ix;
  ix.node = "london";
  ix.region = "uk";
  ix.run = 42;
  ix.seq = 3;
  ix.unix_ms = 1'764'900'000'000;
  ix.segment_ms = 5000;
  ix.chunks = {{"r1", 0, 5}, {"r2", 100, 3}};
  ix.pending = {"r0", "r1", "r2"};
  std::string body = encode_partial_head(ix) + "hello" + "abc";
  auto d = decode_partial(body);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->index, ix);
  ASSERT_EQ(d->data.size(), 2u);
  EXPECT_EQ(d->data[0], "hello");
  EXPECT_EQ(d->data[1], "abc");
  // A heartbeat: no chunks, only what is pending.
  PartialIndex beat = ix;
  beat.chunks.clear();
  auto b = decode_partial(encode_partial_head(beat));
  ASSERT_TRUE(b);
  EXPECT_TRUE(b->data.empty());
  EXPECT_EQ(b->index.pending.size(), 3u);
}

TEST(PartialBody, DamagedOrHostileBodiesAreRefusedNamingTheProblem) {
  PartialIndex ix;
  ix.node = "n";
  ix.region = "r";
  ix.chunks = {{"r1", 0, 5}};
  const std::string good = encode_partial_head(ix) + "hello";
  ASSERT_TRUE(decode_partial(good));
  const std::string head = encode_partial_head(ix);
  auto wrap = [](std::string_view json) { return "SGWPART1 " + std::to_string(json.size()) + "\n" + std::string(json); };
  for (const std::string& bad :
       {std::string(), std::string("SGWSPOOL..."), good.substr(0, good.size() - 1), good + "x",
        std::string("SGWPART1 99999\n{}"), std::string("SGWPART1 2\n{}"), std::string("SGWPART1 x\n{}"),
        std::string("SGWPART1 4\nnull"), std::string("SGWPART1 123456789012345\n"),
        "SGWPART1 " + std::to_string(head.size()) + "\n" + head,  // index is not JSON
        wrap(R"({"node":"n","region":"r","run":1,"seq":1,"unix_ms":1,"segment_ms":1,"chunks":{},"pending":[]})"),
        wrap(R"({"node":"n","region":"r","run":1,"seq":1,"unix_ms":1,"segment_ms":1,"chunks":[{"recording_id":"","offset":0,"length":0}],"pending":[]})"),
        wrap(R"({"node":"n","region":"r","run":1,"seq":1,"unix_ms":1,"segment_ms":1,"chunks":[],"pending":["../../etc/x"]})"),
        wrap(R"({"node":"n","region":"r","run":1,"seq":1,"unix_ms":1,"segment_ms":1,"chunks":[{"recording_id":"a/b","offset":0,"length":0}],"pending":[]})"),
        wrap(R"({"node":"n","region":"r","run":-1,"seq":1,"unix_ms":1,"segment_ms":1,"chunks":[],"pending":[]})"),
        wrap(R"({"node":"n","region":"r","run":1,"seq":1,"unix_ms":1,"segment_ms":1,"chunks":[],"pending":[7]})"),
        wrap(R"({"node":"n","region":"r","run":1,"seq":1,"unix_ms":1,"segment_ms":1,"chunks":[{"recording_id":"a","offset":0,"length":18446744073709551615}],"pending":[]})")}) {
    auto d = decode_partial(bad);
    EXPECT_FALSE(d) << bad;
    if (!d) {
      EXPECT_EQ(d.error().code, "partial.malformed");
    }
  }
}

TEST(PartialInfo, MetadataRoundTripAndMalformedFieldsAreRefused) {
  PartialInfo p;
  p.node = "london";
  p.region = "uk";
  p.run = 42;
  p.seq = 3;
  p.length = 99;
  p.sha256 = std::string(64, 'a');
  p.segment_ms = 5000;
  auto m = p.to_metadata();
  auto back = PartialInfo::from_metadata(m);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->run, 42u);
  EXPECT_EQ(back->length, 99u);
  auto broken = m;
  broken["length"] = "12x";
  EXPECT_FALSE(PartialInfo::from_metadata(broken));
  broken = m;
  broken["sha256"] = "abc";
  EXPECT_FALSE(PartialInfo::from_metadata(broken));
  broken = m;
  broken.erase("run");
  EXPECT_FALSE(PartialInfo::from_metadata(broken));
}

TEST(PartialFileName, RoundTripsAndRefusesOtherNames) {
  auto n = parse_partial_file_name(partial_file_name(1764900000123, 12));
  ASSERT_TRUE(n);
  EXPECT_EQ(n->run, 1764900000123u);
  EXPECT_EQ(n->seq, 12u);
  for (const char* bad : {"x.part", ".1.part", "1.part", "a.1.part", "1.2.3.part", "1.2.spool"})
    EXPECT_FALSE(parse_partial_file_name(bad)) << bad;
  auto e = parse_partial_entry_id(partial_entry_id(7, 12));
  ASSERT_TRUE(e);
  EXPECT_EQ(partial_entry_id(7, 12), "partial.7.00000012");
  EXPECT_EQ(e->run, 7u);
  EXPECT_EQ(e->seq, 12u);
  for (const char* bad : {"partial.7", "partials-delete.7", "rec-1", "partial.x.1"})
    EXPECT_FALSE(parse_partial_entry_id(bad)) << bad;
}

TEST(PartialsDeleteEntry, ListsTheKeysInOrderUnderTheRunsOwnId) {
  auto e = partials_delete_entry(42, {"uk/partial/n/42/00000000", "uk/partial/n/42/00000001"});
  EXPECT_EQ(e.recording_id, "partials-delete.42");
  EXPECT_EQ(e.sink, kPartialsDeleteSink);
  ASSERT_EQ(e.objects.size(), 2u);
  EXPECT_EQ(e.objects[0].key, "uk/partial/n/42/00000000");
  EXPECT_EQ(e.objects[1].key, "uk/partial/n/42/00000001");
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
