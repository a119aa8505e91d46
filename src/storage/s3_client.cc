#include "storage/s3_client.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <unistd.h>

#include <pugixml.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <mutex>
#include <sstream>

#include "common/strings.h"

namespace sgw::storage {

using common::make_error;
using Headers = std::vector<std::pair<std::string, std::string>>;

namespace {

constexpr std::string_view kS3Xmlns = "http://s3.amazonaws.com/doc/2006-03-01/";
constexpr std::size_t kMaxResponseBody = 64u << 20;  // responses we buffer (XML, test GETs)
constexpr std::size_t kFileChunk = 1u << 20;

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string strip_quotes(std::string_view s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return std::string(s);
}

std::string md5_base64(std::string_view data) {
  BodyDigest d;
  d.update(data);
  std::string md5;
  d.finish(nullptr, &md5);
  return base64(md5);
}

// An open file, closed on scope exit.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

// Whether a status/code is worth retrying later (the queue decides when).
bool retryable_status(long status, std::string_view code) {
  if (status == 500 || status == 502 || status == 503 || status == 504 || status == 429) return true;
  return code == "SlowDown" || code == "RequestTimeout" || code == "InternalError" ||
         code == "ServiceUnavailable" || code == "Throttling" || code == "OperationAborted";
}

std::string code_for_status(long status) {
  switch (status) {
    case 400: return "BadRequest";
    case 403: return "Forbidden";
    case 404: return "NotFound";
    case 405: return "MethodNotAllowed";
    case 409: return "Conflict";
    case 412: return "PreconditionFailed";
    case 503: return "ServiceUnavailable";
    default: return "Http" + std::to_string(status);
  }
}

std::optional<LockMode> parse_lock_mode(std::string_view s) {
  if (s == "COMPLIANCE") return LockMode::kCompliance;
  if (s == "GOVERNANCE") return LockMode::kGovernance;
  return std::nullopt;
}

std::string child_text(const pugi::xml_node& n, const char* name) {
  return n.child(name).text().as_string();
}

}  // namespace

// ---------------------------------------------------------------------------
// Credentials

common::Result<SigV4Credentials> parse_credentials_file(std::string_view text,
                                                        std::string_view profile,
                                                        std::string_view file_name) {
  SigV4Credentials c;
  bool in_profile = false;
  bool found = false;
  for (auto raw : common::split(text, '\n')) {
    auto line = common::trim(raw);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[') {
      auto end = line.find(']');
      if (end == std::string_view::npos) continue;
      auto name = common::trim(line.substr(1, end - 1));
      if (name.starts_with("profile ")) name = common::trim(name.substr(8));
      in_profile = name == profile;
      found = found || in_profile;
      continue;
    }
    if (!in_profile) continue;
    auto eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    auto k = common::to_lower(common::trim(line.substr(0, eq)));
    auto v = std::string(common::trim(line.substr(eq + 1)));
    if (k == "aws_access_key_id") c.access_key_id = v;
    else if (k == "aws_secret_access_key") c.secret_access_key = v;
    else if (k == "aws_session_token") c.session_token = v;
  }
  if (!found)
    return make_error("s3.credentials.profile",
                      "credentials file " + std::string(file_name) + " has no profile [" +
                          std::string(profile) + "]");
  if (c.access_key_id.empty() || c.secret_access_key.empty())
    return make_error("s3.credentials.incomplete",
                      "credentials file " + std::string(file_name) + " profile [" +
                          std::string(profile) +
                          "] lacks aws_access_key_id or aws_secret_access_key");
  return c;
}

common::Result<SigV4Credentials> resolve_credentials(const CredentialSources& sources) {
  if (sources.configured && (!sources.configured->access_key_id.empty() ||
                             !sources.configured->secret_access_key.empty())) {
    if (sources.configured->access_key_id.empty() || sources.configured->secret_access_key.empty())
      return make_error("s3.credentials.incomplete",
                        "configured S3 credentials need both an access key id and a secret key");
    return *sources.configured;
  }
  auto env = [&](const char* name) -> std::optional<std::string> {
    if (sources.getenv) return sources.getenv(name);
    const char* v = std::getenv(name);
    if (!v) return std::nullopt;
    return std::string(v);
  };
  auto id = env("AWS_ACCESS_KEY_ID");
  auto secret = env("AWS_SECRET_ACCESS_KEY");
  if ((id && !id->empty()) || (secret && !secret->empty())) {
    if (!id || id->empty() || !secret || secret->empty())
      return make_error("s3.credentials.incomplete",
                        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together");
    SigV4Credentials c{*id, *secret, env("AWS_SESSION_TOKEN").value_or("")};
    return c;
  }
  std::string file;
  if (auto f = env("AWS_SHARED_CREDENTIALS_FILE"); f && !f->empty()) {
    file = *f;
  } else if (auto home = env("HOME"); home && !home->empty()) {
    file = *home + "/.aws/credentials";
  }
  std::string profile = sources.profile;
  if (profile.empty()) profile = env("AWS_PROFILE").value_or("");
  if (profile.empty()) profile = "default";
  if (file.empty())
    return make_error("s3.credentials.none",
                      "no S3 credentials: set them in the config, in AWS_ACCESS_KEY_ID/"
                      "AWS_SECRET_ACCESS_KEY, or in a shared credentials file (HOME is unset)");
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!std::filesystem::exists(file, ec))
      return make_error("s3.credentials.none",
                        "no S3 credentials: set them in the config, in AWS_ACCESS_KEY_ID/"
                        "AWS_SECRET_ACCESS_KEY, or in " + file + " (not found)");
    return make_error("s3.credentials.file", "cannot read credentials file " + file + ": " +
                                                 std::strerror(errno));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_credentials_file(ss.str(), profile, file);
}

// ---------------------------------------------------------------------------
// Errors

std::string S3Error::describe() const {
  std::string s = operation + " s3://" + bucket;
  if (!key.empty()) s += "/" + key;
  s += ": ";
  if (http_status != 0) s += "HTTP " + std::to_string(http_status) + " ";
  s += code;
  if (!message.empty()) s += ": " + message;
  if (!request_id.empty()) s += " (request id " + request_id + ")";
  if (retryable) s += " [retryable]";
  return s;
}

common::Error S3Error::to_error() const { return make_error("s3." + code, describe()); }

std::string_view to_string(LockMode mode) {
  return mode == LockMode::kCompliance ? "COMPLIANCE" : "GOVERNANCE";
}

std::string iso8601(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

bool parse_s3_error_body(std::string_view xml, std::string* code, std::string* message,
                         std::string* request_id) {
  if (xml.empty()) return false;
  pugi::xml_document doc;
  if (!doc.load_buffer(xml.data(), xml.size())) return false;
  auto err = doc.child("Error");
  if (!err) return false;
  if (code) *code = child_text(err, "Code");
  if (message) *message = child_text(err, "Message");
  if (request_id) *request_id = child_text(err, "RequestId");
  return true;
}

// ---------------------------------------------------------------------------
// Request bodies

struct S3Client::Body {
  // Exactly one of: memory (possibly empty) or a file range.
  std::string_view memory;
  int fd = -1;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  bool is_file = false;
  std::string sha256_hex = std::string(kEmptyPayloadSha256);
  std::string sha256_raw;  // filled for bodies we upload
  std::string md5_raw;
  bool present = false;  // send a body (PUT/POST), even if empty
  BodySource* source = nullptr;  // streamed (put_object_stream)

  std::uint64_t size() const { return source ? source->size() : is_file ? length : memory.size(); }
};

namespace {

struct ReadState {
  const S3Client::Body* body;
  std::uint64_t pos = 0;
  int error = 0;
};

size_t read_cb(char* buf, size_t size, size_t n, void* user) {
  auto* st = static_cast<ReadState*>(user);
  const auto* b = st->body;
  std::uint64_t want = std::min<std::uint64_t>(size * n, b->size() - st->pos);
  if (want == 0) return 0;
  if (b->source) {
    std::int64_t r = b->source->read(st->pos, buf, static_cast<std::size_t>(want));
    if (r <= 0) {
      st->error = r < 0 ? static_cast<int>(-r) : EIO;
      return CURL_READFUNC_ABORT;
    }
    st->pos += static_cast<std::uint64_t>(r);
    return static_cast<size_t>(r);
  }
  if (!b->is_file) {
    std::memcpy(buf, b->memory.data() + st->pos, want);
    st->pos += want;
    return want;
  }
  ssize_t r = ::pread(b->fd, buf, want, static_cast<off_t>(b->offset + st->pos));
  if (r <= 0) {
    st->error = r < 0 ? errno : EIO;  // file shrank or failed under us
    return CURL_READFUNC_ABORT;
  }
  st->pos += static_cast<std::uint64_t>(r);
  return static_cast<size_t>(r);
}

int seek_cb(void* user, curl_off_t offset, int origin) {
  auto* st = static_cast<ReadState*>(user);
  if (origin != SEEK_SET || offset < 0 || static_cast<std::uint64_t>(offset) > st->body->size())
    return CURL_SEEKFUNC_CANTSEEK;
  st->pos = static_cast<std::uint64_t>(offset);
  return CURL_SEEKFUNC_OK;
}

struct WriteState {
  std::string* out;
  bool overflow = false;
};

size_t write_cb(char* data, size_t size, size_t n, void* user) {
  auto* st = static_cast<WriteState*>(user);
  size_t len = size * n;
  if (st->out->size() + len > kMaxResponseBody) {
    st->overflow = true;
    return 0;
  }
  st->out->append(data, len);
  return len;
}

size_t header_cb(char* data, size_t size, size_t n, void* user) {
  auto* headers = static_cast<Headers*>(user);
  size_t len = size * n;
  std::string_view line(data, len);
  if (line.starts_with("HTTP/")) {
    headers->clear();  // a new response (after 100 Continue)
    return len;
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos) return len;
  headers->emplace_back(common::to_lower(common::trim(line.substr(0, colon))),
                        std::string(common::trim(line.substr(colon + 1))));
  return len;
}

// Hashes a file range: the payload hash we sign and the Content-MD5/checksum.
bool digest_file(int fd, std::uint64_t offset, std::uint64_t length, std::string* sha256,
                 std::string* md5, int* err) {
  BodyDigest d;
  std::string buf(kFileChunk, '\0');
  std::uint64_t done = 0;
  while (done < length) {
    auto want = static_cast<size_t>(std::min<std::uint64_t>(buf.size(), length - done));
    ssize_t r = ::pread(fd, buf.data(), want, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      *err = r < 0 ? errno : EIO;
      return false;
    }
    d.update(std::string_view(buf.data(), static_cast<size_t>(r)));
    done += static_cast<std::uint64_t>(r);
  }
  d.finish(sha256, md5);
  return true;
}

}  // namespace

const std::string* S3Client::Response::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return &v;
  return nullptr;
}

// ---------------------------------------------------------------------------
// Client

common::Result<std::unique_ptr<S3Client>> S3Client::create(S3ClientConfig config) {
  if (config.region.empty()) return make_error("s3.config.region", "S3 region is empty");
  if (config.bucket.empty()) return make_error("s3.config.bucket", "S3 bucket is empty");
  if (!config.credential_provider &&
      (config.credentials.access_key_id.empty() || config.credentials.secret_access_key.empty()))
    return make_error("s3.config.credentials", "S3 credentials are not set");
  if (config.endpoint.empty()) config.endpoint = "https://s3." + config.region + ".amazonaws.com";
  std::string_view ep = config.endpoint;
  std::string scheme;
  if (ep.starts_with("https://")) {
    scheme = "https";
    ep.remove_prefix(8);
  } else if (ep.starts_with("http://")) {
    scheme = "http";
    ep.remove_prefix(7);
  } else {
    return make_error("s3.config.endpoint",
                      "S3 endpoint '" + config.endpoint + "' must start with http:// or https://");
  }
  auto slash = ep.find('/');
  std::string authority(ep.substr(0, slash));
  std::string base = slash == std::string_view::npos ? "" : std::string(ep.substr(slash));
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (authority.empty() || authority.find_first_of(" @?#") != std::string::npos ||
      base.find_first_of("?#%") != std::string::npos)
    return make_error("s3.config.endpoint", "S3 endpoint '" + config.endpoint + "' is not a URL");
  if (!config.path_style &&
      (config.bucket.find('.') != std::string::npos && scheme == "https"))
    return make_error("s3.config.bucket",
                      "bucket '" + config.bucket +
                          "' has a '.', which breaks TLS for virtual-hosted URLs: set path_style");
  if (!config.now) config.now = [] { return std::chrono::system_clock::now(); };
  global_init();
  std::unique_ptr<S3Client> c(new S3Client(std::move(config)));
  c->scheme_ = std::move(scheme);
  c->authority_ = std::move(authority);
  c->base_path_ = std::move(base);
  c->curl_ = curl_easy_init();
  if (!c->curl_) return make_error("s3.curl", "curl_easy_init failed");
  return c;
}

S3Client::S3Client(S3ClientConfig config) : config_(std::move(config)) {}

S3Client::~S3Client() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

void S3Client::target(std::string_view key, std::string* host, std::string* path) const {
  // Path-style: host/bucket[/key]; virtual-hosted: bucket.host/[key].
  *path = base_path_;
  if (config_.path_style) {
    *host = authority_;
    *path += "/" + config_.bucket;
    if (!key.empty()) *path += "/";
  } else {
    *host = config_.bucket + "." + authority_;
    *path += "/";
  }
  *path += key;
}

std::string S3Client::url_for(std::string_view key) const {
  std::string host, path;
  target(key, &host, &path);
  return scheme_ + "://" + host + canonical_uri(path);
}

S3Result<S3Client::Response> S3Client::perform(std::string_view operation, std::string_view method,
                                               std::string_view key, Headers query,
                                               Headers headers, const Body& body, bool head) {
  auto fail = [&](int status, std::string code, std::string message, bool retryable,
                  std::string request_id = {}) {
    return S3Error{std::string(operation), config_.bucket, std::string(key), status,
                   std::move(code), std::move(message), std::move(request_id), retryable};
  };

  // Path (decoded; the signer encodes it once, and we send that same string).
  std::string host, path;
  target(key, &host, &path);

  std::string date = amz_date(config_.now());
  SigV4Request req;
  req.method = std::string(method);
  req.path = path;
  req.query = std::move(query);
  req.payload_sha256_hex = body.sha256_hex;
  req.headers = std::move(headers);
  req.headers.emplace_back("host", host);
  req.headers.emplace_back("x-amz-date", date);
  req.headers.emplace_back("x-amz-content-sha256", body.sha256_hex);
  SigV4Credentials provided;
  if (config_.credential_provider) {
    auto got = config_.credential_provider->get();
    if (!got) return fail(0, "Client.Credentials", got.error().message, true);
    provided = std::move(got).value();
  }
  const SigV4Credentials& creds = config_.credential_provider ? provided : config_.credentials;
  // Temporary credentials: the token is sent and signed (SigV4 test suite post-sts-header-before).
  if (!creds.session_token.empty()) req.headers.emplace_back("x-amz-security-token", creds.session_token);
  SigV4Signature sig = sign(req, creds, SigV4Scope{config_.region, "s3"}, date);

  std::string url = scheme_ + "://" + host + canonical_uri(req.path);
  if (std::string q = canonical_query(req.query); !q.empty()) url += "?" + q;

  CURL* c = static_cast<CURL*>(curl_);
  curl_easy_reset(c);  // keeps the connection cache
  curl_slist* list = nullptr;
  auto add = [&](const std::string& name, const std::string& value) {
    // "Name;" is curl's spelling of a header with an empty value.
    std::string line = value.empty() ? name + ";" : name + ": " + value;
    list = curl_slist_append(list, line.c_str());
  };
  for (const auto& [n, v] : req.headers) add(n, v);
  add("Authorization", sig.authorization);
  // We set Content-Type ourselves when we have one; curl must not invent one.
  bool has_ct = std::any_of(req.headers.begin(), req.headers.end(),
                            [](const auto& h) { return common::iequals(h.first, "content-type"); });
  if (!has_ct) list = curl_slist_append(list, "Content-Type:");

  ReadState rs{&body};
  std::string resp_body;
  WriteState ws{&resp_body};
  Headers resp_headers;
  char errbuf[CURL_ERROR_SIZE] = {0};

  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  // curl removes "/./" and "/../" from URLs by default; in S3 they are part of
  // the key, and we signed them.
  curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(config_.connect_timeout.count()));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(config_.request_timeout.count()));
  if (config_.low_speed_bytes > 0 && config_.low_speed_time.count() > 0) {
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, config_.low_speed_bytes);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, static_cast<long>(config_.low_speed_time.count()));
  }
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, config_.verify_tls ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, config_.verify_tls ? 2L : 0L);
  if (!config_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, config_.ca_file.c_str());
  if (!config_.ca_path.empty()) curl_easy_setopt(c, CURLOPT_CAPATH, config_.ca_path.c_str());
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &resp_headers);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &ws);
  if (head) {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (body.present) {
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(c, CURLOPT_READDATA, &rs);
    curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, seek_cb);
    curl_easy_setopt(c, CURLOPT_SEEKDATA, &rs);
    if (method != "PUT") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  } else if (method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }

  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(list);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);

  if (rc != CURLE_OK) {
    if (rs.error != 0)
      return fail(0, "Client.BodyRead", std::string("reading the body failed: ") + std::strerror(rs.error),
                  false);
    if (ws.overflow)
      return fail(static_cast<int>(status), "Client.ResponseTooLarge",
                  "response body over " + std::to_string(kMaxResponseBody) + " bytes", false);
    std::string msg = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    std::string code = "Transport.Error";
    bool retry = true;
    switch (rc) {
      case CURLE_COULDNT_CONNECT: code = "Transport.CouldNotConnect"; break;
      case CURLE_COULDNT_RESOLVE_HOST: code = "Transport.CouldNotResolve"; break;
      case CURLE_OPERATION_TIMEDOUT: code = "Transport.Timeout"; break;
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_CACERT_BADFILE:
      case CURLE_SSL_CERTPROBLEM:
        code = "Transport.TlsVerify";
        retry = false;
        break;
      case CURLE_UNSUPPORTED_PROTOCOL:
      case CURLE_URL_MALFORMAT:
        code = "Transport.BadUrl";
        retry = false;
        break;
      default: break;
    }
    return fail(static_cast<int>(status), code, msg, retry);
  }

  Response resp{status, std::move(resp_headers), std::move(resp_body)};
  if (status >= 300) {
    std::string code, message, request_id;
    if (!parse_s3_error_body(resp.body, &code, &message, &request_id) || code.empty())
      code = code_for_status(status);
    if (request_id.empty())
      if (const auto* h = resp.header("x-amz-request-id")) request_id = *h;
    return fail(static_cast<int>(status), code, message, retryable_status(status, code),
                request_id);
  }
  return resp;
}

