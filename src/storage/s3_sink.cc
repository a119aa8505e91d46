#include "storage/s3_sink.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/logging.h"
#include "storage/sigv4.h"
#include "storage/user_metadata.h"

namespace sgw::storage {

namespace {

using Clock = std::chrono::system_clock;

DeliveryOutcome from_error(const S3Error& e) {
  DeliveryOutcome o;
  o.kind = e.retryable ? DeliveryOutcome::Kind::kRetry : DeliveryOutcome::Kind::kPermanent;
  o.code = e.code;
  o.message = e.describe();
  o.slowdown = e.code == "SlowDown" || e.http_status == 429 || e.code == "Throttling" ||
               e.code == "RequestLimitExceeded";
  return o;
}

DeliveryOutcome fail(DeliveryOutcome::Kind kind, std::string code, std::string message) {
  DeliveryOutcome o;
  o.kind = kind;
  o.code = std::move(code);
  o.message = std::move(message);
  return o;
}

bool not_found(const S3Error& e) {
  return e.http_status == 404 && (e.code == "NotFound" || e.code == "NoSuchKey" || e.code == "Http404");
}

}  // namespace

Clock::time_point retain_until(std::int64_t start_unix_ms, std::uint32_t days, std::uint32_t years) {
  using namespace std::chrono;
  Clock::time_point start{milliseconds(start_unix_ms)};
  if (years == 0) return start + hours(24) * days;
  auto day = floor<std::chrono::days>(start);
  year_month_day ymd{day};
  year_month_day target = (ymd.year() + std::chrono::years(static_cast<int>(years))) / ymd.month() / ymd.day();
  if (!target.ok()) target = year_month_day_last(target.year(), month_day_last(target.month()));
  return sys_days(target) + (start - day);
}

common::Result<FileDigest> digest_file(const std::string& path, std::uint64_t part_size, bool multipart) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return common::make_error("io.open", "open " + path + ": " + std::strerror(errno));
  FileDigest out;
  BodyDigest whole;
  std::unique_ptr<BodyDigest> part = std::make_unique<BodyDigest>();
  std::uint64_t in_part = 0;
  std::string concat;
  std::vector<char> buf(1 << 20);
  auto close_part = [&] {
    std::string md5;
    part->finish(nullptr, &md5);
    concat += md5;
    out.part_md5_hex.push_back(hex(md5));
    part = std::make_unique<BodyDigest>();
    in_part = 0;
  };
  while (true) {
    std::size_t want = buf.size();
    if (multipart) want = static_cast<std::size_t>(std::min<std::uint64_t>(want, part_size - in_part));
    ssize_t n = ::read(fd, buf.data(), want);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return common::make_error("io.read", "read " + path + ": " + std::strerror(err));
    }
    if (n == 0) break;
    std::string_view chunk(buf.data(), static_cast<std::size_t>(n));
    whole.update(chunk);
    out.size += chunk.size();
    if (multipart) {
      part->update(chunk);
      in_part += chunk.size();
      if (in_part == part_size) close_part();
    }
  }
  ::close(fd);
  if (multipart && (in_part > 0 || out.part_md5_hex.empty())) close_part();
  std::string sha, md5;
  whole.finish(&sha, &md5);
  out.md5_hex = hex(md5);
  out.sha256_b64 = base64(sha);
  if (multipart) {
    BodyDigest d;
    d.update(concat);
    std::string m;
    d.finish(nullptr, &m);
    out.multipart_etag = hex(m) + "-" + std::to_string(out.part_md5_hex.size());
  }
  return out;
}

common::Result<std::unique_ptr<S3Sink>> S3Sink::create(S3SinkOptions options) {
  auto client = S3Client::create(options.client);
  if (!client) return client.error();
  return std::unique_ptr<S3Sink>(new S3Sink(std::move(options), std::move(client).value()));
}

S3Sink::S3Sink(S3SinkOptions options, std::unique_ptr<S3Client> client)
    : options_(std::move(options)), client_(std::move(client)) {}

