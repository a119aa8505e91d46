#include "storage/delivery_entry.h"

#include <charconv>

#include <nlohmann/json.hpp>

#include "storage/sigv4.h"

namespace sgw::storage {

namespace {

constexpr std::string_view kMagic = "SGWDQ1 ";
constexpr std::size_t kMaxEntryBytes = 1 << 20;

using nlohmann::json;

common::Error corrupt(const std::string& source, const std::string& why) {
  return common::make_error("delivery.corrupt", "delivery entry " + source + ": " + why);
}

template <typename T>
bool read(const json& j, const char* key, T* out) {
  auto it = j.find(key);
  if (it == j.end()) return false;
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) return false;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) return false;
  } else {
    if (!it->is_number_integer()) return false;
  }
  *out = it->template get<T>();
  return true;
}

}  // namespace

std::string_view to_string(DeliveryState state) {
  switch (state) {
    case DeliveryState::kQueued: return "queued";
    case DeliveryState::kUploading: return "uploading";
    case DeliveryState::kDelivered: return "delivered";
    case DeliveryState::kFailed: return "failed";
  }
  return "queued";
}

std::optional<DeliveryState> parse_delivery_state(std::string_view text) {
  for (auto s : {DeliveryState::kQueued, DeliveryState::kUploading, DeliveryState::kDelivered,
                 DeliveryState::kFailed})
    if (to_string(s) == text) return s;
  return std::nullopt;
}

std::string entry_file_name(std::string_view recording_id, std::string_view sink) {
  return std::string(recording_id) + "." + std::string(sink) + ".dq";
}

std::string encode_entry(const DeliveryEntry& e) {
  json objects = json::array();
  for (const auto& o : e.objects) {
    json parts = json::array();
    for (const auto& p : o.parts)
      parts.push_back({{"number", p.number}, {"size", p.size}, {"etag", p.etag},
                       {"checksum_sha256", p.checksum_sha256}});
    objects.push_back({{"path", o.path}, {"key", o.key}, {"content_type", o.content_type},
                       {"upload_id", o.upload_id}, {"parts", parts}, {"delivered", o.delivered},
                       {"size", o.size}, {"etag", o.etag}, {"version_id", o.version_id},
                       {"sha256", o.sha256}, {"verified", o.verified}});
  }
  json j = {{"recording_id", e.recording_id},
            {"sink", e.sink},
            {"state", std::string(to_string(e.state))},
            {"start_unix_ms", e.start_unix_ms},
            {"end_unix_ms", e.end_unix_ms},
            {"conversation_id", e.conversation_id},
            {"call_id", e.call_id},
            {"bucket", e.bucket},
            {"partials_prefix", e.partials_prefix},
            {"order_key", e.order_key},
            {"payload", e.payload},
            {"overrides", {{"retention_mode", e.overrides.retention_mode},
                           {"retention_days", e.overrides.retention_days},
                           {"tags", e.overrides.tags}}},
            {"objects", objects},
            {"attempts", e.attempts},
            {"last_error", e.last_error},
            {"last_error_code", e.last_error_code},
            {"created_unix_ms", e.created_unix_ms},
            {"updated_unix_ms", e.updated_unix_ms},
            {"next_attempt_unix_ms", e.next_attempt_unix_ms},
            {"delivered_unix_ms", e.delivered_unix_ms},
            {"local_deleted_unix_ms", e.local_deleted_unix_ms}};
  // Invalid UTF-8 (an odd error message) is replaced, never thrown.
  std::string body = j.dump(1, ' ', false, json::error_handler_t::replace) + "\n";
  return std::string(kMagic) + std::to_string(body.size()) + " " + sha256_hex(body) + "\n" + body;
}

