#include "media/codec.h"

#include <algorithm>
#include <array>
#include <climits>
#include <string>

#include "media/codec_internal.h"

// spandsp: only the headers we need (spandsp.h would pull in libtiff).
#include <spandsp/telephony.h>
#include <spandsp/bit_operations.h>
#include <spandsp/g711.h>
#include <spandsp/g722.h>

#include <opus.h>

namespace sgw::media {
namespace {

using common::make_error;
using common::Result;

constexpr std::array<CodecInfo, 5> kCodecs{{
    // RFC 3551 §4.5.14: PCMU/PCMA, one byte per 8 kHz sample.
    {CodecId::kPcmu, "PCMU", 8000, 8000, 20},
    {CodecId::kPcma, "PCMA", 8000, 8000, 20},
    // RFC 3551 §4.5.2: G.722 samples at 16 kHz but its RTP clock is 8000
    // (an error in RFC 1890 kept for compatibility).
    {CodecId::kG722, "G722", 8000, 16000, 20},
    // RFC 3551 §4.5.6: 10 ms frames of 10 bytes.
    {CodecId::kG729, "G729", 8000, 8000, 20},
    // RFC 7587 §4.1: the RTP clock is always 48000; we decode at 16 kHz
    // (wideband; see docs/codecs.md).
    {CodecId::kOpus, "opus", 48000, 16000, 20},
}};

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

common::Error empty_payload() { return make_error("codec.empty_payload", "empty RTP payload"); }
common::Error too_long(std::size_t bytes) {
  return make_error("codec.payload_too_long",
                    "RTP payload of " + std::to_string(bytes) + " bytes decodes to more than " +
                        std::to_string(Decoder::kMaxSamplesPerPacket) + " samples");
}
common::Error out_too_small(std::size_t need, std::size_t have) {
  return make_error("codec.out_too_small", "need " + std::to_string(need) +
                                               " output samples, buffer holds " + std::to_string(have));
}

// Writes silence; the shared conceal() of codecs without PLC.
std::size_t write_silence(std::size_t samples, std::span<std::int16_t> out) {
  std::size_t n = std::min(samples, out.size());
  std::fill_n(out.begin(), n, std::int16_t{0});
  return n;
}

// ---- G.711 (ITU-T G.711; RFC 3551 §4.5.14) ----

// The expansion of every code, tabulated from spandsp's (bit-identical by construction; the
// finaliser decodes a byte per sample, and a load is cheaper than the bit arithmetic).
struct G711Tables {
  std::array<std::int16_t, 256> ulaw{};
  std::array<std::int16_t, 256> alaw{};
  G711Tables() {
    for (int b = 0; b < 256; ++b) {
      ulaw[static_cast<std::size_t>(b)] = ulaw_to_linear(static_cast<std::uint8_t>(b));
      alaw[static_cast<std::size_t>(b)] = alaw_to_linear(static_cast<std::uint8_t>(b));
    }
  }
};

const G711Tables& g711_tables() {
  static const G711Tables t;
  return t;
}

class G711Decoder final : public Decoder {
 public:
  explicit G711Decoder(CodecId id)
      : id_(id), table_(id == CodecId::kPcmu ? g711_tables().ulaw.data() : g711_tables().alaw.data()) {}
  CodecInfo info() const override { return codec_info(id_); }

  Result<std::size_t> decode(std::span<const std::uint8_t> payload,
                             std::span<std::int16_t> out) override {
    if (payload.empty()) return empty_payload();
    if (payload.size() > kMaxSamplesPerPacket) return too_long(payload.size());
    if (payload.size() > out.size()) return out_too_small(payload.size(), out.size());
    const std::int16_t* t = table_;
    std::transform(payload.begin(), payload.end(), out.begin(), [t](std::uint8_t b) { return t[b]; });
    return payload.size();
  }

  std::size_t conceal(std::size_t samples, std::span<std::int16_t> out) override {
    return write_silence(samples, out);
  }

 private:
  CodecId id_;
  const std::int16_t* table_;  // g711_tables(): static
};

class G711Encoder final : public Encoder {
 public:
  explicit G711Encoder(CodecId id) : id_(id) {}
  CodecInfo info() const override { return codec_info(id_); }

