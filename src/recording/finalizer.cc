#include "recording/finalizer.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/thread_name.h"
#include "media/codec.h"
#include "common/strings.h"
#include "metadata/cisco_headers.h"
#include "metadata/metadata_merge.h"
#include "recording/recording_json.h"
#include "recording/spool_reader.h"
#include "recording/timeline.h"

namespace sgw::recording {

namespace {

constexpr std::size_t kMaxQueue = 4096;

void bump(common::Counter* c) {
  if (c) c->inc();
}

nlohmann::json parse_json(std::string_view text) {
  auto j = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? nlohmann::json::object() : j;
}

template <typename T>
T get_or(const nlohmann::json& j, const char* key, T fallback) {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if constexpr (std::is_same_v<T, std::string>) {
    return it->is_string() ? it->template get<std::string>() : fallback;
  } else if constexpr (std::is_same_v<T, bool>) {
    return it->is_boolean() ? it->template get<bool>() : fallback;
  } else {
    return it->is_number() ? it->template get<T>() : fallback;
  }
}

// One recorded stream (m-line index) as the spool's "streams" events describe it.
struct StreamHistory {
  std::string label;
  std::map<std::uint8_t, nlohmann::json> payloads;  // pt → {encoding, clock_rate, ...}
  std::optional<int> telephone_event_pt;
  std::vector<std::pair<std::int64_t, bool>> paused;  // (time_us, paused) changes
  bool recorded = false;
  std::string codec;
};

struct Collected {
  nlohmann::json start = nlohmann::json::object();
  bool has_start = false;
  nlohmann::json end;
  bool has_end = false;
  std::int64_t end_us = 0;
  std::int64_t last_us = 0;
  std::map<std::size_t, StreamHistory> streams;
  std::vector<std::pair<std::int64_t, std::string>> metadata;  // (time_us, xml)
  std::vector<std::pair<std::int64_t, std::string>> events;    // (time_us, what)
};

void apply_streams_event(Collected& c, std::int64_t at_us, const nlohmann::json& e) {
  const auto& list = e.find("streams");
  if (list == e.end() || !list->is_array()) return;
  for (const auto& s : *list) {
    auto index = get_or<std::size_t>(s, "index", 1000);
    if (index >= 256) continue;
    auto& h = c.streams[index];
    h.label = get_or<std::string>(s, "label", std::to_string(index));
    bool recorded = get_or<bool>(s, "recorded", false);
    bool paused = get_or<bool>(s, "paused", false) || !recorded;
    if (recorded) {
      h.recorded = true;
      h.codec = get_or<std::string>(s, "codec", h.codec);
      if (auto p = s.find("payloads"); p != s.end() && p->is_array())
        for (const auto& pl : *p) {
          int pt = get_or<int>(pl, "pt", -1);
          if (pt >= 0 && pt < 128) h.payloads[static_cast<std::uint8_t>(pt)] = pl;
        }
      int te = get_or<int>(s, "telephone_event_pt", -1);
      if (te >= 0 && te < 128) h.telephone_event_pt = te;
    }
    if (h.paused.empty() || h.paused.back().second != paused) h.paused.emplace_back(at_us, paused);
  }
}

}  // namespace

Finalizer::Finalizer(FinalizerOptions options, FinalizerMetrics metrics)
    : options_(std::move(options)), metrics_(metrics) {}

Finalizer::~Finalizer() { stop(); }

void Finalizer::start(unsigned threads) {
  for (unsigned i = 0; i < std::max(1u, threads); ++i) threads_.emplace_back([this] {
      common::set_thread_name("sgw-finalize");
      run();
    });
}

bool Finalizer::submit(const std::string& recording_id) {
  {
    std::lock_guard lock(mutex_);
    if (queue_.size() >= kMaxQueue) {
      bump(metrics_.queue_full);
      return false;
    }
    queue_.push_back(recording_id);
  }
  cv_.notify_one();
  return true;
}

void Finalizer::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void Finalizer::run() {
  while (true) {
    std::string id;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      id = std::move(queue_.front());
      queue_.pop_front();
    }
    std::string path = (std::filesystem::path(options_.spool_dir) / (id + ".spool")).string();
    auto r = finalize_file(path);
    if (!r) {
      bump(metrics_.failed);
      common::logger("finalize")->error("{}: {}", id, r.error().message);
    }
  }
}

