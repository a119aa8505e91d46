#include "storage/partials.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>

#include "common/logging.h"
#include "recording/spool_format.h"

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
std::optional<RunSeq> parse_run_seq(std::string_view s) {
  auto dot = s.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  auto run = parse_u64(s.substr(0, dot));
  auto seq = parse_u64(s.substr(dot + 1));
  if (!run || !seq) return std::nullopt;
  return RunSeq{*run, *seq};
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

std::string hex8(std::uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

std::optional<std::uint32_t> parse_hex8(std::string_view s) {
  if (s.size() != 8) return std::nullopt;
  std::uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::uint32_t crc_of(std::string_view data) {
  return recording::spool::crc32c({reinterpret_cast<const std::uint8_t*>(data.data()), data.size()});
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

std::string encode_partial_index(const PartialIndex& index) {
  nlohmann::json chunks = nlohmann::json::array();
  for (const auto& c : index.chunks)
    chunks.push_back(
        {{"recording_id", c.recording_id}, {"offset", c.offset}, {"length", c.length}, {"crc32c", hex8(c.crc32c)}});
  nlohmann::json j = {{"node", index.node},         {"region", index.region},     {"run", index.run},
                      {"seq", index.seq},           {"unix_ms", index.unix_ms},   {"segment_ms", index.segment_ms},
                      {"chunks", std::move(chunks)}, {"pending", index.pending}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string encode_partial_footer(std::string_view index_json) {
  char digits[16];
  std::snprintf(digits, sizeof digits, "%012llu", static_cast<unsigned long long>(index_json.size()));
  return std::string(kPartialFooterTag) + digits + " " + hex8(crc_of(index_json)) + "\n";
}

std::string encode_partial(PartialIndex index, const std::vector<std::string_view>& data) {
  std::string body(kPartialMagic);
  for (std::size_t i = 0; i < index.chunks.size() && i < data.size(); ++i) {
    index.chunks[i].crc32c = crc_of(data[i]);
    body += data[i];
  }
  std::string json = encode_partial_index(index);
  body += json;
  body += encode_partial_footer(json);
  return body;
}

common::Result<DecodedPartial> decode_partial(std::string_view body) {
  auto bad = [](std::string what) { return common::make_error("partial.malformed", std::move(what)); };
  if (body.substr(0, kPartialMagic.size()) != kPartialMagic) return bad("no SGWPART2 head");
  if (body.size() < kPartialMagic.size() + kPartialFooterSize) return bad("shorter than its head and footer");
  const std::string_view footer = body.substr(body.size() - kPartialFooterSize);
  if (footer.substr(0, kPartialFooterTag.size()) != kPartialFooterTag || footer.back() != '\n' ||
      footer[kPartialFooterTag.size() + 12] != ' ')
    return bad("no SGWIDX footer");
  auto len = parse_u64(footer.substr(kPartialFooterTag.size(), 12));
  auto index_crc = parse_hex8(footer.substr(kPartialFooterTag.size() + 13, 8));
  const std::uint64_t room = body.size() - kPartialMagic.size() - kPartialFooterSize;
  if (!len || !index_crc || *len > room) return bad("footer: index length or CRC missing, or beyond the body");
  const std::string_view index_json = body.substr(body.size() - kPartialFooterSize - *len, *len);
  if (crc_of(index_json) != *index_crc) return bad("index CRC-32C differs from the footer's");
  std::string_view data = body.substr(kPartialMagic.size(), room - *len);
  auto j = nlohmann::json::parse(index_json, nullptr, false);
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
    std::string crc;
    if (!c.is_object() || !str(c, "recording_id", &pc.recording_id) || !u64(c, "offset", &pc.offset) ||
        !u64(c, "length", &pc.length) || !str(c, "crc32c", &crc))
      return bad("index: a chunk without recording_id, offset, length or crc32c");
    auto sum = parse_hex8(crc);
    if (!sum) return bad("index: chunk crc32c is not 8 hex digits");
    pc.crc32c = *sum;
    if (!safe_id(pc.recording_id)) return bad("index: chunk recording id not usable as a file name");
    if (pc.length > data.size()) return bad("chunk of " + pc.recording_id + " runs past the chunks' bytes");
    const std::string_view bytes = data.substr(0, pc.length);
    data.remove_prefix(pc.length);
    const bool damaged = crc_of(bytes) != pc.crc32c;
    out.data.push_back(damaged ? std::string_view() : bytes);
    out.damaged.push_back(damaged);
    ix.chunks.push_back(std::move(pc));
  }
  for (const auto& p : *pending) {
    if (!p.is_string() || !safe_id(p.get_ref<const std::string&>()))
      return bad("index: a pending entry is not a recording id usable as a file name");
    ix.pending.push_back(p.get<std::string>());
  }
  if (!data.empty()) return bad(std::to_string(data.size()) + " bytes between the last chunk and the index");
  return out;
}

PartialBody::PartialBody(PartialIndex index, std::vector<int> fds) : index_(std::move(index)), fds_(std::move(fds)) {
  fds_.resize(index_.chunks.size(), -1);
  data_end_ = kPartialMagic.size();
  for (const auto& c : index_.chunks) data_end_ += c.length;
  index_size_ = encode_partial_index(index_).size();  // the CRCs are fixed-width: the same size once known
  size_ = data_end_ + index_size_ + kPartialFooterSize;
  crc_ = recording::spool::crc32c_init();
}

PartialBody::~PartialBody() {
  for (int fd : fds_)
    if (fd >= 0) ::close(fd);
}

std::int64_t PartialBody::read(std::uint64_t pos, char* buf, std::size_t n) {
  if (pos == 0) {  // the first read, or curl's rewind: start again
    pos_ = 0;
    chunk_ = 0;
    in_chunk_ = 0;
    crc_ = recording::spool::crc32c_init();
    tail_.clear();
  }
  if (pos != pos_) return -ESPIPE;
  if (n == 0 || pos >= size_) return -EINVAL;
  std::size_t got = 0;
  if (pos < kPartialMagic.size()) {
    got = std::min<std::size_t>(n, kPartialMagic.size() - pos);
    std::memcpy(buf, kPartialMagic.data() + pos, got);
  } else if (pos < data_end_) {
    // Chunks are read in order; a finished chunk's CRC goes into the index.
    auto finish_done = [this] {
      while (chunk_ < index_.chunks.size() && in_chunk_ == index_.chunks[chunk_].length) {
        index_.chunks[chunk_].crc32c = recording::spool::crc32c_final(crc_);
        crc_ = recording::spool::crc32c_init();
        in_chunk_ = 0;
        ++chunk_;
      }
    };
    finish_done();
    if (chunk_ >= index_.chunks.size()) return -EIO;
    const auto& c = index_.chunks[chunk_];
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(n, c.length - in_chunk_));
    ssize_t r;
    do {
      r = ::pread(fds_[chunk_], buf, want, static_cast<off_t>(c.offset + in_chunk_));
    } while (r < 0 && errno == EINTR);
    if (r < 0) return -errno;
    if (r == 0) return -EIO;  // the spool ends before the range it had: never normal
    got = static_cast<std::size_t>(r);
    crc_ = recording::spool::crc32c_extend(crc_, {reinterpret_cast<const std::uint8_t*>(buf), got});
    in_chunk_ += got;
    finish_done();
  } else {
    if (tail_.empty()) {
      if (chunk_ != index_.chunks.size()) return -EIO;
      tail_ = encode_partial_index(index_);
      if (tail_.size() != index_size_) return -EPROTO;
      tail_ += encode_partial_footer(tail_);
    }
    const std::uint64_t at = pos - data_end_;
    got = std::min<std::size_t>(n, tail_.size() - at);
    std::memcpy(buf, tail_.data() + at, got);
  }
  pos_ += got;
  return static_cast<std::int64_t>(got);
}

void PartialBodies::add(const std::string& entry_id, std::shared_ptr<PartialBody> body) {
  std::lock_guard lock(mutex_);
  bodies_[entry_id] = std::move(body);
}

std::shared_ptr<PartialBody> PartialBodies::find(const std::string& entry_id) const {
  std::lock_guard lock(mutex_);
  auto it = bodies_.find(entry_id);
  return it == bodies_.end() ? nullptr : it->second;
}

void PartialBodies::remove(const std::string& entry_id) {
  std::lock_guard lock(mutex_);
  bodies_.erase(entry_id);
}

std::size_t PartialBodies::size() const {
  std::lock_guard lock(mutex_);
  return bodies_.size();
}

std::map<std::string, std::string> PartialInfo::to_metadata() const {
  return {{"node", node},
          {"region", region},
          {"run", std::to_string(run)},
          {"seq", std::to_string(seq)},
          {"length", std::to_string(length)},
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
  auto run = parse_u64(get("run"));
  auto seq = parse_u64(get("seq"));
  auto length = parse_u64(get("length"));
  auto segment = parse_i64(get("segment-ms"));
  if (!run || !seq || !length || !segment || p.node.empty()) return std::nullopt;
  p.run = *run;
  p.seq = *seq;
  p.length = *length;
  p.segment_ms = *segment;
  return p;
}

std::string partial_entry_id(std::uint64_t run, std::uint64_t seq) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "partial.%llu.%08llu", static_cast<unsigned long long>(run),
                static_cast<unsigned long long>(seq));
  return buf;
}

std::optional<RunSeq> parse_partial_entry_id(std::string_view id) {
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
    auto id = parse_partial_entry_id(entry.recording_id);
    if (!id)
      return fail(DeliveryOutcome::Kind::kPermanent, "Client.Entry", "not a partial's entry: " + entry.recording_id);
    if (options_.run != 0 && id->run != options_.run) {
      o.delivered = true;
      o.verified = "dropped: run " + std::to_string(id->run) + " is over (this process ships run " +
                   std::to_string(options_.run) + ")";
      continue;
    }
    std::shared_ptr<PartialBody> body = options_.bodies ? options_.bodies->find(entry.recording_id) : nullptr;
    if (!body) {
      // Never expected within a run: said loudly, and the run's next partial carries on.
      common::logger("shipper")->error("{}: its body is not held by this process: not shipped", entry.recording_id);
      o.delivered = true;
      o.verified = "dropped: body not held by this process";
      continue;
    }
    PartialInfo info;
    info.node = options_.node;
    info.region = options_.region;
    info.run = id->run;
    info.seq = id->seq;
    info.length = body->size();
    info.segment_ms = options_.segment_ms;
    PutObjectOptions put;
    put.content_type = "application/octet-stream";
    put.metadata = info.to_metadata();
    auto r = client_->put_object_stream(o.key, *body, put);
    if (!r) return outcome_of(r.error());
    auto head = client_->head_object(o.key, r->version_id, false);
    if (!head) return outcome_of(head.error());
    auto seen = PartialInfo::from_metadata(head->metadata);
    if (head->size != body->size() || !seen || seen->length != body->size() || seen->seq != id->seq)
      return fail(DeliveryOutcome::Kind::kRetry, "VerifyFailed",
                  "HEAD s3://" + options_.client.bucket + "/" + o.key + ": size or metadata differs from what was sent");
    o.delivered = true;
    o.size = body->size();
    o.etag = head->etag;
    o.version_id = head->version_id;
    o.verified = "size";
    checkpoint(entry);
    options_.bodies->remove(entry.recording_id);  // the spools' descriptors are closed
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
