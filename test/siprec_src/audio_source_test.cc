#include "siprec_src/audio_source.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <sndfile.h>

#include "siprec_src/tone.h"

namespace sgw::siprec_src {
namespace {

class EveryCodec : public ::testing::TestWithParam<media::CodecId> {};

// The pre-encoded loop decodes back to the tone, including across the loop's seam.
TEST_P(EveryCodec, ToneLoopDecodesToTheTone) {
  auto id = GetParam();
  if (!media::codec_available(id)) GTEST_SKIP() << media::codec_info(id).name << " not built in (only G.729 is optional: SGW_WITH_G729=OFF)";
  auto audio = encode_tone(id, 440);
  ASSERT_TRUE(audio.ok()) << audio.error().message;
  const auto& a = **audio;
  EXPECT_EQ(a.frames(), 50u);  // one second of 20 ms frames
  auto info = media::codec_info(id);
  EXPECT_EQ(a.ticks_per_frame, info.rtp_clock / 50);
  auto dec = media::make_decoder(id);
  ASSERT_TRUE(dec.ok());
  std::vector<std::int16_t> out(media::Decoder::kMaxSamplesPerPacket);
  std::vector<float> pcm;
  for (std::size_t i = 0; i < 2 * a.frames(); ++i) {  // twice round the loop
    auto n = dec.value()->decode(a.frame(i % a.frames()), out);
    ASSERT_TRUE(n.ok()) << n.error().message;
    for (std::size_t k = 0; k < *n; ++k) pcm.push_back(static_cast<float>(out[k]) / 32768.0f);
  }
  // Skip the decoder's own start-up, then every 100 ms window is the tone.
  std::size_t w = info.native_rate / 10;
  for (std::size_t off = 2 * w; off + w <= pcm.size(); off += w) {
    auto c = check_tone(std::span<const float>(pcm.data() + off, w), 440, info.native_rate);
    EXPECT_TRUE(c.present) << media::codec_info(id).name << " at " << off << " ratio " << c.ratio;
  }
}

INSTANTIATE_TEST_SUITE_P(Codecs, EveryCodec,
                         ::testing::Values(media::CodecId::kPcmu, media::CodecId::kPcma,
                                           media::CodecId::kG722, media::CodecId::kG729,
                                           media::CodecId::kOpus),
                         [](const auto& p) { return std::string(media::codec_info(p.param).name); });

TEST(AudioSource, ParseCodec) {
  EXPECT_EQ(*parse_codec("pcmu"), media::CodecId::kPcmu);
  EXPECT_EQ(*parse_codec("PCMA"), media::CodecId::kPcma);
  EXPECT_EQ(*parse_codec("g722"), media::CodecId::kG722);
  EXPECT_EQ(*parse_codec("Opus"), media::CodecId::kOpus);
  EXPECT_FALSE(parse_codec("speex").ok());
}

TEST(AudioSource, LoadsAndResamplesASoundFile) {
  std::string path = ::testing::TempDir() + "/siprec_src_audio_test.wav";
  SF_INFO info{};
  info.samplerate = 16000;
  info.channels = 2;
  info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
  SNDFILE* f = sf_open(path.c_str(), SFM_WRITE, &info);
  ASSERT_NE(f, nullptr);
  auto tone = make_tone(500, 16000, 16000);
  std::vector<std::int16_t> inter;
  for (auto s : tone) {
    inter.push_back(s);
    inter.push_back(s);
  }
  sf_writef_short(f, inter.data(), 16000);
  sf_close(f);
  auto pcm = load_audio_file(path, 8000);
  ASSERT_TRUE(pcm.ok()) << pcm.error().message;
  EXPECT_EQ(pcm->size(), 8000u);
  std::vector<float> fl;
  for (auto s : *pcm) fl.push_back(static_cast<float>(s) / 32768.0f);
  EXPECT_TRUE(check_tone(fl, 500, 8000).present);
  auto enc = encode_pcm(media::CodecId::kPcmu, *pcm);
  ASSERT_TRUE(enc.ok());
  EXPECT_EQ((*enc)->frames(), 50u);
  std::remove(path.c_str());
  EXPECT_EQ(load_audio_file(path, 8000).error().code, "audio.open");
}

}  // namespace
}  // namespace sgw::siprec_src
