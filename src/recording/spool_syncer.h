// SpoolSyncer: a background thread that fdatasyncs every registered spool file
// once per cadence, so a crash loses at most one cadence of received media.
//
// Thread: add()/remove() are called by media workers when a session starts or
// ends (never per packet) and take the registry mutex briefly; the syncs
// themselves run on the syncer's thread without holding it. Files are tracked
// by weak_ptr: a file whose last owner went away, or that was closed, is
// dropped on the next pass, so remove() is optional.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/metrics.h"
#include "recording/spool_writer.h"

namespace sgw::recording {

// Counters bumped by the syncer; any may be null. They must outlive the syncer.
struct SpoolSyncerCounters {
  common::Counter* fsyncs = nullptr;    // successful fdatasync calls
  common::Counter* failures = nullptr;  // failed fdatasync calls
};

// How a pass makes the registered files durable.
struct SpoolSyncMode {
  // Empty: fdatasync each file (a system call and a journal commit per call
  // in progress, every cadence). A directory: one syncfs(2) of the filesystem
  // it is on, whatever the number of calls (docs/spool.md).
  std::string filesystem_of;
  SpoolFileSystem* fs = nullptr;  // for syncfs; the POSIX one when null
};

class SpoolSyncer {
 public:
  explicit SpoolSyncer(std::chrono::milliseconds cadence = std::chrono::milliseconds(1000),
                       SpoolSyncerCounters counters = {}, SpoolSyncMode mode = {});
  ~SpoolSyncer();  // stop()
  SpoolSyncer(const SpoolSyncer&) = delete;
  SpoolSyncer& operator=(const SpoolSyncer&) = delete;

  // Starts the thread (once).
  void start();
  // Wakes the thread, runs one last pass, joins. Idempotent.
  void stop();

  void add(std::shared_ptr<SpoolFile> file);
  void remove(const std::shared_ptr<SpoolFile>& file);
  // The writer is done (SpoolWriter::finish_writes): the next pass fdatasyncs
  // the file one last time and closes it, so a session's end never waits for
  // the disk on a media worker. Unregisters it from the periodic syncs.
  void sync_and_close(std::shared_ptr<SpoolFile> file);

  // Makes file durable now (fdatasync, and its directory entry; in
  // filesystem mode one syncfs for all the files asked for so far), out of
  // the cadence: the thread wakes at once.
  // done runs on the syncer's thread (or in sync_once/stop) with the outcome;
  // a file closed meanwhile counts as synced (sync_and_close synced it).
  // Without a running thread, the next sync_once() does it.
  void sync_now(std::shared_ptr<SpoolFile> file, std::function<void(common::Status)> done);

  // One pass on the calling thread: fdatasync every live, open file; prune the
  // rest; then sync and close the files handed to sync_and_close. Returns the
  // number of files synced successfully.
  std::size_t sync_once();

  // Files currently registered (including ones the next pass will prune).
  std::size_t registered() const;
  // Paths of the files still open: registered and not closed, or waiting for
  // their first (sync_now) or last sync (sync_and_close). Sessions are writing (or just wrote)
  // these; the finaliser's rescan leaves them alone. Any thread.
  std::vector<std::string> open_paths() const;

 private:
  void run();
  // The files given to sync_now so far; returns how many were synced.
  std::size_t sync_urgent();
  // fdatasync of one file, counted and logged; true if synced, false if closed.
  common::Result<bool> sync_file(SpoolFile& f);
  // One syncfs for every file of the pass (mode_.filesystem_of set).
  std::size_t sync_filesystem(const std::vector<std::shared_ptr<SpoolFile>>& live,
                              const std::vector<std::shared_ptr<SpoolFile>>& closing);

  const std::chrono::milliseconds cadence_;
  const SpoolSyncerCounters counters_;
  const SpoolSyncMode mode_;
  int fs_fd_ = -1;  // syncer thread (sync_once): the directory syncfs is called on
  mutable std::mutex mutex_;  // guards files_ and stopping_
  std::condition_variable wake_;
  // Keyed by the file's address: add() and remove() are O(1) with 1000s of calls.
  std::unordered_map<const SpoolFile*, std::weak_ptr<SpoolFile>> files_;
  std::vector<std::shared_ptr<SpoolFile>> closing_;  // sync_and_close, not yet done
  struct Urgent {
    std::shared_ptr<SpoolFile> file;
    std::function<void(common::Status)> done;
  };
  std::vector<Urgent> urgent_;  // sync_now, not yet done
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace sgw::recording
