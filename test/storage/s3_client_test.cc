// S3Client: offline tests (credentials, errors, URLs, a fake server answering
// 503 SlowDown) and tests against a REAL S3 server (Ceph radosgw, started by
// scripts/s3-server): SigV4 verified by the server, Object Lock COMPLIANCE
// enforced, multipart, awkward keys.
//
// Where the server comes from, first match wins:
//  1. S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY (S3_REGION) set by the caller;
//  2. SGW_S3_SERVER_DIR: a directory where ctest's s3_server_start fixture ran
//     `scripts/s3-server start` (its s3.env);
//  3. otherwise this process starts scripts/s3-server in a temp dir, once, and
//     stops it at exit.
// A server that cannot be had FAILS the tests, with the reason; never skips.
#include "storage/s3_client.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

namespace sgw::storage {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------
// Offline

TEST(S3Credentials, SharedFileProfiles) {
  const char* text =
      "# comment\n[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key=sdefault\n\n"
      "[profile rec]\n  aws_access_key_id=AKREC  \n; c\naws_secret_access_key = srec\n"
      "aws_session_token = tok\n[broken]\naws_access_key_id=AKBROKEN1234\n";
  auto d = parse_credentials_file(text, "default", "f");
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->access_key_id, "AKDEFAULT");
  EXPECT_EQ(d->secret_access_key, "sdefault");
  auto r = parse_credentials_file(text, "rec", "f");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->access_key_id, "AKREC");
  EXPECT_EQ(r->session_token, "tok");
  auto b = parse_credentials_file(text, "broken", "f");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code, "s3.credentials.incomplete");
  // Names the file, the profile and what is missing, but never a key's value.
  EXPECT_EQ(b.error().message,
            "credentials file f profile [broken] lacks aws_access_key_id or aws_secret_access_key");
  EXPECT_EQ(b.error().message.find("AKBROKEN1234"), std::string::npos);
  auto m = parse_credentials_file(text, "nope", "/h/.aws/credentials");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code, "s3.credentials.profile");
  EXPECT_NE(m.error().message.find("/h/.aws/credentials"), std::string::npos);
}

struct FakeEnv {
  std::map<std::string, std::string> vars;
  std::function<std::optional<std::string>(const char*)> fn() {
    return [this](const char* n) -> std::optional<std::string> {
      auto it = vars.find(n);
      if (it == vars.end()) return std::nullopt;
      return it->second;
    };
  }
};

TEST(S3Credentials, ResolutionOrder) {
  auto dir = fs::temp_directory_path() / ("sgw-cred-" + std::to_string(::getpid()));
  fs::create_directories(dir / ".aws");
  std::ofstream(dir / ".aws" / "credentials")
      << "[default]\naws_access_key_id=AKFILE\naws_secret_access_key=SECRETFILE\n"
         "[other]\naws_access_key_id=AKOTHER\naws_secret_access_key=SECRETOTHER\n";
  FakeEnv env;
  env.vars["HOME"] = dir.string();
  CredentialSources src;
  src.getenv = env.fn();

  auto f = resolve_credentials(src);
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f->access_key_id, "AKFILE");

  env.vars["AWS_PROFILE"] = "other";
  EXPECT_EQ(resolve_credentials(src)->access_key_id, "AKOTHER");
  src.profile = "default";  // config's profile beats AWS_PROFILE
  EXPECT_EQ(resolve_credentials(src)->access_key_id, "AKFILE");

  env.vars["AWS_ACCESS_KEY_ID"] = "AKENV";
  env.vars["AWS_SECRET_ACCESS_KEY"] = "SECRETENV";
  env.vars["AWS_SESSION_TOKEN"] = "TOKENV";
  auto e = resolve_credentials(src);
  EXPECT_EQ(e->access_key_id, "AKENV");
  EXPECT_EQ(e->session_token, "TOKENV");

  src.configured = SigV4Credentials{"AKCONF", "SECRETCONF", ""};
  EXPECT_EQ(resolve_credentials(src)->access_key_id, "AKCONF");

  src.configured.reset();
  env.vars.erase("AWS_SECRET_ACCESS_KEY");
  auto inc = resolve_credentials(src);
  ASSERT_FALSE(inc.ok());
  EXPECT_EQ(inc.error().code, "s3.credentials.incomplete");
  EXPECT_EQ(inc.error().message.find("AKENV"), std::string::npos);

  env.vars.erase("AWS_ACCESS_KEY_ID");
  env.vars["AWS_SHARED_CREDENTIALS_FILE"] = (dir / "missing").string();
  auto none = resolve_credentials(src);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, "s3.credentials.none");
  EXPECT_NE(none.error().message.find((dir / "missing").string()), std::string::npos);
  fs::remove_all(dir);
}

