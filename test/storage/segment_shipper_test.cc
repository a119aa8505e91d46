// SegmentShipper (storage/segment_shipper.h) against a real DeliveryQueue in a
// temporary folder (no sink runs: entries wait in the queue, where the test
// reads them): one partial per cut holding every open spool's new bytes, the
// pending list, heartbeats, and the clean-up of partials nobody needs.
#include "storage/segment_shipper.h"

#include <gtest/gtest.h>

#include <fstream>

#include "storage/partials.h"
#include "test_support/body_source.h"
#include "test_support/temp_dir.h"

namespace sgw::storage {
namespace {

void append(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out << bytes;
}

struct Fixture {
  test_support::TempDir dir{"sgw-shipper"};
  std::unique_ptr<DeliveryQueue> queue;
  std::shared_ptr<PartialBodies> bodies = std::make_shared<PartialBodies>();
  std::vector<std::string> open;
  std::unique_ptr<SegmentShipper> shipper;
  std::int64_t now = 1'764'900'000'000;

  Fixture() {
    DeliveryQueueOptions o;
    o.dir = dir.path() + "/q";
    o.now_ms = [this] { return now; };
    o.ephemeral_sinks = {std::string(kPartialSink), std::string(kPartialsDeleteSink)};
    queue = std::move(DeliveryQueue::open(o)).value();
    SegmentShipperOptions so;
    so.bodies = bodies;
    so.max_in_flight = 100;
    so.node = "london";
    so.region = "uk";
    so.run = 77;
    so.open_spools = [this] { return open; };
    so.queue = queue.get();
    so.now_ms = [this] { return now; };
    shipper = std::make_unique<SegmentShipper>(so);
  }
  std::string spool(const std::string& id) const { return dir.path() + "/" + id + ".spool"; }
  // The queued entries of a sink, by recording id.
  std::map<std::string, DeliveryEntry> entries(std::string_view sink) const {
    std::map<std::string, DeliveryEntry> out;
    for (auto& e : queue->snapshot())
      if (e.sink == sink) out[e.recording_id] = e;
    return out;
  }
  DecodedPartial partial(std::uint64_t seq, std::string* body) const {
    auto e = entries(kPartialSink).at(partial_entry_id(77, seq));
    EXPECT_EQ(e.objects.at(0).key, partial_key("uk", "london", 77, seq));
    // The body as the upload streams it (the sink does not run here).
    auto held = bodies->find(partial_entry_id(77, seq));
    EXPECT_TRUE(held);
    *body = test_support::read_body(*held);
    auto d = decode_partial(*body);
    EXPECT_TRUE(d) << d.error().message;
    return std::move(d).value();
  }
};

TEST(SegmentShipper, OnePartialPerCutHoldsEveryOpenSpoolsNewBytes) {
  Fixture f;
  append(f.spool("A"), "A-header+0s");
  append(f.spool("B"), "B-header");
  f.open = {f.spool("A"), f.spool("B")};
  ASSERT_TRUE(f.shipper->run_once());
  std::string body;
  auto p0 = f.partial(0, &body);
  EXPECT_EQ(p0.index.node, "london");
  EXPECT_EQ(p0.index.run, 77u);
  ASSERT_EQ(p0.index.chunks.size(), 2u);
  EXPECT_EQ(p0.index.chunks[0], (PartialChunk{"A", 0, 11, p0.index.chunks[0].crc32c}));
  EXPECT_EQ(p0.data[0], "A-header+0s");
  EXPECT_EQ(p0.data[1], "B-header");
  EXPECT_EQ(p0.index.pending, (std::vector<std::string>{"A", "B"}));

  // A grows, B closes (its call ended): only A's new bytes; B stays pending until delivered.
  append(f.spool("A"), "+5s");
  f.open = {f.spool("A")};
  ASSERT_TRUE(f.shipper->run_once());
  auto p1 = f.partial(1, &body);
  ASSERT_EQ(p1.index.chunks.size(), 1u);
  EXPECT_EQ(p1.index.chunks[0], (PartialChunk{"A", 11, 3, p1.index.chunks[0].crc32c}));
  EXPECT_EQ(p1.data[0], "+5s");
  EXPECT_EQ(p1.index.pending, (std::vector<std::string>{"A", "B"}));

  // Nothing new, B delivered: a heartbeat that says only A is at stake.
  f.shipper->recording_delivered("B");
  ASSERT_TRUE(f.shipper->run_once());
  auto p2 = f.partial(2, &body);
  EXPECT_TRUE(p2.index.chunks.empty());
  EXPECT_EQ(p2.index.pending, (std::vector<std::string>{"A"}));
  EXPECT_EQ(f.shipper->pending(), (std::set<std::string>{"A"}));
}

TEST(SegmentShipper, UploadedPartialsNobodyNeedsAreDeletedInOrderOneRunDeletionAtATime) {
  Fixture f;
  append(f.spool("A"), "A0");
  append(f.spool("B"), "B0");
  f.open = {f.spool("A"), f.spool("B")};
  ASSERT_TRUE(f.shipper->run_once());  // 0: A, B
  append(f.spool("A"), "A1");
  f.open = {f.spool("A")};
  ASSERT_TRUE(f.shipper->run_once());  // 1: A
  for (std::uint64_t s : {0, 1}) f.shipper->partial_uploaded(partial_entry_id(77, s));
  f.shipper->partial_uploaded(partial_entry_id(78, 0));  // another run's: ignored
  f.shipper->recording_delivered("B");
  // 0 still holds A's first bytes, 1 is the newest uploaded: both stay.
  append(f.spool("A"), "A2");
  ASSERT_TRUE(f.shipper->run_once());  // 2: A (not uploaded yet)
  EXPECT_TRUE(f.entries(kPartialsDeleteSink).empty());
  EXPECT_EQ(f.shipper->kept(), (std::vector<std::uint64_t>{0, 1, 2}));

  // A ends and is delivered: nothing pending, so every uploaded partial goes, oldest first;
  // 2 (not uploaded yet) stays until it is.
  f.open.clear();
  f.shipper->recording_delivered("A");
  EXPECT_FALSE(f.shipper->run_once());  // nothing at stake: no partial
  auto del = f.entries(kPartialsDeleteSink);
  ASSERT_EQ(del.size(), 1u);
  const auto& objects = del.begin()->second.objects;
  ASSERT_EQ(objects.size(), 2u);
  EXPECT_EQ(del.begin()->first, "partials-delete.77");
  EXPECT_EQ(objects[0].key, partial_key("uk", "london", 77, 0));
  EXPECT_EQ(objects[1].key, partial_key("uk", "london", 77, 1));
  EXPECT_EQ(f.shipper->kept(), (std::vector<std::uint64_t>{2}));
  // 2 uploaded, but the run's deletion is still pending: it waits for the next pass.
  f.shipper->partial_uploaded(partial_entry_id(77, 2));
  EXPECT_FALSE(f.shipper->run_once());
  EXPECT_EQ(f.shipper->kept(), (std::vector<std::uint64_t>{2}));
  EXPECT_EQ(f.entries(kPartialSink).size(), 3u);
}

TEST(SegmentShipper, ARecordingDeliveredBeforeItsLastCutIsNotPendingAgain) {
  Fixture f;
  append(f.spool("A"), "A0");
  f.open = {f.spool("A")};
  f.shipper->recording_delivered("A");  // raced: the spool was still listed as open
  ASSERT_TRUE(f.shipper->run_once());
  std::string body;
  auto p0 = f.partial(0, &body);
  EXPECT_EQ(p0.index.chunks.size(), 1u);
  EXPECT_TRUE(p0.index.pending.empty());
  EXPECT_TRUE(f.shipper->pending().empty());
}

TEST(SegmentShipper, AnUnreadableSpoolKeepsItsOffsetAndAVanishedOneIsDropped) {
  Fixture f;
  append(f.spool("A"), "A0");
  f.open = {f.spool("A"), f.spool("gone")};
  ASSERT_TRUE(f.shipper->run_once());
  std::string body;
  auto p0 = f.partial(0, &body);
  ASSERT_EQ(p0.index.chunks.size(), 1u);  // "gone" has no file: skipped, not an error
  EXPECT_EQ(p0.index.chunks[0].recording_id, "A");
}

TEST(SegmentShipper, APartialHoldsItsSpoolsOpenSoACallEndingBeforeTheUploadLosesNothing) {
  Fixture f;
  append(f.spool("A"), "A-bytes");
  f.open = {f.spool("A")};
  ASSERT_TRUE(f.shipper->run_once());
  std::filesystem::remove(f.spool("A"));  // finalised and removed before the upload ran
  std::string body;
  auto p0 = f.partial(0, &body);
  ASSERT_EQ(p0.data.size(), 1u);
  EXPECT_EQ(p0.data[0], "A-bytes");
  EXPECT_EQ(p0.damaged, (std::vector<bool>{false}));
}

TEST(SegmentShipper, NoCutWhileMaxInFlightPartialsWaitAndTheNextCarriesTheirBytes) {
  Fixture f;
  common::Counter deferred;
  SegmentShipperOptions so;
  so.bodies = f.bodies;
  so.max_in_flight = 1;
  so.node = "london";
  so.region = "uk";
  so.run = 77;
  so.open_spools = [&f] { return f.open; };
  so.queue = f.queue.get();
  so.now_ms = [&f] { return f.now; };
  so.deferred = &deferred;
  f.shipper = std::make_unique<SegmentShipper>(so);
  append(f.spool("A"), "A0");
  f.open = {f.spool("A")};
  ASSERT_TRUE(f.shipper->run_once());  // 0, not uploaded
  append(f.spool("A"), "A1");
  EXPECT_FALSE(f.shipper->run_once());  // deferred: 0 is still in flight
  EXPECT_EQ(deferred.value(), 1u);
  EXPECT_EQ(f.bodies->size(), 1u);
  append(f.spool("A"), "A2");
  f.bodies->remove(partial_entry_id(77, 0));  // what the sink does once 0 is verified
  f.shipper->partial_uploaded(partial_entry_id(77, 0));
  ASSERT_TRUE(f.shipper->run_once());  // 1: every byte since 0
  std::string body;
  auto p1 = f.partial(1, &body);
  ASSERT_EQ(p1.index.chunks.size(), 1u);
  EXPECT_EQ(p1.index.chunks[0], (PartialChunk{"A", 2, 4, p1.index.chunks[0].crc32c}));
  EXPECT_EQ(p1.data[0], "A1A2");
}

}  // namespace
}  // namespace sgw::storage
