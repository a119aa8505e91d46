// WebhookEvent: one lifecycle event of a recording (docs/integrations.md,
// "Event webhooks") and its delivery entry. The session layer, the finaliser
// and the delivery queue raise events; control/events.h queues them durably in
// a delivery queue of their own (one entry per event, sink "webhook") and POSTs
// them. The document and the entry are built here, side by side, so the id,
// the per-recording order and the body cannot drift apart.
//
// Ids are deterministic: "<recording_id>.<stage>[.<sub>]", where the stage
// (10 started, 20 updated, 30 ended, 40 published, 45 failed, 50 delivered)
// follows the recording's life and `sub` tells repeated events apart (update
// number, sink). Entry files of one recording therefore sort in the order the
// events happen, the queue delivers them in that order (order_key), and an
// event raised twice (a recording finalised again after a crash) is queued once.
//
// Thread: plain values; the functions are pure and callable from any thread.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "storage/delivery_entry.h"

namespace sgw::storage {

inline constexpr std::string_view kWebhookSink = "webhook";

struct WebhookEvent {
  // session.started | session.updated | session.ended | recording.published |
  // recording.delivered | recording.failed
  std::string type;
  std::string recording_id;
  std::string conversation_id;
  std::string call_id;
  std::string sub;   // session.updated: its number; recording.delivered/failed: the sink
  std::string time;  // ISO 8601 UTC; empty: now, when the entry is built
  nlohmann::json data = nlohmann::json::object();
};

// The event's id (its idempotency key); "" for an unknown type.
std::string event_id(const WebhookEvent& e);

// The JSON document POSTed: {"id", "type", "time", "recording_id",
// "conversation_id", "call_id", "gateway": {"node", "region"}, "data"}.
nlohmann::json event_document(const WebhookEvent& e, const std::string& node, const std::string& region);

// The delivery entry of the event: recording_id is the event id, sink
// "webhook", order_key the recording id, payload the document's text.
// Errors (event.invalid) for an unknown type or a missing recording id.
common::Result<DeliveryEntry> event_entry(const WebhookEvent& e, const std::string& node, const std::string& region);

// recording.published: the recording's local files, read back from its JSON
// (audio files with size and SHA-256, `complete`) plus the JSON's own size
// and SHA-256. A JSON that cannot be read gives data.error instead.
WebhookEvent published_event(const std::string& recording_id, const std::string& conversation_id,
                             const std::string& call_id, const std::string& json_path);
// recording.delivered / recording.failed of one delivery entry (sub: its sink):
// bucket, and per object key, version id, size, SHA-256, and the Object Lock
// mode and retain-until verified on the object; or the failure's code and message.
WebhookEvent delivered_event(const DeliveryEntry& entry);
// bucket: the entry's (a bucket chosen before: a residency fallback), else
// `sink_bucket`, the sink's configured (primary) bucket the attempt went to.
WebhookEvent failed_event(const DeliveryEntry& entry, const std::string& sink_bucket);

}  // namespace sgw::storage
