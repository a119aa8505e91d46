// S3Client: synchronous S3 REST calls over libcurl, signed with our SigV4
// signer (storage/sigv4.h). One call = one HTTP request: no retries here; an
// error says whether it is worth retrying (S3Error::retryable), and the
// delivery queue owns the policy. See docs/s3.md.
//
// Thread: thread-compatible. One instance owns one curl easy handle (kept for
// connection reuse); use one instance per thread. Blocking: never call on a
// media or SIP thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "storage/aws_credentials.h"
#include "storage/sigv4.h"

namespace sgw::storage {

// ---------------------------------------------------------------------------
// Credentials: config, then AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
// AWS_SESSION_TOKEN, then the shared credentials file
// ($AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, profile $AWS_PROFILE or
// "default"). Secrets never appear in an error message or a log line.
// make_credential_provider() (storage/aws_credentials.h) continues this chain
// with web identity, container and instance-profile credentials.

struct CredentialSources {
  std::optional<SigV4Credentials> configured;  // from the config file / CLI
  std::string profile;                         // overrides AWS_PROFILE when set
  // Environment lookup; defaults to ::getenv. Tests pass a map.
  std::function<std::optional<std::string>(const char*)> getenv;
  std::string region;  // s3.region: the STS region for web identity (else AWS_REGION)
};

// Errors: s3.credentials.{none, file, profile, incomplete}, naming the source
// (file path, profile, variable) but never a key.
common::Result<SigV4Credentials> resolve_credentials(const CredentialSources& sources);

// Parses an INI credentials file's text for one profile.
common::Result<SigV4Credentials> parse_credentials_file(std::string_view text,
                                                        std::string_view profile,
                                                        std::string_view file_name);

// ---------------------------------------------------------------------------

struct S3ClientConfig {
  // "http://127.0.0.1:7480", "https://s3.eu-central-1.amazonaws.com",
  // "https://minio.example:9000". Empty: https://s3.<region>.amazonaws.com.
  std::string endpoint;
  std::string region = "us-east-1";
  std::string bucket;
  bool path_style = false;  // https://host/bucket/key rather than https://bucket.host/key
  SigV4Credentials credentials;  // resolved (resolve_credentials()); unused with a provider
  // When set, asked before every request (temporary credentials, refreshed);
  // shared by every client of the process.
  std::shared_ptr<CredentialProvider> credential_provider;
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds request_timeout{600'000};  // whole request; 0 = none
  // Abort a transfer slower than low_speed_bytes/s for low_speed_time (0 = off).
  long low_speed_bytes = 1024;
  std::chrono::seconds low_speed_time{60};
  // TLS: verify the peer (never off in production), optional CA bundle/dir.
  bool verify_tls = true;
  std::string ca_file;
  std::string ca_path;
  // The clock that dates requests (x-amz-date). Tests may fake it.
  std::function<std::chrono::system_clock::time_point()> now;
};

// One failed request. http_status 0 = no HTTP response (connect, TLS, timeout).
struct S3Error {
  std::string operation;   // "PutObject"
  std::string bucket;
  std::string key;         // may be empty
  int http_status = 0;
  std::string code;        // S3 <Code> ("AccessDenied", "SlowDown"...), "Http404" without a body,
                           // "Transport.<curl error>" without a response, or "Client.<what>"
  std::string message;     // S3 <Message>, or curl's text
  std::string request_id;  // x-amz-request-id
  bool retryable = false;  // 5xx, 429, SlowDown, RequestTimeout, transport errors

