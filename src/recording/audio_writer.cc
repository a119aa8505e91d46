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

// ---- WAV written directly (docs/recording-json.md "audio") ----
//
// The three WAV formats are written here rather than through libsndfile: the header is known up
// front (the frame count is given to open()), samples are converted straight into one buffer
// that is written sequentially, and the SHA-256 is taken from that buffer on its way to the file
// instead of reading the file back. The bytes are exactly libsndfile's (audio_writer_test proves
// it for every format, channel count and odd/even length): the same header chunks (PCM: RIFF,
// fmt of 16 bytes, data; G.711: fmt of 18 bytes, a fact chunk with the frame count, data, a pad
// byte after odd data), and G.711 codes from libsndfile's own encoder, tabulated once.

constexpr std::size_t kWavBufferBytes = 256 * 1024;

// libsndfile's G.711 encoding of every 16-bit sample (65536 codes), obtained once by encoding
// all of them through libsndfile into memory: bit-identical to what sf_writef_short wrote.
struct G711EncodeTable {
  bool ok = false;
  std::vector<std::uint8_t> code;  // index: sample + 32768
};

struct MemoryFile {
  std::vector<std::uint8_t> bytes;
  sf_count_t pos = 0;
};

G711EncodeTable build_g711_table(int sf_subformat) {
  G711EncodeTable t;
  MemoryFile mf;
  SF_VIRTUAL_IO io{};
  io.get_filelen = [](void* u) -> sf_count_t { return static_cast<sf_count_t>(static_cast<MemoryFile*>(u)->bytes.size()); };
  io.seek = [](sf_count_t off, int whence, void* u) -> sf_count_t {
    auto* m = static_cast<MemoryFile*>(u);
    const auto size = static_cast<sf_count_t>(m->bytes.size());
    sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : size;
    m->pos = std::max<sf_count_t>(0, base + off);
    return m->pos;
  };
  io.read = [](void* ptr, sf_count_t n, void* u) -> sf_count_t {
    auto* m = static_cast<MemoryFile*>(u);
    const auto size = static_cast<sf_count_t>(m->bytes.size());
    const sf_count_t got = std::max<sf_count_t>(0, std::min(n, size - m->pos));
    if (got > 0) std::memcpy(ptr, m->bytes.data() + m->pos, static_cast<std::size_t>(got));
    m->pos += got;
    return got;
  };
  io.write = [](const void* ptr, sf_count_t n, void* u) -> sf_count_t {
    auto* m = static_cast<MemoryFile*>(u);
    const auto end = static_cast<std::size_t>(m->pos + n);
    if (m->bytes.size() < end) m->bytes.resize(end);
    std::memcpy(m->bytes.data() + m->pos, ptr, static_cast<std::size_t>(n));
    m->pos += n;
    return n;
  };
  io.tell = [](void* u) -> sf_count_t { return static_cast<MemoryFile*>(u)->pos; };
  SF_INFO info{};
  info.samplerate = 8000;
  info.channels = 1;
  info.format = SF_FORMAT_RAW | sf_subformat;
  SNDFILE* f = sf_open_virtual(&io, SFM_WRITE, &info, &mf);
  if (f == nullptr) return t;
  std::vector<std::int16_t> all(65536);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::int16_t>(static_cast<int>(i) - 32768);
  const bool wrote = sf_write_short(f, all.data(), static_cast<sf_count_t>(all.size())) == 65536;
  sf_close(f);
  if (!wrote || mf.bytes.size() != 65536) return t;
  t.code = std::move(mf.bytes);
  t.ok = true;
  return t;
}

// Null when libsndfile would not encode into memory (never seen): the caller uses libsndfile.
const std::uint8_t* g711_encode_table(AudioFormat f) {
  static const G711EncodeTable ulaw = build_g711_table(SF_FORMAT_ULAW);
  static const G711EncodeTable alaw = build_g711_table(SF_FORMAT_ALAW);
  const G711EncodeTable& t = f == AudioFormat::kWavUlaw ? ulaw : alaw;
  return t.ok ? t.code.data() : nullptr;
}

// Little-endian fields into a fixed header (at most 58 bytes); pos advances.
struct HeaderBytes {
  std::array<std::uint8_t, 64> b{};
  std::size_t pos = 0;
  void le16(std::uint32_t v) {
    b[pos++] = static_cast<std::uint8_t>(v);
    b[pos++] = static_cast<std::uint8_t>(v >> 8);
  }
  void le32(std::uint32_t v) {
    le16(v & 0xFFFF);
    le16(v >> 16);
  }
  void tag(const char (&t)[5]) {
    for (int i = 0; i < 4; ++i) b[pos++] = static_cast<std::uint8_t>(t[i]);
  }
};

