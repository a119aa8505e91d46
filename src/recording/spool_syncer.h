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
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "recording/spool_writer.h"

namespace sgw::recording {

// Counters bumped by the syncer; any may be null. They must outlive the syncer.
struct SpoolSyncerCounters {
  common::Counter* fsyncs = nullptr;    // successful fdatasync calls
  common::Counter* failures = nullptr;  // failed fdatasync calls
};

class SpoolSyncer {
 public:
  explicit SpoolSyncer(std::chrono::milliseconds cadence = std::chrono::milliseconds(1000),
                       SpoolSyncerCounters counters = {});
  ~SpoolSyncer();  // stop()
  SpoolSyncer(const SpoolSyncer&) = delete;
  SpoolSyncer& operator=(const SpoolSyncer&) = delete;

  // Starts the thread (once).
  void start();
  // Wakes the thread, runs one last pass, joins. Idempotent.
  void stop();

  void add(std::shared_ptr<SpoolFile> file);
  void remove(const std::shared_ptr<SpoolFile>& file);

  // One pass on the calling thread: fdatasync every live, open file; prune the
  // rest. Returns the number of files synced successfully.
  std::size_t sync_once();

  // Files currently registered (including ones the next pass will prune).
  std::size_t registered() const;

 private:
  void run();

  const std::chrono::milliseconds cadence_;
  const SpoolSyncerCounters counters_;
  mutable std::mutex mutex_;  // guards files_ and stopping_
  std::condition_variable wake_;
  std::vector<std::weak_ptr<SpoolFile>> files_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace sgw::recording
