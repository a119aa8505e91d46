#include "media/codec.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

// The G.711 arithmetic the decoders used before their tables (the reference).
#include <spandsp/telephony.h>
#include <spandsp/bit_operations.h>
#include <spandsp/g711.h>

namespace sgw::media {
namespace {

constexpr CodecId kAllCodecs[] = {CodecId::kPcmu, CodecId::kPcma, CodecId::kG722, CodecId::kG729,
                                  CodecId::kOpus};

std::string codec_name(CodecId id) { return std::string(codec_info(id).name); }

std::vector<std::int16_t> sine(std::uint32_t rate, double hz, double seconds, double amplitude) {
  std::vector<std::int16_t> pcm(static_cast<std::size_t>(rate * seconds));
  for (std::size_t i = 0; i < pcm.size(); ++i) {
    pcm[i] = static_cast<std::int16_t>(
        std::lround(amplitude * std::sin(2 * std::numbers::pi * hz * static_cast<double>(i) / rate)));
  }
  return pcm;
}

double rms(std::span<const std::int16_t> pcm) {
  double sum = 0;
  for (auto s : pcm) sum += static_cast<double>(s) * s;
  return pcm.empty() ? 0 : std::sqrt(sum / static_cast<double>(pcm.size()));
}

// Power of one frequency in a Hann-windowed block (Goertzel).
double goertzel_power(std::span<const double> x, double hz, std::uint32_t rate) {
  const double coeff = 2 * std::cos(2 * std::numbers::pi * hz / rate);
  double s1 = 0, s2 = 0;
  for (double v : x) {
    const double s0 = v + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return s1 * s1 + s2 * s2 - coeff * s1 * s2;
}

// Dominant frequency in 50..4000 Hz: a 10 Hz scan, then 1 Hz around the peak.
double dominant_hz(std::span<const std::int16_t> pcm, std::uint32_t rate) {
  std::vector<double> x(pcm.size());
  for (std::size_t i = 0; i < pcm.size(); ++i) {
    const double w = 0.5 - 0.5 * std::cos(2 * std::numbers::pi * static_cast<double>(i) /
                                          static_cast<double>(pcm.size() - 1));
    x[i] = w * pcm[i];
  }
  const double top = std::min(4000.0, rate / 2.0 - 50);
  double best_hz = 0, best = -1;
  for (double hz = 50; hz <= top; hz += 10) {
    const double p = goertzel_power(x, hz, rate);
    if (p > best) best = p, best_hz = hz;
  }
  const double coarse = best_hz;
  for (double hz = coarse - 10; hz <= coarse + 10; hz += 1) {
    const double p = goertzel_power(x, hz, rate);
    if (p > best) best = p, best_hz = hz;
  }
  return best_hz;
}

struct Codecs {
  std::unique_ptr<Encoder> enc;
  std::unique_ptr<Decoder> dec;
};

Codecs make_pair(CodecId id) {
  auto enc = make_encoder(id);
  auto dec = make_decoder(id);
  EXPECT_TRUE(enc.ok()) << (enc.ok() ? "" : enc.error().message);
  EXPECT_TRUE(dec.ok()) << (dec.ok() ? "" : dec.error().message);
  if (!enc.ok() || !dec.ok()) return {};
  return {std::move(enc).value(), std::move(dec).value()};
}

// Encodes `pcm` in 20 ms packets and decodes every packet.
std::vector<std::int16_t> round_trip(Codecs& c, const std::vector<std::int16_t>& pcm) {
  const std::size_t frame = c.enc->frame_samples(20);
  std::vector<std::uint8_t> payload(Encoder::kMaxPayloadBytes);
  std::vector<std::int16_t> out(Decoder::kMaxSamplesPerPacket);
  std::vector<std::int16_t> decoded;
  for (std::size_t pos = 0; pos + frame <= pcm.size(); pos += frame) {
    auto bytes = c.enc->encode(std::span(pcm).subspan(pos, frame), payload);
    EXPECT_TRUE(bytes.ok()) << (bytes.ok() ? "" : bytes.error().message);
    if (!bytes.ok()) break;
    auto n = c.dec->decode(std::span(payload).first(*bytes), out);
    EXPECT_TRUE(n.ok()) << (n.ok() ? "" : n.error().message);
    if (!n.ok()) break;
    EXPECT_EQ(*n, frame);
    decoded.insert(decoded.end(), out.begin(), out.begin() + static_cast<std::ptrdiff_t>(*n));
  }
  return decoded;
}

class CodecRoundTripTest : public ::testing::TestWithParam<std::tuple<CodecId, double>> {};

TEST_P(CodecRoundTripTest, DecodedToneKeepsFrequencyAndLevel) {
  const auto [id, hz] = GetParam();
  if (!codec_available(id)) GTEST_SKIP() << codec_name(id) << " not built in (only G.729 is optional: SGW_WITH_G729=OFF)";
  auto c = make_pair(id);
  ASSERT_TRUE(c.enc && c.dec);
  const std::uint32_t rate = codec_info(id).native_rate;
  const auto input = sine(rate, hz, 1.0, 10000);
  const auto decoded = round_trip(c, input);
  ASSERT_EQ(decoded.size(), input.size());

  // Skip the first 100 ms: codec delay and adaptation.
  const auto steady = std::span(decoded).subspan(rate / 10);
  const double found_hz = dominant_hz(steady, rate);
  EXPECT_NEAR(found_hz, hz, 10.0) << codec_name(id);
  const double in_rms = rms(std::span(input).subspan(rate / 10));
  const double out_rms = rms(steady);
  RecordProperty("dominant_hz", std::to_string(found_hz));
  RecordProperty("rms_ratio", std::to_string(out_rms / in_rms));
  EXPECT_GT(out_rms, 0.7 * in_rms) << codec_name(id);
  EXPECT_LT(out_rms, 1.3 * in_rms) << codec_name(id);
}

INSTANTIATE_TEST_SUITE_P(AllCodecs, CodecRoundTripTest,
                         ::testing::Combine(::testing::ValuesIn(kAllCodecs), ::testing::Values(440.0, 1000.0)),
                         [](const auto& p) {
                           return codec_name(std::get<0>(p.param)) + "_" +
                                  std::to_string(static_cast<int>(std::get<1>(p.param))) + "Hz";
                         });

class CodecDecoderTest : public ::testing::TestWithParam<CodecId> {};

TEST_P(CodecDecoderTest, EmptyPayloadIsAnError) {
  const CodecId id = GetParam();
  if (!codec_available(id)) GTEST_SKIP() << codec_name(id) << " not built in (only G.729 is optional: SGW_WITH_G729=OFF)";
  auto dec = make_decoder(id);
  ASSERT_TRUE(dec.ok());
  std::vector<std::int16_t> out(Decoder::kMaxSamplesPerPacket);
  auto r = (*dec)->decode({}, out);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "codec.empty_payload");
}

TEST_P(CodecDecoderTest, OneBytePayload) {
  const CodecId id = GetParam();
  if (!codec_available(id)) GTEST_SKIP() << codec_name(id) << " not built in (only G.729 is optional: SGW_WITH_G729=OFF)";
  auto dec = make_decoder(id);
  ASSERT_TRUE(dec.ok());
  std::vector<std::int16_t> out(Decoder::kMaxSamplesPerPacket);
  const std::uint8_t byte[1] = {0x55};
  auto r = (*dec)->decode(byte, out);
  switch (id) {
    case CodecId::kPcmu:
    case CodecId::kPcma:
      ASSERT_TRUE(r.ok());
      EXPECT_EQ(*r, 1u);
      break;
    case CodecId::kG722:
      ASSERT_TRUE(r.ok());
      EXPECT_EQ(*r, 2u);
      break;
    case CodecId::kG729:
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.error().code, "codec.bad_length");
      break;
    case CodecId::kOpus:
      // 0x55 is a TOC byte alone (code 1, two empty frames): decodable or
      // rejected, but never more than the buffer.
      if (r.ok()) {
        EXPECT_LE(*r, out.size());
      }
      break;
  }
}

TEST_P(CodecDecoderTest, RandomPayloadsNeverOverrun) {
  const CodecId id = GetParam();
  if (!codec_available(id)) GTEST_SKIP() << codec_name(id) << " not built in (only G.729 is optional: SGW_WITH_G729=OFF)";
  auto dec = make_decoder(id);
  ASSERT_TRUE(dec.ok());
  std::mt19937 rng(1234);
  std::uniform_int_distribution<std::size_t> size_dist(0, 1500);
  std::uniform_int_distribution<int> byte_dist(0, 255);
  // A guard region after the buffer we hand out must stay untouched.
  constexpr std::int16_t kGuard = 0x5a5a;
  std::vector<std::int16_t> buf(Decoder::kMaxSamplesPerPacket + 64, kGuard);
  auto out = std::span(buf).first(Decoder::kMaxSamplesPerPacket);
  std::vector<std::uint8_t> payload;
  int ok = 0, empty = 0;
  for (int i = 0; i < 10000; ++i) {
    payload.resize(size_dist(rng));
    if (payload.empty()) ++empty;
    for (auto& b : payload) b = static_cast<std::uint8_t>(byte_dist(rng));
    auto r = (*dec)->decode(payload, out);
    if (r.ok()) {
      ++ok;
      EXPECT_LE(*r, out.size());
    } else {
      EXPECT_FALSE(r.error().code.empty());
    }
    if (i % 100 == 0) (void)(*dec)->conceal(160, out);
  }
  for (std::size_t i = Decoder::kMaxSamplesPerPacket; i < buf.size(); ++i) ASSERT_EQ(buf[i], kGuard);
  // Every non-empty byte string is valid G.711/G.722.
  if (id != CodecId::kOpus && id != CodecId::kG729) {
    EXPECT_EQ(ok, 10000 - empty);
  }
  RecordProperty("decoded_ok", ok);
}

TEST_P(CodecDecoderTest, SmallOutputBufferIsAnErrorNotAnOverrun) {
  const CodecId id = GetParam();
  if (!codec_available(id)) GTEST_SKIP() << codec_name(id) << " not built in (only G.729 is optional: SGW_WITH_G729=OFF)";
  auto c = make_pair(id);
  ASSERT_TRUE(c.enc && c.dec);
  const auto pcm = sine(codec_info(id).native_rate, 440, 0.02, 8000);
  std::vector<std::uint8_t> payload(Encoder::kMaxPayloadBytes);
  auto bytes = c.enc->encode(pcm, payload);
  ASSERT_TRUE(bytes.ok());
  std::vector<std::int16_t> buf(pcm.size(), 0x1234);
  auto r = c.dec->decode(std::span(payload).first(*bytes), std::span(buf).first(pcm.size() / 2));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "codec.out_too_small");
  for (std::size_t i = pcm.size() / 2; i < buf.size(); ++i) ASSERT_EQ(buf[i], 0x1234);
}

