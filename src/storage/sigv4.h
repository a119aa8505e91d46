// AWS Signature Version 4 (header-based, "AWS4-HMAC-SHA256"): a deterministic
// signer of our own, checked against AWS's published SigV4 test suite and the
// S3 API reference examples (test/storage/sigv4_test.cc, docs/s3.md).
//
// The signer signs exactly the request it is given: every header passed in is
// signed, nothing is added. The S3 client adds host, x-amz-date,
// x-amz-content-sha256 (the hex SHA-256 of the body; UNSIGNED-PAYLOAD only for
// the partials' streamed bodies, S3Client::put_object_stream) and x-amz-security-token before signing, and then sends
// those same headers and the same encoded path and query (canonical_uri(),
// canonical_query()) so what is signed is what goes on the wire.
//
// Thread: pure functions, callable from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sgw::storage {

// Long-term or temporary credentials. Never logged: no streaming operator, and
// no error message in this layer includes the secret or the token.
struct SigV4Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty unless temporary (STS) credentials
};

struct SigV4Scope {
  std::string region;   // "us-east-1"
  std::string service;  // "s3"
};

// One request to sign. Path and query are DECODED text (raw bytes, e.g. UTF-8):
// the signer does the single URI-encoding S3 expects.
struct SigV4Request {
  std::string method;  // "GET", "PUT", ...
  std::string path = "/";  // "/bucket/key with space" (path-style) or "/key"
  std::vector<std::pair<std::string, std::string>> query;    // name, value (value may be empty)
  std::vector<std::pair<std::string, std::string>> headers;  // as sent; must include "host"
  std::string payload_sha256_hex;                            // hex SHA-256 of the body
};

struct SigV4Options {
  // RFC 3986 dot-segment removal and '//' collapsing: for services other than
  // S3 only. S3 signs the path as is ("a//b/../c" is a valid key).
  bool normalize_path = false;
};

struct SigV4Signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;  // "host;x-amz-content-sha256;x-amz-date"
  std::string signature;       // lower-case hex
  std::string authorization;   // value of the Authorization header
};

// "AWS4-HMAC-SHA256" per the spec; the date must be the request's x-amz-date.
inline constexpr std::string_view kSigV4Algorithm = "AWS4-HMAC-SHA256";
// Hex SHA-256 of the empty string.
inline constexpr std::string_view kEmptyPayloadSha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// URI-encodes per S3/SigV4: every byte except A-Z a-z 0-9 '-' '.' '_' '~' as
// %XX (upper-case hex); '/' kept when !encode_slash (paths).
std::string uri_encode(std::string_view s, bool encode_slash);

// The canonical URI of a decoded path (also the path to send).
std::string canonical_uri(std::string_view path, const SigV4Options& options = {});
// The canonical query string: names and values encoded, pairs sorted by name
// then value, "name=value" joined with '&' (also the query to send).
std::string canonical_query(const std::vector<std::pair<std::string, std::string>>& query);

// "20150830T123600Z" in UTC.
std::string amz_date(std::chrono::system_clock::time_point t);

std::string canonical_request(const SigV4Request& request, const SigV4Options& options,
                              std::string* signed_headers_out = nullptr);
std::string string_to_sign(std::string_view amz_date, const SigV4Scope& scope,
                           std::string_view canonical_request);
// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, yyyymmdd), region), service), "aws4_request")
std::string signing_key(std::string_view secret, std::string_view yyyymmdd, const SigV4Scope& scope);

// The whole signature. `amz_date` ("20150830T123600Z") must equal the
// x-amz-date header in request.headers.
SigV4Signature sign(const SigV4Request& request, const SigV4Credentials& credentials,
                    const SigV4Scope& scope, std::string_view amz_date,
                    const SigV4Options& options = {});

// Crypto helpers (OpenSSL), shared with the S3 client.
std::string sha256_hex(std::string_view data);
std::string sha256_raw(std::string_view data);  // 32 bytes
std::string hex(const std::string& bytes);
std::string base64(std::string_view bytes);
std::string hmac_sha256(std::string_view key, std::string_view data);  // raw 32 bytes

// Incremental SHA-256 + MD5 over a body read in pieces (a file).
class BodyDigest {
 public:
  BodyDigest();
  ~BodyDigest();
  BodyDigest(const BodyDigest&) = delete;
  BodyDigest& operator=(const BodyDigest&) = delete;
  void update(std::string_view data);
  // Raw digests; call once, after the last update().
  void finish(std::string* sha256, std::string* md5);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sgw::storage
