// SegmentShipper: ships the active recordings' spools to S3 while the calls
// run (docs/failover.md "Segment shipping"). Every `interval` it cuts, from
// every open spool (SpoolSyncer::open_paths), the bytes written since the
// last cut: ONE partial per interval (storage/partials.h), held as an open
// descriptor and a byte range per spool (PartialBodies; nothing is copied or
// written here), and queues it on the delivery queue (sink "partial"), whose
// upload streams it from the spools. At most `max_in_flight` partials wait
// for their upload: beyond that no cut is made (the next one carries the
// bytes), so a slow bucket costs descriptors, never memory. A partial is cut every interval while anything of the run
// is at stake (a call open, or a recording whose final copy is not delivered
// yet), even with no new bytes: the newest partial is the node's proof of life
// and says which recordings an adopter must rebuild (orphan_recovery.h).
//
// Clean-up: once a recording's final S3 entry is delivered and verified
// (recording_delivered), it leaves the pending list; an uploaded partial none
// of whose chunks is pending any more, and that is not the newest uploaded
// one, is deleted (sink "partials-delete", one entry per run at a time, keys
// in seq order). When nothing is pending, every uploaded partial goes.
//
// Thread: its own thread (start()/stop()); it opens and stats spool files; it
// never touches a media worker, and S3 I/O (and the reading of the spools'
// bytes) happens on the delivery queue's threads.
// recording_delivered() and partial_uploaded() from any thread (the delivery
// queue's on_delivered). run_once() for tests.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "storage/delivery_queue.h"
#include "storage/partials.h"

namespace sgw::storage {

struct SegmentShipperOptions {
  std::chrono::milliseconds interval{5000};
  std::string node;    // the partials' key prefix: {region}/partial/{node}/{run}/
  std::string region;
  std::uint64_t run = 0;  // this process's run (Unix ms of its start); 0: now
  std::function<std::vector<std::string>()> open_spools;
  DeliveryQueue* queue = nullptr;  // not owned; outlives the shipper
  std::shared_ptr<PartialBodies> bodies;  // shared with the "partial" sinks; not null
  std::size_t max_in_flight = 2;          // partials cut and not uploaded yet
  std::function<std::int64_t()> now_ms;  // Unix ms; default the system clock
  common::Counter* shipped = nullptr;  // partials queued
  common::Counter* bytes = nullptr;    // spool bytes queued
  common::Counter* errors = nullptr;   // spools that could not be opened, partials not queued (retried next pass)
  common::Counter* deferred = nullptr; // intervals with no cut: max_in_flight partials still uploading
};

class SegmentShipper {
 public:
  explicit SegmentShipper(SegmentShipperOptions options);
  ~SegmentShipper();
  SegmentShipper(const SegmentShipper&) = delete;
  SegmentShipper& operator=(const SegmentShipper&) = delete;

  void start();
  void stop();
  // One cut over the open spools; true when a partial was queued.
  bool run_once();

  std::uint64_t run() const { return options_.run; }
  // The final recording `recording_id` is delivered and verified: its bytes
  // in the partials are needed no more.
  void recording_delivered(const std::string& recording_id);
  // A delivered "partial" entry (its recording id, partial_entry_id()); entries of other runs are ignored.
  void partial_uploaded(const std::string& entry_id);

  // Tests: recordings pending, and partials not deleted yet (by seq).
  std::set<std::string> pending() const;
  std::vector<std::uint64_t> kept() const;

 private:
  struct Cut {
    std::string key;
    std::set<std::string> recordings;  // with bytes in this partial
    bool uploaded = false;
  };
  std::int64_t now() const;
  void clean_up();

  SegmentShipperOptions options_;
  std::map<std::string, std::uint64_t> offsets_;  // spool path -> bytes shipped; run_once's thread only
  std::uint64_t next_seq_ = 0;                    // run_once's thread only
  std::int64_t last_deferred_log_ms_ = 0;         // run_once's thread only
  mutable std::mutex state_mutex_;                // the members below
  std::set<std::string> pending_;
  std::map<std::string, std::int64_t> delivered_;  // recording -> when (not pending again)
  std::map<std::uint64_t, Cut> cuts_;             // by seq, not deleted yet
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace sgw::storage
