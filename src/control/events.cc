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
  if (event.time.empty()) event.time = common::utc_now_iso8601();
  {
    std::lock_guard lock(mutex_);
    if (!stopping_ && buffer_.size() < max_buffered_) {
      buffer_.push_back(std::move(event));
      cv_.notify_one();
      return;
    }
  }
  if (metrics_.dropped) metrics_.dropped->inc();
  common::logger("events")->error("{}: event {} dropped: {} events waiting to be written (or stopping)",
                                  event.recording_id, event.type, max_buffered_);
}

void EventPublisher::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void EventPublisher::write(const storage::WebhookEvent& e) {
  auto log = common::logger("events");
  auto entry = storage::event_entry(e, node_, region_);
  if (!entry) {
    if (metrics_.dropped) metrics_.dropped->inc();
    log->error("{}: event {} dropped: {}", e.recording_id, e.type, entry.error().message);
    return;
  }
  auto r = queue_->enqueue(std::move(entry).value());
  if (!r) {
    if (metrics_.dropped) metrics_.dropped->inc();
    log->error("{}: event {} dropped: cannot queue it: {}", e.recording_id, e.type, r.error().message);
    return;
  }
  // false: the same event (same id) is queued or was delivered already.
  if (*r && metrics_.published) metrics_.published->inc();
}

void EventPublisher::run() {
  common::set_thread_name("sgw-events");
  std::unique_lock lock(mutex_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || !buffer_.empty(); });
    if (buffer_.empty() && stopping_) return;
    auto e = std::move(buffer_.front());
    buffer_.pop_front();
    lock.unlock();
    write(e);
    lock.lock();
  }
}

}  // namespace sgw::control
