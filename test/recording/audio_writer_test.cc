#include "recording/audio_writer.h"

#include <sndfile.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace sgw::recording {
namespace {

namespace fs = std::filesystem;
using Samples = std::vector<std::int16_t>;

class AudioWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sgw-audio-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

Samples tone(double hz, std::uint32_t rate, std::size_t n, double amp = 8000.0) {
  Samples s(n);
  for (std::size_t i = 0; i < n; ++i)
    s[i] = static_cast<std::int16_t>(std::lround(amp * std::sin(2.0 * std::numbers::pi * hz * static_cast<double>(i) / rate)));
  return s;
}

common::Result<AudioFileInfo> write(const std::string& p, AudioFormat f, std::uint32_t rate,
                                    const std::vector<Samples>& chans) {
  std::vector<std::span<const std::int16_t>> spans(chans.begin(), chans.end());
  return write_audio_file(p, f, rate, spans);
}

std::string read_all(const std::string& p) {
  // (Not istreambuf_iterator: GCC 12 -O3 reports a false -Wnull-dereference inside <streambuf>.)
  std::error_code ec;
  const auto size = fs::file_size(p, ec);
  if (ec) return {};
  std::string s(static_cast<std::size_t>(size), '\0');
  std::ifstream in(p, std::ios::binary);
  in.read(s.data(), static_cast<std::streamsize>(s.size()));
  return s;
}

std::string sha256_hex(const std::string& bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
  std::string hex;
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned i = 0; i < len; ++i) {
    hex.push_back(kHex[md[i] >> 4]);
    hex.push_back(kHex[md[i] & 15]);
  }
  return hex;
}

struct Decoded {
  SF_INFO info{};
  std::vector<Samples> channels;
};

Decoded read_back(const std::string& p) {
  Decoded d;
  SNDFILE* f = sf_open(p.c_str(), SFM_READ, &d.info);
  EXPECT_NE(f, nullptr) << sf_strerror(nullptr);
  if (!f) return d;
  Samples inter(static_cast<std::size_t>(d.info.frames * d.info.channels));
  EXPECT_EQ(sf_readf_short(f, inter.data(), d.info.frames), d.info.frames);
  sf_close(f);
  d.channels.assign(static_cast<std::size_t>(d.info.channels), Samples(static_cast<std::size_t>(d.info.frames)));
  for (std::size_t i = 0; i < inter.size(); ++i)
    d.channels[i % d.channels.size()][i / d.channels.size()] = inter[i];
  return d;
}

// The bytes of the RIFF "data" chunk (walks the chunks; no struct cast over the file).
std::string wav_data_chunk(const std::string& file) {
  auto le32 = [&](std::size_t at) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(file[at])) |
           static_cast<std::uint32_t>(static_cast<unsigned char>(file[at + 1])) << 8 |
           static_cast<std::uint32_t>(static_cast<unsigned char>(file[at + 2])) << 16 |
           static_cast<std::uint32_t>(static_cast<unsigned char>(file[at + 3])) << 24;
  };
  if (file.size() < 12 || file.compare(0, 4, "RIFF") != 0 || file.compare(8, 4, "WAVE") != 0) return {};
  std::size_t at = 12;
  while (at + 8 <= file.size()) {
    const std::uint32_t len = le32(at + 4);
    if (file.compare(at, 4, "data") == 0) return file.substr(at + 8, len);
    at += 8 + len + (len & 1);
  }
  return {};
}

std::uint16_t wav_format_tag(const std::string& file) {
  const auto at = file.find("fmt ");
  if (at == std::string::npos || at + 10 > file.size()) return 0;
  return static_cast<std::uint16_t>(static_cast<unsigned char>(file[at + 8]) |
                                    static_cast<unsigned char>(file[at + 9]) << 8);
}

// ITU-T G.711 decoding, written from the recommendation's tables (A-law: even bits inverted,
// sign bit 1 = positive; mu-law: all bits inverted, bias 0x84), scaled to 16 bits.
std::int16_t alaw_decode(std::uint8_t a) {
  a ^= 0x55;
  int t = (a & 0x0f) << 4;
  const int seg = (a & 0x70) >> 4;
  if (seg == 0) t += 8;
  else t = (t + 0x108) << (seg - 1);
  return static_cast<std::int16_t>((a & 0x80) ? t : -t);
}

