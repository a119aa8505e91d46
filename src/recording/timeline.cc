#include "recording/timeline.h"

#include <algorithm>
#include <array>
#include <limits>
#include <utility>

#include "media/reorder_buffer.h"
#include "recording/timeline_intervals.h"
#include "recording/timeline_resample.h"

namespace sgw::recording {

namespace {

// Numbers of the algorithm (docs/timeline.md explains each).
constexpr std::int64_t kAnchorWindowUs = 1'000'000;  // first anchor: min over 1 s of arrivals
constexpr std::int64_t kDriftWindowUs = 5'000'000;   // drift measured over 5 s windows
constexpr std::int64_t kJumpThresholdMs = 500;       // offset moving more than this = a jump
constexpr std::int64_t kJumpConfirmUs = 1'000'000;   // ... if it persists for 1 s of arrivals
constexpr std::int64_t kMaxConcealMs = 60;           // longer losses are silence
constexpr std::int64_t kCnTailMs = 20;               // silence after the last CN of a segment
constexpr std::int64_t kPendingSeconds = 3;          // pending buffer (anchor/jump) capacity
constexpr std::size_t kPendingEntries = 1024;
constexpr std::int64_t kMaxDurationUs = 7LL * 24 * 3600 * 1'000'000;
// Streaming (docs/timeline.md "Streaming"): samples this far behind the replay's time are final;
// a stream idle this long has what it holds placed; samples live in blocks, at most this many
// seconds of them per track while streaming.
constexpr std::int64_t kHorizonUs = 10'000'000;
constexpr std::int64_t kIdleUs = 2'000'000;
constexpr std::int64_t kBlockSamples = 4096;
constexpr std::int64_t kMaxBlockSeconds = 64;
// Inputs from the spool are not trusted: arrival times are clamped to
// +-14 days and a segment's timestamps to 2^40 ticks from its start, so no
// position arithmetic can overflow.
constexpr std::int64_t kMaxAbsTimeUs = 2 * kMaxDurationUs;
constexpr std::int64_t kMaxTicks = std::int64_t{1} << 40;

std::int64_t clamp_time(std::int64_t us) { return std::clamp(us, -kMaxAbsTimeUs, kMaxAbsTimeUs); }

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// Validation shared by create() and set_codecs().
common::Status check_codecs(const StreamCodecs& codecs) {
  auto clock_ok = [](std::uint32_t c) { return c >= 1000 && c <= 192000; };
  if (!clock_ok(codecs.telephone_event_clock))
    return common::make_error("timeline.bad_params", "telephone-event clock must be 1000..192000 Hz");
  for (const auto& [pt, clock] : codecs.more_telephone_events)
    if (!clock_ok(clock))
      return common::make_error("timeline.bad_params", "telephone-event clock must be 1000..192000 Hz");
  for (const auto& [pt, dec] : codecs.decoders)
    if (!dec || !clock_ok(dec->info().rtp_clock) || !clock_ok(dec->info().native_rate))
      return common::make_error("timeline.no_decoder",
                                "payload type " + std::to_string(pt) + " has no usable decoder");
  return common::Ok{};
}

std::optional<char> dtmf_digit(std::uint8_t event) {
  // RFC 4733 §3.2 table 3: 0-9, *, #, A-D.
  static constexpr std::array<char, 16> kDigits = {'0', '1', '2', '3', '4', '5', '6', '7',
                                                   '8', '9', '*', '#', 'A', 'B', 'C', 'D'};
  if (event < kDigits.size()) return kDigits[event];
  return std::nullopt;
}

}  // namespace

struct StreamTrack::Impl final : media::PacketSink {
  enum class Kind { kAudio, kConceal, kSilentLoss, kSilence, kDtmf };
  enum class Mode { kAnchoring, kLocked, kJumpCandidate };

  // One placeable thing, in segment RTP position (output samples since the
  // segment's first timestamp); the timeline position is offset + rtp.
  struct Entry {
    Kind kind = Kind::kAudio;
    std::int64_t rtp_start = 0;
    std::int64_t rtp_end = 0;
    std::int64_t arrival_us = 0;
    bool anchor = false;  // carries a usable arrival (o below)
    std::int64_t o = 0;   // arrival_pos - rtp_start
    std::size_t pcm_off = 0;
    std::size_t pcm_len = 0;
    std::size_t dtmf_index = 0;
  };

  struct CodecSlot {
    std::unique_ptr<media::Decoder> decoder;
    media::CodecInfo info{};
    bool seen = false;
  };

  // What each payload type means from `from_us` (arrival time) on: a slot index, or one of these.
  static constexpr std::uint8_t kPtUnknown = 0xff, kPtTelephoneEvent = 0xfe, kPtComfortNoise = 0xfd;
  static constexpr std::size_t kMaxSlots = 0xf0;
  struct PtMap {
    std::int64_t from_us = std::numeric_limits<std::int64_t>::min();
    std::array<std::uint8_t, 128> what{};
    std::array<std::uint32_t, 128> te_clock{};
  };

  struct Pause {
    std::int64_t start = 0, end = 0;  // output samples
    std::string cause;
  };

  struct DtmfState {
    std::int64_t tl_start = 0;
    bool placed = false;
  };

