#include "storage/webhook_event.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <sstream>
#include <utility>

#include "common/ids.h"
#include "storage/sigv4.h"

namespace sgw::storage {

namespace {

// The stage of each type: the second component of its id (see the header).
constexpr std::array<std::pair<std::string_view, std::string_view>, 6> kStages{{
    {"session.started", "10"},
    {"session.updated", "20"},
    {"session.ended", "30"},
    {"recording.published", "40"},
    {"recording.failed", "45"},
    {"recording.delivered", "50"},
}};

// An id becomes a file name in the queue folder: nothing that could leave it.
bool safe_component(std::string_view s) {
  return !s.empty() && s.size() <= 128 && s.front() != '.' &&
         std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                  c == '_' || c == '.';
         });
}

}  // namespace

std::string event_id(const WebhookEvent& e) {
  for (const auto& [type, stage] : kStages)
    if (type == e.type) return e.recording_id + "." + std::string(stage) + (e.sub.empty() ? "" : "." + e.sub);
  return {};
}

nlohmann::json event_document(const WebhookEvent& e, const std::string& node, const std::string& region) {
  return {{"id", event_id(e)},
          {"type", e.type},
          {"time", e.time.empty() ? common::utc_now_iso8601() : e.time},
          {"recording_id", e.recording_id},
          {"conversation_id", e.conversation_id},
          {"call_id", e.call_id},
          {"gateway", {{"node", node}, {"region", region}}},
          {"data", e.data}};
}

common::Result<DeliveryEntry> event_entry(const WebhookEvent& e, const std::string& node, const std::string& region) {
  std::string id = event_id(e);
  if (id.empty()) return common::make_error("event.invalid", "unknown event type '" + e.type + "'");
  if (!safe_component(e.recording_id) || (!e.sub.empty() && !safe_component(e.sub)))
    return common::make_error("event.invalid", e.type + ": recording id or sub not usable in a file name");
  DeliveryEntry entry;
  entry.recording_id = id;
  entry.sink = std::string(kWebhookSink);
  entry.order_key = e.recording_id;
  entry.conversation_id = e.conversation_id;
  entry.payload = event_document(e, node, region).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return entry;
}

WebhookEvent published_event(const std::string& recording_id, const std::string& conversation_id,
                             const std::string& call_id, const std::string& json_path) {
  WebhookEvent e;
  e.type = "recording.published";
  e.recording_id = recording_id;
  e.conversation_id = conversation_id;
  e.call_id = call_id;
  std::ifstream in(json_path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  auto j = nlohmann::json::parse(text.str(), nullptr, false);
  if (!in || j.is_discarded() || !j.is_object()) {
    e.data = {{"json", {{"path", json_path}}}, {"error", "recording JSON " + json_path + " unreadable"}};
    return e;
  }
  nlohmann::json audio = nlohmann::json::array();
  if (auto a = j.find("audio"); a != j.end() && a->is_array())
    for (const auto& f : *a)
      if (f.is_object())
        audio.push_back({{"file", f.value("file", "")}, {"format", f.value("format", "")},
                         {"size_bytes", f.value("size_bytes", std::uint64_t{0})}, {"sha256", f.value("sha256", "")},
                         {"duration_ms", f.value("duration_ms", std::int64_t{0})}});
  e.data = {{"complete", j.value("complete", false)},
            {"json", {{"path", json_path}, {"size_bytes", text.str().size()}, {"sha256", sha256_hex(text.str())}}},
            {"audio", audio}};
  return e;
}

namespace {

WebhookEvent entry_event(const char* type, const DeliveryEntry& entry) {
  WebhookEvent e;
  e.type = type;
  e.recording_id = entry.recording_id;
  e.conversation_id = entry.conversation_id;
  e.call_id = entry.call_id;
  e.sub = entry.sink;
  e.data = {{"sink", entry.sink}, {"bucket", entry.bucket}};
  return e;
}

}  // namespace

WebhookEvent delivered_event(const DeliveryEntry& entry) {
  WebhookEvent e = entry_event("recording.delivered", entry);
  nlohmann::json objects = nlohmann::json::array();
  for (const auto& o : entry.objects) {
    nlohmann::json j = {{"key", o.key},   {"version_id", o.version_id}, {"size_bytes", o.size},
                        {"sha256", o.sha256}, {"lock_mode", nullptr},   {"retain_until", nullptr}};
    // "... retention=COMPLIANCE@2031-12-04T10:00:00Z ...": what the sink verified on the object.
    if (auto at = o.verified.find("retention="); at != std::string::npos) {
      std::string r = o.verified.substr(at + 10, o.verified.find(' ', at) - at - 10);
      if (auto sep = r.find('@'); sep != std::string::npos) {
        j["lock_mode"] = r.substr(0, sep);
        j["retain_until"] = r.substr(sep + 1);
      }
    }
    objects.push_back(std::move(j));
  }
  e.data["objects"] = objects;
  return e;
}

WebhookEvent failed_event(const DeliveryEntry& entry, const std::string& sink_bucket) {
  WebhookEvent e = entry_event("recording.failed", entry);
  if (entry.bucket.empty()) e.data["bucket"] = sink_bucket;
  e.data["code"] = entry.last_error_code;
  e.data["error"] = entry.last_error;
  e.data["attempts"] = entry.attempts;
  return e;
}

}  // namespace sgw::storage
