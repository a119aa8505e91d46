#include "storage/partials.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>

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

// "<run>.<seq>", both decimal.
std::optional<PartialFileName> parse_run_seq(std::string_view s) {
  auto dot = s.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  auto run = parse_u64(s.substr(0, dot));
  auto seq = parse_u64(s.substr(dot + 1));
  if (!run || !seq) return std::nullopt;
  return PartialFileName{*run, *seq};
}

// A recording id names a spool file when adopted: letters, digits, '.', '_', '-'; never "." or "..".
bool safe_id(std::string_view id) {
  if (id.empty() || id.size() > 128 || id == "." || id == "..") return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

DeliveryOutcome fail(DeliveryOutcome::Kind kind, std::string code, std::string message) {
  DeliveryOutcome o;
  o.kind = kind;
  o.code = std::move(code);
  o.message = std::move(message);
  return o;
}

// The whole file in one buffer of its size, read straight into it (a partial is about a
// hundred megabytes at 1000 calls: no stream copies).
std::string read_file(const std::string& path, bool* ok) {
  *ok = false;
  std::string out;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  struct stat sb{};
  if (::fstat(fd, &sb) == 0) {
    out.resize(static_cast<std::size_t>(sb.st_size));
    std::size_t done = 0;
    while (done < out.size()) {
      ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    *ok = done == out.size();
  }
  ::close(fd);
  return out;
}

}  // namespace

std::string run_prefix(std::string_view region, std::string_view node, std::uint64_t run) {
  return std::string(region) + "/partial/" + std::string(node) + "/" + std::to_string(run) + "/";
}

std::string partial_key(std::string_view region, std::string_view node, std::uint64_t run, std::uint64_t seq) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%08llu", static_cast<unsigned long long>(seq));
  return run_prefix(region, node, run) + buf;
}