  Impl(const TimelineParams& p, StreamCodecs c)
      : params(p), reorder(media::ReorderConfig{.window_ms = p.reorder_window_ms}) {
    total = floor_div(p.duration_us * p.output_rate, 1'000'000);
    max_blocks = static_cast<std::size_t>(kMaxBlockSeconds * p.output_rate / kBlockSamples + 4);
    static_slot.fill(kPtUnknown);
    add_map(std::numeric_limits<std::int64_t>::min(), std::move(c));
    decode_buf.resize(media::Decoder::kMaxSamplesPerPacket);
    out_buf.resize(media::Decoder::kMaxSamplesPerPacket);
    pending.reserve(kPendingEntries);
    pending_pcm.reserve(static_cast<std::size_t>(kPendingSeconds * p.output_rate));
    jump_threshold = kJumpThresholdMs * p.output_rate / 1000;
    drift_threshold = std::max<std::int64_t>(1, std::int64_t{p.max_drift_correction_ms} * p.output_rate / 4000);
    drift_max_step = std::max<std::int64_t>(1, std::int64_t{p.max_drift_correction_ms} * p.output_rate / 1000);
  }

  std::int64_t arrival_pos(std::int64_t us) const {
    return floor_div(us * params.output_rate, 1'000'000);
  }
  std::int64_t rtp_pos(std::int64_t ext_ts) const {
    return floor_div((ext_ts - ext0) * params.output_rate, clock);
  }
  std::int64_t extend(std::uint32_t ts) {
    // RFC 3550 §5.1 timestamps wrap at 2^32: take the nearest cycle to the
    // previous packet's, as for sequence numbers.
    auto delta = static_cast<std::int32_t>(ts - static_cast<std::uint32_t>(last_ext));
    last_ext += delta;
    return last_ext;
  }

  // --- payload types -------------------------------------------------------

  void add_map(std::int64_t from_us, StreamCodecs c) {
    PtMap m;
    if (maps.empty()) {
      m.what.fill(kPtUnknown);
    } else {
      m = maps.back();  // a payload type keeps its meaning until renegotiated
    }
    m.from_us = from_us;
    for (auto& [pt, dec] : c.decoders) {
      if (pt >= 128) continue;
      const media::CodecInfo info = dec->info();
      const std::uint8_t prev = m.what[pt];
      if (prev < slots.size() && slots[prev].info.id == info.id && slots[prev].info.rtp_clock == info.rtp_clock)
        continue;  // same codec on the same PT: keep the decoder and its state
      if (slots.size() >= kMaxSlots) continue;
      slots.push_back(CodecSlot{std::move(dec), info, false});
      m.what[pt] = static_cast<std::uint8_t>(slots.size() - 1);
    }
    auto set_te = [&](std::uint8_t pt, std::uint32_t te_clock) {
      if (pt >= 128) return;
      m.what[pt] = kPtTelephoneEvent;
      m.te_clock[pt] = te_clock;
    };
    if (c.telephone_event_pt) set_te(*c.telephone_event_pt, c.telephone_event_clock);
    for (const auto& [pt, te_clock] : c.more_telephone_events) set_te(pt, te_clock);
    for (std::uint8_t pt : c.comfort_noise_pts)
      if (pt < 128) m.what[pt] = kPtComfortNoise;
    maps.push_back(m);
  }

  // The mapping in force for a packet that arrived at `arrival_us` (maps are few and packets come
  // nearly in arrival order: the cursor moves a step at a time).
  const PtMap& map_at(std::int64_t arrival_us) {
    while (map_cursor + 1 < maps.size() && maps[map_cursor + 1].from_us <= arrival_us) ++map_cursor;
    while (map_cursor > 0 && maps[map_cursor].from_us > arrival_us) --map_cursor;
    return maps[map_cursor];
  }

  // A payload type nobody negotiated: decoded anyway when its static meaning is unambiguous
  // (RFC 3551 table 4: 0 PCMU, 8 PCMA, 9 G722, 18 G729). kPtUnknown otherwise.
  std::uint8_t static_fallback(std::uint8_t pt) {
    if (static_slot[pt] != kPtUnknown) return static_slot[pt];
    auto info = media::codec_from_static_payload_type(pt);
    if (!info || slots.size() >= kMaxSlots) return kPtUnknown;
    auto dec = media::make_decoder(info->id);
    if (!dec) return kPtUnknown;
    slots.push_back(CodecSlot{std::move(dec).value(), *info, false});
    static_slot[pt] = static_cast<std::uint8_t>(slots.size() - 1);
    return static_slot[pt];
  }

  // --- feeding -------------------------------------------------------------

  void on_packet(const media::ReorderedPacket& p) override {
    if (p.new_segment || !in_segment) start_segment(p);
    std::int64_t ext = extend(p.timestamp);
    if (ext - ext0 > kMaxTicks || ext0 - ext > kMaxTicks) {
      start_segment(p);  // timestamps wandered absurdly far: start over
      ext = extend(p.timestamp);
    }
    const std::uint8_t pt = p.payload_type & 0x7f;
    const PtMap& map = maps.size() == 1 ? maps.front() : map_at(p.arrival_us);
    std::uint8_t what = map.what[pt];
    if (what == kPtTelephoneEvent) {
      handle_dtmf(p, ext, map.te_clock[pt]);
      return;
    }
    if (what == kPtComfortNoise) {
      handle_cn(p, ext);
      return;
    }
    if (what == kPtUnknown) {
      ++unknown_payload_type;
      what = static_fallback(pt);
      if (what == kPtUnknown) {
        ++unknown_payload_dropped;
        force_loss = true;
        return;
      }
    }
    CodecSlot& slot = slots[what];
    if (clock != 0 && slot.info.rtp_clock != clock) {
      // Same SSRC, a codec with another RTP clock (PCMU/8000 -> opus/48000):
      // the timestamps no longer count in one unit, so re-anchor.
      start_segment(p);
      ext = extend(p.timestamp);
    }
    if (clock == 0) clock = slot.info.rtp_clock;
    handle_audio(p, ext, slot);
  }