TEST(S3Errors, ParsesS3ErrorBody) {
  std::string code, msg, rid;
  ASSERT_TRUE(parse_s3_error_body(
      "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Reduce your request rate."
      "</Message><RequestId>R1</RequestId></Error>",
      &code, &msg, &rid));
  EXPECT_EQ(code, "SlowDown");
  EXPECT_EQ(msg, "Reduce your request rate.");
  EXPECT_EQ(rid, "R1");
  EXPECT_FALSE(parse_s3_error_body("", &code, &msg, &rid));
  EXPECT_FALSE(parse_s3_error_body("<html>oops", &code, &msg, &rid));
  EXPECT_FALSE(parse_s3_error_body("<ListBucketResult/>", &code, &msg, &rid));
}

S3ClientConfig base_config() {
  S3ClientConfig c;
  c.endpoint = "http://127.0.0.1:9000";
  c.bucket = "recs";
  c.credentials = {"AK", "SK", ""};
  return c;
}

TEST(S3ClientUrls, PathStyleAndVirtualHosted) {
  auto c = base_config();
  c.path_style = true;
  auto p = S3Client::create(c);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->url_for("a b/c+d%e"), "http://127.0.0.1:9000/recs/a%20b/c%2Bd%25e");
  EXPECT_EQ((*p)->url_for(""), "http://127.0.0.1:9000/recs");
  c.path_style = false;
  c.endpoint = "https://s3.eu-west-1.amazonaws.com/";
  auto v = S3Client::create(c);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ((*v)->url_for("x/ü"), "https://recs.s3.eu-west-1.amazonaws.com/x/%C3%BC");
  c.endpoint = "";
  c.region = "ap-south-1";
  EXPECT_EQ((*S3Client::create(c))->url_for("k"), "https://recs.s3.ap-south-1.amazonaws.com/k");
}

TEST(S3ClientUrls, RejectsBadConfig) {
  auto c = base_config();
  c.endpoint = "ftp://x";
  EXPECT_EQ(S3Client::create(c).error().code, "s3.config.endpoint");
  c = base_config();
  c.bucket = "";
  EXPECT_EQ(S3Client::create(c).error().code, "s3.config.bucket");
  c = base_config();
  c.credentials = {};
  EXPECT_EQ(S3Client::create(c).error().code, "s3.config.credentials");
  c = base_config();
  c.endpoint = "https://s3.amazonaws.com";
  c.bucket = "a.b";
  EXPECT_EQ(S3Client::create(c).error().code, "s3.config.bucket");
  c.path_style = true;
  EXPECT_TRUE(S3Client::create(c).ok());
}