  Result<std::size_t> encode(std::span<const std::int16_t> pcm, std::span<std::uint8_t> out) override {
    if (pcm.empty() || pcm.size() > Decoder::kMaxSamplesPerPacket) {
      return make_error("codec.bad_frame_size", "G.711 frame of " + std::to_string(pcm.size()) + " samples");
    }
    if (out.size() < pcm.size()) return make_error("codec.out_too_small", "G.711 payload buffer too small");
    if (id_ == CodecId::kPcmu) {
      std::transform(pcm.begin(), pcm.end(), out.begin(), [](std::int16_t s) { return linear_to_ulaw(s); });
    } else {
      std::transform(pcm.begin(), pcm.end(), out.begin(), [](std::int16_t s) { return linear_to_alaw(s); });
    }
    return pcm.size();
  }

 private:
  CodecId id_;
};

// ---- G.722 at 64 kbit/s (spandsp; RFC 3551 §4.5.2: one byte per two 16 kHz samples) ----

struct G722DecodeFree {
  void operator()(g722_decode_state_t* s) const { g722_decode_free(s); }
};
struct G722EncodeFree {
  void operator()(g722_encode_state_t* s) const { g722_encode_free(s); }
};

class G722Decoder final : public Decoder {
 public:
  explicit G722Decoder(g722_decode_state_t* s) : state_(s) {}
  CodecInfo info() const override { return codec_info(CodecId::kG722); }

  Result<std::size_t> decode(std::span<const std::uint8_t> payload,
                             std::span<std::int16_t> out) override {
    if (payload.empty()) return empty_payload();
    if (payload.size() > kMaxSamplesPerPacket / 2) return too_long(payload.size());
    const std::size_t need = payload.size() * 2;
    if (need > out.size()) return out_too_small(need, out.size());
    int n = g722_decode(state_.get(), out.data(), payload.data(), static_cast<int>(payload.size()));
    if (n < 0) return make_error("codec.invalid_packet", "G.722 decode failed");
    return static_cast<std::size_t>(n);
  }

  std::size_t conceal(std::size_t samples, std::span<std::int16_t> out) override {
    return write_silence(samples, out);
  }

 private:
  std::unique_ptr<g722_decode_state_t, G722DecodeFree> state_;
};

class G722Encoder final : public Encoder {
 public:
  explicit G722Encoder(g722_encode_state_t* s) : state_(s) {}
  CodecInfo info() const override { return codec_info(CodecId::kG722); }

  Result<std::size_t> encode(std::span<const std::int16_t> pcm, std::span<std::uint8_t> out) override {
    if (pcm.empty() || pcm.size() % 2 != 0 || pcm.size() > Decoder::kMaxSamplesPerPacket) {
      return make_error("codec.bad_frame_size", "G.722 frame of " + std::to_string(pcm.size()) + " samples");
    }
    if (out.size() < pcm.size() / 2) return make_error("codec.out_too_small", "G.722 payload buffer too small");
    int n = g722_encode(state_.get(), out.data(), pcm.data(), static_cast<int>(pcm.size()));
    if (n < 0) return make_error("codec.encode_failed", "G.722 encode failed");
    return static_cast<std::size_t>(n);
  }

 private:
  std::unique_ptr<g722_encode_state_t, G722EncodeFree> state_;
};

// ---- Opus (libopus; RFC 6716, RFC 7587), decoded and encoded at 16 kHz mono ----

constexpr opus_int32 kOpusRate = 16000;
constexpr std::size_t kOpusPlcQuantum = kOpusRate / 400;     // PLC needs multiples of 2.5 ms
constexpr std::size_t kOpusMaxFrame = kOpusRate * 120 / 1000;  // RFC 6716 §3.2.5: 120 ms max

struct OpusDecoderFree {
  void operator()(OpusDecoder* d) const { opus_decoder_destroy(d); }
};
struct OpusEncoderFree {
  void operator()(OpusEncoder* e) const { opus_encoder_destroy(e); }
};

class OpusDecoderImpl final : public Decoder {
 public:
  explicit OpusDecoderImpl(OpusDecoder* d) : dec_(d) {}
  CodecInfo info() const override { return codec_info(CodecId::kOpus); }