  void start_segment(const media::ReorderedPacket& p) {
    end_segment();
    in_segment = true;
    ++segments;
    ext0 = (std::int64_t{1} << 32) + p.timestamp;
    last_ext = ext0;
    clock = 0;
    mode = Mode::kAnchoring;
    pending.clear();
    pending_pcm.clear();
    pending_since = -1;
    pending_has_o = false;
    window_start = -1;
    have_prev_end = false;
    last_sample_at = std::numeric_limits<std::int64_t>::min();
    last_decoder = nullptr;
    have_committed_rtp_end = false;
    have_committed_tl_end = false;
    cn_from.reset();
    dtmf_active = false;
    force_loss = false;
  }

  void end_segment() {
    if (!in_segment) return;
    if (cn_from) close_cn(cn_last + kCnTailMs * params.output_rate / 1000, last_arrival);
    if (mode == Mode::kAnchoring) {
      if (!pending.empty()) anchor_pending();
    } else if (mode == Mode::kJumpCandidate) {
      confirm_jump();
    }
    in_segment = false;
  }

  // A seq gap reported by the reorder buffer before a packet at `rtp_start`.
  void handle_loss(std::int64_t rtp_start, std::int64_t arrival_us) {
    if (!have_prev_end || rtp_start <= prev_end_rtp) return;
    std::int64_t len = rtp_start - prev_end_rtp;
    if (len * 1000 <= kMaxConcealMs * params.output_rate && last_decoder != nullptr) {
      // Short loss: the codec's concealment (silence for G.711/G.722, PLC for
      // Opus/G.729), resampled like audio. Still reported as a "loss" gap.
      auto native = static_cast<std::size_t>(len * last_info.native_rate / params.output_rate);
      native = std::min(native, decode_buf.size());
      std::size_t n = last_decoder->conceal(native, decode_buf);
      ensure_out(len);
      std::int16_t prev = last_sample_at == prev_end_rtp ? last_sample : (n > 0 ? decode_buf[0] : 0);
      resample(std::span<const std::int16_t>(decode_buf).first(n), prev,
               std::span<std::int16_t>(out_buf).first(static_cast<std::size_t>(len)));
      Entry e{Kind::kConceal, prev_end_rtp, rtp_start, arrival_us, false, 0, 0, 0, 0};
      submit(e, std::span<const std::int16_t>(out_buf).first(static_cast<std::size_t>(len)));
      if (n > 0) {
        last_sample = decode_buf[n - 1];
        last_sample_at = rtp_start;
      }
    } else {
      Entry e{Kind::kSilentLoss, prev_end_rtp, rtp_start, arrival_us, false, 0, 0, 0, 0};
      submit(e, {});
    }
    prev_end_rtp = rtp_start;
  }

  void handle_audio(const media::ReorderedPacket& p, std::int64_t ext, CodecSlot& slot) {
    const std::int64_t rtp_start = rtp_pos(ext);
    if (cn_from) close_cn(rtp_start, p.arrival_us);
    if (p.lost_before > 0 || force_loss) handle_loss(rtp_start, p.arrival_us);
    force_loss = false;

    auto res = slot.decoder->decode(p.payload, decode_buf);
    if (!res.ok()) {
      // Undecodable payload: treated as lost (the hole before the next packet
      // becomes a "loss" gap).
      ++decode_errors;
      force_loss = true;
      return;
    }
    std::size_t n = std::min(*res, decode_buf.size());
    if (n == 0) return;
    if (!slot.seen) {
      slot.seen = true;
      codec_names.emplace_back(slot.info.name);
    }
    // RFC 3551 §4.5.2: G.722 counts 8000 ticks per second for 16000 samples,
    // so the tick span is samples * rtp_clock / native_rate.
    const std::int64_t ticks =
        static_cast<std::int64_t>(n) * slot.info.rtp_clock / std::max<std::uint32_t>(1, slot.info.native_rate);
    const std::int64_t rtp_end = rtp_pos(ext + ticks);
    const std::int64_t len = rtp_end - rtp_start;
    if (len <= 0) return;
    ensure_out(len);
    std::int16_t prev = last_sample_at == rtp_start ? last_sample : decode_buf[0];
    auto out = std::span<std::int16_t>(out_buf).first(static_cast<std::size_t>(len));
    resample(std::span<const std::int16_t>(decode_buf).first(n), prev, out);
    Entry e{Kind::kAudio, rtp_start, rtp_end, p.arrival_us, true,
            arrival_pos(p.arrival_us) - rtp_start, 0, 0, 0};
    submit(e, out);
    have_prev_end = true;
    prev_end_rtp = rtp_end;
    last_sample = decode_buf[n - 1];
    last_sample_at = rtp_end;
    last_decoder = slot.decoder.get();
    last_info = slot.info;
  }