// A fake endpoint that re-computes our signature from what arrived on the wire
// (so the headers curl sends are exactly the signed ones), then answers 503
// SlowDown: the error must be reported as retryable.
TEST(S3ClientFake, WireMatchesSignatureAndSlowDownIsRetryable) {
  httplib::Server srv;
  std::string seen_auth, seen_creq_check, seen_body;
  std::atomic<int> hits{0};
  srv.Put(".*", [&](const httplib::Request& req, httplib::Response& res) {
    ++hits;
    seen_body = req.body;
    SigV4Request r;
    r.method = req.method;
    r.path = req.path;  // httplib decodes the path
    for (const auto& [k, v] : req.params) r.query.emplace_back(k, v);
    std::string auth = req.get_header_value("Authorization");
    auto sh = auth.find("SignedHeaders=");
    std::string signed_list = auth.substr(sh + 14, auth.find(',', sh) - sh - 14);
    std::stringstream names(signed_list);
    std::string n;
    while (std::getline(names, n, ';')) r.headers.emplace_back(n, req.get_header_value(n));
    r.payload_sha256_hex = sha256_hex(req.body);
    EXPECT_EQ(req.get_header_value("x-amz-content-sha256"), r.payload_sha256_hex);
    auto s = sign(r, {"AK", "SK", ""}, {"us-east-1", "s3"}, req.get_header_value("x-amz-date"));
    seen_auth = auth;
    seen_creq_check = s.authorization;
    res.status = 503;
    res.set_header("x-amz-request-id", "REQ42");
    res.set_content("<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
                    "application/xml");
  });
  srv.set_keep_alive_max_count(1);  // close after the reply: stop() returns at once
  int port = srv.bind_to_any_port("127.0.0.1");
  std::thread t([&] { srv.listen_after_bind(); });
  while (!srv.is_running()) std::this_thread::sleep_for(1ms);

  auto c = base_config();
  c.endpoint = "http://127.0.0.1:" + std::to_string(port);
  c.path_style = true;
  auto client = S3Client::create(c);
  ASSERT_TRUE(client.ok());
  PutObjectOptions o;
  o.metadata = {{"a", "1"}, {"a-b", "2"}};
  auto r = (*client)->put_object("dir/a b+c", "payload", o);
  srv.stop();
  t.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(hits.load(), 1);
  EXPECT_EQ(seen_body, "payload");
  EXPECT_EQ(seen_auth, seen_creq_check);
  EXPECT_EQ(r.error().http_status, 503);
  EXPECT_EQ(r.error().code, "SlowDown");
  EXPECT_TRUE(r.error().retryable);
  EXPECT_EQ(r.error().request_id, "REQ42");
  EXPECT_NE(r.error().describe().find("PutObject s3://recs/dir/a b+c: HTTP 503 SlowDown"),
            std::string::npos)
      << r.error().describe();
}

TEST(S3ClientFake, ConnectionRefusedIsRetryableTransportError) {
  auto c = base_config();
  c.endpoint = "http://127.0.0.1:1";
  c.path_style = true;
  c.connect_timeout = 2s;
  auto client = S3Client::create(c);
  auto r = (*client)->head_object("k");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().http_status, 0);
  EXPECT_EQ(r.error().code, "Transport.CouldNotConnect");
  EXPECT_TRUE(r.error().retryable);
}

// ---------------------------------------------------------------------------
// Against the real server

struct ServerInfo {
  std::string endpoint, region = "us-east-1", access_key, secret_key;
  std::string error;  // why there is no server
};

std::string run(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) {
    *status = -1;
    return "popen failed";
  }
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  *status = ::pclose(p);
  return out;
}

void parse_env(const std::string& text, ServerInfo* s) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string k = line.substr(0, eq), v = line.substr(eq + 1);
    if (k == "S3_ENDPOINT") s->endpoint = v;
    else if (k == "S3_REGION") s->region = v;
    else if (k == "S3_ACCESS_KEY") s->access_key = v;
    else if (k == "S3_SECRET_KEY") s->secret_key = v;
  }
}

class ServerHolder {
 public:
  static ServerHolder& get() {
    static ServerHolder h;
    return h;
  }
  const ServerInfo& info() {
    std::call_once(once_, [this] { start(); });
    return info_;
  }
  ~ServerHolder() {
    if (!own_dir_.empty()) {
      int st;
      run(script() + " stop " + own_dir_, &st);
      std::error_code ec;
      fs::remove_all(own_dir_, ec);
    }
  }

