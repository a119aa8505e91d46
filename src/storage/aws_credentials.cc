#include "storage/aws_credentials.h"

#include <curl/curl.h>

#include <nlohmann/json.hpp>
#include <pugixml.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "common/logging.h"
#include "common/strings.h"
#include "storage/s3_client.h"

namespace sgw::storage {

using common::make_error;
using std::chrono::system_clock;

// ---------------------------------------------------------------------------
// Refreshing provider

RefreshingCredentialProvider::RefreshingCredentialProvider(std::string name, Fetch fetch, Clock now,
                                                           std::chrono::seconds margin,
                                                           std::chrono::seconds retry_after)
    : name_(std::move(name)),
      fetch_(std::move(fetch)),
      now_(now ? std::move(now) : Clock([] { return system_clock::now(); })),
      margin_(margin),
      retry_after_(retry_after) {}

common::Result<SigV4Credentials> RefreshingCredentialProvider::get() {
  auto now = now_();
  std::shared_ptr<const Snapshot> snap;
  {
    std::lock_guard lock(state_mu_);
    snap = current_;
  }
  if (snap && now < snap->refresh_at) return snap->credentials;
  bool valid = snap && (!snap->expiration || now < *snap->expiration);
  if (valid) {
    // Early refresh: whoever gets the lock fetches; the others sign with what we have.
    std::unique_lock refresh_lock(refresh_mu_, std::try_to_lock);
    if (!refresh_lock.owns_lock()) return snap->credentials;
    {
      std::lock_guard lock(state_mu_);
      if (current_ != snap) return current_->credentials;  // refreshed meanwhile
      if (failed_at_ && now < *failed_at_ + retry_after_) return snap->credentials;
    }
    return refresh(now, snap);
  }
  std::lock_guard refresh_lock(refresh_mu_);
  {
    std::lock_guard lock(state_mu_);
    if (current_ != snap && current_ && (!current_->expiration || now < *current_->expiration))
      return current_->credentials;
  }
  return refresh(now, snap);
}

common::Result<SigV4Credentials> RefreshingCredentialProvider::refresh(
    system_clock::time_point now, const std::shared_ptr<const Snapshot>& old) {
  auto log = common::logger("credentials");
  ++fetches_;
  auto got = fetch_();
  if (!got) {
    bool still_valid = old && (!old->expiration || now < *old->expiration);
    {
      std::lock_guard lock(state_mu_);
      failed_at_ = now;
    }
    if (still_valid) {
      log->warn("{} credentials: refresh failed ({}); the current ones stay in use until {}", name_,
                got.error().message, iso8601(*old->expiration));
      return old->credentials;
    }
    log->error("{} credentials: {}", name_, got.error().message);
    return got.error();
  }
  auto snap = std::make_shared<Snapshot>();
  snap->credentials = std::move(got->credentials);
  snap->expiration = got->expiration;
  snap->refresh_at = system_clock::time_point::max();
  if (snap->expiration) {
    auto half = now + (*snap->expiration - now) / 2;
    snap->refresh_at = std::max(*snap->expiration - margin_, half);
    log->info("{} credentials (access key id {}) valid until {}", name_, snap->credentials.access_key_id,
              iso8601(*snap->expiration));
  } else {
    log->info("{} credentials (access key id {}), no expiration", name_, snap->credentials.access_key_id);
  }
  std::lock_guard lock(state_mu_);
  current_ = snap;
  failed_at_.reset();
  return current_->credentials;
}

// ---------------------------------------------------------------------------
// HTTP

namespace {

size_t append_cb(char* data, size_t size, size_t n, void* user) {
  auto* out = static_cast<std::string*>(user);
  size_t len = size * n;
  if (out->size() + len > (1u << 20)) return 0;  // credential documents are small
  out->append(data, len);
  return len;
}

}  // namespace

common::Result<CredentialHttpResponse> curl_credential_http(const CredentialHttpRequest& request) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  CURL* c = curl_easy_init();
  if (!c) return make_error("s3.credentials.http", "curl_easy_init failed");
  curl_slist* list = nullptr;
  for (const auto& [n, v] : request.headers) list = curl_slist_append(list, (n + ": " + v).c_str());
  list = curl_slist_append(list, "Expect:");
  CredentialHttpResponse resp;
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(request.timeout.count()));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_cb);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp.body);
  if (request.method == "POST" || request.method == "PUT") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, request.body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(request.body.size()));
    if (request.method == "PUT") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
  }
  CURLcode rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
  curl_slist_free_all(list);
  curl_easy_cleanup(c);
  if (rc != CURLE_OK)
    return make_error("s3.credentials.http", request.method + " " + request.url + ": " +
                                                 (errbuf[0] ? errbuf : curl_easy_strerror(rc)));
  return resp;
}

