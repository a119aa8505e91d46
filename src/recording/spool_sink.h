// SpoolSink: a recording session's media::SessionSink that writes the spool.
//
// Thread: created on the SIP thread (cheap: no I/O), then used only on the
// session's media worker. The file is created in start(); an error there is
// logged and counted, and the session goes on unrecorded rather than failing
// the call (the SIP side already answered).
#pragma once

#include <memory>
#include <string>

#include "common/metrics.h"
#include "media/session_sink.h"
#include "recording/spool_syncer.h"
#include "recording/spool_writer.h"

namespace sgw::recording {

struct SpoolSinkMetrics {
  common::Counter* write_errors = nullptr;  // create/flush failures
  common::Counter* dropped_records = nullptr;
};

class SpoolSink final : public media::SessionSink {
 public:
  // syncer must outlive the sink.
  SpoolSink(std::string spool_dir, std::string recording_id, std::string start_json,
            SpoolSyncer* syncer, SpoolSinkMetrics metrics);
  ~SpoolSink() override;

  void start(std::int64_t now_us) override;
  void on_rtp(std::uint8_t stream, std::int64_t arrival_us, const media::RtpPacketView& packet) override;
  void on_event(std::int64_t at_us, std::string_view json) override;
  void on_metadata(std::int64_t at_us, std::string_view xml) override;
  void on_tick(std::int64_t now_us) override;
  void finish(std::int64_t at_us, std::string_view end_json) override;

 private:
  void flush();

  std::string spool_dir_;
  std::string recording_id_;
  std::string start_json_;
  SpoolSyncer* syncer_;  // not owned
  SpoolSinkMetrics metrics_;
  std::unique_ptr<SpoolWriter> writer_;
  bool failed_ = false;
};

}  // namespace sgw::recording
