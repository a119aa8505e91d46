// FrameBuilder: turns the RTP packets of one recording (copies from the tap, arrival order) into
// 20 ms stereo frames at 8 kHz - channel 0 "external" (the caller), channel 1 "internal" (the
// agent) - on the session clock, for the live stream (docs/integrations.md "Live audio").
//
// Placement follows the recording timeline's idea (docs/timeline.md) in a live, simpler form:
// each packet is decoded with the project's codecs (media/codec.h), resampled to 8 kHz and put at
// its RTP timestamp anchored to ARRIVAL time (the least delayed packet of the first second of an
// SSRC wins; a timestamp jump of more than 500 ms re-anchors). A frame is emitted as soon as it is
// complete - every channel that has audio from before the frame's end has each of the frame's
// samples placed - and the clock is kCompleteMarginUs (20 ms, at most `delay_ms`) past its end;
// otherwise once the clock is `delay_ms` past its end, so packets up to that late (lost, reordered,
// a channel that fell silent) still land in it. Later ones are dropped (late_samples). Where
// nothing was placed the frame is silence. This is not the recording: the recording is built from
// the spool by the finaliser; this is a best-effort live view of it.
//
// Thread: the streaming thread only. Never throws on packet contents.
#pragma once

#include <array>
#include <bitset>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "media/codec.h"
#include "stream/live_stream.h"

namespace sgw::stream {

inline constexpr std::uint32_t kStreamRate = 8000;
inline constexpr std::size_t kFrameSamples = 160;  // 20 ms at 8 kHz

struct Frame {
  std::int64_t index = 0;  // frame number on the session clock (start = index * 20 ms)
  std::array<std::array<std::int16_t, kFrameSamples>, 2> channels{};  // [0] external, [1] internal
  std::int64_t first_arrival_us = -1;  // earliest arrival of a packet placed in it; -1: none
  bool paused = false;                 // every recorded stream was paused at the frame's start
};

struct FrameBuilderStats {
  std::uint64_t packets = 0;
  std::uint64_t decode_errors = 0;
  std::uint64_t unknown_payload = 0;
  std::uint64_t late_samples = 0;  // arrived after their frame was emitted
};

class FrameBuilder {
 public:
  explicit FrameBuilder(std::uint32_t delay_ms);

  // A "streams" event (session_manager's JSON): codecs per stream from its payload lists, and
  // whether every recorded stream is paused. `external_stream` / `internal_stream`: which
  // m-line goes to which channel (from the channel layout); others are not streamed.
  void set_channels(std::optional<std::size_t> external_stream, std::optional<std::size_t> internal_stream);
  // Pause state changes apply from the event's time on (frames starting at or after it).
  void apply_streams_event(std::int64_t at_us, const std::string& json);
  // m-line index and a=label of the recorded streams, in m-line order (for the channel layout).
  std::vector<std::pair<std::size_t, std::string>> recorded_streams() const;

  void add_packet(const PacketSlot& p);
  // Emits (in order) every frame that is complete and ends at least kCompleteMarginUs before
  // now_us (session clock), or ends at least delay_ms before it; stops at the first that is
  // neither.
  void advance(std::int64_t now_us, const std::function<void(const Frame&)>& out);
  std::int64_t next_frame() const { return next_frame_; }

  const FrameBuilderStats& stats() const { return stats_; }

 private:
  struct StreamState {
    std::map<std::uint8_t, std::unique_ptr<media::Decoder>> decoders;  // by payload type
    std::optional<int> channel;  // 0 / 1, or none
    std::string label;
    bool recorded = false;
    bool paused = false;
    bool have_ssrc = false;
    std::uint32_t ssrc = 0;
    std::uint32_t last_ts = 0;
    std::int64_t ext_ts = 0;      // extended timestamp of the last packet (RTP clock units)
    std::int64_t anchor_arrival_us = 0;
    std::int64_t offset = 0;      // session sample position = ts8k + offset
    std::uint32_t rtp_clock = 8000;
  };
  static constexpr std::size_t kRingFrames = 256;  // 5.12 s of frames in flight at most
  static constexpr std::int64_t kCompleteMarginUs = 20'000;
  static constexpr std::int64_t kNoAudio = INT64_MAX;

  Frame& frame_at(std::int64_t index);
  bool complete(std::int64_t index) const;

  std::uint32_t delay_ms_;
  std::map<std::size_t, StreamState> streams_;
  bool all_paused_ = false;
  std::vector<std::pair<std::int64_t, bool>> pause_changes_;  // (at_us, paused), time order
  bool frame_paused_ = false;
  std::vector<Frame> ring_;
  std::vector<std::int64_t> ring_index_;  // which frame each ring slot holds (-1: none)
  std::vector<std::array<std::bitset<kFrameSamples>, 2>> filled_;  // per ring slot: samples placed
  std::array<std::int64_t, 2> first_pos_{kNoAudio, kNoAudio};  // earliest sample placed per channel
  std::int64_t next_frame_ = 0;
  FrameBuilderStats stats_;
  std::array<std::int16_t, media::Decoder::kMaxSamplesPerPacket> pcm_{};
  std::array<std::int16_t, media::Decoder::kMaxSamplesPerPacket> pcm8k_{};
};

}  // namespace sgw::stream