  Result<std::size_t> decode(std::span<const std::uint8_t> payload,
                             std::span<std::int16_t> out) override {
    // RFC 6716 §3.1: a packet has at least the TOC byte; opus_decode would
    // treat an empty one as a loss.
    if (payload.empty()) return empty_payload();
    if (payload.size() > internal::kMaxPayloadBytes) return too_long(payload.size());
    const auto len = static_cast<opus_int32>(payload.size());
    int samples = opus_packet_get_nb_samples(payload.data(), len, kOpusRate);
    if (samples <= 0) return make_error("codec.invalid_packet", std::string("Opus: ") + opus_strerror(samples));
    const auto need = static_cast<std::size_t>(samples);
    if (need > kOpusMaxFrame) return too_long(payload.size());
    if (need > out.size()) return out_too_small(need, out.size());
    int n = opus_decode(dec_.get(), payload.data(), len, out.data(), samples, 0);
    if (n < 0) return make_error("codec.invalid_packet", std::string("Opus: ") + opus_strerror(n));
    plc_left_ = kOpusRate * kMaxPlcMs / 1000;
    return static_cast<std::size_t>(n);
  }

  std::size_t conceal(std::size_t samples, std::span<std::int16_t> out) override {
    const std::size_t total = std::min(samples, out.size());
    std::size_t done = 0;
    // Opus PLC (opus_decode with no data) while the budget lasts.
    while (done < total && plc_left_ > 0) {
      std::size_t want = std::min({total - done, plc_left_, kOpusMaxFrame});
      std::size_t chunk = want - want % kOpusPlcQuantum;
      int n = 0;
      if (chunk > 0) {
        n = opus_decode(dec_.get(), nullptr, 0, out.data() + done, static_cast<int>(chunk), 0);
        if (n <= 0) break;
      } else {
        // Less than 2.5 ms wanted: conceal a whole quantum and keep its start.
        n = opus_decode(dec_.get(), nullptr, 0, scratch_.data(), static_cast<int>(kOpusPlcQuantum), 0);
        if (n <= 0) break;
        n = static_cast<int>(std::min(want, static_cast<std::size_t>(n)));
        std::copy_n(scratch_.begin(), n, out.begin() + static_cast<std::ptrdiff_t>(done));
      }
      const auto written = std::min(static_cast<std::size_t>(n), total - done);
      done += written;
      plc_left_ -= std::min(plc_left_, written);
    }
    write_silence(total - done, out.subspan(done));
    return total;
  }

 private:
  std::unique_ptr<OpusDecoder, OpusDecoderFree> dec_;
  std::size_t plc_left_ = 0;  // no PLC before the first good packet: silence
  std::array<std::int16_t, kOpusPlcQuantum> scratch_{};
};

class OpusEncoderImpl final : public Encoder {
 public:
  explicit OpusEncoderImpl(OpusEncoder* e) : enc_(e) {}
  CodecInfo info() const override { return codec_info(CodecId::kOpus); }

  Result<std::size_t> encode(std::span<const std::int16_t> pcm, std::span<std::uint8_t> out) override {
    const std::size_t n = pcm.size();
    // RFC 6716 §2.1.4: 2.5, 5, 10, 20, 40 or 60 ms per frame.
    const bool valid = n * 400 == kOpusRate || n * 200 == kOpusRate || n * 100 == kOpusRate ||
                       n * 50 == kOpusRate || n * 25 == kOpusRate || n * 50 == kOpusRate * 3;
    if (!valid) return make_error("codec.bad_frame_size", "Opus frame of " + std::to_string(n) + " samples");
    if (out.empty()) return make_error("codec.out_too_small", "Opus payload buffer empty");
    const auto cap = static_cast<opus_int32>(std::min<std::size_t>(out.size(), INT32_MAX));
    opus_int32 bytes = opus_encode(enc_.get(), pcm.data(), static_cast<int>(n), out.data(), cap);
    if (bytes < 0) return make_error("codec.encode_failed", std::string("Opus: ") + opus_strerror(bytes));
    return static_cast<std::size_t>(bytes);
  }