namespace {

S3Client::Body memory_body(std::string_view data) {
  S3Client::Body b;
  b.memory = data;
  b.present = true;
  BodyDigest d;
  d.update(data);
  d.finish(&b.sha256_raw, &b.md5_raw);
  b.sha256_hex = hex(b.sha256_raw);
  return b;
}

void add_object_headers(Headers& h, const PutObjectOptions& o) {
  if (!o.content_type.empty()) h.emplace_back("content-type", o.content_type);
  for (const auto& [k, v] : o.metadata) h.emplace_back("x-amz-meta-" + common::to_lower(k), v);
  if (o.lock) {
    h.emplace_back("x-amz-object-lock-mode", std::string(to_string(o.lock->mode)));
    h.emplace_back("x-amz-object-lock-retain-until-date", iso8601(o.lock->retain_until));
  }
  if (o.legal_hold) h.emplace_back("x-amz-object-lock-legal-hold", "ON");
  if (!o.if_none_match.empty()) h.emplace_back("if-none-match", o.if_none_match);
  switch (o.sse.kind) {
    case ServerSideEncryption::Kind::kNone: break;
    case ServerSideEncryption::Kind::kS3: h.emplace_back("x-amz-server-side-encryption", "AES256"); break;
    case ServerSideEncryption::Kind::kKms:
      h.emplace_back("x-amz-server-side-encryption", "aws:kms");
      if (!o.sse.kms_key_id.empty())
        h.emplace_back("x-amz-server-side-encryption-aws-kms-key-id", o.sse.kms_key_id);
      break;
  }
  if (!o.tags.empty()) {
    std::vector<std::pair<std::string, std::string>> t(o.tags.begin(), o.tags.end());
    h.emplace_back("x-amz-tagging", canonical_query(t));
  }
}

PutObjectResult put_result(const S3Client::Response& r, std::string sent_checksum) {
  PutObjectResult out;
  if (const auto* e = r.header("etag")) out.etag = strip_quotes(*e);
  if (const auto* v = r.header("x-amz-version-id")) out.version_id = *v;
  if (const auto* cs = r.header("x-amz-checksum-sha256")) out.checksum_sha256 = *cs;
  else out.checksum_sha256 = std::move(sent_checksum);
  return out;
}

}  // namespace

