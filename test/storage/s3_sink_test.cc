// S3Sink against an in-memory S3 (FakeS3, below) that injects the faults a
// real server cannot be made to produce on demand: a reply lost after the
// server did the work (PutObject, CompleteMultipartUpload), an error on a
// chosen call, ETags that are not MD5s (SSE-KMS), checksums kept or not, lock
// headers ignored on CreateMultipartUpload. Each test asserts on what the
// bucket holds (the number of versions of each key) and on the outcome.
#include "storage/s3_sink.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <fstream>

#include "storage/delivery_queue.h"
#include "storage/sigv4.h"
#include "storage/user_metadata.h"
#include "test_support/temp_dir.h"

namespace sgw::storage {
namespace {

namespace fs = std::filesystem;
using test_support::TempDir;
using Kind = DeliveryOutcome::Kind;

std::string read_range(const std::string& path, std::uint64_t offset, std::uint64_t length) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  std::string out(length, '\0');
  in.read(out.data(), static_cast<std::streamsize>(length));
  out.resize(static_cast<std::size_t>(in.gcount()));
  return out;
}

struct Digests {
  std::string md5_raw, sha_raw;
};
Digests digests(std::string_view body) {
  BodyDigest d;
  d.update(body);
  Digests out;
  d.finish(&out.sha_raw, &out.md5_raw);
  return out;
}

// What a fault does to one call.
struct Fault {
  enum class What { kNone, kFail, kLoseReply } what = What::kNone;
  S3Error error;  // kFail: returned instead of doing the call
};

S3Error transport_error(std::string op, std::string key) {
  return S3Error{std::move(op), "b", std::move(key), 0, "Transport.GOT_NOTHING", "Empty reply from server", "", true};
}
S3Error http_error(int status, std::string code, bool retryable) {
  return S3Error{"", "b", "", status, std::move(code), "injected", "", retryable};
}

// The server side: one versioned bucket with Object Lock.
struct FakeBucket {
  struct Version {
    std::string version_id;
    std::string body;
    std::string etag;
    std::string checksum;  // base64, whole-object or composite "-N"
    std::map<std::string, std::string> metadata;
    std::optional<LockMode> lock;
    std::string retain_until;
    bool legal_hold = false;
    std::map<std::string, std::string> tags;
  };
  struct Part {
    std::string body, etag, sha_raw, md5_raw;
  };
  struct Upload {
    std::string key;
    PutObjectOptions options;
    std::map<int, Part> parts;
  };
  std::map<std::string, std::vector<Version>> objects;
  std::map<std::string, Upload> uploads;
  int next_id = 1;
  bool kms_etags = false;            // ETags are not MD5s (SSE-KMS)
  bool keep_checksums = false;       // HEAD returns x-amz-checksum-sha256 (AWS, Ceph >= 18)
  bool ignore_multipart_lock = false;  // lock headers on CreateMultipartUpload ignored
  bool ignore_tagging_header = false;  // x-amz-tagging ignored (only PutObjectTagging sets tags)
  std::function<Fault(const std::string& op, const std::string& key)> fault;
  std::vector<std::string> calls;  // "PutObject key"

  std::string id(const char* prefix) { return prefix + std::to_string(next_id++); }
  std::string etag_for(const Digests& dg, const std::string& salt) {
    if (!kms_etags) return hex(dg.md5_raw);
    return hex(digests("kms:" + salt).md5_raw);  // 32 hex digits, not the body's MD5
  }
  std::size_t versions(const std::string& key) const {
    auto it = objects.find(key);
    return it == objects.end() ? 0 : it->second.size();
  }
  std::size_t total_versions() const {
    std::size_t n = 0;
    for (const auto& [k, v] : objects) n += v.size();
    return n;
  }
  std::size_t count(const std::string& op) const {
    return static_cast<std::size_t>(std::count_if(calls.begin(), calls.end(), [&](const std::string& c) {
      return c == op || c.rfind(op + " ", 0) == 0;  // "PutObject" or "PutObject <key>"
    }));
  }
  void apply_lock(Version& v, const PutObjectOptions& o) {
    v.metadata = o.metadata;
    if (!ignore_tagging_header) v.tags = o.tags;
    if (o.lock) {
      v.lock = o.lock->mode;
      v.retain_until = iso8601(o.lock->retain_until);
    }
    v.legal_hold = o.legal_hold;
  }
};

class FakeS3 : public S3Api {
 public:
  explicit FakeS3(FakeBucket* bucket) : b_(bucket) {}