  // One line: "PutObject s3://bucket/key: HTTP 403 SignatureDoesNotMatch: <message> (request id X)"
  std::string describe() const;
  // As a common::Error {"s3.<code>", describe()}.
  common::Error to_error() const;
};

template <typename T>
using S3Result = common::Result<T, S3Error>;
struct S3Ok {};

enum class LockMode { kGovernance, kCompliance };
std::string_view to_string(LockMode mode);  // "GOVERNANCE" / "COMPLIANCE"

struct ObjectLock {
  LockMode mode = LockMode::kCompliance;
  std::chrono::system_clock::time_point retain_until{};
};

struct ServerSideEncryption {
  enum class Kind { kNone, kS3, kKms } kind = Kind::kNone;  // kS3: AES256; kKms: aws:kms
  std::string kms_key_id;                                   // kKms only; empty = account default
};

struct PutObjectOptions {
  std::string content_type;  // empty: not sent
  // User metadata, names without "x-amz-meta-"; sent as x-amz-meta-<name>.
  std::map<std::string, std::string> metadata;
  bool content_md5 = true;      // send Content-MD5 (base64 MD5): the server verifies it
  bool checksum_sha256 = true;  // send x-amz-checksum-sha256 (base64 SHA-256)
  std::optional<ObjectLock> lock;
  bool legal_hold = false;
  ServerSideEncryption sse;
  std::map<std::string, std::string> tags;  // sent URL-encoded in x-amz-tagging
  // "*": create only if the key has no object (If-None-Match: *); the server
  // answers 412 PreconditionFailed otherwise. radosgw (Ceph 16) honours it
  // atomically on an unversioned bucket and ignores it on a versioned one
  // (docs/failover.md "Adoption").
  std::string if_none_match;
  // The body's SHA-256 (raw, 32 bytes) when the caller computed it already:
  // with content_md5 false, put_object() then does not hash the body again
  // (it is the SigV4 payload hash, which the server checks, and the checksum).
  std::string sha256_raw;
};

// A body produced piece by piece while it is sent (put_object_stream): its
// size is known before the request, its bytes are read in order from 0 (a
// rewind by curl starts again at 0).
class BodySource {
 public:
  virtual ~BodySource() = default;
  virtual std::uint64_t size() const = 0;
  // Up to n bytes at `pos` into buf: the count (> 0), or -errno.
  virtual std::int64_t read(std::uint64_t pos, char* buf, std::size_t n) = 0;
};

struct PutObjectResult {
  std::string etag;             // as returned, with quotes stripped
  std::string version_id;       // empty when the bucket is not versioned
  std::string checksum_sha256;  // base64, when the server returned one
};

struct HeadObjectResult {
  std::uint64_t size = 0;
  std::string etag;  // quotes stripped
  std::string version_id;
  std::string content_type;
  std::string last_modified;
  std::map<std::string, std::string> metadata;  // x-amz-meta-* names (lower-case) without prefix
  std::string checksum_sha256;                  // base64, if the server keeps checksums
  std::optional<LockMode> lock_mode;
  std::string retain_until;  // ISO 8601 as returned
  bool legal_hold = false;
  std::string sse;           // x-amz-server-side-encryption
  bool delete_marker = false;
};

struct GetObjectResult {
  HeadObjectResult head;
  std::string body;
};

struct DeleteObjectResult {
  bool delete_marker = false;
  std::string version_id;
};

struct ObjectLockConfiguration {
  bool enabled = false;
  std::optional<LockMode> default_mode;  // default retention rule, if any
  int default_days = 0;                  // one of days/years when default_mode is set
  int default_years = 0;
};

struct ObjectVersion {
  std::string key;
  std::string version_id;
  bool is_latest = false;
  bool delete_marker = false;
  std::uint64_t size = 0;
  std::string etag;
  std::string last_modified;  // ISO 8601 as returned ("2026-12-04T06:20:01.123Z")
};

struct UploadPartResult {
  int part_number = 0;
  std::string etag;             // quotes stripped
  std::string checksum_sha256;  // base64; what we sent (or the server's, if returned)
};

struct PartInfo {
  int part_number = 0;
  std::string etag;
  std::uint64_t size = 0;
};

struct CompleteMultipartResult {
  std::string etag;
  std::string version_id;
};

// The object calls the S3 sink makes: a seam between the sink's rules (idempotency,
// resume, verification) and the wire. S3Client implements it over HTTP; unit
// tests implement it in memory and inject faults a real server cannot be made
// to produce on demand (a lost reply, SSE-KMS ETags). Contracts: as S3Client's.
class S3Api {
 public:
  virtual ~S3Api() = default;
  virtual S3Result<ObjectLockConfiguration> get_object_lock_configuration() = 0;
  virtual S3Result<std::vector<ObjectVersion>> list_object_versions(std::string_view prefix) = 0;
  virtual S3Result<PutObjectResult> put_object_file(std::string_view key, const std::filesystem::path& file,
                                                    const PutObjectOptions& options) = 0;
  virtual S3Result<HeadObjectResult> head_object(std::string_view key, std::string_view version_id = {},
                                                 bool checksum_mode = true) = 0;
  virtual S3Result<GetObjectResult> get_object(std::string_view key, std::string_view version_id = {}) = 0;
  virtual S3Result<S3Ok> put_object_retention(std::string_view key, std::string_view version_id,
                                              const ObjectLock& lock, bool bypass_governance = false) = 0;
  // GetObjectTagging / PutObjectTagging of one version (empty: the latest).
  virtual S3Result<std::map<std::string, std::string>> get_object_tagging(std::string_view key,
                                                                          std::string_view version_id) = 0;
  virtual S3Result<S3Ok> put_object_tagging(std::string_view key, std::string_view version_id,
                                            const std::map<std::string, std::string>& tags) = 0;
  virtual S3Result<std::string> create_multipart_upload(std::string_view key, const PutObjectOptions& options) = 0;
  virtual S3Result<UploadPartResult> upload_part_file(std::string_view key, std::string_view upload_id,
                                                      int part_number, const std::filesystem::path& file,
                                                      std::uint64_t offset, std::uint64_t length,
                                                      bool checksum_sha256) = 0;
  virtual S3Result<CompleteMultipartResult> complete_multipart_upload(
      std::string_view key, std::string_view upload_id, const std::vector<UploadPartResult>& parts) = 0;
  virtual S3Result<std::vector<PartInfo>> list_parts(std::string_view key, std::string_view upload_id) = 0;
};

class S3Client : public S3Api {
 public:
  // Fails on an endpoint that is not http(s)://host[:port][/], or an empty bucket/region.
  static common::Result<std::unique_ptr<S3Client>> create(S3ClientConfig config);
  ~S3Client() override;
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  const S3ClientConfig& config() const { return config_; }
  // The URL of a key ("" = the bucket), as it is requested.
  std::string url_for(std::string_view key) const;