 private:
  static std::string script() {
    return (fs::path(SGW_TEST_DATA_DIR) / ".." / ".." / ".." / "scripts" / "s3-server").string();
  }
  void start() {
    if (const char* ep = std::getenv("S3_ENDPOINT"); ep && *ep) {
      info_.endpoint = ep;
      if (const char* v = std::getenv("S3_REGION")) info_.region = v;
      if (const char* v = std::getenv("S3_ACCESS_KEY")) info_.access_key = v;
      if (const char* v = std::getenv("S3_SECRET_KEY")) info_.secret_key = v;
      if (info_.access_key.empty() || info_.secret_key.empty())
        info_.error = "S3_ENDPOINT is set but S3_ACCESS_KEY/S3_SECRET_KEY are not";
      return;
    }
    if (const char* dir = std::getenv("SGW_S3_SERVER_DIR"); dir && *dir) {
      std::ifstream in(fs::path(dir) / "s3.env");
      if (!in) {
        info_.error = std::string("no ") + dir +
                      "/s3.env: the s3_server_start test (scripts/s3-server start) failed; see its "
                      "output and the logs under " + dir + "/log";
        return;
      }
      std::stringstream ss;
      ss << in.rdbuf();
      parse_env(ss.str(), &info_);
      return;
    }
    char tmpl[] = "/tmp/sgw-s3-server-XXXXXX";
    if (!::mkdtemp(tmpl)) {
      info_.error = "mkdtemp failed";
      return;
    }
    own_dir_ = tmpl;
    int st = 0;
    std::string out = run(script() + " start " + own_dir_, &st);
    if (st != 0) {
      info_.error = "scripts/s3-server start " + own_dir_ + " failed (status " +
                    std::to_string(st) + "):\n" + out;
      return;
    }
    parse_env(out, &info_);
    if (info_.endpoint.empty()) info_.error = "scripts/s3-server printed no S3_ENDPOINT:\n" + out;
  }
  std::once_flag once_;
  ServerInfo info_;
  std::string own_dir_;
};

std::string unique_bucket(const std::string& what) {
  static std::atomic<int> n{0};
  std::mt19937 rng(static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
                   static_cast<unsigned>(::getpid()));
  return "sgw-" + what + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++) + "-" +
         std::to_string(rng() % 100000);
}

std::string sha256_b64(std::string_view data) {
  BodyDigest d;
  d.update(data);
  std::string sha;
  d.finish(&sha, nullptr);
  return base64(sha);
}

std::string md5_hex(std::string_view data) {
  BodyDigest d;
  d.update(data);
  std::string md5;
  d.finish(nullptr, &md5);
  return hex(md5);
}

class S3ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& info = ServerHolder::get().info();
    ASSERT_TRUE(info.error.empty()) << "no S3 server: " << info.error;
    server_ = info;
  }

  S3ClientConfig config(const std::string& bucket) const {
    S3ClientConfig c;
    c.endpoint = server_.endpoint;
    c.region = server_.region;
    c.bucket = bucket;
    c.path_style = true;
    c.credentials = {server_.access_key, server_.secret_key, ""};
    c.request_timeout = 120s;
    return c;
  }

  std::unique_ptr<S3Client> client(const std::string& bucket) const {
    auto c = S3Client::create(config(bucket));
    EXPECT_TRUE(c.ok()) << c.error().message;
    return c.ok() ? std::move(c.value()) : nullptr;
  }

  // A new bucket, with or without Object Lock.
  std::unique_ptr<S3Client> new_bucket(const std::string& what, bool lock) {
    auto c = client(unique_bucket(what));
    auto r = c->create_bucket(lock);
    EXPECT_TRUE(r.ok()) << r.error().describe();
    return c;
  }

  ServerInfo server_;
};

