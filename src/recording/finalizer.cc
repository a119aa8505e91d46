#include "recording/finalizer.h"

#include "recording/call_decision.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

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
#include "recording/audio_render.h"
#include "recording/recording_json.h"
#include "recording/spool_events.h"
#include "recording/spool_reader.h"
#include "recording/spool_writer.h"
#include "recording/stream_integrity.h"
#include "recording/timeline.h"

namespace sgw::recording {

namespace {

void bump(common::Counter* c, std::uint64_t n = 1) {
  if (c) c->inc(n);
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

// The payload types a "streams" event answered for one stream.
struct PayloadMap {
  std::map<std::uint8_t, nlohmann::json> payloads;  // pt → {encoding, clock_rate, ...}
  std::optional<int> telephone_event_pt;            // spools written before payloads listed it
  bool operator==(const PayloadMap&) const = default;
};

// One recorded stream (m-line index) as the spool's "streams" events describe it.
struct StreamHistory {
  std::string label;
  std::vector<std::pair<std::int64_t, PayloadMap>> payload_maps;  // (time_us, map) changes
  std::vector<std::pair<std::int64_t, bool>> paused;  // (time_us, paused) changes
  std::vector<std::string> pause_causes;              // "hold" or "pause", per change
  bool recorded = false;
  std::string codec;
  std::string srtp;  // SRTP suite of the last "streams" event ("" = plain RTP)
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
  SpoolFault fault;                  // merged spool_fault records
  StreamCounters counters;           // merged stream_counters records
  std::uint64_t finalize_failures = 0;
  std::string last_finalize_error;
  std::vector<metadata::CiscoHeadersEvent> cisco_updates;      // re-INVITE headers, in order
  std::optional<LiveStreamReport> live_stream;  // the live-audio tap's report (last one wins)
  std::optional<NodeLost> node_lost;  // rebuilt from a lost node's partials (docs/failover.md)
  std::int64_t node_lost_us = 0;      // end of the window that node may have lost
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
      if (auto sr = s.find("srtp"); sr != s.end()) h.srtp = sr->is_string() ? sr->get<std::string>() : "";
      PayloadMap m;
      if (auto p = s.find("payloads"); p != s.end() && p->is_array())
        for (const auto& pl : *p) {
          int pt = get_or<int>(pl, "pt", -1);
          if (pt >= 0 && pt < 128) m.payloads[static_cast<std::uint8_t>(pt)] = pl;
        }
      int te = get_or<int>(s, "telephone_event_pt", -1);
      if (te >= 0 && te < 128) m.telephone_event_pt = te;
      // A re-offer that changed the payload types (PCMA -> PCMU) applies from its time on.
      if (h.payload_maps.empty() || !(h.payload_maps.back().second == m)) h.payload_maps.emplace_back(at_us, m);
    }
    if (h.paused.empty() || h.paused.back().second != paused) {
      h.paused.emplace_back(at_us, paused);
      h.pause_causes.push_back(get_or<bool>(s, "held", false) ? "hold" : "pause");
    }
  }
}

// One count per kind of warning a published recording carries (FinalizerMetrics::warnings).
void count_warnings(const Integrity& in, common::LabelledCounter* out) {
  if (out == nullptr) return;
  std::set<std::string> kinds;
  const auto& sp = in.spool;
  if (sp.records_dropped || sp.write_errors || sp.sync_failures || sp.bytes_unreadable) kinds.insert("spool_damage");
  for (const auto& s : in.streams) {
    if (!s.silences.empty()) kinds.insert("silence");
    if (s.packets_wrong_source.value_or(0)) kinds.insert("wrong_source");
    if (s.packets_unexpected_payload_type) kinds.insert("unexpected_payload_type");
    if (s.packets_undecodable) kinds.insert("undecodable");
    if (s.packets_late) kinds.insert("late");
    if (s.packets_kernel_dropped.value_or(0)) kinds.insert("kernel_drops");
    if (s.srtp_auth_failures.value_or(0)) kinds.insert("srtp_auth_failure");
    if (s.srtp_replays.value_or(0)) kinds.insert("srtp_replay");
  }
  if (in.finalize_failures) kinds.insert("finalize_retry");
  for (const auto& k : kinds) out->with(k).inc();
}

void count_integrity(const RecordingJsonInput& in, const FinalizerMetrics::Integrity& m) {
  for (const auto& s : in.integrity.streams) {
    bump(m.packets_expected, s.packets_expected);
    bump(m.packets_received, s.packets_received);
    bump(m.packets_lost, s.packets_lost);
    bump(m.packets_late, s.packets_late);
    bump(m.packets_duplicated, s.packets_duplicated);
    if (m.stream_loss_ratio && s.packets_expected > 0)
      m.stream_loss_ratio->observe(static_cast<double>(s.packets_lost) / static_cast<double>(s.packets_expected));
  }
  for (const auto& s : in.streams)
    if (s.ssrcs.size() > 1) bump(m.ssrc_changes, s.ssrcs.size() - 1);
  if (m.gap_ms)
    for (const auto& g : in.gaps)
      if (g.length_ms > 0) m.gap_ms->with(g.cause.empty() ? "unknown" : g.cause).inc(static_cast<std::uint64_t>(g.length_ms));
}

// Decoders (and telephone-event, CN payload types) for one payload map.
StreamCodecs codecs_of(const PayloadMap& m, const std::string& label, std::vector<std::string>& problems) {
  StreamCodecs codecs;
  codecs.comfort_noise_pts = {13};
  for (const auto& [pt, pl] : m.payloads) {
    const auto encoding = get_or<std::string>(pl, "encoding", "");
    const auto clock = get_or<std::uint32_t>(pl, "clock_rate", 0);
    if (common::iequals(encoding, "telephone-event")) {
      if (clock < 1000 || clock > 192000) continue;
      if (!codecs.telephone_event_pt) {
        codecs.telephone_event_pt = pt;
        codecs.telephone_event_clock = clock;
      } else {
        codecs.more_telephone_events[pt] = clock;
      }
      continue;
    }
    if (common::iequals(encoding, "CN")) {
      if (pt != 13) codecs.comfort_noise_pts.push_back(pt);
      continue;
    }
    auto info = media::codec_from_sdp(encoding, clock);
    if (!info) continue;
    auto dec = media::make_decoder(info->id);
    if (!dec) {
      problems.push_back("stream " + label + ": " + dec.error().message);
      continue;
    }
    codecs.decoders[pt] = std::move(dec).value();
  }
  if (m.telephone_event_pt && !codecs.telephone_event_pt &&
      !m.payloads.contains(static_cast<std::uint8_t>(*m.telephone_event_pt))) {
    // Spools of earlier versions: telephone-event only as a field, at the audio codec's clock.
    codecs.telephone_event_pt = static_cast<std::uint8_t>(*m.telephone_event_pt);
    if (!m.payloads.empty())
      codecs.telephone_event_clock = get_or<std::uint32_t>(m.payloads.begin()->second, "clock_rate", 8000);
  }
  return codecs;
}

}  // namespace

