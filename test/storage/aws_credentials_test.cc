// AWS credential providers (storage/aws_credentials.h): the parsers of each
// provider's answer, the exact requests each fetcher makes (over a fake HTTP
// seam; test/integration/test_aws_credentials.py runs the real protocols
// against local servers and radosgw), the SDK order of the chain, the refresh
// before expiry, and an S3 request signed with a session token as it reaches a
// server. The token-signing rule itself is the SigV4 suite's
// post-sts-header-before vector (sigv4_test.cc).
#include "storage/aws_credentials.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "storage/s3_client.h"

namespace sgw::storage {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using std::chrono::system_clock;

system_clock::time_point at(const char* iso) { return *parse_iso8601(iso); }

Getenv env_of(std::map<std::string, std::string> m) {
  return [m](const char* n) -> std::optional<std::string> {
    auto it = m.find(n);
    if (it == m.end()) return std::nullopt;
    return it->second;
  };
}

std::string temp_file(const std::string& name, const std::string& text) {
  auto dir = fs::temp_directory_path() / ("sgw-aws-creds-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto p = dir / name;
  std::ofstream(p) << text;
  return p.string();
}

std::string header(const CredentialHttpRequest& r, std::string_view name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return "<absent>";
}

const char* kImdsJson = R"({"Code":"Success","LastUpdated":"2026-12-04T10:00:00Z","Type":"AWS-HMAC",
  "AccessKeyId":"ASIAIMDS","SecretAccessKey":"imds/secret","Token":"imdstoken==",
  "Expiration":"2026-12-04T16:00:00Z"})";

TEST(AwsCredentials, Iso8601) {
  EXPECT_EQ(system_clock::to_time_t(at("1970-01-02T00:00:01Z")), 86401);
  EXPECT_EQ(parse_iso8601("2026-12-04T11:00:00.123Z"), parse_iso8601("2026-12-04T11:00:00Z"));
  EXPECT_EQ(parse_iso8601("2026-12-04T11:00:00+00:00"), parse_iso8601("2026-12-04T11:00:00Z"));
  EXPECT_FALSE(parse_iso8601("2026-12-04 11:00:00Z"));
  EXPECT_FALSE(parse_iso8601("2026-13-04T11:00:00Z"));
  EXPECT_FALSE(parse_iso8601("2026-12-04T11:00:00+02:00"));
  EXPECT_FALSE(parse_iso8601("soon"));
}

TEST(AwsCredentials, JsonDocument) {
  auto t = parse_credentials_json(kImdsJson, "imds");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->credentials.access_key_id, "ASIAIMDS");
  EXPECT_EQ(t->credentials.secret_access_key, "imds/secret");
  EXPECT_EQ(t->credentials.session_token, "imdstoken==");
  EXPECT_EQ(t->expiration, at("2026-12-04T16:00:00Z"));
  auto failed = parse_credentials_json(R"({"Code":"AssumeRoleUnauthorizedAccess","Message":"no",
      "SecretAccessKey":"leak1"})", "imds");
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.error().message.find("AssumeRoleUnauthorizedAccess"), std::string::npos);
  auto partial = parse_credentials_json(R"({"AccessKeyId":"A","Token":"leak2"})", "container");
  ASSERT_FALSE(partial.ok());
  EXPECT_EQ(partial.error().message.find("leak"), std::string::npos);
  auto bad_time = parse_credentials_json(R"({"AccessKeyId":"A","SecretAccessKey":"leak3","Expiration":"x"})", "c");
  ASSERT_FALSE(bad_time.ok());
  EXPECT_EQ(bad_time.error().message.find("leak"), std::string::npos);
  EXPECT_FALSE(parse_credentials_json("<html>", "c").ok());
  EXPECT_FALSE(parse_credentials_json("[1]", "c").ok());
}