  void handle_cn(const media::ReorderedPacket& p, std::int64_t ext) {
    // RFC 3389: the sender went quiet (DTX). Silence from this CN packet's
    // timestamp to the next audio packet is not a gap. We do not synthesise
    // comfort noise: a recording of silence should be silent.
    ++comfort_noise;
    if (clock == 0) clock = 8000;  // CN/8000 (PT 13); a dynamic CN follows the audio clock
    const std::int64_t pos = rtp_pos(ext);
    if (p.lost_before > 0 || force_loss) handle_loss(pos, p.arrival_us);
    force_loss = false;
    have_prev_end = false;
    last_sample_at = std::numeric_limits<std::int64_t>::min();
    if (!cn_from) cn_from = pos;
    cn_last = std::max(cn_last, pos);
    if (*cn_from > pos) cn_from = pos;
  }

  void close_cn(std::int64_t end, std::int64_t arrival_us) {
    if (cn_from && end > *cn_from) {
      Entry e{Kind::kSilence, *cn_from, end, arrival_us, false, 0, 0, 0, 0};
      submit(e, {});
    }
    cn_from.reset();
    cn_last = std::numeric_limits<std::int64_t>::min();
  }

  void handle_dtmf(const media::ReorderedPacket& p, std::int64_t ext, std::uint32_t te_clock) {
    ++telephone_events;
    if (clock == 0) clock = te_clock;
    // RFC 4733 §2.3: event(8) | E(1) R(1) volume(6) | duration(16).
    if (p.payload.size() < 4) {
      ++decode_errors;
      return;
    }
    const std::uint8_t event = p.payload[0];
    const bool end = (p.payload[1] & 0x80) != 0;
    const auto volume = static_cast<std::uint8_t>(p.payload[1] & 0x3f);
    const std::int64_t duration = (std::int64_t{p.payload[2]} << 8) | p.payload[3];
    const std::int64_t duration_ms = duration * 1000 / te_clock;
    auto digit = dtmf_digit(event);
    if (!digit) return;  // flash, tones etc. (RFC 4733 §3.2) are not digits
    if (!dtmf_active || ext != dtmf_ext_ts) {
      // A new event: RFC 4733 §2.5.1.1 identifies an event by its timestamp
      // (the event's start); every update repeats it.
      DtmfEvent ev;
      ev.digit = *digit;
      ev.duration_ms = duration_ms;
      ev.volume = volume;
      ev.ended = end;
      dtmf.push_back(ev);
      dtmf_state.push_back({});
      dtmf_active = true;
      dtmf_ext_ts = ext;
      dtmf_ended = end;
      const std::int64_t pos = rtp_pos(ext);
      Entry e{Kind::kDtmf, pos, pos, p.arrival_us, true, arrival_pos(p.arrival_us) - pos, 0, 0,
              dtmf.size() - 1};
      submit(e, {});
      return;
    }
    // §2.5.1.4: the end packet is sent three times; only the first counts.
    if (dtmf_ended) return;
    DtmfEvent& ev = dtmf.back();
    ev.duration_ms = end ? duration_ms : std::max(ev.duration_ms, duration_ms);
    if (end) {
      ev.ended = true;
      dtmf_ended = true;
    }
  }

  // --- placement -----------------------------------------------------------

  void ensure_out(std::int64_t len) {
    // Only a stream with packets longer than 120 ms at a rate far below the
    // output rate needs more; grows once.
    if (static_cast<std::size_t>(len) > out_buf.size()) out_buf.resize(static_cast<std::size_t>(len));
  }

  bool push_pending(const Entry& e, std::span<const std::int16_t> samples) {
    if (pending.size() >= kPendingEntries || pending_pcm.size() + samples.size() > pending_pcm.capacity())
      return false;
    Entry copy = e;
    copy.pcm_off = pending_pcm.size();
    copy.pcm_len = samples.size();
    pending_pcm.insert(pending_pcm.end(), samples.begin(), samples.end());
    pending.push_back(copy);
    if (pending_since < 0) pending_since = e.arrival_us;
    if (e.anchor) {
      pending_min_o = pending_has_o ? std::min(pending_min_o, e.o) : e.o;
      pending_has_o = true;
    }
    return true;
  }

  void commit_pending() {
    for (const Entry& e : pending)
      commit(e, std::span<const std::int16_t>(pending_pcm).subspan(e.pcm_off, e.pcm_len));
    pending.clear();
    pending_pcm.clear();
    pending_since = -1;
    pending_has_o = false;
  }

  void anchor_pending() {
    // Anchor: the least delayed packet of the first second decides where the
    // segment sits. Arrivals 3.000 s, 3.031 s, 3.012 s for rtp 0, 20, 40 ms ->
    // o = 3.000, 3.011, 2.972 s... min 2.972 s would mean the first packet was
    // 28 ms late. Jitter only ever delays, so the minimum is the best guess.
    if (pending_has_o) {
      offset = pending_min_o;
    } else {
      offset = arrival_pos(pending.front().arrival_us) - pending.front().rtp_start;
    }
    commit_pending();
    mode = Mode::kLocked;
    window_start = -1;
    first_window = true;
  }

  void confirm_jump() {
    // The RTP clock jumped and stayed jumped for a second of arrivals (or the
    // segment ended): re-anchor on the arrivals after the jump. The hole
    // between the last audio before and the first after is "timestamp_jump".
    if (!pending_has_o) {
      commit_pending();
      mode = Mode::kLocked;
      return;
    }
    const std::int64_t new_offset = pending_min_o;
    std::int64_t first_rtp = pending.front().rtp_start;
    for (const Entry& e : pending)
      if (e.kind == Kind::kAudio) {
        first_rtp = e.rtp_start;
        break;
      }
    if (have_committed_tl_end && new_offset + first_rtp > committed_tl_end)
      jumps.emplace_back(committed_tl_end, new_offset + first_rtp);
    offset = new_offset;
    ++timestamp_jumps;
    have_committed_rtp_end = false;
    commit_pending();
    mode = Mode::kLocked;
    window_start = -1;
    first_window = true;
  }

