#include "metadata/metadata_merge.h"

#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "metadata/text_util.h"

namespace sgw::metadata {

namespace {

template <typename T>
void set_if(std::optional<T>& dst, const std::optional<T>& src) {
  if (src) dst = src;
}

void set_if(std::string& dst, const std::string& src) {
  if (!src.empty()) dst = src;
}

using detail::append_unique;

void add_extensions(std::vector<Extension>& dst, const std::vector<Extension>& src) {
  std::unordered_set<std::string> seen;
  for (const auto& d : dst) seen.insert(d.xml);
  for (const auto& e : src) {
    if (seen.insert(e.xml).second) dst.push_back(e);
  }
}

// Merges `updates` into `dst` by id; ids are looked up through a map so a large update does
// not cost |dst| * |updates| comparisons. Entities without an id are always new (streams
// without an id are matched by label first).
template <typename T, typename MergeFn, typename FallbackFn>
void merge_by_id(std::vector<T>& dst, const std::vector<T>& updates, MergeFn merge_one, FallbackFn fallback) {
  std::unordered_map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < dst.size(); ++i)
    if (!dst[i].id.empty()) index.emplace(dst[i].id, i);
  for (const auto& u : updates) {
    T* existing = nullptr;
    if (!u.id.empty()) {
      if (auto it = index.find(u.id); it != index.end()) existing = &dst[it->second];
    } else {
      existing = fallback(dst, u);
    }
    if (existing != nullptr) {
      merge_one(*existing, u);
      continue;
    }
    if (!u.id.empty()) index.emplace(u.id, dst.size());
    dst.push_back(u);
  }
}

template <typename T>
T* no_fallback(std::vector<T>&, const T&) {
  return nullptr;
}

void merge_group(Group& g, const Group& u) {
  set_if(g.associate_time, u.associate_time);
  set_if(g.disassociate_time, u.disassociate_time);
  add_extensions(g.extensions, u.extensions);
}

// RFC 7865 §6.3: a stop-time in a partial update ends the communication session.
void merge_session(Session& s, const Session& u) {
  set_if(s.group_id, u.group_id);
  append_unique(s.sip_session_ids, u.sip_session_ids);
  set_if(s.start_time, u.start_time);
  set_if(s.stop_time, u.stop_time);
  set_if(s.associate_time, u.associate_time);
  set_if(s.disassociate_time, u.disassociate_time);
  add_extensions(s.extensions, u.extensions);
}

// RFC 7865 §6.6: a disassociate-time means the participant left that session; keep the entry.
void merge_participant(Participant& p, const Participant& u) {
  append_unique(p.aors, u.aors);
  set_if(p.display_name, u.display_name);
  for (const auto& n : u.names) {
    bool replaced = false;
    for (auto& existing : p.names) {
      if (existing.lang == n.lang) {
        existing.name = n.name;
        replaced = true;
        break;
      }
    }
    if (!replaced) p.names.push_back(n);
  }
  for (const auto& ua : u.sessions) {
    SessionAssociation* match = nullptr;
    for (auto& a : p.sessions)
      if (a.session_id == ua.session_id) match = &a;
    if (match == nullptr) {
      p.sessions.push_back(ua);
      continue;
    }
    set_if(match->associate_time, ua.associate_time);
    set_if(match->disassociate_time, ua.disassociate_time);
  }
  append_unique(p.send, u.send);
  append_unique(p.recv, u.recv);
  add_extensions(p.extensions, u.extensions);
}

void merge_stream(Stream& s, const Stream& u) {
  set_if(s.label, u.label);
  set_if(s.session_id, u.session_id);
  set_if(s.mode, u.mode);
  add_extensions(s.extensions, u.extensions);
}

Stream* find_stream_by_label(std::vector<Stream>& v, const Stream& u) {
  if (u.label.empty()) return nullptr;
  for (auto& s : v)
    if (s.id.empty() && s.label == u.label) return &s;
  return nullptr;
}

}  // namespace

RecordingMetadata merge(const RecordingMetadata& base, const RecordingMetadata& update) {
  if (update.data_mode == DataMode::kComplete) return update;  // RFC 7865 §6.1

  RecordingMetadata out = base;
  merge_by_id(out.groups, update.groups, merge_group, no_fallback<Group>);
  merge_by_id(out.sessions, update.sessions, merge_session, no_fallback<Session>);
  merge_by_id(out.participants, update.participants, merge_participant, no_fallback<Participant>);
  merge_by_id(out.streams, update.streams, merge_stream, find_stream_by_label);
  add_extensions(out.extensions, update.extensions);
  if (update.call_data) out.call_data = update.call_data;
  for (const auto& w : update.warnings) detail::add_warning(out.warnings, w);
  return out;
}

}  // namespace sgw::metadata