TEST_P(CodecDecoderTest, ConcealReturnsRequestedCount) {
  const CodecId id = GetParam();
  if (!codec_available(id)) GTEST_SKIP() << codec_name(id) << " not built in (only G.729 is optional: SGW_WITH_G729=OFF)";
  auto c = make_pair(id);
  ASSERT_TRUE(c.enc && c.dec);
  const std::uint32_t rate = codec_info(id).native_rate;
  std::vector<std::int16_t> out(Decoder::kMaxSamplesPerPacket, 7);

  // Before any packet: silence.
  EXPECT_EQ(c.dec->conceal(333, out), 333u);
  EXPECT_TRUE(std::all_of(out.begin(), out.begin() + 333, [](std::int16_t s) { return s == 0; }));

  (void)round_trip(c, sine(rate, 440, 0.2, 10000));
  for (std::size_t n : {1u, 39u, 80u, 160u, 333u, 1000u}) EXPECT_EQ(c.dec->conceal(n, out), n) << n;
  // Clamped to the buffer.
  EXPECT_EQ(c.dec->conceal(1000, std::span(out).first(100)), 100u);
  EXPECT_EQ(c.dec->conceal(0, out), 0u);
}

TEST_P(CodecDecoderTest, ConcealmentFadesToSilence) {
  const CodecId id = GetParam();
  if (!codec_available(id)) GTEST_SKIP() << codec_name(id) << " not built in (only G.729 is optional: SGW_WITH_G729=OFF)";
  auto c = make_pair(id);
  ASSERT_TRUE(c.enc && c.dec);
  const std::uint32_t rate = codec_info(id).native_rate;
  (void)round_trip(c, sine(rate, 440, 0.2, 10000));
  const std::size_t plc = rate * Decoder::kMaxPlcMs / 1000;
  std::vector<std::int16_t> out(plc + rate / 10, 7);
  ASSERT_EQ(c.dec->conceal(out.size(), out), out.size());
  // Past the PLC budget everything is silence.
  EXPECT_TRUE(std::all_of(out.begin() + static_cast<std::ptrdiff_t>(plc), out.end(),
                          [](std::int16_t s) { return s == 0; }));
  const double head = rms(std::span(out).first(rate / 50));
  if (id == CodecId::kOpus || id == CodecId::kG729) {
    EXPECT_GT(head, 100.0) << "PLC should continue the tone";
  } else {
    EXPECT_EQ(head, 0.0);
  }
  // A good packet restarts normal decoding.
  auto again = round_trip(c, sine(rate, 440, 0.1, 10000));
  EXPECT_EQ(again.size(), rate / 10);
}

