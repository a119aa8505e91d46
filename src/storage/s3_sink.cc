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

}  // namespace

DeliveryOutcome outcome_of(const S3Error& e) {
  DeliveryOutcome o;
  o.kind = e.retryable ? DeliveryOutcome::Kind::kRetry : DeliveryOutcome::Kind::kPermanent;
  o.code = e.code;
  o.message = e.describe();
  o.slowdown = e.code == "SlowDown" || e.http_status == 429 || e.code == "Throttling" ||
               e.code == "RequestLimitExceeded";
  return o;
}

namespace {

DeliveryOutcome from_error(const S3Error& e) { return outcome_of(e); }

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

ObjectSettings object_settings(const S3SinkOptions& options, const DeliveryEntry& entry) {
  ObjectSettings s;
  const ObjectOverrides& o = entry.overrides;
  s.lock_mode = options.lock_mode;
  if (o.retention_mode == "COMPLIANCE") s.lock_mode = LockMode::kCompliance;
  if (o.retention_mode == "GOVERNANCE") s.lock_mode = LockMode::kGovernance;
  if (o.retention_days > 0) {
    s.retain_until = retain_until(entry.start_unix_ms, o.retention_days, 0);
  } else if (options.retention_days > 0 || options.retention_years > 0) {
    s.retain_until = retain_until(entry.start_unix_ms, options.retention_days, options.retention_years);
  } else {
    s.lock_mode.reset();  // no period to lock for
  }
  s.tags = options.tags;
  for (const auto& [k, v] : o.tags) s.tags[k] = v;
  return s;
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
  std::string concat_sha;
  auto close_part = [&] {
    std::string md5, sha;
    part->finish(&sha, &md5);
    concat += md5;
    concat_sha += sha;
    out.part_md5_hex.push_back(hex(md5));
    out.part_sha256_b64.push_back(base64(sha));
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
  out.sha256_hex = hex(sha);
  out.sha256_b64 = base64(sha);
  if (multipart) {
    BodyDigest d, c;
    d.update(concat);
    c.update(concat_sha);
    std::string m, cs;
    d.finish(nullptr, &m);
    c.finish(&cs, nullptr);
    std::string n = "-" + std::to_string(out.part_md5_hex.size());
    out.multipart_etag = hex(m) + n;
    out.composite_sha256 = base64(cs) + n;
  }
  return out;
}

common::Result<std::unique_ptr<S3Sink>> S3Sink::create(S3SinkOptions options) {
  auto client = S3Client::create(options.client);
  if (!client) return client.error();
  return create(std::move(options), std::move(client).value());
}

std::unique_ptr<S3Sink> S3Sink::create(S3SinkOptions options, std::unique_ptr<S3Api> api) {
  return std::unique_ptr<S3Sink>(new S3Sink(std::move(options), std::move(api)));
}

S3Sink::S3Sink(S3SinkOptions options, std::unique_ptr<S3Api> client)
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
    // No answer (transport error, or no credentials to sign with): the error's own text says why.
    if (head.error().http_status == 0) {
      o.message = "bucket check: " + head.error().describe();
      return o;
    }
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

S3Sink::ObjectCheck S3Sink::check_object(const HeadObjectResult& h, const FileDigest& d, bool multipart,
                                         const std::map<std::string, std::string>& metadata,
                                         const ObjectSettings& want) const {
  using Kind = ObjectCheck::Kind;
  auto result = [](Kind kind, std::string why) { return ObjectCheck{kind, std::move(why), ""}; };
  if (h.delete_marker) return result(Kind::kNotOurs, "the latest version is a delete marker");
  // Ours: written for this recording. Nothing else decides whether we may write a version.
  const std::string& rid = metadata.at("recording-id");
  auto got = [&](const std::string& name) {
    auto it = h.metadata.find(name);
    return it == h.metadata.end() ? std::string() : it->second;
  };
  if (got("recording-id") != rid)
    return result(Kind::kNotOurs, "another object (recording-id '" + got("recording-id") + "')");
  // The same bytes: size, and our SHA-256 in the metadata (the server checked
  // Content-MD5 and x-amz-checksum-sha256 of every body we sent). Objects
  // written before the sha256 metadata existed are identified by an MD5 ETag.
  if (h.size != d.size) return result(Kind::kOursDiffers, "size " + std::to_string(h.size) + ", local " + std::to_string(d.size));
  const std::string want_etag = multipart ? d.multipart_etag : d.md5_hex;
  std::string checked = "size";
  const std::string sha_name(kObjectSha256Name);
  if (h.metadata.count(sha_name)) {
    if (got(sha_name) != d.sha256_hex)
      return result(Kind::kOursDiffers, "sha256 metadata " + got(sha_name) + ", local " + d.sha256_hex);
    checked += " sha256-metadata";
  } else if (h.etag == want_etag) {
    checked += " etag=md5";
  } else {
    return result(Kind::kOursDiffers, "no sha256 metadata, and ETag " + h.etag + " is not the local MD5 " + want_etag);
  }
  // The server's own SHA-256 where it keeps one (AWS, Ceph >= 18; not Ceph 16):
  // of the whole object, or composite (of the parts) after a multipart upload.
  if (!h.checksum_sha256.empty()) {
    if (h.checksum_sha256 != d.sha256_b64 && !(multipart && h.checksum_sha256 == d.composite_sha256))
      return result(Kind::kOursDiffers, "x-amz-checksum-sha256 " + h.checksum_sha256 + ", local " +
                                            (multipart ? d.composite_sha256 : d.sha256_b64));
    checked += " checksum-sha256";
  }
  if (h.etag == want_etag && checked.find("etag") == std::string::npos) checked += " etag=md5";
  for (const auto& [k, v] : metadata) {
    if (k == sha_name) continue;
    auto it = h.metadata.find(k);
    if (it == h.metadata.end()) return result(Kind::kOursDiffers, "user metadata " + k + " missing");
    if (it->second != v)
      return result(Kind::kOursDiffers, "user metadata " + k + " is '" + it->second + "', expected '" + v + "'");
  }
  checked += " metadata";
  if (want.lock_mode) {
    if (!h.lock_mode) return {Kind::kNeedsRetention, "no Object Lock retention", checked};
    if (*h.lock_mode != *want.lock_mode)
      return result(Kind::kOursDiffers, "retention mode " + std::string(to_string(*h.lock_mode)) + ", expected " +
                                            std::string(to_string(*want.lock_mode)));
    // ISO 8601 strings compare as times; a longer retention is fine, a shorter one is extended.
    std::string until = iso8601(want.retain_until).substr(0, 19);
    if (h.retain_until.substr(0, 19) < until)
      return {Kind::kNeedsRetention, "retain-until " + h.retain_until + ", expected " + until, checked};
    checked += " retention=" + std::string(to_string(*want.lock_mode)) + "@" + h.retain_until;
  }
  if (options_.legal_hold) {
    if (!h.legal_hold) return result(Kind::kOursDiffers, "no legal hold");
    checked += " legal-hold";
  }
  return {Kind::kVerified, "", checked};
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
  auto metadata = user_metadata(doc, user_metadata_size(options_.extra_metadata));
  metadata.insert(options_.extra_metadata.begin(), options_.extra_metadata.end());
  for (auto& o : entry.objects) {
    if (o.delivered) continue;
    auto out = deliver_object(entry, o, metadata, checkpoint);
    if (out.kind != DeliveryOutcome::Kind::kDelivered) return out;
    checkpoint(entry);
  }
  entry.bucket = options_.client.bucket;
  return DeliveryOutcome::delivered();
}

DeliveryOutcome S3Sink::deliver_object(DeliveryEntry& entry, DeliveryObject& o,
                                       const std::map<std::string, std::string>& recording_metadata,
                                       const std::function<void(const DeliveryEntry&)>& checkpoint) {
  using Kind = ObjectCheck::Kind;
  auto log = common::logger("delivery");
  const std::string& bucket = options_.client.bucket;
  const std::string where = "s3://" + bucket + "/" + o.key;
  std::uint64_t part_size = std::max<std::uint64_t>(options_.part_size, 1);
  auto size_probe = digest_file(o.path, part_size, false);
  if (!size_probe)
    return fail(DeliveryOutcome::Kind::kPermanent, "Client.File",
                size_probe.error().message + " (local copy of " + entry.recording_id + " for " + where + ")");
  bool multipart = size_probe->size > options_.multipart_threshold;
  FileDigest d = *size_probe;
  if (multipart) {
    auto md = digest_file(o.path, part_size, true);
    if (!md) return fail(DeliveryOutcome::Kind::kPermanent, "Client.File", md.error().message);
    d = *md;
  }
  const ObjectSettings want = object_settings(options_, entry);
  auto metadata = recording_metadata;
  metadata[std::string(kObjectSha256Name)] = d.sha256_hex;

  PutObjectOptions put;
  put.content_type = o.content_type;
  put.metadata = metadata;
  if (want.lock_mode) put.lock = ObjectLock{*want.lock_mode, want.retain_until};
  put.legal_hold = options_.legal_hold;
  put.sse = options_.sse;
  put.tags = want.tags;

  auto mark = [&](const HeadObjectResult& h, const std::string& checked) {
    o.delivered = true;
    o.size = h.size;
    o.etag = h.etag;
    o.version_id = h.version_id;
    o.sha256 = d.sha256_hex;
    o.upload_id.clear();
    o.parts.clear();
    o.verified = checked;
    return DeliveryOutcome::delivered();
  };
  auto verify_failed = [&](const HeadObjectResult& h, const std::string& why) {
    return fail(DeliveryOutcome::Kind::kPermanent, "VerifyFailed",
                "verify " + where + " (version " + h.version_id + "): " + why);
  };
  // A version of ours with the right bytes: set or extend its retention when
  // that is all it lacks (a crash between upload and PutObjectRetention, or a
  // server that ignores lock headers on CreateMultipartUpload), then verify.
  auto settle = [&](HeadObjectResult h, ObjectCheck c) -> DeliveryOutcome {
    if (c.kind == Kind::kNeedsRetention) {
      log->info("{}: {} ({}): {}; setting it with PutObjectRetention", entry.recording_id, where, h.version_id, c.why);
      auto r = client_->put_object_retention(o.key, h.version_id, ObjectLock{*want.lock_mode, want.retain_until});
      if (!r) return from_error(r.error());
      auto again = client_->head_object(o.key, h.version_id);
      if (!again) return from_error(again.error());
      h = *again;
      c = check_object(h, d, multipart, metadata, want);
    }
    if (c.kind != Kind::kVerified) return verify_failed(h, c.why);
    // Tags are not in a HEAD: GetObjectTagging of the same version. Tags are
    // not part of the object (Object Lock does not cover them), so missing or
    // different ones (a crash, a server that ignored x-amz-tagging) are set.
    if (!want.tags.empty()) {
      auto describe = [](const std::map<std::string, std::string>& t) {
        std::string out;
        for (const auto& [k, v] : t) out += (out.empty() ? "" : ",") + k + "=" + v;
        return out.empty() ? std::string("none") : out;
      };
      auto tags = client_->get_object_tagging(o.key, h.version_id);
      if (!tags) return from_error(tags.error());
      if (*tags != want.tags) {
        log->info("{}: {} ({}): tags {}, expected {}; setting them with PutObjectTagging", entry.recording_id,
                  where, h.version_id, describe(*tags), describe(want.tags));
        auto p = client_->put_object_tagging(o.key, h.version_id, want.tags);
        if (!p) return from_error(p.error());
        tags = client_->get_object_tagging(o.key, h.version_id);
        if (!tags) return from_error(tags.error());
        if (*tags != want.tags)
          return verify_failed(h, "tags " + describe(*tags) + ", expected " + describe(want.tags));
      }
      c.checked += " tags=" + std::to_string(want.tags.size());
    }
    return mark(h, c.checked);
  };
  // After our own upload: HEAD exactly the version it made.
  auto finish = [&](const std::string& version_id) -> DeliveryOutcome {
    auto h = client_->head_object(o.key, version_id);
    if (!h) return from_error(h.error());
    return settle(*h, check_object(*h, d, multipart, metadata, want));
  };
  // Exactly once: before any upload starts (a first PUT, a new multipart
  // upload, one that starts over) the key is HEADed. A version we wrote is
  // never written again: the reply of the call that wrote it may have been
  // lost (a timeout, a reset, a crash) while the server kept the object, and
  // under Object Lock a second version could never be deleted.
  // nullopt: nothing of ours there, go on and upload.
  auto probe = [&]() -> std::optional<DeliveryOutcome> {
    auto h = client_->head_object(o.key);
    if (!h) {
      if (not_found(h.error())) return std::nullopt;
      // HEAD errors carry no body; a GET of the same key names the S3 error code.
      if (h.error().http_status == 403 || h.error().http_status == 400)
        if (auto g = client_->get_object(o.key); !g) return from_error(g.error());
      return from_error(h.error());
    }
    ObjectCheck c = check_object(*h, d, multipart, metadata, want);
    switch (c.kind) {
      case Kind::kVerified:
      case Kind::kNeedsRetention:
        log->info("{}: {} already holds this object (version {}){}; not uploaded again", entry.recording_id, where,
                  h->version_id, o.upload_id.empty() ? "" : ", from multipart upload " + o.upload_id);
        return settle(*h, c);
      case Kind::kOursDiffers:
        log->error("{}: {} holds a version of this recording that differs from the local file ({}); not "
                   "uploading a second version",
                   entry.recording_id, where, c.why);
        return verify_failed(*h, c.why + "; not uploading a second version of this recording");
      case Kind::kNotOurs:
        log->warn("{}: {} holds {}; uploading ours", entry.recording_id, where, c.why);
        return std::nullopt;
    }
    return std::nullopt;
  };

  if (auto done = probe()) return *done;

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
      const auto& e = listed.error();
      if (e.retryable) return from_error(e);
      if (e.code != "NoSuchUpload" && e.http_status != 404) return from_error(e);
      log->warn("{}: multipart upload {} of {} is gone ({}); starting over", entry.recording_id, o.upload_id,
                where, e.code);
      o.upload_id.clear();
      o.parts.clear();
      checkpoint(entry);
      // Gone may mean completed: HEAD again right before a new upload.
      if (auto done = probe()) return *done;
    } else {
      // Keep the parts the server lists with the ETag it gave us for them and
      // whose checksum is the local part's (ETags are not MD5s under SSE-KMS).
      std::vector<DeliveryPart> kept;
      for (const auto& p : o.parts) {
        auto it = std::find_if(listed->begin(), listed->end(),
                               [&](const PartInfo& s) { return s.part_number == p.number; });
        bool local_same = p.number >= 1 && static_cast<std::size_t>(p.number) <= d.part_sha256_b64.size() &&
                          (p.checksum_sha256.empty()
                               ? d.part_md5_hex[static_cast<std::size_t>(p.number - 1)] == p.etag
                               : d.part_sha256_b64[static_cast<std::size_t>(p.number - 1)] == p.checksum_sha256);
        if (it != listed->end() && it->etag == p.etag && local_same) kept.push_back(p);
      }
      if (kept.size() != o.parts.size())
        log->info("{}: resuming upload of {}: {} of {} recorded part(s) confirmed by ListParts", entry.recording_id,
                  where, kept.size(), o.parts.size());
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
    log->info("{}: resuming multipart upload of {} at part {} of {}", entry.recording_id, where, o.parts.size() + 1,
              n_parts);
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
    // A lost reply (transport error) keeps the upload id: the next attempt
    // HEADs first and finds the object if the server completed it.
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
