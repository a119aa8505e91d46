#include "recording/recording_json.h"

#include <algorithm>
#include <cstdio>

#include "metadata/metadata_json.h"

namespace sgw::recording {

namespace {

using nlohmann::json;

json str_or_null(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }

template <typename T>
json opt(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

json to_json(const CommunicationSession& s) {
  return json{{"session_id", s.session_id},   {"call_ids", s.call_ids},
              {"sip_session_ids", s.sip_session_ids}, {"start_time", opt(s.start_time)},
              {"stop_time", opt(s.stop_time)}};
}

json to_json(const ParticipantEntry& p) {
  return json{{"id", p.id},
              {"aor", p.aor},
              {"name", p.name},
              {"role", p.role},
              {"role_rule", str_or_null(p.role_rule)},
              {"channel", opt(p.channel)},
              {"file", opt(p.file)},
              {"join_time", opt(p.join_time)},
              {"leave_time", opt(p.leave_time)}};
}

json to_json(const StreamEntry& s) {
  return json{{"index", s.index},
              {"label", s.label},
              {"codec", s.codec},
              {"srtp", str_or_null(s.srtp)},
              {"ssrcs", s.ssrcs},
              {"packets_received", s.packets_received},
              {"packets_lost", s.packets_lost},
              {"packets_late", s.packets_late},
              {"packets_duplicated", s.packets_duplicated},
              {"first_packet_time", opt(s.first_packet_time)},
              {"last_packet_time", opt(s.last_packet_time)},
              {"file", opt(s.file)},
              {"channel", opt(s.channel)},
              {"participant", opt(s.participant)}};
}

json to_json(const GapEntry& g) {
  return json{{"start_ms", g.start_ms}, {"length_ms", g.length_ms}, {"cause", g.cause},
              {"stream_label", opt(g.stream_label)}};
}

json to_json(const DtmfEntry& d) {
  return json{{"digit", d.digit},
              {"start_ms", d.start_ms},
              {"duration_ms", d.duration_ms},
              {"stream_label", d.stream_label},
              {"participant", opt(d.participant)}};
}

json to_json(const StreamIntegrity& s) {
  json silences = json::array();
  for (const auto& p : s.silences) silences.push_back(json{{"start_ms", p.start_ms}, {"length_ms", p.length_ms}});
  return json{{"index", s.index},
              {"label", s.label},
              {"packets_expected", s.packets_expected},
              {"packets_received", s.packets_received},
              {"packets_lost", s.packets_lost},
              {"packets_duplicated", s.packets_duplicated},
              {"packets_late", s.packets_late},
              {"packets_unexpected_payload_type", s.packets_unexpected_payload_type},
              {"packets_undecodable", s.packets_undecodable},
              {"packets_wrong_source", opt(s.packets_wrong_source)},
              {"packets_kernel_dropped", opt(s.packets_kernel_dropped)},
              {"srtp_auth_failures", opt(s.srtp_auth_failures)},
              {"srtp_replays", opt(s.srtp_replays)},
              {"silences", std::move(silences)}};
}

json to_json(const Integrity& in) {
  json streams = json::array();
  for (const auto& s : in.streams) streams.push_back(to_json(s));
  return json{{"silence_threshold_ms", in.silence_threshold_ms},
              {"spool", json{{"records_dropped", in.spool.records_dropped},
                             {"write_errors", in.spool.write_errors},
                             {"sync_failures", in.spool.sync_failures},
                             {"bytes_unreadable", in.spool.bytes_unreadable},
                             {"regions_unreadable", in.spool.regions_unreadable},
                             {"last_error", str_or_null(in.spool.last_error)}}},
              {"streams", std::move(streams)},
              {"finalize_failures", in.finalize_failures},
              {"last_finalize_error", str_or_null(in.last_finalize_error)},
              {"causes", integrity_causes(in)}};
}

std::string stream_name(const StreamIntegrity& s) {
  std::string n = "stream " + s.label;
  if (!s.role.empty() && s.role != "unknown") n += " (" + s.role + ")";
  return n;
}

std::string seconds(std::int64_t ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms) / 1000.0);
  return buf;
}

template <typename T, typename F>
json array_of(const std::vector<T>& v, F&& f) {
  json a = json::array();
  for (const auto& x : v) a.push_back(f(x));
  return a;
}

// Where each stream index ended up: (file position, channel).
struct Placement {
  std::size_t file = 0;
  unsigned channel = 0;
  const Channel* ch = nullptr;
};

std::optional<Placement> find_stream(const ChannelLayout& layout, std::size_t stream_index) {
  for (std::size_t f = 0; f < layout.files.size(); ++f)
    for (std::size_t c = 0; c < layout.files[f].channels.size(); ++c)
      if (layout.files[f].channels[c].stream_index == stream_index)
        return Placement{f, static_cast<unsigned>(c), &layout.files[f].channels[c]};
  return std::nullopt;
}

}  // namespace