TEST_F(S3ServerTest, CreateObjectLockBucket) {
  auto c = new_bucket("lock", true);
  auto cfg = c->get_object_lock_configuration();
  ASSERT_TRUE(cfg.ok()) << cfg.error().describe();
  EXPECT_TRUE(cfg->enabled);

  ObjectLockConfiguration want;
  want.enabled = true;
  want.default_mode = LockMode::kGovernance;
  want.default_days = 1;
  auto put = c->put_object_lock_configuration(want);
  ASSERT_TRUE(put.ok()) << put.error().describe();
  cfg = c->get_object_lock_configuration();
  ASSERT_TRUE(cfg.ok()) << cfg.error().describe();
  ASSERT_TRUE(cfg->default_mode.has_value());
  EXPECT_EQ(*cfg->default_mode, LockMode::kGovernance);
  EXPECT_EQ(cfg->default_days, 1);
}

TEST_F(S3ServerTest, PutWithMetadataMd5AndChecksumThenHead) {
  auto c = new_bucket("meta", true);
  std::string body = "RIFF....WAVEfmt a recording";
  PutObjectOptions o;
  o.content_type = "audio/wav";
  o.metadata = {{"conversation-id", "c0ffee-1"}, {"participants", "sip:alice@example.com,sip:bob@example.com"}};
  o.tags = {{"source", "siprec gw"}};
  auto put = c->put_object("2026/01/02/c0ffee-1/rec-1.wav", body, o);
  ASSERT_TRUE(put.ok()) << put.error().describe();
  EXPECT_EQ(put->etag, md5_hex(body));  // the server checked Content-MD5 and stored this
  EXPECT_FALSE(put->version_id.empty());
  EXPECT_EQ(put->checksum_sha256, sha256_b64(body));

  auto head = c->head_object("2026/01/02/c0ffee-1/rec-1.wav");
  ASSERT_TRUE(head.ok()) << head.error().describe();
  EXPECT_EQ(head->size, body.size());
  EXPECT_EQ(head->etag, md5_hex(body));
  EXPECT_EQ(head->content_type, "audio/wav");
  EXPECT_EQ(head->version_id, put->version_id);
  EXPECT_EQ(head->metadata["conversation-id"], "c0ffee-1");
  EXPECT_EQ(head->metadata["participants"], "sip:alice@example.com,sip:bob@example.com");
  // x-amz-checksum-sha256 is kept by AWS S3 and Ceph >= 18; Ceph 16 (Debian 12)
  // accepts the header but does not store it, so HEAD returns none there.
  if (!head->checksum_sha256.empty()) {
    EXPECT_EQ(head->checksum_sha256, sha256_b64(body));
  } else {
    RecordProperty("checksum_sha256", "server does not return x-amz-checksum-sha256");
  }

  auto get = c->get_object("2026/01/02/c0ffee-1/rec-1.wav");
  ASSERT_TRUE(get.ok()) << get.error().describe();
  EXPECT_EQ(get->body, body);
}

TEST_F(S3ServerTest, PutFromFile) {
  auto c = new_bucket("file", false);
  auto path = fs::temp_directory_path() / ("sgw-s3-file-" + std::to_string(::getpid()));
  std::string data(300000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + 3);
  std::ofstream(path, std::ios::binary) << data;
  auto put = c->put_object_file("f.bin", path, {});
  fs::remove(path);
  ASSERT_TRUE(put.ok()) << put.error().describe();
  EXPECT_EQ(put->etag, md5_hex(data));
  auto get = c->get_object("f.bin");
  ASSERT_TRUE(get.ok()) << get.error().describe();
  EXPECT_EQ(get->body, data);
  auto missing = c->put_object_file("g.bin", "/nonexistent/sgw", {});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, "Client.File");
  EXPECT_NE(missing.error().message.find("/nonexistent/sgw"), std::string::npos);
}