std::size_t Finalizer::recover() {
  std::size_t published = 0;
  auto log = common::logger("finalize");
  for (const auto& path : list_spools(options_.spool_dir)) {
    auto r = finalize_file(path);
    if (!r) {
      bump(metrics_.failed);
      log->error("recovery of {} failed: {}", path, r.error().message);
      continue;
    }
    if (r->published) {
      ++published;
      bump(metrics_.recovered);
      log->warn("{}: recovered from spool after an unclean stop: complete={} ({} problem(s)) -> {}",
                r->recording_id, r->complete, r->problems.size(), r->json_path);
    }
  }
  return published;
}

common::Result<FinalizeReport> Finalizer::finalize_file(const std::string& spool_path) {
  auto log = common::logger("finalize");
  FinalizeReport report;
  Collected c;

  // Pass 1: everything but the audio.
  RecordVisitor first;
  first.on_json = [&](const JsonRecordView& r) {
    c.last_us = std::max(c.last_us, r.time_us);
    auto j = parse_json(r.json);
    switch (r.type) {
      case RecordType::kSessionStart:
        c.start = j;
        c.has_start = true;
        break;
      case RecordType::kSessionEnd:
        c.end = j;
        c.has_end = true;
        c.end_us = r.time_us;
        break;
      default: {
        std::string what = get_or<std::string>(j, "event", "event");
        if (what == "streams") {
          apply_streams_event(c, r.time_us, j);
          what += ": " + get_or<std::string>(j, "why", "");
        }
        c.events.emplace_back(r.time_us, what);
      }
    }
  };
  first.on_metadata = [&](const MetadataRecordView& r) {
    c.last_us = std::max(c.last_us, r.time_us);
    c.metadata.emplace_back(r.time_us, std::string(r.xml));
  };
  first.on_rtp = [&](const RtpRecordView& r) { c.last_us = std::max(c.last_us, r.arrival_us); };
  auto summary = read_spool(spool_path, first);
  if (!summary) return summary.error();
  report.recording_id = summary->recording_id;
  report.problems = summary->problems;

  auto remove_spool = [&] {
    if (options_.keep_spool) return;
    if (::unlink(spool_path.c_str()) != 0)
      log->warn("{}: cannot remove spool {}: {}", report.recording_id, spool_path, std::strerror(errno));
  };
  if (c.has_end && !get_or<bool>(c.end, "answered", true)) {
    remove_spool();  // refused or cancelled before the answer: nothing was recorded
    return report;
  }

  std::int64_t duration_us = c.has_end ? c.end_us : c.last_us;
  if (duration_us < 0) duration_us = 0;
  report.complete = c.has_end && get_or<bool>(c.end, "complete", true);
  std::int64_t start_unix_us = get_or<std::int64_t>(c.start, "start_unix_us", 0);
  std::string recording_id = get_or<std::string>(c.start, "recording_id", report.recording_id);
  if (recording_id.empty()) recording_id = report.recording_id;

  // Output rate: 16 kHz when any recorded stream is wideband.
  std::uint32_t rate = 8000;
  for (const auto& [index, h] : c.streams)
    for (const auto& [pt, pl] : h.payloads)
      if (auto info = media::codec_from_sdp(get_or<std::string>(pl, "encoding", ""),
                                            get_or<std::uint32_t>(pl, "clock_rate", 0)))
        rate = std::max(rate, info->native_rate);
  if (options_.format == AudioFormat::kWavUlaw || options_.format == AudioFormat::kWavAlaw) rate = 8000;

  TimelineParams params;
  params.output_rate = rate;
  params.duration_us = duration_us;
  params.reorder_window_ms = options_.reorder_window_ms;

  std::map<std::size_t, StreamTrack> tracks;
  for (auto& [index, h] : c.streams) {
    if (!h.recorded) continue;
    StreamCodecs codecs;
    for (const auto& [pt, pl] : h.payloads) {
      auto info = media::codec_from_sdp(get_or<std::string>(pl, "encoding", ""),
                                        get_or<std::uint32_t>(pl, "clock_rate", 0));
      if (!info) continue;
      auto dec = media::make_decoder(info->id);
      if (!dec) {
        report.problems.push_back("stream " + h.label + ": " + dec.error().message);
        continue;
      }
      codecs.decoders[pt] = std::move(dec).value();
    }
    if (h.telephone_event_pt) {
      codecs.telephone_event_pt = static_cast<std::uint8_t>(*h.telephone_event_pt);
      // The plan only accepts telephone-event at the audio codec's RTP clock.
      if (!h.payloads.empty())
        codecs.telephone_event_clock = get_or<std::uint32_t>(h.payloads.begin()->second, "clock_rate", 8000);
    }
    auto track = StreamTrack::create(params, std::move(codecs));
    if (!track) {
      report.problems.push_back("stream " + h.label + ": " + track.error().message);
      continue;
    }
    for (const auto& [at, paused] : h.paused) track->set_paused(at, paused, "pause");
    tracks.emplace(index, std::move(track).value());
  }

  // Pass 2: the audio, in arrival order.
  RecordVisitor second;
  second.on_rtp = [&](const RtpRecordView& r) {
    auto it = tracks.find(r.stream);
    if (it == tracks.end()) return;
    media::RtpPacketView v;
    v.marker = r.marker;
    v.payload_type = r.payload_type;
    v.sequence = r.seq;
    v.timestamp = r.ts;
    v.ssrc = r.ssrc;
    v.payload = r.payload;
    it->second.add_packet(v, r.arrival_us);
  };
  auto again = read_spool(spool_path, second);
  if (!again) return again.error();
  for (auto& [index, t] : tracks) t.finish();

  // Metadata: merged model, every document kept raw with its arrival time.
  std::optional<metadata::RecordingMetadata> md;
  RecordingJsonInput in;
  for (const auto& [at, xml] : c.metadata) {
    std::string when = common::iso8601_from_unix_us(start_unix_us + at);
    in.metadata_xml.push_back({when, xml});
    auto parsed = metadata::parse(xml, options_.metadata_limits);
    if (!parsed) {
      in.metadata_errors.push_back({when, parsed.error().code, parsed.error().message});
      continue;
    }
    md = md ? metadata::merge(*md, *parsed) : std::move(parsed).value();
  }

  if (!md) {
    // Cisco network-based recording sends no XML: participants come from
    // X-Cisco-Recording-Participant headers, kept in the session-start record.
    std::vector<std::string> cisco;
    if (auto h = c.start.find("headers"); h != c.start.end() && h->is_object())
      for (const auto& [name, values] : h->items())
        if (common::iequals(name, metadata::kCiscoParticipantHeader) && values.is_array())
          for (const auto& v : values)
            if (v.is_string()) cisco.push_back(v.get<std::string>());
    if (!cisco.empty()) md = metadata::from_cisco_headers(cisco, get_or<std::string>(c.start, "call_id", ""));
  }

  std::vector<RecordedStream> recorded;
  for (const auto& [index, t] : tracks) recorded.push_back({index, c.streams[index].label});
  ChannelLayout layout = build_channel_layout(md ? &*md : nullptr, recorded, options_.layout);

  PathFields pf;
  pf.start_unix_us = start_unix_us;
  pf.conversation_id = get_or<std::string>(c.start, "conversation_id", "");
  pf.recording_id = recording_id;
  pf.region = get_or<std::string>(c.start, "region", "");
  pf.node = get_or<std::string>(c.start, "node", "");
  pf.call_id = get_or<std::string>(c.start, "call_id", "");
  std::string base = (std::filesystem::path(options_.recordings_dir) /
                      (options_.relative_path ? options_.relative_path(pf) : recording_id)).string();

  for (const auto& file : layout.files) {
    std::vector<std::span<const std::int16_t>> channels;
    for (const auto& ch : file.channels) channels.push_back(tracks.at(ch.stream_index).samples());
    std::string path = base + file.name_suffix + "." + std::string(audio_file_extension(options_.format));
    auto info = write_audio_file(path, options_.format, rate, channels);
    if (!info) return info.error();
    in.audio.push_back(*info);
    report.audio_paths.push_back(path);
  }

  in.recording_id = recording_id;
  in.conversation_id = pf.conversation_id;
  in.conversation_id_rule = get_or<std::string>(c.start, "conversation_id_rule", "");
  in.recording_call_id = pf.call_id;
  if (md) {
    in.siprec_session_id = siprec_session_id_of(*md);
    in.communication_sessions = communication_sessions_of(*md);
  }
  in.participants = participants_of(layout, in.audio, md ? &*md : nullptr);
  for (const auto& [index, t] : tracks) {
    const auto& h = c.streams[index];
    StreamStats st = t.stats();
    StreamEntry e;
    e.index = index;
    e.label = h.label;
    e.codec = h.codec;
    e.ssrcs = st.ssrcs;
    e.packets_received = st.received;
    e.packets_lost = st.lost;
    e.packets_late = st.late;
    e.packets_duplicated = st.duplicated;
    if (st.first_arrival_us >= 0) e.first_packet_time = common::iso8601_from_unix_us(start_unix_us + st.first_arrival_us);
    if (st.last_arrival_us >= 0) e.last_packet_time = common::iso8601_from_unix_us(start_unix_us + st.last_arrival_us);
    in.streams.push_back(e);
    for (const auto& g : t.gaps()) in.gaps.push_back({g.start_ms, g.length_ms, g.cause, h.label});
    std::optional<std::string> participant;
    for (const auto& f : layout.files)
      for (const auto& ch : f.channels)
        if (ch.stream_index == index && ch.participant) participant = ch.participant->id;
    for (const auto& d : t.dtmf_events())
      in.dtmf.push_back({std::string(1, d.digit), d.start_ms, d.duration_ms, h.label, participant});
    if (st.decode_errors)
      report.problems.push_back("stream " + h.label + ": " + std::to_string(st.decode_errors) + " undecodable packet(s)");
  }
  place_streams(in.streams, layout, in.audio);
  in.start_time = get_or<std::string>(c.start, "start_time", common::iso8601_from_unix_us(start_unix_us));
  in.end_time = common::iso8601_from_unix_us(start_unix_us + duration_us);
  in.duration_ms = duration_us / 1000;
  in.complete = report.complete;
  if (!report.complete)
    in.incomplete_reason = c.has_end ? get_or<std::string>(c.end, "cause", "ended early")
                                     : "gateway stopped during the call; recovered from the spool";
  in.gateway = {pf.node, pf.region};
  md.has_value() ? void(in.metadata = md) : void();
  for (const auto& [at, what] : c.events)
    in.events.push_back({common::iso8601_from_unix_us(start_unix_us + at), what});
  if (c.has_end)
    in.events.push_back({common::iso8601_from_unix_us(start_unix_us + c.end_us),
                         "end: " + get_or<std::string>(c.end, "cause", "")});

  nlohmann::json doc = build_recording_json(in);
  if (!report.problems.empty()) doc["spool_problems"] = report.problems;
  report.json_path = base + ".json";
  auto st = common::write_file_atomically(report.json_path, render_recording_json(doc));
  if (!st) return st.error();
  if (options_.enqueue) {
    PublishedRecording pub{recording_id, pf, base, report.audio_paths, report.json_path};
    if (auto q = options_.enqueue(pub); !q)
      return common::make_error(q.error().code, "queue deliveries of " + recording_id + " (spool " + spool_path +
                                                     " kept): " + q.error().message);
  }
  report.published = true;
  bump(metrics_.published);
  log->info("{}: published {} ({} audio file(s), {} ms, complete={})", recording_id, report.json_path,
            report.audio_paths.size(), in.duration_ms, report.complete);
  if (options_.on_published) options_.on_published(recording_id, report.json_path);
  remove_spool();
  return report;
}

}  // namespace sgw::recording