std::int16_t ulaw_decode(std::uint8_t u) {
  u = static_cast<std::uint8_t>(~u);
  int t = ((u & 0x0f) << 3) + 0x84;
  t <<= (u & 0x70) >> 4;
  return static_cast<std::int16_t>((u & 0x80) ? (0x84 - t) : (t - 0x84));
}

std::string random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xff);
  // Every code at least once.
  for (std::size_t i = 0; i < 256 && i < n; ++i) s[i] = static_cast<char>(i);
  return s;
}

TEST(AudioFormat, NamesAndExtensions) {
  for (auto f : {AudioFormat::kWavPcm16, AudioFormat::kWavUlaw, AudioFormat::kWavAlaw, AudioFormat::kFlac,
                 AudioFormat::kOggOpus}) {
    auto back = parse_audio_format(audio_format_name(f));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, f);
  }
  EXPECT_EQ(audio_format_name(AudioFormat::kWavAlaw), "wav-alaw");
  EXPECT_EQ(audio_file_extension(AudioFormat::kWavUlaw), "wav");
  EXPECT_EQ(audio_file_extension(AudioFormat::kFlac), "flac");
  EXPECT_EQ(audio_file_extension(AudioFormat::kOggOpus), "opus");
  EXPECT_EQ(*parse_audio_format(" FLAC "), AudioFormat::kFlac);
  auto bad = parse_audio_format("mp3");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, "audio.format");
  EXPECT_NE(bad.error().message.find("'mp3'"), std::string::npos);
}

TEST_F(AudioWriterTest, StereoWavRoundTripsExactlyAndReportsWhatWasPublished) {
  const std::uint32_t rate = 8000;
  // Not a multiple of the interleave chunk, so the last partial chunk is exercised.
  const std::size_t n = 3 * 4096 + 123;
  const std::vector<Samples> in{tone(440, rate, n), tone(1000, rate, n, 12000)};
  const std::string p = path("sub/dir/rec.wav");  // parents are created
  auto r = write(p, AudioFormat::kWavPcm16, rate, in);
  ASSERT_TRUE(r.ok()) << r.error().message;

  EXPECT_EQ(r->file_name, "rec.wav");
  EXPECT_EQ(r->format, "wav");
  EXPECT_EQ(r->channels, 2u);
  EXPECT_EQ(r->sample_rate, rate);
  EXPECT_EQ(r->frames, n);
  EXPECT_EQ(r->duration_ms, n * 1000 / rate);
  const std::string bytes = read_all(p);
  EXPECT_EQ(r->size_bytes, bytes.size());
  EXPECT_EQ(r->sha256, sha256_hex(bytes));
  EXPECT_EQ(r->sha256.size(), 64u);
  EXPECT_FALSE(fs::exists(p + ".tmp"));
  EXPECT_EQ(wav_format_tag(bytes), 1);  // WAVE_FORMAT_PCM
  EXPECT_EQ(wav_data_chunk(bytes).size(), n * 2 * 2);

  const Decoded d = read_back(p);
  EXPECT_EQ(d.info.samplerate, 8000);
  ASSERT_EQ(d.channels.size(), 2u);
  EXPECT_EQ(d.channels[0], in[0]);  // left = channels[0]
  EXPECT_EQ(d.channels[1], in[1]);

  const auto j = to_json(*r);
  EXPECT_EQ(j["file"], "rec.wav");
  EXPECT_EQ(j["sha256"], r->sha256);
  EXPECT_EQ(j["frames"], n);
}

