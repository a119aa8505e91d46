// SpoolWriter: appends one recording session's records to its spool file
// (<dir>/<recording_id>.spool; byte layout in docs/spool.md).
//
// Thread: a SpoolWriter belongs to the media worker that owns the session; all
// its methods run on that thread. Only the SpoolFile it hands out is shared
// (with the SpoolSyncer). append_* never block, never fail and do not allocate
// once the buffer has grown; flush(), close() and create() do blocking I/O.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "recording/spool_events.h"
#include "recording/spool_file_system.h"
#include "recording/spool_format.h"

namespace sgw::recording {

// An open spool file descriptor and its path, shared between the writer (which
// writes) and the syncer (which fdatasyncs). The descriptor is closed by
// close() or, failing that, by the destructor; closing and syncing take the
// same mutex, so a syncer never syncs a closed (or reused) descriptor.
class SpoolFile {
 public:
  // Takes ownership of fd. fs must outlive this object. With a non-empty
  // sync_dir, the first successful datasync() also fsyncs that directory (the
  // file was created without it: its directory entry is not durable yet).
  SpoolFile(std::string path, int fd, SpoolFileSystem* fs, std::string sync_dir = {});
  ~SpoolFile();
  SpoolFile(const SpoolFile&) = delete;
  SpoolFile& operator=(const SpoolFile&) = delete;

  const std::string& path() const { return path_; }

  // fdatasync (and the pending directory fsync, see above). Any thread.
  // Returns true if synced, false if the file is already closed (nothing to
  // do); an error names the path. A failure sets sync_failed().
  common::Result<bool> datasync();
  // Closes the descriptor (idempotent). Any thread, once the writer is done
  // with it (SpoolWriter::finish_writes or close).
  common::Status close();
  bool closed() const;
  // True once any fdatasync of this file failed: data may be lost even if a
  // later fdatasync succeeds (the kernel may have dropped the dirty pages).
  bool sync_failed() const;
  // How many sync passes failed for this file (each fdatasync failure or
  // mark_sync_failed() call). The writer records it in the spool (spool_fault).
  std::uint64_t sync_failures() const;
  // For a syncer that made the file durable by other means (syncfs): the
  // directory fsync is no longer owed / data may have been lost.
  void mark_durable();
  void mark_sync_failed();

  // The descriptor, for the owning thread only (-1 once closed).
  int fd() const { return fd_; }
  SpoolFileSystem* fs() const { return fs_; }

 private:
  const std::string path_;
  SpoolFileSystem* const fs_;  // not owned
  mutable std::mutex mutex_;   // guards fd_ changes against concurrent datasync
  int fd_;
  std::string sync_dir_;  // a directory fsync still owed; empty once done
  bool sync_failed_ = false;
  std::uint64_t sync_failures_ = 0;
};

struct SpoolWriterOptions {
  std::size_t reserve_bytes = 64 * 1024;         // buffer reserved at create
  std::size_t flush_bytes = 32 * 1024;           // should_flush: buffer at least this big
  std::chrono::milliseconds flush_age{200};      // should_flush: oldest byte at least this old
  std::size_t max_buffer_bytes = 8 * 1024 * 1024;  // above this, appends are dropped and counted
  // create() fdatasyncs the header and fsyncs the directory before returning.
  // false: it only writes the header, and the file's first datasync() (the
  // SpoolSyncer's next pass) makes the file and its directory entry durable.
  // A media worker creating a session's spool must not wait for the disk.
  bool sync_on_create = true;
  // Clock used to stamp the oldest unflushed byte (tests pass a fake).
  std::chrono::steady_clock::time_point (*now)() = &std::chrono::steady_clock::now;
};

class SpoolWriter {
 public:
  // Creates <dir>/<recording_id>.spool with O_EXCL, writes the header,
  // fdatasyncs it and fsyncs dir (unless options.sync_on_create is false). Errors: "spool.bad_id" (id not
  // 1..249 of [A-Za-z0-9._-] or starting with '.'), "io.<op>" naming the path.
  // fs defaults to SpoolFileSystem::posix(); it must outlive the writer.
  static common::Result<std::unique_ptr<SpoolWriter>> create(const std::string& dir,
                                                             const std::string& recording_id,
                                                             SpoolFileSystem* fs = nullptr,
                                                             SpoolWriterOptions options = {});
  // Opens an existing, finished spool to append records after its last one
  // (the finaliser's finalize_failed records, docs/spool.md). The header is
  // read and checked first (read_spool_header errors); the file is opened
  // O_APPEND. Nobody else may write the file meanwhile.
  static common::Result<std::unique_ptr<SpoolWriter>> open_for_append(const std::string& path,
                                                                      SpoolFileSystem* fs = nullptr,
                                                                      SpoolWriterOptions options = {});
  // Best-effort flush and close, without fdatasync (call close() for that).
  ~SpoolWriter();
  SpoolWriter(const SpoolWriter&) = delete;
  SpoolWriter& operator=(const SpoolWriter&) = delete;

