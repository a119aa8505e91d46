// DeliveryEntry: the durable state of one recording's delivery to one sink,
// one small file per (recording, sink) in the delivery queue's folder. The
// on-disk format (a checksummed header line, then JSON) and the state machine
// are in docs/storage.md.
//
// Thread: plain values; encode/decode are pure and callable from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "recording/call_decision.h"

namespace sgw::storage {

//   queued ──attempt──▶ uploading ──verified──▶ delivered
//     ▲  ╲                  │  ╲
//     │   ╲── permanent ──▶ failed (retried at the capped backoff, or by `deliveries retry`)
//     └──── retryable error (attempts+1, next attempt after backoff)
enum class DeliveryState { kQueued, kUploading, kDelivered, kFailed };
std::string_view to_string(DeliveryState state);
std::optional<DeliveryState> parse_delivery_state(std::string_view text);

struct DeliveryPart {
  int number = 0;
  std::uint64_t size = 0;
  std::string etag;             // quotes stripped
  std::string checksum_sha256;  // base64
};

// One file of the recording (an audio file or the JSON) and its object.
struct DeliveryObject {
  std::string path;          // local file, absolute or relative to the daemon's working directory
  std::string key;           // key in the sink (S3 object key; for "local", path under recording.dir)
  std::string content_type;  // "audio/wav", "application/json"
  // Multipart progress (S3): the upload id and the parts the server has.
  std::string upload_id;
  std::vector<DeliveryPart> parts;
  // Set when verified.
  bool delivered = false;
  std::uint64_t size = 0;
  std::string etag;
  std::string version_id;
  std::string sha256;    // hex SHA-256 of the delivered bytes (S3: also in the object's user metadata)
  std::string verified;  // what was checked, e.g. "size etag metadata retention=COMPLIANCE@2031-..."
};

// Per-recording object settings that replace the sink's configured ones: the
// call-control hook's answer (docs/integrations.md), carried in the entry so
// they survive a restart. Empty: the configuration's.
struct ObjectOverrides {
  std::string retention_mode;        // "COMPLIANCE" | "GOVERNANCE"; empty: s3.retention_mode
  std::uint32_t retention_days = 0;  // from the recording's start; 0: s3.retention_days/years
  std::map<std::string, std::string> tags;  // added to s3.tags (same name: this value)
  bool empty() const { return retention_mode.empty() && retention_days == 0 && tags.empty(); }
  bool operator==(const ObjectOverrides&) const = default;
};

// The delivery's share of the call-control hook's decision (already validated
// by recording::parse_hook_answer): retention and tags.
inline ObjectOverrides object_overrides(const recording::CallDecision& d) {
  ObjectOverrides o;
  o.retention_mode = d.retention_mode.value_or("");
  o.retention_days = d.retention_days.value_or(0);
  o.tags = d.tags;
  return o;
}

struct DeliveryEntry {
  std::string recording_id;
  std::string sink;  // "local", "s3"
  DeliveryState state = DeliveryState::kQueued;
  std::int64_t start_unix_ms = 0;  // the recording's start (retention is counted from it)
  std::int64_t end_unix_ms = 0;    // the recording's end (catalogue)
  std::string conversation_id;     // (catalogue: fragments are stitched per conversation)
  std::string call_id;             // the recording's SIP Call-ID (its recording.delivered/failed events); "" in older entries
  std::string bucket;              // s3: the bucket it was delivered to (set on delivery)
  // s3: the prefix of the recording's shipped partials ("london/partial/<id>/"),
  // deleted once this entry is delivered (docs/failover.md); empty: none shipped.
  std::string partials_prefix;
  // Entries with the same non-empty order_key are attempted one at a time, in
  // the order of their file names (event webhooks: the recording id, so a
  // recording's events go out in order; docs/integrations.md).
  std::string order_key;
  // A document delivered as is (event webhooks: the event's JSON); empty for
  // file sinks. Not kept in the catalogue.
  std::string payload;
  ObjectOverrides overrides;  // s3: the hook's retention and tags for this recording
  std::vector<DeliveryObject> objects;
  std::uint32_t attempts = 0;  // failed attempts since the last success / requeue
  std::string last_error;      // one line, naming bucket, key and code
  std::string last_error_code;
  std::int64_t created_unix_ms = 0;
  std::int64_t updated_unix_ms = 0;
  std::int64_t next_attempt_unix_ms = 0;
  std::int64_t delivered_unix_ms = 0;
  std::int64_t local_deleted_unix_ms = 0;  // "local" sink: when retention removed the files
};

// File name of an entry in the queue folder: "<recording_id>.<sink>.dq".
std::string entry_file_name(std::string_view recording_id, std::string_view sink);

// "SGWDQ1 <length> <sha256 hex of the JSON>\n<JSON>"
std::string encode_entry(const DeliveryEntry& entry);
// Checks the header, the length and the checksum, then the JSON. Errors
// (delivery.corrupt) name `source` and what is wrong; a torn or edited file is
// never trusted.
common::Result<DeliveryEntry> decode_entry(std::string_view bytes, const std::string& source);

}  // namespace sgw::storage
