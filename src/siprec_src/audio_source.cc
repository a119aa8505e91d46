#include "siprec_src/audio_source.h"

#include <sndfile.h>

#include <algorithm>
#include <cmath>

#include "siprec_src/sdp_offer.h"
#include "siprec_src/tone.h"

namespace sgw::siprec_src {

common::Result<media::CodecId> parse_codec(std::string_view name) {
  std::string n(name);
  for (auto& c : n) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (n == "PCMU" || n == "ULAW") return media::CodecId::kPcmu;
  if (n == "PCMA" || n == "ALAW") return media::CodecId::kPcma;
  if (n == "G722") return media::CodecId::kG722;
  if (n == "G729" || n == "G729A") {
    if (!media::codec_available(media::CodecId::kG729))
      return common::make_error("codec.unavailable", "G729 is not built in (SGW_WITH_G729=OFF)");
    return media::CodecId::kG729;
  }
  if (n == "OPUS") return media::CodecId::kOpus;
  return common::make_error("codec.unknown",
                            "unknown codec '" + std::string(name) + "' (PCMU, PCMA, G722, G729, opus)");
}

namespace {

common::Result<std::shared_ptr<const EncodedAudio>> encode_frames(media::CodecId codec,
                                                                  std::span<const std::int16_t> pcm,
                                                                  std::size_t skip_frames) {
  auto enc = media::make_encoder(codec);
  if (!enc) return enc.error();
  auto audio = std::make_shared<EncodedAudio>();
  audio->codec = codec;
  audio->payload_type = payload_type(codec);
  const std::size_t frame = enc.value()->frame_samples(kPtimeMs);
  auto info = media::codec_info(codec);
  audio->ticks_per_frame = static_cast<std::uint32_t>(media::samples_to_rtp_ticks(info, frame));
  std::vector<std::uint8_t> out(media::Encoder::kMaxPayloadBytes);
  const std::size_t n = pcm.size() / frame;
  if (n <= skip_frames) return common::make_error("audio.empty", "audio shorter than one frame");
  audio->offsets.push_back(0);
  for (std::size_t i = 0; i < n; ++i) {
    auto r = enc.value()->encode(pcm.subspan(i * frame, frame), out);
    if (!r) return r.error();
    if (i < skip_frames) continue;
    audio->data.insert(audio->data.end(), out.begin(), out.begin() + static_cast<long>(*r));
    audio->offsets.push_back(static_cast<std::uint32_t>(audio->data.size()));
  }
  return std::shared_ptr<const EncodedAudio>(std::move(audio));
}

}  // namespace

common::Result<std::shared_ptr<const EncodedAudio>> encode_tone(media::CodecId codec, double hz) {
  auto info = media::codec_info(codec);
  auto pcm = make_tone(hz, info.native_rate, 2 * info.native_rate);
  return encode_frames(codec, pcm, 1000 / kPtimeMs);
}

common::Result<std::shared_ptr<const EncodedAudio>> encode_pcm(media::CodecId codec,
                                                               std::span<const std::int16_t> pcm) {
  return encode_frames(codec, pcm, 0);
}

common::Result<std::vector<std::int16_t>> load_audio_file(const std::string& path, std::uint32_t rate,
                                                          double max_seconds) {
  SF_INFO info{};
  SNDFILE* f = sf_open(path.c_str(), SFM_READ, &info);
  if (f == nullptr)
    return common::make_error("audio.open", path + ": " + sf_strerror(nullptr));
  if (info.channels <= 0 || info.samplerate <= 0) {
    sf_close(f);
    return common::make_error("audio.open", path + ": no audio");
  }
  const auto max_frames = static_cast<sf_count_t>(max_seconds * info.samplerate);
  const sf_count_t frames = std::min(info.frames, max_frames);
  std::vector<float> inter(static_cast<std::size_t>(frames) * static_cast<std::size_t>(info.channels));
  sf_count_t got = sf_readf_float(f, inter.data(), frames);
  sf_close(f);
  if (got <= 0) return common::make_error("audio.read", path + ": no frames read");
  std::vector<float> mono(static_cast<std::size_t>(got));
  for (sf_count_t i = 0; i < got; ++i) {
    float s = 0;
    for (int c = 0; c < info.channels; ++c)
      s += inter[static_cast<std::size_t>(i * info.channels + c)];
    mono[static_cast<std::size_t>(i)] = s / static_cast<float>(info.channels);
  }
  const double step = static_cast<double>(info.samplerate) / rate;
  const auto n = static_cast<std::size_t>(static_cast<double>(mono.size()) / step);
  std::vector<std::int16_t> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    double pos = static_cast<double>(i) * step;
    auto k = static_cast<std::size_t>(pos);
    double frac = pos - static_cast<double>(k);
    float a = mono[std::min(k, mono.size() - 1)];
    float b = mono[std::min(k + 1, mono.size() - 1)];
    double v = (a + (b - a) * frac) * 32767.0;
    out[i] = static_cast<std::int16_t>(std::clamp(std::lround(v), -32768L, 32767L));
  }
  return out;
}

common::Result<LegAudio> encode_legs(media::CodecId codec, const std::string& wav_caller,
                                     const std::string& wav_agent, double tone_caller,
                                     double tone_agent) {
  LegAudio out;
  for (int leg = 0; leg < 2; ++leg) {
    const std::string& wav = leg == 0 || wav_agent.empty() ? wav_caller : wav_agent;
    common::Result<std::shared_ptr<const EncodedAudio>> a = common::make_error("", "");
    if (!wav.empty()) {
      auto pcm = load_audio_file(wav, media::codec_info(codec).native_rate);
      if (!pcm) return pcm.error();
      a = encode_pcm(codec, *pcm);
    } else {
      a = encode_tone(codec, leg == 0 ? tone_caller : tone_agent);
    }
    if (!a) return a.error();
    out[static_cast<std::size_t>(leg)] = *a;
  }
  return out;
}

}  // namespace sgw::siprec_src
