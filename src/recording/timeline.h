// StreamTrack: turns the RTP packets of one recorded stream (replayed from the
// spool with their arrival times) into a PCM track on the recording session's
// timeline, plus the list of gaps, DTMF events and statistics.
//
// Every track of a session is built with the same TimelineParams, so all
// tracks have exactly duration_us * output_rate / 1e6 samples and sample i of
// every track is the same instant: tracks can be mixed or interleaved as is.
//
// Placement (docs/timeline.md): packets are put back in sequence order by a
// media::ReorderBuffer, decoded, and placed by their RTP timestamps, anchored
// to ARRIVAL time: offset = min(arrival_pos - rtp_pos) over the first second
// of each SSRC segment (the least delayed packets), refined over sliding 5 s
// windows so that clock drift between the sender and us stays below a few ms.
// Anything nothing was placed on is silence (zeros) and is reported as a Gap.
// When two packets cover the same samples, the later one in sequence order
// overwrites (newer wins).
//
// Times: arrival_us and pause times are microseconds since the recording
// session started (timeline position 0). Thread: one thread at a time; the
// finaliser builds each track on its own. Packet contents are never trusted:
// nothing here throws or asserts on them; oddities are counted in stats().
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "media/codec.h"
#include "media/rtp_packet_view.h"

namespace sgw::recording {

struct TimelineParams {
  std::uint32_t output_rate = 8000;          // Hz of every track (8000..48000)
  std::int64_t duration_us = 0;              // wall-clock length of the recording session
  std::uint32_t reorder_window_ms = 60;      // media::ReorderConfig::window_ms
  std::uint32_t max_drift_correction_ms = 20;  // tracks stay within this of each other
};

// What the stream's SDP negotiated. Decoders are owned by the track.
struct StreamCodecs {
  std::map<std::uint8_t, std::unique_ptr<media::Decoder>> decoders;  // by payload type
  std::optional<std::uint8_t> telephone_event_pt;  // RFC 4733 (telephone-event/<clock>)
  std::uint32_t telephone_event_clock = 8000;
  // Further telephone-event payload types and their clocks (one per answered clock rate, e.g.
  // telephone-event/8000 and /48000 when PCMA and opus were both answered).
  std::map<std::uint8_t, std::uint32_t> more_telephone_events;
  std::vector<std::uint8_t> comfort_noise_pts{13};  // RFC 3389 (static PT 13, or dynamic CN)
};

// A stretch of the track where no received audio was placed (or, for "loss",
// where audio was lost and concealed). Causes:
//   late_start      from 0 to the first placed sample
//   loss            sequence numbers missing inside a segment (concealed if <= 60 ms)
//   pause / hold    inside an interval given to set_paused() (the cause given)
//   no_media        between received audio with no sequence loss (the sender
//                   stopped, an SSRC change), or the whole track when nothing came
//   timestamp_jump  at a re-anchor after the RTP timestamps jumped by > 500 ms
//   end             from the last placed sample to the end of the session
struct Gap {
  std::int64_t start_ms = 0;
  std::int64_t length_ms = 0;
  std::string cause;
  std::int64_t start_sample = 0;  // exact, in output samples
  std::int64_t length_samples = 0;
};

// One RFC 4733 event: digits '0'-'9', '*', '#', 'A'-'D'.
struct DtmfEvent {
  char digit = '0';
  std::int64_t start_ms = 0;     // on the session timeline
  std::int64_t duration_ms = 0;  // from the event's (final) duration field
  std::uint8_t volume = 0;       // dBm0 below 0, RFC 4733 §2.3.4
  bool ended = false;            // an end packet (E bit) was received
};

struct StreamStats {
  std::uint64_t received = 0;
  std::uint64_t lost = 0;
  std::uint64_t late = 0;
  std::uint64_t duplicated = 0;
  std::uint64_t reordered = 0;
  std::int64_t first_arrival_us = -1;  // -1: nothing received
  std::int64_t last_arrival_us = -1;
  std::vector<std::uint32_t> ssrcs;
  std::vector<std::string> codecs;  // encoding names in order of first decode
  std::uint64_t decode_errors = 0;
  // Packets in a payload type that was not negotiated when they arrived. Those in an unambiguous
  // static payload type (0 PCMU, 8 PCMA, 9 G722, 18 G729; RFC 3551 table 4) are decoded anyway;
  // the others (unknown_payload_dropped) are dropped and their span is a "loss" gap.
  std::uint64_t unknown_payload_type = 0;
  std::uint64_t unknown_payload_dropped = 0;
  std::uint64_t comfort_noise = 0;
  std::uint64_t telephone_events = 0;  // telephone-event packets
  std::uint64_t drift_corrections = 0;
  std::int64_t drift_corrected_samples = 0;  // sum of offset moves (signed)
  std::uint64_t timestamp_jumps = 0;
  std::uint32_t segments = 0;  // SSRC segments (incl. seq resets, clock changes)
  // Streaming: decoded samples that landed behind the final point (or beyond the per-track block
  // limit) and were dropped. 0 unless the SRC's timestamps put audio seconds into the past.
  std::int64_t samples_dropped_behind_horizon = 0;
};

class StreamTrack {
 public:
  // Errors: "timeline.bad_params" (output_rate outside 8000..48000, negative
  // duration or longer than 7 days, telephone-event clock outside
  // 1000..192000), "timeline.no_decoder" (a null decoder, or one whose
  // rtp_clock/native_rate is outside 1000..192000).
  static common::Result<StreamTrack> create(const TimelineParams& params, StreamCodecs codecs);