TEST_F(S3ServerTest, ComplianceRetentionRefusesDeleteAndShortening) {
  auto c = new_bucket("compliance", true);
  auto until = std::chrono::system_clock::now() + 24h;
  PutObjectOptions o;
  o.lock = ObjectLock{LockMode::kCompliance, until};
  auto put = c->put_object("locked.wav", "audio", o);
  ASSERT_TRUE(put.ok()) << put.error().describe();
  ASSERT_FALSE(put->version_id.empty());

  auto head = c->head_object("locked.wav", put->version_id);
  ASSERT_TRUE(head.ok()) << head.error().describe();
  ASSERT_TRUE(head->lock_mode.has_value());
  EXPECT_EQ(*head->lock_mode, LockMode::kCompliance);
  EXPECT_EQ(head->retain_until.substr(0, 19), iso8601(until).substr(0, 19));

  auto del = c->delete_object("locked.wav", put->version_id);
  ASSERT_FALSE(del.ok()) << "the server deleted a COMPLIANCE-locked version";
  EXPECT_EQ(del.error().http_status, 403);
  EXPECT_EQ(del.error().code, "AccessDenied");
  EXPECT_FALSE(del.error().retryable);
  // Not even with the governance bypass.
  auto del2 = c->delete_object("locked.wav", put->version_id, true);
  ASSERT_FALSE(del2.ok());
  EXPECT_EQ(del2.error().code, "AccessDenied");

  auto shorten = c->put_object_retention("locked.wav", put->version_id,
                                         ObjectLock{LockMode::kCompliance, until - 1h});
  ASSERT_FALSE(shorten.ok()) << "the server shortened a COMPLIANCE retention";
  EXPECT_EQ(shorten.error().http_status, 403);
  auto weaken = c->put_object_retention("locked.wav", put->version_id,
                                        ObjectLock{LockMode::kGovernance, until + 1h});
  ASSERT_FALSE(weaken.ok()) << "the server turned COMPLIANCE into GOVERNANCE";
  auto extend = c->put_object_retention("locked.wav", put->version_id,
                                        ObjectLock{LockMode::kCompliance, until + 24h});
  EXPECT_TRUE(extend.ok()) << extend.error().describe();

  // A plain DELETE only adds a delete marker; the locked version stays.
  auto marker = c->delete_object("locked.wav");
  ASSERT_TRUE(marker.ok()) << marker.error().describe();
  EXPECT_TRUE(marker->delete_marker);
  auto versions = c->list_object_versions("locked.wav");
  ASSERT_TRUE(versions.ok()) << versions.error().describe();
  bool found = false;
  for (const auto& v : *versions) found = found || (v.version_id == put->version_id && !v.delete_marker);
  EXPECT_TRUE(found);
  auto get = c->get_object("locked.wav", put->version_id);
  ASSERT_TRUE(get.ok()) << get.error().describe();
  EXPECT_EQ(get->body, "audio");
}

TEST_F(S3ServerTest, WrongSecretIsSignatureDoesNotMatch) {
  auto good = new_bucket("authz", false);
  auto cfg = config(good->config().bucket);
  cfg.credentials.secret_access_key += "x";
  auto bad = S3Client::create(cfg);
  ASSERT_TRUE(bad.ok());
  auto r = (*bad)->put_object("k", "v", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().http_status, 403);
  EXPECT_EQ(r.error().code, "SignatureDoesNotMatch");
  EXPECT_FALSE(r.error().retryable);
  std::string d = r.error().describe();
  EXPECT_NE(d.find("HTTP 403 SignatureDoesNotMatch"), std::string::npos) << d;
  EXPECT_EQ(d.find(cfg.credentials.secret_access_key), std::string::npos) << d;

  auto unknown = cfg;
  unknown.credentials = {"NOSUCHKEY", "whatever", ""};
  auto r2 = (*S3Client::create(unknown))->put_object("k", "v", {});
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().http_status, 403);
  EXPECT_EQ(r2.error().code, "InvalidAccessKeyId");
}

