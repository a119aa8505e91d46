// FallbackSink: residency-aware delivery to S3 (docs/failover.md,
// "Residency"). Wraps one S3 sink per bucket: the primary (s3.bucket) and the
// fallback buckets of the same residency zone (s3.fallback_buckets, the zone
// checked by the config). While the primary works, every recording goes
// there. Once the primary has failed (bucket-level: unreachable, 403, no such
// bucket, 5xx) for `fallback_after_ms` without a success in between,
// deliveries go to the first fallback that takes them; the primary is tried
// again at most every `probe_interval_ms` and, once it delivers, is used again.
//
// An entry is pinned to the bucket it started on (DeliveryEntry::bucket is set
// when the bucket is chosen): a recording is never split over two buckets.
// The one move is primary -> fallback once the primary counts as failed; the
// entry starts over on the fallback (objects the primary may already hold stay
// there). When a bucket is chosen, the recording JSON's `residency` section
// says where it goes (zone, bucket, primary, fallback and why) and each
// object's user metadata carries storage-zone, storage-bucket and, on a
// fallback, storage-fallback-for = the primary bucket.
//
// Thread: one FallbackSink per delivery thread; the ResidencyState is shared
// by all of them (its own mutex). deliver() blocks on the network.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "storage/delivery_queue.h"

namespace sgw::storage {

// How long the primary has been failing (shared by the delivery threads).
class ResidencyState {
 public:
  // A bucket-level failure of the primary at now_ms (starts the clock).
  void primary_failed(std::int64_t now_ms, const std::string& error);
  // The primary delivered: the clock stops. Returns true when it was failing.
  bool primary_ok();
  void primary_tried(std::int64_t now_ms);
  // 0 when the primary is not failing.
  std::int64_t failing_since_ms() const;
  std::int64_t last_primary_try_ms() const;
  std::string last_error() const;
  // True once per failing period: the first caller logs the move to the fallbacks.
  bool announce_fallback();

 private:
  mutable std::mutex mutex_;
  std::int64_t failing_since_ms_ = 0;
  std::int64_t last_try_ms_ = 0;
  std::string last_error_;
  bool announced_ = false;
};

struct ResidencyBucket {
  std::string bucket;
  std::string zone;
  std::unique_ptr<DeliverySink> sink;  // an S3Sink for this bucket
};

struct FallbackSinkOptions {
  std::int64_t fallback_after_ms = 300'000;
  std::int64_t probe_interval_ms = 60'000;
  std::function<std::int64_t()> now_ms;  // Unix ms; default the system clock
  common::Counter* fallback_deliveries = nullptr;  // recordings delivered to a fallback bucket
};

// The user metadata a recording's objects carry in `bucket` (names without x-amz-meta-).
std::map<std::string, std::string> residency_metadata(const std::string& zone, const std::string& bucket,
                                                      const std::string& primary_bucket);

class FallbackSink : public DeliverySink {
 public:
  // buckets[0] is the primary; the rest are the fallbacks in order.
  FallbackSink(FallbackSinkOptions options, std::shared_ptr<ResidencyState> state,
               std::vector<ResidencyBucket> buckets);

  // The primary's check (a failure starts the fallback clock); the fallbacks' are logged.
  DeliveryOutcome check() override;
  DeliveryOutcome deliver(DeliveryEntry& entry,
                          const std::function<void(const DeliveryEntry&)>& checkpoint) override;

 private:
  std::int64_t now() const;
  bool fallback_mode(std::int64_t now) const;
  // Points the entry at bucket i (starting over when it was elsewhere) and
  // writes the JSON's residency section.
  DeliveryOutcome choose(DeliveryEntry& entry, std::size_t i,
                         const std::function<void(const DeliveryEntry&)>& checkpoint);
  DeliveryOutcome deliver_to(DeliveryEntry& entry, std::size_t i,
                             const std::function<void(const DeliveryEntry&)>& checkpoint);

  FallbackSinkOptions options_;
  std::shared_ptr<ResidencyState> state_;
  std::vector<ResidencyBucket> buckets_;
};

}  // namespace sgw::storage