S3Result<S3Ok> S3Client::create_bucket(bool object_lock_enabled) {
  Headers h;
  if (object_lock_enabled) h.emplace_back("x-amz-bucket-object-lock-enabled", "true");
  std::string xml;
  if (config_.region != "us-east-1") {
    xml = "<CreateBucketConfiguration xmlns=\"" + std::string(kS3Xmlns) + "\"><LocationConstraint>" +
          common::xml_escape(config_.region) + "</LocationConstraint></CreateBucketConfiguration>";
  }
  auto r = perform("CreateBucket", "PUT", "", {}, std::move(h), memory_body(xml));
  if (!r) return r.error();
  return S3Ok{};
}

S3Result<S3Ok> S3Client::delete_bucket() {
  auto r = perform("DeleteBucket", "DELETE", "", {}, {}, Body{});
  if (!r) return r.error();
  return S3Ok{};
}

S3Result<ObjectLockConfiguration> S3Client::get_object_lock_configuration() {
  auto r = perform("GetObjectLockConfiguration", "GET", "", {{"object-lock", ""}}, {}, Body{});
  if (!r) return r.error();
  pugi::xml_document doc;
  auto root = doc.load_buffer(r->body.data(), r->body.size())
                  ? doc.child("ObjectLockConfiguration")
                  : pugi::xml_node();
  if (!root)
    return S3Error{"GetObjectLockConfiguration", config_.bucket, "", static_cast<int>(r->status),
                   "Client.BadResponse", "no ObjectLockConfiguration in the response", "", false};
  ObjectLockConfiguration cfg;
  cfg.enabled = child_text(root, "ObjectLockEnabled") == std::string("Enabled");
  auto dr = root.child("Rule").child("DefaultRetention");
  if (dr) {
    cfg.default_mode = parse_lock_mode(child_text(dr, "Mode"));
    cfg.default_days = dr.child("Days").text().as_int();
    cfg.default_years = dr.child("Years").text().as_int();
  }
  return cfg;
}

