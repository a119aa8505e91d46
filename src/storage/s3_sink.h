// S3Sink: delivers a recording's objects (audio file(s) and the JSON) to one
// S3 bucket, verifies each with HEAD, and delivers each object exactly once:
// every attempt first HEADs the key, and an object we wrote (our recording id
// and the file's SHA-256 in its user metadata, same size) is never uploaded
// again, whatever its ETag (SSE-KMS ETags are not MD5s) and whether or not the
// reply of the call that wrote it was lost. Object Lock, user metadata, SSE,
// tags, multipart resume, verification: docs/storage.md.
//
// Thread: one instance per delivery thread (it owns an S3Api, e.g. an S3Client
// with its curl handle). Every call blocks on the network.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/result.h"
#include "storage/delivery_queue.h"
#include "storage/s3_client.h"

namespace sgw::storage {

struct S3SinkOptions {
  S3ClientConfig client;  // endpoint, bucket, region, path style, resolved credentials
  std::optional<LockMode> lock_mode;  // Object Lock retention, when set
  std::uint32_t retention_days = 0;   // retain-until = recording start + days ...
  std::uint32_t retention_years = 0;  // ... or + calendar years
  bool legal_hold = false;
  ServerSideEncryption sse;
  std::map<std::string, std::string> tags;
  std::uint64_t multipart_threshold = 16ull << 20;  // bytes; larger objects go by multipart
  std::uint64_t part_size = 8ull << 20;             // bytes (S3: at least 5 MiB but the last)
  // Added to every object's user metadata (residency: storage-zone, storage-bucket, ...).
  std::map<std::string, std::string> extra_metadata;
};

// retain-until of a recording that started at start_unix_ms. Years are
// calendar years (29 February + 1 year = 28 February).
std::chrono::system_clock::time_point retain_until(std::int64_t start_unix_ms, std::uint32_t days,
                                                   std::uint32_t years);

// What one recording's objects get: the sink's options with the entry's
// per-recording overrides (the call-control hook, docs/integrations.md).
// Lock: the override's mode, else the configured one; retain-until: start +
// the override's days, else the configured days/years. A mode without any
// period (nothing to count from) locks nothing. Tags: the configured ones,
// the override's added (same name: the override's value).
struct ObjectSettings {
  std::optional<LockMode> lock_mode;
  std::chrono::system_clock::time_point retain_until{};
  std::map<std::string, std::string> tags;
};
ObjectSettings object_settings(const S3SinkOptions& options, const DeliveryEntry& entry);

// The ETag S3 gives an object uploaded in parts of `part_size`: hex MD5 of the
// concatenated raw part MD5s, "-", the number of parts. Computed from the file.
// With multipart, also the parts' MD5s and SHA-256s and the composite
// checksum S3 reports for a multipart upload with SHA-256 part checksums:
// base64 SHA-256 of the concatenated raw part SHA-256s, "-", the number of parts.
struct FileDigest {
  std::uint64_t size = 0;
  std::string md5_hex;
  std::string sha256_hex;
  std::string sha256_b64;
  std::vector<std::string> part_md5_hex;     // when multipart
  std::vector<std::string> part_sha256_b64;  // when multipart
  std::string multipart_etag;
  std::string composite_sha256;  // when multipart
};
common::Result<FileDigest> digest_file(const std::string& path, std::uint64_t part_size, bool multipart);

// A failed S3 call as a delivery outcome: retryable or permanent as the error
// says; 503 SlowDown / 429 ask the sink to slow down.
DeliveryOutcome outcome_of(const S3Error& e);

class S3Sink : public DeliverySink {
 public:
  static common::Result<std::unique_ptr<S3Sink>> create(S3SinkOptions options);
  // Over any S3Api (tests: an in-memory fake that injects faults).
  static std::unique_ptr<S3Sink> create(S3SinkOptions options, std::unique_ptr<S3Api> api);

  // HEAD bucket; with a lock mode, GetObjectLockConfiguration must say Enabled.
  DeliveryOutcome check() override;
  DeliveryOutcome deliver(DeliveryEntry& entry,
                          const std::function<void(const DeliveryEntry&)>& checkpoint) override;

 private:
  // What a HEAD of the key says, compared with the local file.
  struct ObjectCheck {
    enum class Kind {
      kVerified,        // ours, same bytes, metadata and retention: delivered
      kNeedsRetention,  // ours, same bytes, but no (or a shorter) retention: PutObjectRetention
                        // (tags are checked after, with GetObjectTagging: settle())
      kOursDiffers,     // ours (our recording id) but not what we would write now: never re-uploaded
      kNotOurs,         // a delete marker, or an object another writer put there
    } kind = Kind::kNotOurs;
    std::string why;      // what differs
    std::string checked;  // what was checked, for DeliveryObject::verified
  };
  S3Sink(S3SinkOptions options, std::unique_ptr<S3Api> client);
  DeliveryOutcome deliver_object(DeliveryEntry& entry, DeliveryObject& object,
                                 const std::map<std::string, std::string>& metadata,
                                 const std::function<void(const DeliveryEntry&)>& checkpoint);
  ObjectCheck check_object(const HeadObjectResult& head, const FileDigest& digest, bool multipart,
                           const std::map<std::string, std::string>& metadata, const ObjectSettings& want) const;

  S3SinkOptions options_;
  std::unique_ptr<S3Api> client_;
};

}  // namespace sgw::storage
