// Partials: the pieces of a recording's spool shipped to S3 while the call
// runs, so that a node destroyed with its disk loses at most one segment
// interval of each call (docs/failover.md "Segment shipping").
//
// Object layout in the partials bucket (s3.partials_bucket, never under
// Object Lock):
//   {region}/partial/{recording_id}/{seq:08}   spool bytes [offset, offset+length)
//   {region}/partial/{recording_id}/lease      the adopting node's lease (orphan_recovery.h)
// Each partial carries user metadata: node, region, recording-id,
// conversation-id, seq, offset, length, sha256 (hex, of the body),
// start-unix-us (the recording's start), segment-ms (the shipping interval).
//
// Two delivery-queue sinks (delivery_queue.h), so shipping and deletion are
// as durable as any delivery:
//   "partial"          one entry per partial: PUT (Content-MD5 and
//                      x-amz-checksum-sha256: the server checks the body), HEAD
//                      to verify, then the local partial file is removed;
//   "partials-delete"  one entry per recording, queued once its final S3
//                      entry is delivered: deletes every version under the
//                      recording's partials prefix, the lease last.
//
// Thread: the sinks are one per delivery thread (each owns an S3Client).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "storage/delivery_queue.h"
#include "storage/s3_client.h"
#include "storage/s3_sink.h"

namespace sgw::storage {

inline constexpr std::string_view kPartialSink = "partial";
inline constexpr std::string_view kPartialsDeleteSink = "partials-delete";
inline constexpr std::string_view kLeaseName = "lease";

// "{region}/partial/{recording_id}/"
std::string partials_prefix(std::string_view region, std::string_view recording_id);
// prefix + seq as 8 decimal digits (keys sort in shipping order).
std::string partial_key(std::string_view region, std::string_view recording_id, std::uint64_t seq);

// A key of the partials bucket, split. nullopt for anything else.
struct PartialKey {
  std::string region, recording_id;
  std::optional<std::uint64_t> seq;  // a partial
  bool lease = false;                // the lease object
};
std::optional<PartialKey> parse_partial_key(std::string_view key);

// What a partial says about itself (its user metadata), and its check.
struct PartialInfo {
  std::string node, region, recording_id, conversation_id;
  std::uint64_t seq = 0, offset = 0, length = 0;
  std::string sha256;  // hex
  std::int64_t start_unix_us = 0;
  std::int64_t segment_ms = 0;
  std::map<std::string, std::string> to_metadata() const;
  // nullopt when a field is missing or malformed.
  static std::optional<PartialInfo> from_metadata(const std::map<std::string, std::string>& m);
};

// Local partial file names in the shipper's folder: "<recording_id>.<seq>.<offset>.part".
std::string partial_file_name(std::string_view recording_id, std::uint64_t seq, std::uint64_t offset);
struct PartialFileName {
  std::string recording_id;
  std::uint64_t seq = 0, offset = 0;
};
std::optional<PartialFileName> parse_partial_file_name(std::string_view name);

struct PartialSinkOptions {
  S3ClientConfig client;  // the partials bucket
  std::string node, region;
  std::int64_t segment_ms = 0;
};

// Sink "partial". An entry has one object: path = the local partial file
// (named by partial_file_name), key = partial_key(), sha256 = the file's hex
// SHA-256 when it was written (a file that no longer matches is a permanent
// failure: it is never shipped as that partial). Partials are not locked, so
// a retry after a lost reply simply overwrites the same bytes.
class PartialSink : public DeliverySink {
 public:
  static common::Result<std::unique_ptr<PartialSink>> create(PartialSinkOptions options);
  DeliveryOutcome check() override;
  DeliveryOutcome deliver(DeliveryEntry& entry,
                          const std::function<void(const DeliveryEntry&)>& checkpoint) override;

 private:
  PartialSink(PartialSinkOptions options, std::unique_ptr<S3Client> client)
      : options_(std::move(options)), client_(std::move(client)) {}
  PartialSinkOptions options_;
  std::unique_ptr<S3Client> client_;
};

// Sink "partials-delete". An entry has one object whose key is the prefix.
class PartialsDeleteSink : public DeliverySink {
 public:
  static common::Result<std::unique_ptr<PartialsDeleteSink>> create(S3ClientConfig client);
  DeliveryOutcome deliver(DeliveryEntry& entry,
                          const std::function<void(const DeliveryEntry&)>& checkpoint) override;

 private:
  explicit PartialsDeleteSink(std::unique_ptr<S3Client> client) : client_(std::move(client)) {}
  std::unique_ptr<S3Client> client_;
};

// Deletes every version under `prefix`, partials first and the lease last (so
// a node that can still take the lease finds nothing left to adopt).
common::Status delete_partials(S3Client& client, std::string_view prefix);

// The partials-delete entry queued once `delivered` (an "s3" entry with a
// partials_prefix) is verified. recording_id "<id>.partials" (its own
// recording id, so it never holds up the local copy's retention).
DeliveryEntry partials_delete_entry(const DeliveryEntry& delivered);

// "2026-12-04T06:20:01.123Z" -> Unix ms; nullopt when malformed.
std::optional<std::int64_t> parse_s3_time_ms(std::string_view iso);

}  // namespace sgw::storage