// The header libsndfile writes for these formats (RIFF/WAVE; Microsoft's WAVEFORMATEX).
std::vector<std::uint8_t> wav_header(AudioFormat f, std::uint32_t rate, std::uint32_t channels, std::uint64_t frames) {
  const bool pcm = f == AudioFormat::kWavPcm16;
  const std::uint32_t bytes_per_sample = pcm ? 2 : 1;
  const auto data = static_cast<std::uint32_t>(frames * channels * bytes_per_sample);  // < 4 GiB: validate()
  const std::uint32_t padded = data + (data & 1);
  HeaderBytes h;
  h.tag("RIFF");
  h.le32(pcm ? 36 + padded : 50 + padded);
  h.tag("WAVE");
  h.tag("fmt ");
  h.le32(pcm ? 16 : 18);
  h.le16(pcm ? 1 : f == AudioFormat::kWavUlaw ? 7 : 6);  // PCM, MULAW, ALAW
  h.le16(channels);
  h.le32(rate);
  h.le32(rate * channels * bytes_per_sample);
  h.le16(channels * bytes_per_sample);
  h.le16(bytes_per_sample * 8);
  if (!pcm) {
    h.le16(0);  // cbSize
    h.tag("fact");
    h.le32(4);
    h.le32(static_cast<std::uint32_t>(frames));
  }
  h.tag("data");
  h.le32(data);
  return std::vector<std::uint8_t>(h.b.begin(), h.b.begin() + static_cast<std::ptrdiff_t>(h.pos));
}

std::string hex_of(const unsigned char* md, unsigned len) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    hex.push_back(kHex[md[i] >> 4]);
    hex.push_back(kHex[md[i] & 0x0f]);
  }
  return hex;
}

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
  return hex_of(md.data(), len);
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
  // Direct WAV (sf is null): bytes not yet written, running SHA-256, G.711 codes (null: PCM16).
  bool direct = false;
  bool open_for_write = false;
  std::vector<std::uint8_t> out;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> sha{nullptr, &EVP_MD_CTX_free};
  const std::uint8_t* g711 = nullptr;
  std::uint64_t file_bytes = 0;
  common::Status flush_out();
  std::uint32_t sample_rate = 0;
  std::size_t nch = 0;
  std::uint64_t frames = 0;
  std::uint64_t written = 0;
  std::vector<std::int16_t> buf;  // one interleaved chunk
};

// Writes and hashes the buffered bytes (retrying EINTR and short writes).
common::Status AudioFileWriter::Impl::flush_out() {
  if (out.empty()) return common::Ok{};
  if (EVP_DigestUpdate(sha.get(), out.data(), out.size()) != 1)
    return make_error("audio.sha256", "sha256 " + tmp.path() + ": EVP_DigestUpdate failed");
  std::size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::write(tmp.fd(), out.data() + done, out.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("write", tmp.path(), errno);
    }
    done += static_cast<std::size_t>(n);
  }
  file_bytes += out.size();
  out.clear();
  return common::Ok{};
}

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
  impl->sample_rate = sample_rate;
  impl->nch = channels;
  impl->frames = frames;
  if (fe.bytes_per_sample != 0 && (format == AudioFormat::kWavPcm16 || g711_encode_table(format) != nullptr)) {
    impl->direct = true;
    impl->open_for_write = true;
    impl->g711 = format == AudioFormat::kWavPcm16 ? nullptr : g711_encode_table(format);
    impl->sha.reset(EVP_MD_CTX_new());
    if (!impl->sha || EVP_DigestInit_ex(impl->sha.get(), EVP_sha256(), nullptr) != 1)
      return make_error("audio.sha256", "sha256 " + impl->tmp.path() + ": EVP_DigestInit_ex failed");
    impl->out = wav_header(format, sample_rate, channels, frames);
    impl->out.reserve(kWavBufferBytes + kChunkFrames * channels * 2);
    return std::unique_ptr<AudioFileWriter>(new AudioFileWriter(std::move(impl)));
  }
  SF_INFO info{};
  info.samplerate = static_cast<int>(sample_rate);
  info.channels = static_cast<int>(channels);
  info.format = fe.sf_format;
  // close_desc = SF_FALSE: we still need the descriptor to fsync and hash it.
  impl->sf.reset(sf_open_fd(impl->tmp.fd(), SFM_WRITE, &info, SF_FALSE));
  if (!impl->sf)
    return make_error("audio.open", "open " + impl->tmp.path() + " as " + std::string(fe.name) + ": " +
                                        sf_strerror(nullptr));
  impl->buf.resize(static_cast<std::size_t>(std::min<std::uint64_t>(frames, kChunkFrames)) * channels);
  return std::unique_ptr<AudioFileWriter>(new AudioFileWriter(std::move(impl)));
}