common::Result<DeliveryEntry> decode_entry(std::string_view bytes, const std::string& source) {
  if (bytes.size() > kMaxEntryBytes) return corrupt(source, "larger than 1 MiB");
  if (bytes.substr(0, kMagic.size()) != kMagic) return corrupt(source, "no SGWDQ1 header");
  auto nl = bytes.find('\n');
  if (nl == std::string_view::npos) return corrupt(source, "torn header");
  std::string_view header = bytes.substr(kMagic.size(), nl - kMagic.size());
  auto sp = header.find(' ');
  if (sp == std::string_view::npos) return corrupt(source, "bad header");
  std::size_t length = 0;
  auto [ptr, ec] = std::from_chars(header.data(), header.data() + sp, length);
  if (ec != std::errc() || ptr != header.data() + sp) return corrupt(source, "bad length");
  std::string_view sum = header.substr(sp + 1);
  std::string_view body = bytes.substr(nl + 1);
  if (body.size() != length)
    return corrupt(source, "length " + std::to_string(body.size()) + ", header says " +
                               std::to_string(length) + " (torn write?)");
  if (sha256_hex(body) != sum) return corrupt(source, "checksum mismatch");
  json j = json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return corrupt(source, "not a JSON object");
  DeliveryEntry e;
  std::string state;
  if (!read(j, "recording_id", &e.recording_id) || e.recording_id.empty() ||
      !read(j, "sink", &e.sink) || e.sink.empty() || !read(j, "state", &state))
    return corrupt(source, "recording_id, sink or state missing");
  auto st = parse_delivery_state(state);
  if (!st) return corrupt(source, "unknown state '" + state + "'");
  e.state = *st;
  read(j, "start_unix_ms", &e.start_unix_ms);
  read(j, "end_unix_ms", &e.end_unix_ms);
  read(j, "conversation_id", &e.conversation_id);
  read(j, "call_id", &e.call_id);  // absent in entries written before it existed: ""
  read(j, "bucket", &e.bucket);
  read(j, "partials_prefix", &e.partials_prefix);
  read(j, "order_key", &e.order_key);
  read(j, "payload", &e.payload);
  read(j, "attempts", &e.attempts);
  read(j, "last_error", &e.last_error);
  read(j, "last_error_code", &e.last_error_code);
  read(j, "created_unix_ms", &e.created_unix_ms);
  read(j, "updated_unix_ms", &e.updated_unix_ms);
  read(j, "next_attempt_unix_ms", &e.next_attempt_unix_ms);
  read(j, "delivered_unix_ms", &e.delivered_unix_ms);
  read(j, "local_deleted_unix_ms", &e.local_deleted_unix_ms);
  // Absent in entries written before per-recording overrides existed: none.
  if (auto ov = j.find("overrides"); ov != j.end()) {
    if (!ov->is_object()) return corrupt(source, "overrides is not an object");
    read(*ov, "retention_mode", &e.overrides.retention_mode);
    read(*ov, "retention_days", &e.overrides.retention_days);
    const auto& m = e.overrides.retention_mode;
    if (!m.empty() && m != "COMPLIANCE" && m != "GOVERNANCE")
      return corrupt(source, "overrides.retention_mode '" + m + "'");
    if (auto t = ov->find("tags"); t != ov->end()) {
      if (!t->is_object()) return corrupt(source, "overrides.tags is not an object");
      for (const auto& [k, v] : t->items()) {
        if (!v.is_string()) return corrupt(source, "overrides.tags." + k + " is not a string");
        e.overrides.tags[k] = v.get<std::string>();
      }
    }
  }
  auto objs = j.find("objects");
  if (objs == j.end() || !objs->is_array()) return corrupt(source, "objects missing");
  for (const auto& jo : *objs) {
    if (!jo.is_object()) return corrupt(source, "an object is not a JSON object");
    DeliveryObject o;
    if (!read(jo, "path", &o.path) || !read(jo, "key", &o.key))
      return corrupt(source, "an object has no path or key");
    read(jo, "content_type", &o.content_type);
    read(jo, "upload_id", &o.upload_id);
    read(jo, "delivered", &o.delivered);
    read(jo, "size", &o.size);
    read(jo, "etag", &o.etag);
    read(jo, "version_id", &o.version_id);
    read(jo, "sha256", &o.sha256);
    read(jo, "verified", &o.verified);
    if (auto ps = jo.find("parts"); ps != jo.end() && ps->is_array())
      for (const auto& jp : *ps) {
        if (!jp.is_object()) continue;
        DeliveryPart p;
        read(jp, "number", &p.number);
        read(jp, "size", &p.size);
        read(jp, "etag", &p.etag);
        read(jp, "checksum_sha256", &p.checksum_sha256);
        o.parts.push_back(p);
      }
    e.objects.push_back(std::move(o));
  }
  return e;
}

}  // namespace sgw::storage
