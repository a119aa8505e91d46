// SigV4 signer against AWS's published test suite (service "service",
// us-east-1, AKIDEXAMPLE, 20150830T123600Z) and the S3 API reference's worked
// examples (examplebucket, AKIAIOSFODNN7EXAMPLE, 20130524T000000Z). The vectors
// are under data/: <name>.req (the request), .creq, .sts and .authz (expected).
#include "storage/sigv4.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace sgw::storage {
namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(in) << "cannot read " << p;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Parses a test-suite .req: "METHOD URI HTTP/1.1", "Name:value" lines, a blank
// line, the body. URI and query are raw (not percent-encoded) in the suite.
struct ParsedReq {
  SigV4Request req;
  std::string body;
};

ParsedReq parse_req(const std::string& text) {
  ParsedReq out;
  std::string head = text;
  auto blank = text.find("\n\n");
  if (blank != std::string::npos) {
    head = text.substr(0, blank);
    out.body = text.substr(blank + 2);
  }
  std::istringstream lines(head);
  std::string line;
  std::getline(lines, line);
  auto sp1 = line.find(' ');
  auto sp2 = line.rfind(' ');
  out.req.method = line.substr(0, sp1);
  std::string uri = line.substr(sp1 + 1, sp2 - sp1 - 1);
  auto q = uri.find('?');
  out.req.path = uri.substr(0, q);
  if (q != std::string::npos) {
    std::string query = uri.substr(q + 1);
    std::size_t pos = 0;
    while (pos <= query.size()) {
      auto amp = query.find('&', pos);
      if (amp == std::string::npos) amp = query.size();
      std::string pair = query.substr(pos, amp - pos);
      auto eq = pair.find('=');
      if (!pair.empty())
        out.req.query.emplace_back(pair.substr(0, eq), eq == std::string::npos ? "" : pair.substr(eq + 1));
      pos = amp + 1;
    }
  }
  while (std::getline(lines, line)) {
    auto colon = line.find(':');
    out.req.headers.emplace_back(line.substr(0, colon), line.substr(colon + 1));
  }
  out.req.payload_sha256_hex = sha256_hex(out.body);
  return out;
}

struct Suite {
  std::string dir;
  SigV4Credentials creds;
  SigV4Scope scope;
  std::string date;
  SigV4Options options;
};

const Suite kAwsSuite{"aws-sig-v4-test-suite",
                      {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""},
                      {"us-east-1", "service"},
                      "20150830T123600Z",
                      {}};

void check_vector(const Suite& suite, const fs::path& dir) {
  std::string name = dir.filename().string();
  SCOPED_TRACE(name);
  auto parsed = parse_req(read_file(dir / (name + ".req")));
  auto sig = sign(parsed.req, suite.creds, suite.scope, suite.date, suite.options);
  EXPECT_EQ(sig.canonical_request, read_file(dir / (name + ".creq")));
  EXPECT_EQ(sig.string_to_sign, read_file(dir / (name + ".sts")));
  EXPECT_EQ(sig.authorization, read_file(dir / (name + ".authz")));
}

int check_all(const Suite& suite, const fs::path& root) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(root)) {
    if (!e.is_directory() || e.path().filename() == "normalize-path") continue;
    check_vector(suite, e.path());
    ++n;
  }
  return n;
}

const fs::path kData = SGW_TEST_DATA_DIR;

TEST(SigV4Suite, AllBasicVectors) {
  // get-vanilla, get-vanilla-query-order-key-case, get-header-key-duplicate,
  // get-header-value-trim, get-utf8, get-unreserved, post-x-www-form-urlencoded,
  // post-sts-header-before, ...
  EXPECT_GE(check_all(kAwsSuite, kData / kAwsSuite.dir), 19);
}

TEST(SigV4Suite, NamedVectorsPresent) {
  for (const char* n : {"get-vanilla", "get-vanilla-query-order-key-case", "get-header-key-duplicate",
                        "get-utf8", "post-x-www-form-urlencoded", "post-sts-header-before"})
    EXPECT_TRUE(fs::exists(kData / kAwsSuite.dir / n / (std::string(n) + ".req"))) << n;
}

// The normalize-path vectors hold for services other than S3 only.
TEST(SigV4Suite, NormalizePathVectors) {
  Suite s = kAwsSuite;
  s.options.normalize_path = true;
  EXPECT_EQ(check_all(s, kData / kAwsSuite.dir / "normalize-path"), 7);
}