 private:
  std::unique_ptr<OpusEncoder, OpusEncoderFree> enc_;
};

[[maybe_unused]] common::Error unavailable(CodecId id) {
  return make_error("codec.unavailable",
                    std::string(codec_info(id).name) + " is not built in (SGW_WITH_G729=OFF)");
}

}  // namespace

Decoder::~Decoder() = default;
Encoder::~Encoder() = default;

CodecInfo codec_info(CodecId id) {
  for (const auto& c : kCodecs) {
    if (c.id == id) return c;
  }
  return kCodecs[0];  // unreachable for a valid enumerator
}

std::optional<CodecInfo> codec_from_sdp(std::string_view encoding, std::uint32_t clock_rate) {
  for (const auto& c : kCodecs) {
    if (iequals(encoding, c.name) && clock_rate == c.rtp_clock) return c;
  }
  // "G729A" is not a registered subtype but some endpoints use it for
  // Annex A, which is bitstream-compatible with G.729 (RFC 3551 §4.5.6).
  if (iequals(encoding, "G729A") && clock_rate == 8000) return codec_info(CodecId::kG729);
  return std::nullopt;
}

std::optional<CodecInfo> codec_from_static_payload_type(std::uint8_t payload_type) {
  switch (payload_type) {  // RFC 3551 table 4
    case 0: return codec_info(CodecId::kPcmu);
    case 8: return codec_info(CodecId::kPcma);
    case 9: return codec_info(CodecId::kG722);
    case 18: return codec_info(CodecId::kG729);
    default: return std::nullopt;
  }
}

bool codec_available(CodecId id) {
#if defined(SGW_WITH_G729) && SGW_WITH_G729
  (void)id;
  return true;
#else
  return id != CodecId::kG729;
#endif
}

std::uint64_t samples_to_rtp_ticks(const CodecInfo& info, std::uint64_t samples) {
  return samples * info.rtp_clock / info.native_rate;
}

std::uint64_t rtp_ticks_to_samples(const CodecInfo& info, std::uint64_t ticks) {
  return ticks * info.native_rate / info.rtp_clock;
}

common::Result<std::unique_ptr<Decoder>> make_decoder(CodecId id) {
  switch (id) {
    case CodecId::kPcmu:
    case CodecId::kPcma:
      return std::unique_ptr<Decoder>(std::make_unique<G711Decoder>(id));
    case CodecId::kG722: {
      g722_decode_state_t* s = g722_decode_init(nullptr, 64000, 0);
      if (s == nullptr) return make_error("codec.init_failed", "g722_decode_init failed");
      return std::unique_ptr<Decoder>(std::make_unique<G722Decoder>(s));
    }
    case CodecId::kG729:
#if defined(SGW_WITH_G729) && SGW_WITH_G729
      return internal::make_g729_decoder();
#else
      return unavailable(id);
#endif
    case CodecId::kOpus: {
      int err = OPUS_OK;
      OpusDecoder* d = opus_decoder_create(kOpusRate, 1, &err);
      if (d == nullptr || err != OPUS_OK) {
        if (d != nullptr) opus_decoder_destroy(d);
        return make_error("codec.init_failed", std::string("opus_decoder_create: ") + opus_strerror(err));
      }
      return std::unique_ptr<Decoder>(std::make_unique<OpusDecoderImpl>(d));
    }
  }
  return make_error("codec.unavailable", "unknown codec id");
}

common::Result<std::unique_ptr<Encoder>> make_encoder(CodecId id) {
  switch (id) {
    case CodecId::kPcmu:
    case CodecId::kPcma:
      return std::unique_ptr<Encoder>(std::make_unique<G711Encoder>(id));
    case CodecId::kG722: {
      g722_encode_state_t* s = g722_encode_init(nullptr, 64000, 0);
      if (s == nullptr) return make_error("codec.init_failed", "g722_encode_init failed");
      return std::unique_ptr<Encoder>(std::make_unique<G722Encoder>(s));
    }
    case CodecId::kG729:
#if defined(SGW_WITH_G729) && SGW_WITH_G729
      return internal::make_g729_encoder();
#else
      return unavailable(id);
#endif
    case CodecId::kOpus: {
      int err = OPUS_OK;
      OpusEncoder* e = opus_encoder_create(kOpusRate, 1, OPUS_APPLICATION_VOIP, &err);
      if (e == nullptr || err != OPUS_OK) {
        if (e != nullptr) opus_encoder_destroy(e);
        return make_error("codec.init_failed", std::string("opus_encoder_create: ") + opus_strerror(err));
      }
      return std::unique_ptr<Encoder>(std::make_unique<OpusEncoderImpl>(e));
    }
  }
  return make_error("codec.unavailable", "unknown codec id");
}

}  // namespace sgw::media
