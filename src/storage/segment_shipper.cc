#include "storage/segment_shipper.h"

#include <fcntl.h>
#include <sys/stat.h>
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
  if (options_.bodies->size() >= options_.max_in_flight) {
    // The partials bucket is slow or failing: no new cut (the next one carries these bytes too).
    bump(options_.deferred);
    const std::int64_t t = now();
    if (t - last_deferred_log_ms_ >= 60'000) {
      last_deferred_log_ms_ = t;
      log->warn("{} partial(s) still being uploaded: the next cut waits (a node lost now loses more than one "
                "interval)",
                options_.bodies->size());
    }
    return false;
  }
  const std::vector<std::string> open =
      options_.open_spools ? options_.open_spools() : std::vector<std::string>{};
  PartialIndex ix;
  ix.node = options_.node;
  ix.region = options_.region;
  ix.run = options_.run;
  ix.seq = next_seq_;
  ix.unix_ms = now();
  ix.segment_ms = options_.interval.count();
  // No byte is read here: each spool with new bytes is opened and its range noted; the upload
  // reads them (PartialBody). The descriptor keeps the bytes readable when the call ends and its
  // spool is finalised and removed before the upload.
  std::vector<int> fds;
  std::map<std::string, std::uint64_t> next_offsets;
  std::set<std::string> with_bytes;
  std::uint64_t total = 0;
  for (const auto& path : open) {
    const auto it = offsets_.find(path);
    const std::uint64_t offset = it == offsets_.end() ? 0 : it->second;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat sb{};
    if (fd < 0 || ::fstat(fd, &sb) != 0) {
      const int err = errno;
      if (fd >= 0) ::close(fd);
      if (err != ENOENT) {  // ENOENT: the session ended and its spool was finalised meanwhile
        bump(options_.errors);
        log->warn("{}: cannot read spool {} for shipping: {}", recording_id_of(path), path, std::strerror(err));
        next_offsets[path] = offset;
      }
      continue;
    }
    const auto size = static_cast<std::uint64_t>(sb.st_size);
    next_offsets[path] = std::max(offset, size);
    if (size <= offset) {
      ::close(fd);
      continue;
    }
    const std::string rid = recording_id_of(path);
    ix.chunks.push_back({rid, offset, size - offset, 0});
    fds.push_back(fd);
    with_bytes.insert(rid);
    total += size - offset;
  }
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
  const std::string entry_id = partial_entry_id(options_.run, ix.seq);
  DeliveryEntry e;
  e.recording_id = entry_id;
  e.sink = std::string(kPartialSink);
  e.start_unix_ms = ix.unix_ms;
  DeliveryObject o;
  o.key = partial_key(options_.region, options_.node, options_.run, ix.seq);
  o.content_type = "application/octet-stream";
  e.objects.push_back(o);
  // The body first, so the sink finds it whichever delivery thread picks the entry up.
  options_.bodies->add(entry_id, std::make_shared<PartialBody>(std::move(ix), std::move(fds)));
  auto q = options_.queue->enqueue(std::move(e));
  if (!q) {
    options_.bodies->remove(entry_id);
    bump(options_.errors);
    log->warn("cannot queue partial {}: {}", entry_id, q.error().message);
    return false;
  }
  offsets_ = std::move(next_offsets);
  const std::uint64_t seq = next_seq_++;
  {
    std::lock_guard lock(state_mutex_);
    for (const auto& rid : with_bytes)
      if (!delivered_.count(rid)) pending_.insert(rid);
    cuts_[seq] = Cut{o.key, with_bytes, false};
  }
  bump(options_.shipped);
  bump(options_.bytes, total);
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
