#include "metadata/metadata_json.h"

#include "metadata/text_util.h"

namespace sgw::metadata {

namespace {

using nlohmann::json;

// The parser already sanitises, but a model can also be built by hand or by merge(); dump()
// throws on invalid UTF-8, so sanitise again here.
json str(const std::string& s) { return json(detail::sanitize_utf8(s)); }

json opt(const std::optional<std::string>& s) { return s ? str(*s) : json(nullptr); }

json strings(const std::vector<std::string>& v) {
  json a = json::array();
  for (const auto& s : v) a.push_back(str(s));
  return a;
}

json extensions(const std::vector<Extension>& v) {
  json a = json::array();
  for (const auto& e : v) a.push_back(str(e.xml));
  return a;
}

json fields(const std::vector<ExtensionField>& v) {
  json a = json::array();
  for (const auto& f : v) a.push_back(json{{"name", str(f.name)}, {"value", str(f.value)}});
  return a;
}

}  // namespace

json to_json(const RecordingMetadata& md) {
  json out = json::object();
  out["dialect"] = std::string(dialect_name(md.dialect));
  out["data_mode"] = std::string(data_mode_name(md.data_mode));

  json groups = json::array();
  for (const auto& g : md.groups) {
    groups.push_back(json{{"id", str(g.id)},
                          {"associate_time", opt(g.associate_time)},
                          {"disassociate_time", opt(g.disassociate_time)},
                          {"extensions", extensions(g.extensions)}});
  }
  out["groups"] = std::move(groups);

  json sessions = json::array();
  for (const auto& s : md.sessions) {
    sessions.push_back(json{{"id", str(s.id)},
                            {"group_id", opt(s.group_id)},
                            {"sip_session_ids", strings(s.sip_session_ids)},
                            {"start_time", opt(s.start_time)},
                            {"stop_time", opt(s.stop_time)},
                            {"associate_time", opt(s.associate_time)},
                            {"disassociate_time", opt(s.disassociate_time)},
                            {"extensions", extensions(s.extensions)}});
  }
  out["sessions"] = std::move(sessions);

  json participants = json::array();
  for (const auto& p : md.participants) {
    json names = json::array();
    for (const auto& n : p.names) names.push_back(json{{"lang", str(n.lang)}, {"name", str(n.name)}});
    json assocs = json::array();
    for (const auto& a : p.sessions) {
      assocs.push_back(json{{"session_id", str(a.session_id)},
                            {"associate_time", opt(a.associate_time)},
                            {"disassociate_time", opt(a.disassociate_time)}});
    }
    participants.push_back(json{{"id", str(p.id)},
                                {"aors", strings(p.aors)},
                                {"display_name", str(p.display_name)},
                                {"names", std::move(names)},
                                {"sessions", std::move(assocs)},
                                {"send", strings(p.send)},
                                {"recv", strings(p.recv)},
                                {"extensions", extensions(p.extensions)}});
  }
  out["participants"] = std::move(participants);

  json streams = json::array();
  for (const auto& s : md.streams) {
    streams.push_back(json{{"id", str(s.id)},
                           {"label", str(s.label)},
                           {"session_id", opt(s.session_id)},
                           {"mode", opt(s.mode)},
                           {"extensions", extensions(s.extensions)}});
  }
  out["streams"] = std::move(streams);

  out["extensions"] = extensions(md.extensions);
  if (md.call_data) {
    const CallData& cd = *md.call_data;
    out["call_data"] = json{{"from", str(cd.from)},
                            {"to", str(cd.to)},
                            {"call_id", str(cd.call_id)},
                            {"gcid", str(cd.gcid)},
                            {"other", fields(cd.other_fields)}};
  } else {
    out["call_data"] = nullptr;
  }
  out["warnings"] = strings(md.warnings);
  return out;
}

}  // namespace sgw::metadata
