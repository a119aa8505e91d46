// SpoolWriter: creation, flush under faults (short writes, EINTR, EIO, ENOSPC,
// torn write + crash), buffer cap, should_flush policy, close.
#include "recording/spool_writer.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "recording/spool_reader.h"
#include "spool_test_util.h"

namespace sgw::recording {
namespace {

using testing::FaultyFileSystem;
using testing::TempDir;

std::vector<std::uint8_t> payload_for(std::uint16_t seq, std::size_t size = 160) {
  std::vector<std::uint8_t> p(size);
  for (std::size_t i = 0; i < size; ++i) p[i] = static_cast<std::uint8_t>(seq * 31 + i);
  return p;
}

void append_packets(SpoolWriter& w, std::uint16_t first, int count, std::size_t size = 160) {
  for (int i = 0; i < count; ++i) {
    auto seq = static_cast<std::uint16_t>(first + i);
    auto p = payload_for(seq, size);
    w.append_rtp(0, seq * 20000, seq, seq * 160U, 0x1234, 8, false, p);
  }
}

// Reads back the sequence numbers, checking each payload.
struct Seqs {
  std::vector<std::uint16_t> seqs;
  SpoolSummary summary;
};
Seqs read_seqs(const std::string& path) {
  Seqs out;
  RecordVisitor v;
  v.on_rtp = [&](const RtpRecordView& r) {
    auto expect = payload_for(r.seq, r.payload.size());
    EXPECT_TRUE(std::equal(r.payload.begin(), r.payload.end(), expect.begin()));
    out.seqs.push_back(r.seq);
  };
  auto s = read_spool(path, v);
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
  if (s.ok()) out.summary = *s;
  return out;
}

std::vector<std::uint16_t> iota(std::uint16_t first, int count) {
  std::vector<std::uint16_t> v;
  for (int i = 0; i < count; ++i) v.push_back(static_cast<std::uint16_t>(first + i));
  return v;
}

TEST(SpoolWriter, RejectsIdsThatAreNotFileNames) {
  TempDir dir;
  for (const std::string& id : std::vector<std::string>{"", "../x", "a/b", ".hidden", "..", "a b", std::string("a\0b", 3), std::string(250, 'a')}) {
    auto w = SpoolWriter::create(dir.path(), id);
    ASSERT_FALSE(w.ok()) << id;
    EXPECT_EQ(w.error().code, "spool.bad_id");
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
  auto longest = SpoolWriter::create(dir.path(), std::string(249, 'a'));  // 255 with ".spool"
  EXPECT_TRUE(longest.ok()) << (longest.ok() ? "" : longest.error().message);
}

TEST(SpoolWriter, CreateIsExclusiveAndNamesThePath) {
  TempDir dir;
  auto a = SpoolWriter::create(dir.path(), "r1");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*a)->path(), dir.file("r1.spool"));
  auto b = SpoolWriter::create(dir.path(), "r1");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code, "io.open");
  EXPECT_NE(b.error().message.find(dir.file("r1.spool")), std::string::npos);
  auto c = SpoolWriter::create(dir.file("missing"), "r1");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find(dir.file("missing/r1.spool")), std::string::npos);
}

TEST(SpoolWriter, CreateSyncsFileAndDirectory) {
  TempDir dir;
  FaultyFileSystem fs;
  auto w = SpoolWriter::create(dir.path(), "r1", &fs);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(fs.fdatasync_calls.load(), 1);
  EXPECT_EQ(fs.fsync_calls.load(), 1);  // the directory
}