S3Result<S3Ok> S3Client::put_object_lock_configuration(const ObjectLockConfiguration& cfg) {
  std::string xml = "<ObjectLockConfiguration xmlns=\"" + std::string(kS3Xmlns) + "\">";
  if (cfg.enabled) xml += "<ObjectLockEnabled>Enabled</ObjectLockEnabled>";
  if (cfg.default_mode) {
    xml += "<Rule><DefaultRetention><Mode>" + std::string(to_string(*cfg.default_mode)) + "</Mode>";
    if (cfg.default_years > 0) xml += "<Years>" + std::to_string(cfg.default_years) + "</Years>";
    else xml += "<Days>" + std::to_string(cfg.default_days) + "</Days>";
    xml += "</DefaultRetention></Rule>";
  }
  xml += "</ObjectLockConfiguration>";
  Headers h{{"content-md5", md5_base64(xml)}, {"content-type", "application/xml"}};
  auto r = perform("PutObjectLockConfiguration", "PUT", "", {{"object-lock", ""}}, std::move(h),
                   memory_body(xml));
  if (!r) return r.error();
  return S3Ok{};
}

S3Result<std::vector<ObjectVersion>> S3Client::list_object_versions(std::string_view prefix) {
  std::vector<ObjectVersion> out;
  std::string key_marker, version_marker;
  for (int page = 0; page < 100000; ++page) {
    Headers q{{"versions", ""}, {"prefix", std::string(prefix)}};
    if (!key_marker.empty()) q.emplace_back("key-marker", key_marker);
    if (!version_marker.empty()) q.emplace_back("version-id-marker", version_marker);
    auto r = perform("ListObjectVersions", "GET", "", std::move(q), {}, Body{});
    if (!r) return r.error();
    pugi::xml_document doc;
    auto root = doc.load_buffer(r->body.data(), r->body.size()) ? doc.child("ListVersionsResult")
                                                                  : pugi::xml_node();
    if (!root)
      return S3Error{"ListObjectVersions", config_.bucket, std::string(prefix),
                     static_cast<int>(r->status), "Client.BadResponse",
                     "no ListVersionsResult in the response", "", false};
    for (auto n : root.children()) {
      std::string_view name = n.name();
      if (name != "Version" && name != "DeleteMarker") continue;
      ObjectVersion v;
      v.key = child_text(n, "Key");
      v.version_id = child_text(n, "VersionId");
      v.is_latest = child_text(n, "IsLatest") == std::string("true");
      v.delete_marker = name == "DeleteMarker";
      v.size = n.child("Size").text().as_ullong();
      v.etag = strip_quotes(child_text(n, "ETag"));
      v.last_modified = child_text(n, "LastModified");
      out.push_back(std::move(v));
    }
    if (child_text(root, "IsTruncated") != std::string("true")) return out;
    key_marker = child_text(root, "NextKeyMarker");
    version_marker = child_text(root, "NextVersionIdMarker");
    if (key_marker.empty()) return out;
  }
  return out;
}