  S3Result<ObjectLockConfiguration> get_object_lock_configuration() override {
    if (auto f = before("GetObjectLockConfiguration", ""); f.what == Fault::What::kFail) return f.error;
    return ObjectLockConfiguration{true, std::nullopt, 0, 0};
  }
  S3Result<std::vector<ObjectVersion>> list_object_versions(std::string_view prefix) override {
    std::vector<ObjectVersion> out;
    for (const auto& [k, vs] : b_->objects)
      if (k.rfind(prefix, 0) == 0)
        for (const auto& v : vs) out.push_back({k, v.version_id, &v == &vs.back(), false, v.body.size(), v.etag, ""});
    return out;
  }
  S3Result<PutObjectResult> put_object_file(std::string_view key, const fs::path& file,
                                            const PutObjectOptions& options) override {
    std::string k(key);
    auto f = before("PutObject", k);
    if (f.what == Fault::What::kFail) return f.error;
    std::string body = read_range(file.string(), 0, fs::file_size(file));
    auto dg = digests(body);
    FakeBucket::Version v;
    v.version_id = b_->id("v");
    v.body = body;
    v.etag = b_->etag_for(dg, v.version_id);
    v.checksum = base64(dg.sha_raw);
    b_->apply_lock(v, options);
    b_->objects[k].push_back(v);
    if (f.what == Fault::What::kLoseReply) return transport_error("PutObject", k);
    return PutObjectResult{v.etag, v.version_id, v.checksum};
  }
  S3Result<HeadObjectResult> head_object(std::string_view key, std::string_view version_id,
                                         bool checksum_mode) override {
    std::string k(key);
    auto f = before("HeadObject", k);
    if (f.what == Fault::What::kFail) return f.error;
    if (k.empty()) return HeadObjectResult{};  // the bucket
    auto it = b_->objects.find(k);
    const FakeBucket::Version* v = nullptr;
    if (it != b_->objects.end())
      for (const auto& x : it->second)
        if (version_id.empty() || x.version_id == version_id) v = &x;
    if (!v) return S3Error{"HeadObject", "b", k, 404, "NotFound", "", "", false};
    HeadObjectResult h;
    h.size = v->body.size();
    h.etag = v->etag;
    h.version_id = v->version_id;
    h.metadata = v->metadata;
    if (b_->keep_checksums && checksum_mode) h.checksum_sha256 = v->checksum;
    h.lock_mode = v->lock;
    h.retain_until = v->retain_until;
    h.legal_hold = v->legal_hold;
    return h;
  }
  S3Result<GetObjectResult> get_object(std::string_view key, std::string_view version_id) override {
    auto h = head_object(key, version_id, false);
    if (!h) return h.error();
    return GetObjectResult{*h, ""};
  }
  S3Result<S3Ok> put_object_retention(std::string_view key, std::string_view version_id, const ObjectLock& lock,
                                      bool) override {
    std::string k(key);
    auto f = before("PutObjectRetention", k);
    if (f.what == Fault::What::kFail) return f.error;
    for (auto& v : b_->objects[k])
      if (v.version_id == version_id) {
        std::string until = iso8601(lock.retain_until);
        if (v.lock == LockMode::kCompliance && until < v.retain_until)
          return S3Error{"PutObjectRetention", "b", k, 403, "AccessDenied", "shorter", "", false};
        v.lock = lock.mode;
        v.retain_until = until;
      }
    return S3Ok{};
  }
  S3Result<std::map<std::string, std::string>> get_object_tagging(std::string_view key,
                                                                  std::string_view version_id) override {
    std::string k(key);
    auto f = before("GetObjectTagging", k);
    if (f.what == Fault::What::kFail) return f.error;
    for (const auto& v : b_->objects[k])
      if (v.version_id == version_id) return v.tags;
    return S3Error{"GetObjectTagging", "b", k, 404, "NoSuchVersion", "", "", false};
  }
  S3Result<S3Ok> put_object_tagging(std::string_view key, std::string_view version_id,
                                    const std::map<std::string, std::string>& tags) override {
    std::string k(key);
    auto f = before("PutObjectTagging", k);
    if (f.what == Fault::What::kFail) return f.error;
    for (auto& v : b_->objects[k])
      if (v.version_id == version_id) v.tags = tags;
    return S3Ok{};
  }
  S3Result<std::string> create_multipart_upload(std::string_view key, const PutObjectOptions& options) override {
    std::string k(key);
    auto f = before("CreateMultipartUpload", k);
    if (f.what == Fault::What::kFail) return f.error;
    std::string id = b_->id("upload-");
    b_->uploads[id] = {k, options, {}};
    if (f.what == Fault::What::kLoseReply) return transport_error("CreateMultipartUpload", k);
    return id;
  }
  S3Result<UploadPartResult> upload_part_file(std::string_view key, std::string_view upload_id, int number,
                                              const fs::path& file, std::uint64_t offset, std::uint64_t length,
                                              bool) override {
    std::string k(key);
    auto f = before("UploadPart", k);
    if (f.what == Fault::What::kFail) return f.error;
    auto it = b_->uploads.find(std::string(upload_id));
    if (it == b_->uploads.end()) return S3Error{"UploadPart", "b", k, 404, "NoSuchUpload", "", "", false};
    FakeBucket::Part p;
    p.body = read_range(file.string(), offset, length);
    auto dg = digests(p.body);
    p.md5_raw = dg.md5_raw;
    p.sha_raw = dg.sha_raw;
    p.etag = b_->etag_for(dg, std::string(upload_id) + "/" + std::to_string(number));
    it->second.parts[number] = p;
    if (f.what == Fault::What::kLoseReply) return transport_error("UploadPart", k);
    return UploadPartResult{number, p.etag, base64(p.sha_raw)};
  }
  S3Result<CompleteMultipartResult> complete_multipart_upload(std::string_view key, std::string_view upload_id,
                                                              const std::vector<UploadPartResult>& parts) override {
    std::string k(key);
    auto f = before("CompleteMultipartUpload", k);
    if (f.what == Fault::What::kFail) return f.error;
    auto it = b_->uploads.find(std::string(upload_id));
    if (it == b_->uploads.end())
      return S3Error{"CompleteMultipartUpload", "b", k, 404, "NoSuchUpload", "", "", false};
    FakeBucket::Version v;
    std::string md5s, shas;
    for (const auto& p : parts) {
      auto sp = it->second.parts.find(p.part_number);
      if (sp == it->second.parts.end() || sp->second.etag != p.etag)
        return S3Error{"CompleteMultipartUpload", "b", k, 400, "InvalidPart", "", "", false};
      v.body += sp->second.body;
      md5s += sp->second.md5_raw;
      shas += sp->second.sha_raw;
    }
    v.version_id = b_->id("v");
    std::string n = "-" + std::to_string(parts.size());
    v.etag = b_->kms_etags ? b_->etag_for({}, v.version_id) + n : hex(digests(md5s).md5_raw) + n;
    v.checksum = base64(digests(shas).sha_raw) + n;
    PutObjectOptions o = it->second.options;
    if (b_->ignore_multipart_lock) o.lock.reset();
    b_->apply_lock(v, o);
    b_->objects[k].push_back(v);
    b_->uploads.erase(it);
    if (f.what == Fault::What::kLoseReply) return transport_error("CompleteMultipartUpload", k);
    return CompleteMultipartResult{v.etag, v.version_id};
  }
  S3Result<std::vector<PartInfo>> list_parts(std::string_view key, std::string_view upload_id) override {
    std::string k(key);
    auto f = before("ListParts", k);
    if (f.what == Fault::What::kFail) return f.error;
    auto it = b_->uploads.find(std::string(upload_id));
    if (it == b_->uploads.end()) return S3Error{"ListParts", "b", k, 404, "NoSuchUpload", "", "", false};
    std::vector<PartInfo> out;
    for (const auto& [n, p] : it->second.parts) out.push_back({n, p.etag, p.body.size()});
    return out;
  }

