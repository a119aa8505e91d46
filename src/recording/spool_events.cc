#include "recording/spool_events.h"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace sgw::recording {

namespace {

using nlohmann::json;

json parse_object(std::string_view text, std::string_view event) {
  auto j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return json();
  auto it = j.find("event");
  if (it == j.end() || !it->is_string() || it->get<std::string>() != event) return json();
  return j;
}

std::uint64_t u64(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
}

std::optional<std::uint64_t> opt_u64(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_unsigned()) return std::nullopt;
  return it->get<std::uint64_t>();
}

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void take_max(std::optional<std::uint64_t>& a, const std::optional<std::uint64_t>& b) {
  if (b && (!a || *b > *a)) a = b;
}

}  // namespace

void SpoolFault::merge(const SpoolFault& b) {
  bool b_newer = b.records_dropped + b.write_errors + b.sync_failures >=
                 records_dropped + write_errors + sync_failures;
  records_dropped = std::max(records_dropped, b.records_dropped);
  write_errors = std::max(write_errors, b.write_errors);
  sync_failures = std::max(sync_failures, b.sync_failures);
  if (b_newer && !b.error.empty()) error = b.error;
}

std::string SpoolFault::encode() const {
  return dump(json{{"event", kSpoolFaultEvent},
                   {"records_dropped", records_dropped},
                   {"write_errors", write_errors},
                   {"sync_failures", sync_failures},
                   {"error", error}});
}

std::string FinalizeFailure::encode() const {
  return dump(json{{"event", kFinalizeFailedEvent}, {"attempt", attempt}, {"error", error}});
}

void StreamCounters::merge(const StreamCounters& b) {
  for (const auto& [index, c] : b.streams) {
    auto& mine = streams[index];
    take_max(mine.wrong_source, c.wrong_source);
    take_max(mine.kernel_drops, c.kernel_drops);
    take_max(mine.srtp_auth_failures, c.srtp_auth_failures);
    take_max(mine.srtp_replays, c.srtp_replays);
  }
}

std::string StreamCounters::encode() const {
  json list = json::array();
  for (const auto& [index, c] : streams) {
    json s{{"index", index}};
    if (c.wrong_source) s["wrong_source"] = *c.wrong_source;
    if (c.kernel_drops) s["kernel_drops"] = *c.kernel_drops;
    if (c.srtp_auth_failures) s["srtp_auth_failures"] = *c.srtp_auth_failures;
    if (c.srtp_replays) s["srtp_replays"] = *c.srtp_replays;
    list.push_back(std::move(s));
  }
  return dump(json{{"event", kStreamCountersEvent}, {"streams", std::move(list)}});
}

std::string spool_event_name(std::string_view text) {
  auto j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return {};
  return str(j, "event");
}

std::optional<SpoolFault> decode_spool_fault(std::string_view text) {
  json j = parse_object(text, kSpoolFaultEvent);
  if (j.is_null()) return std::nullopt;
  return SpoolFault{u64(j, "records_dropped"), u64(j, "write_errors"), u64(j, "sync_failures"),
                    str(j, "error")};
}

std::optional<FinalizeFailure> decode_finalize_failure(std::string_view text) {
  json j = parse_object(text, kFinalizeFailedEvent);
  if (j.is_null()) return std::nullopt;
  return FinalizeFailure{u64(j, "attempt"), str(j, "error")};
}

std::optional<StreamCounters> decode_stream_counters(std::string_view text) {
  json j = parse_object(text, kStreamCountersEvent);
  if (j.is_null()) return std::nullopt;
  StreamCounters out;
  auto it = j.find("streams");
  if (it == j.end() || !it->is_array()) return out;
  for (const auto& s : *it) {
    if (!s.is_object()) continue;
    auto index = opt_u64(s, "index");
    if (!index || *index >= 256) continue;  // a stream index is a u8 in the spool
    StreamCounter c{opt_u64(s, "wrong_source"), opt_u64(s, "kernel_drops"), opt_u64(s, "srtp_auth_failures"),
                    opt_u64(s, "srtp_replays")};
    auto& mine = out.streams[static_cast<std::size_t>(*index)];
    take_max(mine.wrong_source, c.wrong_source);
    take_max(mine.kernel_drops, c.kernel_drops);
    take_max(mine.srtp_auth_failures, c.srtp_auth_failures);
    take_max(mine.srtp_replays, c.srtp_replays);
  }
  return out;
}

std::string NodeLost::encode() const {
  return dump(json{{"event", kNodeLostEvent},
                   {"node", node},
                   {"region", region},
                   {"adopted_by", adopted_by},
                   {"last_shipped_unix_ms", last_shipped_unix_ms},
                   {"partials", partials},
                   {"partials_skipped", partials_skipped},
                   {"problems", problems}});
}

std::optional<NodeLost> decode_node_lost(std::string_view text) {
  json j = parse_object(text, kNodeLostEvent);
  if (j.is_null()) return std::nullopt;
  NodeLost n;
  n.node = str(j, "node");
  n.region = str(j, "region");
  n.adopted_by = str(j, "adopted_by");
  auto it = j.find("last_shipped_unix_ms");
  if (it != j.end() && it->is_number_integer()) n.last_shipped_unix_ms = it->get<std::int64_t>();
  n.partials = u64(j, "partials");
  n.partials_skipped = u64(j, "partials_skipped");
  n.problems = str(j, "problems");
  return n;
}

std::string LiveStreamReport::encode() const {
  return dump(json{{"event", kLiveStreamEvent},
                   {"url", url},
                   {"protocol", protocol},
                   {"state", state},
                   {"connects", connects},
                   {"connect_failures", connect_failures},
                   {"reconnects", reconnects},
                   {"connections_lost", connections_lost},
                   {"frames_sent", frames_sent},
                   {"frames_dropped", frames_dropped},
                   {"outage_frames", outage_frames},
                   {"outage_ms", outage_frames * 20},
                   {"packets_dropped", packets_dropped},
                   {"latency_p50_ms", latency_p50_ms},
                   {"latency_p99_ms", latency_p99_ms},
                   {"latency_max_ms", latency_max_ms},
                   {"error", error}});
}

std::optional<LiveStreamReport> decode_live_stream(std::string_view text) {
  json j = parse_object(text, kLiveStreamEvent);
  if (j.is_null()) return std::nullopt;
  auto i64 = [&j](const char* k) -> std::int64_t {
    auto it = j.find(k);
    return it != j.end() && it->is_number_integer() ? it->get<std::int64_t>() : -1;
  };
  LiveStreamReport r;
  r.url = str(j, "url");
  r.protocol = str(j, "protocol");
  r.state = str(j, "state");
  r.connects = u64(j, "connects");
  r.connect_failures = u64(j, "connect_failures");
  r.reconnects = u64(j, "reconnects");
  r.connections_lost = u64(j, "connections_lost");
  r.frames_sent = u64(j, "frames_sent");
  r.frames_dropped = u64(j, "frames_dropped");
  r.outage_frames = u64(j, "outage_frames");
  r.packets_dropped = u64(j, "packets_dropped");
  r.latency_p50_ms = i64("latency_p50_ms");
  r.latency_p99_ms = i64("latency_p99_ms");
  r.latency_max_ms = i64("latency_max_ms");
  r.error = str(j, "error");
  return r;
}

}  // namespace sgw::recording
