#include "control/events.h"

#include <chrono>

#include <curl/curl.h>

#include "common/ids.h"
#include "common/logging.h"
#include "common/thread_name.h"
#include "storage/sigv4.h"

namespace sgw::control {

std::string event_signature(const std::string& secret, std::int64_t unix_s, const std::string& body) {
  std::string t = std::to_string(unix_s);
  return "t=" + t + ",v1=" + storage::hex(storage::hmac_sha256(secret, t + "." + body));
}

WebhookSink::WebhookSink(WebhookOptions options) : options_(std::move(options)) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  curl_ = curl_easy_init();
}

WebhookSink::~WebhookSink() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

storage::DeliveryOutcome WebhookSink::deliver(storage::DeliveryEntry& entry,
                                              const std::function<void(const storage::DeliveryEntry&)>&) {
  storage::DeliveryOutcome out;
  auto* easy = static_cast<CURL*>(curl_);
  if (!easy) {
    out.kind = storage::DeliveryOutcome::Kind::kRetry;
    out.code = "curl.init";
    out.message = "event " + entry.recording_id + ": curl_easy_init failed";
    return out;
  }
  const std::int64_t now_s =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::string signature = "X-Siprec-Signature: " + event_signature(options_.secret, now_s, entry.payload);
  std::string id = "X-Siprec-Event-Id: " + entry.recording_id;
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  headers = curl_slist_append(headers, signature.c_str());
  headers = curl_slist_append(headers, id.c_str());
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_reset(easy);
  curl_easy_setopt(easy, CURLOPT_URL, options_.url.c_str());
  curl_easy_setopt(easy, CURLOPT_POST, 1L);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, entry.payload.data());
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(entry.payload.size()));
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout_ms));
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  // The answer's body is not used.
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION,
                   +[](char*, std::size_t size, std::size_t n, void*) -> std::size_t { return size * n; });
  CURLcode rc = curl_easy_perform(easy);
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  if (rc == CURLE_OK && status >= 200 && status <= 299) return storage::DeliveryOutcome::delivered();
  // Every failure is retried: a receiver that is down, refuses or times out
  // gets the event again after the queue's backoff (at least once).
  out.kind = storage::DeliveryOutcome::Kind::kRetry;
  if (rc != CURLE_OK) {
    out.code = "Transport." + std::to_string(static_cast<int>(rc));
    out.message = "event " + entry.recording_id + " POST " + options_.url + ": " + curl_easy_strerror(rc);
  } else {
    out.code = "HTTP " + std::to_string(status);
    out.message = "event " + entry.recording_id + " POST " + options_.url + ": answered HTTP " + std::to_string(status);
    out.slowdown = status == 429 || status == 503;
  }
  return out;
}

EventPublisher::EventPublisher(storage::DeliveryQueue* queue, std::string node, std::string region,
                               EventPublisherMetrics metrics, std::size_t max_buffered)
    : queue_(queue), node_(std::move(node)), region_(std::move(region)), metrics_(metrics),
      max_buffered_(max_buffered) {
  thread_ = std::thread([this] { run(); });
}

EventPublisher::~EventPublisher() { stop(); }

void EventPublisher::publish(storage::WebhookEvent event) {
  auto log = common::logger("events");
  if (event.time.empty()) event.time = common::utc_now_iso8601();
  auto entry = storage::event_entry(event, node_, region_);
  if (!entry) {
    if (metrics_.dropped) metrics_.dropped->inc();
    log->error("{}: event {} dropped: {}", event.recording_id, event.type, entry.error().message);
    return;
  }
  // On disk before we return: from here a kill -9 does not lose it.
  auto seq = queue_->stage(*entry);
  if (!seq) {
    if (metrics_.dropped) metrics_.dropped->inc();
    log->error("{}: event {} dropped: cannot write it: {}", event.recording_id, event.type, seq.error().message);
    return;
  }
  if (metrics_.published) metrics_.published->inc();
  log->debug("{}: event {} ({}) published", event.recording_id, entry->recording_id, event.type);
  {
    std::lock_guard lock(mutex_);
    if (from_disk_) return;  // the thread admits it from the staged folder
    if (buffer_.size() < max_buffered_) {
      buffer_.push_back({*seq, std::move(entry).value()});
    } else {
      from_disk_ = true;
      buffer_.clear();
      log->warn("{} events waiting to be queued: admitting them from the staged folder", max_buffered_);
    }
  }
  cv_.notify_one();
}

void EventPublisher::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

bool EventPublisher::admit_from_disk() {
  auto n = queue_->admit_staged();
  if (!n) {
    common::logger("events")->error("events not queued yet (they stay staged on disk, retried in 1 s): {}",
                                     n.error().message);
    return false;
  }
  return true;
}

void EventPublisher::run() {
  common::set_thread_name("sgw-events");
  auto log = common::logger("events");
  queue_->prepare_staging();
  std::unique_lock lock(mutex_);
  for (;;) {
    if (from_disk_) {
      // Every event staged so far is in the folder (those still being
      // written are left for later by admit_staged()); events published from
      // here on go to the buffer again, after them.
      from_disk_ = false;
      buffer_.clear();
      lock.unlock();
      bool ok = admit_from_disk();
      lock.lock();
      if (!ok) {
        from_disk_ = true;
        buffer_.clear();
        if (stopping_) return;  // they stay staged: admitted at the next start
        cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; });
      }
      continue;
    }
    if (buffer_.empty()) {
      if (stopping_) return;
      cv_.wait(lock, [this] { return stopping_ || from_disk_ || !buffer_.empty(); });
      continue;
    }
    Staged s = std::move(buffer_.front());
    buffer_.pop_front();
    lock.unlock();
    std::string id = s.entry.recording_id;
    auto r = queue_->admit(s.seq, std::move(s.entry));
    lock.lock();
    if (!r) {
      // Later events must not overtake it: from now on the folder, in order.
      log->error("event {} not queued yet (it stays staged on disk, retried): {}", id, r.error().message);
      from_disk_ = true;
    }
  }
}

}  // namespace sgw::control