// The WAV formats are written without libsndfile (one sequential buffer, hashed on the way):
// the files must be byte for byte what libsndfile writes for the same samples, whatever the
// channel count, length (odd G.711 data gets a pad byte) and the size of the pieces written.
TEST_F(AudioWriterTest, WavIsByteIdenticalToLibsndfile) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> any(-32768, 32767);
  for (AudioFormat f : {AudioFormat::kWavPcm16, AudioFormat::kWavUlaw, AudioFormat::kWavAlaw}) {
    for (unsigned nch : {1u, 2u, 3u}) {
      for (std::size_t frames : {std::size_t{0}, std::size_t{1}, std::size_t{11}, std::size_t{70001}}) {
        std::vector<Samples> chans(nch, Samples(frames));
        for (auto& c : chans)
          for (std::size_t i = 0; i < frames; ++i) c[i] = static_cast<std::int16_t>(i < 65536 ? static_cast<int>(i) - 32768 : any(rng));
        const std::string label = std::string(audio_format_name(f)) + " " + std::to_string(nch) + "ch " +
                                  std::to_string(frames) + " frames";
        // Ours, in pieces of varying size.
        const std::string ours = path("ours-" + std::to_string(nch) + "-" + std::to_string(frames) + ".wav");
        auto w = AudioFileWriter::open(ours, f, 8000, nch, frames);
        ASSERT_TRUE(w.ok()) << w.error().message;
        for (std::size_t at = 0, piece = 1; at < frames; at += piece, piece = piece * 3 + 1) {
          piece = std::min(piece, frames - at);
          std::vector<std::span<const std::int16_t>> spans;
          for (const auto& c : chans) spans.push_back(std::span<const std::int16_t>(c).subspan(at, piece));
          ASSERT_TRUE((*w)->write(spans).ok()) << label;
        }
        auto info = (*w)->commit();
        ASSERT_TRUE(info.ok()) << info.error().message;
        // libsndfile's, all at once.
        const std::string theirs = path("sndfile.wav");
        SF_INFO si{};
        si.samplerate = 8000;
        si.channels = static_cast<int>(nch);
        si.format = SF_FORMAT_WAV | (f == AudioFormat::kWavPcm16 ? SF_FORMAT_PCM_16
                                     : f == AudioFormat::kWavUlaw ? SF_FORMAT_ULAW
                                                                  : SF_FORMAT_ALAW);
        SNDFILE* sf = sf_open(theirs.c_str(), SFM_WRITE, &si);
        ASSERT_NE(sf, nullptr) << sf_strerror(nullptr);
        Samples inter(frames * nch);
        for (std::size_t i = 0; i < frames; ++i)
          for (unsigned c = 0; c < nch; ++c) inter[i * nch + c] = chans[c][i];
        ASSERT_EQ(sf_writef_short(sf, inter.data(), static_cast<sf_count_t>(frames)), static_cast<sf_count_t>(frames));
        ASSERT_EQ(sf_close(sf), 0);
        const std::string a = read_all(ours), b = read_all(theirs);
        ASSERT_EQ(a.size(), b.size()) << label;
        EXPECT_TRUE(a == b) << label << ": bytes differ";
        auto digest = digest_file(ours);
        ASSERT_TRUE(digest.ok());
        EXPECT_EQ(info->sha256, digest->sha256) << label;
        EXPECT_EQ(info->size_bytes, a.size()) << label;
        EXPECT_EQ(info->frames, frames) << label;
      }
    }
  }
}

TEST_F(AudioWriterTest, ReplacesAnExistingFile) {
  const std::string p = path("rec.wav");
  ASSERT_TRUE(write(p, AudioFormat::kWavPcm16, 8000, {tone(440, 8000, 800)}).ok());
  auto r = write(p, AudioFormat::kWavPcm16, 8000, {tone(440, 8000, 1600)});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(read_back(p).info.frames, 1600);
  EXPECT_EQ(r->sha256, sha256_hex(read_all(p)));
}

TEST_F(AudioWriterTest, ThreeChannelFlacIsLossless) {
  const std::size_t n = 16000 + 7;
  std::mt19937 rng(7);
  Samples noise(n);
  for (auto& s : noise) s = static_cast<std::int16_t>(static_cast<int>(rng() & 0xffff) - 32768);
  const std::vector<Samples> in{tone(300, 16000, n), noise, Samples(n, 0)};
  auto r = write(path("rec.flac"), AudioFormat::kFlac, 16000, in);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->format, "flac");
  EXPECT_EQ(r->channels, 3u);
  EXPECT_EQ(r->duration_ms, 1000u);
  const Decoded d = read_back(path("rec.flac"));
  EXPECT_EQ(d.info.format & SF_FORMAT_TYPEMASK, SF_FORMAT_FLAC);
  ASSERT_EQ(d.channels.size(), 3u);
  for (std::size_t c = 0; c < 3; ++c) EXPECT_EQ(d.channels[c], in[c]) << "channel " << c;
}