TEST_F(S3ServerTest, LockHeadersOnBucketWithoutObjectLockFail) {
  auto c = new_bucket("nolock", false);
  auto cfg = c->get_object_lock_configuration();
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.error().http_status, 404);
  EXPECT_EQ(cfg.error().code, "ObjectLockConfigurationNotFoundError");

  PutObjectOptions o;
  o.lock = ObjectLock{LockMode::kCompliance, std::chrono::system_clock::now() + 1h};
  auto put = c->put_object("k.wav", "x", o);
  ASSERT_FALSE(put.ok()) << "lock headers accepted on a bucket without Object Lock";
  EXPECT_EQ(put.error().http_status, 400);
  EXPECT_FALSE(put.error().retryable);
  EXPECT_FALSE(put.error().code.empty());
  RecordProperty("error", put.error().describe());

  auto nobucket = client(unique_bucket("missing"));
  auto nb = nobucket->put_object("k", "x", {});
  ASSERT_FALSE(nb.ok());
  EXPECT_EQ(nb.error().code, "NoSuchBucket");
}

TEST_F(S3ServerTest, MultipartUploadThenLock) {
  auto c = new_bucket("multipart", true);
  constexpr std::uint64_t kPart = 5u << 20;
  constexpr std::uint64_t kSize = 20u << 20;
  auto path = fs::temp_directory_path() / ("sgw-s3-mp-" + std::to_string(::getpid()));
  std::string data(kSize, '\0');
  std::mt19937 rng(42);
  for (auto& ch : data) ch = static_cast<char>(rng());
  std::ofstream(path, std::ios::binary).write(data.data(), static_cast<std::streamsize>(data.size()));

  PutObjectOptions o;
  o.metadata = {{"recording-id", "big-1"}};
  auto id = c->create_multipart_upload("big.wav", o);
  ASSERT_TRUE(id.ok()) << id.error().describe();
  std::vector<UploadPartResult> parts;
  for (std::uint64_t off = 0, n = 1; off < kSize; off += kPart, ++n) {
    auto p = c->upload_part_file("big.wav", *id, static_cast<int>(n), path, off,
                                 std::min(kPart, kSize - off), true);
    ASSERT_TRUE(p.ok()) << p.error().describe();
    EXPECT_EQ(p->etag, md5_hex(std::string_view(data).substr(off, std::min(kPart, kSize - off))));
    parts.push_back(*p);
  }
  fs::remove(path);
  auto listed = c->list_parts("big.wav", *id);
  ASSERT_TRUE(listed.ok()) << listed.error().describe();
  ASSERT_EQ(listed->size(), 4u);
  EXPECT_EQ((*listed)[3].part_number, 4);
  EXPECT_EQ((*listed)[3].size, kPart);
  EXPECT_EQ((*listed)[0].etag, parts[0].etag);

  auto done = c->complete_multipart_upload("big.wav", *id, parts);
  ASSERT_TRUE(done.ok()) << done.error().describe();
  // Ceph 16 answers an empty <ETag> here; HEAD has it.
  if (!done->etag.empty()) {
    EXPECT_TRUE(done->etag.ends_with("-4")) << done->etag;
  }
  auto head0 = c->head_object("big.wav");
  ASSERT_TRUE(head0.ok()) << head0.error().describe();
  EXPECT_TRUE(head0->etag.ends_with("-4")) << head0->etag;

  auto versions = c->list_object_versions("big.wav");
  ASSERT_TRUE(versions.ok()) << versions.error().describe();
  ASSERT_EQ(versions->size(), 1u);
  std::string vid = done->version_id.empty() ? (*versions)[0].version_id : done->version_id;
  EXPECT_EQ((*versions)[0].version_id, vid);

  auto until = std::chrono::system_clock::now() + 48h;
  auto lock = c->put_object_retention("big.wav", vid, ObjectLock{LockMode::kCompliance, until});
  ASSERT_TRUE(lock.ok()) << lock.error().describe();
  auto head = c->head_object("big.wav", vid);
  ASSERT_TRUE(head.ok()) << head.error().describe();
  EXPECT_EQ(head->size, kSize);
  EXPECT_EQ(head->metadata["recording-id"], "big-1");
  ASSERT_TRUE(head->lock_mode.has_value());
  EXPECT_EQ(*head->lock_mode, LockMode::kCompliance);
  auto del = c->delete_object("big.wav", vid);
  ASSERT_FALSE(del.ok());
  EXPECT_EQ(del.error().code, "AccessDenied");
  auto get = c->get_object("big.wav");
  ASSERT_TRUE(get.ok()) << get.error().describe();
  EXPECT_TRUE(get->body == data);

  // An aborted upload is gone.
  auto id2 = c->create_multipart_upload("aborted.wav", {});
  ASSERT_TRUE(id2.ok()) << id2.error().describe();
  auto p1 = c->upload_part("aborted.wav", *id2, 1, std::string_view(data).substr(0, kPart), true);
  ASSERT_TRUE(p1.ok()) << p1.error().describe();
  auto ab = c->abort_multipart_upload("aborted.wav", *id2);
  ASSERT_TRUE(ab.ok()) << ab.error().describe();
  auto gone = c->list_parts("aborted.wav", *id2);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().http_status, 404);
  // AWS says NoSuchUpload; Ceph 16 says NoSuchKey.
  EXPECT_TRUE(gone.error().code == "NoSuchUpload" || gone.error().code == "NoSuchKey")
      << gone.error().describe();
}

