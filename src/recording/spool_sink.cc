#include "recording/spool_sink.h"

#include "common/logging.h"

namespace sgw::recording {

namespace {
void bump(common::Counter* c, std::uint64_t n = 1) {
  if (c && n) c->inc(n);
}
}  // namespace

SpoolSink::SpoolSink(std::string spool_dir, std::string recording_id, std::string start_json,
                     SpoolSyncer* syncer, SpoolSinkMetrics metrics)
    : spool_dir_(std::move(spool_dir)),
      recording_id_(std::move(recording_id)),
      start_json_(std::move(start_json)),
      syncer_(syncer),
      metrics_(metrics) {}

SpoolSink::~SpoolSink() {
  if (writer_) {
    syncer_->remove(writer_->file());
    (void)writer_->close();
  }
}

void SpoolSink::start(std::int64_t now_us) {
  // The header is written now; the syncer's next pass (within one cadence)
  // makes the file and its directory entry durable: no disk wait on the worker.
  SpoolWriterOptions options;
  options.sync_on_create = false;
  // One write() per session every 500 ms (a few KiB) instead of every 200 ms:
  // at 1000 calls that is 2000 syscalls/s instead of 5000 on the media
  // workers. A kill -9 loses at most this plus a tick (the design allows the
  // fsync cadence, 1 s).
  options.flush_age = std::chrono::milliseconds(500);
  auto w = SpoolWriter::create(spool_dir_, recording_id_, nullptr, options);
  if (!w) {
    failed_ = true;
    bump(metrics_.write_errors);
    common::logger("spool")->error("{}: {}", recording_id_, w.error().message);
    return;
  }
  writer_ = std::move(w).value();
  writer_->append_json(RecordType::kSessionStart, now_us, start_json_);
  flush();
  syncer_->add(writer_->file());
}

void SpoolSink::on_rtp(std::uint8_t stream, std::int64_t arrival_us,
                       const media::RtpPacketView& p) {
  if (!writer_) return;
  writer_->append_rtp(stream, arrival_us, p.sequence, p.timestamp, p.ssrc, p.payload_type, p.marker,
                      p.payload);
}

void SpoolSink::on_event(std::int64_t at_us, std::string_view json) {
  if (writer_) writer_->append_json(RecordType::kEvent, at_us, json);
}

void SpoolSink::on_metadata(std::int64_t at_us, std::string_view xml) {
  if (writer_) writer_->append_metadata(at_us, xml);
}

void SpoolSink::on_tick(std::int64_t) {
  if (writer_ && writer_->should_flush(std::chrono::steady_clock::now())) flush();
}

void SpoolSink::flush() {
  auto before = writer_->dropped_records();
  auto st = writer_->flush();
  bump(metrics_.dropped_records, writer_->dropped_records() - before);
  if (!st) {
    bump(metrics_.write_errors);
    common::logger("spool")->error("{}: {}", recording_id_, st.error().message);
  }
}

void SpoolSink::finish(std::int64_t at_us, std::string_view end_json) {
  if (!writer_) return;
  writer_->append_json(RecordType::kSessionEnd, at_us, end_json);
  // Every byte is in the file now (the finaliser reads it through the page
  // cache); the syncer's next pass fdatasyncs and closes it, off the worker.
  auto st = writer_->finish_writes();
  syncer_->sync_and_close(writer_->file());
  if (!st) {
    bump(metrics_.write_errors);
    common::logger("spool")->error("{}: {}", recording_id_, st.error().message);
  }
  writer_.reset();
}

}  // namespace sgw::recording
