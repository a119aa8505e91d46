#include "metadata/cisco_headers.h"

#include <cstddef>
#include <optional>
#include <utility>

#include "common/strings.h"
#include "metadata/metadata_merge.h"
#include "metadata/text_util.h"

namespace sgw::metadata {

namespace {

using detail::add_warning;
using detail::sanitize_utf8;

constexpr std::size_t kMaxParticipants = 32;
constexpr std::string_view kCiscoEventKey = "cisco_participants";

// Splits a header value into comma-separated entries, ignoring commas inside quoted strings
// and <...> (RFC 3261 §7.3.1: a display name or URI may contain commas).
std::vector<std::string_view> split_entries(std::string_view v) {
  std::vector<std::string_view> out;
  bool in_quotes = false;
  bool in_angle = false;
  std::size_t start = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (in_quotes) {
      if (c == '\\') {
        ++i;  // quoted-pair; a trailing backslash just ends the loop
      } else if (c == '"') {
        in_quotes = false;
      }
    } else if (c == '"') {
      in_quotes = true;
    } else if (c == '<') {
      in_angle = true;
    } else if (c == '>') {
      in_angle = false;
    } else if (c == ',' && !in_angle) {
      out.push_back(v.substr(start, i - start));
      start = i + 1;
    }
  }
  out.push_back(v.substr(start));
  return out;
}

std::string unquote(std::string_view s) {
  s = common::trim(s);
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return std::string(s);
  std::string out;
  for (std::size_t i = 1; i + 1 < s.size(); ++i) {
    if (s[i] == '\\' && i + 2 < s.size()) ++i;
    out.push_back(s[i]);
  }
  return out;
}

struct Entry {
  std::string display_name;
  std::string uri;
  std::optional<std::string> media_index;
};

// name-addr / addr-spec with header parameters (RFC 3261 §20.10 / §25.1). Without <...>,
// everything after the first ';' is a header parameter, as in Cisco's
// `sip:708090@10.42.30.5;media-index="0"`.
std::optional<Entry> parse_entry(std::string_view e) {
  e = common::trim(e);
  if (e.empty()) return std::nullopt;
  Entry out;
  std::string_view params;
  // Find '<' outside a quoted display name.
  std::size_t lt = std::string_view::npos;
  bool in_quotes = false;
  for (std::size_t i = 0; i < e.size(); ++i) {
    if (in_quotes) {
      if (e[i] == '\\') {
        ++i;
      } else if (e[i] == '"') {
        in_quotes = false;
      }
    } else if (e[i] == '"') {
      in_quotes = true;
    } else if (e[i] == '<') {
      lt = i;
      break;
    }
  }
  if (lt != std::string_view::npos) {
    const std::size_t gt = e.find('>', lt + 1);
    if (gt == std::string_view::npos) return std::nullopt;
    out.display_name = unquote(e.substr(0, lt));
    out.uri = std::string(common::trim(e.substr(lt + 1, gt - lt - 1)));
    params = e.substr(gt + 1);
  } else {
    const std::size_t semi = e.find(';');
    out.uri = std::string(common::trim(e.substr(0, semi)));
    if (semi != std::string_view::npos) params = e.substr(semi);
  }
  // A URI needs a scheme: sip:, sips:, tel:.
  const std::size_t colon = out.uri.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == out.uri.size()) return std::nullopt;
  for (std::string_view p : common::split(params, ';')) {
    p = common::trim(p);
    const std::size_t eq = p.find('=');
    const std::string_view name = common::trim(p.substr(0, eq));
    if (eq != std::string_view::npos && common::iequals(name, "media-index")) {
      out.media_index = unquote(p.substr(eq + 1));
    }
  }
  return out;
}

}  // namespace

RecordingMetadata from_cisco_headers(const std::vector<std::string>& header_values, std::string_view call_id) {
  RecordingMetadata md;
  md.dialect = Dialect::kCiscoHeaders;
  md.data_mode = DataMode::kComplete;

  const std::string cid = sanitize_utf8(common::trim(call_id));
  Session session;
  session.id = cid;
  if (!cid.empty()) session.sip_session_ids.push_back(cid);
  md.sessions.push_back(std::move(session));

  for (const auto& value : header_values) {
    for (std::string_view raw : split_entries(value)) {
      if (common::trim(raw).empty()) continue;
      std::optional<Entry> e = parse_entry(raw);
      if (!e) {
        add_warning(md.warnings, "unparsable " + std::string(kCiscoParticipantHeader) + " entry '" +
                                     std::string(common::trim(raw).substr(0, 80)) + "'");
        continue;
      }
      if (md.participants.size() >= kMaxParticipants) {
        add_warning(md.warnings, "more than " + std::to_string(kMaxParticipants) + " Cisco participants; rest ignored");
        break;
      }
      Participant p;
      p.id = "cisco-" + std::to_string(md.participants.size());
      p.aors.push_back(sanitize_utf8(e->uri));
      p.display_name = sanitize_utf8(e->display_name);
      if (!p.display_name.empty()) p.names.push_back(LocalizedName{"", p.display_name});
      p.sessions.push_back(SessionAssociation{cid, std::nullopt, std::nullopt});
      if (e->media_index && !e->media_index->empty()) {
        const std::string idx = sanitize_utf8(*e->media_index);
        p.send.push_back(idx);
        bool known = false;
        for (const auto& s : md.streams) known = known || s.id == idx;
        if (!known) md.streams.push_back(Stream{idx, idx, cid, std::nullopt, {}});
      }
      md.participants.push_back(std::move(p));
    }
  }
  // Two-party forking: each participant hears what the others send.
  for (auto& p : md.participants) {
    for (const auto& other : md.participants) {
      if (&other == &p) continue;
      for (const auto& s : other.send) {
        bool dup = false;
        for (const auto& r : p.recv) dup = dup || r == s;
        for (const auto& own : p.send) dup = dup || own == s;
        if (!dup) p.recv.push_back(s);
      }
    }
  }
  return md;
}

