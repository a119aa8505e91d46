// Partial keys, bodies, metadata and entry ids (storage/partials.h), and the
// node_lost spool event (recording/spool_events.h): parsers of what comes
// back from S3 or a disk, so hostile or damaged input must be refused.
#include "storage/partials.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>

#include "recording/spool_events.h"
#include "recording/spool_format.h"
#include "test_support/body_source.h"
#include "test_support/temp_dir.h"

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

PartialIndex sample_index() {
  PartialIndex ix;
  ix.node = "london";
  ix.region = "uk";
  ix.run = 42;
  ix.seq = 3;
  ix.unix_ms = 1'764'900'000'000;
  ix.segment_ms = 5000;
  ix.chunks = {{"r1", 0, 5}, {"r2", 100, 3}};
  ix.pending = {"r0", "r1", "r2"};
  return ix;
}

std::string json_body(std::string_view json) {
  return std::string(kPartialMagic) + std::string(json) + encode_partial_footer(json);
}

TEST(PartialBody, RoundTripsTheIndexEveryChunksBytesAndTheirCrcs) {
  const PartialIndex ix = sample_index();
  std::string body = encode_partial(ix, {"hello", "abc"});
  EXPECT_EQ(body.substr(0, 9), "SGWPART2\n");
  EXPECT_EQ(body.substr(9, 8), "helloabc");  // the chunks first, then the index
  auto d = decode_partial(body);
  ASSERT_TRUE(d) << d.error().message;
  PartialIndex want = ix;
  want.chunks[0].crc32c = recording::spool::crc32c({reinterpret_cast<const std::uint8_t*>("hello"), 5});
  want.chunks[1].crc32c = recording::spool::crc32c({reinterpret_cast<const std::uint8_t*>("abc"), 3});
  EXPECT_EQ(d->index, want);
  ASSERT_EQ(d->data.size(), 2u);
  EXPECT_EQ(d->data[0], "hello");
  EXPECT_EQ(d->data[1], "abc");
  EXPECT_EQ(d->damaged, (std::vector<bool>{false, false}));
  // A heartbeat: no chunks, only what is pending.
  PartialIndex beat = ix;
  beat.chunks.clear();
  auto b = decode_partial(encode_partial(beat, {}));
  ASSERT_TRUE(b);
  EXPECT_TRUE(b->data.empty());
  EXPECT_EQ(b->index.pending.size(), 3u);
}

TEST(PartialBody, ADamagedChunkIsMarkedAndTheOthersStayUsable) {
  std::string body = encode_partial(sample_index(), {"hello", "abc"});
  body[9 + 1] ^= 0x20;  // "hEllo"
  auto d = decode_partial(body);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->damaged, (std::vector<bool>{true, false}));
  EXPECT_TRUE(d->data[0].empty());  // never stitched
  EXPECT_EQ(d->data[1], "abc");
}

TEST(PartialBody, StreamedFromSpoolsItIsTheSameBodyAndARewindStartsAgain) {
  test_support::TempDir dir("sgw-partial-body");
  const std::string a = dir.path() + "/a.spool", b = dir.path() + "/b.spool";
  std::ofstream(a, std::ios::binary) << "0123456789hello";
  std::ofstream(b, std::ios::binary) << "xyzabc";
  PartialIndex ix = sample_index();
  ix.chunks = {{"r1", 10, 5}, {"r2", 3, 3}};
  const std::string want = encode_partial(ix, {"hello", "abc"});
  PartialBody body(ix, {::open(a.c_str(), O_RDONLY), ::open(b.c_str(), O_RDONLY)});
  EXPECT_EQ(body.size(), want.size());
  EXPECT_EQ(test_support::read_body(body, 4), want);
  // Spool files removed meanwhile (the call ended): the descriptors still read them.
  ::unlink(a.c_str());
  EXPECT_EQ(test_support::read_body(body, 1000), want);  // a read at 0 again: the same bytes, the same CRCs
  EXPECT_EQ(test_support::read_body(body, 1), want);
  char c;
  ASSERT_EQ(body.read(0, &c, 1), 1);
  EXPECT_EQ(body.read(5, &c, 1), -ESPIPE);  // never out of order
}