Finalizer::Finalizer(FinalizerOptions options, FinalizerMetrics metrics)
    : options_(std::move(options)), metrics_(metrics) {
  if (options_.queue_capacity == 0) options_.queue_capacity = 1;
  next_rescan_ = Clock::now() + options_.rescan_interval;
}

Finalizer::~Finalizer() { stop(); }

void Finalizer::start(unsigned threads) {
  for (unsigned i = 0; i < std::max(1u, threads); ++i) threads_.emplace_back([this] {
      common::set_thread_name("sgw-finalize");
      run();
    });
}

std::chrono::milliseconds Finalizer::retry_delay(unsigned failures_before) const {
  auto delay = options_.retry_initial * (std::int64_t{1} << std::min<unsigned>(failures_before, 20));
  return std::min(delay, options_.retry_max);
}

std::string Finalizer::spool_path(const std::string& id) const {
  return (std::filesystem::path(options_.spool_dir) / (id + ".spool")).string();
}

bool Finalizer::enqueue_locked(const std::string& id) {
  if (busy_.contains(id) || retry_.contains(id)) return true;  // already on its way
  if (queue_.size() >= options_.queue_capacity) return false;
  queue_.push_back(id);
  busy_.insert(id);
  return true;
}

void Finalizer::update_gauges_locked() {
  if (metrics_.queue_depth) metrics_.queue_depth->set(static_cast<std::int64_t>(busy_.size() + retry_.size()));
  if (metrics_.recovery_pending) metrics_.recovery_pending->set(static_cast<std::int64_t>(recovering_.size()));
}

