// SegmentShipper: ships each active recording's spool to S3 while the call
// runs (docs/failover.md "Segment shipping"). Every `interval` it looks at
// every open spool (SpoolSyncer::open_paths) and copies the bytes written
// since its last shipment into a partial file, then queues that file on the
// durable delivery queue (sink "partial", storage/partials.h). A partial is
// queued every interval even when nothing new was written (a call on hold):
// the newest partial of a recording is its node's proof of life, and a
// recording whose partials stop is adopted by another node (orphan_recovery.h).
//
// Thread: its own thread (start()/stop()); it reads spool files through the
// page cache and writes small files; it never touches a media worker, and
// S3 I/O happens on the delivery queue's threads. run_once() for tests.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "storage/delivery_queue.h"

namespace sgw::storage {

struct SegmentShipperOptions {
  std::chrono::milliseconds interval{5000};
  std::string dir;     // local partial files (created)
  std::string region;  // the partials' key prefix
  std::function<std::vector<std::string>()> open_spools;
  DeliveryQueue* queue = nullptr;  // not owned; outlives the shipper
  common::Counter* shipped = nullptr;  // partials queued
  common::Counter* bytes = nullptr;    // spool bytes queued
  common::Counter* errors = nullptr;   // partials that could not be written or queued (retried next pass)
};

class SegmentShipper {
 public:
  explicit SegmentShipper(SegmentShipperOptions options);
  ~SegmentShipper();
  SegmentShipper(const SegmentShipper&) = delete;
  SegmentShipper& operator=(const SegmentShipper&) = delete;

  void start();
  void stop();
  // One pass over the open spools; returns how many partials were queued.
  std::size_t run_once();

 private:
  struct State {
    std::uint64_t offset = 0;  // spool bytes shipped so far
    std::uint64_t seq = 0;     // next partial's number
    std::string conversation_id;
    std::int64_t start_unix_ms = 0;
  };
  bool ship(const std::string& path, State& st);

  SegmentShipperOptions options_;
  std::map<std::string, State> states_;  // by spool path; run_once's thread only
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace sgw::storage