TEST(PartialBody, ASpoolShorterThanItsRangeFailsTheRead) {
  test_support::TempDir dir("sgw-partial-body");
  const std::string a = dir.path() + "/a.spool";
  std::ofstream(a, std::ios::binary) << "hel";
  PartialIndex ix = sample_index();
  ix.chunks = {{"r1", 0, 5}};
  PartialBody body(ix, {::open(a.c_str(), O_RDONLY)});
  EXPECT_EQ(test_support::read_body(body, 64), "read error " + std::to_string(-EIO));
}

TEST(PartialBody, DamagedOrHostileBodiesAreRefusedNamingTheProblem) {
  PartialIndex ix;
  ix.node = "n";
  ix.region = "r";
  ix.chunks = {{"r1", 0, 5}};
  const std::string good = encode_partial(ix, {"hello"});
  ASSERT_TRUE(decode_partial(good));
  std::string bad_index_crc = good;
  bad_index_crc[good.size() - kPartialFooterSize - 3] ^= 1;  // a byte of the index
  std::string long_len = good;
  long_len.replace(good.size() - kPartialFooterSize + 8, 12, "999999999999");
  for (const std::string& bad :
       {std::string(), std::string("SGWSPOOL..."), std::string("SGWPART1 2\n{}"), good.substr(0, good.size() - 1),
        good.substr(1), good + "x", "SGWPART2\nx" + good.substr(9), bad_index_crc, long_len,
        json_body("null"), json_body("{}"), json_body("not json"),
        json_body(R"({"node":"n","region":"r","run":1,"seq":1,"unix_ms":1,"segment_ms":1,"chunks":{},"pending":[]})"),
        json_body(R"({"node":"n","region":"r","run":1,"seq":1,"unix_ms":1,"segment_ms":1,"chunks":[{"recording_id":"","offset":0,"length":0,"crc32c":"00000000"}],"pending":[]})"),
        json_body(R"({"node":"n","region":"r","run":1,"seq":1,"unix_ms":1,"segment_ms":1,"chunks":[{"recording_id":"a","offset":0,"length":0}],"pending":[]})"),
        json_body(R"({"node":"n","region":"r","run":1,"seq":1,"unix_ms":1,"segment_ms":1,"chunks":[{"recording_id":"a","offset":0,"length":0,"crc32c":"0000000g"}],"pending":[]})"),
        json_body(R"({"node":"n","region":"r","run":1,"seq":1,"unix_ms":1,"segment_ms":1,"chunks":[],"pending":["../../etc/x"]})"),
        json_body(R"({"node":"n","region":"r","run":1,"seq":1,"unix_ms":1,"segment_ms":1,"chunks":[{"recording_id":"a/b","offset":0,"length":0,"crc32c":"00000000"}],"pending":[]})"),
        json_body(R"({"node":"n","region":"r","run":-1,"seq":1,"unix_ms":1,"segment_ms":1,"chunks":[],"pending":[]})"),
        json_body(R"({"node":"n","region":"r","run":1,"seq":1,"unix_ms":1,"segment_ms":1,"chunks":[],"pending":[7]})"),
        json_body(R"({"node":"n","region":"r","run":1,"seq":1,"unix_ms":1,"segment_ms":1,"chunks":[{"recording_id":"a","offset":0,"length":18446744073709551615,"crc32c":"00000000"}],"pending":[]})")}) {
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
  broken["node"] = "";
  EXPECT_FALSE(PartialInfo::from_metadata(broken));
  broken = m;
  broken.erase("run");
  EXPECT_FALSE(PartialInfo::from_metadata(broken));
}

TEST(PartialEntryId, RoundTripsAndRefusesOtherIds) {
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