TEST(SpoolWriter, CreateWithoutSyncLeavesBothSyncsToTheFirstDatasync) {
  TempDir dir;
  FaultyFileSystem fs;
  SpoolWriterOptions options;
  options.sync_on_create = false;
  auto w = SpoolWriter::create(dir.path(), "r1", &fs, options);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(fs.fdatasync_calls.load(), 0);
  EXPECT_EQ(fs.fsync_calls.load(), 0);
  EXPECT_TRUE(read_seqs(dir.file("r1.spool")).seqs.empty());  // the header is there already
  auto first = (*w)->file()->datasync();
  ASSERT_TRUE(first.ok() && first.value());
  EXPECT_EQ(fs.fdatasync_calls.load(), 1);
  EXPECT_EQ(fs.fsync_calls.load(), 1);  // the directory, once
  ASSERT_TRUE((*w)->file()->datasync().ok());
  EXPECT_EQ(fs.fdatasync_calls.load(), 2);
  EXPECT_EQ(fs.fsync_calls.load(), 1);
}

TEST(SpoolWriter, DeferredDirectorySyncFailureMarksTheFileAndIsRetried) {
  TempDir dir;
  FaultyFileSystem fs;
  SpoolWriterOptions options;
  options.sync_on_create = false;
  auto w = SpoolWriter::create(dir.path(), "r1", &fs, options);
  ASSERT_TRUE(w.ok());
  fs.fsync_errno = EIO;
  auto r = (*w)->file()->datasync();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "io.fsync");
  EXPECT_NE(r.error().message.find(dir.path()), std::string::npos) << r.error().message;
  EXPECT_TRUE((*w)->file()->sync_failed());
  fs.fsync_errno = 0;
  ASSERT_TRUE((*w)->file()->datasync().ok());
  EXPECT_EQ(fs.fsync_calls.load(), 2);  // still owed after the failure, done now
}

TEST(SpoolWriter, FinishWritesFlushesAndLeavesTheFileOpen) {
  TempDir dir;
  FaultyFileSystem fs;
  auto w = SpoolWriter::create(dir.path(), "r1", &fs);
  ASSERT_TRUE(w.ok());
  append_packets(**w, 0, 3);
  (*w)->append_json(RecordType::kSessionEnd, 5, R"({"reason":"bye"})");
  const int syncs = fs.fdatasync_calls.load();
  ASSERT_TRUE((*w)->finish_writes().ok());
  EXPECT_EQ(fs.fdatasync_calls.load(), syncs);  // no sync: that is the caller's
  EXPECT_FALSE((*w)->file()->closed());
  append_packets(**w, 3, 1);
  EXPECT_EQ((*w)->dropped_records(), 1U);
  auto r = read_seqs(dir.file("r1.spool"));
  EXPECT_EQ(r.seqs, iota(0, 3));
  EXPECT_TRUE(r.summary.has_session_end);
  auto file = (*w)->file();
  w->reset();  // the writer is gone; whoever holds the file closes it
  EXPECT_FALSE(file->closed());
  ASSERT_TRUE(file->close().ok());
}

