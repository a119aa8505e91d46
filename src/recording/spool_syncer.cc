#include "recording/spool_syncer.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/logging.h"
#include "common/thread_name.h"

namespace sgw::recording {

SpoolSyncer::SpoolSyncer(std::chrono::milliseconds cadence, SpoolSyncerCounters counters,
                         SpoolSyncMode mode)
    : cadence_(cadence), counters_(counters), mode_(std::move(mode)) {}

SpoolSyncer::~SpoolSyncer() {
  stop();
  if (fs_fd_ >= 0) (mode_.fs ? mode_.fs : SpoolFileSystem::posix())->close(fs_fd_);
}

void SpoolSyncer::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] {
    common::set_thread_name("sgw-spool-sync");
    run();
  });
}

void SpoolSyncer::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SpoolSyncer::add(std::shared_ptr<SpoolFile> file) {
  if (!file) return;
  std::lock_guard lock(mutex_);
  files_.insert_or_assign(file.get(), file);
}

void SpoolSyncer::remove(const std::shared_ptr<SpoolFile>& file) {
  std::lock_guard lock(mutex_);
  files_.erase(file.get());
}

void SpoolSyncer::sync_and_close(std::shared_ptr<SpoolFile> file) {
  if (!file) return;
  std::lock_guard lock(mutex_);
  files_.erase(file.get());
  closing_.push_back(std::move(file));
}

void SpoolSyncer::sync_now(std::shared_ptr<SpoolFile> file,
                           std::function<void(common::Status)> done) {
  if (!file) return;
  {
    std::lock_guard lock(mutex_);
    urgent_.push_back({std::move(file), std::move(done)});
  }
  wake_.notify_all();
}

std::size_t SpoolSyncer::sync_urgent() {
  std::vector<Urgent> urgent;
  {
    std::lock_guard lock(mutex_);
    urgent.swap(urgent_);
  }
  if (urgent.empty()) return 0;
  if (!mode_.filesystem_of.empty()) {
    // One syncfs for every call being answered since the last wake-up (at
    // 500 calls/s a sync per file would be 500 journal commits a second).
    std::vector<std::shared_ptr<SpoolFile>> files;
    files.reserve(urgent.size());
    for (const auto& u : urgent) files.push_back(u.file);
    std::size_t synced = sync_filesystem(files, {});
    for (auto& u : urgent) {
      if (!u.done) continue;
      if (synced != 0) {
        u.done(common::Ok{});
      } else {
        u.done(common::make_error("io.syncfs", "syncfs of " + mode_.filesystem_of + " failed: " +
                                                   u.file->path() + " may not be durable"));
      }
    }
    return synced;
  }
  std::size_t synced = 0;
  for (auto& u : urgent) {
    auto r = sync_file(*u.file);
    if (r && r.value()) ++synced;
    if (u.done) u.done(r ? common::Status(common::Ok{}) : common::Status(r.error()));
  }
  return synced;
}

common::Result<bool> SpoolSyncer::sync_file(SpoolFile& f) {
  auto r = f.datasync();
  if (!r) {
    if (counters_.failures != nullptr) counters_.failures->inc();
    common::logger("spool")->warn("{}", r.error().message);
  } else if (r.value()) {
    if (counters_.fsyncs != nullptr) counters_.fsyncs->inc();
  }
  return r;
}

std::size_t SpoolSyncer::registered() const {
  std::lock_guard lock(mutex_);
  return files_.size();
}

std::vector<std::string> SpoolSyncer::open_paths() const {
  std::vector<std::shared_ptr<SpoolFile>> files;
  {
    std::lock_guard lock(mutex_);
    files.reserve(files_.size() + closing_.size());
    for (const auto& [key, weak] : files_)
      if (auto f = weak.lock()) files.push_back(std::move(f));
    files.insert(files.end(), closing_.begin(), closing_.end());
    for (const auto& u : urgent_) files.push_back(u.file);
  }
  std::vector<std::string> out;
  out.reserve(files.size());
  for (const auto& f : files)
    if (!f->closed()) out.push_back(f->path());
  return out;
}

std::size_t SpoolSyncer::sync_once() {
  std::size_t urgent = sync_urgent();
  std::vector<std::shared_ptr<SpoolFile>> live;
  std::vector<std::shared_ptr<SpoolFile>> closing;
  {
    std::lock_guard lock(mutex_);
    closing.swap(closing_);
    live.reserve(files_.size());
    std::erase_if(files_, [&](const auto& entry) {
      auto f = entry.second.lock();
      if (!f || f->closed()) return true;
      live.push_back(std::move(f));
      return false;
    });
  }
  // Syncs run without the registry mutex: a worker adding a session never waits for a disk.
  std::size_t synced = urgent;
  if (!mode_.filesystem_of.empty()) {
    synced += sync_filesystem(live, closing);
    for (const auto& f : closing)
      if (auto st = f->close(); !st) common::logger("spool")->warn("{}", st.error().message);
    return synced;
  }
  auto sync = [&](SpoolFile& f) {
    if (auto r = sync_file(f); r && r.value()) ++synced;
  };
  for (const auto& f : live) sync(*f);
  for (const auto& f : closing) {
    sync(*f);
    if (auto st = f->close(); !st) common::logger("spool")->warn("{}", st.error().message);
  }
  return synced;
}

std::size_t SpoolSyncer::sync_filesystem(const std::vector<std::shared_ptr<SpoolFile>>& live,
                                         const std::vector<std::shared_ptr<SpoolFile>>& closing) {
  if (live.empty() && closing.empty()) return 0;
  SpoolFileSystem* fs = mode_.fs ? mode_.fs : SpoolFileSystem::posix();
  // Kept open: since Linux 5.8 syncfs reports every writeback error on the
  // filesystem since this descriptor was opened, so none goes unseen.
  if (fs_fd_ < 0) fs_fd_ = fs->open(mode_.filesystem_of, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  int err = fs_fd_ < 0 ? errno : 0;
  if (fs_fd_ >= 0 && fs->syncfs(fs_fd_) != 0) err = errno;
  const std::size_t n = live.size() + closing.size();
  if (err != 0) {
    // Which file lost data is unknown: every one may have.
    if (counters_.failures != nullptr) counters_.failures->inc(n);
    common::logger("spool")->warn("{} {}: {} ({} spool file(s) marked)",
                                  fs_fd_ < 0 ? "open" : "syncfs", mode_.filesystem_of,
                                  std::strerror(err), n);
    for (const auto* list : {&live, &closing})
      for (const auto& f : *list) f->mark_sync_failed();
    return 0;
  }
  for (const auto* list : {&live, &closing})
    for (const auto& f : *list) f->mark_durable();
  if (counters_.fsyncs != nullptr) counters_.fsyncs->inc(n);
  return n;
}

void SpoolSyncer::run() {
  std::unique_lock lock(mutex_);
  auto next_pass = std::chrono::steady_clock::now() + cadence_;
  while (!stopping_) {
    // A sync_now (a call being answered) wakes the thread before the cadence.
    wake_.wait_until(lock, next_pass, [this] { return stopping_ || !urgent_.empty(); });
    lock.unlock();
    if (std::chrono::steady_clock::now() >= next_pass) {
      sync_once();
      next_pass = std::chrono::steady_clock::now() + cadence_;
    } else {
      sync_urgent();
    }
    lock.lock();
  }
  // A pass that was already running when stop() came may have missed files
  // closed meanwhile: one last pass after the request syncs what is left.
  lock.unlock();
  sync_once();
}

}  // namespace sgw::recording
