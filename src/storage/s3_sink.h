// S3Sink: delivers a recording's objects (audio file(s) and the JSON) to one
// S3 bucket, verifies each with HEAD, and makes re-delivery idempotent (a
// verified object already under the key is not uploaded again). Object Lock,
// user metadata, SSE, tags, multipart resume: docs/storage.md.
//
// Thread: one instance per delivery thread (it owns an S3Client, which owns a
// curl handle). Every call blocks on the network.
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
};

// retain-until of a recording that started at start_unix_ms. Years are
// calendar years (29 February + 1 year = 28 February).
std::chrono::system_clock::time_point retain_until(std::int64_t start_unix_ms, std::uint32_t days,
                                                   std::uint32_t years);

// The ETag S3 gives an object uploaded in parts of `part_size`: hex MD5 of the
// concatenated raw part MD5s, "-", the number of parts. Computed from the file.
struct FileDigest {
  std::uint64_t size = 0;
  std::string md5_hex;
  std::string sha256_b64;
  std::vector<std::string> part_md5_hex;  // when multipart
  std::string multipart_etag;
};
common::Result<FileDigest> digest_file(const std::string& path, std::uint64_t part_size, bool multipart);

class S3Sink : public DeliverySink {
 public:
  static common::Result<std::unique_ptr<S3Sink>> create(S3SinkOptions options);

  // HEAD bucket; with a lock mode, GetObjectLockConfiguration must say Enabled.
  DeliveryOutcome check() override;
  DeliveryOutcome deliver(DeliveryEntry& entry,
                          const std::function<void(const DeliveryEntry&)>& checkpoint) override;

 private:
  S3Sink(S3SinkOptions options, std::unique_ptr<S3Client> client);
  DeliveryOutcome deliver_object(DeliveryEntry& entry, DeliveryObject& object,
                                 const std::map<std::string, std::string>& metadata,
                                 const std::function<void(const DeliveryEntry&)>& checkpoint);
  // "" when the object is what we uploaded; else what differs.
  std::string verify(const HeadObjectResult& head, const FileDigest& digest, bool multipart,
                     const std::map<std::string, std::string>& metadata,
                     std::chrono::system_clock::time_point until) const;

  S3SinkOptions options_;
  std::unique_ptr<S3Client> client_;
};

}  // namespace sgw::storage