  void drift_update(const Entry& e) {
    if (window_start < 0) {
      window_start = e.arrival_us;
      window_min_o = e.o;
    } else {
      window_min_o = std::min(window_min_o, e.o);
    }
    if (e.arrival_us - window_start < kDriftWindowUs) return;
    const std::int64_t diff = window_min_o - offset;
    // After a 100 ppm drift for 60 s the least delayed packet of the last
    // 5 s arrived 6 ms "earlier" than the offset says (diff -48 at 8 kHz):
    // move the offset there; the next packet overwrites the last 6 ms (newer
    // wins). A slow clock gives a positive diff: the hole is zeros, covered.
    // The first window after an anchor may also refine it by less than the
    // threshold, but only downwards (a less delayed packet than the anchor's).
    if (std::abs(diff) > drift_threshold || (first_window && diff < 0)) {
      // A move larger than max_drift_correction_ms is no drift but a
      // timestamp jump below the 500 ms threshold (the sender froze its
      // clock for 300 ms): its hole is reported as "timestamp_jump".
      const std::int64_t step = diff;
      if (step > 0 && have_committed_rtp_end && e.rtp_start == committed_rtp_end) {
        const std::int64_t a = offset + e.rtp_start;
        if (step <= drift_max_step) {
          write_zeros(a, a + step);
          covered.add(std::max<std::int64_t>(a, 0), std::min(a + step, total));
        } else {
          jumps.emplace_back(a, a + step);
        }
      }
      offset += step;
      ++drift_corrections;
      drift_corrected_samples += step;
    }
    first_window = false;
    window_start = -1;
  }

  void submit(const Entry& e, std::span<const std::int16_t> samples) {
    switch (mode) {
      case Mode::kAnchoring:
        if (!push_pending(e, samples)) {
          anchor_pending();
          submit(e, samples);
          return;
        }
        if (pending_since >= 0 && e.arrival_us - pending_since >= kAnchorWindowUs) anchor_pending();
        return;
      case Mode::kLocked:
        if (e.anchor) {
          if (std::abs(e.o - offset) > jump_threshold) {
            // 500 ms off at once: a timestamp jump, or a network stall.
            // Hold packets until it is clear which.
            mode = Mode::kJumpCandidate;
            pending.clear();
            pending_pcm.clear();
            pending_since = -1;
            pending_has_o = false;
            push_pending(e, samples);
            return;
          }
          drift_update(e);
        }
        commit(e, samples);
        return;
      case Mode::kJumpCandidate:
        if (e.anchor && std::abs(e.o - offset) <= jump_threshold) {
          // Back in line: it was a stall (packets queued 600 ms, then a
          // burst). Place the held ones where their timestamps say.
          commit_pending();
          mode = Mode::kLocked;
          submit(e, samples);
          return;
        }
        if (!push_pending(e, samples)) {
          confirm_jump();
          submit(e, samples);
          return;
        }
        if (e.arrival_us - pending_since >= kJumpConfirmUs) confirm_jump();
        return;
    }
  }

  // --- sample store --------------------------------------------------------
  // Blocks of kBlockSamples, allocated where audio is written; missing blocks are zeros. Samples
  // below `horizon` are final: nothing is written there any more (the finaliser may have read
  // them). While streaming, at most max_blocks blocks exist.

  std::int16_t* block(std::int64_t index, bool create) {
    if (cached_block && index == cached_index) return cached_block;
    auto it = blocks.find(index);
    if (it == blocks.end()) {
      if (!create || (streaming && blocks.size() >= max_blocks)) return nullptr;
      std::unique_ptr<std::int16_t[]> b;
      if (free_blocks.empty()) {
        b = std::make_unique<std::int16_t[]>(static_cast<std::size_t>(kBlockSamples));
      } else {
        b = std::move(free_blocks.back());
        free_blocks.pop_back();
        std::fill_n(b.get(), kBlockSamples, std::int16_t{0});
      }
      it = blocks.emplace(index, std::move(b)).first;
    }
    cached_index = index;
    cached_block = it->second.get();
    return cached_block;
  }

  // Splits samples [a, a + n) at block boundaries: fn(block index, offset in the block, offset in
  // the range, length) for each piece, in order, until fn returns false. Returns the samples done.
  template <typename F>
  static std::int64_t for_blocks(std::int64_t a, std::int64_t n, F&& fn) {
    std::int64_t i = 0;
    while (i < n) {
      const std::int64_t off = (a + i) % kBlockSamples;
      const std::int64_t len = std::min(n - i, kBlockSamples - off);
      if (!fn((a + i) / kBlockSamples, off, i, len)) break;
      i += len;
    }
    return i;
  }

  // Writes src at sample a (a >= horizon); returns how many samples were stored (fewer only when
  // the block limit is reached).
  std::int64_t store(std::int64_t a, std::span<const std::int16_t> src) {
    return for_blocks(a, static_cast<std::int64_t>(src.size()), [&](std::int64_t bi, std::int64_t off, std::int64_t i, std::int64_t len) {
      std::int16_t* b = block(bi, true);
      if (b) std::copy_n(src.begin() + i, len, b + off);
      return b != nullptr;
    });
  }