 private:
  Fault before(const std::string& op, const std::string& key) {
    b_->calls.push_back(op + " " + key);
    if (!b_->fault) return {};
    Fault f = b_->fault(op, key);
    if (f.what == Fault::What::kFail) {
      f.error.operation = op;
      f.error.key = key;
    }
    return f;
  }
  FakeBucket* b_;
};

// Faults on the first `times` calls of one operation (optionally one key).
std::function<Fault(const std::string&, const std::string&)> on(std::string op, Fault fault, int times = 1,
                                                                 std::string key_suffix = "") {
  auto left = std::make_shared<int>(times);
  return [=](const std::string& o, const std::string& k) -> Fault {
    if (o != op || *left <= 0) return {};
    if (!key_suffix.empty() && (k.size() < key_suffix.size() || k.substr(k.size() - key_suffix.size()) != key_suffix))
      return {};
    --*left;
    return fault;
  };
}
Fault lose_reply() { return {Fault::What::kLoseReply, {}}; }
Fault failing(int status, std::string code, bool retryable) {
  return {Fault::What::kFail, http_error(status, std::move(code), retryable)};
}

struct Fixture {
  TempDir dir;
  FakeBucket bucket;
  std::int64_t start_ms = 1'700'000'000'000;
  int checkpoints = 0;

