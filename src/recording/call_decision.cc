#include "recording/call_decision.h"

#include <algorithm>

#include "common/strings.h"
#include "recording/audio_writer.h"

namespace sgw::recording {

namespace {

using common::make_error;
using nlohmann::json;

constexpr std::size_t kMaxTags = 10;  // S3's limit per object

common::Error bad(const std::string& field, const std::string& what) {
  return make_error("hook.answer", field + ": " + what);
}

bool is_channel_layout(std::string_view s) {
  return s == "caller-left" || s == "caller-right" || s == "multichannel" || s == "mono-files";
}

// A key prefix is one or more path components of [A-Za-z0-9._-], no "." or "..".
bool valid_key_prefix(std::string_view s) {
  if (s.empty() || s.size() > 200) return false;
  for (const auto& part : common::split(s, '/')) {
    if (part.empty() || part == "." || part == "..") return false;
    for (char c : part)
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
            c == '_' || c == '-'))
        return false;
  }
  return true;
}

// S3 object tags (docs/integrations.md): at most `max` characters of valid
// UTF-8 (counted in code points, as S3 does), no control characters.
bool valid_tag_text(std::string_view s, std::size_t max) {
  std::size_t chars = 0;
  for (std::size_t i = 0; i < s.size(); ++chars) {
    auto u = static_cast<unsigned char>(s[i]);
    if (u < 0x20 || u == 0x7f) return false;
    std::size_t n = u < 0x80 ? 1 : (u >> 5) == 0x6 ? 2 : (u >> 4) == 0xe ? 3 : (u >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    if (n == 2 && u < 0xc2) return false;  // overlong
    i += n;
  }
  return chars <= max;
}

// The URL without its query and fragment (a token may live there).
std::string without_query(const std::string& url) { return url.substr(0, url.find_first_of("?#")); }

// `stored`: a decision read back from a spool, whose stream object an older
// version kept as answered (any field): fields other than ours are ignored.
common::Result<StreamOverride> read_stream(const json& v, bool stored) {
  StreamOverride s;
  if (v.is_null()) return s;  // no live stream for this call
  if (!v.is_object() || !v.contains("url") || !v["url"].is_string())
    return bad("stream", "expected null or an object with a \"url\" string");
  for (const auto& [k, f] : v.items()) {
    if (k == "url") {
      s.url = f.get<std::string>();
      if (!s.url.empty() && !common::istarts_with(s.url, "wss://") && !common::istarts_with(s.url, "ws://"))
        return bad("stream", "url must start with ws:// or wss:// (or be empty: no stream)");
      if (s.url.size() > 2048) return bad("stream", "url longer than 2048 characters");
    } else if (k == "protocol") {
      if (!f.is_string() || (f != "audiohook" && f != "plain")) return bad("stream", "protocol: expected audiohook or plain");
      s.protocol = f.get<std::string>();
    } else if (k == "api_key" || k == "organization_id") {
      if (!f.is_string() || f.get<std::string>().size() > 1024 || !valid_tag_text(f.get<std::string>(), 1024))
        return bad("stream", k + ": expected a string of at most 1024 printable characters");
      (k == "api_key" ? s.api_key : s.organization_id) = f.get<std::string>();
    } else if (!stored) {
      return bad("stream", k + ": unknown field (url, protocol, api_key, organization_id)");
    }
  }
  if (s.url.empty() && (s.protocol || s.api_key || s.organization_id))
    return bad("stream", "an empty url (no stream) with other fields");
  return s;
}

// Reads the fields an answer and a stored decision share. Unknown keys are
// refused, but for the ones the stored form adds (source/error/elapsed).
common::Result<CallDecision> read(const json& j, bool stored) {
  static constexpr std::string_view kStoredOnly[] = {"source", "error", "elapsed_ms"};
  if (!j.is_object()) return bad("answer", "expected a JSON object");
  CallDecision d;
  for (const auto& [k, v] : j.items()) {
    if (k == "action") {
      if (!v.is_string() || (v != "record" && v != "reject")) return bad(k, "expected \"record\" or \"reject\"");
      d.action = v.get<std::string>();
    } else if (k == "sip_code") {
      if (!v.is_number_integer() || (v != 403 && v != 480 && v != 603)) return bad(k, "expected 403, 480 or 603");
      d.sip_code = v.get<int>();
    } else if (k == "format") {
      if (!v.is_string() || !parse_audio_format(v.get<std::string>())) return bad(k, "expected wav, wav-ulaw, wav-alaw, flac or ogg-opus");
      d.format = v.get<std::string>();
    } else if (k == "channel_layout") {
      if (!v.is_string() || !is_channel_layout(v.get<std::string>()))
        return bad(k, "expected caller-left, caller-right, multichannel or mono-files");
      d.channel_layout = v.get<std::string>();
    } else if (k == "retention_days") {
      if (!v.is_number_unsigned() || v.get<std::uint64_t>() < 1 || v.get<std::uint64_t>() > 36500)
        return bad(k, "expected an integer from 1 to 36500");
      d.retention_days = v.get<std::uint32_t>();
    } else if (k == "retention_mode") {
      if (!v.is_string() || (v != "COMPLIANCE" && v != "GOVERNANCE")) return bad(k, "expected COMPLIANCE or GOVERNANCE");
      d.retention_mode = v.get<std::string>();
    } else if (k == "tags") {
      if (!v.is_object() || v.size() > kMaxTags) return bad(k, "expected an object of at most 10 string values");
      for (const auto& [tk, tv] : v.items()) {
        if (!tv.is_string() || tk.empty() || !valid_tag_text(tk, 128) || !valid_tag_text(tv.get<std::string>(), 256))
          return bad(k, "tag \"" + tk.substr(0, 64) + "\": names 1-128, values 0-256 printable characters");
        if (common::istarts_with(tk, "aws:")) return bad(k, "tag \"" + tk.substr(0, 64) + "\": the aws: prefix is reserved");
        d.tags[tk] = tv.get<std::string>();
      }
    } else if (k == "key_prefix") {
      if (!v.is_string() || !valid_key_prefix(v.get<std::string>()))
        return bad(k, "expected path components of letters, digits, '.', '_' and '-' (at most 200 characters)");
      d.key_prefix = v.get<std::string>();
    } else if (k == "stream") {
      auto st = read_stream(v, stored);
      if (!st) return st.error();
      d.stream = std::move(st).value();
    } else if (!stored || std::find(std::begin(kStoredOnly), std::end(kStoredOnly), k) == std::end(kStoredOnly)) {
      return bad(k, "unknown field");
    }
  }
  if (d.action == "reject" && d.sip_code == 0) d.sip_code = 603;
  if (d.action == "record" && d.sip_code != 0) return bad("sip_code", "only with \"action\": \"reject\"");
  return d;
}

}  // namespace