  // arrival_us: µs since the session's start (monotonic). pt: 7-bit payload type.
  // A payload over 65535 bytes is dropped and counted.
  void append_rtp(std::uint8_t stream, std::int64_t arrival_us, std::uint16_t seq, std::uint32_t ts,
                  std::uint32_t ssrc, std::uint8_t pt, bool marker,
                  std::span<const std::uint8_t> payload);
  // type: kSessionStart, kEvent or kSessionEnd (kMetadata also accepted). time_us:
  // µs since the Unix epoch. A document over 1 MiB - 8 bytes is dropped and counted.
  void append_json(RecordType type, std::int64_t time_us, std::string_view json);
  void append_metadata(std::int64_t time_us, std::string_view xml);

  // Writes the buffered bytes (retrying EINTR and short writes). On error the
  // unwritten bytes stay buffered for the next flush; the error names the path.
  // First, when records were dropped, writes failed or the file's syncs failed
  // since the last such record, appends a spool_fault record with the
  // cumulative counts (docs/spool.md "Damage records").
  common::Status flush();
  // Policy: buffer >= flush_bytes, or its oldest byte buffered >= flush_age before now.
  bool should_flush(std::chrono::steady_clock::time_point now) const;
  // flush + fdatasync + close. Idempotent; appends afterwards are dropped.
  common::Status close();
  // flush only: appends afterwards are dropped, and file() stays open for
  // whoever makes it durable and closes it (SpoolSyncer::sync_and_close), off
  // the writer's thread. Returns the flush's status.
  common::Status finish_writes();

  std::shared_ptr<SpoolFile> file() const { return file_; }
  const std::string& path() const { return file_->path(); }
  std::size_t buffered_bytes() const { return buffer_.size(); }
  std::uint64_t dropped_records() const { return dropped_records_; }
  std::uint64_t records_appended() const { return records_appended_; }
  std::uint64_t bytes_written() const { return bytes_written_; }  // including the header
  std::uint64_t write_errors() const { return write_errors_; }  // failed flushes
  // The faults so far, as the next spool_fault record would state them.
  SpoolFault fault() const;

 private:
  SpoolWriter(std::shared_ptr<SpoolFile> file, std::uint32_t salt, SpoolWriterOptions options);
  // Reserves room for one record; nullptr (and the record counted as dropped)
  // if the buffer cap would be exceeded or the writer is closed.
  std::uint8_t* begin_record(RecordType type, std::size_t payload_size);
  // Appends a spool_fault record if the faults changed since the last one and
  // it fits the buffer; true if appended.
  bool append_fault_record();
  // write() the whole buffer; on error keep the unwritten tail and count it.
  common::Status write_buffer();
  void end_record(std::uint8_t* record, std::size_t payload_size);

  std::shared_ptr<SpoolFile> file_;
  const std::uint32_t salt_;
  const SpoolWriterOptions options_;
  std::vector<std::uint8_t> buffer_;
  std::chrono::steady_clock::time_point oldest_{};  // when buffer_ went from empty to non-empty
  bool closed_ = false;
  std::uint64_t dropped_records_ = 0;
  std::uint64_t records_appended_ = 0;
  std::uint64_t bytes_written_ = 0;
  std::uint64_t write_errors_ = 0;
  std::string last_error_;
  SpoolFault recorded_fault_;  // counts of the last spool_fault record appended
  std::int64_t last_time_us_ = 0;  // latest time given to an append (stamps spool_fault)
};

}  // namespace sgw::recording