// G.711 A-law bytes -> ITU decode -> write wav-alaw -> the file's data chunk holds the same bytes.
TEST_F(AudioWriterTest, AlawWavIsBitExactToTheOriginalG711) {
  const std::string g711 = random_bytes(20000, 1234);
  // Cross-check the test's reference decoder with libsndfile reading the bytes as raw A-law.
  {
    const std::string raw = path("raw.alaw");
    fs::create_directories(dir_);
    std::ofstream(raw, std::ios::binary) << g711;
    SF_INFO info{};
    info.samplerate = 8000;
    info.channels = 1;
    info.format = SF_FORMAT_RAW | SF_FORMAT_ALAW;
    SNDFILE* f = sf_open(raw.c_str(), SFM_READ, &info);
    ASSERT_NE(f, nullptr) << sf_strerror(nullptr);
    Samples lib(g711.size());
    ASSERT_EQ(sf_read_short(f, lib.data(), static_cast<sf_count_t>(lib.size())), static_cast<sf_count_t>(lib.size()));
    sf_close(f);
    for (std::size_t i = 0; i < g711.size(); ++i)
      ASSERT_EQ(lib[i], alaw_decode(static_cast<std::uint8_t>(g711[i]))) << "code " << int(static_cast<std::uint8_t>(g711[i]));
  }
  Samples left(g711.size() / 2), right(g711.size() / 2);
  for (std::size_t i = 0; i < left.size(); ++i) {
    left[i] = alaw_decode(static_cast<std::uint8_t>(g711[i]));
    right[i] = alaw_decode(static_cast<std::uint8_t>(g711[left.size() + i]));
  }
  auto r = write(path("rec.wav"), AudioFormat::kWavAlaw, 8000, {left, right});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->format, "wav-alaw");
  const std::string file = read_all(path("rec.wav"));
  EXPECT_EQ(wav_format_tag(file), 6);  // WAVE_FORMAT_ALAW
  const std::string data = wav_data_chunk(file);
  ASSERT_EQ(data.size(), g711.size());
  for (std::size_t i = 0; i < left.size(); ++i) {
    ASSERT_EQ(data[2 * i], g711[i]) << "left frame " << i;
    ASSERT_EQ(data[2 * i + 1], g711[left.size() + i]) << "right frame " << i;
  }
}

// The same for mu-law, with G.711's one non-invertible code: 0x7F ("negative zero") decodes to 0,
// which encodes as 0xFF. Every other code comes back unchanged.
TEST_F(AudioWriterTest, UlawWavIsBitExactExceptNegativeZero) {
  const std::string g711 = random_bytes(8000, 99);
  Samples pcm(g711.size());
  for (std::size_t i = 0; i < g711.size(); ++i) pcm[i] = ulaw_decode(static_cast<std::uint8_t>(g711[i]));
  auto r = write(path("rec.wav"), AudioFormat::kWavUlaw, 8000, {pcm});
  ASSERT_TRUE(r.ok()) << r.error().message;
  const std::string file = read_all(path("rec.wav"));
  EXPECT_EQ(wav_format_tag(file), 7);  // WAVE_FORMAT_MULAW
  const std::string data = wav_data_chunk(file);
  ASSERT_EQ(data.size(), g711.size());
  for (std::size_t i = 0; i < g711.size(); ++i) {
    const auto want = static_cast<std::uint8_t>(g711[i]) == 0x7f ? '\xff' : g711[i];
    ASSERT_EQ(data[i], want) << "sample " << i << " code " << int(static_cast<std::uint8_t>(g711[i]));
  }
}