  // A recording: audio of `audio_bytes` bytes and its JSON.
  DeliveryEntry recording(const std::string& id, std::size_t audio_bytes) {
    std::string audio(audio_bytes, '\0');
    for (std::size_t i = 0; i < audio.size(); ++i) audio[i] = static_cast<char>((i * 7919 + id.size()) & 0xff);
    std::ofstream(dir.path() + "/" + id + ".wav", std::ios::binary) << audio;
    std::ofstream(dir.path() + "/" + id + ".json")
        << R"({"recording_id":")" << id << R"(","conversation_id":"conv-1","start_time":"2023-11-14T22:13:20.000Z",)"
        << R"("participants":[{"aor":"sip:alice@example.com"}],"streams":[{"codec":"PCMA/8000"}]})";
    DeliveryEntry e;
    e.recording_id = id;
    e.sink = "s3";
    e.start_unix_ms = start_ms;
    e.objects.push_back({dir.path() + "/" + id + ".wav", "r/" + id + ".wav", "audio/wav", "", {}, false, 0, "", "", "", ""});
    e.objects.push_back(
        {dir.path() + "/" + id + ".json", "r/" + id + ".json", "application/json", "", {}, false, 0, "", "", "", ""});
    return e;
  }
  S3SinkOptions options() {
    S3SinkOptions o;
    o.client.bucket = "b";
    o.lock_mode = LockMode::kCompliance;
    o.retention_days = 30;
    o.multipart_threshold = 400;  // bytes: audio of more goes by multipart ...
    o.part_size = 400;            // ... in parts of 400 bytes
    return o;
  }
  std::unique_ptr<S3Sink> sink() { return S3Sink::create(options(), std::make_unique<FakeS3>(&bucket)); }
  DeliveryOutcome deliver(S3Sink& s, DeliveryEntry& e) {
    return s.deliver(e, [this](const DeliveryEntry&) { ++checkpoints; });
  }
};

void expect_one_version_each(const FakeBucket& b, const DeliveryEntry& e) {
  for (const auto& o : e.objects) EXPECT_EQ(b.versions(o.key), 1u) << o.key;
  EXPECT_EQ(b.total_versions(), e.objects.size());
}

TEST(S3Sink, DeliversLockedObjectsWithTheirSha256InUserMetadata) {
  Fixture f;
  auto e = f.recording("r1", 1000);  // audio by multipart (3 parts), JSON by one PUT
  auto s = f.sink();
  auto out = f.deliver(*s, e);
  ASSERT_EQ(out.kind, Kind::kDelivered) << out.message;
  expect_one_version_each(f.bucket, e);
  const auto& wav = f.bucket.objects["r/r1.wav"][0];
  EXPECT_EQ(wav.metadata.at("recording-id"), "r1");
  EXPECT_EQ(wav.metadata.at("sha256"), sha256_hex(wav.body));
  EXPECT_EQ(wav.lock, LockMode::kCompliance);
  EXPECT_TRUE(wav.etag.ends_with("-3")) << wav.etag;
  for (const auto& o : e.objects) {
    EXPECT_TRUE(o.delivered);
    EXPECT_EQ(o.sha256, sha256_hex(f.bucket.objects[o.key][0].body));
    EXPECT_EQ(o.version_id, f.bucket.objects[o.key][0].version_id);
    EXPECT_NE(o.verified.find("sha256-metadata"), std::string::npos) << o.verified;
    EXPECT_NE(o.verified.find("retention=COMPLIANCE@"), std::string::npos) << o.verified;
  }
  // Delivering again (a re-finalised recording, a requeue) writes nothing.
  for (auto& o : e.objects) o.delivered = false;
  ASSERT_EQ(f.deliver(*s, e).kind, Kind::kDelivered);
  expect_one_version_each(f.bucket, e);
  EXPECT_EQ(f.bucket.count("PutObject"), 1u);
  EXPECT_EQ(f.bucket.count("CreateMultipartUpload"), 1u);
}

TEST(S3Sink, LostPutObjectReplyDoesNotWriteASecondVersion) {
  Fixture f;
  auto e = f.recording("r1", 50);  // single PUTs
  f.bucket.fault = on("PutObject", lose_reply(), 1, ".wav");
  auto s = f.sink();
  auto out = f.deliver(*s, e);
  EXPECT_EQ(out.kind, Kind::kRetry);
  EXPECT_EQ(out.code, "Transport.GOT_NOTHING");
  EXPECT_EQ(f.bucket.versions("r/r1.wav"), 1u);  // the server has it; we do not know
  out = f.deliver(*s, e);                        // the queue's next attempt
  ASSERT_EQ(out.kind, Kind::kDelivered) << out.message;
  expect_one_version_each(f.bucket, e);
  EXPECT_EQ(f.bucket.count("PutObject"), 2u);  // the lost one and the JSON's
}

TEST(S3Sink, LostCompleteMultipartUploadReplyDoesNotStartOver) {
  Fixture f;
  auto e = f.recording("r1", 1000);
  f.bucket.fault = on("CompleteMultipartUpload", lose_reply());
  auto s = f.sink();
  auto out = f.deliver(*s, e);
  EXPECT_EQ(out.kind, Kind::kRetry);
  EXPECT_FALSE(e.objects[0].upload_id.empty());  // kept for the next attempt
  EXPECT_EQ(f.bucket.versions("r/r1.wav"), 1u);
  // The next attempt (even after a restart: the entry is what was checkpointed).
  auto s2 = f.sink();
  out = f.deliver(*s2, e);
  ASSERT_EQ(out.kind, Kind::kDelivered) << out.message;
  expect_one_version_each(f.bucket, e);
  EXPECT_EQ(f.bucket.count("CreateMultipartUpload"), 1u);
  EXPECT_EQ(f.bucket.count("ListParts"), 0u);  // HEAD found it first
  EXPECT_TRUE(e.objects[0].upload_id.empty());
}

TEST(S3Sink, CompleteAnsweredNoSuchUploadAfterItSucceededIsAcceptedByHead) {
  // A server (or a proxy's retry) that completed the upload and then answers
  // a repeated Complete with NoSuchUpload.
  Fixture f;
  auto e = f.recording("r1", 1000);
  bool done = false;
  f.bucket.fault = [&](const std::string& op, const std::string&) -> Fault {
    if (op == "CompleteMultipartUpload" && !done) {
      done = true;
      return lose_reply();
    }
    return {};
  };
  auto s = f.sink();
  EXPECT_EQ(f.deliver(*s, e).kind, Kind::kRetry);
  // The upload is gone now (completed): ListParts would say NoSuchUpload.
  auto out = f.deliver(*s, e);
  ASSERT_EQ(out.kind, Kind::kDelivered) << out.message;
  expect_one_version_each(f.bucket, e);
}

TEST(S3Sink, UploadGoneAndObjectAbsentStartsOver) {
  Fixture f;
  auto e = f.recording("r1", 1000);
  f.bucket.fault = on("UploadPart", failing(503, "ServiceUnavailable", true), 1);
  auto s = f.sink();
  // Part 1 fails after the upload was created.
  EXPECT_EQ(f.deliver(*s, e).kind, Kind::kRetry);
  ASSERT_FALSE(e.objects[0].upload_id.empty());
  f.bucket.uploads.clear();  // the server aborted it (lifecycle rule)
  auto out = f.deliver(*s, e);
  ASSERT_EQ(out.kind, Kind::kDelivered) << out.message;
  expect_one_version_each(f.bucket, e);
  EXPECT_EQ(f.bucket.count("CreateMultipartUpload"), 2u);
  // HEAD at the top of both attempts, again before starting over, and of the new version.
  EXPECT_EQ(f.bucket.count("HeadObject r/r1.wav"), 4u);
}

TEST(S3Sink, ResumesAMultipartUploadKeepingConfirmedPartsEvenWithKmsEtags) {
  Fixture f;
  f.bucket.kms_etags = true;
  auto e = f.recording("r1", 1000);
  // Let part 1 through, fail part 2.
  int n = 0;
  f.bucket.fault = [&](const std::string& op, const std::string&) -> Fault {
    if (op == "UploadPart" && ++n == 2) return failing(500, "InternalError", true);
    return {};
  };
  auto s = f.sink();
  EXPECT_EQ(f.deliver(*s, e).kind, Kind::kRetry);
  ASSERT_EQ(e.objects[0].parts.size(), 1u);
  auto out = f.deliver(*s, e);
  ASSERT_EQ(out.kind, Kind::kDelivered) << out.message;
  EXPECT_EQ(f.bucket.count("UploadPart"), 4u);  // 1, 2 (failed), then 2 and 3: part 1 not sent again
  EXPECT_EQ(f.bucket.count("CreateMultipartUpload"), 1u);
  expect_one_version_each(f.bucket, e);
}

TEST(S3Sink, KmsEtagsAreNotMd5sAndDoNotFailVerification) {
  Fixture f;
  f.bucket.kms_etags = true;
  auto e = f.recording("r1", 1000);
  auto s = f.sink();
  auto out = f.deliver(*s, e);
  ASSERT_EQ(out.kind, Kind::kDelivered) << out.message;
  expect_one_version_each(f.bucket, e);
  auto d = digest_file(e.objects[1].path, 400, false);
  ASSERT_TRUE(d.ok());
  EXPECT_NE(e.objects[1].etag, d->md5_hex);  // the fault is real
  EXPECT_EQ(e.objects[1].verified.find("etag"), std::string::npos) << e.objects[1].verified;
  EXPECT_NE(e.objects[1].verified.find("sha256-metadata"), std::string::npos);
}

TEST(S3Sink, KmsEtagsWithLostRepliesStillOneVersionEach) {
  Fixture f;
  f.bucket.kms_etags = true;
  auto e = f.recording("r1", 1000);
  f.bucket.fault = [first_put = true, first_complete = true](const std::string& op, const std::string&) mutable -> Fault {
    if (op == "PutObject" && first_put) return first_put = false, lose_reply();
    if (op == "CompleteMultipartUpload" && first_complete) return first_complete = false, lose_reply();
    return {};
  };
  auto s = f.sink();
  int attempts = 0;
  DeliveryOutcome out;
  do {
    out = f.deliver(*s, e);
    ++attempts;
  } while (out.kind == Kind::kRetry && attempts < 5);
  ASSERT_EQ(out.kind, Kind::kDelivered) << out.message;
  EXPECT_EQ(attempts, 3);  // wav: lost Complete; json: lost PUT
  expect_one_version_each(f.bucket, e);
}

TEST(S3Sink, ServerChecksumIsCheckedWhenTheServerKeepsOne) {
  Fixture f;
  f.bucket.keep_checksums = true;
  auto e = f.recording("r1", 1000);
  auto s = f.sink();
  ASSERT_EQ(f.deliver(*s, e).kind, Kind::kDelivered);
  for (const auto& o : e.objects) EXPECT_NE(o.verified.find("checksum-sha256"), std::string::npos) << o.verified;

  // A server whose stored bytes no longer match what it reports for them.
  Fixture g;
  g.bucket.keep_checksums = true;
  auto e2 = g.recording("r2", 50);
  auto s2 = g.sink();
  ASSERT_EQ(g.deliver(*s2, e2).kind, Kind::kDelivered);
  g.bucket.objects["r/r2.wav"][0].checksum = base64(digests("other bytes").sha_raw);
  e2.objects[0].delivered = false;
  auto out = g.deliver(*s2, e2);
  EXPECT_EQ(out.kind, Kind::kPermanent);
  EXPECT_EQ(out.code, "VerifyFailed");
  EXPECT_NE(out.message.find("x-amz-checksum-sha256"), std::string::npos) << out.message;
  EXPECT_EQ(g.bucket.versions("r/r2.wav"), 1u);  // and nothing was written
}

TEST(S3Sink, AVersionOfOursWithOtherBytesIsReportedNotOverwritten) {
  Fixture f;
  auto e = f.recording("r1", 50);
  auto s = f.sink();
  ASSERT_EQ(f.deliver(*s, e).kind, Kind::kDelivered);
  std::ofstream(e.objects[0].path, std::ios::binary | std::ios::app) << "more";  // the local file changed
  e.objects[0].delivered = false;
  auto out = f.deliver(*s, e);
  EXPECT_EQ(out.kind, Kind::kPermanent);
  EXPECT_EQ(out.code, "VerifyFailed");
  EXPECT_NE(out.message.find("not uploading a second version"), std::string::npos) << out.message;
  EXPECT_EQ(f.bucket.versions("r/r1.wav"), 1u);
}

TEST(S3Sink, AnotherWritersObjectUnderTheKeyIsNotMistakenForOurs) {
  Fixture f;
  auto e = f.recording("r1", 50);
  FakeBucket::Version other;
  other.version_id = "foreign";
  other.body = "x";
  other.metadata = {{"recording-id", "someone-else"}};
  f.bucket.objects["r/r1.wav"].push_back(other);
  auto s = f.sink();
  ASSERT_EQ(f.deliver(*s, e).kind, Kind::kDelivered);
  EXPECT_EQ(f.bucket.versions("r/r1.wav"), 2u);
  EXPECT_NE(e.objects[0].version_id, "foreign");
}

TEST(S3Sink, ObjectsWrittenBeforeTheSha256MetadataAreRecognisedByTheirMd5Etag) {
  Fixture f;
  auto e = f.recording("r1", 50);
  auto s = f.sink();
  ASSERT_EQ(f.deliver(*s, e).kind, Kind::kDelivered);
  for (auto& [k, vs] : f.bucket.objects) vs[0].metadata.erase("sha256");
  for (auto& o : e.objects) o.delivered = false;
  ASSERT_EQ(f.deliver(*s, e).kind, Kind::kDelivered);
  expect_one_version_each(f.bucket, e);
  EXPECT_NE(e.objects[0].verified.find("etag=md5"), std::string::npos) << e.objects[0].verified;
}

TEST(S3Sink, RetentionIgnoredOnMultipartIsSetAfterwards) {
  Fixture f;
  f.bucket.ignore_multipart_lock = true;
  auto e = f.recording("r1", 1000);
  auto s = f.sink();
  ASSERT_EQ(f.deliver(*s, e).kind, Kind::kDelivered);
  EXPECT_EQ(f.bucket.count("PutObjectRetention"), 1u);
  EXPECT_EQ(f.bucket.objects["r/r1.wav"][0].lock, LockMode::kCompliance);
  expect_one_version_each(f.bucket, e);
}

TEST(S3Sink, ErrorsAreClassified) {
  struct Case {
    const char* op;
    int status;
    const char* code;
    bool retryable;
    Kind want;
    bool slowdown;
  };
  for (const Case& c : {Case{"PutObject", 503, "SlowDown", true, Kind::kRetry, true},
                        Case{"PutObject", 500, "InternalError", true, Kind::kRetry, false},
                        Case{"PutObject", 403, "AccessDenied", false, Kind::kPermanent, false},
                        Case{"PutObject", 400, "InvalidRequest", false, Kind::kPermanent, false},
                        Case{"HeadObject", 503, "ServiceUnavailable", true, Kind::kRetry, false}}) {
    Fixture f;
    auto e = f.recording("r1", 50);
    f.bucket.fault = on(c.op, failing(c.status, c.code, c.retryable));
    auto s = f.sink();
    auto out = f.deliver(*s, e);
    EXPECT_EQ(out.kind, c.want) << c.op << " " << c.code;
    EXPECT_EQ(out.code, c.code);
    EXPECT_EQ(out.slowdown, c.slowdown) << c.code;
    EXPECT_NE(out.message.find("s3://b/r/r1.wav"), std::string::npos) << out.message;
    EXPECT_EQ(f.bucket.total_versions(), 0u);
  }
}

// The start-up bucket check could not even sign its HEAD (the credential provider failed, e.g.
// STS refused the web identity token): retried, and the provider's reason is in the message.
TEST(S3Sink, BucketCheckWithoutCredentialsIsRetriedAndSaysWhy) {
  Fixture f;
  f.bucket.fault = on("HeadObject", {Fault::What::kFail,
                                     S3Error{"HeadObject", "b", "", 0, "Client.Credentials",
                                             "STS AssumeRoleWithWebIdentity: AccessDenied", "", true}});
  auto out = f.sink()->check();
  EXPECT_EQ(out.kind, Kind::kRetry);
  EXPECT_EQ(out.code, "Client.Credentials");
  EXPECT_EQ(out.message,
            "bucket check: HeadObject s3://b: Client.Credentials: STS AssumeRoleWithWebIdentity: AccessDenied "
            "[retryable]");
  EXPECT_EQ(f.sink()->check().kind, Kind::kDelivered);  // the fault was for one call
}

// The queue and the sink together, on a fake clock: retryable failures back off
// (1 s, 2 s, 4 s ...) and the recording lands exactly once.
TEST(S3Sink, RetriesWithBackoffThroughTheQueueAndLandsOnce) {
  Fixture f;
  std::int64_t now = 5'000'000;
  DeliveryQueueOptions qo;
  qo.dir = f.dir.path() + "/q";
  qo.now_ms = [&] { return now; };
  qo.jitter = [] { return 0.0; };
  qo.backoff = {1000, 8000, 5000};
  auto q = DeliveryQueue::open(qo);
  ASSERT_TRUE(q.ok()) << q.error().message;
  (*q)->add_sink("s3", [&] { return f.sink(); });
  // Three failures, each of a different kind, then the server is fine.
  int n = 0;
  f.bucket.fault = [&](const std::string& op, const std::string& key) -> Fault {
    if (op == "PutObject" && key.ends_with(".wav") && n < 3) {
      ++n;
      if (n == 1) return {Fault::What::kFail, transport_error("PutObject", key)};
      if (n == 2) return failing(500, "InternalError", true);
      return lose_reply();
    }
    return {};
  };
  ASSERT_TRUE(*(*q)->enqueue(f.recording("r1", 50)));
  std::vector<std::int64_t> waits;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE((*q)->run_once());
    auto snap = (*q)->snapshot();
    ASSERT_EQ(snap.size(), 1u);
    EXPECT_EQ(snap[0].state, DeliveryState::kQueued);
    waits.push_back(snap[0].next_attempt_unix_ms - now);
    EXPECT_FALSE((*q)->run_once());  // not due
    now = snap[0].next_attempt_unix_ms;
  }
  EXPECT_EQ(waits, (std::vector<std::int64_t>{500, 1000, 2000}));  // d/2 of 1, 2, 4 s (jitter 0)
  ASSERT_TRUE((*q)->run_once());
  auto snap = (*q)->snapshot();
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_EQ(snap[0].state, DeliveryState::kDelivered) << snap[0].last_error;
  EXPECT_EQ(f.bucket.versions("r/r1.wav"), 1u);
  EXPECT_EQ(f.bucket.versions("r/r1.json"), 1u);
}