common::Result<CallDecision> parse_hook_answer(std::string_view body, const AnswerRules& rules) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return bad("answer", "not valid JSON");
  auto d = read(j, false);
  if (!d) return d;
  if (rules.retention_refused && (d->retention_days || d->retention_mode))
    return bad(d->retention_mode ? "retention_mode" : "retention_days",
               "s3.retention_mode is not configured (the bucket is not known to have Object Lock)");
  auto merged = rules.configured_tags;
  for (const auto& [k, v] : d->tags) merged[k] = v;
  if (merged.size() > kMaxTags)
    return bad("tags", std::to_string(merged.size()) + " tags with s3.tags (" +
                           std::to_string(rules.configured_tags.size()) + "); S3 takes at most 10");
  return d;
}

json encode_decision(const CallDecision& d) {
  json j = {{"source", d.source}, {"action", d.action}, {"elapsed_ms", d.elapsed_ms}};
  if (d.sip_code) j["sip_code"] = d.sip_code;
  if (d.format) j["format"] = *d.format;
  if (d.channel_layout) j["channel_layout"] = *d.channel_layout;
  if (d.retention_days) j["retention_days"] = *d.retention_days;
  if (d.retention_mode) j["retention_mode"] = *d.retention_mode;
  if (!d.tags.empty()) j["tags"] = d.tags;
  if (d.key_prefix) j["key_prefix"] = *d.key_prefix;
  if (d.stream) {
    if (d.stream->url.empty()) {
      j["stream"] = nullptr;
    } else {
      json st = {{"url", without_query(d.stream->url)}};
      if (d.stream->protocol) st["protocol"] = *d.stream->protocol;
      if (d.stream->organization_id) st["organization_id"] = *d.stream->organization_id;
      j["stream"] = st;
    }
  }
  if (!d.error.empty()) j["error"] = d.error;
  return j;
}

common::Result<CallDecision> decode_decision(const json& j) {
  auto d = read(j, true);
  if (!d) return d.error();
  if (auto s = j.find("source"); s != j.end() && s->is_string()) d->source = s->get<std::string>();
  if (auto e = j.find("error"); e != j.end() && e->is_string()) d->error = e->get<std::string>();
  if (auto e = j.find("elapsed_ms"); e != j.end() && e->is_number_integer()) d->elapsed_ms = e->get<std::int64_t>();
  return d;
}

}  // namespace sgw::recording
