#include "recording/audio_writer.h"

#include <fcntl.h>
#include <sndfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "common/strings.h"

namespace sgw::recording {

namespace {

using common::Error;
using common::make_error;

constexpr std::size_t kChunkFrames = 4096;  // interleave buffer: at most 4096 * channels samples
// A RIFF chunk size is 32 bits; keep room for the header chunks libsndfile writes.
constexpr std::uint64_t kMaxWavDataBytes = 0xFFFFFFFFull - 64 * 1024;

struct FormatEntry {
  AudioFormat format;
  std::string_view name;
  std::string_view extension;
  int sf_format;
  unsigned max_channels;
  unsigned bytes_per_sample;  // for the WAV size check; 0 = not a RIFF container
};

constexpr std::array<FormatEntry, 5> kFormats{{
    {AudioFormat::kWavPcm16, "wav", "wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 1024, 2},
    {AudioFormat::kWavUlaw, "wav-ulaw", "wav", SF_FORMAT_WAV | SF_FORMAT_ULAW, 1024, 1},
    {AudioFormat::kWavAlaw, "wav-alaw", "wav", SF_FORMAT_WAV | SF_FORMAT_ALAW, 1024, 1},
    {AudioFormat::kFlac, "flac", "flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 8, 0},
    // libopus' multistream mapping family 255 allows up to 255 channels (RFC 7845 §5.1.1).
    {AudioFormat::kOggOpus, "ogg-opus", "opus", SF_FORMAT_OGG | SF_FORMAT_OPUS, 255, 0},
}};

const FormatEntry& entry(AudioFormat f) {
  for (const auto& e : kFormats)
    if (e.format == f) return e;
  return kFormats[0];  // unreachable for a valid enum value
}

Error io_error(const std::string& op, const std::string& path, int err) {
  return make_error("io." + op, op + " " + path + ": " + std::strerror(err));
}

// Owns the temporary file until it is published; removes it on every error path.
class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)) {}
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!published_) ::unlink(path_.c_str());
  }
  common::Status open() {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) return io_error("open", path_, errno);
    return common::Ok{};
  }
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  void mark_published() { published_ = true; }
  common::Status close() {
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return io_error("close", path_, errno);
    return common::Ok{};
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool published_ = false;
};

struct SndfileCloser {
  void operator()(SNDFILE* f) const { sf_close(f); }
};

// SHA-256 of the whole file behind fd (read with pread, so the file offset does not matter).
common::Result<std::string> sha256_of_fd(int fd, const std::string& path, std::uint64_t size) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    return make_error("audio.sha256", "sha256 " + path + ": EVP_DigestInit_ex failed");
  std::vector<unsigned char> buf(256 * 1024);
  std::uint64_t off = 0;
  while (off < size) {
    ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(off));
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("read", path, errno);
    }
    if (n == 0) return make_error("io.read", "read " + path + ": file shorter than its size");
    if (EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<std::size_t>(n)) != 1)
      return make_error("audio.sha256", "sha256 " + path + ": EVP_DigestUpdate failed");
    off += static_cast<std::uint64_t>(n);
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), md.data(), &len) != 1)
    return make_error("audio.sha256", "sha256 " + path + ": EVP_DigestFinal_ex failed");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    hex.push_back(kHex[md[i] >> 4]);
    hex.push_back(kHex[md[i] & 0x0f]);
  }
  return hex;
}

common::Status fsync_directory(const std::string& dir) {
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return io_error("open", dir, errno);
  int rc = ::fsync(dfd);
  int err = errno;
  ::close(dfd);
  if (rc != 0) return io_error("fsync", dir, err);
  return common::Ok{};
}

common::Error invalid(const std::string& path, const std::string& why) {
  return make_error("audio.invalid", "write " + path + ": " + why);
}

