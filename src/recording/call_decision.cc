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

bool valid_tag_text(std::string_view s, std::size_t max) {
  if (s.size() > max) return false;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

// Reads the fields an answer and a stored decision share. Unknown keys are
// refused unless `extra` lists them (the stored form adds source/error/elapsed).
common::Result<CallDecision> read(const json& j, std::initializer_list<std::string_view> extra) {
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
        d.tags[tk] = tv.get<std::string>();
      }
    } else if (k == "key_prefix") {
      if (!v.is_string() || !valid_key_prefix(v.get<std::string>()))
        return bad(k, "expected path components of letters, digits, '.', '_' and '-' (at most 200 characters)");
      d.key_prefix = v.get<std::string>();
    } else if (k == "stream") {
      if (!v.is_object() || !v.contains("url") || !v["url"].is_string()) return bad(k, "expected an object with a \"url\" string");
      auto url = v["url"].get<std::string>();
      if (!common::istarts_with(url, "wss://") && !common::istarts_with(url, "ws://"))
        return bad(k, "url must start with ws:// or wss://");
      d.stream = v;
    } else if (std::find(extra.begin(), extra.end(), k) == extra.end()) {
      return bad(k, "unknown field");
    }
  }
  if (d.action == "reject" && d.sip_code == 0) d.sip_code = 603;
  if (d.action == "record" && d.sip_code != 0) return bad("sip_code", "only with \"action\": \"reject\"");
  return d;
}

}  // namespace

common::Result<CallDecision> parse_hook_answer(std::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return bad("answer", "not valid JSON");
  return read(j, {});
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
  if (!d.stream.is_null()) j["stream"] = d.stream;
  if (!d.error.empty()) j["error"] = d.error;
  return j;
}

common::Result<CallDecision> decode_decision(const json& j) {
  auto d = read(j, {"source", "error", "elapsed_ms"});
  if (!d) return d.error();
  if (auto s = j.find("source"); s != j.end() && s->is_string()) d->source = s->get<std::string>();
  if (auto e = j.find("error"); e != j.end() && e->is_string()) d->error = e->get<std::string>();
  if (auto e = j.find("elapsed_ms"); e != j.end() && e->is_number_integer()) d->elapsed_ms = e->get<std::int64_t>();
  return d;
}

}  // namespace sgw::recording
