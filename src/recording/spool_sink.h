// SpoolSink: a recording session's media::SessionSink that writes the spool.
//
// Thread: create() runs on the SIP thread before the call is answered: it
// creates the spool file and writes (write(2), no fsync) the session-start
// record, the metadata documents and the first streams event, then asks the
// syncer to make them durable at once; on_durable tells when (the 200 OK waits
// for it, docs/guarantees.md). An error there refuses the call (503) and
// leaves no file. Afterwards the sink is used only on the session's media
// worker. A write error, or a failed sync of the file, during the call is
// reported once through on_failure (worker thread, at the next tick) so the
// application can end the call and mark storage bad.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/metrics.h"
#include "common/result.h"
#include "media/session_sink.h"
#include "recording/spool_file_system.h"
#include "recording/spool_syncer.h"
#include "recording/spool_writer.h"

namespace sgw::recording {

struct SpoolSinkMetrics {
  common::Counter* write_errors = nullptr;  // create/flush failures
  common::Counter* dropped_records = nullptr;
};

struct SpoolSinkOptions {
  std::string spool_dir;
  SpoolSyncer* syncer = nullptr;    // not owned; must outlive every sink
  SpoolSinkMetrics metrics;
  SpoolFileSystem* fs = nullptr;    // the POSIX one when null (tests pass a faulty one)
};

// What a new session's spool starts with; all written before the answer.
struct SpoolStart {
  std::string recording_id;
  std::string start_json;                   // the session-start record
  std::vector<std::string> metadata_docs;   // RFC 7865 documents of the INVITE
  std::string streams_event_json;           // the first "streams" event; may be empty
  // Any thread (the syncer's), once: the records above are on disk (Ok) or not.
  std::function<void(common::Status)> on_durable;
  // Worker thread, at most once: a spool write failed (the message names the
  // path and the operation); the recording is losing data from now on.
  std::function<void(const std::string& message)> on_failure;
};

class SpoolSink final : public media::SessionSink {
 public:
  // Creates <spool_dir>/<recording_id>.spool with the start records. Errors
  // name the path and the operation; no file is left behind.
  static common::Result<std::unique_ptr<SpoolSink>> create(const SpoolSinkOptions& options,
                                                           SpoolStart start);
  ~SpoolSink() override;

  void start(std::int64_t now_us) override;
  void on_rtp(std::uint8_t stream, std::int64_t arrival_us, const media::RtpPacketView& packet) override;
  void on_event(std::int64_t at_us, std::string_view json) override;
  void on_metadata(std::int64_t at_us, std::string_view xml) override;
  // Written as a "stream_counters" event (spool_events.h) for the finaliser's integrity.
  void on_stream_counters(std::int64_t at_us, std::uint8_t stream, std::uint64_t wrong_source,
                          std::uint64_t kernel_drops) override;
  void on_srtp_counters(std::int64_t at_us, std::uint8_t stream, std::uint64_t auth_failures,
                        std::uint64_t replays) override;
  void on_tick(std::int64_t now_us) override;
  void finish(std::int64_t at_us, std::string_view end_json) override;

 private:
  SpoolSink(const SpoolSinkOptions& options, std::string recording_id,
            std::unique_ptr<SpoolWriter> writer,
            std::function<void(const std::string&)> on_failure);
  void flush();
  void failed(const std::string& message);

  std::string recording_id_;
  SpoolSyncer* syncer_;  // not owned
  SpoolSinkMetrics metrics_;
  std::unique_ptr<SpoolWriter> writer_;
  std::function<void(const std::string&)> on_failure_;
  bool failed_ = false;
};

}  // namespace sgw::recording
