// Pre-encoded audio for the RTP legs: a tone or a WAV file is encoded ONCE per (codec, source)
// into 20 ms payloads that every stream then loops over, so sending a packet costs no encoding
// and no allocation. Built at start-up; immutable and shared read-only afterwards.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "media/codec.h"

namespace sgw::siprec_src {

inline constexpr std::uint32_t kPtimeMs = 20;

struct EncodedAudio {
  media::CodecId codec = media::CodecId::kPcma;
  std::uint8_t payload_type = 8;
  std::uint32_t ticks_per_frame = 160;  // RTP timestamp units per 20 ms frame
  std::vector<std::uint8_t> data;       // all payloads back to back
  std::vector<std::uint32_t> offsets;   // frame i is data[offsets[i], offsets[i+1])

  std::size_t frames() const { return offsets.empty() ? 0 : offsets.size() - 1; }
  std::span<const std::uint8_t> frame(std::size_t i) const {
    return {data.data() + offsets[i], offsets[i + 1] - offsets[i]};
  }
};

// A one-second loop of a tone at `hz` (an integer frequency repeats exactly every second).
// The encoder runs over two seconds and the second is kept, so stateful codecs (G.722, G.729,
// Opus) loop without a start-up transient. Errors from the codec layer ("codec.*").
common::Result<std::shared_ptr<const EncodedAudio>> encode_tone(media::CodecId codec, double hz);

// Encodes mono PCM at the codec's native rate (looped by the sender; the last partial frame is
// dropped). Error "audio.empty" when shorter than one frame.
common::Result<std::shared_ptr<const EncodedAudio>> encode_pcm(media::CodecId codec,
                                                               std::span<const std::int16_t> pcm);

// Reads a sound file with libsndfile, mixes it to mono and resamples it (linear) to `rate`.
// At most `max_seconds` are kept. Errors name the path ("audio.open", "audio.read").
common::Result<std::vector<std::int16_t>> load_audio_file(const std::string& path, std::uint32_t rate,
                                                          double max_seconds = 600);

// The audio of a call's two legs (0 caller, 1 agent), encoded once for a whole run: each leg
// from its sound file (the agent's falls back to the caller's), else from its tone.
using LegAudio = std::array<std::shared_ptr<const EncodedAudio>, 2>;
common::Result<LegAudio> encode_legs(media::CodecId codec, const std::string& wav_caller,
                                     const std::string& wav_agent, double tone_caller,
                                     double tone_agent);

// Codec names as on the command line: PCMU, PCMA, G722, G729, opus (case-insensitive).
common::Result<media::CodecId> parse_codec(std::string_view name);

}  // namespace sgw::siprec_src