// The response from the AssumeRoleWithWebIdentity API reference.
TEST(AwsCredentials, StsXml) {
  const char* xml = R"(<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>amzn1.account.AF6RHO7KZU5XRVQJGXK6HB56KR2A</SubjectFromWebIdentityToken>
    <Audience>client.5498841531868486423.1548@apps.example.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/FederatedWebIdentityRole/app1</Arn>
      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:app1</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <Expiration>2014-10-24T23:00:23Z</Expiration>
      <AccessKeyId>ASgeIAIOSFODNN7EXAMPLE</AccessKeyId>
    </Credentials>
    <SourceIdentity>SourceIdentityValue</SourceIdentity>
    <Provider>www.amazon.com</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>)";
  auto t = parse_assume_role_with_web_identity(xml);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->credentials.access_key_id, "ASgeIAIOSFODNN7EXAMPLE");
  EXPECT_EQ(t->credentials.secret_access_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY");
  EXPECT_EQ(t->credentials.session_token, "AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE");
  EXPECT_EQ(t->expiration, at("2014-10-24T23:00:23Z"));
  auto err = parse_assume_role_with_web_identity(
      "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>"
      "<Message>expired</Message></Error></ErrorResponse>");
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.error().code, "s3.credentials.sts");
  EXPECT_NE(err.error().message.find("InvalidIdentityToken: expired"), std::string::npos);
  EXPECT_FALSE(parse_assume_role_with_web_identity("<AssumeRoleWithWebIdentityResponse/>").ok());
  // radosgw (Ceph 16) refuses a token with an S3-style error document and no Message.
  auto rgw = parse_assume_role_with_web_identity(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code>"
      "<RequestId>tx0000a-0-default</RequestId><HostId>4a2b-default-default</HostId></Error>");
  ASSERT_FALSE(rgw.ok());
  EXPECT_EQ(rgw.error().code, "s3.credentials.sts");
  EXPECT_EQ(rgw.error().message, "STS AssumeRoleWithWebIdentity: AccessDenied");
}

// IMDSv2: PUT for a session token with its TTL header, then every GET carries the token.
TEST(AwsCredentials, InstanceProfileSpeaksImdsV2) {
  std::vector<CredentialHttpRequest> seen;
  CredentialHttp http = [&](const CredentialHttpRequest& r) -> common::Result<CredentialHttpResponse> {
    seen.push_back(r);
    if (r.method == "PUT" && r.url == "http://imds:1/latest/api/token")
      return CredentialHttpResponse{200, "TOKEN-1"};
    if (header(r, "X-aws-ec2-metadata-token") != "TOKEN-1") return CredentialHttpResponse{401, ""};
    if (r.url == "http://imds:1/latest/meta-data/iam/security-credentials/")
      return CredentialHttpResponse{200, "recorder-role\n"};
    if (r.url == "http://imds:1/latest/meta-data/iam/security-credentials/recorder-role")
      return CredentialHttpResponse{200, kImdsJson};
    return CredentialHttpResponse{404, ""};
  };
  auto t = fetch_instance_profile(http, "http://imds:1/");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->credentials.access_key_id, "ASIAIMDS");
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].method, "PUT");
  EXPECT_EQ(header(seen[0], "X-aws-ec2-metadata-token-ttl-seconds"), "21600");
  EXPECT_EQ(seen[1].method, "GET");
  EXPECT_EQ(seen[2].method, "GET");

  // No role attached: IMDS answers 404 for the role list.
  CredentialHttp no_role = [&](const CredentialHttpRequest& r) -> common::Result<CredentialHttpResponse> {
    if (r.method == "PUT") return CredentialHttpResponse{200, "T"};
    return CredentialHttpResponse{404, ""};
  };
  auto n = fetch_instance_profile(no_role, "http://imds:1");
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.error().message.find("HTTP 404"), std::string::npos);
  // IMDSv1-only (token refused): an error, not an unauthenticated GET.
  int gets = 0;
  CredentialHttp v1 = [&](const CredentialHttpRequest& r) -> common::Result<CredentialHttpResponse> {
    if (r.method == "PUT") return CredentialHttpResponse{403, ""};
    ++gets;
    return CredentialHttpResponse{200, kImdsJson};
  };
  EXPECT_FALSE(fetch_instance_profile(v1, "http://imds:1").ok());
  EXPECT_EQ(gets, 0);
}

