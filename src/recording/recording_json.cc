#include "recording/recording_json.h"

#include <algorithm>

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
  return j;
}

std::string render_recording_json(const json& doc) {
  return doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
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