std::optional<PartialKey> parse_partial_key(std::string_view key) {
  // region/partial/node/run/name: exactly five components.
  std::string_view parts[5];
  for (int i = 0; i < 5; ++i) {
    auto slash = key.find('/');
    if (i < 4) {
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
  auto run = parse_u64(parts[3]);
  if (!run || parts[3].size() > 19) return std::nullopt;
  PartialKey k;
  k.region = parts[0];
  k.node = parts[2];
  k.run = *run;
  if (parts[4] == kLeaseName) {
    k.lease = true;
    return k;
  }
  if (parts[4] == kAdoptedName) {
    k.adopted = true;
    return k;
  }
  if (parts[4].size() != 8) return std::nullopt;
  k.seq = parse_u64(parts[4]);
  if (!k.seq) return std::nullopt;
  return k;
}

std::string encode_partial_head(const PartialIndex& index) {
  nlohmann::json chunks = nlohmann::json::array();
  for (const auto& c : index.chunks)
    chunks.push_back({{"recording_id", c.recording_id}, {"offset", c.offset}, {"length", c.length}});
  nlohmann::json j = {{"node", index.node},         {"region", index.region},     {"run", index.run},
                      {"seq", index.seq},           {"unix_ms", index.unix_ms},   {"segment_ms", index.segment_ms},
                      {"chunks", std::move(chunks)}, {"pending", index.pending}};
  std::string doc = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return std::string(kPartialMagic) + " " + std::to_string(doc.size()) + "\n" + doc;
}

common::Result<DecodedPartial> decode_partial(std::string_view body) {
  auto bad = [](std::string what) { return common::make_error("partial.malformed", std::move(what)); };
  if (body.substr(0, kPartialMagic.size()) != kPartialMagic || body.size() <= kPartialMagic.size() ||
      body[kPartialMagic.size()] != ' ')
    return bad("no SGWPART1 head");
  body.remove_prefix(kPartialMagic.size() + 1);
  auto nl = body.find('\n');
  if (nl == std::string_view::npos || nl > 12) return bad("head line not terminated");
  auto len = parse_u64(body.substr(0, nl));
  body.remove_prefix(nl + 1);
  if (!len || *len > body.size()) return bad("index length missing or beyond the body");
  auto j = nlohmann::json::parse(body.substr(0, *len), nullptr, false);
  body.remove_prefix(*len);
  if (!j.is_object()) return bad("index is not a JSON object");
  DecodedPartial out;
  auto& ix = out.index;
  // Every field present with its type: a negative number is never taken as an unsigned one.
  auto str = [](const nlohmann::json& o, const char* k, std::string* v) {
    auto it = o.find(k);
    if (it == o.end() || !it->is_string()) return false;
    *v = it->get<std::string>();
    return true;
  };
  auto u64 = [](const nlohmann::json& o, const char* k, std::uint64_t* v) {
    auto it = o.find(k);
    if (it == o.end() || !it->is_number_unsigned()) return false;
    *v = it->get<std::uint64_t>();
    return true;
  };
  auto i64 = [](const nlohmann::json& o, const char* k, std::int64_t* v) {
    auto it = o.find(k);
    if (it == o.end() || !it->is_number_integer()) return false;
    *v = it->get<std::int64_t>();
    return true;
  };
  if (!str(j, "node", &ix.node) || !str(j, "region", &ix.region) || !u64(j, "run", &ix.run) ||
      !u64(j, "seq", &ix.seq) || !i64(j, "unix_ms", &ix.unix_ms) || !i64(j, "segment_ms", &ix.segment_ms))
    return bad("index: node, region, run, seq, unix_ms or segment_ms missing or of the wrong type");
  auto chunks = j.find("chunks");
  auto pending = j.find("pending");
  if (chunks == j.end() || pending == j.end() || !chunks->is_array() || !pending->is_array())
    return bad("index: chunks or pending is not an array");
  for (const auto& c : *chunks) {
    PartialChunk pc;
    if (!c.is_object() || !str(c, "recording_id", &pc.recording_id) || !u64(c, "offset", &pc.offset) ||
        !u64(c, "length", &pc.length))
      return bad("index: a chunk without recording_id, offset or length");
    if (!safe_id(pc.recording_id)) return bad("index: chunk recording id not usable as a file name");
    if (pc.length > body.size()) return bad("chunk of " + pc.recording_id + " runs past the body");
    out.data.push_back(body.substr(0, pc.length));
    body.remove_prefix(pc.length);
    ix.chunks.push_back(std::move(pc));
  }
  for (const auto& p : *pending) {
    if (!p.is_string() || !safe_id(p.get_ref<const std::string&>()))
      return bad("index: a pending entry is not a recording id usable as a file name");
    ix.pending.push_back(p.get<std::string>());
  }
  if (!body.empty()) return bad(std::to_string(body.size()) + " bytes after the last chunk");
  return out;
}

std::map<std::string, std::string> PartialInfo::to_metadata() const {
  return {{"node", node},
          {"region", region},
          {"run", std::to_string(run)},
          {"seq", std::to_string(seq)},
          {"length", std::to_string(length)},
          {"sha256", sha256},
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
  p.sha256 = get("sha256");
  auto run = parse_u64(get("run"));
  auto seq = parse_u64(get("seq"));
  auto length = parse_u64(get("length"));
  auto segment = parse_i64(get("segment-ms"));
  if (!run || !seq || !length || !segment || p.node.empty() || p.sha256.size() != 64) return std::nullopt;
  p.run = *run;
  p.seq = *seq;
  p.length = *length;
  p.segment_ms = *segment;
  return p;
}

std::string partial_file_name(std::uint64_t run, std::uint64_t seq) {
  return std::to_string(run) + "." + std::to_string(seq) + ".part";
}

std::optional<PartialFileName> parse_partial_file_name(std::string_view name) {
  constexpr std::string_view kExt = ".part";
  if (name.size() <= kExt.size() || name.substr(name.size() - kExt.size()) != kExt) return std::nullopt;
  name.remove_suffix(kExt.size());
  return parse_run_seq(name);
}

std::string partial_entry_id(std::uint64_t run, std::uint64_t seq) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "partial.%llu.%08llu", static_cast<unsigned long long>(run),
                static_cast<unsigned long long>(seq));
  return buf;
}

std::optional<PartialFileName> parse_partial_entry_id(std::string_view id) {
  constexpr std::string_view kHead = "partial.";
  if (id.substr(0, kHead.size()) != kHead) return std::nullopt;
  id.remove_prefix(kHead.size());
  return parse_run_seq(id);
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
    if (options_.run != 0 && name->run != options_.run) {
      o.delivered = true;
      o.verified = "dropped: run " + std::to_string(name->run) + " is over (this process ships run " +
                   std::to_string(options_.run) + ")";
      std::error_code ec;
      std::filesystem::remove(o.path, ec);
      continue;
    }
    bool ok = false;
    std::string body = read_file(o.path, &ok);
    if (!ok)
      return fail(DeliveryOutcome::Kind::kPermanent, "Client.File", "cannot read partial " + o.path);
    // One pass over the body: its hash is the request's payload hash (checked by the server),
    // the checksum header and the metadata an adopter checks.
    std::string raw = sha256_raw(body);
    std::string sum = hex(raw);
    if (!o.sha256.empty() && sum != o.sha256)
      return fail(DeliveryOutcome::Kind::kPermanent, "Client.Corrupt",
                  "partial " + o.path + " no longer matches its SHA-256 (local disk damage): not shipped");
    PartialInfo info;
    info.node = options_.node;
    info.region = options_.region;
    info.run = name->run;
    info.seq = name->seq;
    info.length = body.size();
    info.sha256 = sum;
    info.segment_ms = options_.segment_ms;
    PutObjectOptions put;
    put.content_type = "application/octet-stream";
    put.metadata = info.to_metadata();
    put.content_md5 = false;
    put.sha256_raw = raw;
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
    std::filesystem::remove(o.path, ec);  // shipped and verified: the spools still have these bytes
  }
  entry.bucket = options_.client.bucket;
  return DeliveryOutcome::delivered();
}

