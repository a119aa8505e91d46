#include "storage/user_metadata.h"

#include <set>
#include <vector>

namespace sgw::storage {

namespace {

std::string text_of(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return {};
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_integer()) return std::to_string(it->get<std::int64_t>());
  return {};
}

// Cuts escaped text to at most `max` bytes without splitting a %XX escape.
std::string cut(std::string s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t n = max;
  if (n >= 1 && s[n - 1] == '%') n -= 1;
  else if (n >= 2 && s[n - 2] == '%') n -= 2;
  s.resize(n);
  return s;
}

}  // namespace

std::string metadata_escape(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size());
  for (unsigned char c : value) {
    if (c > 0x20 && c <= 0x7E && c != '%') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::size_t user_metadata_size(const std::map<std::string, std::string>& metadata) {
  std::size_t n = 0;
  for (const auto& [k, v] : metadata) n += k.size() + v.size();
  return n;
}

std::map<std::string, std::string> user_metadata(const nlohmann::json& doc, std::size_t reserve) {
  std::map<std::string, std::string> m;
  auto put = [&](const char* name, const std::string& value) {
    m[name] = cut(metadata_escape(value), kUserMetadataValueMax);
  };
  put("recording-id", text_of(doc, "recording_id"));
  put("conversation-id", text_of(doc, "conversation_id"));
  put("siprec-session-id", text_of(doc, "siprec_session_id"));
  put("call-id", text_of(doc, "recording_call_id"));
  put("start", text_of(doc, "start_time"));
  put("end", text_of(doc, "end_time"));
  put("duration-ms", text_of(doc, "duration_ms"));
  std::vector<std::string> codecs;
  if (auto s = doc.find("streams"); s != doc.end() && s->is_array())
    for (const auto& st : *s) {
      std::string c = text_of(st, "codec");
      if (!c.empty() && std::find(codecs.begin(), codecs.end(), c) == codecs.end()) codecs.push_back(c);
    }
  std::string codec;
  for (const auto& c : codecs) codec += (codec.empty() ? "" : ",") + c;
  put("codec", codec);
  nlohmann::json gw = doc.is_object() && doc.contains("gateway") ? doc["gateway"] : nlohmann::json::object();
  put("gateway-node", text_of(gw, "node"));
  put("gateway-region", text_of(gw, "region"));

  std::vector<std::string> aors;
  std::set<std::string> seen;
  if (auto p = doc.find("participants"); p != doc.end() && p->is_array())
    for (const auto& part : *p) {
      std::string aor = metadata_escape(text_of(part, "aor"));
      if (!aor.empty() && seen.insert(aor).second) aors.push_back(aor);
    }
  const std::string name = "participants";
  std::size_t used = user_metadata_size(m) + name.size() + kObjectSha256Bytes + reserve;
  std::size_t budget = kUserMetadataLimit > used ? kUserMetadataLimit - used : 0;
  std::string all;
  for (const auto& a : aors) all += (all.empty() ? "" : ",") + a;
  if (all.size() <= budget) {
    m[name] = all;
    return m;
  }
  // As many whole AoRs as fit with the ",+N" marker.
  std::string kept;
  std::size_t n_kept = 0;
  for (std::size_t i = 0; i < aors.size(); ++i) {
    std::string next = kept + (kept.empty() ? "" : ",") + aors[i];
    std::size_t left = aors.size() - i - 1;
    std::string marker = left ? ",+" + std::to_string(left) : "";
    if (next.size() + marker.size() > budget) break;
    kept = std::move(next);
    ++n_kept;
  }
  std::size_t dropped = aors.size() - n_kept;
  m[name] = kept.empty() ? "+" + std::to_string(dropped) : kept + ",+" + std::to_string(dropped);
  return m;
}

}  // namespace sgw::storage
