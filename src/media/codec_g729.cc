// G.729 / G.729A / Annex B through bcg729 (GPL-3.0: compiled only with
// SGW_WITH_G729, see docs/codecs.md).
#include <algorithm>
#include <array>
#include <string>

#include "media/codec.h"
#include "media/codec_internal.h"

extern "C" {
#include <bcg729/decoder.h>
#include <bcg729/encoder.h>
}

namespace sgw::media::internal {
namespace {

using common::make_error;
using common::Result;

// RFC 3551 §4.5.6: a payload is zero or more 10-byte frames (10 ms, 80
// samples each) followed by at most one 2-byte Annex B SID frame.
constexpr std::size_t kFrameBytes = 10;
constexpr std::size_t kSidBytes = 2;
constexpr std::size_t kFrameSamples = 80;
constexpr std::size_t kMaxPlcSamples = 8000 * Decoder::kMaxPlcMs / 1000;

struct DecoderClose {
  void operator()(bcg729DecoderChannelContextStruct* c) const { closeBcg729DecoderChannel(c); }
};
struct EncoderClose {
  void operator()(bcg729EncoderChannelContextStruct* c) const { closeBcg729EncoderChannel(c); }
};

class G729Decoder final : public Decoder {
 public:
  explicit G729Decoder(bcg729DecoderChannelContextStruct* c) : ctx_(c) {}
  CodecInfo info() const override { return codec_info(CodecId::kG729); }

  Result<std::size_t> decode(std::span<const std::uint8_t> payload,
                             std::span<std::int16_t> out) override {
    if (payload.empty()) return make_error("codec.empty_payload", "empty RTP payload");
    const std::size_t frames = payload.size() / kFrameBytes;
    const std::size_t tail = payload.size() % kFrameBytes;
    if (tail != 0 && tail != kSidBytes) {
      return make_error("codec.bad_length", "G.729 payload of " + std::to_string(payload.size()) +
                                                " bytes is not N*10 (+2 SID) bytes");
    }
    const std::size_t need = (frames + (tail == kSidBytes ? 1 : 0)) * kFrameSamples;
    if (need > kMaxSamplesPerPacket) {
      return make_error("codec.payload_too_long",
                        "G.729 payload of " + std::to_string(payload.size()) + " bytes is too long");
    }
    if (need > out.size()) {
      return make_error("codec.out_too_small", "need " + std::to_string(need) + " output samples, buffer holds " +
                                                   std::to_string(out.size()));
    }
    std::size_t written = 0;
    for (std::size_t f = 0; f < frames; ++f) {
      bcg729Decoder(ctx_.get(), payload.data() + f * kFrameBytes, kFrameBytes, 0, 0, 0, out.data() + written);
      written += kFrameSamples;
    }
    if (tail == kSidBytes) {
      // Annex B SID: the decoder generates comfort noise from it.
      bcg729Decoder(ctx_.get(), payload.data() + frames * kFrameBytes, kSidBytes, 0, 1, 0, out.data() + written);
      written += kFrameSamples;
    }
    plc_left_ = kMaxPlcSamples;
    return written;
  }

  std::size_t conceal(std::size_t samples, std::span<std::int16_t> out) override {
    const std::size_t total = std::min(samples, out.size());
    std::size_t done = 0;
    // G.729 §4.4: frame erasure concealment, frame by frame.
    static constexpr std::array<std::uint8_t, kFrameBytes> kNoBits{};
    while (done < total && plc_left_ > 0) {
      const std::size_t want = std::min(total - done, plc_left_);
      if (want >= kFrameSamples) {
        bcg729Decoder(ctx_.get(), kNoBits.data(), kFrameBytes, 1, 0, 0, out.data() + done);
        done += kFrameSamples;
        plc_left_ -= kFrameSamples;
      } else {
        bcg729Decoder(ctx_.get(), kNoBits.data(), kFrameBytes, 1, 0, 0, scratch_.data());
        std::copy_n(scratch_.begin(), want, out.begin() + static_cast<std::ptrdiff_t>(done));
        done += want;
        plc_left_ -= want;
      }
    }
    std::fill(out.begin() + static_cast<std::ptrdiff_t>(done), out.begin() + static_cast<std::ptrdiff_t>(total),
              std::int16_t{0});
    return total;
  }

 private:
  std::unique_ptr<bcg729DecoderChannelContextStruct, DecoderClose> ctx_;
  std::size_t plc_left_ = 0;  // no concealment before the first good packet
  std::array<std::int16_t, kFrameSamples> scratch_{};
};

class G729Encoder final : public Encoder {
 public:
  explicit G729Encoder(bcg729EncoderChannelContextStruct* c) : ctx_(c) {}
  CodecInfo info() const override { return codec_info(CodecId::kG729); }

  Result<std::size_t> encode(std::span<const std::int16_t> pcm, std::span<std::uint8_t> out) override {
    if (pcm.empty() || pcm.size() % kFrameSamples != 0 || pcm.size() > Decoder::kMaxSamplesPerPacket) {
      return make_error("codec.bad_frame_size", "G.729 frame of " + std::to_string(pcm.size()) + " samples");
    }
    const std::size_t frames = pcm.size() / kFrameSamples;
    if (out.size() < frames * kFrameBytes) {
      return make_error("codec.out_too_small", "G.729 payload buffer too small");
    }
    std::size_t bytes = 0;
    for (std::size_t f = 0; f < frames; ++f) {
      std::uint8_t len = 0;
      bcg729Encoder(ctx_.get(), pcm.data() + f * kFrameSamples, out.data() + bytes, &len);
      // VAD is off, so every frame is a full 10-byte one.
      if (len != kFrameBytes) return make_error("codec.encode_failed", "bcg729 produced a non-speech frame");
      bytes += len;
    }
    return bytes;
  }

 private:
  std::unique_ptr<bcg729EncoderChannelContextStruct, EncoderClose> ctx_;
};

}  // namespace

common::Result<std::unique_ptr<Decoder>> make_g729_decoder() {
  bcg729DecoderChannelContextStruct* c = initBcg729DecoderChannel();
  if (c == nullptr) return make_error("codec.init_failed", "initBcg729DecoderChannel failed");
  return std::unique_ptr<Decoder>(std::make_unique<G729Decoder>(c));
}

common::Result<std::unique_ptr<Encoder>> make_g729_encoder() {
  bcg729EncoderChannelContextStruct* c = initBcg729EncoderChannel(0);  // VAD/DTX off
  if (c == nullptr) return make_error("codec.init_failed", "initBcg729EncoderChannel failed");
  return std::unique_ptr<Encoder>(std::make_unique<G729Encoder>(c));
}

}  // namespace sgw::media::internal