TEST(AwsCredentials, ContainerUrlAndAuthorization) {
  auto rel = container_credentials_url(env_of({{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc"},
                                               {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:9/x"}}));
  ASSERT_TRUE(rel.ok());
  EXPECT_EQ(*rel, "http://169.254.170.2/v2/credentials/abc");  // RELATIVE wins, as in the SDKs
  EXPECT_EQ(*container_credentials_url(env_of({})), "");
  for (const char* ok : {"http://127.0.0.1:8080/creds", "http://169.254.170.23/v1/credentials",
                         "http://[fd00:ec2::23]/v1/credentials", "http://localhost:1/c", "https://creds.example.com/c"})
    EXPECT_TRUE(container_credentials_url(env_of({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", ok}})).ok()) << ok;
  auto remote = container_credentials_url(env_of({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.0.0.1/c"}}));
  ASSERT_FALSE(remote.ok());
  EXPECT_EQ(remote.error().code, "s3.credentials.container");

  std::vector<CredentialHttpRequest> seen;
  CredentialHttp http = [&](const CredentialHttpRequest& r) -> common::Result<CredentialHttpResponse> {
    seen.push_back(r);
    return CredentialHttpResponse{200, R"({"AccessKeyId":"ASIAC","SecretAccessKey":"s","Token":"t",
                                           "Expiration":"2026-12-04T12:00:00Z"})"};
  };
  std::string file = temp_file("container-token", "from-file\n");
  auto t = fetch_container(http, "http://127.0.0.1:1/c",
                           env_of({{"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", file},
                                   {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "from-env"}}));
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(header(seen.back(), "Authorization"), "from-file");  // the file wins and is re-read
  std::ofstream(file) << "rotated";
  ASSERT_TRUE(fetch_container(http, "http://127.0.0.1:1/c",
                              env_of({{"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", file}})).ok());
  EXPECT_EQ(header(seen.back(), "Authorization"), "rotated");
  ASSERT_TRUE(fetch_container(http, "http://127.0.0.1:1/c", env_of({{"AWS_CONTAINER_AUTHORIZATION_TOKEN", "e"}})).ok());
  EXPECT_EQ(header(seen.back(), "Authorization"), "e");
  ASSERT_TRUE(fetch_container(http, "http://127.0.0.1:1/c", env_of({})).ok());
  EXPECT_EQ(header(seen.back(), "Authorization"), "<absent>");
  auto missing = fetch_container(http, "http://127.0.0.1:1/c",
                                 env_of({{"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/nonexistent/token"}}));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("/nonexistent/token"), std::string::npos);
}

TEST(AwsCredentials, WebIdentityPostsTheTokenToSts) {
  std::string file = temp_file("web-identity-token", "eyJhbGciOi.payload+/=.sig\n");
  std::vector<CredentialHttpRequest> seen;
  CredentialHttp http = [&](const CredentialHttpRequest& r) -> common::Result<CredentialHttpResponse> {
    seen.push_back(r);
    return CredentialHttpResponse{200,
        "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
        "<AccessKeyId>ASIAW</AccessKeyId><SecretAccessKey>sw</SecretAccessKey><SessionToken>tw</SessionToken>"
        "<Expiration>2026-12-04T12:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult>"
        "</AssumeRoleWithWebIdentityResponse>"};
  };
  WebIdentity w{"arn:aws:iam::123456789012:role/rec", file, "node-1", "http://127.0.0.1:9/"};
  auto t = fetch_web_identity(http, w);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->credentials.session_token, "tw");
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].url, "http://127.0.0.1:9/");
  EXPECT_EQ(header(seen[0], "Authorization"), "<absent>");  // not signed
  EXPECT_EQ(seen[0].body,
            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15"
            "&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Frec&RoleSessionName=node-1"
            "&WebIdentityToken=eyJhbGciOi.payload%2B%2F%3D.sig");
  CredentialHttp denied = [](const CredentialHttpRequest&) -> common::Result<CredentialHttpResponse> {
    return CredentialHttpResponse{400, "<ErrorResponse><Error><Code>ExpiredTokenException</Code>"
                                       "<Message>Token expired</Message></Error></ErrorResponse>"};
  };
  auto e = fetch_web_identity(denied, w);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code, "s3.credentials.sts");
  EXPECT_EQ(e.error().message,
            "STS AssumeRoleWithWebIdentity: ExpiredTokenException: Token expired "
            "(HTTP 400 from http://127.0.0.1:9, role arn:aws:iam::123456789012:role/rec)");
  EXPECT_EQ(e.error().message.find("payload"), std::string::npos);  // the token is a secret
}

// ---------------------------------------------------------------------------
// Refresh

struct FakeSource {
  system_clock::time_point now = at("2026-12-04T10:00:00Z");
  std::chrono::seconds lifetime = 1h;
  bool fail = false;
  int n = 0;
  common::Result<TimedCredentials> fetch() {
    if (fail) return common::make_error("s3.credentials.http", "down");
    ++n;
    return TimedCredentials{{"AK" + std::to_string(n), "S", "T"}, now + lifetime};
  }
};

TEST(AwsCredentials, RefreshesFiveMinutesBeforeExpiryAndSurvivesAFailedRefresh) {
  FakeSource src;
  RefreshingCredentialProvider p("test", [&] { return src.fetch(); }, [&] { return src.now; });
  ASSERT_EQ(p.get()->access_key_id, "AK1");
  src.now += 54min;
  EXPECT_EQ(p.get()->access_key_id, "AK1");
  EXPECT_EQ(p.fetches(), 1u);
  src.now += 1min + 1s;  // inside the 5-minute window
  EXPECT_EQ(p.get()->access_key_id, "AK2");
  EXPECT_EQ(p.fetches(), 2u);
  // A failing refresh inside the window keeps the valid credentials, retried after 10 s.
  src.now += 56min;
  src.fail = true;
  EXPECT_EQ(p.get()->access_key_id, "AK2");
  EXPECT_EQ(p.get()->access_key_id, "AK2");
  EXPECT_EQ(p.fetches(), 3u);
  src.now += 11s;
  EXPECT_EQ(p.get()->access_key_id, "AK2");
  EXPECT_EQ(p.fetches(), 4u);
  // Expired: the failure is returned.
  src.now += 5min;
  auto r = p.get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "s3.credentials.http");
  src.fail = false;
  EXPECT_EQ(p.get()->access_key_id, "AK3");
}

TEST(AwsCredentials, ShortLivedCredentialsRefreshAtHalfTheirLifetime) {
  FakeSource src;
  src.lifetime = 60s;
  RefreshingCredentialProvider p("test", [&] { return src.fetch(); }, [&] { return src.now; });
  ASSERT_EQ(p.get()->access_key_id, "AK1");
  src.now += 29s;
  EXPECT_EQ(p.get()->access_key_id, "AK1");
  src.now += 2s;
  EXPECT_EQ(p.get()->access_key_id, "AK2");
}

// While one thread fetches, the others sign with the current snapshot at once.
TEST(AwsCredentials, OtherThreadsDoNotWaitForAnEarlyRefresh) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false, blocked = false;
  std::atomic<int> n{0};
  auto now = at("2026-12-04T10:00:00Z");
  std::atomic<int> offset_s{0};
  RefreshingCredentialProvider p(
      "test",
      [&]() -> common::Result<TimedCredentials> {
        int i = ++n;
        if (i == 2) {
          std::unique_lock lock(mu);
          blocked = true;
          cv.notify_all();
          cv.wait(lock, [&] { return release; });
        }
        return TimedCredentials{{"AK" + std::to_string(i), "S", ""}, now + std::chrono::seconds(offset_s) + 1h};
      },
      [&] { return now + std::chrono::seconds(offset_s.load()); });
  ASSERT_EQ(p.get()->access_key_id, "AK1");
  offset_s = 57 * 60;
  std::thread refresher([&] { EXPECT_EQ(p.get()->access_key_id, "AK2"); });
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return blocked; });
  }
  for (int i = 0; i < 100; ++i) EXPECT_EQ(p.get()->access_key_id, "AK1");
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  refresher.join();
  EXPECT_EQ(p.get()->access_key_id, "AK2");
  EXPECT_EQ(n.load(), 2);
}

// ---------------------------------------------------------------------------
// The chain

struct ChainCase {
  std::map<std::string, std::string> env;
  std::optional<SigV4Credentials> configured;
  std::string profile;
};

common::Result<std::shared_ptr<CredentialProvider>> chain(const ChainCase& c, std::vector<std::string>* urls) {
  CredentialSources s;
  s.configured = c.configured;
  s.profile = c.profile;
  s.region = "eu-west-1";
  s.getenv = env_of(c.env);
  return make_credential_provider(s, [urls](const CredentialHttpRequest& r) -> common::Result<CredentialHttpResponse> {
    urls->push_back(r.method + " " + r.url);
    if (r.url.find("sts") != std::string::npos)
      return CredentialHttpResponse{200,
          "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
          "<AccessKeyId>ASIAWEB</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken>"
          "<Expiration>2099-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult>"
          "</AssumeRoleWithWebIdentityResponse>"};
    if (r.url.find("imds") != std::string::npos) {
      if (r.method == "PUT") return CredentialHttpResponse{200, "tok"};
      if (r.url.ends_with("/")) return CredentialHttpResponse{200, "role"};
      return CredentialHttpResponse{200, R"({"Code":"Success","AccessKeyId":"ASIAEC2","SecretAccessKey":"s",
                                             "Token":"t","Expiration":"2099-01-01T00:00:00Z"})"};
    }
    return CredentialHttpResponse{200, R"({"AccessKeyId":"ASIAECS","SecretAccessKey":"s","Token":"t",
                                           "Expiration":"2099-01-01T00:00:00Z"})"};
  });
}

