#include "recording/spool_writer.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/ids.h"
#include "recording/spool_reader.h"

namespace sgw::recording {

namespace {

common::Error io_error(const std::string& op, const std::string& path, int err,
                       const std::string& detail = {}) {
  std::string msg = op + " " + path + ": " + std::strerror(err);
  if (!detail.empty()) msg += " (" + detail + ")";
  return common::make_error("io." + op, msg);
}

struct WriteOutcome {
  std::size_t written = 0;
  int err = 0;  // 0 on success
};

// Writes all of data, retrying EINTR and short writes. A write() returning 0
// for a non-empty buffer is treated as EIO rather than retried forever.
WriteOutcome write_all(SpoolFileSystem* fs, int fd, const std::uint8_t* data, std::size_t size) {
  WriteOutcome out;
  while (out.written < size) {
    ssize_t n = fs->write(fd, data + out.written, size - out.written);
    if (n < 0) {
      if (errno == EINTR) continue;
      out.err = errno;
      return out;
    }
    if (n == 0) {
      out.err = EIO;
      return out;
    }
    out.written += static_cast<std::size_t>(n);
  }
  return out;
}

std::uint32_t random_salt() {
  // getrandom(2): std::random_device would open and read /dev/urandom per session.
  return static_cast<std::uint32_t>(common::random_u64());
}

}  // namespace

// ---- SpoolFile ----

SpoolFile::SpoolFile(std::string path, int fd, SpoolFileSystem* fs, std::string sync_dir)
    : path_(std::move(path)), fs_(fs), fd_(fd), sync_dir_(std::move(sync_dir)) {}

SpoolFile::~SpoolFile() {
  if (fd_ >= 0) fs_->close(fd_);
}

common::Result<bool> SpoolFile::datasync() {
  std::lock_guard lock(mutex_);
  if (fd_ < 0) return false;
  if (fs_->fdatasync(fd_) != 0) {
    int err = errno;
    sync_failed_ = true;
    ++sync_failures_;
    return io_error("fdatasync", path_, err);
  }
  if (!sync_dir_.empty()) {
    // The directory entry must survive a crash too (LevelDB: sync the dir after creating a file).
    int dfd = fs_->open(sync_dir_, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    int err = dfd < 0 ? errno : 0;
    if (dfd >= 0 && fs_->fsync(dfd) != 0) err = errno;
    if (dfd >= 0) fs_->close(dfd);
    if (err != 0) {
      sync_failed_ = true;
      ++sync_failures_;
      return io_error(dfd < 0 ? "open" : "fsync", sync_dir_, err);
    }
    sync_dir_.clear();
  }
  return true;
}

common::Status SpoolFile::close() {
  std::lock_guard lock(mutex_);
  if (fd_ < 0) return common::Ok{};
  int fd = fd_;
  fd_ = -1;
  // Linux releases the descriptor even when close() fails; never retry it.
  if (fs_->close(fd) != 0 && errno != EINTR) return io_error("close", path_, errno);
  return common::Ok{};
}

bool SpoolFile::closed() const {
  std::lock_guard lock(mutex_);
  return fd_ < 0;
}

void SpoolFile::mark_durable() {
  std::lock_guard lock(mutex_);
  sync_dir_.clear();
}

void SpoolFile::mark_sync_failed() {
  std::lock_guard lock(mutex_);
  sync_failed_ = true;
  ++sync_failures_;
}

std::uint64_t SpoolFile::sync_failures() const {
  std::lock_guard lock(mutex_);
  return sync_failures_;
}

bool SpoolFile::sync_failed() const {
  std::lock_guard lock(mutex_);
  return sync_failed_;
}

// ---- SpoolWriter ----

common::Result<std::unique_ptr<SpoolWriter>> SpoolWriter::create(const std::string& dir,
                                                                 const std::string& recording_id,
                                                                 SpoolFileSystem* fs,
                                                                 SpoolWriterOptions options) {
  if (fs == nullptr) fs = SpoolFileSystem::posix();
  if (!spool::valid_recording_id(recording_id)) {
    return common::make_error("spool.bad_id",
                              "recording id not usable as a spool file name: '" + recording_id + "'");
  }
  std::string path = dir + "/" + recording_id + ".spool";
  int fd = fs->open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0) return io_error("open", path, errno);

  // Header: magic, version, salt, id length, id, CRC-32C of all of that.
  const std::uint32_t salt = random_salt();
  std::vector<std::uint8_t> header(spool::kHeaderFixedSize + recording_id.size() + 4);
  std::memcpy(header.data(), spool::kMagic.data(), spool::kMagic.size());
  spool::put_u16(&header[8], spool::kVersion);
  spool::put_u32(&header[10], salt);
  spool::put_u16(&header[14], static_cast<std::uint16_t>(recording_id.size()));
  std::memcpy(&header[16], recording_id.data(), recording_id.size());
  const std::size_t crc_at = spool::kHeaderFixedSize + recording_id.size();
  spool::put_u32(&header[crc_at], spool::crc32c({header.data(), crc_at}));

  auto fail = [&](const std::string& op, int err, const std::string& p) -> common::Error {
    auto e = io_error(op, p, err);
    fs->close(fd);
    fs->unlink(path);  // a file without a durable header would only confuse recovery
    return e;
  };
  WriteOutcome w = write_all(fs, fd, header.data(), header.size());
  if (w.err != 0) return fail("write", w.err, path);
  if (!options.sync_on_create) {
    auto file = std::make_shared<SpoolFile>(path, fd, fs, dir);
    std::unique_ptr<SpoolWriter> writer(new SpoolWriter(std::move(file), salt, options));
    writer->bytes_written_ = header.size();
    return writer;
  }
  if (fs->fdatasync(fd) != 0) return fail("fdatasync", errno, path);
  // The directory entry must survive a crash too (LevelDB: sync the dir after creating a file).
  int dfd = fs->open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (dfd < 0) return fail("open", errno, dir);
  if (fs->fsync(dfd) != 0) {
    int err = errno;
    fs->close(dfd);
    return fail("fsync", err, dir);
  }
  fs->close(dfd);

  auto file = std::make_shared<SpoolFile>(path, fd, fs);
  std::unique_ptr<SpoolWriter> writer(new SpoolWriter(std::move(file), salt, options));
  writer->bytes_written_ = header.size();
  return writer;
}

common::Result<std::unique_ptr<SpoolWriter>> SpoolWriter::open_for_append(const std::string& path,
                                                                          SpoolFileSystem* fs,
                                                                          SpoolWriterOptions options) {
  if (fs == nullptr) fs = SpoolFileSystem::posix();
  auto header = read_spool_header(path, fs);
  if (!header) return header.error();
  int fd = fs->open(path, O_WRONLY | O_APPEND | O_CLOEXEC, 0);
  if (fd < 0) return io_error("open", path, errno);
  auto file = std::make_shared<SpoolFile>(path, fd, fs);
  return std::unique_ptr<SpoolWriter>(new SpoolWriter(std::move(file), header->salt, options));
}

SpoolWriter::SpoolWriter(std::shared_ptr<SpoolFile> file, std::uint32_t salt,
                         SpoolWriterOptions options)
    : file_(std::move(file)), salt_(salt), options_(options) {
  buffer_.reserve(options_.reserve_bytes);
}

SpoolWriter::~SpoolWriter() {
  if (!closed_) {
    (void)flush();
    (void)file_->close();
  }
}

std::uint8_t* SpoolWriter::begin_record(RecordType type, std::size_t payload_size) {
  const std::size_t total = spool::kRecordHeaderSize + payload_size;
  if (closed_ || buffer_.size() + total > options_.max_buffer_bytes) {
    ++dropped_records_;
    return nullptr;
  }
  if (buffer_.empty()) oldest_ = options_.now();
  const std::size_t at = buffer_.size();
  buffer_.resize(at + total);  // no allocation while within the reserved capacity
  std::uint8_t* rec = buffer_.data() + at;
  std::memcpy(rec, spool::kSyncMarker.data(), spool::kSyncMarker.size());
  spool::put_u32(rec + 4, static_cast<std::uint32_t>(payload_size));
  rec[8] = static_cast<std::uint8_t>(type);
  return rec;
}

void SpoolWriter::end_record(std::uint8_t* rec, std::size_t payload_size) {
  const std::uint8_t* payload = rec + spool::kRecordHeaderSize;
  spool::put_u32(rec + 9, spool::record_crc(salt_, static_cast<std::uint32_t>(payload_size), rec[8],
                                            {payload, payload_size}));
  ++records_appended_;
}

void SpoolWriter::append_rtp(std::uint8_t stream, std::int64_t arrival_us, std::uint16_t seq,
                             std::uint32_t ts, std::uint32_t ssrc, std::uint8_t pt, bool marker,
                             std::span<const std::uint8_t> payload) {
  if (payload.size() > spool::kMaxRtpPayloadSize) {
    ++dropped_records_;
    return;
  }
  const std::size_t size = spool::kRtpFixedSize + payload.size();
  last_time_us_ = std::max(last_time_us_, arrival_us);
  std::uint8_t* rec = begin_record(RecordType::kRtp, size);
  if (rec == nullptr) return;
  std::uint8_t* p = rec + spool::kRecordHeaderSize;
  p[0] = stream;
  spool::put_u64(p + 1, static_cast<std::uint64_t>(arrival_us));
  spool::put_u16(p + 9, seq);
  spool::put_u32(p + 11, ts);
  spool::put_u32(p + 15, ssrc);
  p[19] = static_cast<std::uint8_t>((pt & 0x7FU) | (marker ? 0x80U : 0U));
  if (!payload.empty()) std::memcpy(p + spool::kRtpFixedSize, payload.data(), payload.size());
  end_record(rec, size);
}

void SpoolWriter::append_json(RecordType type, std::int64_t time_us, std::string_view json) {
  if (type == RecordType::kRtp || json.size() > spool::kMaxPayloadSize - spool::kTimeSize) {
    ++dropped_records_;
    return;
  }
  const std::size_t size = spool::kTimeSize + json.size();
  last_time_us_ = std::max(last_time_us_, time_us);
  std::uint8_t* rec = begin_record(type, size);
  if (rec == nullptr) return;
  std::uint8_t* p = rec + spool::kRecordHeaderSize;
  spool::put_u64(p, static_cast<std::uint64_t>(time_us));
  if (!json.empty()) std::memcpy(p + spool::kTimeSize, json.data(), json.size());
  end_record(rec, size);
}

void SpoolWriter::append_metadata(std::int64_t time_us, std::string_view xml) {
  append_json(RecordType::kMetadata, time_us, xml);
}

SpoolFault SpoolWriter::fault() const {
  return SpoolFault{dropped_records_, write_errors_, file_->sync_failures(), last_error_};
}

common::Status SpoolWriter::flush() {
  if (file_->closed()) {
    if (buffer_.empty()) return common::Ok{};
    return common::make_error("spool.closed", "flush " + path() + ": file closed");
  }
  append_fault_record();
  auto st = write_buffer();
  // A full buffer had no room for the fault record: now it has.
  if (st && append_fault_record()) st = write_buffer();
  return st;
}

bool SpoolWriter::append_fault_record() {
  SpoolFault f = fault();
  if (!f.any() || f == recorded_fault_) return false;
  // Cumulative counts: a later record covers this one if it is lost. Written
  // even when closed_ (finish_writes): it is the spool's last word on damage.
  const std::string doc = f.encode();
  if (buffer_.size() + spool::kRecordHeaderSize + spool::kTimeSize + doc.size() > options_.max_buffer_bytes)
    return false;
  bool was_closed = closed_;
  closed_ = false;
  append_json(RecordType::kEvent, last_time_us_, doc);
  closed_ = was_closed;
  recorded_fault_ = f;
  return true;
}

common::Status SpoolWriter::write_buffer() {
  if (buffer_.empty()) return common::Ok{};
  WriteOutcome w = write_all(file_->fs(), file_->fd(), buffer_.data(), buffer_.size());
  bytes_written_ += w.written;
  if (w.err != 0) {
    const std::size_t total = buffer_.size();
    // Keep the unwritten tail so the next flush continues the byte stream where it stopped.
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(w.written));
    auto e = io_error("write", path(), w.err,
                      "wrote " + std::to_string(w.written) + " of " + std::to_string(total) + " bytes");
    ++write_errors_;
    last_error_ = e.message;
    return e;
  }
  buffer_.clear();  // keeps the capacity
  return common::Ok{};
}

bool SpoolWriter::should_flush(std::chrono::steady_clock::time_point now) const {
  if (buffer_.empty()) return false;
  return buffer_.size() >= options_.flush_bytes || now - oldest_ >= options_.flush_age;
}

common::Status SpoolWriter::finish_writes() {
  if (closed_) return common::Ok{};
  closed_ = true;
  return flush();
}

common::Status SpoolWriter::close() {
  if (closed_) return common::Ok{};
  closed_ = true;
  common::Status flushed = flush();
  common::Result<bool> synced = file_->datasync();
  common::Status closed = file_->close();
  if (!flushed) return flushed;
  if (!synced) return synced.error();
  return closed;
}

}  // namespace sgw::recording