INSTANTIATE_TEST_SUITE_P(AllCodecs, CodecDecoderTest, ::testing::ValuesIn(kAllCodecs),
                         [](const auto& p) { return codec_name(p.param); });

TEST(CodecTest, G729LengthRules) {
  if (!codec_available(CodecId::kG729)) GTEST_SKIP() << "G.729 not built in (SGW_WITH_G729=OFF)";
  auto dec = make_decoder(CodecId::kG729);
  ASSERT_TRUE(dec.ok());
  std::vector<std::int16_t> out(Decoder::kMaxSamplesPerPacket);
  std::vector<std::uint8_t> payload(64, 0x42);
  for (std::size_t bad : {1u, 3u, 5u, 9u, 11u, 13u, 19u, 21u, 23u}) {
    auto r = (*dec)->decode(std::span(payload).first(bad), out);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, "codec.bad_length") << bad;
  }
  // RFC 3551 §4.5.6: frames of 10 bytes, optionally followed by a 2-byte SID.
  for (auto [len, samples] : {std::pair{2u, 80u}, {10u, 80u}, {12u, 160u}, {20u, 160u}, {22u, 240u}}) {
    auto r = (*dec)->decode(std::span(payload).first(len), out);
    ASSERT_TRUE(r.ok()) << len;
    EXPECT_EQ(*r, samples) << len;
  }
  // Too many frames for kMaxSamplesPerPacket.
  std::vector<std::uint8_t> huge((Decoder::kMaxSamplesPerPacket / 80 + 1) * 10, 0);
  auto r = (*dec)->decode(huge, out);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "codec.payload_too_long");
}

