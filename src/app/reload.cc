#include "app/reload.h"

#include <algorithm>
#include <sstream>

namespace sgw::app {

namespace {

template <typename T>
std::string text_of(const T& v) {
  std::ostringstream o;
  o << v;
  return o.str();
}
std::string text_of(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + ",";
  return s;
}
std::string text_of(const std::vector<ListenAddress>& v) {
  std::string s;
  for (const auto& x : v) s += x.to_string() + ",";
  return s;
}
std::string text_of(const std::vector<Config::S3FallbackBucket>& v) {
  std::string s;
  for (const auto& x : v) s += x.bucket + "@" + x.zone + ",";
  return s;
}
std::string text_of(const std::map<std::string, std::string>& v) {
  std::string s;
  for (const auto& [k, x] : v) s += k + "=" + x + ",";
  return s;
}

bool owned(const std::string& key, const std::vector<std::string>& keys) {
  return std::any_of(keys.begin(), keys.end(), [&](const std::string& k) {
    return k == key || (!k.empty() && k.back() == '.' && key.compare(0, k.size(), k) == 0);
  });
}

}  // namespace

void Reloader::add(std::string name, std::vector<std::string> keys, Hook hook) {
  hooks_.push_back({std::move(name), std::move(keys), std::move(hook)});
}

ReloadReport Reloader::reload(const Config& running, const Config& fresh) const {
  ReloadReport report;
  for (const auto& h : hooks_) h.hook(running, fresh, report);
  for (const auto& key : changed_keys(running, fresh)) {
    bool taken = std::any_of(hooks_.begin(), hooks_.end(), [&](const Entry& e) { return owned(key, e.keys); });
    if (!taken) report.not_reloadable.push_back(key);
  }
  return report;
}

std::vector<std::string> changed_keys(const Config& a, const Config& b) {
  std::vector<std::string> out;
  auto cmp = [&](const char* key, const auto& x, const auto& y) {
    if (text_of(x) != text_of(y)) out.emplace_back(key);
  };
#define SGW_CMP(key, field) cmp(key, a.field, b.field)
  SGW_CMP("node.name", node_name);
  SGW_CMP("node.region", region);
  SGW_CMP("sip.listen", listen);
  SGW_CMP("sip.max_sessions", max_sessions);
  SGW_CMP("sip.retry_after_s", retry_after_s);
  SGW_CMP("sip.max_message_bytes", max_message_bytes);
  SGW_CMP("sip.udp_receive_buffer_bytes", udp_receive_buffer_bytes);
  SGW_CMP("sip.answer_delay_ms", answer_delay_ms);
  SGW_CMP("sip.tcp_idle_timeout_s", tcp_idle_timeout_s);
  SGW_CMP("sip.tcp_message_timeout_s", tcp_message_timeout_s);
  SGW_CMP("sip.max_connections_per_source", max_connections_per_source);
  SGW_CMP("sip.min_session_expires_s", min_session_expires_s);
  SGW_CMP("media.address", media_address);
  SGW_CMP("media.rtp_ports", rtp_port_min);
  SGW_CMP("media.rtp_ports", rtp_port_max);
  SGW_CMP("media.workers", media_workers);
  SGW_CMP("media.timeout_s", media_timeout_s);
  SGW_CMP("media.max_paused_s", max_paused_s);
  SGW_CMP("media.latch", latch);
  SGW_CMP("media.codecs", codecs);
  SGW_CMP("media.srtp", srtp);
  SGW_CMP("recording.dir", recordings_dir);
  SGW_CMP("recording.spool_dir", spool_dir);
  SGW_CMP("recording.format", recording_format);
  SGW_CMP("recording.key_template", key_template);
  SGW_CMP("recording.spool_sync", spool_sync);
  SGW_CMP("recording.caller_channel", caller_channel);
  SGW_CMP("recording.multi_stream_mode", multi_stream_mode);
  SGW_CMP("recording.keep_spool", keep_spool);
  SGW_CMP("recording.finalize_workers", finalize_workers);
  SGW_CMP("recording.silence_warning_s", silence_warning_s);
  SGW_CMP("storage.queue_dir", queue_dir);
  SGW_CMP("storage.local_retention_days", local_retention_days);
  SGW_CMP("s3.bucket", s3_bucket);
  SGW_CMP("s3.endpoint", s3_endpoint);
  SGW_CMP("s3.region", s3_region);
  SGW_CMP("s3.prefix", s3_prefix);
  SGW_CMP("s3.key_template", s3_key_template);
  SGW_CMP("s3.retention_mode", s3_retention_mode);
  SGW_CMP("s3.tags", s3_tags);
  SGW_CMP("s3.access_key", s3_access_key);
  SGW_CMP("s3.zone", s3_zone);
  SGW_CMP("s3.fallback_buckets", s3_fallback_buckets);
  SGW_CMP("s3.fallback_after_s", s3_fallback_after_s);
  SGW_CMP("metadata.max_bytes", metadata_max_bytes);
  SGW_CMP("metadata.max_depth", metadata_max_depth);
  SGW_CMP("metadata.conversation_id_rules", conversation_id_rules);
  SGW_CMP("http.listen", http_listen);
  SGW_CMP("log.level", log_level);
  SGW_CMP("log.format", log_format);
  SGW_CMP("log.redact", redact_personal_data);
#undef SGW_CMP
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace sgw::app