// ---------------------------------------------------------------------------

common::Status delete_key_versions(S3Client& client, std::string_view key) {
  auto versions = client.list_object_versions(key);
  if (!versions) return versions.error().to_error();
  for (const auto& v : *versions) {
    if (v.key != key) continue;
    auto d = client.delete_object(v.key, v.version_id);
    if (!d && d.error().http_status != 404) return d.error().to_error();
  }
  return common::Ok{};
}

common::Status delete_run(S3Client& client, std::string_view prefix) {
  auto versions = client.list_object_versions(prefix);
  if (!versions) return versions.error().to_error();
  std::vector<std::pair<int, ObjectVersion>> order;
  for (const auto& v : *versions) {
    auto k = parse_partial_key(v.key);
    if (!k) continue;  // never anything that is not ours
    order.emplace_back(k->lease ? 2 : k->adopted ? 1 : 0, v);
  }
  // Partials in key (= seq) order, then the adopter's record, the lease last.
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second.key < b.second.key;
  });
  for (const auto& [rank, v] : order) {
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
                                            const std::function<void(const DeliveryEntry&)>& checkpoint) {
  for (auto& o : entry.objects) {
    if (o.delivered) continue;
    // Only ever a key of the partials layout: never anything else in the bucket.
    if (!parse_partial_key(o.key))
      return fail(DeliveryOutcome::Kind::kPermanent, "Client.BadKey", "not a partials key: " + o.key);
    auto st = delete_key_versions(*client_, o.key);
    if (!st)
      return fail(DeliveryOutcome::Kind::kRetry, st.error().code,
                  "delete partial s3://" + client_->config().bucket + "/" + o.key + ": " + st.error().message);
    o.delivered = true;
    o.verified = "deleted";
    checkpoint(entry);
  }
  entry.bucket = client_->config().bucket;
  return DeliveryOutcome::delivered();
}

DeliveryEntry partials_delete_entry(std::uint64_t run, const std::vector<std::string>& keys) {
  DeliveryEntry e;
  e.recording_id = "partials-delete." + std::to_string(run);
  e.sink = std::string(kPartialsDeleteSink);
  for (const auto& k : keys) {
    DeliveryObject o;
    o.key = k;
    o.content_type = "application/octet-stream";
    e.objects.push_back(std::move(o));
  }
  return e;
}

}  // namespace sgw::storage