TEST(CodecTest, G711AndG722RejectOverlongPayloads) {
  std::vector<std::uint8_t> payload(Decoder::kMaxSamplesPerPacket + 1, 0xff);
  std::vector<std::int16_t> out(2 * payload.size());
  for (CodecId id : {CodecId::kPcmu, CodecId::kPcma, CodecId::kG722}) {
    auto dec = make_decoder(id);
    ASSERT_TRUE(dec.ok());
    auto r = (*dec)->decode(payload, out);
    ASSERT_FALSE(r.ok()) << codec_name(id);
    EXPECT_EQ(r.error().code, "codec.payload_too_long");
  }
}

TEST(CodecTest, G711KnownValues) {
  auto mu = make_decoder(CodecId::kPcmu);
  auto a = make_decoder(CodecId::kPcma);
  ASSERT_TRUE(mu.ok() && a.ok());
  std::int16_t out[2] = {};
  // G.711: µ-law 0xff and A-law 0xd5 are the codes nearest zero.
  const std::uint8_t mu_in[2] = {0xff, 0x00};
  ASSERT_TRUE((*mu)->decode(mu_in, out).ok());
  EXPECT_EQ(out[0], 0);
  EXPECT_EQ(out[1], -32124);
  const std::uint8_t a_in[2] = {0xd5, 0x55};
  ASSERT_TRUE((*a)->decode(a_in, out).ok());
  EXPECT_EQ(out[0], 8);
  EXPECT_EQ(out[1], -8);
}