// ---------------------------------------------------------------------------
// Parsers

std::optional<system_clock::time_point> parse_iso8601(std::string_view s) {
  std::tm tm{};
  int consumed = 0;
  std::string text(s);
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6 || consumed != 19)
    return std::nullopt;
  std::string_view rest = s.substr(19);
  if (!rest.empty() && rest.front() == '.') {
    rest.remove_prefix(1);
    while (!rest.empty() && rest.front() >= '0' && rest.front() <= '9') rest.remove_prefix(1);
  }
  if (rest != "Z" && rest != "+00:00" && rest != "") return std::nullopt;
  if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
      tm.tm_min > 59 || tm.tm_sec > 60)
    return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return system_clock::from_time_t(timegm(&tm));
}

common::Result<TimedCredentials> parse_credentials_json(std::string_view body, std::string_view source) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  std::string src(source);
  if (j.is_discarded() || !j.is_object())
    return make_error("s3.credentials.response", src + ": the credentials response is not a JSON object");
  auto str = [&](const char* k) -> std::string {
    auto it = j.find(k);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (j.contains("Code") && str("Code") != "Success")
    return make_error("s3.credentials.response", src + ": Code " + str("Code") + ": " + str("Message"));
  TimedCredentials t;
  t.credentials.access_key_id = str("AccessKeyId");
  t.credentials.secret_access_key = str("SecretAccessKey");
  t.credentials.session_token = str("Token");
  if (t.credentials.access_key_id.empty() || t.credentials.secret_access_key.empty())
    return make_error("s3.credentials.response", src + ": the response lacks AccessKeyId or SecretAccessKey");
  if (auto e = str("Expiration"); !e.empty()) {
    t.expiration = parse_iso8601(e);
    if (!t.expiration)
      return make_error("s3.credentials.response", src + ": Expiration '" + e + "' is not an ISO 8601 time");
  }
  return t;
}

common::Result<TimedCredentials> parse_assume_role_with_web_identity(std::string_view body) {
  pugi::xml_document doc;
  if (!doc.load_buffer(body.data(), body.size()))
    return make_error("s3.credentials.response", "STS AssumeRoleWithWebIdentity: the response is not XML");
  // AWS wraps the error in <ErrorResponse>; radosgw (Ceph 16) answers with an S3-style <Error>
  // root, often without a Message.
  auto err = doc.child("ErrorResponse").child("Error");
  if (!err) err = doc.child("Error");
  if (err) {
    std::string message = err.child("Message").text().as_string();
    return make_error("s3.credentials.sts", std::string("STS AssumeRoleWithWebIdentity: ") +
                                                err.child("Code").text().as_string() +
                                                (message.empty() ? "" : ": " + message));
  }
  auto c = doc.child("AssumeRoleWithWebIdentityResponse").child("AssumeRoleWithWebIdentityResult").child("Credentials");
  TimedCredentials t;
  t.credentials.access_key_id = c.child("AccessKeyId").text().as_string();
  t.credentials.secret_access_key = c.child("SecretAccessKey").text().as_string();
  t.credentials.session_token = c.child("SessionToken").text().as_string();
  std::string e = c.child("Expiration").text().as_string();
  t.expiration = parse_iso8601(e);
  if (t.credentials.access_key_id.empty() || t.credentials.secret_access_key.empty() || !t.expiration)
    return make_error("s3.credentials.response",
                      "STS AssumeRoleWithWebIdentity: the response lacks Credentials/AccessKeyId, "
                      "SecretAccessKey or Expiration");
  return t;
}

// ---------------------------------------------------------------------------
// Fetchers

