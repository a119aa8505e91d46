// SpoolSink with a fault-injecting file system: what is on disk before the
// answer, what a refused call leaves (nothing), and how a failing disk is
// reported during the call (docs/guarantees.md).
#include "recording/spool_sink.h"

#include <filesystem>
#include <future>
#include <optional>

#include <gtest/gtest.h>

#include "recording/spool_reader.h"
#include "spool_test_util.h"

namespace sgw::recording {
namespace {

using testing::FaultyFileSystem;
using testing::TempDir;

struct Records {
  std::vector<std::pair<RecordType, std::string>> json;
  std::vector<std::string> metadata;
  std::size_t rtp = 0;
};

Records read_back(const std::string& path) {
  Records out;
  RecordVisitor v;
  v.on_json = [&](const JsonRecordView& r) { out.json.emplace_back(r.type, std::string(r.json)); };
  v.on_metadata = [&](const MetadataRecordView& r) { out.metadata.emplace_back(r.xml); };
  v.on_rtp = [&](const RtpRecordView&) { ++out.rtp; };
  auto summary = read_spool(path, v);
  EXPECT_TRUE(summary) << (summary ? "" : summary.error().message);
  return out;
}

SpoolStart start_of(const std::string& id) {
  SpoolStart s;
  s.recording_id = id;
  s.start_json = R"({"recording_id":")" + id + R"(","call_id":"c1"})";
  s.metadata_docs = {"<recording xmlns='urn:ietf:params:xml:ns:recording:1'/>"};
  s.streams_event_json = R"({"event":"streams","streams":[{"index":0}]})";
  return s;
}

media::RtpPacketView packet() {
  static const std::uint8_t bytes[172] = {0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7};
  return *media::RtpPacketView::parse(bytes);
}

TEST(SpoolSinkTest, StartRecordsAreWrittenAndSyncedBeforeTheAnswer) {
  TempDir dir;
  FaultyFileSystem fs;
  SpoolSyncer syncer(std::chrono::hours(1));  // no periodic pass: only what sync_now asks
  common::Counter errors;
  SpoolStart start = start_of("rec1");
  std::promise<common::Status> durable;
  start.on_durable = [&](common::Status st) { durable.set_value(st); };
  auto sink = SpoolSink::create({dir.path(), &syncer, {&errors, nullptr}, &fs}, std::move(start));
  ASSERT_TRUE(sink) << sink.error().message;
  // Written (a kill -9 keeps them) before anything is synced...
  Records r = read_back(dir.file("rec1.spool"));
  ASSERT_EQ(r.json.size(), 2u);
  EXPECT_EQ(r.json[0].first, RecordType::kSessionStart);
  EXPECT_EQ(r.json[1].first, RecordType::kEvent);
  EXPECT_NE(r.json[1].second.find("streams"), std::string::npos);
  ASSERT_EQ(r.metadata.size(), 1u);
  EXPECT_EQ(fs.fdatasync_calls.load(), 0);
  // ...and synced by the syncer's pass (its thread in the daemon).
  syncer.sync_once();
  auto f = durable.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_TRUE(f.get());
  EXPECT_EQ(fs.fdatasync_calls.load(), 1);
  EXPECT_GE(fs.fsync_calls.load(), 1);  // the directory entry too
  EXPECT_EQ(errors.value(), 0u);
}

TEST(SpoolSinkTest, CallsAnsweredTogetherShareOneSyncfs) {
  TempDir dir;
  FaultyFileSystem fs;
  SpoolSyncer syncer(std::chrono::hours(1), {}, {dir.path(), &fs});
  int durable = 0;
  std::vector<std::unique_ptr<SpoolSink>> sinks;
  for (const char* id : {"a", "b", "c"}) {
    SpoolStart start = start_of(id);
    start.on_durable = [&](common::Status st) { durable += st ? 1 : 0; };
    auto sink = SpoolSink::create({dir.path(), &syncer, {}, &fs}, std::move(start));
    ASSERT_TRUE(sink);
    sinks.push_back(std::move(sink).value());
  }
  syncer.sync_once();
  EXPECT_EQ(durable, 3);
  EXPECT_EQ(fs.syncfs_calls.load(), 1);
  EXPECT_EQ(fs.fdatasync_calls.load(), 0);
  // A failing syncfs refuses every call of the batch.
  fs.syncfs_errno = EIO;
  SpoolStart start = start_of("d");
  std::optional<common::Status> status;
  start.on_durable = [&](common::Status st) { status = st; };
  auto d = SpoolSink::create({dir.path(), &syncer, {}, &fs}, std::move(start));
  ASSERT_TRUE(d);
  syncer.sync_once();
  ASSERT_TRUE(status.has_value());
  EXPECT_FALSE(*status);
}

TEST(SpoolSinkTest, SyncFailureOfTheStartIsReported) {
  TempDir dir;
  FaultyFileSystem fs;
  fs.fdatasync_errno = EIO;
  SpoolSyncer syncer(std::chrono::hours(1));
  SpoolStart start = start_of("rec1");
  std::optional<common::Status> durable;
  start.on_durable = [&](common::Status st) { durable = st; };
  auto sink = SpoolSink::create({dir.path(), &syncer, {}, &fs}, std::move(start));
  ASSERT_TRUE(sink);
  syncer.sync_once();
  ASSERT_TRUE(durable.has_value());
  ASSERT_FALSE(*durable);
  EXPECT_NE(durable->error().message.find("rec1.spool"), std::string::npos);
}

TEST(SpoolSinkTest, CreationFailureLeavesNoFile) {
  TempDir dir;
  SpoolSyncer syncer(std::chrono::hours(1));
  common::Counter errors;
  // A real fault: the spool folder is gone.
  auto missing = SpoolSink::create({dir.file("gone"), &syncer, {&errors, nullptr}, nullptr}, start_of("a"));
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("gone/a.spool"), std::string::npos);
  // The disk fills while the start records are written: the half-written file is removed.
  FaultyFileSystem fs;
  fs.write_limit = 40;  // the header fits, the start records do not
  fs.write_errno = ENOSPC;
  auto full = SpoolSink::create({dir.path(), &syncer, {&errors, nullptr}, &fs}, start_of("b"));
  ASSERT_FALSE(full);
  EXPECT_FALSE(std::filesystem::exists(dir.file("b.spool")));
  EXPECT_TRUE(list_spools(dir.path()).empty());
  EXPECT_EQ(errors.value(), 2u);
}

TEST(SpoolSinkTest, WriteFailureDuringTheCallIsReportedOnceAndCounted) {
  TempDir dir;
  FaultyFileSystem fs;
  SpoolSyncer syncer(std::chrono::hours(1));
  common::Counter errors;
  std::vector<std::string> failures;
  SpoolStart start = start_of("rec1");
  start.on_failure = [&](const std::string& m) { failures.push_back(m); };
  auto created = SpoolSink::create({dir.path(), &syncer, {&errors, nullptr}, &fs}, std::move(start));
  ASSERT_TRUE(created);
  std::unique_ptr<SpoolSink> sink = std::move(created).value();
  sink->start(0);
  fs.write_limit = fs.written;  // the disk is full from now on
  fs.write_errno = ENOSPC;
  for (int tick = 0; tick < 3; ++tick) {
    for (int i = 0; i < 400; ++i) sink->on_rtp(0, i * 20000, packet());  // > flush_bytes
    sink->on_tick(0);
  }
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_NE(failures[0].find("rec1.spool"), std::string::npos);
  EXPECT_GE(errors.value(), 3u);  // every failed flush counts
  sink->finish(1000, R"({"cause":"BYE"})");
  EXPECT_EQ(failures.size(), 1u);
}

TEST(SpoolSinkTest, SyncFailureDuringTheCallIsReportedAtTheNextTick) {
  TempDir dir;
  FaultyFileSystem fs;
  SpoolSyncer syncer(std::chrono::hours(1));
  std::vector<std::string> failures;
  SpoolStart start = start_of("rec1");
  start.on_failure = [&](const std::string& m) { failures.push_back(m); };
  auto created = SpoolSink::create({dir.path(), &syncer, {}, &fs}, std::move(start));
  ASSERT_TRUE(created);
  std::unique_ptr<SpoolSink> sink = std::move(created).value();
  sink->start(0);
  sink->on_tick(0);
  EXPECT_TRUE(failures.empty());
  fs.fdatasync_errno = EIO;
  syncer.sync_once();  // the periodic pass fails for this file
  sink->on_tick(0);
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_NE(failures[0].find("rec1.spool: fdatasync failed"), std::string::npos);
  sink->on_tick(0);
  EXPECT_EQ(failures.size(), 1u);
}

}  // namespace
}  // namespace sgw::recording