TEST_F(S3ServerTest, AwkwardKeysRoundTrip) {
  auto c = new_bucket("keys", false);
  const std::vector<std::string> keys = {
      "with space/and  two", "plus+sign", "per%cent%20not-decoded", "ünïcödé/☎ 通话.wav",
      "a//double/slash", "dots/./and/../x", "q?x=1&y=2#frag", "tilde~star*paren(1)!$'",
      "semi;colon:at@comma,eq="};
  for (const auto& k : keys) {
    SCOPED_TRACE(k);
    auto put = c->put_object(k, "body:" + k, {});
    ASSERT_TRUE(put.ok()) << put.error().describe();
    auto get = c->get_object(k);
    ASSERT_TRUE(get.ok()) << get.error().describe();
    EXPECT_EQ(get->body, "body:" + k);
    auto head = c->head_object(k);
    ASSERT_TRUE(head.ok()) << head.error().describe();
  }
  auto listed = c->list_object_versions("");
  ASSERT_TRUE(listed.ok()) << listed.error().describe();
  std::vector<std::string> got;
  for (const auto& v : *listed) got.push_back(v.key);
  std::sort(got.begin(), got.end());
  auto want = keys;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
  auto prefix = c->list_object_versions("ünïcödé/");
  ASSERT_TRUE(prefix.ok()) << prefix.error().describe();
  ASSERT_EQ(prefix->size(), 1u);
  EXPECT_EQ((*prefix)[0].key, "ünïcödé/☎ 通话.wav");
}

// Virtual-hosted URLs: radosgw is configured with rgw_dns_name=localhost, and
// curl resolves <bucket>.localhost to the loopback address.
TEST_F(S3ServerTest, VirtualHostedStyle) {
  auto path_client = new_bucket("vhost", false);
  auto cfg = config(path_client->config().bucket);
  auto pos = cfg.endpoint.find("127.0.0.1");
  if (pos == std::string::npos) GTEST_SKIP() << "endpoint is not 127.0.0.1; cannot derive a *.localhost name";
  cfg.endpoint.replace(pos, 9, "localhost");
  cfg.path_style = false;
  auto c = S3Client::create(cfg);
  ASSERT_TRUE(c.ok());
  auto put = (*c)->put_object("v key+1.txt", "vhost", {});
  ASSERT_TRUE(put.ok()) << put.error().describe() << " url " << (*c)->url_for("v key+1.txt");
  auto get = path_client->get_object("v key+1.txt");
  ASSERT_TRUE(get.ok()) << get.error().describe();
  EXPECT_EQ(get->body, "vhost");
}

}  // namespace
}  // namespace sgw::storage
