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
constexpr std::int64_t kMaxDurationUs = 24LL * 3600 * 1'000'000;
// Inputs from the spool are not trusted: arrival times are clamped to
// +-48 h and a segment's timestamps to 2^40 ticks from its start, so no
// position arithmetic can overflow.
constexpr std::int64_t kMaxAbsTimeUs = 2 * kMaxDurationUs;
constexpr std::int64_t kMaxTicks = std::int64_t{1} << 40;

std::int64_t clamp_time(std::int64_t us) { return std::clamp(us, -kMaxAbsTimeUs, kMaxAbsTimeUs); }

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
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

  struct Pause {
    std::int64_t start = 0, end = 0;  // output samples
    std::string cause;
  };

  struct DtmfState {
    std::int64_t tl_start = 0;
    bool placed = false;
  };

  Impl(const TimelineParams& p, StreamCodecs c)
      : params(p),
        reorder(media::ReorderConfig{.window_ms = p.reorder_window_ms}),
        te_pt(c.telephone_event_pt),
        te_clock(c.telephone_event_clock),
        cn_pts(std::move(c.comfort_noise_pts)) {
    total = floor_div(p.duration_us * p.output_rate, 1'000'000);
    pcm.assign(static_cast<std::size_t>(total), 0);
    for (auto& [pt, dec] : c.decoders) {
      CodecSlot slot;
      slot.info = dec->info();
      slot.decoder = std::move(dec);
      codecs.emplace(pt, std::move(slot));
    }
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

  // --- feeding -------------------------------------------------------------

  void on_packet(const media::ReorderedPacket& p) override {
    if (p.new_segment || !in_segment) start_segment(p);
    std::int64_t ext = extend(p.timestamp);
    if (ext - ext0 > kMaxTicks || ext0 - ext > kMaxTicks) {
      start_segment(p);  // timestamps wandered absurdly far: start over
      ext = extend(p.timestamp);
    }
    if (te_pt && p.payload_type == *te_pt) {
      handle_dtmf(p, ext);
      return;
    }
    if (std::find(cn_pts.begin(), cn_pts.end(), p.payload_type) != cn_pts.end()) {
      handle_cn(p, ext);
      return;
    }
    auto it = codecs.find(p.payload_type);
    if (it == codecs.end()) {
      ++unknown_payload_type;
      force_loss = true;
      return;
    }
    CodecSlot& slot = it->second;
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

  void handle_dtmf(const media::ReorderedPacket& p, std::int64_t ext) {
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

  void write_zeros(std::int64_t a, std::int64_t b) {
    a = std::max<std::int64_t>(a, 0);
    b = std::min(b, total);
    if (a < b) std::fill(pcm.begin() + a, pcm.begin() + b, std::int16_t{0});
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
        if (ca < cb) {
          std::copy(samples.begin() + (ca - a), samples.begin() + (cb - a), pcm.begin() + ca);
          covered.add(ca, cb);
          if (e.kind == Kind::kConceal) loss.add(ca, cb);
        }
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
  std::map<std::uint8_t, CodecSlot> codecs;
  std::optional<std::uint8_t> te_pt;
  std::uint32_t te_clock;
  std::vector<std::uint8_t> cn_pts;

  // Output.
  std::int64_t total = 0;
  std::vector<std::int16_t> pcm;
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
  std::uint64_t decode_errors = 0, unknown_payload_type = 0, comfort_noise = 0,
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
                              "output_rate must be 8000..48000 Hz and duration 0..24 h");
  if (codecs.telephone_event_clock < 1000 || codecs.telephone_event_clock > 192000)
    return common::make_error("timeline.bad_params", "telephone-event clock must be 1000..192000 Hz");
  for (const auto& [pt, dec] : codecs.decoders)
    if (!dec || dec->info().rtp_clock < 1000 || dec->info().rtp_clock > 192000 ||
        dec->info().native_rate < 1000 || dec->info().native_rate > 192000)
      return common::make_error("timeline.no_decoder",
                                "payload type " + std::to_string(pt) + " has no usable decoder");
  return StreamTrack(std::make_unique<Impl>(params, std::move(codecs)));
}

StreamTrack::StreamTrack(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StreamTrack::StreamTrack(StreamTrack&&) noexcept = default;
StreamTrack& StreamTrack::operator=(StreamTrack&&) noexcept = default;
StreamTrack::~StreamTrack() = default;

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

std::span<const std::int16_t> StreamTrack::samples() const { return impl_->pcm; }

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