TEST(AwsCredentials, ChainFollowsTheSdkOrder) {
  std::string file = temp_file("credentials", "[default]\naws_access_key_id=AKFILE\naws_secret_access_key=s\n");
  std::string token = temp_file("jwt", "jwt");
  std::map<std::string, std::string> all{
      {"AWS_ACCESS_KEY_ID", "AKENV"}, {"AWS_SECRET_ACCESS_KEY", "s"},
      {"AWS_SHARED_CREDENTIALS_FILE", file},
      {"AWS_ROLE_ARN", "arn:aws:iam::1:role/r"}, {"AWS_WEB_IDENTITY_TOKEN_FILE", token},
      {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/ecs"},
      {"AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://imds.test:1"}};
  std::vector<std::string> urls;
  auto expect = [&](const ChainCase& c, const std::string& name, const std::string& key) {
    urls.clear();
    auto p = chain(c, &urls);
    ASSERT_TRUE(p.ok()) << p.error().message;
    EXPECT_EQ((*p)->name(), name);
    auto got = (*p)->get();
    ASSERT_TRUE(got.ok()) << got.error().message;
    EXPECT_EQ(got->access_key_id, key);
  };
  ChainCase c{all, SigV4Credentials{"AKCONF", "s", ""}, ""};
  expect(c, "config", "AKCONF");
  c.configured.reset();
  expect(c, "environment", "AKENV");
  c.env.erase("AWS_ACCESS_KEY_ID");
  c.env.erase("AWS_SECRET_ACCESS_KEY");
  expect(c, "shared file", "AKFILE");
  c.env["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent/credentials";
  expect(c, "web identity", "ASIAWEB");
  ASSERT_EQ(urls.size(), 1u);
  EXPECT_EQ(urls[0], "POST https://sts.eu-west-1.amazonaws.com/");
  c.env["AWS_ENDPOINT_URL_STS"] = "http://sts.test:2";
  expect(c, "web identity", "ASIAWEB");
  EXPECT_EQ(urls.back(), "POST http://sts.test:2/");
  c.env.erase("AWS_ROLE_ARN");
  c.env.erase("AWS_WEB_IDENTITY_TOKEN_FILE");
  expect(c, "container", "ASIAECS");
  c.env.erase("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  expect(c, "instance profile", "ASIAEC2");
  EXPECT_EQ(urls.front(), "PUT http://imds.test:1/latest/api/token");

  // A default profile missing from an existing file falls through; a named one is an error.
  c.env["AWS_SHARED_CREDENTIALS_FILE"] = temp_file("other", "[other]\naws_access_key_id=A\naws_secret_access_key=s\n");
  expect(c, "instance profile", "ASIAEC2");
  c.profile = "recorder";
  urls.clear();
  auto named = chain(c, &urls);
  ASSERT_FALSE(named.ok());
  EXPECT_EQ(named.error().code, "s3.credentials.profile");
  c.profile.clear();

  c.env["AWS_EC2_METADATA_DISABLED"] = "true";
  urls.clear();
  auto none = chain(c, &urls);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, "s3.credentials.none");
  EXPECT_TRUE(urls.empty());

  c.env["AWS_ROLE_ARN"] = "arn:aws:iam::1:role/r";
  auto half = chain(c, &urls);
  ASSERT_FALSE(half.ok());
  EXPECT_EQ(half.error().code, "s3.credentials.incomplete");
}

// ---------------------------------------------------------------------------
// On the wire: a provider's session token is sent as x-amz-security-token and
// signed; a refreshed credential is used by the next request of the same client.

TEST(AwsCredentials, S3RequestCarriesTheSignedSessionToken) {
  httplib::Server srv;
  std::vector<std::string> tokens, problems;
  std::map<std::string, std::string> secrets{{"ASIA1", "secret1"}, {"ASIA2", "secret2"}};
  srv.Get(".*", [&](const httplib::Request& req, httplib::Response& res) {
    SigV4Request r;
    r.method = req.method;
    r.path = req.path;
    for (const auto& [k, v] : req.params) r.query.emplace_back(k, v);
    std::string auth = req.get_header_value("Authorization");
    auto sh = auth.find("SignedHeaders=");
    std::string signed_list = auth.substr(sh + 14, auth.find(',', sh) - sh - 14);
    if (signed_list.find("x-amz-security-token") == std::string::npos) problems.push_back("token not signed");
    std::stringstream names(signed_list);
    std::string n;
    while (std::getline(names, n, ';')) r.headers.emplace_back(n, req.get_header_value(n));
    r.payload_sha256_hex = std::string(kEmptyPayloadSha256);
    auto cred = auth.find("Credential=");
    std::string id = auth.substr(cred + 11, auth.find('/', cred) - cred - 11);
    std::string token = req.get_header_value("x-amz-security-token");
    auto s = sign(r, {id, secrets[id], token}, {"us-east-1", "s3"}, req.get_header_value("x-amz-date"));
    if (s.authorization != auth) problems.push_back("signature mismatch for " + id);
    tokens.push_back(token);
    res.status = 200;
    res.set_content("body", "text/plain");
  });
  srv.set_keep_alive_max_count(1);
  int port = srv.bind_to_any_port("127.0.0.1");
  std::thread t([&] { srv.listen_after_bind(); });
  while (!srv.is_running()) std::this_thread::sleep_for(1ms);

  auto now = at("2026-12-04T10:00:00Z");
  int n = 0;
  auto provider = std::make_shared<RefreshingCredentialProvider>(
      "test",
      [&]() -> common::Result<TimedCredentials> {
        ++n;
        return TimedCredentials{{"ASIA" + std::to_string(n), "secret" + std::to_string(n), "token/" + std::to_string(n)},
                                now + 1h};
      },
      [&] { return now; });
  S3ClientConfig c;
  c.endpoint = "http://127.0.0.1:" + std::to_string(port);
  c.bucket = "b";
  c.path_style = true;
  c.credential_provider = provider;
  auto client = S3Client::create(c);
  ASSERT_TRUE(client.ok()) << client.error().message;
  auto r1 = (*client)->get_object("k");
  now += 58min;
  auto r2 = (*client)->get_object("k");
  srv.stop();
  t.join();
  ASSERT_TRUE(r1.ok()) << r1.error().describe();
  ASSERT_TRUE(r2.ok()) << r2.error().describe();
  EXPECT_EQ(problems, std::vector<std::string>{});
  EXPECT_EQ(tokens, (std::vector<std::string>{"token/1", "token/2"}));

  // A provider that cannot deliver: a retryable client error, without a request.
  S3ClientConfig bad = c;
  bad.credential_provider = std::make_shared<RefreshingCredentialProvider>(
      "down", []() -> common::Result<TimedCredentials> { return common::make_error("s3.credentials.http", "down"); });
  auto bc = S3Client::create(bad);
  ASSERT_TRUE(bc.ok());
  auto e = (*bc)->get_object("k");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code, "Client.Credentials");
  EXPECT_TRUE(e.error().retryable);
}

}  // namespace
}  // namespace sgw::storage