TEST(SpoolWriter, CreateFailureLeavesNoFile) {
  TempDir dir;
  {
    FaultyFileSystem fs;
    fs.fdatasync_errno = EIO;
    auto w = SpoolWriter::create(dir.path(), "r1", &fs);
    ASSERT_FALSE(w.ok());
    EXPECT_EQ(w.error().code, "io.fdatasync");
  }
  {
    FaultyFileSystem fs;
    fs.write_limit = 10;  // torn header
    fs.write_errno = ENOSPC;
    auto w = SpoolWriter::create(dir.path(), "r2", &fs);
    ASSERT_FALSE(w.ok());
    EXPECT_EQ(w.error().code, "io.write");
  }
  {
    FaultyFileSystem fs;
    fs.fsync_errno = EIO;
    auto w = SpoolWriter::create(dir.path(), "r3", &fs);
    ASSERT_FALSE(w.ok());
    EXPECT_EQ(w.error().code, "io.fsync");
    EXPECT_NE(w.error().message.find(dir.path()), std::string::npos);
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(SpoolWriter, ShortWritesAndEintrAreRetried) {
  TempDir dir;
  FaultyFileSystem fs;
  fs.max_write = 7;
  fs.eintr_every = 3;
  auto w = SpoolWriter::create(dir.path(), "r1", &fs);
  ASSERT_TRUE(w.ok());
  append_packets(**w, 100, 50);
  ASSERT_TRUE((*w)->flush().ok());
  EXPECT_EQ((*w)->buffered_bytes(), 0U);
  append_packets(**w, 150, 50);
  ASSERT_TRUE((*w)->close().ok());
  auto r = read_seqs(dir.file("r1.spool"));
  EXPECT_EQ(r.seqs, iota(100, 100));
  EXPECT_TRUE(r.summary.problems.empty());
}

// A write error keeps the unwritten tail; the next flush continues the byte
// stream exactly where it stopped, so nothing is lost or duplicated.
TEST(SpoolWriter, WriteErrorKeepsTailForNextFlush) {
  for (int err : {EIO, ENOSPC}) {
    TempDir dir;
    FaultyFileSystem fs;
    auto w = SpoolWriter::create(dir.path(), "r1", &fs);
    ASSERT_TRUE(w.ok());
    append_packets(**w, 0, 20);
    const std::size_t buffered = (*w)->buffered_bytes();
    fs.write_limit = fs.written + 1000;
    fs.write_errno = err;
    auto f = (*w)->flush();
    ASSERT_FALSE(f.ok());
    EXPECT_EQ(f.error().code, "io.write");
    EXPECT_NE(f.error().message.find(dir.file("r1.spool")), std::string::npos);
    EXPECT_NE(f.error().message.find(std::strerror(err)), std::string::npos) << f.error().message;
    EXPECT_NE(f.error().message.find("wrote 1000 of " + std::to_string(buffered)), std::string::npos)
        << f.error().message;
    EXPECT_EQ((*w)->buffered_bytes(), buffered - 1000);
    append_packets(**w, 20, 5);
    fs.write_limit = std::numeric_limits<std::uint64_t>::max();  // the disk recovers
    ASSERT_TRUE((*w)->close().ok());
    auto r = read_seqs(dir.file("r1.spool"));
    EXPECT_EQ(r.seqs, iota(0, 25));
    EXPECT_TRUE(r.summary.problems.empty());
  }
}

// Torn write, then "crash" (the process dies: the buffer is lost): whatever
// reached the disk is read back; the cut record is reported, never delivered.
TEST(SpoolWriter, TornWriteThenCrashAtEveryByte) {
  TempDir dir;
  std::uint64_t header = 0;
  std::vector<std::uint64_t> ends;  // end offset of each record
  {
    auto w = SpoolWriter::create(dir.path(), "probe");
    ASSERT_TRUE(w.ok());
    header = (*w)->bytes_written();
    for (int i = 0; i < 6; ++i) {
      append_packets(**w, static_cast<std::uint16_t>(i), 1, 20 + i);
      ASSERT_TRUE((*w)->flush().ok());
      ends.push_back((*w)->bytes_written());
    }
  }
  for (std::uint64_t limit = header; limit <= ends.back(); ++limit) {
    char id_buf[16];
    std::snprintf(id_buf, sizeof id_buf, "t%04u", static_cast<unsigned>(limit));  // same length as "probe"
    const std::string id = id_buf;
    {
      FaultyFileSystem fs;
      auto w = SpoolWriter::create(dir.path(), id, &fs);
      ASSERT_TRUE(w.ok());
      fs.write_limit = limit;
      for (int i = 0; i < 6; ++i) append_packets(**w, static_cast<std::uint16_t>(i), 1, 20 + i);
      auto f = (*w)->flush();
      EXPECT_EQ(f.ok(), limit == ends.back());
      // Destroying the writer is the crash: its best-effort flush fails the same way.
    }
    auto r = read_seqs(dir.file(id + ".spool"));
    int complete = 0;
    while (complete < 6 && ends[static_cast<std::size_t>(complete)] <= limit) ++complete;
    EXPECT_EQ(r.seqs, iota(0, complete)) << limit;
    const bool torn = limit != header && (complete == 0 || limit != ends[static_cast<std::size_t>(complete) - 1]);
    ASSERT_EQ(r.summary.problems.size(), torn ? 1U : 0U) << limit;
    if (torn) {
      EXPECT_EQ(r.summary.problems[0].rfind("torn record at end", 0), 0U) << r.summary.problems[0];
    }
  }
}

TEST(SpoolWriter, BufferCapDropsWholeRecordsAndCountsThem) {
  TempDir dir;
  SpoolWriterOptions opts;
  opts.max_buffer_bytes = 2000;
  auto w = SpoolWriter::create(dir.path(), "r1", nullptr, opts);
  ASSERT_TRUE(w.ok());
  append_packets(**w, 0, 20);  // 193 bytes each: 10 fit
  EXPECT_EQ((*w)->records_appended(), 10U);
  EXPECT_EQ((*w)->dropped_records(), 10U);
  ASSERT_TRUE((*w)->flush().ok());
  append_packets(**w, 20, 3);
  ASSERT_TRUE((*w)->close().ok());
  auto r = read_seqs(dir.file("r1.spool"));
  std::vector<std::uint16_t> expect = iota(0, 10);
  for (std::uint16_t s : {20, 21, 22}) expect.push_back(s);
  EXPECT_EQ(r.seqs, expect);
  EXPECT_TRUE(r.summary.problems.empty());
}

TEST(SpoolWriter, OversizedRecordsAreDroppedAndCounted) {
  TempDir dir;
  auto w = SpoolWriter::create(dir.path(), "r1");
  ASSERT_TRUE(w.ok());
  std::vector<std::uint8_t> huge(65536);
  (*w)->append_rtp(0, 0, 1, 0, 0, 0, false, huge);
  (*w)->append_metadata(0, std::string(spool::kMaxPayloadSize, 'x'));
  (*w)->append_json(RecordType::kRtp, 0, "{}");  // not a JSON record type
  EXPECT_EQ((*w)->dropped_records(), 3U);
  EXPECT_EQ((*w)->buffered_bytes(), 0U);
}

std::chrono::steady_clock::time_point g_fake_now{};
std::chrono::steady_clock::time_point fake_now() { return g_fake_now; }

TEST(SpoolWriter, ShouldFlushPolicy) {
  using namespace std::chrono_literals;
  TempDir dir;
  SpoolWriterOptions opts;
  opts.now = &fake_now;
  g_fake_now = std::chrono::steady_clock::time_point{} + 1000s;
  auto w = SpoolWriter::create(dir.path(), "r1", nullptr, opts);
  ASSERT_TRUE(w.ok());
  auto& wr = **w;
  const auto t0 = g_fake_now;
  EXPECT_FALSE(wr.should_flush(t0 + 10s));  // nothing buffered
  append_packets(wr, 0, 1);
  g_fake_now = t0 + 150ms;
  append_packets(wr, 1, 1);  // does not restart the age: the oldest byte counts
  EXPECT_FALSE(wr.should_flush(t0 + 199ms));
  EXPECT_TRUE(wr.should_flush(t0 + 200ms));
  ASSERT_TRUE(wr.flush().ok());
  EXPECT_FALSE(wr.should_flush(t0 + 10s));
  g_fake_now = t0 + 1s;
  append_packets(wr, 2, 1);
  EXPECT_FALSE(wr.should_flush(t0 + 1s + 199ms));
  append_packets(wr, 3, 200);  // > 32 KiB
  EXPECT_TRUE(wr.should_flush(t0 + 1s));
}

TEST(SpoolWriter, CloseFlushesSyncsAndIsIdempotent) {
  TempDir dir;
  FaultyFileSystem fs;
  auto w = SpoolWriter::create(dir.path(), "r1", &fs);
  ASSERT_TRUE(w.ok());
  auto file = (*w)->file();
  append_packets(**w, 0, 3);
  (*w)->append_json(RecordType::kSessionEnd, 5, R"({"reason":"bye"})");
  const int syncs = fs.fdatasync_calls.load();
  ASSERT_TRUE((*w)->close().ok());
  EXPECT_EQ(fs.fdatasync_calls.load(), syncs + 1);
  EXPECT_TRUE(file->closed());
  EXPECT_TRUE((*w)->close().ok());
  append_packets(**w, 3, 1);
  EXPECT_EQ((*w)->dropped_records(), 1U);
  auto r = read_seqs(dir.file("r1.spool"));
  EXPECT_EQ(r.seqs, iota(0, 3));
  EXPECT_TRUE(r.summary.has_session_end);
}

TEST(SpoolWriter, CloseReportsSyncFailure) {
  TempDir dir;
  FaultyFileSystem fs;
  auto w = SpoolWriter::create(dir.path(), "r1", &fs);
  ASSERT_TRUE(w.ok());
  fs.fdatasync_errno = EIO;
  auto c = (*w)->close();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, "io.fdatasync");
  EXPECT_TRUE((*w)->file()->sync_failed());
  EXPECT_TRUE((*w)->file()->closed());
}

TEST(SpoolWriter, DestructorFlushesWithoutClose) {
  TempDir dir;
  {
    auto w = SpoolWriter::create(dir.path(), "r1");
    ASSERT_TRUE(w.ok());
    append_packets(**w, 7, 4);
  }
  EXPECT_EQ(read_seqs(dir.file("r1.spool")).seqs, iota(7, 4));
}

}  // namespace
}  // namespace sgw::recording