namespace {

common::Result<std::string> read_token_file(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return make_error("s3.credentials.file", std::string(what) + " " + path + ": " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string t(common::trim(ss.str()));
  if (t.empty()) return make_error("s3.credentials.file", std::string(what) + " " + path + " is empty");
  return t;
}

common::Result<CredentialHttpResponse> call_ok(const CredentialHttp& http, const CredentialHttpRequest& req,
                                               std::string_view what) {
  auto r = http(req);
  if (!r) return r.error();
  if (r->status < 200 || r->status >= 300)
    return make_error("s3.credentials.http", std::string(what) + ": " + req.method + " " + req.url +
                                                 " answered HTTP " + std::to_string(r->status));
  return r;
}

std::string form_encode(std::string_view s) { return uri_encode(s, true); }

}  // namespace

common::Result<TimedCredentials> fetch_instance_profile(const CredentialHttp& http, std::string endpoint) {
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  constexpr std::string_view what = "instance metadata (IMDSv2)";
  // IMDSv2: a session token first (PUT with its TTL), then every GET carries it.
  CredentialHttpRequest put{"PUT", endpoint + "/latest/api/token", {{"X-aws-ec2-metadata-token-ttl-seconds", "21600"}},
                            "", std::chrono::milliseconds(1000)};
  auto token = call_ok(http, put, what);
  if (!token) return token.error();
  std::string tok(common::trim(token->body));
  if (tok.empty()) return make_error("s3.credentials.response", std::string(what) + ": empty session token");
  std::string base = endpoint + "/latest/meta-data/iam/security-credentials/";
  CredentialHttpRequest list{"GET", base, {{"X-aws-ec2-metadata-token", tok}}, "", std::chrono::milliseconds(1000)};
  auto roles = call_ok(http, list, what);
  if (!roles) return roles.error();
  std::string role(common::trim(common::split(roles->body, '\n').front()));
  if (role.empty())
    return make_error("s3.credentials.none", std::string(what) + ": no IAM role is attached to this instance");
  CredentialHttpRequest get{"GET", base + uri_encode(role, true), {{"X-aws-ec2-metadata-token", tok}}, "",
                            std::chrono::milliseconds(1000)};
  auto creds = call_ok(http, get, what);
  if (!creds) return creds.error();
  return parse_credentials_json(creds->body, std::string(what) + " role " + role);
}

common::Result<TimedCredentials> fetch_container(const CredentialHttp& http, const std::string& url,
                                                 const Getenv& env) {
  CredentialHttpRequest req{"GET", url, {}, "", std::chrono::milliseconds(2000)};
  if (auto f = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"); f && !f->empty()) {
    auto t = read_token_file(*f, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    if (!t) return t.error();
    req.headers.emplace_back("Authorization", *t);
  } else if (auto t = env("AWS_CONTAINER_AUTHORIZATION_TOKEN"); t && !t->empty()) {
    req.headers.emplace_back("Authorization", *t);
  }
  auto r = call_ok(http, req, "container credentials");
  if (!r) return r.error();
  return parse_credentials_json(r->body, "container credentials " + url);
}

common::Result<TimedCredentials> fetch_web_identity(const CredentialHttp& http, const WebIdentity& w) {
  auto token = read_token_file(w.token_file, "AWS_WEB_IDENTITY_TOKEN_FILE");
  if (!token) return token.error();
  // STS AssumeRoleWithWebIdentity is not signed: the token is the proof.
  std::string body = "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=" + form_encode(w.role_arn) +
                     "&RoleSessionName=" + form_encode(w.session_name) +
                     "&WebIdentityToken=" + form_encode(*token);
  std::string url = w.sts_endpoint;
  while (!url.empty() && url.back() == '/') url.pop_back();
  CredentialHttpRequest req{"POST", url + "/",
                            {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
                             {"Accept", "application/xml"}},
                            std::move(body), std::chrono::milliseconds(5000)};
  auto r = http(req);
  if (!r) return r.error();
  if (r->status < 200 || r->status >= 300) {
    auto parsed = parse_assume_role_with_web_identity(r->body);  // the error document, if any
    std::string where = "HTTP " + std::to_string(r->status) + " from " + url + ", role " + w.role_arn;
    if (!parsed && parsed.error().code == "s3.credentials.sts")
      return make_error("s3.credentials.sts", parsed.error().message + " (" + where + ")");
    return make_error("s3.credentials.http", "STS AssumeRoleWithWebIdentity: " + where);
  }
  return parse_assume_role_with_web_identity(r->body);
}

common::Result<std::string> container_credentials_url(const Getenv& env) {
  if (auto rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"); rel && !rel->empty())
    return "http://169.254.170.2" + (rel->front() == '/' ? *rel : "/" + *rel);
  auto full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  if (!full || full->empty()) return std::string();
  std::string_view u = *full;
  if (u.starts_with("https://")) return *full;
  if (!u.starts_with("http://"))
    return make_error("s3.credentials.container", "AWS_CONTAINER_CREDENTIALS_FULL_URI must be an http(s) URL");
  // Plain http only to this host or the container agent (as the AWS SDKs).
  u.remove_prefix(7);
  std::string_view host = u.substr(0, u.find_first_of("/?#"));
  if (host.starts_with("[")) {
    host = host.substr(1, host.find(']') - 1);
  } else if (auto colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  bool allowed = host.starts_with("127.") || host == "localhost" || host == "::1" || host == "169.254.170.2" ||
                 host == "169.254.170.23" || common::iequals(host, "fd00:ec2::23");
  if (!allowed)
    return make_error("s3.credentials.container",
                      "AWS_CONTAINER_CREDENTIALS_FULL_URI over http must name a loopback address, 169.254.170.2 "
                      "or 169.254.170.23 (got host '" + std::string(host) + "'); use https");
  return *full;
}

// ---------------------------------------------------------------------------
// The chain

common::Result<std::shared_ptr<CredentialProvider>> make_credential_provider(const CredentialSources& sources,
                                                                             const CredentialHttp& http_in) {
  Getenv env = sources.getenv ? sources.getenv : Getenv([](const char* n) -> std::optional<std::string> {
    const char* v = std::getenv(n);
    if (!v) return std::nullopt;
    return std::string(v);
  });
  CredentialHttp http = http_in ? http_in : CredentialHttp(curl_credential_http);
  auto set = [&](const char* n) {
    auto v = env(n);
    return v && !v->empty();
  };
  auto log = common::logger("credentials");

  // 1-3: static keys (config, environment, shared file).
  CredentialSources static_sources = sources;
  static_sources.getenv = env;
  auto fixed = resolve_credentials(static_sources);
  if (fixed) {
    std::string from = sources.configured && !sources.configured->access_key_id.empty() ? "config"
                       : set("AWS_ACCESS_KEY_ID")                                         ? "environment"
                                                                                          : "shared file";
    log->info("S3 credentials from the {} (access key id {})", from, fixed->access_key_id);
    return std::shared_ptr<CredentialProvider>(std::make_shared<StaticCredentialProvider>(from, *fixed));
  }
  // A missing file, or a missing default profile, falls through to the next source;
  // a profile someone named and that is not there is their error.
  bool named_profile = !sources.profile.empty() || set("AWS_PROFILE");
  if (fixed.error().code != "s3.credentials.none" &&
      !(fixed.error().code == "s3.credentials.profile" && !named_profile))
    return fixed.error();
  std::string tried = fixed.error().message;

  // 4: web identity.
  if (set("AWS_ROLE_ARN") || set("AWS_WEB_IDENTITY_TOKEN_FILE")) {
    if (!set("AWS_ROLE_ARN") || !set("AWS_WEB_IDENTITY_TOKEN_FILE"))
      return make_error("s3.credentials.incomplete", "AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE go together");
    WebIdentity w;
    w.role_arn = *env("AWS_ROLE_ARN");
    w.token_file = *env("AWS_WEB_IDENTITY_TOKEN_FILE");
    w.session_name = set("AWS_ROLE_SESSION_NAME") ? *env("AWS_ROLE_SESSION_NAME")
                                                  : "siprecd-" + std::to_string(std::time(nullptr));
    std::string region = set("AWS_REGION") ? *env("AWS_REGION")
                         : set("AWS_DEFAULT_REGION") ? *env("AWS_DEFAULT_REGION")
                                                     : sources.region;
    if (region.empty()) region = "us-east-1";
    w.sts_endpoint = set("AWS_ENDPOINT_URL_STS") ? *env("AWS_ENDPOINT_URL_STS") : "https://sts." + region + ".amazonaws.com";
    log->info("S3 credentials from web identity: role {} via STS {}", w.role_arn, w.sts_endpoint);
    return std::shared_ptr<CredentialProvider>(std::make_shared<RefreshingCredentialProvider>(
        "web identity", [http, w] { return fetch_web_identity(http, w); }));
  }

  // 5: container (ECS task role, EKS Pod Identity).
  auto url = container_credentials_url(env);
  if (!url) return url.error();
  if (!url->empty()) {
    log->info("S3 credentials from the container endpoint {}", *url);
    return std::shared_ptr<CredentialProvider>(std::make_shared<RefreshingCredentialProvider>(
        "container", [http, env, u = *url] { return fetch_container(http, u, env); }));
  }

  // 6: EC2 instance profile, if the instance metadata service answers.
  if (auto d = env("AWS_EC2_METADATA_DISABLED"); d && common::iequals(*d, "true"))
    return make_error("s3.credentials.none", tried + "; instance metadata disabled (AWS_EC2_METADATA_DISABLED)");
  std::string endpoint = set("AWS_EC2_METADATA_SERVICE_ENDPOINT") ? *env("AWS_EC2_METADATA_SERVICE_ENDPOINT")
                                                                  : "http://169.254.169.254";
  auto provider = std::make_shared<RefreshingCredentialProvider>(
      "instance profile", [http, endpoint] { return fetch_instance_profile(http, endpoint); });
  auto first = provider->get();
  if (!first)
    return make_error("s3.credentials.none", tried + "; no instance profile: " + first.error().message);
  log->info("S3 credentials from the EC2 instance profile at {}", endpoint);
  return std::shared_ptr<CredentialProvider>(provider);
}

}  // namespace sgw::storage