DeliveryOutcome S3Sink::check() {
  const std::string& bucket = options_.client.bucket;
  auto head = client_->head_object("", {}, false);  // HEAD on the bucket itself
  if (!head) {
    // A HEAD answer has no body, so no S3 error code: ask again with a GET
    // whose error body names it (SignatureDoesNotMatch, InvalidAccessKeyId...).
    if (head.error().http_status == 403 || head.error().http_status == 400)
      if (auto l = client_->list_object_versions("sgw-bucket-check/"); !l) head = l.error();
    auto o = from_error(head.error());
    o.message = "bucket check: HEAD s3://" + bucket + ": HTTP " + std::to_string(head.error().http_status) +
                " " + head.error().code +
                (head.error().http_status == 403 ? " (credentials wrong, or no access to the bucket)"
                 : head.error().http_status == 404 ? " (no such bucket)"
                                                   : "");
    return o;
  }
  if (options_.lock_mode) {
    auto cfg = client_->get_object_lock_configuration();
    if (!cfg) {
      auto o = from_error(cfg.error());
      o.kind = cfg.error().retryable ? DeliveryOutcome::Kind::kRetry : DeliveryOutcome::Kind::kPermanent;
      o.message = "bucket check: s3://" + bucket + " has no usable Object Lock configuration (s3.retention_mode " +
                  std::string(to_string(*options_.lock_mode)) + " is set): " + cfg.error().describe();
      return o;
    }
    if (!cfg->enabled)
      return fail(DeliveryOutcome::Kind::kPermanent, "ObjectLockNotEnabled",
                  "bucket check: s3://" + bucket + " does not have Object Lock enabled, but s3.retention_mode " +
                      std::string(to_string(*options_.lock_mode)) + " is set");
  }
  return DeliveryOutcome::delivered();
}

std::string S3Sink::verify(const HeadObjectResult& h, const FileDigest& d, bool multipart,
                           const std::map<std::string, std::string>& metadata, Clock::time_point until) const {
  if (h.delete_marker) return "the latest version is a delete marker";
  if (h.size != d.size) return "size " + std::to_string(h.size) + ", local " + std::to_string(d.size);
  const std::string& want_etag = multipart ? d.multipart_etag : d.md5_hex;
  if (h.etag != want_etag) return "ETag " + h.etag + ", expected " + want_etag;
  // Single-part objects: the server's SHA-256, when it keeps one (Ceph 16 does not).
  if (!multipart && !h.checksum_sha256.empty() && h.checksum_sha256 != d.sha256_b64)
    return "x-amz-checksum-sha256 " + h.checksum_sha256 + ", expected " + d.sha256_b64;
  for (const auto& [k, v] : metadata) {
    auto it = h.metadata.find(k);
    if (it == h.metadata.end()) return "user metadata " + k + " missing";
    if (it->second != v) return "user metadata " + k + " is '" + it->second + "', expected '" + v + "'";
  }
  if (options_.lock_mode) {
    if (!h.lock_mode) return "no Object Lock retention";
    if (*h.lock_mode != *options_.lock_mode)
      return "retention mode " + std::string(to_string(*h.lock_mode)) + ", expected " +
             std::string(to_string(*options_.lock_mode));
    // ISO 8601 strings compare as times; a longer retention is fine.
    std::string want = iso8601(until).substr(0, 19);
    if (h.retain_until.substr(0, 19) < want) return "retain-until " + h.retain_until + ", expected " + want;
  }
  if (options_.legal_hold && !h.legal_hold) return "no legal hold";
  return "";
}

DeliveryOutcome S3Sink::deliver(DeliveryEntry& entry,
                                const std::function<void(const DeliveryEntry&)>& checkpoint) {
  // The user metadata comes from the recording's JSON (the object with that content type).
  nlohmann::json doc = nlohmann::json::object();
  for (const auto& o : entry.objects) {
    if (o.content_type != "application/json") continue;
    std::ifstream in(o.path, std::ios::binary);
    if (!in)
      return fail(DeliveryOutcome::Kind::kPermanent, "Client.File",
                  "cannot read " + o.path + " (local copy of " + entry.recording_id + "): " + std::strerror(errno));
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    doc = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
    if (doc.is_discarded() || !doc.is_object())
      return fail(DeliveryOutcome::Kind::kPermanent, "Client.Json", o.path + " is not a recording JSON");
  }
  auto metadata = user_metadata(doc);
  for (auto& o : entry.objects) {
    if (o.delivered) continue;
    auto out = deliver_object(entry, o, metadata, checkpoint);
    if (out.kind != DeliveryOutcome::Kind::kDelivered) return out;
    checkpoint(entry);
  }
  return DeliveryOutcome::delivered();
}