TEST(SigV4Suite, S3DoesNotNormalizePaths) {
  // What S3 needs instead: the key "example//.." is a key.
  EXPECT_EQ(canonical_uri("//example//"), "//example//");
  EXPECT_EQ(canonical_uri("/example/.."), "/example/..");
  EXPECT_EQ(canonical_uri("/./example"), "/./example");
  SigV4Options norm{true};
  EXPECT_EQ(canonical_uri("//example//", norm), "/example/");
  EXPECT_EQ(canonical_uri("/example1/example2/../..", norm), "/");
}

TEST(SigV4S3Examples, PublishedSignatures) {
  Suite s3{"s3-examples",
           {"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""},
           {"us-east-1", "s3"},
           "20130524T000000Z",
           {}};
  // GET Object with Range, PUT Object with x-amz-storage-class and a '$' in the
  // key, GET ?lifecycle (empty value), GET ?max-keys=2&prefix=J.
  EXPECT_EQ(check_all(s3, kData / s3.dir), 4);
}

TEST(SigV4, SigningKeyFromTheSigV4Docs) {
  // AWS General Reference, "Deriving the signing key" example.
  auto key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", {"us-east-1", "iam"});
  EXPECT_EQ(hex(key), "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
}

TEST(SigV4, UriEncodeS3Keys) {
  EXPECT_EQ(uri_encode("a b+c%d/ü☎", false), "a%20b%2Bc%25d/%C3%BC%E2%98%8E");
  EXPECT_EQ(uri_encode("a/b", true), "a%2Fb");
  EXPECT_EQ(uri_encode("-._~AZaz09", true), "-._~AZaz09");
  EXPECT_EQ(uri_encode("*'()!$&,;=:@", false), "%2A%27%28%29%21%24%26%2C%3B%3D%3A%40");
}

TEST(SigV4, QueryIsSortedAndEncoded) {
  EXPECT_EQ(canonical_query({{"uploadId", "a/b+c"}, {"partNumber", "2"}}),
            "partNumber=2&uploadId=a%2Fb%2Bc");
  EXPECT_EQ(canonical_query({{"versions", ""}, {"prefix", "x y"}}), "prefix=x%20y&versions=");
  EXPECT_EQ(canonical_query({}), "");
}

// libcurl 7.88 sorts "name:value" strings, which puts x-amz-meta-a-b before
// x-amz-meta-a (':' > '-'); the canonical order sorts by name alone.
TEST(SigV4, HeaderWhoseNameIsAPrefixOfAnotherSortsFirst) {
  SigV4Request r;
  r.method = "PUT";
  r.path = "/k";
  r.headers = {{"X-Amz-Meta-A-B", "2"}, {"x-amz-meta-a", "1"}, {"Host", "h"}};
  r.payload_sha256_hex = std::string(kEmptyPayloadSha256);
  std::string signed_headers;
  auto creq = canonical_request(r, {}, &signed_headers);
  EXPECT_EQ(signed_headers, "host;x-amz-meta-a;x-amz-meta-a-b");
  EXPECT_NE(creq.find("host:h\nx-amz-meta-a:1\nx-amz-meta-a-b:2\n\n"), std::string::npos) << creq;
}

TEST(SigV4, PayloadHashIsSigned) {
  SigV4Request r;
  r.method = "PUT";
  r.path = "/k";
  r.headers = {{"host", "h"}, {"x-amz-date", "20150830T123600Z"}};
  r.payload_sha256_hex = sha256_hex("hello");
  auto a = sign(r, kAwsSuite.creds, {"us-east-1", "s3"}, "20150830T123600Z");
  r.payload_sha256_hex = sha256_hex("hellp");
  auto b = sign(r, kAwsSuite.creds, {"us-east-1", "s3"}, "20150830T123600Z");
  EXPECT_NE(a.signature, b.signature);
  EXPECT_TRUE(a.canonical_request.ends_with(sha256_hex("hello")));
}

TEST(SigV4, AmzDate) {
  using namespace std::chrono;
  auto t = sys_days{year{2015} / 8 / 30} + hours{12} + minutes{36};
  EXPECT_EQ(amz_date(t), "20150830T123600Z");
}

TEST(SigV4, DigestsAndBase64) {
  EXPECT_EQ(sha256_hex(""), kEmptyPayloadSha256);
  BodyDigest d;
  d.update("Welcome to ");
  d.update("Amazon S3.");
  std::string sha, md5;
  d.finish(&sha, &md5);
  EXPECT_EQ(hex(sha), "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  BodyDigest e;
  std::string md5e;
  e.finish(nullptr, &md5e);
  EXPECT_EQ(base64(md5e), "1B2M2Y8AsgTpgAmY7PhCfg==");
}

}  // namespace
}  // namespace sgw::storage