json build_recording_json(const RecordingJsonInput& in) {
  json j;
  j["schema_version"] = kRecordingJsonSchemaVersion;
  j["recording_id"] = in.recording_id;
  j["conversation_id"] = str_or_null(in.conversation_id);
  j["conversation_id_rule"] = str_or_null(in.conversation_id_rule);
  j["fragment_of"] = str_or_null(in.fragment_of);
  j["previous_fragment"] = str_or_null(in.previous_fragment);
  j["siprec_session_id"] = str_or_null(in.siprec_session_id);
  j["recording_call_id"] = str_or_null(in.recording_call_id);
  j["communication_sessions"] = array_of(in.communication_sessions, [](const auto& x) { return to_json(x); });
  j["participants"] = array_of(in.participants, [](const auto& x) { return to_json(x); });
  j["streams"] = array_of(in.streams, [](const auto& x) { return to_json(x); });
  j["start_time"] = in.start_time;
  j["end_time"] = in.end_time;
  j["duration_ms"] = in.duration_ms;
  j["gaps"] = array_of(in.gaps, [](const auto& x) { return to_json(x); });
  j["dtmf"] = array_of(in.dtmf, [](const auto& x) { return to_json(x); });
  j["complete"] = in.complete;
  j["incomplete_reason"] = in.complete ? json(nullptr) : str_or_null(in.incomplete_reason);
  j["gateway"] = json{{"node", in.gateway.node}, {"region", in.gateway.region}};
  j["metadata_xml"] = array_of(in.metadata_xml, [](const MetadataDocument& d) {
    return json{{"received_at", d.received_at}, {"xml", d.xml}};
  });
  j["metadata"] = in.metadata ? metadata::to_json(*in.metadata) : json(nullptr);
  j["metadata_errors"] = array_of(in.metadata_errors, [](const MetadataError& e) {
    return json{{"received_at", e.received_at}, {"code", e.code}, {"message", e.message}};
  });
  j["events"] = array_of(in.events, [](const RecordingEvent& e) {
    return json{{"time", e.time}, {"what", e.what}};
  });
  j["audio"] = array_of(in.audio, [](const AudioFileInfo& a) { return to_json(a); });
  j["integrity"] = to_json(in.integrity);
  j["warnings"] = in.warnings;
  if (in.live_stream) j["live_stream"] = *in.live_stream;
  return j;
}