namespace {

bool has(const std::vector<std::string>& v, const std::string& x) {
  for (const auto& e : v)
    if (e == x) return true;
  return false;
}

// Still in the call: no association, or one without a disassociate time.
bool present(const Participant& p) {
  if (p.sessions.empty()) return true;
  for (const auto& a : p.sessions)
    if (!a.disassociate_time) return true;
  return false;
}

}  // namespace

std::optional<RecordingMetadata> merge_cisco_headers(const RecordingMetadata* base,
                                                     const std::vector<std::string>& header_values,
                                                     std::string_view call_id, std::string_view time) {
  RecordingMetadata fresh = from_cisco_headers(header_values, call_id);
  if (base == nullptr) return fresh;
  if (base->dialect != Dialect::kCiscoHeaders) return std::nullopt;

  RecordingMetadata update;
  update.dialect = Dialect::kCiscoHeaders;
  update.data_mode = DataMode::kPartial;
  update.warnings = fresh.warnings;
  const std::string session_id = base->sessions.empty() ? fresh.sessions.front().id : base->sessions.front().id;
  const std::string when(time);
  std::size_t next_id = base->participants.size();
  auto unused_id = [&] {
    for (;; ++next_id) {
      std::string id = "cisco-" + std::to_string(next_id);
      bool taken = false;
      for (const auto& p : base->participants) taken = taken || p.id == id;
      for (const auto& p : update.participants) taken = taken || p.id == id;
      if (!taken) return id;
    }
  };

  bool changed = false;
  for (const auto& f : fresh.participants) {
    const Participant* known = nullptr;
    for (const auto& b : base->participants)
      if (present(b) && has(b.aors, f.aors.front())) known = &b;
    Participant u;
    u.aors = f.aors;
    u.display_name = f.display_name;
    u.names = f.names;
    u.send = f.send;
    if (known != nullptr) {
      u.id = known->id;
      for (const auto& s : f.send) changed = changed || !has(known->send, s);
      changed = changed || (!f.display_name.empty() && f.display_name != known->display_name);
    } else {
      u.id = unused_id();
      u.sessions.push_back(SessionAssociation{session_id, when, std::nullopt});
      changed = true;
    }
    update.participants.push_back(std::move(u));
  }
  // Whoever sent a media-index that the headers now give to another URI has left.
  for (const auto& b : base->participants) {
    if (!present(b)) continue;
    bool listed = false;
    bool replaced = false;
    for (const auto& f : fresh.participants) {
      listed = listed || has(b.aors, f.aors.front());
      for (const auto& s : f.send) replaced = replaced || has(b.send, s);
    }
    if (listed || !replaced) continue;
    Participant gone;
    gone.id = b.id;
    gone.sessions.push_back(SessionAssociation{session_id, std::nullopt, when});
    update.participants.push_back(std::move(gone));
    changed = true;
  }
  if (!changed) return std::nullopt;
  // Streams first seen here; everyone present hears what the others send.
  for (auto s : fresh.streams) {
    s.session_id = session_id;
    update.streams.push_back(std::move(s));
  }
  RecordingMetadata merged = merge(*base, update);
  for (auto& p : merged.participants) {
    if (!present(p)) continue;
    for (const auto& other : merged.participants) {
      if (&other == &p || !present(other)) continue;
      for (const auto& s : other.send)
        if (!has(p.recv, s) && !has(p.send, s)) p.recv.push_back(s);
    }
  }
  return merged;
}

nlohmann::json encode_cisco_event(const CiscoHeadersEvent& e) {
  return nlohmann::json{{"event", "metadata updated (" + std::string(kCiscoParticipantHeader) + ", " +
                                      std::to_string(e.values.size()) + " value(s))"},
                        {"time", e.time},
                        {std::string(kCiscoEventKey), e.values}};
}

std::optional<CiscoHeadersEvent> decode_cisco_event(const nlohmann::json& j) {
  if (!j.is_object()) return std::nullopt;
  const auto v = j.find(kCiscoEventKey);
  const auto t = j.find("time");
  if (v == j.end() || !v->is_array() || t == j.end() || !t->is_string()) return std::nullopt;
  CiscoHeadersEvent e;
  e.time = t->get<std::string>();
  for (const auto& x : *v) {
    if (!x.is_string()) return std::nullopt;
    e.values.push_back(x.get<std::string>());
  }
  return e;
}

}  // namespace sgw::metadata