// The call-control hook's retention and tags (docs/integrations.md), carried
// in the entry, replace the configured ones for that recording only.
TEST(S3Sink, EntryOverridesSetModeRetainUntilAndTagsAndAreVerified) {
  Fixture f;
  auto opts = f.options();
  opts.tags = {{"source", "siprec"}, {"team", "config"}};
  auto s = S3Sink::create(opts, std::make_unique<FakeS3>(&f.bucket));
  auto e = f.recording("r1", 1000);  // multipart audio, single-PUT JSON
  e.overrides.retention_mode = "GOVERNANCE";
  e.overrides.retention_days = 2;
  e.overrides.tags = {{"team", "sales"}, {"tier", "gold"}};
  auto out = f.deliver(*s, e);
  ASSERT_EQ(out.kind, Kind::kDelivered) << out.message;
  const std::map<std::string, std::string> want_tags{{"source", "siprec"}, {"team", "sales"}, {"tier", "gold"}};
  for (const auto& o : e.objects) {
    const auto& v = f.bucket.objects[o.key][0];
    EXPECT_EQ(v.lock, LockMode::kGovernance) << o.key;
    EXPECT_EQ(v.retain_until, iso8601(retain_until(f.start_ms, 2, 0))) << o.key;
    EXPECT_EQ(v.tags, want_tags) << o.key;
    EXPECT_NE(o.verified.find("retention=GOVERNANCE@"), std::string::npos) << o.verified;
    EXPECT_NE(o.verified.find("tags=3"), std::string::npos) << o.verified;
  }
  EXPECT_EQ(f.bucket.count("GetObjectTagging"), 2u);
  EXPECT_EQ(f.bucket.count("PutObjectTagging"), 0u);
  // An entry without overrides still gets the configuration's settings.
  auto plain = f.recording("r2", 50);
  ASSERT_EQ(f.deliver(*s, plain).kind, Kind::kDelivered);
  const auto& v = f.bucket.objects["r/r2.wav"][0];
  EXPECT_EQ(v.lock, LockMode::kCompliance);
  EXPECT_EQ(v.retain_until, iso8601(retain_until(f.start_ms, 30, 0)));
  EXPECT_EQ(v.tags, opts.tags);
}