// The decoders look codes up in a table: every one of the 256 codes must expand exactly as
// spandsp's G.711 arithmetic (the previous decoder) does, so recordings are bit-identical.
TEST(CodecTest, G711TableDecodeIsBitIdenticalToTheArithmetic) {
  std::vector<std::uint8_t> all(256);
  for (int b = 0; b < 256; ++b) all[static_cast<std::size_t>(b)] = static_cast<std::uint8_t>(b);
  for (CodecId id : {CodecId::kPcmu, CodecId::kPcma}) {
    auto dec = make_decoder(id);
    ASSERT_TRUE(dec.ok());
    std::vector<std::int16_t> out(256);
    ASSERT_EQ(*(*dec)->decode(all, out), 256u);
    for (int b = 0; b < 256; ++b) {
      const auto u = static_cast<std::uint8_t>(b);
      const std::int16_t want = id == CodecId::kPcmu ? ulaw_to_linear(u) : alaw_to_linear(u);
      EXPECT_EQ(out[static_cast<std::size_t>(b)], want) << codec_name(id) << " code " << b;
    }
  }
}

TEST(CodecTest, EncoderRejectsBadFrameSizes) {
  std::vector<std::int16_t> pcm(1000);
  std::vector<std::uint8_t> out(Encoder::kMaxPayloadBytes);
  struct Case {
    CodecId id;
    std::size_t samples;
  };
  for (auto [id, samples] : {Case{CodecId::kG722, 321}, Case{CodecId::kG729, 100}, Case{CodecId::kOpus, 100},
                             Case{CodecId::kOpus, 1000}, Case{CodecId::kPcmu, 0}}) {
    if (!codec_available(id)) continue;
    auto enc = make_encoder(id);
    ASSERT_TRUE(enc.ok());
    auto r = (*enc)->encode(std::span(pcm).first(samples), out);
    ASSERT_FALSE(r.ok()) << codec_name(id) << " " << samples;
    EXPECT_EQ(r.error().code, "codec.bad_frame_size");
  }
  auto enc = make_encoder(CodecId::kPcma);
  ASSERT_TRUE(enc.ok());
  auto r = (*enc)->encode(std::span(pcm).first(160), std::span(out).first(159));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "codec.out_too_small");
}

TEST(CodecTest, OpusAcceptsEveryFrameSize) {
  auto enc = make_encoder(CodecId::kOpus);
  auto dec = make_decoder(CodecId::kOpus);
  ASSERT_TRUE(enc.ok() && dec.ok());
  std::vector<std::uint8_t> payload(Encoder::kMaxPayloadBytes);
  std::vector<std::int16_t> out(Decoder::kMaxSamplesPerPacket);
  for (std::size_t samples : {40u, 80u, 160u, 320u, 640u, 960u}) {
    const auto pcm = sine(16000, 440, static_cast<double>(samples) / 16000, 8000);
    auto bytes = (*enc)->encode(pcm, payload);
    ASSERT_TRUE(bytes.ok()) << samples;
    auto n = (*dec)->decode(std::span(payload).first(*bytes), out);
    ASSERT_TRUE(n.ok()) << samples;
    EXPECT_EQ(*n, samples);
  }
}