common::Status validate(const std::string& path, const FormatEntry& fe, std::uint32_t sample_rate,
                        std::size_t nch, std::uint64_t frames) {
  if (nch == 0) return invalid(path, "no channels");
  if (nch > fe.max_channels)
    return invalid(path, std::to_string(nch) + " channels; " + std::string(fe.name) + " allows at most " +
                             std::to_string(fe.max_channels));
  if (sample_rate == 0) return invalid(path, "sample rate 0");
  if (fe.format == AudioFormat::kOggOpus) {
    // RFC 7845 §5.1: Opus runs at 48 kHz; libsndfile's encoder accepts exactly these input rates.
    static constexpr std::array<std::uint32_t, 5> kOpusRates{8000, 12000, 16000, 24000, 48000};
    if (std::find(kOpusRates.begin(), kOpusRates.end(), sample_rate) == kOpusRates.end())
      return invalid(path, "ogg-opus needs a sample rate of 8000, 12000, 16000, 24000 or 48000 Hz, got " +
                               std::to_string(sample_rate));
  }
  if (fe.bytes_per_sample != 0) {
    const std::uint64_t bytes = frames * nch * fe.bytes_per_sample;
    if (bytes > kMaxWavDataBytes)
      return invalid(path, "WAV data of " + std::to_string(bytes) +
                               " bytes exceeds the 4 GiB RIFF limit; use flac or ogg-opus");
  }
  return common::Ok{};
}

common::Status same_lengths(const std::string& path, std::span<const std::span<const std::int16_t>> channels) {
  for (std::size_t i = 1; i < channels.size(); ++i)
    if (channels[i].size() != channels[0].size())
      return invalid(path, "channel " + std::to_string(i) + " has " + std::to_string(channels[i].size()) +
                               " samples, channel 0 has " + std::to_string(channels[0].size()));
  return common::Ok{};
}

}  // namespace

common::Result<AudioFormat> parse_audio_format(std::string_view name) {
  for (const auto& e : kFormats)
    if (common::iequals(common::trim(name), e.name)) return e.format;
  return make_error("audio.format", "unknown audio format '" + std::string(name) +
                                        "' (expected wav, wav-ulaw, wav-alaw, flac or ogg-opus)");
}

std::string_view audio_format_name(AudioFormat f) { return entry(f).name; }

std::string_view audio_file_extension(AudioFormat f) { return entry(f).extension; }

common::Result<FileDigest> digest_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error("open", path, errno);
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return io_error("stat", path, err);
  }
  auto sha = sha256_of_fd(fd, path, static_cast<std::uint64_t>(st.st_size));
  ::close(fd);
  if (!sha) return sha.error();
  return FileDigest{*sha, static_cast<std::uint64_t>(st.st_size)};
}

nlohmann::json to_json(const AudioFileInfo& info) {
  return nlohmann::json{{"file", info.file_name},         {"format", info.format},
                        {"channels", info.channels},      {"sample_rate", info.sample_rate},
                        {"frames", info.frames},          {"duration_ms", info.duration_ms},
                        {"size_bytes", info.size_bytes},  {"sha256", info.sha256}};
}

struct AudioFileWriter::Impl {
  Impl(std::string path, const FormatEntry& f) : final_path(std::move(path)), fe(f), tmp(final_path + ".tmp") {}
  std::string final_path;
  const FormatEntry& fe;
  std::string dir;
  TempFile tmp;
  std::unique_ptr<SNDFILE, SndfileCloser> sf;
  std::uint32_t sample_rate = 0;
  std::size_t nch = 0;
  std::uint64_t frames = 0;
  std::uint64_t written = 0;
  std::vector<std::int16_t> buf;  // one interleaved chunk
};

AudioFileWriter::AudioFileWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AudioFileWriter::~AudioFileWriter() = default;

common::Result<std::unique_ptr<AudioFileWriter>> AudioFileWriter::open(const std::string& final_path,
                                                                       AudioFormat format,
                                                                       std::uint32_t sample_rate,
                                                                       unsigned channels, std::uint64_t frames) {
  const FormatEntry& fe = entry(format);
  if (auto st = validate(final_path, fe, sample_rate, channels, frames); !st) return st.error();
  auto impl = std::make_unique<Impl>(final_path, fe);
  impl->dir = std::filesystem::path(final_path).parent_path().string();
  if (impl->dir.empty()) impl->dir = ".";
  std::error_code ec;
  std::filesystem::create_directories(impl->dir, ec);
  if (ec) return make_error("io.mkdir", "mkdir " + impl->dir + ": " + ec.message());
  if (auto st = impl->tmp.open(); !st) return st.error();
  SF_INFO info{};
  info.samplerate = static_cast<int>(sample_rate);
  info.channels = static_cast<int>(channels);
  info.format = fe.sf_format;
  // close_desc = SF_FALSE: we still need the descriptor to fsync and hash it.
  impl->sf.reset(sf_open_fd(impl->tmp.fd(), SFM_WRITE, &info, SF_FALSE));
  if (!impl->sf)
    return make_error("audio.open", "open " + impl->tmp.path() + " as " + std::string(fe.name) + ": " +
                                        sf_strerror(nullptr));
  impl->sample_rate = sample_rate;
  impl->nch = channels;
  impl->frames = frames;
  impl->buf.resize(static_cast<std::size_t>(std::min<std::uint64_t>(frames, kChunkFrames)) * channels);
  return std::unique_ptr<AudioFileWriter>(new AudioFileWriter(std::move(impl)));
}