  // Bucket.
  S3Result<S3Ok> create_bucket(bool object_lock_enabled);
  S3Result<S3Ok> delete_bucket();
  S3Result<ObjectLockConfiguration> get_object_lock_configuration() override;
  S3Result<S3Ok> put_object_lock_configuration(const ObjectLockConfiguration& config);
  // All versions and delete markers under a prefix (follows pagination).
  S3Result<std::vector<ObjectVersion>> list_object_versions(std::string_view prefix) override;

  // Objects.
  S3Result<PutObjectResult> put_object(std::string_view key, std::string_view body,
                                       const PutObjectOptions& options);
  S3Result<PutObjectResult> put_object_file(std::string_view key, const std::filesystem::path& file,
                                            const PutObjectOptions& options) override;
  // The body streamed from `source`, signed as UNSIGNED-PAYLOAD: nothing hashes
  // it (content_md5 and checksum_sha256 are ignored), so its integrity is the
  // caller's (partials carry a CRC-32C per chunk, storage/partials.h) and the
  // transport's (TLS).
  S3Result<PutObjectResult> put_object_stream(std::string_view key, BodySource& source,
                                              const PutObjectOptions& options);
  // checksum_mode: ask for x-amz-checksum-sha256 (x-amz-checksum-mode: ENABLED).
  S3Result<HeadObjectResult> head_object(std::string_view key, std::string_view version_id = {},
                                         bool checksum_mode = true) override;
  S3Result<GetObjectResult> get_object(std::string_view key, std::string_view version_id = {}) override;
  S3Result<DeleteObjectResult> delete_object(std::string_view key, std::string_view version_id = {},
                                             bool bypass_governance = false);
  S3Result<S3Ok> put_object_retention(std::string_view key, std::string_view version_id,
                                      const ObjectLock& lock, bool bypass_governance = false) override;

  S3Result<std::map<std::string, std::string>> get_object_tagging(std::string_view key,
                                                                  std::string_view version_id) override;
  S3Result<S3Ok> put_object_tagging(std::string_view key, std::string_view version_id,
                                    const std::map<std::string, std::string>& tags) override;

  // Multipart. With checksum_sha256 the upload declares x-amz-checksum-algorithm
  // SHA256, every part sends its x-amz-checksum-sha256, and complete lists them.
  S3Result<std::string> create_multipart_upload(std::string_view key, const PutObjectOptions& options) override;
  S3Result<UploadPartResult> upload_part(std::string_view key, std::string_view upload_id,
                                         int part_number, std::string_view body, bool checksum_sha256);
  S3Result<UploadPartResult> upload_part_file(std::string_view key, std::string_view upload_id,
                                              int part_number, const std::filesystem::path& file,
                                              std::uint64_t offset, std::uint64_t length,
                                              bool checksum_sha256) override;
  S3Result<CompleteMultipartResult> complete_multipart_upload(std::string_view key,
                                                              std::string_view upload_id,
                                                              const std::vector<UploadPartResult>& parts) override;
  S3Result<S3Ok> abort_multipart_upload(std::string_view key, std::string_view upload_id);
  S3Result<std::vector<PartInfo>> list_parts(std::string_view key, std::string_view upload_id) override;

  // Everything below is public for tests of the request building only.
  struct Body;
  struct Response {
    long status = 0;
    std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
    std::string body;
    const std::string* header(std::string_view name) const;
  };

 private:
  explicit S3Client(S3ClientConfig config);
  void target(std::string_view key, std::string* host, std::string* path) const;
  S3Result<Response> perform(std::string_view operation, std::string_view method,
                             std::string_view key,
                             std::vector<std::pair<std::string, std::string>> query,
                             std::vector<std::pair<std::string, std::string>> headers,
                             const Body& body, bool head = false);

  S3ClientConfig config_;
  std::string scheme_;     // "http" / "https"
  std::string authority_;  // "host[:port]" as given
  std::string base_path_;  // endpoint path prefix without trailing '/', usually ""
  void* curl_ = nullptr;   // CURL*, owned
};

// Helpers shared with tests.
std::string iso8601(std::chrono::system_clock::time_point t);  // "2031-01-02T03:04:05Z"
// Parses an S3 XML error body; false when it is not one.
bool parse_s3_error_body(std::string_view xml, std::string* code, std::string* message,
                         std::string* request_id);

}  // namespace sgw::storage