TEST(S3Sink, TagsTheServerDroppedAreSetWithPutObjectTagging) {
  Fixture f;
  f.bucket.ignore_tagging_header = true;
  auto s = f.sink();
  auto e = f.recording("r1", 50);
  e.overrides.tags = {{"team", "sales"}};
  auto out = f.deliver(*s, e);
  ASSERT_EQ(out.kind, Kind::kDelivered) << out.message;
  EXPECT_EQ(f.bucket.count("PutObjectTagging"), 2u);
  for (const auto& o : e.objects) EXPECT_EQ(f.bucket.objects[o.key][0].tags.at("team"), "sales");
  expect_one_version_each(f.bucket, e);
}

TEST(S3Sink, AnObjectLockedInAnotherModeThanTheOverrideIsNotVerified) {
  Fixture f;
  auto s = f.sink();
  auto e = f.recording("r1", 50);
  ASSERT_EQ(f.deliver(*s, e).kind, Kind::kDelivered);  // COMPLIANCE (configured)
  for (auto& o : e.objects) o.delivered = false;
  e.overrides.retention_mode = "GOVERNANCE";
  auto out = f.deliver(*s, e);
  EXPECT_EQ(out.kind, Kind::kPermanent);
  EXPECT_EQ(out.code, "VerifyFailed");
  EXPECT_NE(out.message.find("retention mode COMPLIANCE, expected GOVERNANCE"), std::string::npos) << out.message;
  expect_one_version_each(f.bucket, e);  // never a second version
}