DeliveryOutcome S3Sink::deliver_object(DeliveryEntry& entry, DeliveryObject& o,
                                       const std::map<std::string, std::string>& metadata,
                                       const std::function<void(const DeliveryEntry&)>& checkpoint) {
  auto log = common::logger("delivery");
  const std::string& bucket = options_.client.bucket;
  std::uint64_t part_size = std::max<std::uint64_t>(options_.part_size, 1);
  auto size_probe = digest_file(o.path, part_size, false);
  if (!size_probe)
    return fail(DeliveryOutcome::Kind::kPermanent, "Client.File",
                size_probe.error().message + " (local copy of " + entry.recording_id + " for s3://" + bucket +
                    "/" + o.key + ")");
  bool multipart = size_probe->size > options_.multipart_threshold;
  FileDigest d = *size_probe;
  if (multipart) {
    auto md = digest_file(o.path, part_size, true);
    if (!md) return fail(DeliveryOutcome::Kind::kPermanent, "Client.File", md.error().message);
    d = *md;
  }
  Clock::time_point until = retain_until(entry.start_unix_ms, options_.retention_days, options_.retention_years);

  PutObjectOptions put;
  put.content_type = o.content_type;
  put.metadata = metadata;
  if (options_.lock_mode) put.lock = ObjectLock{*options_.lock_mode, until};
  put.legal_hold = options_.legal_hold;
  put.sse = options_.sse;
  put.tags = options_.tags;

  auto mark = [&](const HeadObjectResult& h) {
    o.delivered = true;
    o.size = h.size;
    o.etag = h.etag;
    o.version_id = h.version_id;
    o.upload_id.clear();
    o.parts.clear();
    o.verified = "size etag" + std::string(h.checksum_sha256.empty() ? "" : " sha256") + " metadata";
    if (options_.lock_mode) o.verified += " retention=" + std::string(to_string(*options_.lock_mode)) + "@" + h.retain_until;
    if (options_.legal_hold) o.verified += " legal-hold";
    return DeliveryOutcome::delivered();
  };
  // After the object is in place: set retention if the server ignored the lock
  // headers (some do on CreateMultipartUpload), then verify.
  auto finish = [&](const std::string& version_id) -> DeliveryOutcome {
    auto h = client_->head_object(o.key, version_id);
    if (!h) return from_error(h.error());
    if (options_.lock_mode && !h->lock_mode) {
      log->info("{}: s3://{}/{} has no retention after upload; setting it with PutObjectRetention",
                entry.recording_id, bucket, o.key);
      auto r = client_->put_object_retention(o.key, h->version_id, ObjectLock{*options_.lock_mode, until});
      if (!r) return from_error(r.error());
      h = client_->head_object(o.key, h->version_id);
      if (!h) return from_error(h.error());
    }
    std::string why = verify(*h, d, multipart, metadata, until);
    if (!why.empty())
      return fail(DeliveryOutcome::Kind::kPermanent, "VerifyFailed",
                  "verify s3://" + bucket + "/" + o.key + " (version " + h->version_id + "): " + why);
    return mark(*h);
  };

  // Idempotency: an object we already uploaded and verified-equal is not PUT again
  // (with versioning and Object Lock a second PUT would add a second, locked version).
  if (o.upload_id.empty()) {
    auto h = client_->head_object(o.key);
    if (h) {
      std::string why = verify(*h, d, multipart, metadata, until);
      if (why.empty()) {
        log->info("{}: s3://{}/{} is already there and verified; not uploaded again", entry.recording_id,
                  bucket, o.key);
        return mark(*h);
      }
      if (options_.lock_mode && !h->lock_mode && h->size == d.size &&
          h->etag == (multipart ? d.multipart_etag : d.md5_hex))
        return finish(h->version_id);  // a crash between complete and retention
      log->warn("{}: s3://{}/{} exists but differs ({}); uploading it again", entry.recording_id, bucket,
                o.key, why);
    } else if (!not_found(h.error())) {
      // HEAD errors carry no body; a GET of the same key names the S3 error code.
      if (h.error().http_status == 403 || h.error().http_status == 400)
        if (auto g = client_->get_object(o.key); !g) return from_error(g.error());
      return from_error(h.error());
    }
  }

  if (!multipart) {
    auto r = client_->put_object_file(o.key, o.path, put);
    if (!r) return from_error(r.error());
    return finish(r->version_id);
  }

  // Multipart, resumable: the upload id and the finished parts are in the entry.
  std::uint64_t n_parts = (d.size + part_size - 1) / part_size;
  if (n_parts == 0) n_parts = 1;
  if (!o.upload_id.empty()) {
    auto listed = client_->list_parts(o.key, o.upload_id);
    if (!listed) {
      if (listed.error().code != "NoSuchUpload" && !listed.error().retryable && listed.error().http_status != 404)
        return from_error(listed.error());
      if (listed.error().retryable) return from_error(listed.error());
      log->warn("{}: multipart upload {} of s3://{}/{} is gone ({}); starting over", entry.recording_id,
                o.upload_id, bucket, o.key, listed.error().code);
      o.upload_id.clear();
      o.parts.clear();
    } else {
      // Keep the parts the server has with the ETag of our local part.
      std::vector<DeliveryPart> kept;
      for (const auto& p : o.parts) {
        auto it = std::find_if(listed->begin(), listed->end(),
                               [&](const PartInfo& s) { return s.part_number == p.number; });
        if (it != listed->end() && p.number >= 1 && static_cast<std::size_t>(p.number) <= d.part_md5_hex.size() &&
            it->etag == d.part_md5_hex[static_cast<std::size_t>(p.number - 1)])
          kept.push_back(p);
      }
      if (kept.size() != o.parts.size())
        log->info("{}: resuming upload of s3://{}/{}: {} of {} recorded part(s) confirmed by ListParts",
                  entry.recording_id, bucket, o.key, kept.size(), o.parts.size());
      o.parts = std::move(kept);
    }
  }
  if (o.upload_id.empty()) {
    auto id = client_->create_multipart_upload(o.key, put);
    if (!id) return from_error(id.error());
    o.upload_id = *id;
    o.parts.clear();
    checkpoint(entry);
  } else {
    log->info("{}: resuming multipart upload of s3://{}/{} at part {} of {}", entry.recording_id, bucket, o.key,
              o.parts.size() + 1, n_parts);
  }
  for (std::uint64_t i = 1; i <= n_parts; ++i) {
    int number = static_cast<int>(i);
    if (std::any_of(o.parts.begin(), o.parts.end(), [&](const DeliveryPart& p) { return p.number == number; }))
      continue;
    std::uint64_t offset = (i - 1) * part_size;
    std::uint64_t length = std::min(part_size, d.size - offset);
    auto r = client_->upload_part_file(o.key, o.upload_id, number, o.path, offset, length, true);
    if (!r) return from_error(r.error());
    o.parts.push_back({number, length, r->etag, r->checksum_sha256});
    checkpoint(entry);
  }
  std::sort(o.parts.begin(), o.parts.end(), [](const DeliveryPart& a, const DeliveryPart& b) { return a.number < b.number; });
  std::vector<UploadPartResult> parts;
  for (const auto& p : o.parts) parts.push_back({p.number, p.etag, p.checksum_sha256});
  auto done = client_->complete_multipart_upload(o.key, o.upload_id, parts);
  if (!done) {
    if (done.error().code == "NoSuchUpload") {
      o.upload_id.clear();
      o.parts.clear();
      checkpoint(entry);
      auto out = from_error(done.error());
      out.kind = DeliveryOutcome::Kind::kRetry;  // the next attempt HEADs, then starts over if needed
      return out;
    }
    return from_error(done.error());
  }
  return finish(done->version_id);
}

}  // namespace sgw::storage