S3Result<PutObjectResult> S3Client::put_object(std::string_view key, std::string_view data,
                                               const PutObjectOptions& options) {
  Body body;
  if (options.sha256_raw.size() == 32 && !options.content_md5) {
    body.memory = data;
    body.present = true;
    body.sha256_raw = options.sha256_raw;
    body.sha256_hex = hex(body.sha256_raw);
  } else {
    body = memory_body(data);
  }
  Headers h;
  std::string checksum;
  if (options.content_md5) h.emplace_back("content-md5", base64(body.md5_raw));
  if (options.checksum_sha256) {
    checksum = base64(body.sha256_raw);
    h.emplace_back("x-amz-checksum-sha256", checksum);
  }
  add_object_headers(h, options);
  auto r = perform("PutObject", "PUT", key, {}, std::move(h), body);
  if (!r) return r.error();
  return put_result(*r, checksum);
}

S3Result<PutObjectResult> S3Client::put_object_file(std::string_view key,
                                                    const std::filesystem::path& file,
                                                    const PutObjectOptions& options) {
  auto fail = [&](std::string what, int err) {
    return S3Error{"PutObject", config_.bucket, std::string(key), 0, "Client.File",
                   what + " " + file.string() + ": " + std::strerror(err), "", false};
  };
  Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.fd < 0) return fail("cannot open", errno);
  off_t size = ::lseek(fd.fd, 0, SEEK_END);
  if (size < 0) return fail("cannot size", errno);
  Body body;
  body.is_file = true;
  body.present = true;
  body.fd = fd.fd;
  body.length = static_cast<std::uint64_t>(size);
  std::string sha, md5;
  int err = 0;
  if (!digest_file(fd.fd, 0, body.length, &sha, &md5, &err)) return fail("cannot read", err);
  body.sha256_hex = hex(sha);
  Headers h;
  std::string checksum;
  if (options.content_md5) h.emplace_back("content-md5", base64(md5));
  if (options.checksum_sha256) {
    checksum = base64(sha);
    h.emplace_back("x-amz-checksum-sha256", checksum);
  }
  add_object_headers(h, options);
  auto r = perform("PutObject", "PUT", key, {}, std::move(h), body);
  if (!r) return r.error();
  return put_result(*r, checksum);
}