TEST(ObjectSettingsTest, OverridesOverTheConfiguration) {
  S3SinkOptions o;
  o.lock_mode = LockMode::kCompliance;
  o.retention_years = 7;
  o.tags = {{"a", "1"}};
  DeliveryEntry e;
  e.start_unix_ms = 1'700'000'000'000;
  auto plain = object_settings(o, e);
  EXPECT_EQ(plain.lock_mode, LockMode::kCompliance);
  EXPECT_EQ(plain.retain_until, retain_until(e.start_unix_ms, 0, 7));
  e.overrides.retention_days = 1;  // shorter than configured: the hook decides (docs/integrations.md)
  auto shorter = object_settings(o, e);
  EXPECT_EQ(shorter.lock_mode, LockMode::kCompliance);
  EXPECT_EQ(shorter.retain_until, retain_until(e.start_unix_ms, 1, 0));
  e.overrides.retention_mode = "GOVERNANCE";
  e.overrides.tags = {{"a", "2"}, {"b", "3"}};
  auto both = object_settings(o, e);
  EXPECT_EQ(both.lock_mode, LockMode::kGovernance);
  EXPECT_EQ(both.tags, (std::map<std::string, std::string>{{"a", "2"}, {"b", "3"}}));
  // A mode with no period anywhere locks nothing.
  S3SinkOptions none;
  DeliveryEntry m;
  m.overrides.retention_mode = "COMPLIANCE";
  EXPECT_FALSE(object_settings(none, m).lock_mode);
}

}  // namespace
}  // namespace sgw::storage
