#include "storage/fallback_sink.h"

#include <chrono>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/logging.h"
#include "storage/s3_client.h"

namespace sgw::storage {

void ResidencyState::primary_failed(std::int64_t now_ms, const std::string& error) {
  std::lock_guard lock(mutex_);
  if (failing_since_ms_ == 0) failing_since_ms_ = now_ms;
  last_error_ = error;
}

bool ResidencyState::primary_ok() {
  std::lock_guard lock(mutex_);
  bool was = failing_since_ms_ != 0;
  failing_since_ms_ = 0;
  last_error_.clear();
  announced_ = false;
  return was;
}

void ResidencyState::primary_tried(std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  last_try_ms_ = now_ms;
}

std::int64_t ResidencyState::failing_since_ms() const {
  std::lock_guard lock(mutex_);
  return failing_since_ms_;
}

std::int64_t ResidencyState::last_primary_try_ms() const {
  std::lock_guard lock(mutex_);
  return last_try_ms_;
}

std::string ResidencyState::last_error() const {
  std::lock_guard lock(mutex_);
  return last_error_;
}

bool ResidencyState::announce_fallback() {
  std::lock_guard lock(mutex_);
  if (announced_ || failing_since_ms_ == 0) return false;
  announced_ = true;
  return true;
}

std::map<std::string, std::string> residency_metadata(const std::string& zone, const std::string& bucket,
                                                      const std::string& primary_bucket) {
  std::map<std::string, std::string> m{{"storage-zone", zone}, {"storage-bucket", bucket}};
  if (bucket != primary_bucket) m["storage-fallback-for"] = primary_bucket;
  return m;
}

namespace {

// Failures of one recording (its local files, its own object) say nothing about the bucket.
bool bucket_level(const DeliveryOutcome& o) {
  return o.code != "Client.File" && o.code != "Client.Json" && o.code != "VerifyFailed";
}

std::string iso_ms(std::int64_t unix_ms) {
  return iso8601(std::chrono::system_clock::time_point(std::chrono::milliseconds(unix_ms)));
}

}  // namespace

FallbackSink::FallbackSink(FallbackSinkOptions options, std::shared_ptr<ResidencyState> state,
                           std::vector<ResidencyBucket> buckets)
    : options_(std::move(options)), state_(std::move(state)), buckets_(std::move(buckets)) {}

std::int64_t FallbackSink::now() const {
  if (options_.now_ms) return options_.now_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool FallbackSink::fallback_mode(std::int64_t t) const {
  std::int64_t since = state_->failing_since_ms();
  return buckets_.size() > 1 && since != 0 && t - since >= options_.fallback_after_ms;
}

DeliveryOutcome FallbackSink::check() {
  auto log = common::logger("delivery");
  DeliveryOutcome primary = buckets_[0].sink->check();
  if (primary.kind != DeliveryOutcome::Kind::kDelivered) state_->primary_failed(now(), primary.message);
  for (std::size_t i = 1; i < buckets_.size(); ++i) {
    DeliveryOutcome o = buckets_[i].sink->check();
    if (o.kind != DeliveryOutcome::Kind::kDelivered)
      log->error("fallback bucket {} (zone {}) check failed ({}): {}", buckets_[i].bucket, buckets_[i].zone, o.code,
                 o.message);
  }
  return primary;
}

DeliveryOutcome FallbackSink::choose(DeliveryEntry& entry, std::size_t i,
                                     const std::function<void(const DeliveryEntry&)>& checkpoint) {
  auto log = common::logger("delivery");
  const ResidencyBucket& b = buckets_[i];
  if (entry.bucket == b.bucket) return DeliveryOutcome::delivered();  // chosen before: JSON already says so
  if (!entry.bucket.empty()) {
    std::size_t done = 0;
    for (auto& o : entry.objects) {
      done += o.delivered ? 1 : 0;
      DeliveryObject fresh;
      fresh.path = o.path;
      fresh.key = o.key;
      fresh.content_type = o.content_type;
      o = std::move(fresh);
    }
    log->warn("{}: delivery moves from bucket {} to fallback bucket {} (zone {}){}", entry.recording_id,
              entry.bucket, b.bucket, b.zone,
              done ? "; " + std::to_string(done) + " object(s) already in " + entry.bucket + " stay there" : "");
  }
  // The recording JSON says where its objects go (written before any of them is uploaded).
  nlohmann::json residency{{"zone", b.zone}, {"bucket", b.bucket}, {"primary_bucket", buckets_[0].bucket},
                           {"fallback", i != 0}};
  if (i != 0) {
    residency["fallback_reason"] = "primary bucket " + buckets_[0].bucket + " failing since " +
                                   iso_ms(state_->failing_since_ms()) + ": " + state_->last_error();
  }
  for (const auto& o : entry.objects) {
    if (o.content_type != "application/json") continue;
    std::ifstream in(o.path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    auto doc = nlohmann::ordered_json::parse(text.begin(), text.end(), nullptr, false);
    if (!in || doc.is_discarded() || !doc.is_object()) {
      DeliveryOutcome f;
      f.kind = DeliveryOutcome::Kind::kPermanent;
      f.code = "Client.Json";
      f.message = "cannot read " + o.path + " (the JSON of " + entry.recording_id + ") to state its residency";
      return f;
    }
    doc["residency"] = residency;
    std::string out = doc.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
    if (auto st = common::write_file_atomically(o.path, out); !st) {
      DeliveryOutcome f;
      f.kind = DeliveryOutcome::Kind::kRetry;
      f.code = "Client.File";
      f.message = "write " + o.path + ": " + st.error().message;
      return f;
    }
  }
  entry.bucket = b.bucket;
  checkpoint(entry);
  return DeliveryOutcome::delivered();
}

DeliveryOutcome FallbackSink::deliver_to(DeliveryEntry& entry, std::size_t i,
                                         const std::function<void(const DeliveryEntry&)>& checkpoint) {
  auto log = common::logger("delivery");
  if (auto c = choose(entry, i, checkpoint); c.kind != DeliveryOutcome::Kind::kDelivered) return c;
  std::int64_t t = now();
  if (i == 0) state_->primary_tried(t);
  DeliveryOutcome out = buckets_[i].sink->deliver(entry, checkpoint);
  if (i == 0) {
    if (out.kind == DeliveryOutcome::Kind::kDelivered) {
      if (state_->primary_ok() && buckets_.size() > 1)
        log->info("primary bucket {} delivers again: deliveries go to it", buckets_[0].bucket);
    } else if (bucket_level(out)) {
      state_->primary_failed(t, out.message);
    }
  } else if (out.kind == DeliveryOutcome::Kind::kDelivered) {
    if (options_.fallback_deliveries) options_.fallback_deliveries->inc();
    log->warn("{}: delivered to fallback bucket {} (zone {}) instead of {}", entry.recording_id, buckets_[i].bucket,
              buckets_[i].zone, buckets_[0].bucket);
  }
  return out;
}

DeliveryOutcome FallbackSink::deliver(DeliveryEntry& entry,
                                      const std::function<void(const DeliveryEntry&)>& checkpoint) {
  // Pinned to a fallback: finish there.
  for (std::size_t i = 1; i < buckets_.size(); ++i)
    if (entry.bucket == buckets_[i].bucket) return deliver_to(entry, i, checkpoint);
  std::int64_t t = now();
  bool probe = t - state_->last_primary_try_ms() >= options_.probe_interval_ms;
  DeliveryOutcome out;
  if (!fallback_mode(t) || probe) {
    out = deliver_to(entry, 0, checkpoint);
    if (out.kind == DeliveryOutcome::Kind::kDelivered || !bucket_level(out) || !fallback_mode(now())) return out;
  }
  if (state_->announce_fallback())
    common::logger("delivery")->error(
        "primary bucket {} has failed since {} (s3.fallback_after_s passed): deliveries go to the fallback "
        "bucket(s) of zone {}: {}",
        buckets_[0].bucket, iso_ms(state_->failing_since_ms()), buckets_[0].zone, state_->last_error());
  for (std::size_t i = 1; i < buckets_.size(); ++i) {
    out = deliver_to(entry, i, checkpoint);
    if (out.kind == DeliveryOutcome::Kind::kDelivered || !bucket_level(out)) return out;
  }
  return out;
}

}  // namespace sgw::storage
