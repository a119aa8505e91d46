// render_audio: the finaliser's second pass. Replays the RTP records of a spool into the streams'
// StreamTracks in arrival order and streams the finished samples into the layout's audio files
// in bounded chunks, so the memory a finalisation needs does not grow with the length of the call
// (docs/timeline.md "Streaming"; a 30 h call is recorded like a 30 s one).
//
// Thread: blocking file I/O; the finaliser's threads. Nothing here is shared.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/result.h"
#include "recording/audio_writer.h"
#include "recording/channel_layout.h"
#include "recording/spool_file_system.h"
#include "recording/spool_reader.h"
#include "recording/timeline.h"

namespace sgw::recording {

struct RenderedAudio {
  std::vector<AudioFileInfo> files;  // one per layout file, in layout order
  std::vector<std::string> paths;    // their published paths
};

// Preconditions: every channel of `layout` names a stream in `tracks`; every track was created
// with the same TimelineParams (output rate `sample_rate`). Feeds the spool's RTP records of
// those streams to their tracks (records of other streams are skipped), finishes every track,
// and publishes base + file.name_suffix + "." + extension per layout file. on_rtp (may be null)
// sees every RTP record first, in file order. fs: the spool's file system (null: POSIX). Errors:
// the spool reader's, and write_audio_file()'s for each file (nothing of a failed file is left).
common::Result<RenderedAudio> render_audio(const std::string& spool_path, std::map<std::size_t, StreamTrack>& tracks,
                                           const ChannelLayout& layout, const std::string& base, AudioFormat format,
                                           std::uint32_t sample_rate, SpoolFileSystem* fs = nullptr,
                                           const std::function<void(const RtpRecordView&)>& on_rtp = {});

}  // namespace sgw::recording
