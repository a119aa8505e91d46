#include "storage/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cassert>
#include <ctime>
#include <map>

namespace sgw::storage {
namespace {

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Trims, and collapses runs of spaces to one (the suite's get-header-value-trim
// does this inside quotes too).
std::string trim_all(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  bool in_space = false;
  for (char c : v) {
    bool sp = c == ' ' || c == '\t' || c == '\r' || c == '\n';
    if (sp) {
      in_space = true;
      continue;
    }
    if (in_space && !out.empty()) out.push_back(' ');
    in_space = false;
    out.push_back(c);
  }
  return out;
}

// RFC 3986 §5.2.4 dot-segment removal plus '//' collapsing (non-S3 services).
std::string normalize(std::string_view path) {
  std::vector<std::string_view> segs;
  std::size_t pos = 0;
  while (pos <= path.size()) {
    std::size_t next = path.find('/', pos);
    if (next == std::string_view::npos) next = path.size();
    std::string_view seg = path.substr(pos, next - pos);
    if (seg == "..") {
      if (!segs.empty()) segs.pop_back();
    } else if (!seg.empty() && seg != ".") {
      segs.push_back(seg);
    }
    pos = next + 1;
  }
  std::string out;
  for (auto s : segs) {
    out.push_back('/');
    out.append(s);
  }
  bool trailing = !path.empty() && (path.back() == '/' || path.ends_with("/.") || path.ends_with("/.."));
  if (out.empty() || trailing) out.push_back('/');
  return out;
}

}  // namespace

std::string uri_encode(std::string_view s, bool encode_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (unreserved(c) || (c == '/' && !encode_slash)) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

std::string canonical_uri(std::string_view path, const SigV4Options& options) {
  if (path.empty()) return "/";
  std::string p = options.normalize_path ? normalize(path) : std::string(path);
  if (p.front() != '/') p.insert(p.begin(), '/');
  return uri_encode(p, false);
}

std::string canonical_query(const std::vector<std::pair<std::string, std::string>>& query) {
  std::vector<std::pair<std::string, std::string>> enc;
  enc.reserve(query.size());
  for (const auto& [k, v] : query) enc.emplace_back(uri_encode(k, true), uri_encode(v, true));
  // Sorted by encoded name, then encoded value (get-vanilla-query-order-*).
  std::sort(enc.begin(), enc.end());
  std::string out;
  for (const auto& [k, v] : enc) {
    if (!out.empty()) out.push_back('&');
    out += k;
    out.push_back('=');
    out += v;
  }
  return out;
}

std::string amz_date(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[20];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string canonical_request(const SigV4Request& request, const SigV4Options& options,
                              std::string* signed_headers_out) {
  // Headers: names lower-cased, values trimmed; repeated names joined with ','
  // in the order given (get-header-key-duplicate, get-header-value-order).
  // Sorted by NAME alone: sorting "name:value" strings would put
  // "x-amz-meta-a-b" before "x-amz-meta-a" (':' > '-'), libcurl 7.88's bug.
  std::map<std::string, std::string> headers;
  for (const auto& [name, value] : request.headers) {
    std::string n;
    n.reserve(name.size());
    for (char c : name) n.push_back(lower(c));
    n = trim_all(n);
    auto [it, inserted] = headers.try_emplace(n, trim_all(value));
    if (!inserted) {
      it->second.push_back(',');
      it->second += trim_all(value);
    }
  }
  std::string signed_headers;
  std::string canon_headers;
  for (const auto& [n, v] : headers) {
    if (!signed_headers.empty()) signed_headers.push_back(';');
    signed_headers += n;
    canon_headers += n;
    canon_headers.push_back(':');
    canon_headers += v;
    canon_headers.push_back('\n');
  }
  std::string out;
  out.reserve(256 + canon_headers.size());
  out += request.method;
  out.push_back('\n');
  out += canonical_uri(request.path, options);
  out.push_back('\n');
  out += canonical_query(request.query);
  out.push_back('\n');
  out += canon_headers;
  out.push_back('\n');
  out += signed_headers;
  out.push_back('\n');
  out += request.payload_sha256_hex;
  if (signed_headers_out) *signed_headers_out = std::move(signed_headers);
  return out;
}

std::string string_to_sign(std::string_view date, const SigV4Scope& scope,
                           std::string_view creq) {
  std::string out(kSigV4Algorithm);
  out.push_back('\n');
  out += date;
  out.push_back('\n');
  out += date.substr(0, 8);
  out += "/" + scope.region + "/" + scope.service + "/aws4_request\n";
  out += sha256_hex(creq);
  return out;
}

std::string signing_key(std::string_view secret, std::string_view yyyymmdd, const SigV4Scope& scope) {
  std::string k = "AWS4";
  k += secret;
  std::string key = hmac_sha256(k, yyyymmdd);
  key = hmac_sha256(key, scope.region);
  key = hmac_sha256(key, scope.service);
  return hmac_sha256(key, "aws4_request");
}

SigV4Signature sign(const SigV4Request& request, const SigV4Credentials& credentials,
                    const SigV4Scope& scope, std::string_view date, const SigV4Options& options) {
  SigV4Signature s;
  s.canonical_request = canonical_request(request, options, &s.signed_headers);
  s.string_to_sign = string_to_sign(date, scope, s.canonical_request);
  std::string key = signing_key(credentials.secret_access_key, date.substr(0, 8), scope);
  s.signature = hex(hmac_sha256(key, s.string_to_sign));
  s.authorization = std::string(kSigV4Algorithm) + " Credential=" + credentials.access_key_id + "/" +
                    std::string(date.substr(0, 8)) + "/" + scope.region + "/" + scope.service +
                    "/aws4_request, SignedHeaders=" + s.signed_headers + ", Signature=" + s.signature;
  return s;
}

std::string hex(const std::string& bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char ch : bytes) {
    auto c = static_cast<unsigned char>(ch);
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xF]);
  }
  return out;
}

std::string sha256_raw(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  int ok = EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  assert(ok == 1);
  (void)ok;
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::string sha256_hex(std::string_view data) { return hex(sha256_raw(data)); }

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  unsigned char* r = HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                          reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  assert(r != nullptr);
  (void)r;
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

struct BodyDigest::Impl {
  EVP_MD_CTX* sha = EVP_MD_CTX_new();
  EVP_MD_CTX* md5 = EVP_MD_CTX_new();
  ~Impl() {
    EVP_MD_CTX_free(sha);
    EVP_MD_CTX_free(md5);
  }
};

BodyDigest::BodyDigest() : impl_(std::make_unique<Impl>()) {
  EVP_DigestInit_ex(impl_->sha, EVP_sha256(), nullptr);
  EVP_DigestInit_ex(impl_->md5, EVP_md5(), nullptr);
}

BodyDigest::~BodyDigest() = default;

void BodyDigest::update(std::string_view data) {
  EVP_DigestUpdate(impl_->sha, data.data(), data.size());
  EVP_DigestUpdate(impl_->md5, data.data(), data.size());
}

void BodyDigest::finish(std::string* sha256, std::string* md5) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(impl_->sha, md, &len);
  if (sha256) sha256->assign(reinterpret_cast<const char*>(md), len);
  EVP_DigestFinal_ex(impl_->md5, md, &len);
  if (md5) md5->assign(reinterpret_cast<const char*>(md), len);
}

}  // namespace sgw::storage
