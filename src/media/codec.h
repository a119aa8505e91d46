// Audio codecs for recorded RTP streams: G.711 µ-law/A-law, G.722, G.729
// (optional, bcg729) and Opus. A Decoder turns one RTP payload into mono
// PCM16 at the codec's native rate; an Encoder does the reverse (used by tests
// and by siprec-src to send real audio).
//
// Thread: a Decoder/Encoder belongs to one stream and is used from one thread
// (the stream's media worker); different instances are independent.
// Packet path: decode() never throws, never asserts on the payload and never
// allocates; anything it cannot decode is a Result error. See docs/codecs.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "common/result.h"

namespace sgw::media {

enum class CodecId { kPcmu, kPcma, kG722, kG729, kOpus };

struct CodecInfo {
  CodecId id;
  std::string_view name;         // SDP encoding name as we offer it ("PCMU", "opus", ...)
  std::uint32_t rtp_clock;       // SDP/RTP clock rate (G.722: 8000, RFC 3551 §4.5.2; Opus: 48000, RFC 7587 §4.1)
  std::uint32_t native_rate;     // decoded PCM rate: 8000 G.711/G.729; 16000 G.722 and Opus
  std::uint32_t frame_ms_hint;   // usual packet duration (ptime) for this codec
};

// Static description of a codec (always available, even for a codec that was
// not built in).
CodecInfo codec_info(CodecId id);

// Maps an SDP rtpmap encoding name and clock rate to a codec, matching the
// name case-insensitively (RFC 4855 §3: media subtype names are
// case-insensitive). Accepts PCMU/8000, PCMA/8000, G722/8000, G729/8000 (and
// G729A/8000) and opus/48000 (RFC 7587 §7: always 48000). Any other pair,
// including a known name with the wrong clock, is nullopt.
std::optional<CodecInfo> codec_from_sdp(std::string_view encoding, std::uint32_t clock_rate);

// Static payload types of RFC 3551 table 4 (0 PCMU, 8 PCMA, 9 G722, 18 G729),
// for an SDP m= line without an rtpmap; nullopt for anything else.
std::optional<CodecInfo> codec_from_static_payload_type(std::uint8_t payload_type);

// False only for G.729 in a build without SGW_WITH_G729 (bcg729 is GPL-3.0).
bool codec_available(CodecId id);

// RTP timestamp ticks spanned by `samples` decoded samples of this codec
// (G.722: half the samples; Opus: three times; G.711/G.729: the same).
std::uint64_t samples_to_rtp_ticks(const CodecInfo& info, std::uint64_t samples);
// Decoded samples spanned by `ticks` RTP timestamp units (inverse of the above,
// rounded down).
std::uint64_t rtp_ticks_to_samples(const CodecInfo& info, std::uint64_t ticks);

class Decoder {
 public:
  // Upper bound on what one decode()/conceal() call produces: 120 ms at
  // 48 kHz, the longest Opus packet (RFC 6716 §3.2.5) at the highest rate we
  // could ever decode at. A buffer of this size is always big enough.
  static constexpr std::size_t kMaxSamplesPerPacket = 5760;

  virtual ~Decoder();
  virtual CodecInfo info() const = 0;

  // Decodes one RTP payload into PCM16 mono at info().native_rate and returns
  // the number of samples written to `out`. Errors (nothing is written that
  // the caller may use): "codec.empty_payload", "codec.payload_too_long"
  // (more than kMaxSamplesPerPacket samples), "codec.bad_length" (G.729: not
  // N×10 bytes plus an optional 2-byte SID), "codec.out_too_small",
  // "codec.invalid_packet" (Opus rejected the packet). A successful decode
  // resets the concealment state.
  virtual common::Result<std::size_t> decode(std::span<const std::uint8_t> payload,
                                             std::span<std::int16_t> out) = 0;

  // Fills min(samples, out.size()) samples for audio that never arrived and
  // returns that count. Codecs with packet-loss concealment use it (Opus
  // PLC, G.729 frame erasure) for the first kMaxPlcMs after the last good
  // packet, then write silence; G.711/G.722 always write silence.
  virtual std::size_t conceal(std::size_t samples, std::span<std::int16_t> out) = 0;

  // How long a gap is concealed by the codec before it turns to silence.
  static constexpr std::uint32_t kMaxPlcMs = 120;
};

// A fresh decoder for one stream. Error "codec.unavailable" for G.729 in a
// build without it, "codec.init_failed" if the library refuses to start.
common::Result<std::unique_ptr<Decoder>> make_decoder(CodecId id);

class Encoder {
 public:
  // Upper bound on one encoded payload for at most
  // Decoder::kMaxSamplesPerPacket input samples (G.711: a byte per sample).
  static constexpr std::size_t kMaxPayloadBytes = 5760;

  virtual ~Encoder();
  virtual CodecInfo info() const = 0;

  // Encodes `pcm` (mono PCM16 at info().native_rate) into one RTP payload and
  // returns its length. Every codec accepts 20 ms (frame_samples(20));
  // otherwise: G.711 any length, G.722 an even length, G.729 a multiple of
  // 10 ms, Opus 2.5/5/10/20/40/60 ms. Errors: "codec.bad_frame_size",
  // "codec.out_too_small", "codec.encode_failed".
  virtual common::Result<std::size_t> encode(std::span<const std::int16_t> pcm,
                                             std::span<std::uint8_t> out) = 0;

  // Samples of native-rate PCM in `ms` milliseconds.
  std::size_t frame_samples(std::uint32_t ms) const {
    return static_cast<std::size_t>(info().native_rate) * ms / 1000;
  }
};

// A fresh encoder: G.729 without VAD/DTX (always 10-byte frames), Opus in
// VOIP mode at 16 kHz mono input. Errors as for make_decoder().
common::Result<std::unique_ptr<Encoder>> make_encoder(CodecId id);

}  // namespace sgw::media
