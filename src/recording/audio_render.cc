#include "recording/audio_render.h"

#include <algorithm>
#include <memory>
#include <span>

#include "media/rtp_packet_view.h"

namespace sgw::recording {

namespace {

// Tracks are advanced every kStepUs of replay time, and the files written in chunks of at least
// kChunkSamples samples per channel: a few hundred advance() calls a minute, and a write
// per chunk, whatever the packet rate.
constexpr std::int64_t kStepUs = 250'000;
constexpr std::size_t kChunkSamples = 8192;

class Renderer {
 public:
  Renderer(std::map<std::size_t, StreamTrack>& tracks, const ChannelLayout& layout)
      : tracks_(tracks), layout_(layout) {
    for (auto& [index, t] : tracks_) chunk_[index].resize(kChunkSamples);
    if (!tracks_.empty()) total_ = tracks_.begin()->second.total_samples();
  }

  common::Status open(const std::string& base, AudioFormat format, std::uint32_t rate, RenderedAudio& out) {
    for (const auto& file : layout_.files) {
      std::string path = base + file.name_suffix + "." + std::string(audio_file_extension(format));
      auto w = AudioFileWriter::open(path, format, rate, static_cast<unsigned>(file.channels.size()),
                                     static_cast<std::uint64_t>(total_));
      if (!w) return w.error();
      writers_.push_back(std::move(w).value());
      out.paths.push_back(std::move(path));
    }
    return common::Ok{};
  }

  void on_rtp(const RtpRecordView& r) {
    auto it = tracks_.find(r.stream);
    if (it != tracks_.end()) {
      media::RtpPacketView v;
      v.marker = r.marker;
      v.payload_type = r.payload_type;
      v.sequence = r.seq;
      v.timestamp = r.ts;
      v.ssrc = r.ssrc;
      v.payload = r.payload;
      it->second.add_packet(v, r.arrival_us);
    }
    // After the packet (so a stream's own packet closes its anchor window as it always did).
    if (r.arrival_us >= next_step_us_) {
      for (auto& [index, t] : tracks_) t.advance(r.arrival_us);
      next_step_us_ = r.arrival_us + kStepUs;
      if (status_) status_ = drain(false);
    }
  }

  common::Status finish() {
    for (auto& [index, t] : tracks_) t.finish();
    if (!status_) return status_;
    return drain(true);
  }

  std::vector<std::unique_ptr<AudioFileWriter>>& writers() { return writers_; }

 private:
  // Writes every full chunk that all tracks have finalised (all of the rest when `all`).
  common::Status drain(bool all) {
    std::int64_t ready = total_;
    for (auto& [index, t] : tracks_) ready = std::min(ready, t.final_samples());
    while (written_ < ready) {
      const std::int64_t n = std::min<std::int64_t>(kChunkSamples, ready - written_);
      if (!all && n < static_cast<std::int64_t>(kChunkSamples)) break;
      for (auto& [index, t] : tracks_) {
        auto& c = chunk_[index];
        const std::size_t got = t.read(std::span<std::int16_t>(c).first(static_cast<std::size_t>(n)));
        std::fill(c.begin() + static_cast<std::ptrdiff_t>(got), c.begin() + n, std::int16_t{0});
      }
      for (std::size_t f = 0; f < layout_.files.size(); ++f) {
        std::vector<std::span<const std::int16_t>> channels;
        for (const auto& ch : layout_.files[f].channels)
          channels.push_back(std::span<const std::int16_t>(chunk_.at(ch.stream_index)).first(static_cast<std::size_t>(n)));
        if (auto st = writers_[f]->write(channels); !st) return st;
      }
      written_ += n;
    }
    return common::Ok{};
  }

  std::map<std::size_t, StreamTrack>& tracks_;
  const ChannelLayout& layout_;
  std::map<std::size_t, std::vector<std::int16_t>> chunk_;  // per track: the chunk being written
  std::vector<std::unique_ptr<AudioFileWriter>> writers_;
  std::int64_t total_ = 0;
  std::int64_t written_ = 0;
  std::int64_t next_step_us_ = 0;
  common::Status status_ = common::Ok{};
};

}  // namespace

common::Result<RenderedAudio> render_audio(const std::string& spool_path, std::map<std::size_t, StreamTrack>& tracks,
                                           const ChannelLayout& layout, const std::string& base, AudioFormat format,
                                           std::uint32_t sample_rate, SpoolFileSystem* fs,
                                           const std::function<void(const RtpRecordView&)>& on_rtp) {
  RenderedAudio out;
  Renderer r(tracks, layout);
  if (auto st = r.open(base, format, sample_rate, out); !st) return st.error();
  RecordVisitor v;
  v.on_rtp = [&](const RtpRecordView& rec) {
    if (on_rtp) on_rtp(rec);
    r.on_rtp(rec);
  };
  auto read = read_spool(spool_path, v, fs);
  if (!read) return read.error();
  if (auto st = r.finish(); !st) return st.error();
  for (auto& w : r.writers()) {
    auto info = w->commit();
    if (!info) return info.error();
    out.files.push_back(std::move(info).value());
  }
  return out;
}

}  // namespace sgw::recording