TEST_F(AudioWriterTest, OggOpusCarriesTheToneInTheRightChannel) {
  const std::uint32_t rate = 48000;
  const std::size_t n = rate;  // 1 s
  const std::vector<Samples> in{tone(1000, rate, n, 10000), Samples(n, 0)};
  auto r = write(path("rec.opus"), AudioFormat::kOggOpus, rate, in);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->format, "ogg-opus");
  EXPECT_EQ(r->duration_ms, 1000u);
  const std::string bytes = read_all(path("rec.opus"));
  EXPECT_EQ(bytes.compare(0, 4, "OggS"), 0);
  EXPECT_NE(bytes.find("OpusHead"), std::string::npos);
  EXPECT_EQ(r->sha256, sha256_hex(bytes));
  const Decoded d = read_back(path("rec.opus"));
  ASSERT_EQ(d.channels.size(), 2u);
  EXPECT_NEAR(static_cast<double>(d.info.frames), static_cast<double>(n), rate * 0.1);
  // Lossy: compare energies, skipping the codec's start-up.
  auto rms = [](const Samples& s) {
    double acc = 0;
    for (std::size_t i = s.size() / 4; i < s.size() * 3 / 4; ++i) acc += double(s[i]) * s[i];
    return std::sqrt(acc / static_cast<double>(s.size() / 2));
  };
  EXPECT_GT(rms(d.channels[0]), 5000.0);  // 10000 / sqrt(2) ~ 7071
  EXPECT_LT(rms(d.channels[1]), 500.0);
}

TEST_F(AudioWriterTest, OggOpusRefusesRatesItCannotEncode) {
  auto r = write(path("rec.opus"), AudioFormat::kOggOpus, 44100, {Samples(441, 0)});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "audio.invalid");
  EXPECT_NE(r.error().message.find(path("rec.opus")), std::string::npos);
  EXPECT_NE(r.error().message.find("44100"), std::string::npos);
  EXPECT_FALSE(fs::exists(path("rec.opus")));
  for (std::uint32_t ok_rate : {8000u, 16000u}) {
    auto ok = write(path("ok.opus"), AudioFormat::kOggOpus, ok_rate, {tone(400, ok_rate, ok_rate / 2)});
    EXPECT_TRUE(ok.ok()) << ok_rate << ": " << ok.error().message;
  }
}

TEST_F(AudioWriterTest, RejectsBadChannelsWithThePath) {
  auto none = write(path("a.wav"), AudioFormat::kWavPcm16, 8000, {});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, "audio.invalid");
  EXPECT_NE(none.error().message.find(path("a.wav")), std::string::npos);

  auto ragged = write(path("a.wav"), AudioFormat::kWavPcm16, 8000, {Samples(100), Samples(99)});
  ASSERT_FALSE(ragged.ok());
  EXPECT_EQ(ragged.error().code, "audio.invalid");
  EXPECT_NE(ragged.error().message.find("channel 1"), std::string::npos);

  auto rate0 = write(path("a.wav"), AudioFormat::kWavPcm16, 0, {Samples(100)});
  EXPECT_FALSE(rate0.ok());

  auto flac9 = write(path("a.flac"), AudioFormat::kFlac, 8000, std::vector<Samples>(9, Samples(10)));
  ASSERT_FALSE(flac9.ok());
  EXPECT_NE(flac9.error().message.find("at most 8"), std::string::npos);
  EXPECT_FALSE(fs::exists(path("a.wav")));
  EXPECT_FALSE(fs::exists(path("a.flac")));
}

TEST_F(AudioWriterTest, IoErrorsNameThePathAndOperation) {
  fs::create_directories(dir_);
  std::ofstream(path("file")) << "x";
  // A parent that is a regular file: the directory cannot be created.
  auto r = write(path("file/rec.wav"), AudioFormat::kWavPcm16, 8000, {Samples(10)});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "io.mkdir");
  EXPECT_NE(r.error().message.find(path("file")), std::string::npos);
  EXPECT_EQ(r.error().message.rfind("mkdir ", 0), 0u);

  // The final name is a directory: rename fails; the temporary file is gone.
  fs::create_directories(path("taken.wav/inner"));
  auto r2 = write(path("taken.wav"), AudioFormat::kWavPcm16, 8000, {Samples(10)});
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().code, "io.rename");
  EXPECT_NE(r2.error().message.find(path("taken.wav")), std::string::npos);
  EXPECT_FALSE(fs::exists(path("taken.wav.tmp")));
}

TEST_F(AudioWriterTest, EmptyTrackGivesAValidEmptyFile) {
  auto r = write(path("empty.wav"), AudioFormat::kWavPcm16, 8000, {Samples{}, Samples{}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->frames, 0u);
  EXPECT_EQ(r->duration_ms, 0u);
  EXPECT_EQ(read_back(path("empty.wav")).info.channels, 2);
}

}  // namespace
}  // namespace sgw::recording