S3Result<PutObjectResult> S3Client::put_object_stream(std::string_view key, BodySource& source,
                                                      const PutObjectOptions& options) {
  Body body;
  body.source = &source;
  body.present = true;
  body.sha256_hex = "UNSIGNED-PAYLOAD";
  Headers h;
  add_object_headers(h, options);
  auto r = perform("PutObject", "PUT", key, {}, std::move(h), body);
  if (!r) return r.error();
  return put_result(*r, "");
}

namespace {

HeadObjectResult parse_head(const S3Client::Response& r) {
  HeadObjectResult h;
  for (const auto& [k, v] : r.headers) {
    if (k == "content-length") h.size = std::strtoull(v.c_str(), nullptr, 10);
    else if (k == "etag") h.etag = strip_quotes(v);
    else if (k == "x-amz-version-id") h.version_id = v;
    else if (k == "content-type") h.content_type = v;
    else if (k == "last-modified") h.last_modified = v;
    else if (k.starts_with("x-amz-meta-")) h.metadata[k.substr(11)] = v;
    else if (k == "x-amz-checksum-sha256") h.checksum_sha256 = v;
    else if (k == "x-amz-object-lock-mode") h.lock_mode = parse_lock_mode(v);
    else if (k == "x-amz-object-lock-retain-until-date") h.retain_until = v;
    else if (k == "x-amz-object-lock-legal-hold") h.legal_hold = v == "ON";
    else if (k == "x-amz-server-side-encryption") h.sse = v;
    else if (k == "x-amz-delete-marker") h.delete_marker = v == "true";
  }
  return h;
}

}  // namespace

S3Result<HeadObjectResult> S3Client::head_object(std::string_view key, std::string_view version_id,
                                                 bool checksum_mode) {
  Headers q;
  if (!version_id.empty()) q.emplace_back("versionId", std::string(version_id));
  Headers h;
  if (checksum_mode) h.emplace_back("x-amz-checksum-mode", "ENABLED");
  auto r = perform("HeadObject", "HEAD", key, std::move(q), std::move(h), Body{}, true);
  if (!r) return r.error();
  return parse_head(*r);
}

S3Result<GetObjectResult> S3Client::get_object(std::string_view key, std::string_view version_id) {
  Headers q;
  if (!version_id.empty()) q.emplace_back("versionId", std::string(version_id));
  auto r = perform("GetObject", "GET", key, std::move(q), {}, Body{});
  if (!r) return r.error();
  GetObjectResult out{parse_head(*r), std::move(r->body)};
  out.head.size = out.body.size();
  return out;
}