namespace sgw::recording {
namespace {

using testing::FaultyFileSystem;
using testing::TempDir;

// Every spool_fault record of a file, merged (docs/spool.md "Damage records").
std::pair<SpoolFault, int> read_faults(const std::string& path) {
  SpoolFault merged;
  int records = 0;
  RecordVisitor v;
  v.on_json = [&](const JsonRecordView& r) {
    if (auto f = decode_spool_fault(r.json)) {
      merged.merge(*f);
      ++records;
    }
  };
  EXPECT_TRUE(read_spool(path, v).ok());
  return {merged, records};
}

TEST(SpoolWriterFaults, CleanFileHasNoFaultRecord) {
  TempDir dir;
  auto w = SpoolWriter::create(dir.path(), "r1");
  ASSERT_TRUE(w.ok());
  append_packets(**w, 0, 10);
  ASSERT_TRUE((*w)->close().ok());
  EXPECT_EQ(read_faults(dir.file("r1.spool")).second, 0);
}

// Drops, a failed write and a failed sync all reach the spool, with the last error.
TEST(SpoolWriterFaults, DropsWriteErrorsAndSyncFailuresAreRecordedInTheSpool) {
  TempDir dir;
  FaultyFileSystem fs;
  SpoolWriterOptions opts;
  opts.max_buffer_bytes = 4000;
  auto w = SpoolWriter::create(dir.path(), "r1", &fs, opts);
  ASSERT_TRUE(w.ok());
  append_packets(**w, 0, 5);
  fs.write_limit = fs.written;  // the disk is full
  fs.write_errno = ENOSPC;
  EXPECT_FALSE((*w)->flush().ok());
  append_packets(**w, 5, 30);  // the buffer fills up: some are dropped
  const std::uint64_t dropped = (*w)->dropped_records();
  EXPECT_GT(dropped, 0U);
  (*w)->file()->mark_sync_failed();  // what the syncer does when syncfs fails
  fs.write_limit = std::numeric_limits<std::uint64_t>::max();  // space returns
  ASSERT_TRUE((*w)->close().ok());
  auto [fault, records] = read_faults(dir.file("r1.spool"));
  EXPECT_GE(records, 1);
  EXPECT_EQ(fault.records_dropped, dropped);
  EXPECT_EQ(fault.write_errors, 1U);
  EXPECT_EQ(fault.sync_failures, 1U);
  EXPECT_NE(fault.error.find(std::strerror(ENOSPC)), std::string::npos) << fault.error;
  EXPECT_EQ(fault, (*w)->fault());
}

TEST(SpoolWriterFaults, OpenForAppendAddsValidRecordsAfterTheLast) {
  TempDir dir;
  {
    auto w = SpoolWriter::create(dir.path(), "r1");
    ASSERT_TRUE(w.ok());
    append_packets(**w, 0, 3);
    (*w)->append_json(RecordType::kSessionEnd, 1, "{}");
    ASSERT_TRUE((*w)->close().ok());
  }
  auto a = SpoolWriter::open_for_append(dir.file("r1.spool"));
  ASSERT_TRUE(a.ok()) << a.error().message;
  (*a)->append_json(RecordType::kEvent, 2, FinalizeFailure{1, "disk full"}.encode());
  ASSERT_TRUE((*a)->close().ok());
  std::vector<FinalizeFailure> failures;
  RecordVisitor v;
  v.on_json = [&](const JsonRecordView& r) {
    if (auto f = decode_finalize_failure(r.json)) failures.push_back(*f);
  };
  auto s = read_spool(dir.file("r1.spool"), v);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->problems.empty());
  EXPECT_EQ(failures, (std::vector<FinalizeFailure>{{1, "disk full"}}));
  EXPECT_EQ(read_seqs(dir.file("r1.spool")).seqs, iota(0, 3));