  void write_zeros(std::int64_t a, std::int64_t b) {
    a = std::max(a, horizon);
    b = std::min(b, total);
    if (a >= b) return;
    for_blocks(a, b - a, [&](std::int64_t bi, std::int64_t off, std::int64_t, std::int64_t len) {
      if (std::int16_t* blk = block(bi, false)) std::fill_n(blk + off, len, std::int16_t{0});
      return true;
    });
  }

  // Audio or concealment for [ca, cb) (already clipped to the track): what lies behind the
  // horizon is dropped and counted (docs/timeline.md "Streaming").
  void place(std::int64_t a, std::int64_t ca, std::int64_t cb, std::span<const std::int16_t> samples, bool conceal) {
    const std::int64_t wa = std::max(ca, horizon);
    if (wa > ca) dropped_samples += std::min(cb, wa) - ca;
    if (wa >= cb) return;
    const std::int64_t stored = store(wa, samples.subspan(static_cast<std::size_t>(wa - a),
                                                          static_cast<std::size_t>(cb - wa)));
    dropped_samples += cb - wa - stored;
    if (stored == 0) return;
    covered.add(wa, wa + stored);
    if (conceal) loss.add(wa, wa + stored);
  }

  // The replay reached now_us (docs/timeline.md "Streaming").
  void advance(std::int64_t now_us) {
    streaming = true;
    if (finished) return;
    // A stream that sent nothing for kIdleUs: packets still waiting for a missing predecessor go
    // out, and a segment still anchoring (or holding a jump candidate) decides on what it has,
    // as at the stream's end. A stream that keeps sending is not affected: its reorder buffer
    // never holds packets that old, and its anchor window closes with its own packets.
    const std::int64_t idle_before = now_us - kIdleUs;
    reorder.flush(idle_before, *this);
    if (in_segment && last_arrival <= idle_before) {
      if (mode == Mode::kAnchoring && !pending.empty()) {
        anchor_pending();
      } else if (mode == Mode::kJumpCandidate) {
        confirm_jump();
      }
    }
    horizon = std::clamp(std::max(horizon, arrival_pos(now_us - kHorizonUs)), std::int64_t{0}, total);
  }

  void read(std::span<std::int16_t> out) {
    const auto n = static_cast<std::int64_t>(out.size());
    for_blocks(read_pos, n, [&](std::int64_t bi, std::int64_t off, std::int64_t i, std::int64_t len) {
      if (const std::int16_t* b = block(bi, false)) {
        std::copy_n(b + off, len, out.begin() + i);
      } else {
        std::fill_n(out.begin() + i, len, std::int16_t{0});
      }
      return true;
    });
    read_pos += n;
    // Blocks wholly read are not needed any more; keep a few for reuse.
    cached_block = nullptr;
    while (!blocks.empty() && (blocks.begin()->first + 1) * kBlockSamples <= read_pos) {
      if (free_blocks.size() < 4) free_blocks.push_back(std::move(blocks.begin()->second));
      blocks.erase(blocks.begin());
    }
  }

  void commit(const Entry& e, std::span<const std::int16_t> samples) {
    const std::int64_t a = offset + e.rtp_start;
    const std::int64_t b = offset + e.rtp_end;
    const std::int64_t ca = std::max<std::int64_t>(a, 0);
    const std::int64_t cb = std::min(b, total);
    switch (e.kind) {
      case Kind::kAudio:
      case Kind::kConceal:
        // Newer wins: a packet overlapping samples already written replaces them.
        if (ca < cb) place(a, ca, cb, samples, e.kind == Kind::kConceal);
        if (e.kind == Kind::kAudio) {
          committed_tl_end = b;
          have_committed_tl_end = true;
        }
        committed_rtp_end = e.rtp_end;
        have_committed_rtp_end = true;
        return;
      case Kind::kSilentLoss:
        loss.add(ca, cb);
        have_committed_rtp_end = false;
        return;
      case Kind::kSilence:
        write_zeros(ca, cb);
        covered.add(ca, cb);
        have_committed_rtp_end = false;
        return;
      case Kind::kDtmf:
        dtmf[e.dtmf_index].start_ms = floor_div(a * 1000, params.output_rate);
        dtmf_state[e.dtmf_index] = {a, true};
        return;
    }
  }

  // --- results -------------------------------------------------------------

  void finish() {
    reorder.finish(*this);
    end_segment();
    horizon = total;
    if (pause_open) {
      pauses.push_back({arrival_pos(pause_start_us), total, pause_cause});
      pause_open = false;
    }
    // A DTMF event replaces audio (RFC 4733 §2.6): its span is not missing media.
    for (std::size_t i = 0; i < dtmf.size(); ++i) {
      if (!dtmf_state[i].placed) continue;
      std::int64_t a = dtmf_state[i].tl_start;
      std::int64_t b = a + dtmf[i].duration_ms * params.output_rate / 1000;
      covered.add(std::max<std::int64_t>(a, 0), std::min(b, total));
    }
    compute_gaps();
  }

