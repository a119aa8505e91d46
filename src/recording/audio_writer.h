// Writing a finished recording's audio file (WAV, FLAC, Ogg/Opus) with libsndfile, published
// atomically: the file is written under `final_path + ".tmp"`, fsync'd, renamed to `final_path`,
// and the directory fsync'd, so a reader never sees half a file (docs/recording-json.md, "audio").
//
// Thread: blocking I/O; call from the finalisation pool, never from a media worker. Any thread;
// no shared state. The sample spans are only read during the call.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace sgw::recording {

enum class AudioFormat {
  kWavPcm16,  // "wav":       RIFF/WAVE, 16-bit linear PCM
  kWavUlaw,   // "wav-ulaw":  RIFF/WAVE, G.711 mu-law (format tag 7)
  kWavAlaw,   // "wav-alaw":  RIFF/WAVE, G.711 A-law (format tag 6)
  kFlac,      // "flac":      FLAC, 16-bit, lossless
  kOggOpus,   // "ogg-opus":  Ogg/Opus (RFC 7845); sample rate 8/12/16/24/48 kHz only
};

// Config names: "wav", "wav-ulaw", "wav-alaw", "flac", "ogg-opus" (case-insensitive on input).
// Error code "audio.format", message quoting the value and listing the valid names.
common::Result<AudioFormat> parse_audio_format(std::string_view name);
std::string_view audio_format_name(AudioFormat f);
// File extension without the dot: "wav" (all WAV variants), "flac", "opus" (RFC 7845 §9).
std::string_view audio_file_extension(AudioFormat f);

// What was published; also the "audio" entries of the recording JSON.
struct AudioFileInfo {
  std::string file_name;    // last path component of final_path
  std::string format;       // audio_format_name()
  unsigned channels = 0;
  std::uint32_t sample_rate = 0;
  std::uint64_t frames = 0;       // samples per channel written
  std::uint64_t duration_ms = 0;  // frames * 1000 / sample_rate, rounded down
  std::uint64_t size_bytes = 0;   // size of the published file
  std::string sha256;             // lower-case hex SHA-256 of the published file's bytes
};

nlohmann::json to_json(const AudioFileInfo& info);

// Lower-case hex SHA-256 and size of a whole file (AudioFileInfo::sha256 of a published file).
// Errors io.open / io.read / io.stat name the path.
struct FileDigest {
  std::string sha256;
  std::uint64_t size = 0;
};
common::Result<FileDigest> digest_file(const std::string& path);

// Writes `channels` (each one a track of int16 samples at `sample_rate`, all the same length;
// channel i of the file is channels[i]) to `final_path`, replacing any file there. Parent
// directories are created. Samples are interleaved in bounded chunks (no full interleaved copy).
//
// Errors (the temporary file is always removed; final_path is only replaced by a complete file —
// if only the final directory fsync fails, the renamed file is in place and io.fsync is returned):
//   audio.invalid   no channels, channels of different lengths, sample rate 0, too many
//                   channels for the format (FLAC 8, Ogg/Opus 255, WAV 1024), Opus sample rate
//                   not 8000/12000/16000/24000/48000
//   io.mkdir / io.open / io.fsync / io.rename / io.read / io.stat   (message: "<op> <path>: <why>")
//   audio.open / audio.write / audio.close                          (libsndfile's reason)
// Every message names the path.
common::Result<AudioFileInfo> write_audio_file(const std::string& final_path, AudioFormat format,
                                               std::uint32_t sample_rate,
                                               std::span<const std::span<const std::int16_t>> channels);

// The same, streamed: open() for a known number of frames, write() the frames in pieces of any
// size, commit() publishes. Memory is one interleave chunk, whatever the length of the file (a
// 30 h recording is written this way by the finaliser, docs/timeline.md "Streaming").
// Destroying a writer that was not committed removes its temporary file. Errors as above;
// write() of more frames than announced, or commit() of fewer, is "audio.invalid".
class AudioFileWriter {
 public:
  static common::Result<std::unique_ptr<AudioFileWriter>> open(const std::string& final_path,
                                                               AudioFormat format, std::uint32_t sample_rate,
                                                               unsigned channels, std::uint64_t frames);
  ~AudioFileWriter();
  AudioFileWriter(const AudioFileWriter&) = delete;
  AudioFileWriter& operator=(const AudioFileWriter&) = delete;

  // Appends channels[0].size() frames; channel i of the file from channels[i] (all the same length).
  common::Status write(std::span<const std::span<const std::int16_t>> channels);
  common::Result<AudioFileInfo> commit();

 private:
  struct Impl;
  explicit AudioFileWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sgw::recording