S3Result<DeleteObjectResult> S3Client::delete_object(std::string_view key,
                                                     std::string_view version_id,
                                                     bool bypass_governance) {
  Headers q;
  if (!version_id.empty()) q.emplace_back("versionId", std::string(version_id));
  Headers h;
  if (bypass_governance) h.emplace_back("x-amz-bypass-governance-retention", "true");
  auto r = perform("DeleteObject", "DELETE", key, std::move(q), std::move(h), Body{});
  if (!r) return r.error();
  DeleteObjectResult out;
  if (const auto* d = r->header("x-amz-delete-marker")) out.delete_marker = *d == "true";
  if (const auto* v = r->header("x-amz-version-id")) out.version_id = *v;
  return out;
}

S3Result<S3Ok> S3Client::put_object_retention(std::string_view key, std::string_view version_id,
                                              const ObjectLock& lock, bool bypass_governance) {
  Headers q{{"retention", ""}};
  if (!version_id.empty()) q.emplace_back("versionId", std::string(version_id));
  std::string xml = "<Retention xmlns=\"" + std::string(kS3Xmlns) + "\"><Mode>" +
                    std::string(to_string(lock.mode)) + "</Mode><RetainUntilDate>" +
                    iso8601(lock.retain_until) + "</RetainUntilDate></Retention>";
  Headers h{{"content-md5", md5_base64(xml)}, {"content-type", "application/xml"}};
  if (bypass_governance) h.emplace_back("x-amz-bypass-governance-retention", "true");
  auto r = perform("PutObjectRetention", "PUT", key, std::move(q), std::move(h), memory_body(xml));
  if (!r) return r.error();
  return S3Ok{};
}

S3Result<std::map<std::string, std::string>> S3Client::get_object_tagging(std::string_view key,
                                                                          std::string_view version_id) {
  Headers q{{"tagging", ""}};
  if (!version_id.empty()) q.emplace_back("versionId", std::string(version_id));
  auto r = perform("GetObjectTagging", "GET", key, std::move(q), {}, Body{});
  if (!r) return r.error();
  pugi::xml_document doc;
  auto root = doc.load_buffer(r->body.data(), r->body.size()) ? doc.child("Tagging") : pugi::xml_node();
  if (!root)
    return S3Error{"GetObjectTagging", config_.bucket, std::string(key), static_cast<int>(r->status),
                   "Client.BadResponse", "no Tagging in the response", "", false};
  std::map<std::string, std::string> tags;
  for (auto t : root.child("TagSet").children("Tag")) tags[child_text(t, "Key")] = child_text(t, "Value");
  return tags;
}

S3Result<S3Ok> S3Client::put_object_tagging(std::string_view key, std::string_view version_id,
                                            const std::map<std::string, std::string>& tags) {
  Headers q{{"tagging", ""}};
  if (!version_id.empty()) q.emplace_back("versionId", std::string(version_id));
  std::string xml = "<Tagging xmlns=\"" + std::string(kS3Xmlns) + "\"><TagSet>";
  for (const auto& [k, v] : tags)
    xml += "<Tag><Key>" + common::xml_escape(k) + "</Key><Value>" + common::xml_escape(v) + "</Value></Tag>";
  xml += "</TagSet></Tagging>";
  Headers h{{"content-md5", md5_base64(xml)}, {"content-type", "application/xml"}};
  auto r = perform("PutObjectTagging", "PUT", key, std::move(q), std::move(h), memory_body(xml));
  if (!r) return r.error();
  return S3Ok{};
}

S3Result<std::string> S3Client::create_multipart_upload(std::string_view key,
                                                        const PutObjectOptions& options) {
  Headers h;
  if (options.checksum_sha256) h.emplace_back("x-amz-checksum-algorithm", "SHA256");
  add_object_headers(h, options);
  auto r = perform("CreateMultipartUpload", "POST", key, {{"uploads", ""}}, std::move(h),
                   memory_body(""));
  if (!r) return r.error();
  pugi::xml_document doc;
  std::string id;
  if (doc.load_buffer(r->body.data(), r->body.size()))
    id = child_text(doc.child("InitiateMultipartUploadResult"), "UploadId");
  if (id.empty())
    return S3Error{"CreateMultipartUpload", config_.bucket, std::string(key),
                   static_cast<int>(r->status), "Client.BadResponse", "no UploadId in the response",
                   "", false};
  return id;
}

S3Result<UploadPartResult> S3Client::upload_part(std::string_view key, std::string_view upload_id,
                                                 int part_number, std::string_view data,
                                                 bool checksum_sha256) {
  Body body = memory_body(data);
  Headers h{{"content-md5", base64(body.md5_raw)}};
  std::string checksum;
  if (checksum_sha256) {
    checksum = base64(body.sha256_raw);
    h.emplace_back("x-amz-checksum-sha256", checksum);
  }
  Headers q{{"partNumber", std::to_string(part_number)}, {"uploadId", std::string(upload_id)}};
  auto r = perform("UploadPart", "PUT", key, std::move(q), std::move(h), body);
  if (!r) return r.error();
  UploadPartResult out{part_number, "", checksum};
  if (const auto* e = r->header("etag")) out.etag = strip_quotes(*e);
  if (const auto* cs = r->header("x-amz-checksum-sha256")) out.checksum_sha256 = *cs;
  return out;
}