  // Not a spool: refused before anything is written.
  testing::write_bytes(dir.file("bad.spool"), {1, 2, 3});
  auto bad = SpoolWriter::open_for_append(dir.file("bad.spool"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, "spool.bad_header");
  EXPECT_EQ(testing::read_bytes(dir.file("bad.spool")).size(), 3U);
}

TEST(SpoolEvents, RoundTripAndGarbage) {
  SpoolFault f{3, 1, 2, "write x: No space left on device"};
  EXPECT_EQ(decode_spool_fault(f.encode()), f);
  EXPECT_EQ(spool_event_name(f.encode()), "spool_fault");
  FinalizeFailure ff{4, "open y: Read-only file system"};
  EXPECT_EQ(decode_finalize_failure(ff.encode()), ff);
  StreamCounters sc;
  sc.streams[0] = {350, std::nullopt};
  sc.streams[1] = {std::nullopt, 12};
  EXPECT_EQ(decode_stream_counters(sc.encode()), sc);
  // Wrong event, not JSON, wrong types, out-of-range index: absent, never a throw.
  EXPECT_FALSE(decode_spool_fault(ff.encode()));
  EXPECT_FALSE(decode_spool_fault("{not json"));
  EXPECT_FALSE(decode_spool_fault("[]"));
  EXPECT_EQ(decode_spool_fault(R"({"event":"spool_fault","records_dropped":"x","write_errors":-1})"), SpoolFault{});
  auto odd = decode_stream_counters(R"({"event":"stream_counters","streams":[{"index":300,"wrong_source":1},7,{"index":2,"kernel_drops":5}]})");
  ASSERT_TRUE(odd);
  EXPECT_EQ(odd->streams.size(), 1U);
  EXPECT_EQ(odd->streams[2].kernel_drops, 5U);
  // Cumulative: merging keeps the largest count.
  SpoolFault older{2, 0, 0, "old"}, newer{2, 1, 0, "new"};
  SpoolFault a = older;
  a.merge(newer);
  EXPECT_EQ(a, newer);
  SpoolFault b = newer;
  b.merge(older);  // records read in any order give the same answer
  EXPECT_EQ(b, newer);
}

}  // namespace
}  // namespace sgw::recording