bool Finalizer::submit(const std::string& recording_id) {
  {
    std::lock_guard lock(mutex_);
    given_up_.erase(recording_id);
    if (!enqueue_locked(recording_id)) {
      bump(metrics_.queue_full);
      return false;
    }
    update_gauges_locked();
  }
  cv_.notify_one();
  return true;
}

std::size_t Finalizer::recover_in_background() {
  auto paths = list_spools(options_.spool_dir);
  {
    std::lock_guard lock(mutex_);
    for (const auto& p : paths) {
      std::string id = std::filesystem::path(p).stem().string();
      recovering_.insert(id);
      if (!enqueue_locked(id)) bump(metrics_.queue_full);  // the next rescan takes it
    }
    if (!paths.empty() && queue_.size() < recovering_.size()) next_rescan_ = Clock::now();
    update_gauges_locked();
  }
  cv_.notify_all();
  return paths.size();
}

std::size_t Finalizer::recovery_pending() const {
  std::lock_guard lock(mutex_);
  return recovering_.size();
}

std::size_t Finalizer::pending() const {
  std::lock_guard lock(mutex_);
  return busy_.size() + retry_.size();
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

void Finalizer::rescan() {
  auto paths = list_spools(options_.spool_dir);
  std::set<std::string> open;
  if (options_.open_spools)
    for (auto& p : options_.open_spools()) open.insert(std::move(p));
  const auto now = std::filesystem::file_time_type::clock::now();
  std::vector<std::string> found;
  for (const auto& p : paths) {
    if (open.contains(p)) continue;
    std::error_code ec;
    auto mtime = std::filesystem::last_write_time(p, ec);
    if (ec || now - mtime < options_.rescan_min_age) continue;
    found.push_back(std::filesystem::path(p).stem().string());
  }
  std::size_t queued = 0;
  {
    std::lock_guard lock(mutex_);
    for (const auto& id : found) {
      if (busy_.contains(id) || retry_.contains(id) || given_up_.contains(id)) continue;
      if (!enqueue_locked(id)) break;  // full: the next rescan continues
      ++queued;
    }
    update_gauges_locked();
  }
  if (queued) {
    if (metrics_.rescanned) metrics_.rescanned->inc(queued);
    common::logger("finalize")->info("rescan of {}: {} spool(s) queued that nobody had queued", options_.spool_dir,
                                     queued);
    cv_.notify_all();
  }
}

void Finalizer::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    auto now = Clock::now();
    // Retries that are due go to the front of the line in due order.
    for (auto it = retry_.begin(); it != retry_.end();) {
      if (it->second.due <= now && !stopping_) {
        attempts_[it->first] = it->second.attempts;
        queue_.push_back(it->first);
        busy_.insert(it->first);
        it = retry_.erase(it);
      } else {
        ++it;
      }
    }
    if (!queue_.empty()) {
      std::string id = std::move(queue_.front());
      queue_.pop_front();
      unsigned attempts = attempts_.contains(id) ? attempts_[id] : 0;
      lock.unlock();
      Outcome out = run_job(id, attempts);
      lock.lock();
      busy_.erase(id);
      if (out == Outcome::kRetry) {
        attempts_.erase(id);
        if (retry_.size() < options_.queue_capacity) retry_[id] = Retry{Clock::now() + retry_delay(attempts), attempts + 1};  // else forgotten here; the next rescan finds the spool
      } else {
        attempts_.erase(id);
        recovering_.erase(id);
        if (out == Outcome::kGiveUp) given_up_.insert(id);
      }
      update_gauges_locked();
      continue;
    }
    if (stopping_) return;
    if (options_.rescan_interval.count() > 0 && now >= next_rescan_ && !rescanning_) {
      rescanning_ = true;
      lock.unlock();
      rescan();
      lock.lock();
      rescanning_ = false;
      next_rescan_ = Clock::now() + options_.rescan_interval;
      continue;
    }
    auto wake = options_.rescan_interval.count() > 0 ? next_rescan_ : Clock::time_point::max();
    for (const auto& [id, r] : retry_) wake = std::min(wake, r.due);
    if (wake == Clock::time_point::max()) cv_.wait(lock);
    else cv_.wait_until(lock, wake);
  }
}

