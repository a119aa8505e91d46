#include "storage/segment_shipper.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/logging.h"
#include "common/thread_name.h"
#include "storage/partials.h"

namespace sgw::storage {

namespace {

void bump(common::Counter* c, std::uint64_t n = 1) {
  if (c) c->inc(n);
}

std::string recording_id_of(const std::string& spool_path) {
  std::string name = std::filesystem::path(spool_path).filename().string();
  constexpr std::string_view kExt = ".spool";
  if (name.size() > kExt.size() && name.compare(name.size() - kExt.size(), kExt.size(), kExt) == 0)
    name.resize(name.size() - kExt.size());
  return name;
}

// Reads spool bytes [offset, offset + length) into `to`. False (errno kept) when the file
// cannot be opened; a short read (the file vanished under us) keeps what was read in *got.
bool read_range(const std::string& path, std::uint64_t offset, std::uint64_t length, char* to, std::uint64_t* got) {
  *got = 0;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  while (*got < length) {
    ssize_t n = ::pread(fd, to + *got, length - *got, static_cast<off_t>(offset + *got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    *got += static_cast<std::uint64_t>(n);
  }
  ::close(fd);
  return true;
}

// head + data into `path` (temporary name, then rename; no fsync: the spools
// hold these bytes durably, docs/failover.md "What it costs a call").
bool write_partial(const std::string& path, std::string_view head, std::string_view data, std::string* error) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    *error = std::string("open ") + tmp + ": " + std::strerror(errno);
    return false;
  }
  iovec iov[2] = {{const_cast<char*>(head.data()), head.size()}, {const_cast<char*>(data.data()), data.size()}};
  std::size_t left = head.size() + data.size();
  int idx = 0;
  while (left > 0) {
    ssize_t n = ::writev(fd, iov + idx, 2 - idx);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = std::string("write ") + tmp + ": " + (n < 0 ? std::strerror(errno) : "no progress");
      ::close(fd);
      ::unlink(tmp.c_str());
      return false;
    }
    left -= static_cast<std::size_t>(n);
    auto done = static_cast<std::size_t>(n);
    while (idx < 2 && done >= iov[idx].iov_len) {
      done -= iov[idx].iov_len;
      iov[idx].iov_len = 0;
      ++idx;
    }
    if (idx < 2) {
      iov[idx].iov_base = static_cast<char*>(iov[idx].iov_base) + done;
      iov[idx].iov_len -= done;
    }
  }
  if (::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = std::string("close/rename ") + path + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

}  // namespace

SegmentShipper::SegmentShipper(SegmentShipperOptions options) : options_(std::move(options)) {
  if (options_.run == 0) options_.run = static_cast<std::uint64_t>(now());
}

SegmentShipper::~SegmentShipper() { stop(); }

std::int64_t SegmentShipper::now() const {
  if (options_.now_ms) return options_.now_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void SegmentShipper::start() {
  std::error_code ec;
  std::filesystem::create_directories(options_.dir, ec);
  thread_ = std::thread([this] {
    common::set_thread_name("sgw-shipper");
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      cv_.wait_for(lock, options_.interval, [this] { return stopping_; });
      if (stopping_) break;
      lock.unlock();
      run_once();
      lock.lock();
    }
  });
}

void SegmentShipper::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SegmentShipper::recording_delivered(const std::string& recording_id) {
  std::lock_guard lock(state_mutex_);
  pending_.erase(recording_id);
  delivered_[recording_id] = now();
}

void SegmentShipper::partial_uploaded(const std::string& entry_id) {
  auto id = parse_partial_entry_id(entry_id);
  if (!id || id->run != options_.run) return;
  std::lock_guard lock(state_mutex_);
  if (auto it = cuts_.find(id->seq); it != cuts_.end()) it->second.uploaded = true;
}

std::set<std::string> SegmentShipper::pending() const {
  std::lock_guard lock(state_mutex_);
  return pending_;
}

std::vector<std::uint64_t> SegmentShipper::kept() const {
  std::lock_guard lock(state_mutex_);
  std::vector<std::uint64_t> out;
  for (const auto& [seq, c] : cuts_) out.push_back(seq);
  return out;
}

bool SegmentShipper::run_once() {
  auto log = common::logger("shipper");
  const std::vector<std::string> open =
      options_.open_spools ? options_.open_spools() : std::vector<std::string>{};
  PartialIndex ix;
  ix.node = options_.node;
  ix.region = options_.region;
  ix.run = options_.run;
  ix.seq = next_seq_;
  ix.unix_ms = now();
  ix.segment_ms = options_.interval.count();
  // Sizes first, so that the new bytes of every spool are read straight into one buffer of
  // the right size (a cut is about 100 MB at 1000 calls: no growth, no second copy).
  struct Want {
    const std::string* path;
    std::uint64_t offset = 0, length = 0;
  };
  std::vector<Want> wants;
  std::uint64_t total = 0;
  std::map<std::string, std::uint64_t> next_offsets;
  for (const auto& path : open) {
    const auto it = offsets_.find(path);
    const std::uint64_t offset = it == offsets_.end() ? 0 : it->second;
    struct stat sb{};
    if (::stat(path.c_str(), &sb) != 0) {
      if (errno != ENOENT) {  // ENOENT: the session ended and its spool was finalised meanwhile
        bump(options_.errors);
        log->warn("{}: cannot read spool {} for shipping: {}", recording_id_of(path), path, std::strerror(errno));
        next_offsets[path] = offset;
      }
      continue;
    }
    const auto size = static_cast<std::uint64_t>(sb.st_size);
    next_offsets[path] = std::max(offset, size);
    if (size > offset) {
      wants.push_back({&path, offset, size - offset});
      total += size - offset;
    }
  }
  std::string data;
  data.resize(total);
  std::uint64_t at = 0;
  std::set<std::string> with_bytes;
  for (const auto& w : wants) {
    std::uint64_t got = 0;
    if (!read_range(*w.path, w.offset, w.length, data.data() + at, &got) && errno != ENOENT) {
      bump(options_.errors);
      log->warn("{}: cannot read spool {} for shipping: {}", recording_id_of(*w.path), *w.path, std::strerror(errno));
    }
    next_offsets[*w.path] = w.offset + got;  // what could not be read goes with the next cut
    if (got == 0) continue;
    const std::string rid = recording_id_of(*w.path);
    ix.chunks.push_back({rid, w.offset, got});
    with_bytes.insert(rid);
    at += got;  // each chunk is read where the previous one ended: a short read leaves no hole
  }
  data.resize(at);
  {
    std::lock_guard lock(state_mutex_);
    std::set<std::string> pending = pending_;
    for (const auto& rid : with_bytes)
      if (!delivered_.count(rid)) pending.insert(rid);
    ix.pending.assign(pending.begin(), pending.end());
  }
  if (ix.chunks.empty() && ix.pending.empty()) {
    // Nothing at stake: no partial (and every uploaded one goes, below).
    offsets_ = std::move(next_offsets);
    clean_up();
    return false;
  }
  const std::string file = options_.dir + "/" + partial_file_name(options_.run, ix.seq);
  const std::string head = encode_partial_head(ix);
  std::string error;
  if (!write_partial(file, head, data, &error)) {
    bump(options_.errors);
    log->warn("cannot write partial {}: {}", file, error);
    return false;
  }
  DeliveryEntry e;
  e.recording_id = partial_entry_id(options_.run, ix.seq);
  e.sink = std::string(kPartialSink);
  e.start_unix_ms = ix.unix_ms;
  DeliveryObject o;
  o.path = file;
  o.key = partial_key(options_.region, options_.node, options_.run, ix.seq);
  o.content_type = "application/octet-stream";
  // No hash here: the upload hashes the body once (partials.h), and every spool record in it carries its CRC.
  e.objects.push_back(o);
  auto q = options_.queue->enqueue(std::move(e));
  if (!q) {
    bump(options_.errors);
    log->warn("cannot queue partial {}: {}", file, q.error().message);
    std::error_code ec;
    std::filesystem::remove(file, ec);
    return false;
  }
  offsets_ = std::move(next_offsets);
  {
    std::lock_guard lock(state_mutex_);
    for (const auto& rid : with_bytes)
      if (!delivered_.count(rid)) pending_.insert(rid);
    cuts_[ix.seq] = Cut{o.key, with_bytes, false};
  }
  ++next_seq_;
  bump(options_.shipped);
  bump(options_.bytes, data.size());
  clean_up();
  return true;
}

void SegmentShipper::clean_up() {
  std::vector<std::string> keys;
  std::vector<std::uint64_t> seqs;
  {
    std::lock_guard lock(state_mutex_);
    const std::int64_t t = now();
    for (auto it = delivered_.begin(); it != delivered_.end();)
      it = t - it->second > 600'000 ? delivered_.erase(it) : std::next(it);
    std::optional<std::uint64_t> newest_uploaded;
    for (const auto& [seq, c] : cuts_)
      if (c.uploaded) newest_uploaded = seq;
    for (const auto& [seq, c] : cuts_) {
      if (!c.uploaded) continue;
      // The newest uploaded partial says what is pending: it stays while anything is.
      if (!pending_.empty() && seq == newest_uploaded) continue;
      if (std::any_of(c.recordings.begin(), c.recordings.end(),
                      [this](const std::string& r) { return pending_.count(r) > 0; }))
        continue;
      keys.push_back(c.key);
      seqs.push_back(seq);
    }
  }
  if (keys.empty()) return;
  auto q = options_.queue->enqueue(partials_delete_entry(options_.run, keys));
  if (!q) {
    bump(options_.errors);
    common::logger("shipper")->warn("cannot queue the deletion of {} partial(s): {}", keys.size(), q.error().message);
    return;
  }
  if (!*q) return;  // this run's previous deletion is still pending: these go with the next pass
  std::lock_guard lock(state_mutex_);
  for (auto s : seqs) cuts_.erase(s);
}

}  // namespace sgw::storage