  StreamTrack(StreamTrack&&) noexcept;
  StreamTrack& operator=(StreamTrack&&) noexcept;
  ~StreamTrack();

  // From at_us on (packets that ARRIVE at or after it), the stream's payload types mean `codecs`
  // (a re-INVITE/UPDATE changed them, e.g. PCMA -> PCMU). A payload type the new mapping does not
  // mention keeps its earlier meaning (packets in flight); one it maps to the same codec keeps its
  // decoder (and its state). Calls in non-decreasing at_us, before the packets they concern.
  // Errors as for create() ("timeline.no_decoder", "timeline.bad_params"); the mapping is then
  // not applied.
  common::Status set_codecs(std::int64_t at_us, StreamCodecs codecs);

  // One received packet, in arrival order (arrival_us non-decreasing;
  // clamped to +-14 days). The payload is copied; the view may die afterwards.
  void add_packet(const media::RtpPacketView& packet, std::int64_t arrival_us);
  // Pause/hold intervals from the session's events (any order relative to
  // add_packet). cause "hold" gives hold gaps; anything else "pause".
  void set_paused(std::int64_t at_us, bool paused, std::string cause);
  // Ends the stream: drains the reorder buffer, places what is pending,
  // computes the gaps. Call once; later add_packet() calls are ignored.
  void finish();

  // Streaming (the finaliser, docs/timeline.md "Streaming"): memory per track stays bounded
  // whatever the call's length. advance(now_us): the replay of the session's spool reached now_us
  // (the arrival time of the latest record of ANY of its streams, non-decreasing): samples more
  // than 10 s behind it become final, and a stream idle for 2 s has the packets it still holds
  // placed, as at its end. Audio placed behind the final point afterwards is dropped and counted
  // (samples_dropped_behind_horizon) - only an SRC whose timestamps put audio seconds into the
  // past does that.
  void advance(std::int64_t now_us);
  // Samples [0, final_samples()) will not change any more; after finish(), all of them.
  std::int64_t final_samples() const;
  // duration_us * output_rate / 1e6 (rounded down).
  std::int64_t total_samples() const;
  // Copies the next final samples (from where the previous read() stopped) into `out`, at most
  // out.size(), frees them, and returns how many.
  std::size_t read(std::span<std::int16_t> out);

  // The whole track in memory: exactly duration_us * output_rate / 1e6 samples (rounded down),
  // built on demand. For tests and short tracks; not after read().
  std::span<const std::int16_t> samples() const;
  // After finish(): sorted, non-overlapping, adjacent ones of one cause merged.
  std::vector<Gap> gaps() const;
  StreamStats stats() const;
  // In the order the events started.
  std::vector<DtmfEvent> dtmf_events() const;

 private:
  struct Impl;
  explicit StreamTrack(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sgw::recording
