// SpoolSyncer: fdatasyncs registered files, counts, prunes closed/destroyed
// files, survives a writer closing a file it holds.
#include "recording/spool_syncer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "spool_test_util.h"

namespace sgw::recording {
namespace {

using testing::FaultyFileSystem;
using testing::TempDir;

std::unique_ptr<SpoolWriter> make_writer(const TempDir& dir, const std::string& id, SpoolFileSystem* fs) {
  auto w = SpoolWriter::create(dir.path(), id, fs);
  EXPECT_TRUE(w.ok()) << (w.ok() ? "" : w.error().message);
  return std::move(w).value();
}

TEST(SpoolSyncer, SyncsEveryRegisteredFileAndCounts) {
  TempDir dir;
  FaultyFileSystem fs;
  common::Counter fsyncs, failures;
  SpoolSyncer syncer(std::chrono::milliseconds(1000), {&fsyncs, &failures});
  std::vector<std::unique_ptr<SpoolWriter>> writers;
  for (int i = 0; i < 3; ++i) {
    writers.push_back(make_writer(dir, "r" + std::to_string(i), &fs));
    syncer.add(writers.back()->file());
  }
  const int before = fs.fdatasync_calls.load();
  EXPECT_EQ(syncer.sync_once(), 3U);
  EXPECT_EQ(syncer.sync_once(), 3U);
  EXPECT_EQ(fs.fdatasync_calls.load(), before + 6);
  EXPECT_EQ(fsyncs.value(), 6U);
  EXPECT_EQ(failures.value(), 0U);
  EXPECT_EQ(syncer.registered(), 3U);
}

TEST(SpoolSyncer, NullCountersAreAllowed) {
  TempDir dir;
  SpoolSyncer syncer;
  auto w = make_writer(dir, "r1", nullptr);
  syncer.add(w->file());
  EXPECT_EQ(syncer.sync_once(), 1U);
}

TEST(SpoolSyncer, FileClosedByWriterWhileRegisteredIsPruned) {
  TempDir dir;
  FaultyFileSystem fs;
  common::Counter fsyncs, failures;
  SpoolSyncer syncer(std::chrono::milliseconds(1000), {&fsyncs, &failures});
  auto a = make_writer(dir, "a", &fs);
  auto b = make_writer(dir, "b", &fs);
  syncer.add(a->file());
  syncer.add(b->file());
  ASSERT_TRUE(a->close().ok());  // the syncer still holds a weak reference
  b.reset();                     // last owner gone
  EXPECT_EQ(syncer.sync_once(), 0U);
  EXPECT_EQ(syncer.registered(), 0U);
  EXPECT_EQ(failures.value(), 0U);
}

TEST(SpoolSyncer, FileKeptAliveOnlyBySyncCallIsSafe) {
  TempDir dir;
  auto w = make_writer(dir, "a", nullptr);
  auto file = w->file();
  ASSERT_TRUE(w->close().ok());
  w.reset();
  // A syncer that grabbed the file before it was closed finds it closed: no sync, no error.
  auto r = file->datasync();
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r.value());
}

TEST(SpoolSyncer, SyncAndCloseSyncsOnceClosesAndUnregisters) {
  TempDir dir;
  FaultyFileSystem fs;
  common::Counter fsyncs, failures;
  SpoolSyncer syncer(std::chrono::milliseconds(1000), {&fsyncs, &failures});
  auto a = make_writer(dir, "a", &fs);
  auto b = make_writer(dir, "b", &fs);
  syncer.add(a->file());
  syncer.add(b->file());
  ASSERT_TRUE(a->finish_writes().ok());
  auto file = a->file();
  syncer.sync_and_close(file);
  a.reset();
  EXPECT_EQ(syncer.registered(), 1U);
  EXPECT_FALSE(file->closed());
  const int before = fs.fdatasync_calls.load();
  EXPECT_EQ(syncer.sync_once(), 2U);  // b, and a's last sync
  EXPECT_EQ(fs.fdatasync_calls.load(), before + 2);
  EXPECT_TRUE(file->closed());
  EXPECT_EQ(syncer.sync_once(), 1U);  // only b from now on
  EXPECT_EQ(failures.value(), 0U);
}

TEST(SpoolSyncer, StopClosesWhatWasHandedOver) {
  TempDir dir;
  SpoolSyncer syncer(std::chrono::milliseconds(60000));
  syncer.start();
  auto w = make_writer(dir, "a", nullptr);
  ASSERT_TRUE(w->finish_writes().ok());
  auto file = w->file();
  syncer.sync_and_close(file);
  syncer.stop();
  EXPECT_TRUE(file->closed());
}

TEST(SpoolSyncer, FilesystemModeIsOneSyncfsPerPassForEveryFile) {
  TempDir dir;
  FaultyFileSystem fs;
  common::Counter fsyncs, failures;
  SpoolSyncer syncer(std::chrono::milliseconds(1000), {&fsyncs, &failures}, {dir.path(), &fs});
  EXPECT_EQ(syncer.sync_once(), 0U);  // nothing registered: no syscall at all
  EXPECT_EQ(fs.syncfs_calls.load(), 0);
  SpoolWriterOptions options;
  options.sync_on_create = false;
  std::vector<std::unique_ptr<SpoolWriter>> writers;
  for (int i = 0; i < 5; ++i) {
    auto w = SpoolWriter::create(dir.path(), "r" + std::to_string(i), &fs, options);
    ASSERT_TRUE(w.ok());
    writers.push_back(std::move(w).value());
    syncer.add(writers.back()->file());
  }
  ASSERT_TRUE(writers[0]->finish_writes().ok());
  syncer.sync_and_close(writers[0]->file());
  EXPECT_EQ(syncer.sync_once(), 5U);
  EXPECT_EQ(fs.syncfs_calls.load(), 1);
  EXPECT_EQ(fs.fdatasync_calls.load(), 0);
  EXPECT_EQ(fsyncs.value(), 5U);
  EXPECT_TRUE(writers[0]->file()->closed());
  // The directory entries are durable now: a later datasync owes no directory fsync.
  ASSERT_TRUE(writers[1]->file()->datasync().ok());
  EXPECT_EQ(fs.fsync_calls.load(), 0);
  EXPECT_EQ(syncer.sync_once(), 4U);
  EXPECT_EQ(fs.syncfs_calls.load(), 2);
}

TEST(SpoolSyncer, FilesystemModeFailureMarksEveryFile) {
  TempDir dir;
  FaultyFileSystem fs;
  common::Counter fsyncs, failures;
  SpoolSyncer syncer(std::chrono::milliseconds(1000), {&fsyncs, &failures}, {dir.path(), &fs});
  auto a = make_writer(dir, "a", &fs);
  auto b = make_writer(dir, "b", &fs);
  syncer.add(a->file());
  syncer.add(b->file());
  fs.syncfs_errno = EIO;
  EXPECT_EQ(syncer.sync_once(), 0U);
  EXPECT_EQ(failures.value(), 2U);
  EXPECT_TRUE(a->file()->sync_failed());
  EXPECT_TRUE(b->file()->sync_failed());
  fs.syncfs_errno = 0;
  EXPECT_EQ(syncer.sync_once(), 2U);
  EXPECT_TRUE(a->file()->sync_failed());  // a failure is never forgotten
}

TEST(SpoolSyncer, FilesystemModeOnAMissingDirectoryFailsAndSaysSo) {
  TempDir dir;
  common::Counter fsyncs, failures;
  SpoolSyncer syncer(std::chrono::milliseconds(1000), {&fsyncs, &failures}, {dir.path() + "/gone", nullptr});
  auto a = make_writer(dir, "a", nullptr);
  syncer.add(a->file());
  EXPECT_EQ(syncer.sync_once(), 0U);
  EXPECT_EQ(failures.value(), 1U);
  EXPECT_TRUE(a->file()->sync_failed());
}

TEST(SpoolSyncer, RemoveUnregisters) {
  TempDir dir;
  SpoolSyncer syncer;
  auto a = make_writer(dir, "a", nullptr);
  auto b = make_writer(dir, "b", nullptr);
  syncer.add(a->file());
  syncer.add(b->file());
  syncer.remove(a->file());
  EXPECT_EQ(syncer.registered(), 1U);
  EXPECT_EQ(syncer.sync_once(), 1U);
}

TEST(SpoolSyncer, FailuresAreCountedAndMarkTheFile) {
  TempDir dir;
  FaultyFileSystem fs;
  common::Counter fsyncs, failures;
  SpoolSyncer syncer(std::chrono::milliseconds(1000), {&fsyncs, &failures});
  auto w = make_writer(dir, "a", &fs);
  syncer.add(w->file());
  fs.fdatasync_errno = EIO;
  EXPECT_EQ(syncer.sync_once(), 0U);
  EXPECT_EQ(failures.value(), 1U);
  EXPECT_EQ(fsyncs.value(), 0U);
  EXPECT_TRUE(w->file()->sync_failed());
  fs.fdatasync_errno = 0;
  EXPECT_EQ(syncer.sync_once(), 1U);
  EXPECT_TRUE(w->file()->sync_failed());  // sticky: an earlier loss is not undone
}

// The thread syncs on its cadence while workers create, append, flush and
// close files concurrently (run under ASan/TSan in CI).
TEST(SpoolSyncer, BackgroundThreadWithConcurrentWriters) {
  TempDir dir;
  FaultyFileSystem fs;
  common::Counter fsyncs, failures;
  SpoolSyncer syncer(std::chrono::milliseconds(1), {&fsyncs, &failures});
  syncer.start();
  auto keep = make_writer(dir, "keep", &fs);
  syncer.add(keep->file());
  std::vector<std::thread> workers;
  for (int t = 0; t < 2; ++t) {
    workers.emplace_back([&, t] {
      std::vector<std::uint8_t> payload(160, 0x55);
      for (int i = 0; i < 30; ++i) {
        // POSIX fs: FaultyFileSystem's write counters are for one thread.
        auto w = SpoolWriter::create(dir.path(), "w" + std::to_string(t) + "-" + std::to_string(i));
        if (!w.ok()) continue;
        syncer.add((*w)->file());
        for (int p = 0; p < 20; ++p) {
          (*w)->append_rtp(0, p, static_cast<std::uint16_t>(p), 0, 1, 0, false, payload);
          (void)(*w)->flush();
        }
        (void)(*w)->close();
        if (i % 2 == 0) syncer.remove((*w)->file());
      }
    });
  }
  for (auto& w : workers) w.join();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (fsyncs.value() < 5 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  syncer.stop();
  syncer.stop();  // idempotent
  EXPECT_GE(fsyncs.value(), 5U);
  EXPECT_EQ(failures.value(), 0U);
  EXPECT_EQ(syncer.registered(), 1U);  // only "keep" is still open
}

TEST(SpoolSyncer, StopWithoutStart) {
  SpoolSyncer syncer;
  syncer.stop();
  syncer.start();  // after stop: does nothing
  EXPECT_EQ(syncer.sync_once(), 0U);
}

}  // namespace
}  // namespace sgw::recording
