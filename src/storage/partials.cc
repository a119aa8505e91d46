#include "storage/partials.h"

#include <charconv>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/logging.h"
#include "storage/sigv4.h"

namespace sgw::storage {

namespace {

std::optional<std::uint64_t> parse_u64(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<std::int64_t> parse_i64(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

DeliveryOutcome fail(DeliveryOutcome::Kind kind, std::string code, std::string message) {
  DeliveryOutcome o;
  o.kind = kind;
  o.code = std::move(code);
  o.message = std::move(message);
  return o;
}

std::string read_file(const std::string& path, bool* ok) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  *ok = static_cast<bool>(in) || in.eof();
  return ss.str();
}

}  // namespace

std::string partials_prefix(std::string_view region, std::string_view recording_id) {
  return std::string(region) + "/partial/" + std::string(recording_id) + "/";
}

std::string partial_key(std::string_view region, std::string_view recording_id, std::uint64_t seq) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%08llu", static_cast<unsigned long long>(seq));
  return partials_prefix(region, recording_id) + buf;
}

std::optional<PartialKey> parse_partial_key(std::string_view key) {
  // region/partial/recording_id/name: exactly four components.
  std::string_view parts[4];
  for (int i = 0; i < 4; ++i) {
    auto slash = key.find('/');
    if (i < 3) {
      if (slash == std::string_view::npos) return std::nullopt;
      parts[i] = key.substr(0, slash);
      key.remove_prefix(slash + 1);
    } else {
      if (slash != std::string_view::npos) return std::nullopt;
      parts[i] = key;
    }
    if (parts[i].empty()) return std::nullopt;
  }
  if (parts[1] != "partial") return std::nullopt;
  PartialKey k;
  k.region = parts[0];
  k.recording_id = parts[2];
  if (parts[3] == kLeaseName) {
    k.lease = true;
    return k;
  }
  if (parts[3].size() != 8) return std::nullopt;
  k.seq = parse_u64(parts[3]);
  if (!k.seq) return std::nullopt;
  return k;
}

std::map<std::string, std::string> PartialInfo::to_metadata() const {
  return {{"node", node},
          {"region", region},
          {"recording-id", recording_id},
          {"conversation-id", conversation_id},
          {"seq", std::to_string(seq)},
          {"offset", std::to_string(offset)},
          {"length", std::to_string(length)},
          {"sha256", sha256},
          {"start-unix-us", std::to_string(start_unix_us)},
          {"segment-ms", std::to_string(segment_ms)}};
}

std::optional<PartialInfo> PartialInfo::from_metadata(const std::map<std::string, std::string>& m) {
  auto get = [&](const char* k) -> std::string_view {
    auto it = m.find(k);
    return it == m.end() ? std::string_view() : std::string_view(it->second);
  };
  PartialInfo p;
  p.node = get("node");
  p.region = get("region");
  p.recording_id = get("recording-id");
  p.conversation_id = get("conversation-id");
  p.sha256 = get("sha256");
  auto seq = parse_u64(get("seq"));
  auto offset = parse_u64(get("offset"));
  auto length = parse_u64(get("length"));
  auto start = parse_i64(get("start-unix-us"));
  auto segment = parse_i64(get("segment-ms"));
  if (!seq || !offset || !length || !start || !segment || p.recording_id.empty() || p.sha256.size() != 64)
    return std::nullopt;
  p.seq = *seq;
  p.offset = *offset;
  p.length = *length;
  p.start_unix_us = *start;
  p.segment_ms = *segment;
  return p;
}

std::string partial_file_name(std::string_view recording_id, std::uint64_t seq, std::uint64_t offset) {
  return std::string(recording_id) + "." + std::to_string(seq) + "." + std::to_string(offset) + ".part";
}

std::optional<PartialFileName> parse_partial_file_name(std::string_view name) {
  constexpr std::string_view kExt = ".part";
  if (name.size() <= kExt.size() || name.substr(name.size() - kExt.size()) != kExt) return std::nullopt;
  name.remove_suffix(kExt.size());
  auto dot2 = name.rfind('.');
  if (dot2 == std::string_view::npos) return std::nullopt;
  auto offset = parse_u64(name.substr(dot2 + 1));
  name = name.substr(0, dot2);
  auto dot1 = name.rfind('.');
  if (dot1 == std::string_view::npos || dot1 == 0) return std::nullopt;
  auto seq = parse_u64(name.substr(dot1 + 1));
  if (!offset || !seq) return std::nullopt;
  return PartialFileName{std::string(name.substr(0, dot1)), *seq, *offset};
}

std::optional<std::int64_t> parse_s3_time_ms(std::string_view iso) {
  // YYYY-MM-DDTHH:MM:SS[.fff]Z
  if (iso.size() < 20 || iso[4] != '-' || iso[7] != '-' || iso[10] != 'T' || iso[13] != ':' || iso[16] != ':')
    return std::nullopt;
  auto num = [&](std::size_t at, std::size_t n) { return parse_i64(iso.substr(at, n)); };
  auto y = num(0, 4), mo = num(5, 2), d = num(8, 2), h = num(11, 2), mi = num(14, 2), s = num(17, 2);
  if (!y || !mo || !d || !h || !mi || !s) return std::nullopt;
  std::tm tm{};
  tm.tm_year = static_cast<int>(*y) - 1900;
  tm.tm_mon = static_cast<int>(*mo) - 1;
  tm.tm_mday = static_cast<int>(*d);
  tm.tm_hour = static_cast<int>(*h);
  tm.tm_min = static_cast<int>(*mi);
  tm.tm_sec = static_cast<int>(*s);
  std::int64_t ms = static_cast<std::int64_t>(::timegm(&tm)) * 1000;
  if (iso.size() > 20 && iso[19] == '.') {
    std::int64_t frac = 0, scale = 100;
    for (std::size_t i = 20; i < iso.size() && iso[i] >= '0' && iso[i] <= '9' && scale > 0; ++i, scale /= 10)
      frac += (iso[i] - '0') * scale;
    ms += frac;
  }
  return ms;
}

// ---------------------------------------------------------------------------

common::Result<std::unique_ptr<PartialSink>> PartialSink::create(PartialSinkOptions options) {
  auto client = S3Client::create(options.client);
  if (!client) return client.error();
  return std::unique_ptr<PartialSink>(new PartialSink(std::move(options), std::move(client).value()));
}

DeliveryOutcome PartialSink::check() {
  // A partial must never be locked for years: refuse a bucket with Object Lock.
  auto cfg = client_->get_object_lock_configuration();
  if (cfg && cfg->enabled)
    return fail(DeliveryOutcome::Kind::kPermanent, "PartialsBucketLocked",
                "s3.partials_bucket " + options_.client.bucket +
                    " has Object Lock enabled: partials would be undeletable; use a bucket without Object Lock");
  if (!cfg && !cfg.error().retryable && cfg.error().http_status != 404 &&
      cfg.error().code != "ObjectLockConfigurationNotFoundError")
    return outcome_of(cfg.error());
  return DeliveryOutcome::delivered();
}

DeliveryOutcome PartialSink::deliver(DeliveryEntry& entry,
                                     const std::function<void(const DeliveryEntry&)>& checkpoint) {
  for (auto& o : entry.objects) {
    if (o.delivered) continue;
    auto name = parse_partial_file_name(std::filesystem::path(o.path).filename().string());
    if (!name)
      return fail(DeliveryOutcome::Kind::kPermanent, "Client.File", "partial file name not understood: " + o.path);
    bool ok = false;
    std::string body = read_file(o.path, &ok);
    if (!ok)
      return fail(DeliveryOutcome::Kind::kPermanent, "Client.File", "cannot read partial " + o.path);
    std::string sum = sha256_hex(body);
    if (!o.sha256.empty() && sum != o.sha256)
      return fail(DeliveryOutcome::Kind::kPermanent, "Client.Corrupt",
                  "partial " + o.path + " no longer matches its SHA-256 (local disk damage): not shipped");
    PartialInfo info;
    info.node = options_.node;
    info.region = options_.region;
    info.recording_id = name->recording_id;
    info.conversation_id = entry.conversation_id;
    info.seq = name->seq;
    info.offset = name->offset;
    info.length = body.size();
    info.sha256 = sum;
    info.start_unix_us = entry.start_unix_ms * 1000;
    info.segment_ms = options_.segment_ms;
    PutObjectOptions put;
    put.content_type = "application/octet-stream";
    put.metadata = info.to_metadata();
    auto r = client_->put_object(o.key, body, put);
    if (!r) return outcome_of(r.error());
    auto head = client_->head_object(o.key, r->version_id, false);
    if (!head) return outcome_of(head.error());
    auto seen = PartialInfo::from_metadata(head->metadata);
    if (head->size != body.size() || !seen || seen->sha256 != sum)
      return fail(DeliveryOutcome::Kind::kRetry, "VerifyFailed",
                  "HEAD s3://" + options_.client.bucket + "/" + o.key + ": size or sha256 differs from what was sent");
    o.delivered = true;
    o.size = body.size();
    o.etag = head->etag;
    o.version_id = head->version_id;
    o.sha256 = sum;
    o.verified = "size sha256";
    checkpoint(entry);
    std::error_code ec;
    std::filesystem::remove(o.path, ec);  // shipped and verified: the spool still has these bytes
  }
  entry.bucket = options_.client.bucket;
  return DeliveryOutcome::delivered();
}

// ---------------------------------------------------------------------------

common::Status delete_partials(S3Client& client, std::string_view prefix) {
  auto versions = client.list_object_versions(prefix);
  if (!versions) return versions.error().to_error();
  std::vector<ObjectVersion> lease;
  for (const auto& v : *versions) {
    auto k = parse_partial_key(v.key);
    if (k && k->lease) {
      lease.push_back(v);
      continue;
    }
    auto d = client.delete_object(v.key, v.version_id);
    if (!d && d.error().http_status != 404) return d.error().to_error();
  }
  for (const auto& v : lease) {
    auto d = client.delete_object(v.key, v.version_id);
    if (!d && d.error().http_status != 404) return d.error().to_error();
  }
  return common::Ok{};
}

common::Result<std::unique_ptr<PartialsDeleteSink>> PartialsDeleteSink::create(S3ClientConfig config) {
  auto client = S3Client::create(std::move(config));
  if (!client) return client.error();
  return std::unique_ptr<PartialsDeleteSink>(new PartialsDeleteSink(std::move(client).value()));
}

DeliveryOutcome PartialsDeleteSink::deliver(DeliveryEntry& entry,
                                            const std::function<void(const DeliveryEntry&)>&) {
  for (auto& o : entry.objects) {
    if (o.delivered) continue;
    // Only ever a partials prefix: never anything else in the bucket.
    auto k = parse_partial_key(o.key + "lease");
    if (!k || !k->lease)
      return fail(DeliveryOutcome::Kind::kPermanent, "Client.BadPrefix", "not a partials prefix: " + o.key);
    auto st = delete_partials(*client_, o.key);
    if (!st)
      return fail(DeliveryOutcome::Kind::kRetry, st.error().code,
                  "delete partials s3://" + client_->config().bucket + "/" + o.key + ": " + st.error().message);
    o.delivered = true;
    o.verified = "deleted";
  }
  entry.bucket = client_->config().bucket;
  return DeliveryOutcome::delivered();
}

DeliveryEntry partials_delete_entry(const DeliveryEntry& delivered) {
  DeliveryEntry e;
  e.recording_id = delivered.recording_id + ".partials";
  e.sink = std::string(kPartialsDeleteSink);
  e.start_unix_ms = delivered.start_unix_ms;
  e.end_unix_ms = delivered.end_unix_ms;
  e.conversation_id = delivered.conversation_id;
  DeliveryObject o;
  o.key = delivered.partials_prefix;
  o.content_type = "application/octet-stream";
  e.objects.push_back(std::move(o));
  return e;
}

}  // namespace sgw::storage
