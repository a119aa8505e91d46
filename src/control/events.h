// Event webhooks (docs/integrations.md, "Event webhooks"): lifecycle events of
// every recording POSTed, signed, at least once, in order per recording, to
// events.url.
//
// The durable part is the delivery queue (storage/delivery_queue.h) with a
// folder of its own (<storage.queue_dir>/events): one entry per event
// (storage/webhook_event.h), WebhookSink as its only sink, so retries,
// backoff, restarts, torn files and the catalogue of what was delivered are
// the queue's. EventPublisher is the only way in: publish() stages the
// event's entry on the caller's thread (the SIP thread, the finaliser,
// delivery threads): one small file written and renamed, no fsync, no lock
// of the queue, so it survives a kill -9 from the moment publish() returns.
// One thread of its own (sgw-events) then admits the staged entries into the
// queue (fsync'd), in the order they were published. A dead receiver
// therefore costs entries on disk, never call time.
//
// Thread: publish() from any thread; stop() once, after the callers stopped.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/metrics.h"
#include "storage/delivery_queue.h"
#include "storage/webhook_event.h"

namespace sgw::control {

// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>": the
// X-Siprec-Signature header a receiver checks (docs/integrations.md).
std::string event_signature(const std::string& secret, std::int64_t unix_s, const std::string& body);

struct WebhookOptions {
  std::string url;
  std::string secret;
  std::uint32_t timeout_ms = 5000;  // one POST, connect included
};

// POSTs an entry's payload (application/json) with X-Siprec-Signature and
// X-Siprec-Event-Id. 2xx: delivered; anything else: retry (the queue's backoff).
// One instance per delivery thread (its own curl handle).
class WebhookSink : public storage::DeliverySink {
 public:
  explicit WebhookSink(WebhookOptions options);
  ~WebhookSink() override;
  WebhookSink(const WebhookSink&) = delete;
  WebhookSink& operator=(const WebhookSink&) = delete;
  storage::DeliveryOutcome deliver(storage::DeliveryEntry& entry,
                                   const std::function<void(const storage::DeliveryEntry&)>& checkpoint) override;

 private:
  WebhookOptions options_;
  void* curl_ = nullptr;  // CURL*
};

struct EventPublisherMetrics {
  common::Counter* published = nullptr;  // events staged (on disk)
  common::Counter* dropped = nullptr;    // invalid, or could not be written to disk
};

class EventPublisher {
 public:
  // `queue` must outlive the publisher; node/region go into every document.
  // max_buffered: staged entries kept in memory for admission; past it they
  // are admitted from the staged folder instead (nothing is lost).
  EventPublisher(storage::DeliveryQueue* queue, std::string node, std::string region,
                 EventPublisherMetrics metrics, std::size_t max_buffered = 10000);
  ~EventPublisher();
  EventPublisher(const EventPublisher&) = delete;
  EventPublisher& operator=(const EventPublisher&) = delete;

  // Any thread. Returns once the event is on disk (survives kill -9); never
  // waits for an fsync, the queue's lock or the receiver. An event that
  // cannot be written (invalid, disk full) is dropped: counted, logged.
  void publish(storage::WebhookEvent event);
  // Admits what is staged, then stops the thread.
  void stop();

 private:
  struct Staged {
    std::uint64_t seq = 0;
    storage::DeliveryEntry entry;
  };
  void run();
  // Admits the staged folder in seq order; false when an entry could not be
  // admitted (retried later; nothing after it is admitted before it).
  bool admit_from_disk();

  storage::DeliveryQueue* queue_;
  std::string node_, region_;
  EventPublisherMetrics metrics_;
  std::size_t max_buffered_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Staged> buffer_;  // staged, in publish order, not yet admitted
  // Admit from the staged folder instead of buffer_ (at start, after the
  // buffer overflowed, or after an admission failed): everything is there.
  bool from_disk_ = true;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace sgw::control