common::Status AudioFileWriter::write(std::span<const std::span<const std::int16_t>> channels) {
  Impl& w = *impl_;
  if (!w.sf) return invalid(w.final_path, "write after commit");
  if (channels.size() != w.nch)
    return invalid(w.final_path, std::to_string(channels.size()) + " channels given, the file has " +
                                     std::to_string(w.nch));
  if (auto st = same_lengths(w.final_path, channels); !st) return st;
  const std::size_t frames = channels[0].size();
  if (w.written + frames > w.frames)
    return invalid(w.final_path, "more than the " + std::to_string(w.frames) + " frames announced");
  for (std::size_t start = 0; start < frames; start += kChunkFrames) {
    const std::size_t n = std::min(kChunkFrames, frames - start);
    for (std::size_t f = 0; f < n; ++f)
      for (std::size_t c = 0; c < w.nch; ++c) w.buf[f * w.nch + c] = channels[c][start + f];
    const auto want = static_cast<sf_count_t>(n);
    if (sf_writef_short(w.sf.get(), w.buf.data(), want) != want)
      return make_error("audio.write", "write " + w.tmp.path() + ": " + sf_strerror(w.sf.get()));
  }
  w.written += frames;
  return common::Ok{};
}

common::Result<AudioFileInfo> AudioFileWriter::commit() {
  Impl& w = *impl_;
  if (!w.sf) return invalid(w.final_path, "committed twice");
  if (w.written != w.frames)
    return invalid(w.final_path, std::to_string(w.written) + " frames written of " + std::to_string(w.frames));
  // sf_close writes the final header (WAV sizes, FLAC STREAMINFO, the last Ogg page).
  SNDFILE* raw = w.sf.release();
  if (int rc = sf_close(raw); rc != 0)
    return make_error("audio.close", "close " + w.tmp.path() + ": " + sf_error_number(rc));
  if (::fsync(w.tmp.fd()) != 0) return io_error("fsync", w.tmp.path(), errno);
  struct stat stbuf {};
  if (::fstat(w.tmp.fd(), &stbuf) != 0) return io_error("stat", w.tmp.path(), errno);
  const auto size = static_cast<std::uint64_t>(stbuf.st_size);
  auto sha = sha256_of_fd(w.tmp.fd(), w.tmp.path(), size);
  if (!sha) return sha.error();
  if (auto st = w.tmp.close(); !st) return st.error();

  if (::rename(w.tmp.path().c_str(), w.final_path.c_str()) != 0) return io_error("rename", w.final_path, errno);
  w.tmp.mark_published();
  if (auto st = fsync_directory(w.dir); !st) return st.error();

  AudioFileInfo out;
  out.file_name = std::filesystem::path(w.final_path).filename().string();
  out.format = std::string(w.fe.name);
  out.channels = static_cast<unsigned>(w.nch);
  out.sample_rate = w.sample_rate;
  out.frames = w.frames;
  out.duration_ms = w.frames * 1000u / w.sample_rate;
  out.size_bytes = size;
  out.sha256 = std::move(*sha);
  return out;
}

common::Result<AudioFileInfo> write_audio_file(const std::string& final_path, AudioFormat format,
                                               std::uint32_t sample_rate,
                                               std::span<const std::span<const std::int16_t>> channels) {
  if (channels.empty()) return invalid(final_path, "no channels");
  if (auto st = same_lengths(final_path, channels); !st) return st.error();
  auto w = AudioFileWriter::open(final_path, format, sample_rate, static_cast<unsigned>(channels.size()),
                                 channels[0].size());
  if (!w) return w.error();
  if (auto st = (*w)->write(channels); !st) return st.error();
  return (*w)->commit();
}

}  // namespace sgw::recording