  void compute_gaps() {
    gaps.clear();
    std::vector<std::int64_t> points{0, total};
    covered.boundaries(points);
    loss.boundaries(points);
    for (const auto& p : pauses) {
      points.push_back(std::clamp<std::int64_t>(p.start, 0, total));
      points.push_back(std::clamp<std::int64_t>(p.end, 0, total));
    }
    for (const auto& [a, b] : jumps) {
      points.push_back(std::clamp<std::int64_t>(a, 0, total));
      points.push_back(std::clamp<std::int64_t>(b, 0, total));
    }
    std::sort(points.begin(), points.end());
    points.erase(std::unique(points.begin(), points.end()), points.end());
    const bool any = !covered.empty();
    const std::int64_t first_cov = any ? covered.first() : 0;
    const std::int64_t last_cov = any ? covered.last() : 0;
    for (std::size_t i = 0; i + 1 < points.size(); ++i) {
      const std::int64_t a = points[i], b = points[i + 1];
      if (a < 0 || b > total || a >= b) continue;
      std::string_view cause;
      if (covered.contains(a)) {
        if (!loss.contains(a)) continue;
        cause = "loss";  // concealed
      } else {
        for (const auto& p : pauses)
          if (a >= p.start && a < p.end) {
            cause = p.cause;
            break;
          }
        if (cause.empty()) {
          bool in_jump = false;
          for (const auto& [ja, jb] : jumps) in_jump = in_jump || (a >= ja && a < jb);
          if (loss.contains(a))
            cause = "loss";
          else if (in_jump)
            cause = "timestamp_jump";
          else if (!any)
            cause = "no_media";
          else if (b <= first_cov)
            cause = "late_start";
          else if (a >= last_cov)
            cause = "end";
          else
            cause = "no_media";
        }
      }
      if (!gaps.empty() && gaps.back().cause == cause &&
          gaps.back().start_sample + gaps.back().length_samples == a) {
        gaps.back().length_samples += b - a;
      } else {
        Gap g;
        g.start_sample = a;
        g.length_samples = b - a;
        g.cause = std::string(cause);
        gaps.push_back(std::move(g));
      }
    }
    const std::int64_t rate = params.output_rate;
    for (auto& g : gaps) {
      // Rounded to the nearest ms at both ends, so consecutive gaps tile.
      std::int64_t s = floor_div(g.start_sample * 1000 + rate / 2, rate);
      std::int64_t e = floor_div((g.start_sample + g.length_samples) * 1000 + rate / 2, rate);
      g.start_ms = s;
      g.length_ms = e - s;
    }
  }

  // Parameters and inputs.
  TimelineParams params;
  media::ReorderBuffer reorder;
  std::vector<CodecSlot> slots;  // decoders: negotiated ones, then static fallbacks (lazily)
  std::vector<PtMap> maps;       // by from_us; maps[0] from the beginning
  std::size_t map_cursor = 0;
  std::array<std::uint8_t, 128> static_slot{};  // fallback slot per static PT, or kPtUnknown

  // Output.
  std::int64_t total = 0;
  std::map<std::int64_t, std::unique_ptr<std::int16_t[]>> blocks;  // by block index
  std::vector<std::unique_ptr<std::int16_t[]>> free_blocks;
  std::int64_t cached_index = 0;
  std::int16_t* cached_block = nullptr;  // blocks[cached_index], or null
  std::size_t max_blocks = 0;
  bool streaming = false;   // advance() was called: the block limit applies
  std::int64_t horizon = 0;   // samples [0, horizon) are final
  std::int64_t read_pos = 0;  // samples [0, read_pos) were handed out by read()
  std::int64_t dropped_samples = 0;  // audio placed behind the horizon (or beyond the block limit)
  std::vector<std::int16_t> whole;   // samples(), built on demand
  IntervalSet covered;  // samples placed (audio, concealment, CN silence, DTMF, drift fill)
  IntervalSet loss;     // lost audio (concealed or not)
  std::vector<std::pair<std::int64_t, std::int64_t>> jumps;
  std::vector<Pause> pauses;
  bool pause_open = false;
  std::int64_t pause_start_us = 0;
  std::string pause_cause;
  std::vector<DtmfEvent> dtmf;
  std::vector<DtmfState> dtmf_state;
  std::vector<Gap> gaps;
  bool finished = false;

  // Counters beyond the reorder buffer's.
  std::int64_t first_arrival = -1, last_arrival = -1;
  std::vector<std::string> codec_names;
  std::uint64_t decode_errors = 0, unknown_payload_type = 0, unknown_payload_dropped = 0, comfort_noise = 0,
                telephone_events = 0, drift_corrections = 0, timestamp_jumps = 0;
  std::int64_t drift_corrected_samples = 0;
  std::uint32_t segments = 0;

  // Thresholds in output samples.
  std::int64_t jump_threshold = 0, drift_threshold = 0, drift_max_step = 0;

  // Current segment.
  bool in_segment = false;
  std::int64_t ext0 = 0, last_ext = 0;
  std::uint32_t clock = 0;
  Mode mode = Mode::kAnchoring;
  std::int64_t offset = 0;
  std::vector<Entry> pending;
  std::vector<std::int16_t> pending_pcm;
  std::int64_t pending_since = -1;
  std::int64_t pending_min_o = 0;
  bool pending_has_o = false;
  std::int64_t window_start = -1, window_min_o = 0;
  bool first_window = false;
  bool have_prev_end = false;
  std::int64_t prev_end_rtp = 0;
  std::int16_t last_sample = 0;
  std::int64_t last_sample_at = std::numeric_limits<std::int64_t>::min();
  media::Decoder* last_decoder = nullptr;  // non-owning: one of codecs' decoders
  media::CodecInfo last_info{};
  bool force_loss = false;
  bool have_committed_rtp_end = false;
  std::int64_t committed_rtp_end = 0;
  bool have_committed_tl_end = false;
  std::int64_t committed_tl_end = 0;
  std::optional<std::int64_t> cn_from;
  std::int64_t cn_last = std::numeric_limits<std::int64_t>::min();
  bool dtmf_active = false;
  std::int64_t dtmf_ext_ts = 0;
  bool dtmf_ended = false;

