#include "recording/spool_sink.h"

#include "common/logging.h"
#include "recording/spool_events.h"

namespace sgw::recording {

namespace {
void bump(common::Counter* c, std::uint64_t n = 1) {
  if (c && n) c->inc(n);
}
}  // namespace

common::Result<std::unique_ptr<SpoolSink>> SpoolSink::create(const SpoolSinkOptions& options,
                                                             SpoolStart start) {
  SpoolWriterOptions wo;
  // The first sync is asked for below, on the syncer's thread: the SIP thread
  // writes but never waits for the disk.
  wo.sync_on_create = false;
  // One write() per session every 500 ms (a few KiB) instead of every 200 ms:
  // at 1000 calls that is 2000 syscalls/s instead of 5000 on the media
  // workers. A kill -9 loses at most this plus a tick (the design allows the
  // fsync cadence, 1 s).
  wo.flush_age = std::chrono::milliseconds(500);
  auto fail = [&](const common::Error& e) {
    bump(options.metrics.write_errors);
    common::logger("spool")->error("{}: {}", start.recording_id, e.message);
    return e;
  };
  auto w = SpoolWriter::create(options.spool_dir, start.recording_id, options.fs, wo);
  if (!w) return fail(w.error());
  std::unique_ptr<SpoolWriter> writer = std::move(w).value();
  // Session clock 0: the session starts now.
  writer->append_json(RecordType::kSessionStart, 0, start.start_json);
  for (const auto& doc : start.metadata_docs) writer->append_metadata(0, doc);
  if (!start.streams_event_json.empty())
    writer->append_json(RecordType::kEvent, 0, start.streams_event_json);
  if (auto st = writer->flush(); !st || writer->dropped_records() != 0) {
    // Nothing of a refused call may stay (recovery would publish it).
    std::string path = writer->path();
    (void)writer->close();
    writer.reset();
    (options.fs ? options.fs : SpoolFileSystem::posix())->unlink(path);
    return fail(st ? common::make_error("spool.too_large", path + ": start records too large")
                   : st.error());
  }
  std::shared_ptr<SpoolFile> file = writer->file();
  std::unique_ptr<SpoolSink> sink(
      new SpoolSink(options, start.recording_id, std::move(writer), std::move(start.on_failure)));
  if (start.on_durable) options.syncer->sync_now(std::move(file), std::move(start.on_durable));
  return sink;
}

SpoolSink::SpoolSink(const SpoolSinkOptions& options, std::string recording_id,
                     std::unique_ptr<SpoolWriter> writer,
                     std::function<void(const std::string&)> on_failure)
    : recording_id_(std::move(recording_id)),
      syncer_(options.syncer),
      metrics_(options.metrics),
      writer_(std::move(writer)),
      on_failure_(std::move(on_failure)) {}

SpoolSink::~SpoolSink() {
  if (writer_) {
    syncer_->remove(writer_->file());
    (void)writer_->close();
  }
}

void SpoolSink::start(std::int64_t) {
  // Created (and its first sync asked for) by create(): from now on the
  // syncer's periodic passes keep it durable within the cadence.
  if (writer_) syncer_->add(writer_->file());
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

void SpoolSink::on_stream_counters(std::int64_t at_us, std::uint8_t stream, std::uint64_t wrong_source,
                                   std::uint64_t kernel_drops) {
  StreamCounters c;
  c.streams[stream] = {wrong_source, kernel_drops, std::nullopt, std::nullopt};
  on_event(at_us, c.encode());
}

void SpoolSink::on_srtp_counters(std::int64_t at_us, std::uint8_t stream, std::uint64_t auth_failures,
                                 std::uint64_t replays) {
  StreamCounters c;
  c.streams[stream].srtp_auth_failures = auth_failures;
  c.streams[stream].srtp_replays = replays;
  on_event(at_us, c.encode());
}

void SpoolSink::on_metadata(std::int64_t at_us, std::string_view xml) {
  if (writer_) writer_->append_metadata(at_us, xml);
}

void SpoolSink::on_tick(std::int64_t) {
  if (!writer_) return;
  if (writer_->should_flush(std::chrono::steady_clock::now())) flush();
  // A failed fdatasync (the syncer's pass) may have lost written data: as bad as a failed write.
  if (!failed_ && writer_->file()->sync_failed())
    failed(writer_->path() + ": fdatasync failed (written data may be lost)");
}

void SpoolSink::failed(const std::string& message) {
  bump(metrics_.write_errors);
  if (failed_) return;  // one line and one report per recording; the metric counts each error
  failed_ = true;
  common::logger("spool")->error("{}: {}", recording_id_, message);
  if (on_failure_) on_failure_(message);
}

void SpoolSink::flush() {
  auto before = writer_->dropped_records();
  auto st = writer_->flush();
  bump(metrics_.dropped_records, writer_->dropped_records() - before);
  if (!st) failed(st.error().message);
}

void SpoolSink::finish(std::int64_t at_us, std::string_view end_json) {
  if (!writer_) return;
  writer_->append_json(RecordType::kSessionEnd, at_us, end_json);
  // Every byte is in the file now (the finaliser reads it through the page
  // cache); the syncer's next pass fdatasyncs and closes it, off the worker.
  auto st = writer_->finish_writes();
  syncer_->sync_and_close(writer_->file());
  if (!st) failed(st.error().message);
  writer_.reset();
}

}  // namespace sgw::recording