common::Status AudioFileWriter::write(std::span<const std::span<const std::int16_t>> channels) {
  Impl& w = *impl_;
  if (!w.sf && !w.open_for_write) return invalid(w.final_path, "write after commit");
  if (channels.size() != w.nch)
    return invalid(w.final_path, std::to_string(channels.size()) + " channels given, the file has " +
                                     std::to_string(w.nch));
  if (auto st = same_lengths(w.final_path, channels); !st) return st;
  const std::size_t frames = channels[0].size();
  if (w.written + frames > w.frames)
    return invalid(w.final_path, "more than the " + std::to_string(w.frames) + " frames announced");
  if (w.direct) {
    // Interleaved straight into the output bytes: little-endian PCM16, or one G.711 code each.
    for (std::size_t start = 0; start < frames; start += kChunkFrames) {
      const std::size_t n = std::min(kChunkFrames, frames - start);
      const std::size_t at = w.out.size();
      if (w.g711 != nullptr) {
        w.out.resize(at + n * w.nch);
        std::uint8_t* o = w.out.data() + at;
        for (std::size_t c = 0; c < w.nch; ++c) {
          const std::int16_t* in = channels[c].data() + start;
          for (std::size_t f = 0; f < n; ++f)
            o[f * w.nch + c] = w.g711[static_cast<std::uint16_t>(in[f]) ^ 0x8000u];
        }
      } else {
        w.out.resize(at + n * w.nch * 2);
        std::uint8_t* o = w.out.data() + at;
        for (std::size_t c = 0; c < w.nch; ++c) {
          const std::int16_t* in = channels[c].data() + start;
          for (std::size_t f = 0; f < n; ++f) {
            const auto v = static_cast<std::uint16_t>(in[f]);
            o[(f * w.nch + c) * 2] = static_cast<std::uint8_t>(v);
            o[(f * w.nch + c) * 2 + 1] = static_cast<std::uint8_t>(v >> 8);
          }
        }
      }
      if (w.out.size() >= kWavBufferBytes)
        if (auto st = w.flush_out(); !st) return st;
    }
    w.written += frames;
    return common::Ok{};
  }
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
  if (!w.sf && !w.open_for_write) return invalid(w.final_path, "committed twice");
  if (w.written != w.frames)
    return invalid(w.final_path, std::to_string(w.written) + " frames written of " + std::to_string(w.frames));
  common::Result<std::string> sha = std::string();
  std::uint64_t size = 0;
  if (w.direct) {
    w.open_for_write = false;
    // RIFF: a chunk of odd size is followed by a pad byte (G.711 with an odd sample count).
    if ((w.frames * w.nch) % 2 != 0 && w.g711 != nullptr) w.out.push_back(0);
    if (auto st = w.flush_out(); !st) return st.error();
    if (::fsync(w.tmp.fd()) != 0) return io_error("fsync", w.tmp.path(), errno);
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(w.sha.get(), md.data(), &len) != 1)
      return make_error("audio.sha256", "sha256 " + w.tmp.path() + ": EVP_DigestFinal_ex failed");
    sha = hex_of(md.data(), len);
    size = w.file_bytes;
  } else {
    // sf_close writes the final header (WAV sizes, FLAC STREAMINFO, the last Ogg page).
    SNDFILE* raw = w.sf.release();
    if (int rc = sf_close(raw); rc != 0)
      return make_error("audio.close", "close " + w.tmp.path() + ": " + sf_error_number(rc));
    if (::fsync(w.tmp.fd()) != 0) return io_error("fsync", w.tmp.path(), errno);
    struct stat stbuf {};
    if (::fstat(w.tmp.fd(), &stbuf) != 0) return io_error("stat", w.tmp.path(), errno);
    size = static_cast<std::uint64_t>(stbuf.st_size);
    sha = sha256_of_fd(w.tmp.fd(), w.tmp.path(), size);
  }
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
