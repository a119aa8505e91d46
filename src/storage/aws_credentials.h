// AWS credentials the way AWS users provide them (docs/s3.md "Credentials"):
// the default provider chain of the AWS SDKs, and temporary credentials that
// are refreshed before they expire while deliveries go on.
//
// Order (the first source that is present wins; one that is present but broken
// is an error, never skipped):
//   1. s3.access_key/s3.secret_key(/s3.session_token) from the config;
//   2. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN);
//   3. the shared credentials file ($AWS_SHARED_CREDENTIALS_FILE or
//      ~/.aws/credentials), profile s3.profile / $AWS_PROFILE / default;
//   4. web identity: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE -> STS
//      AssumeRoleWithWebIdentity (EKS IRSA; the token file is re-read at each refresh);
//   5. container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (http://169.254.170.2)
//      or _FULL_URI, with AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE / _TOKEN (ECS, EKS Pod Identity);
//   6. EC2 instance profile over IMDSv2 (PUT token, then GET role and
//      credentials), unless AWS_EC2_METADATA_DISABLED=true; endpoint
//      AWS_EC2_METADATA_SERVICE_ENDPOINT (default http://169.254.169.254).
//
// Secrets (secret key, session token, web identity and container tokens) are
// never in a log line or an error message.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "storage/sigv4.h"

namespace sgw::storage {

struct CredentialSources;  // storage/s3_client.h

// Credentials and, when temporary, when they stop being valid.
struct TimedCredentials {
  SigV4Credentials credentials;
  std::optional<std::chrono::system_clock::time_point> expiration;
};

// The credentials to sign the next request with.
// Thread: get() may be called from any number of threads at once.
class CredentialProvider {
 public:
  virtual ~CredentialProvider() = default;
  // Never blocks on the network while still-valid credentials are at hand.
  virtual common::Result<SigV4Credentials> get() = 0;
  // "config", "environment", "shared file", "web identity", "container", "instance profile".
  virtual const std::string& name() const = 0;
};

class StaticCredentialProvider : public CredentialProvider {
 public:
  StaticCredentialProvider(std::string name, SigV4Credentials credentials)
      : name_(std::move(name)), credentials_(std::move(credentials)) {}
  common::Result<SigV4Credentials> get() override { return credentials_; }
  const std::string& name() const override { return name_; }

 private:
  std::string name_;
  SigV4Credentials credentials_;
};

// Temporary credentials from a fetch function (one of the fetch_* below).
// Refreshes at the later of (expiration - margin) and half the lifetime (so
// a short-lived credential is not fetched on every request). Between that time
// and the expiration, one caller refreshes while the others keep signing with
// the current snapshot; a failed refresh keeps the current credentials (logged,
// retried after retry_after). Only once they have expired does get() wait for
// a fetch, and its failure is returned (the delivery queue retries).
class RefreshingCredentialProvider : public CredentialProvider {
 public:
  using Fetch = std::function<common::Result<TimedCredentials>()>;
  using Clock = std::function<std::chrono::system_clock::time_point()>;
  RefreshingCredentialProvider(std::string name, Fetch fetch, Clock now = {},
                               std::chrono::seconds margin = std::chrono::minutes(5),
                               std::chrono::seconds retry_after = std::chrono::seconds(10));
  common::Result<SigV4Credentials> get() override;
  const std::string& name() const override { return name_; }
  // Fetches done (successful or not); for tests and the log.
  std::uint64_t fetches() const { return fetches_.load(); }

 private:
  struct Snapshot {
    SigV4Credentials credentials;
    std::optional<std::chrono::system_clock::time_point> expiration;
    std::chrono::system_clock::time_point refresh_at;
  };
  // Called with refresh_mu_ held.
  common::Result<SigV4Credentials> refresh(std::chrono::system_clock::time_point now,
                                           const std::shared_ptr<const Snapshot>& old);

  std::string name_;
  Fetch fetch_;
  Clock now_;
  std::chrono::seconds margin_;
  std::chrono::seconds retry_after_;
  std::mutex state_mu_;  // guards current_ and failed_at_ (held briefly)
  std::shared_ptr<const Snapshot> current_;
  std::optional<std::chrono::system_clock::time_point> failed_at_;
  std::mutex refresh_mu_;  // one fetch at a time
  std::atomic<std::uint64_t> fetches_{0};
};

// ---------------------------------------------------------------------------
// HTTP seam for the fetchers (libcurl by default; tests pass a fake).

struct CredentialHttpRequest {
  std::string method;  // "GET", "PUT", "POST"
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds timeout{5000};
};
struct CredentialHttpResponse {
  long status = 0;
  std::string body;
};
// Errors: s3.credentials.http (no response), naming the URL but no header value.
using CredentialHttp = std::function<common::Result<CredentialHttpResponse>(const CredentialHttpRequest&)>;
common::Result<CredentialHttpResponse> curl_credential_http(const CredentialHttpRequest& request);

// Parsers of the providers' answers (errors never quote a secret).
// Container and instance-profile JSON: AccessKeyId, SecretAccessKey, Token,
// Expiration (and Code, which must be "Success" when present).
common::Result<TimedCredentials> parse_credentials_json(std::string_view body, std::string_view source);
// STS AssumeRoleWithWebIdentityResponse XML (or its ErrorResponse).
common::Result<TimedCredentials> parse_assume_role_with_web_identity(std::string_view body);
// "2026-12-04T11:00:00Z", with optional fraction, "Z" or "+00:00".
std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view text);

using Getenv = std::function<std::optional<std::string>(const char*)>;

// One fetch per provider. Each reads what it needs (token files) at every call.
common::Result<TimedCredentials> fetch_instance_profile(const CredentialHttp& http, std::string endpoint);
common::Result<TimedCredentials> fetch_container(const CredentialHttp& http, const std::string& url,
                                                 const Getenv& env);
struct WebIdentity {
  std::string role_arn;
  std::string token_file;
  std::string session_name;
  std::string sts_endpoint;  // "https://sts.us-east-1.amazonaws.com" or AWS_ENDPOINT_URL_STS
};
common::Result<TimedCredentials> fetch_web_identity(const CredentialHttp& http, const WebIdentity& w);

// The container credentials URL from the environment ("" when neither is set);
// an http FULL_URI must name a loopback or the ECS/EKS link-local address.
common::Result<std::string> container_credentials_url(const Getenv& env);

// The chain above. An instance profile is only chosen when IMDS answers now.
// Errors: s3.credentials.{none, incomplete, file, profile, ...}.
// `http` defaults to curl_credential_http.
common::Result<std::shared_ptr<CredentialProvider>> make_credential_provider(
    const CredentialSources& sources, const CredentialHttp& http = {});

}  // namespace sgw::storage