std::string render_recording_json(const json& doc) {
  if (!doc.is_object() || !doc.contains("warnings"))
    return doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
  // A reviewer reads the warnings first: they lead; the rest keeps its sorted order.
  nlohmann::ordered_json out;
  out["warnings"] = doc["warnings"];
  for (const auto& [key, value] : doc.items())
    if (key != "warnings") out[key] = value;
  return out.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

std::vector<std::string> integrity_causes(const Integrity& in) {
  std::vector<std::string> out;
  const auto& sp = in.spool;
  if (sp.records_dropped)
    out.push_back("spool: " + std::to_string(sp.records_dropped) + " record(s) dropped before reaching the disk" +
                  (sp.last_error.empty() ? "" : " (" + sp.last_error + ")"));
  else if (sp.write_errors)
    out.push_back("spool: " + std::to_string(sp.write_errors) + " write error(s)" +
                  (sp.last_error.empty() ? "" : " (" + sp.last_error + ")"));
  if (sp.sync_failures)
    out.push_back("spool: " + std::to_string(sp.sync_failures) +
                  " failed sync(s): audio written before a failed sync may not be on the disk");
  if (sp.bytes_unreadable)
    out.push_back("spool: " + std::to_string(sp.bytes_unreadable) + " byte(s) in " +
                  std::to_string(sp.regions_unreadable) + " region(s) unreadable (corrupt or torn)");
  for (const auto& s : in.streams) {
    if (s.packets_late)
      out.push_back(stream_name(s) + ": " + std::to_string(s.packets_late) +
                    " packet(s) received too late for the timeline");
    if (s.packets_kernel_dropped && *s.packets_kernel_dropped)
      out.push_back(stream_name(s) + ": " + std::to_string(*s.packets_kernel_dropped) +
                    " packet(s) dropped by the kernel (receive buffer full)");
  }
  return out;
}

std::vector<std::string> integrity_warnings(const Integrity& in) {
  std::vector<std::string> out = integrity_causes(in);
  for (const auto& s : in.streams) {
    std::int64_t longest = 0;
    for (const auto& p : s.silences) longest = std::max(longest, p.length_ms);
    if (s.packets_received == 0 && longest > 0)
      out.push_back(stream_name(s) + ": no audio received at all (" + seconds(longest) + ")");
    else if (longest > 0)
      out.push_back(stream_name(s) + ": no audio received for " + seconds(longest) +
                    (s.silences.size() > 1 ? " (" + std::to_string(s.silences.size()) + " silent periods over " +
                                                 seconds(in.silence_threshold_ms) + ")"
                                           : ""));
    if (s.packets_wrong_source && *s.packets_wrong_source)
      out.push_back(stream_name(s) + ": " + std::to_string(*s.packets_wrong_source) +
                    " packet(s) from an unexpected source dropped");
    if (s.srtp_auth_failures && *s.srtp_auth_failures)
      out.push_back(stream_name(s) + ": " + std::to_string(*s.srtp_auth_failures) +
                    " SRTP packet(s) failed authentication, dropped");
    if (s.srtp_replays && *s.srtp_replays)
      out.push_back(stream_name(s) + ": " + std::to_string(*s.srtp_replays) + " replayed SRTP packet(s) dropped");
    if (s.packets_unexpected_payload_type)
      out.push_back(stream_name(s) + ": " + std::to_string(s.packets_unexpected_payload_type) +
                    " packet(s) in a payload type that was not negotiated");
    if (s.packets_undecodable)
      out.push_back(stream_name(s) + ": " + std::to_string(s.packets_undecodable) + " undecodable packet(s)");
  }
  if (in.finalize_failures)
    out.push_back("published after " + std::to_string(in.finalize_failures) + " failed finalisation attempt(s)" +
                  (in.last_finalize_error.empty() ? "" : ": " + in.last_finalize_error));
  return out;
}

std::string siprec_session_id_of(const metadata::RecordingMetadata& md) {
  for (const auto& g : md.groups)
    if (!g.id.empty()) return g.id;
  for (const auto& s : md.sessions)
    if (!s.id.empty()) return s.id;
  return {};
}

std::vector<CommunicationSession> communication_sessions_of(const metadata::RecordingMetadata& md) {
  std::vector<CommunicationSession> out;
  for (const auto& s : md.sessions) {
    CommunicationSession cs;
    cs.session_id = s.id;
    cs.sip_session_ids = s.sip_session_ids;
    cs.start_time = s.start_time;
    cs.stop_time = s.stop_time;
    if (md.sessions.size() == 1 && md.call_data && !md.call_data->call_id.empty())
      cs.call_ids.push_back(md.call_data->call_id);
    out.push_back(std::move(cs));
  }
  return out;
}

std::vector<ParticipantEntry> participants_of(const ChannelLayout& layout,
                                              const std::vector<AudioFileInfo>& audio,
                                              const metadata::RecordingMetadata* md) {
  std::vector<ParticipantEntry> out;
  for (const auto& p : layout.participants) {
    ParticipantEntry e;
    e.id = p.id;
    e.aor = p.aor;
    e.name = p.name;
    e.role = p.role;
    e.role_rule = p.role_rule;
    for (std::size_t f = 0; f < layout.files.size() && !e.channel; ++f)
      for (std::size_t c = 0; c < layout.files[f].channels.size(); ++c) {
        const auto& ch = layout.files[f].channels[c];
        if (ch.participant && ch.participant->id == p.id) {
          e.channel = static_cast<unsigned>(c);
          if (f < audio.size()) e.file = audio[f].file_name;
          break;
        }
      }
    if (md && !e.channel) {
      // Not the participant a channel is named after (e.g. the agent a call
      // was transferred to): its own send association names the stream.
      for (const auto& mp : md->participants) {
        if (mp.id != p.id) continue;
        for (const auto& sid : mp.send) {
          std::string label = sid;
          for (const auto& ms : md->streams)
            if (!ms.id.empty() && ms.id == sid) label = ms.label;
          for (std::size_t f = 0; f < layout.files.size() && !e.channel; ++f)
            for (std::size_t c = 0; c < layout.files[f].channels.size(); ++c)
              if (layout.files[f].channels[c].label == label) {
                e.channel = static_cast<unsigned>(c);
                if (f < audio.size()) e.file = audio[f].file_name;
                break;
              }
          if (e.channel) break;
        }
        break;
      }
    }
    if (md) {
      for (const auto& mp : md->participants) {
        if (mp.id != p.id) continue;
        bool all_left = !mp.sessions.empty();
        for (const auto& a : mp.sessions) {
          // RFC 3339 UTC text of one SRC sorts chronologically as text.
          if (a.associate_time && (!e.join_time || *a.associate_time < *e.join_time))
            e.join_time = a.associate_time;
          if (!a.disassociate_time) all_left = false;
          else if (!e.leave_time || *e.leave_time < *a.disassociate_time) e.leave_time = a.disassociate_time;
        }
        if (!all_left) e.leave_time.reset();
        break;
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

void place_streams(std::vector<StreamEntry>& streams, const ChannelLayout& layout,
                   const std::vector<AudioFileInfo>& audio) {
  for (auto& s : streams) {
    auto pl = find_stream(layout, s.index);
    if (!pl) continue;
    s.channel = pl->channel;
    if (pl->file < audio.size()) s.file = audio[pl->file].file_name;
    if (pl->ch->participant) s.participant = pl->ch->participant->id;
  }
}

}  // namespace sgw::recording