Finalizer::Outcome Finalizer::run_job(const std::string& id, unsigned attempts) {
  auto log = common::logger("finalize");
  const std::string path = spool_path(id);
  bool recovery;
  {
    std::lock_guard lock(mutex_);
    recovery = recovering_.contains(id);
  }
  auto r = finalize_file(path);
  if (r) {
    if (recovery && r->published) {
      bump(metrics_.recovered);
      log->warn("{}: recovered from spool after an unclean stop: complete={} ({} problem(s)) -> {}",
                r->recording_id, r->complete, r->problems.size(), r->json_path);
    }
    return Outcome::kDone;
  }
  const auto& e = r.error();
  if (e.code == "io.open" && ::access(path.c_str(), F_OK) != 0 && errno == ENOENT) {
    log->debug("{}: spool {} is gone (finalised already)", id, path);
    return Outcome::kDone;
  }
  bump(metrics_.failed);
  if (e.code == "spool.bad_header") {
    log->error("{}: {}; the spool holds nothing usable and is left in place, not retried", id, e.message);
    return Outcome::kGiveUp;
  }
  bump(metrics_.retries);
  log->error("{}: finalisation failed (attempt {}), spool kept, retry in {} ms: {}", id, attempts + 1,
             retry_delay(attempts).count(), e.message);
  // The cause goes into the spool itself, so a restart (or the retry) states it.
  auto w = SpoolWriter::open_for_append(path, options_.fs);
  common::Status st = w ? common::Status(common::Ok{}) : common::Status(w.error());
  if (w) {
    FinalizeFailure f{attempts + 1, e.message};
    (*w)->append_json(RecordType::kEvent, 0, f.encode());
    st = (*w)->close();
  }
  if (!st) log->warn("{}: cannot record the failure in the spool: {}", id, st.error().message);
  return Outcome::kRetry;
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
    const std::int64_t prev_last_us = c.last_us;
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
        // Damage and counter records (spool_events.h): integrity, not session events.
        if (what == kSpoolFaultEvent) {
          if (auto f = decode_spool_fault(r.json)) c.fault.merge(*f);
          break;
        }
        if (what == kStreamCountersEvent) {
          if (auto sc = decode_stream_counters(r.json)) c.counters.merge(*sc);
          break;
        }
        if (what == kLiveStreamEvent) {
          if (auto l = decode_live_stream(r.json)) c.live_stream = std::move(l);
          break;
        }
        if (what == kNodeLostEvent) {
          if (auto n = decode_node_lost(r.json)) {
            c.node_lost = std::move(n);
            c.node_lost_us = std::max(c.node_lost_us, r.time_us);
            c.last_us = prev_last_us;  // not the end of the audio: the window lost with the node
          }
          break;
        }
        if (what == kFinalizeFailedEvent) {
          if (auto f = decode_finalize_failure(r.json)) {
            ++c.finalize_failures;
            c.last_finalize_error = f->error;
          }
          break;
        }
        if (what == "streams") {
          apply_streams_event(c, r.time_us, j);
          what += ": " + get_or<std::string>(j, "why", "");
        }
        if (auto u = metadata::decode_cisco_event(j)) c.cisco_updates.push_back(std::move(*u));
        c.events.emplace_back(r.time_us, what);
      }
    }
  };
  first.on_metadata = [&](const MetadataRecordView& r) {
    c.last_us = std::max(c.last_us, r.time_us);
    c.metadata.emplace_back(r.time_us, std::string(r.xml));
  };
  // The last packet of a stream carries audio past its arrival time (one
  // packet's duration): the recording must not end before that audio does,
  // even when the BYE came right after the packet. The duration of a packet
  // is the RTP timestamp step of its stream (same SSRC), in the clock of its
  // payload type.
  struct LastPacket {
    std::uint32_t ssrc = 0, ts = 0, step = 0;
    std::uint8_t pt = 0;
    std::int64_t arrival_us = -1;
  };
  std::map<std::uint8_t, LastPacket> last_packets;
  first.on_rtp = [&](const RtpRecordView& r) {
    c.last_us = std::max(c.last_us, r.arrival_us);
    LastPacket& lp = last_packets[r.stream];
    auto step = static_cast<std::uint32_t>(r.ts - lp.ts);
    if (lp.arrival_us >= 0 && r.ssrc == lp.ssrc && step > 0 && step < 0x8000) lp.step = step;
    lp.ssrc = r.ssrc;
    lp.ts = r.ts;
    lp.pt = r.payload_type;
    lp.arrival_us = r.arrival_us;
  };
  auto summary = read_spool(spool_path, first, options_.fs);
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
  for (const auto& [index, lp] : last_packets) {
    auto h = c.streams.find(index);
    if (lp.step == 0 || h == c.streams.end() || h->second.payload_maps.empty()) continue;
    const auto& payloads = h->second.payload_maps.back().second.payloads;
    auto pl = payloads.find(lp.pt);
    std::uint32_t clock = pl == payloads.end() ? 8000 : get_or<std::uint32_t>(pl->second, "clock_rate", 8000);
    if (clock == 0) continue;
    // At most 200 ms: a longer step is a timestamp jump, not a packet.
    std::int64_t tail_us = std::min<std::int64_t>(200000, std::int64_t{lp.step} * 1000000 / clock);
    duration_us = std::max(duration_us, lp.arrival_us + tail_us);
  }
  if (duration_us < 0) duration_us = 0;
  // A lost node: the recording runs to the end of the window in which audio
  // may have reached that node unshipped; that window is one node_lost gap.
  std::int64_t audio_end_us = duration_us;
  if (c.node_lost) duration_us = std::max(duration_us, c.node_lost_us);
  report.complete = c.has_end && get_or<bool>(c.end, "complete", true);
  std::int64_t start_unix_us = get_or<std::int64_t>(c.start, "start_unix_us", 0);
  std::string recording_id = get_or<std::string>(c.start, "recording_id", report.recording_id);
  if (recording_id.empty()) recording_id = report.recording_id;

  // Output rate: 16 kHz when any recorded stream is wideband.
  std::uint32_t rate = 8000;
  for (const auto& [index, h] : c.streams)
    for (const auto& [at, m] : h.payload_maps)
      for (const auto& [pt, pl] : m.payloads)
        if (auto info = media::codec_from_sdp(get_or<std::string>(pl, "encoding", ""),
                                            get_or<std::uint32_t>(pl, "clock_rate", 0)))
        rate = std::max(rate, info->native_rate);
  if (options_.format == AudioFormat::kWavUlaw || options_.format == AudioFormat::kWavAlaw) rate = 8000;

  TimelineParams params;
  params.output_rate = rate;
  params.duration_us = duration_us;
  params.reorder_window_ms = options_.reorder_window_ms;

  std::map<std::size_t, StreamTrack> tracks;
  std::map<std::size_t, StreamAccounting> accounting;
  for (auto& [index, h] : c.streams) {
    if (!h.recorded) continue;
    std::vector<std::pair<std::int64_t, bool>> active;
    for (const auto& [at, paused] : h.paused) active.emplace_back(at, !paused);
    accounting.emplace(index, StreamAccounting(std::move(active), duration_us, options_.silence_warning_ms * 1000));
    if (h.payload_maps.empty()) continue;
    auto track = StreamTrack::create(params, codecs_of(h.payload_maps.front().second, h.label, report.problems));
    if (!track) {
      report.problems.push_back("stream " + h.label + ": " + track.error().message);
      continue;
    }
    for (std::size_t i = 1; i < h.payload_maps.size(); ++i)
      if (auto st = track->set_codecs(h.payload_maps[i].first,
                                      codecs_of(h.payload_maps[i].second, h.label, report.problems));
          !st)
        report.problems.push_back("stream " + h.label + ": " + st.error().message);
    for (std::size_t i = 0; i < h.paused.size(); ++i)
      track->set_paused(h.paused[i].first, h.paused[i].second, h.pause_causes[i]);
    tracks.emplace(index, std::move(track).value());
  }

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
  // Cisco headers of re-INVITEs (a transfer): the same updates the session manager applied.
  for (const auto& u : c.cisco_updates)
    if (auto next = metadata::merge_cisco_headers(md ? &*md : nullptr, u.values,
                                                  get_or<std::string>(c.start, "call_id", ""), u.time))
      md = std::move(next);

  std::vector<RecordedStream> recorded;
  for (const auto& [index, t] : tracks) recorded.push_back({index, c.streams[index].label});
  // The call-control hook's overrides (docs/integrations.md), kept in the start record.
  std::optional<CallDecision> decision;
  if (auto d = c.start.find("decision"); d != c.start.end()) {
    if (auto dd = decode_decision(*d))
      decision = std::move(dd).value();
    else
      report.problems.push_back("call-control decision unreadable, configuration used: " + dd.error().message);
  }
  AudioFormat format = options_.format;
  LayoutConfig layout_config = options_.layout;
  if (decision && decision->format)
    if (auto f = parse_audio_format(*decision->format)) format = *f;
  if (decision && decision->channel_layout) {
    const std::string& cl = *decision->channel_layout;
    if (cl == "caller-left") layout_config.caller_channel = CallerChannel::kLeft;
    if (cl == "caller-right") layout_config.caller_channel = CallerChannel::kRight;
    if (cl == "multichannel") layout_config.multi_stream_mode = MultiStreamMode::kMultichannel;
    if (cl == "mono-files") layout_config.multi_stream_mode = MultiStreamMode::kMonoFiles;
  }
  ChannelLayout layout = build_channel_layout(md ? &*md : nullptr, recorded, layout_config);

  PathFields pf;
  pf.start_unix_us = start_unix_us;
  pf.end_unix_us = start_unix_us + duration_us;
  pf.conversation_id = get_or<std::string>(c.start, "conversation_id", "");
  pf.recording_id = recording_id;
  pf.region = get_or<std::string>(c.start, "region", "");
  pf.node = get_or<std::string>(c.start, "node", "");
  pf.call_id = get_or<std::string>(c.start, "call_id", "");
  if (decision && decision->key_prefix) pf.key_prefix = *decision->key_prefix;
  std::string base = (std::filesystem::path(options_.recordings_dir) / pf.key_prefix /
                      (options_.relative_path ? options_.relative_path(pf) : recording_id)).string();

  // Pass 2: the audio, in arrival order, streamed into the files (docs/timeline.md "Streaming").
  auto audio = render_audio(spool_path, tracks, layout, base, format, rate, options_.fs,
                            [&](const RtpRecordView& r) {
                              if (auto a = accounting.find(r.stream); a != accounting.end())
                                a->second.on_packet(r.ssrc, r.seq, r.arrival_us);
                            });
  if (!audio) return audio.error();
  for (auto& [index, a] : accounting) a.finish();
  in.audio = std::move(audio->files);
  report.audio_paths = std::move(audio->paths);

  in.recording_id = recording_id;
  in.conversation_id = pf.conversation_id;
  in.conversation_id_rule = get_or<std::string>(c.start, "conversation_id_rule", "");
  in.recording_call_id = pf.call_id;
  if (md) {
    in.siprec_session_id = siprec_session_id_of(*md);
    in.communication_sessions = communication_sessions_of(*md);
  }
  in.fragment_of = !in.conversation_id.empty() ? in.conversation_id : in.siprec_session_id;
  if (options_.previous_fragment && !in.fragment_of.empty())
    in.previous_fragment = options_.previous_fragment(in.fragment_of, start_unix_us);
  in.participants = participants_of(layout, in.audio, md ? &*md : nullptr);
  for (const auto& [index, t] : tracks) {
    const auto& h = c.streams[index];
    StreamStats st = t.stats();
    StreamEntry e;
    e.index = index;
    e.label = h.label;
    e.codec = h.codec;
    e.srtp = h.srtp;
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
    if (st.samples_dropped_behind_horizon)
      report.problems.push_back("stream " + h.label + ": " +
                                std::to_string(st.samples_dropped_behind_horizon * 1000 / rate) +
                                " ms of audio placed more than 10 s in the past, dropped");
    if (st.decode_errors)
      report.problems.push_back("stream " + h.label + ": " + std::to_string(st.decode_errors) + " undecodable packet(s)");

    StreamIntegrity si;
    si.index = index;
    si.label = h.label;
    if (auto a = accounting.find(index); a != accounting.end()) {
      si.packets_expected = a->second.expected();
      si.packets_received = a->second.received();
      for (const auto& p : a->second.silences()) si.silences.push_back({p.start_ms, p.length_ms});
    }
    si.packets_lost = st.lost;
    si.packets_duplicated = st.duplicated;
    si.packets_late = st.late;
    si.packets_unexpected_payload_type = st.unknown_payload_type;
    // Un-negotiated payload types are decoded when static 0/8/9/18; the others could not be.
    si.packets_undecodable = st.decode_errors + st.unknown_payload_dropped;
    if (auto sc = c.counters.streams.find(index); sc != c.counters.streams.end()) {
      si.packets_wrong_source = sc->second.wrong_source;
      si.packets_kernel_dropped = sc->second.kernel_drops;
      si.srtp_auth_failures = sc->second.srtp_auth_failures;
      si.srtp_replays = sc->second.srtp_replays;
    }
    in.integrity.streams.push_back(std::move(si));
  }
  if (c.node_lost && duration_us > audio_end_us) {
    in.gaps.push_back({audio_end_us / 1000, duration_us / 1000 - audio_end_us / 1000, "node_lost", std::nullopt});
    if (!c.node_lost->problems.empty()) report.problems.push_back("partials: " + c.node_lost->problems);
  }
  place_streams(in.streams, layout, in.audio);
  for (auto& si : in.integrity.streams)
    for (const auto& s : in.streams)
      if (s.index == si.index && s.participant)
        for (const auto& p : in.participants)
          if (p.id == *s.participant) si.role = p.role;
  in.integrity.silence_threshold_ms = options_.silence_warning_ms;
  in.integrity.spool = SpoolIntegrity{c.fault.records_dropped, c.fault.write_errors, c.fault.sync_failures,
                                      summary->bytes_skipped, summary->records_corrupt, c.fault.error};
  in.integrity.finalize_failures = c.finalize_failures;
  in.integrity.last_finalize_error = c.last_finalize_error;
  const auto causes = integrity_causes(in.integrity);
  if (!causes.empty()) report.complete = false;
  in.warnings = integrity_warnings(in.integrity);
  // The live stream is off the durability path: its drops never make the recording incomplete.
  if (c.live_stream) {
    auto j = parse_json(c.live_stream->encode());
    j.erase("event");
    in.live_stream = std::move(j);
  }
  in.start_time = get_or<std::string>(c.start, "start_time", common::iso8601_from_unix_us(start_unix_us));
  in.end_time = common::iso8601_from_unix_us(start_unix_us + duration_us);
  in.duration_ms = duration_us / 1000;
  in.complete = report.complete;
  if (!report.complete) {
    std::string why;
    if (c.has_end && !get_or<bool>(c.end, "complete", true)) why = get_or<std::string>(c.end, "cause", "ended early");
    else if (!c.has_end && c.fault.write_errors)
      // The disk refused the spool's writes: the end of the call never reached it.
      why = "spool write failed (" + c.fault.error + "); the end of the call was not recorded";
    else if (!c.has_end && c.node_lost)
      why = "node " + c.node_lost->node + " (" + c.node_lost->region + ") lost during the call; rebuilt by " +
            c.node_lost->adopted_by + " from " + std::to_string(c.node_lost->partials) + " shipped partial(s)" +
            (c.node_lost->partials_skipped ? ", " + std::to_string(c.node_lost->partials_skipped) + " skipped" : "") +
            "; audio after " + common::iso8601_from_unix_us(start_unix_us + audio_end_us) + " lost";
    else if (!c.has_end) why = "gateway stopped during the call; recovered from the spool";
    for (const auto& cause : causes) why += (why.empty() ? "" : "; ") + cause;
    in.incomplete_reason = why;
  }
  in.gateway = {pf.node, pf.region};
  md.has_value() ? void(in.metadata = md) : void();
  for (const auto& [at, what] : c.events)
    in.events.push_back({common::iso8601_from_unix_us(start_unix_us + at), what});
  if (c.has_end)
    in.events.push_back({common::iso8601_from_unix_us(start_unix_us + c.end_us),
                         "end: " + get_or<std::string>(c.end, "cause", "")});

  nlohmann::json doc = build_recording_json(in);
  if (decision) doc["decision"] = encode_decision(*decision);
  if (!report.problems.empty()) doc["spool_problems"] = report.problems;
  report.json_path = base + ".json";
  auto st = common::write_file_atomically(report.json_path, render_recording_json(doc));
  if (!st) return st.error();
  if (options_.enqueue) {
    PublishedRecording pub{recording_id, pf, base, report.audio_paths, report.json_path, decision};
    if (auto q = options_.enqueue(pub); !q)
      return common::make_error(q.error().code, "queue deliveries of " + recording_id + " (spool " + spool_path +
                                                     " kept): " + q.error().message);
  }
  report.published = true;
  report.warnings = in.warnings;
  bump(metrics_.published);
  if (!report.complete) bump(metrics_.incomplete);
  count_warnings(in.integrity, metrics_.warnings);
  count_integrity(in, metrics_.integrity);
  if (!in.warnings.empty())
    log->warn("{}: published with {} warning(s): {}", recording_id, in.warnings.size(), in.warnings.front());
  log->info("{}: published {} ({} audio file(s), {} ms, complete={})", recording_id, report.json_path,
            report.audio_paths.size(), in.duration_ms, report.complete);
  if (options_.on_published) options_.on_published(recording_id, report.json_path);
  remove_spool();
  return report;
}

}  // namespace sgw::recording