  std::vector<std::int16_t> decode_buf;
  std::vector<std::int16_t> out_buf;
};

common::Result<StreamTrack> StreamTrack::create(const TimelineParams& params, StreamCodecs codecs) {
  if (params.output_rate < 8000 || params.output_rate > 48000 || params.duration_us < 0 ||
      params.duration_us > kMaxDurationUs)
    return common::make_error("timeline.bad_params",
                              "output_rate must be 8000..48000 Hz and duration 0..7 days");
  if (auto st = check_codecs(codecs); !st) return st.error();
  return StreamTrack(std::make_unique<Impl>(params, std::move(codecs)));
}

StreamTrack::StreamTrack(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StreamTrack::StreamTrack(StreamTrack&&) noexcept = default;
StreamTrack& StreamTrack::operator=(StreamTrack&&) noexcept = default;
StreamTrack::~StreamTrack() = default;

common::Status StreamTrack::set_codecs(std::int64_t at_us, StreamCodecs codecs) {
  if (auto st = check_codecs(codecs); !st) return st;
  if (impl_->finished) return common::Ok{};
  at_us = clamp_time(at_us);
  if (at_us < impl_->maps.back().from_us) at_us = impl_->maps.back().from_us;
  impl_->add_map(at_us, std::move(codecs));
  return common::Ok{};
}

void StreamTrack::add_packet(const media::RtpPacketView& packet, std::int64_t arrival_us) {
  Impl& s = *impl_;
  if (s.finished) return;
  arrival_us = clamp_time(arrival_us);
  if (s.first_arrival < 0) s.first_arrival = arrival_us;
  s.last_arrival = std::max(s.last_arrival, arrival_us);
  media::ReorderInput in;
  in.seq = packet.sequence;
  in.timestamp = packet.timestamp;
  in.ssrc = packet.ssrc;
  in.arrival_us = arrival_us;
  in.payload_type = packet.payload_type;
  in.marker = packet.marker;
  in.payload = packet.payload;
  s.reorder.push(in, s);
}

void StreamTrack::set_paused(std::int64_t at_us, bool paused, std::string cause) {
  Impl& s = *impl_;
  if (s.finished) return;
  at_us = clamp_time(at_us);
  if (paused) {
    if (s.pause_open) return;
    s.pause_open = true;
    s.pause_start_us = at_us;
    s.pause_cause = cause == "hold" ? "hold" : "pause";
  } else if (s.pause_open) {
    s.pause_open = false;
    if (at_us > s.pause_start_us)
      s.pauses.push_back({s.arrival_pos(s.pause_start_us), s.arrival_pos(at_us), s.pause_cause});
  }
}

void StreamTrack::finish() {
  if (impl_->finished) return;
  impl_->finish();
  impl_->finished = true;
}

std::span<const std::int16_t> StreamTrack::samples() const {
  Impl& s = *impl_;
  if (static_cast<std::int64_t>(s.whole.size()) != s.total || !s.finished) {
    s.whole.assign(static_cast<std::size_t>(s.total), 0);
    for (const auto& [index, b] : s.blocks) {
      const std::int64_t a = index * kBlockSamples;
      const std::int64_t n = std::min(kBlockSamples, s.total - a);
      if (n > 0) std::copy_n(b.get(), n, s.whole.begin() + a);
    }
  }
  return s.whole;
}

void StreamTrack::advance(std::int64_t now_us) { impl_->advance(clamp_time(now_us)); }

std::int64_t StreamTrack::final_samples() const { return impl_->horizon; }

std::int64_t StreamTrack::total_samples() const { return impl_->total; }

std::size_t StreamTrack::read(std::span<std::int16_t> out) {
  Impl& s = *impl_;
  const auto n = std::min<std::int64_t>(static_cast<std::int64_t>(out.size()), s.horizon - s.read_pos);
  if (n <= 0) return 0;
  s.read(out.first(static_cast<std::size_t>(n)));
  return static_cast<std::size_t>(n);
}

std::vector<Gap> StreamTrack::gaps() const { return impl_->gaps; }

StreamStats StreamTrack::stats() const {
  const Impl& s = *impl_;
  const auto& r = s.reorder.stats();
  StreamStats out;
  out.received = r.received;
  out.lost = r.lost;
  out.late = r.late;
  out.duplicated = r.duplicates;
  out.reordered = r.reordered;
  out.first_arrival_us = s.first_arrival;
  out.last_arrival_us = s.last_arrival;
  out.ssrcs = r.ssrcs;
  out.codecs = s.codec_names;
  out.decode_errors = s.decode_errors;
  out.unknown_payload_type = s.unknown_payload_type;
  out.unknown_payload_dropped = s.unknown_payload_dropped;
  out.samples_dropped_behind_horizon = s.dropped_samples;
  out.comfort_noise = s.comfort_noise;
  out.telephone_events = s.telephone_events;
  out.drift_corrections = s.drift_corrections;
  out.drift_corrected_samples = s.drift_corrected_samples;
  out.timestamp_jumps = s.timestamp_jumps;
  out.segments = s.segments;
  return out;
}

std::vector<DtmfEvent> StreamTrack::dtmf_events() const { return impl_->dtmf; }

}  // namespace sgw::recording