TEST(CodecTest, FromSdp) {
  struct Case {
    std::string_view name;
    std::uint32_t clock;
    std::optional<CodecId> want;
  };
  const Case cases[] = {
      {"PCMU", 8000, CodecId::kPcmu},   {"pcmu", 8000, CodecId::kPcmu},  {"PcMa", 8000, CodecId::kPcma},
      {"G722", 8000, CodecId::kG722},   {"g722", 8000, CodecId::kG722},  {"G729", 8000, CodecId::kG729},
      {"G729A", 8000, CodecId::kG729},  {"g729a", 8000, CodecId::kG729}, {"opus", 48000, CodecId::kOpus},
      {"OPUS", 48000, CodecId::kOpus},  {"PCMU", 16000, std::nullopt},   {"G722", 16000, std::nullopt},
      {"opus", 16000, std::nullopt},    {"opus", 8000, std::nullopt},    {"G729", 16000, std::nullopt},
      {"G7221", 16000, std::nullopt},   {"", 8000, std::nullopt},        {"PCM", 8000, std::nullopt},
      {"PCMUX", 8000, std::nullopt},    {"telephone-event", 8000, std::nullopt},
  };
  for (const auto& c : cases) {
    auto got = codec_from_sdp(c.name, c.clock);
    ASSERT_EQ(got.has_value(), c.want.has_value()) << c.name << "/" << c.clock;
    if (got) {
      EXPECT_EQ(got->id, *c.want) << c.name;
    }
  }
  auto opus = codec_from_sdp("Opus", 48000);
  ASSERT_TRUE(opus);
  EXPECT_EQ(opus->native_rate, 16000u);
  EXPECT_EQ(opus->rtp_clock, 48000u);
  auto g722 = codec_from_sdp("G722", 8000);
  ASSERT_TRUE(g722);
  EXPECT_EQ(g722->native_rate, 16000u);
}

TEST(CodecTest, StaticPayloadTypes) {
  EXPECT_EQ(codec_from_static_payload_type(0)->id, CodecId::kPcmu);
  EXPECT_EQ(codec_from_static_payload_type(8)->id, CodecId::kPcma);
  EXPECT_EQ(codec_from_static_payload_type(9)->id, CodecId::kG722);
  EXPECT_EQ(codec_from_static_payload_type(18)->id, CodecId::kG729);
  EXPECT_FALSE(codec_from_static_payload_type(3));
  EXPECT_FALSE(codec_from_static_payload_type(96));
}

TEST(CodecTest, RtpTicks) {
  EXPECT_EQ(samples_to_rtp_ticks(codec_info(CodecId::kPcmu), 160), 160u);
  EXPECT_EQ(samples_to_rtp_ticks(codec_info(CodecId::kG722), 320), 160u);
  EXPECT_EQ(samples_to_rtp_ticks(codec_info(CodecId::kOpus), 320), 960u);
  EXPECT_EQ(rtp_ticks_to_samples(codec_info(CodecId::kG722), 160), 320u);
  EXPECT_EQ(rtp_ticks_to_samples(codec_info(CodecId::kOpus), 960), 320u);
}

TEST(CodecTest, AvailabilityFollowsBuildOption) {
#if defined(SGW_WITH_G729) && SGW_WITH_G729
  EXPECT_TRUE(codec_available(CodecId::kG729));
  EXPECT_TRUE(make_decoder(CodecId::kG729).ok());
#else
  EXPECT_FALSE(codec_available(CodecId::kG729));
  auto r = make_decoder(CodecId::kG729);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "codec.unavailable");
#endif
  for (CodecId id : {CodecId::kPcmu, CodecId::kPcma, CodecId::kG722, CodecId::kOpus}) {
    EXPECT_TRUE(codec_available(id));
  }
}

}  // namespace
}  // namespace sgw::media