S3Result<UploadPartResult> S3Client::upload_part_file(std::string_view key,
                                                      std::string_view upload_id, int part_number,
                                                      const std::filesystem::path& file,
                                                      std::uint64_t offset, std::uint64_t length,
                                                      bool checksum_sha256) {
  auto fail = [&](std::string what, int err) {
    return S3Error{"UploadPart", config_.bucket, std::string(key), 0, "Client.File",
                   what + " " + file.string() + ": " + std::strerror(err), "", false};
  };
  Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.fd < 0) return fail("cannot open", errno);
  Body body;
  body.is_file = true;
  body.present = true;
  body.fd = fd.fd;
  body.offset = offset;
  body.length = length;
  std::string sha, md5;
  int err = 0;
  if (!digest_file(fd.fd, offset, length, &sha, &md5, &err)) return fail("cannot read", err);
  body.sha256_hex = hex(sha);
  Headers h{{"content-md5", base64(md5)}};
  std::string checksum;
  if (checksum_sha256) {
    checksum = base64(sha);
    h.emplace_back("x-amz-checksum-sha256", checksum);
  }
  Headers q{{"partNumber", std::to_string(part_number)}, {"uploadId", std::string(upload_id)}};
  auto r = perform("UploadPart", "PUT", key, std::move(q), std::move(h), body);
  if (!r) return r.error();
  UploadPartResult out{part_number, "", checksum};
  if (const auto* e = r->header("etag")) out.etag = strip_quotes(*e);
  if (const auto* cs = r->header("x-amz-checksum-sha256")) out.checksum_sha256 = *cs;
  return out;
}

S3Result<CompleteMultipartResult> S3Client::complete_multipart_upload(
    std::string_view key, std::string_view upload_id, const std::vector<UploadPartResult>& parts) {
  std::string xml = "<CompleteMultipartUpload xmlns=\"" + std::string(kS3Xmlns) + "\">";
  for (const auto& p : parts) {
    xml += "<Part><PartNumber>" + std::to_string(p.part_number) + "</PartNumber><ETag>\"" +
           common::xml_escape(p.etag) + "\"</ETag>";
    if (!p.checksum_sha256.empty())
      xml += "<ChecksumSHA256>" + common::xml_escape(p.checksum_sha256) + "</ChecksumSHA256>";
    xml += "</Part>";
  }
  xml += "</CompleteMultipartUpload>";
  Headers h{{"content-md5", md5_base64(xml)}, {"content-type", "application/xml"}};
  auto r = perform("CompleteMultipartUpload", "POST", key, {{"uploadId", std::string(upload_id)}},
                   std::move(h), memory_body(xml));
  if (!r) return r.error();
  // S3 may answer 200 and still fail: the error is then in the body.
  std::string code, message, request_id;
  if (parse_s3_error_body(r->body, &code, &message, &request_id))
    return S3Error{"CompleteMultipartUpload", config_.bucket, std::string(key),
                   static_cast<int>(r->status), code, message, request_id,
                   retryable_status(500, code)};
  CompleteMultipartResult out;
  pugi::xml_document doc;
  if (doc.load_buffer(r->body.data(), r->body.size()))
    out.etag = strip_quotes(child_text(doc.child("CompleteMultipartUploadResult"), "ETag"));
  if (const auto* v = r->header("x-amz-version-id")) out.version_id = *v;
  return out;
}

S3Result<S3Ok> S3Client::abort_multipart_upload(std::string_view key, std::string_view upload_id) {
  auto r = perform("AbortMultipartUpload", "DELETE", key, {{"uploadId", std::string(upload_id)}},
                   {}, Body{});
  if (!r) return r.error();
  return S3Ok{};
}

S3Result<std::vector<PartInfo>> S3Client::list_parts(std::string_view key,
                                                     std::string_view upload_id) {
  std::vector<PartInfo> out;
  std::string marker;
  for (int page = 0; page < 10001; ++page) {
    Headers q{{"uploadId", std::string(upload_id)}};
    if (!marker.empty()) q.emplace_back("part-number-marker", marker);
    auto r = perform("ListParts", "GET", key, std::move(q), {}, Body{});
    if (!r) return r.error();
    pugi::xml_document doc;
    auto root = doc.load_buffer(r->body.data(), r->body.size()) ? doc.child("ListPartsResult")
                                                                  : pugi::xml_node();
    if (!root)
      return S3Error{"ListParts", config_.bucket, std::string(key), static_cast<int>(r->status),
                     "Client.BadResponse", "no ListPartsResult in the response", "", false};
    for (auto p : root.children("Part"))
      out.push_back(PartInfo{p.child("PartNumber").text().as_int(),
                             strip_quotes(child_text(p, "ETag")), p.child("Size").text().as_ullong()});
    if (child_text(root, "IsTruncated") != std::string("true")) return out;
    std::string next = child_text(root, "NextPartNumberMarker");
    if (next.empty() || next == marker) return out;
    marker = next;
  }
  return out;
}

}  // namespace sgw::storage
