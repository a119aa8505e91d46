// Event webhooks (docs/integrations.md, "Event webhooks"): lifecycle events of
// every recording POSTed, signed, at least once, in order per recording, to
// events.url.
//
// The durable part is the delivery queue (storage/delivery_queue.h) with a
// folder of its own (<storage.queue_dir>/events): one entry per event
// (storage/webhook_event.h), WebhookSink as its only sink, so retries,
// backoff, restarts, torn files and the catalogue of what was delivered are
// the queue's. EventPublisher is the only way in: publish() never does I/O on
// the caller's thread (the SIP thread, the finaliser, delivery threads) - it
// appends to a bounded buffer that one thread of its own writes into the
// queue. A dead receiver therefore costs entries on disk, never call time.
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
  common::Counter* published = nullptr;  // events written into the queue
  common::Counter* dropped = nullptr;    // buffer full, or the queue could not write them
};

class EventPublisher {
 public:
  // `queue` must outlive the publisher; node/region go into every document.
  EventPublisher(storage::DeliveryQueue* queue, std::string node, std::string region,
                 EventPublisherMetrics metrics, std::size_t max_buffered = 10000);
  ~EventPublisher();
  EventPublisher(const EventPublisher&) = delete;
  EventPublisher& operator=(const EventPublisher&) = delete;

  // Any thread, never blocks on I/O. Full buffer: dropped (counted, logged).
  void publish(storage::WebhookEvent event);
  // Writes what is buffered into the queue, then stops the thread.
  void stop();

 private:
  void run();
  void write(const storage::WebhookEvent& e);

  storage::DeliveryQueue* queue_;
  std::string node_, region_;
  EventPublisherMetrics metrics_;
  std::size_t max_buffered_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<storage::WebhookEvent> buffer_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace sgw::control
