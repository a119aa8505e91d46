#include "storage/delivery_queue.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <random>
#include <set>
#include <sstream>

#include "common/atomic_file.h"
#include "common/logging.h"
#include "common/thread_name.h"

namespace sgw::storage {

namespace {

namespace fs = std::filesystem;
constexpr std::string_view kSuffix = ".dq";
// Staged entries (stage()): <dir>/staged/<seq, 20 digits>.<entry file name>.
constexpr const char* kStagedDir = "staged";
constexpr std::size_t kSeqDigits = 20;
// stage()'s spare files kept ready (prepare_staging()).
constexpr std::size_t kSpares = 64;
constexpr const char* kCatalogueName = "catalogue.sqlite";
// Local copies deleted per rescan at most (the rest at the next one).
constexpr std::size_t kRetentionBatch = 1000;
// Retryable errors turn /readyz degraded only after this many attempts in a
// row: one dropped connection is not an outage.
constexpr std::uint32_t kDegradedAfterAttempts = 3;

void bump(common::Counter* c, std::uint64_t n = 1) {
  if (c) c->inc(n);
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::int64_t mtime_ns_of(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

common::Result<std::string> read_small_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return common::make_error("io.open", "open " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return common::make_error("io.read", "read " + path);
  return ss.str();
}

// File names in a folder that end with one of `suffixes`, sorted.
std::vector<std::string> list_names(const std::string& dir, std::initializer_list<std::string_view> suffixes) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* de = ::readdir(d)) {
    std::string name = de->d_name;
    if (std::any_of(suffixes.begin(), suffixes.end(), [&](std::string_view s) { return ends_with(name, s); }))
      out.push_back(std::move(name));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

// Entry file names in a folder, sorted.
std::vector<std::string> list_entries(const std::string& dir) { return list_names(dir, {kSuffix}); }

// Names in the staged folder: entries and temporary files.
std::vector<std::string> list_staged(const std::string& dir) { return list_names(dir, {kSuffix, ".tmp"}); }

// The seq of a staged entry's name ("<20 digits>.<entry file name>"), nullopt otherwise.
std::optional<std::uint64_t> staged_seq(std::string_view name) {
  if (name.size() <= kSeqDigits + 1 || name[kSeqDigits] != '.' || !ends_with(name, kSuffix)) return std::nullopt;
  std::uint64_t seq = 0;
  auto [ptr, ec] = std::from_chars(name.data(), name.data() + kSeqDigits, seq);
  if (ec != std::errc() || ptr != name.data() + kSeqDigits) return std::nullopt;
  return seq;
}

}  // namespace

std::int64_t backoff_delay_ms(const BackoffPolicy& p, std::uint32_t attempt, double jitter,
                              bool slowdown) {
  std::int64_t d = std::max<std::int64_t>(1, p.initial_ms);
  for (std::uint32_t i = 1; i < attempt && d < p.max_ms; ++i) d *= 2;
  if (slowdown) d = std::max(d, p.slowdown_min_ms);
  d = std::min(d, std::max<std::int64_t>(1, p.max_ms));
  jitter = std::clamp(jitter, 0.0, 1.0);
  return d / 2 + static_cast<std::int64_t>(jitter * static_cast<double>(d - d / 2));
}

DeliveryQueue::DeliveryQueue(DeliveryQueueOptions options, DeliveryQueueMetrics metrics)
    : options_(std::move(options)), metrics_(metrics) {
  if (!options_.now_ms)
    options_.now_ms = [] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
  if (!options_.jitter) {
    auto rng = std::make_shared<std::mt19937_64>(std::random_device{}());
    auto m = std::make_shared<std::mutex>();
    options_.jitter = [rng, m] {
      std::lock_guard lock(*m);
      return std::uniform_real_distribution<double>(0.0, 1.0)(*rng);
    };
  }
}

DeliveryQueue::~DeliveryQueue() {
  stop();
  for (const auto& spare : spares_) {
    ::close(spare.fd);
    ::unlink(spare.path.c_str());
  }
}

common::Result<std::unique_ptr<DeliveryQueue>> DeliveryQueue::open(DeliveryQueueOptions options,
                                                                   DeliveryQueueMetrics metrics) {
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec)
    return common::make_error("delivery.dir", "storage.queue_dir " + options.dir + ": mkdir: " + ec.message());
  if (::access(options.dir.c_str(), W_OK) != 0)
    return common::make_error("delivery.dir", "storage.queue_dir " + options.dir + ": not writable");
  if (options.catalogue_path.empty()) options.catalogue_path = (fs::path(options.dir) / kCatalogueName).string();
  auto catalogue = Catalogue::open(options.catalogue_path, Catalogue::Mode::kReadWrite);
  if (!catalogue)
    return common::make_error(catalogue.error().code, "storage.queue_dir " + options.dir + ": " + catalogue.error().message);
  std::unique_ptr<DeliveryQueue> q(new DeliveryQueue(std::move(options), metrics));
  {
    std::lock_guard lock(q->mutex_);
    q->catalogue_ = std::move(catalogue).value();
    q->load_dir(true);
  }
  // What a previous process staged: its temporary files are writes it did not
  // finish (stage() had not returned); the rest is admitted in seq order, and
  // new seqs go after it.
  std::string staged = (fs::path(q->options_.dir) / kStagedDir).string();
  for (const auto& name : list_staged(staged)) {
    if (ends_with(name, ".tmp")) {
      ::unlink((fs::path(staged) / name).c_str());
      continue;
    }
    if (auto seq = staged_seq(name)) q->next_stage_seq_ = std::max(q->next_stage_seq_, *seq + 1);
  }
  if (auto n = q->admit_staged(); !n)
    common::logger("delivery")->error("{}: staged entries not admitted yet (they stay staged): {}", staged,
                                      n.error().message);
  return q;
}

std::string DeliveryQueue::staged_path(std::uint64_t seq, const DeliveryEntry& e) const {
  char prefix[kSeqDigits + 2];
  std::snprintf(prefix, sizeof prefix, "%020llu.", static_cast<unsigned long long>(seq));
  return (fs::path(options_.dir) / kStagedDir / (prefix + entry_file_name(e.recording_id, e.sink))).string();
}

common::Result<std::uint64_t> DeliveryQueue::stage(DeliveryEntry& entry) {
  if (entry.created_unix_ms == 0) entry.created_unix_ms = now();
  std::string bytes = encode_entry(entry);
  std::uint64_t seq = 0;
  Spare spare;
  {
    std::lock_guard lock(stage_mutex_);
    seq = next_stage_seq_++;
    staging_.insert(seq);
    if (!spares_.empty()) {
      spare = std::move(spares_.back());
      spares_.pop_back();
    }
  }
  std::string path = staged_path(seq, entry);
  common::Status st = common::Ok{};
  if (spare.fd >= 0) {
    st = common::write_prepared_file_atomically(spare.fd, spare.path, path, bytes, common::FileSync::kProcessDeath);
    if (!st) ::unlink(spare.path.c_str());
  } else {
    st = common::write_file_atomically(path, bytes, common::FileSync::kProcessDeath);
  }
  {
    std::lock_guard lock(stage_mutex_);
    staging_.erase(seq);
  }
  if (!st) return st.error();
  return seq;
}

common::Result<bool> DeliveryQueue::admit(std::uint64_t seq, DeliveryEntry entry) {
  std::string path = staged_path(seq, entry);
  auto r = enqueue(std::move(entry));
  if (!r) return r;
  // Queued (or known) and durable: the staged copy has served. No folder
  // fsync: a removal a power loss undoes leaves a file admitted again (a no-op).
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    common::logger("delivery")->warn("cannot remove staged entry {}: {}", path, std::strerror(errno));
  prepare_staging();
  return r;
}

void DeliveryQueue::prepare_staging() {
  std::string dir = (fs::path(options_.dir) / kStagedDir).string();
  std::error_code ec;
  fs::create_directories(dir, ec);
  for (;;) {
    std::string path;
    {
      std::lock_guard lock(stage_mutex_);
      if (spares_.size() >= kSpares) return;
      path = (fs::path(dir) / ("spare-" + std::to_string(spare_names_++) + ".tmp")).string();
    }
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      // stage() creates its own file meanwhile; the error, if it persists, is its.
      common::logger("delivery")->debug("cannot create spare {}: {}", path, std::strerror(errno));
      return;
    }
    std::lock_guard lock(stage_mutex_);
    spares_.push_back({fd, std::move(path)});
  }
}

common::Result<std::size_t> DeliveryQueue::admit_staged() {
  std::uint64_t below = 0;
  {
    // Every seq under the first one still being written is on disk (or failed).
    std::lock_guard lock(stage_mutex_);
    below = staging_.empty() ? next_stage_seq_ : *staging_.begin();
  }
  std::string dir = (fs::path(options_.dir) / kStagedDir).string();
  std::vector<std::pair<std::uint64_t, std::string>> files;
  for (auto& name : list_staged(dir))
    if (auto seq = staged_seq(name); seq && *seq < below) files.emplace_back(*seq, std::move(name));
  std::sort(files.begin(), files.end());
  std::size_t n = 0;
  for (const auto& [seq, name] : files) {
    std::string path = (fs::path(dir) / name).string();
    auto bytes = read_small_file(path);
    if (!bytes && !fs::exists(path)) continue;  // admitted meanwhile
    auto entry = bytes ? decode_entry(*bytes, path) : common::Result<DeliveryEntry>(bytes.error());
    if (entry && name.substr(kSeqDigits + 1) != entry_file_name(entry->recording_id, entry->sink))
      entry = common::make_error("delivery.corrupt", "staged entry " + path + ": names another recording/sink");
    if (!entry) {
      std::lock_guard lock(mutex_);
      if (reported_corrupt_.emplace(path, true).second) {
        problems_.push_back(entry.error().message);
        bump(metrics_.corrupt_entries);
        common::logger("delivery")->error("{} (skipped, left for inspection)", entry.error().message);
      }
      continue;
    }
    ++n;
    if (auto r = admit(seq, std::move(entry).value()); !r) return r.error();
  }
  return n;
}

std::int64_t DeliveryQueue::now() const { return options_.now_ms(); }

std::string DeliveryQueue::path_of(const DeliveryEntry& e) const {
  return (fs::path(options_.dir) / entry_file_name(e.recording_id, e.sink)).string();
}

common::Status DeliveryQueue::persist_locked(Item& item) {
  item.entry.updated_unix_ms = now();
  std::string path = path_of(item.entry);
  auto st = common::write_file_atomically(path, encode_entry(item.entry),
                                          ephemeral(item.entry)
                                              ? common::FileSync::kProcessDeath
                                              : common::FileSync::kPowerLoss);
  if (!st) {
    common::logger("delivery")->error("{}: cannot write delivery entry: {}", item.entry.recording_id,
                                      st.error().message);
    return st;
  }
  item.mtime_ns = mtime_ns_of(path);
  return st;
}

void DeliveryQueue::load_dir(bool initial) {
  auto log = common::logger("delivery");
  if (initial) {
    // Temporary files of writes a crash interrupted: the entry itself is intact.
    if (DIR* d = ::opendir(options_.dir.c_str())) {
      std::vector<std::string> tmp;
      while (dirent* de = ::readdir(d))
        if (ends_with(de->d_name, ".dq.tmp")) tmp.push_back(de->d_name);
      ::closedir(d);
      for (const auto& t : tmp) ::unlink((fs::path(options_.dir) / t).c_str());
    }
  }
  for (const auto& name : list_entries(options_.dir)) {
    std::string path = (fs::path(options_.dir) / name).string();
    std::int64_t mt = mtime_ns_of(path);
    auto it = items_.find(name);
    if (it != items_.end() && (it->second.in_flight || it->second.mtime_ns == mt)) continue;
    std::string corrupt_key = name + "@" + std::to_string(mt);
    if (reported_corrupt_.count(corrupt_key)) continue;
    auto bytes = read_small_file(path);
    auto entry = bytes ? decode_entry(*bytes, path) : common::Result<DeliveryEntry>(bytes.error());
    if (entry && entry_file_name(entry->recording_id, entry->sink) != name)
      entry = common::make_error("delivery.corrupt", "delivery entry " + path + ": names another recording/sink");
    if (!entry) {
      reported_corrupt_[corrupt_key] = true;
      problems_.push_back(entry.error().message);
      bump(metrics_.corrupt_entries);
      log->error("{} (skipped; the recording files are untouched)", entry.error().message);
      continue;
    }
    if (it != items_.end() && !initial)
      log->info("{}: {} entry changed on disk (now {}), reloaded", entry->recording_id, entry->sink,
                to_string(entry->state));
    Item& item = items_[name];
    item.entry = std::move(entry).value();
    item.mtime_ns = mt;
    if (item.entry.state == DeliveryState::kFailed)
      sink_errors_[item.entry.sink] = item.entry.last_error;
  }
  // Delivered entry files (a crash before their compaction, entries of a
  // version without the catalogue, or a catalogue that could not take them
  // before): compacted in one transaction.
  std::vector<std::string> delivered;
  for (const auto& [name, item] : items_)
    if (item.entry.state == DeliveryState::kDelivered && !item.in_flight) delivered.push_back(name);
  compact_locked(delivered);
  update_gauges_locked();
}

void DeliveryQueue::add_sink(const std::string& name, SinkFactory factory) {
  std::lock_guard lock(mutex_);
  factories_[name] = std::move(factory);
}

common::Result<bool> DeliveryQueue::enqueue(DeliveryEntry entry) {
  std::lock_guard lock(mutex_);
  std::string name = entry_file_name(entry.recording_id, entry.sink);
  if (items_.count(name)) return false;
  auto known = catalogue_->contains(entry.recording_id, entry.sink);
  if (!known) return known.error();
  if (*known) return false;
  std::int64_t t = now();
  if (entry.created_unix_ms == 0) entry.created_unix_ms = t;
  if (entry.state == DeliveryState::kDelivered) {
    // Delivered when queued (the local copy): straight into the catalogue.
    if (entry.delivered_unix_ms == 0) entry.delivered_unix_ms = t;
    entry.updated_unix_ms = t;
    if (auto st = catalogue_->put(entry); st) {
      schedule_local_deletion_locked(entry.recording_id);
      return true;
    } else {
      common::logger("delivery")->error("{}: {} entry kept in the queue folder: {}", entry.recording_id, entry.sink,
                                        st.error().message);
    }
  }
  if (entry.next_attempt_unix_ms == 0 && entry.state != DeliveryState::kDelivered) entry.next_attempt_unix_ms = t;
  Item item;
  item.entry = std::move(entry);
  if (auto st = persist_locked(item); !st) return st.error();
  items_[name] = std::move(item);
  update_gauges_locked();
  cv_.notify_one();
  return true;
}

std::optional<std::string> DeliveryQueue::pick_locked(std::int64_t t, std::int64_t* wait_ms) {
  const std::string* best = nullptr;
  std::int64_t best_at = 0;
  // order_key: only the first undelivered entry of each key (file-name order) may go.
  std::set<std::string> ordered_seen;
  for (const auto& [name, item] : items_) {
    const auto& e = item.entry;
    if (e.state == DeliveryState::kDelivered) continue;
    if (!e.order_key.empty() && !ordered_seen.insert(e.order_key).second) continue;
    if (item.in_flight || !factories_.count(e.sink)) continue;
    std::int64_t at = e.next_attempt_unix_ms;
    if (auto p = sink_paused_until_.find(e.sink); p != sink_paused_until_.end()) at = std::max(at, p->second);
    if (!best || at < best_at) {
      best = &name;
      best_at = at;
    }
  }
  if (!best) {
    if (wait_ms) *wait_ms = -1;
    return std::nullopt;
  }
  if (best_at > t) {
    if (wait_ms) *wait_ms = best_at - t;
    return std::nullopt;
  }
  items_[*best].in_flight = true;
  return *best;
}

void DeliveryQueue::attempt(const std::string& file,
                            std::map<std::string, std::unique_ptr<DeliverySink>>& sinks) {
  auto log = common::logger("delivery");
  DeliveryEntry e;
  SinkFactory factory;
  {
    std::lock_guard lock(mutex_);
    e = items_[file].entry;
    factory = factories_[e.sink];
  }
  auto& sink = sinks[e.sink];
  if (!sink) sink = factory();
  auto checkpoint = [this, &file](const DeliveryEntry& progress) {
    std::lock_guard lock(mutex_);
    Item& item = items_[file];
    item.entry = progress;
    item.entry.state = DeliveryState::kUploading;
    (void)persist_locked(item);
  };
  const bool was_failed = e.state == DeliveryState::kFailed;
  DeliveryOutcome out = sink->deliver(e, checkpoint);

  std::unique_lock lock(mutex_);
  Item& item = items_[file];
  std::int64_t t = now();
  e.updated_unix_ms = t;
  switch (out.kind) {
    case DeliveryOutcome::Kind::kDelivered:
      e.state = DeliveryState::kDelivered;
      e.delivered_unix_ms = t;
      e.last_error.clear();
      e.last_error_code.clear();
      e.next_attempt_unix_ms = 0;
      sink_errors_[e.sink].clear();
      bump(metrics_.delivered);
      if (metrics_.lag_s && e.created_unix_ms > 0 && t >= e.created_unix_ms)
        metrics_.lag_s->observe(static_cast<double>(t - e.created_unix_ms) / 1000.0);
      log->info("{}: delivered to {} and verified ({} object(s), first key {})", e.recording_id, e.sink,
                e.objects.size(), e.objects.empty() ? "" : e.objects.front().key);
      break;
    case DeliveryOutcome::Kind::kRetry: {
      ++e.attempts;
      bool in_upload = std::any_of(e.objects.begin(), e.objects.end(),
                                   [](const DeliveryObject& o) { return !o.upload_id.empty(); });
      e.state = in_upload ? DeliveryState::kUploading : DeliveryState::kQueued;
      e.last_error = out.message;
      e.last_error_code = out.code;
      std::int64_t delay = backoff_delay_ms(options_.backoff, e.attempts, options_.jitter(), out.slowdown);
      e.next_attempt_unix_ms = t + delay;
      if (out.slowdown) sink_paused_until_[e.sink] = t + delay;
      if (e.attempts >= kDegradedAfterAttempts) sink_errors_[e.sink] = out.message;
      bump(metrics_.attempt_failures);
      log->warn("{}: {} delivery attempt {} failed, retry in {} ms: {}", e.recording_id, e.sink,
                e.attempts, delay, out.message);
      break;
    }
    case DeliveryOutcome::Kind::kPermanent: {
      ++e.attempts;
      e.state = DeliveryState::kFailed;
      e.last_error = out.message;
      e.last_error_code = out.code;
      std::int64_t delay = backoff_delay_ms(options_.backoff, 64, options_.jitter(), false);
      e.next_attempt_unix_ms = t + delay;
      sink_errors_[e.sink] = out.message;
      bump(metrics_.attempt_failures);
      bump(metrics_.permanent_failures);
      log->error("{}: {} DELIVERY FAILED ({}), recording kept locally; next try in {} s "
                 "(or `siprecd deliveries retry {}`): {}",
                 e.recording_id, e.sink, out.code, delay / 1000, e.recording_id, out.message);
      break;
    }
  }
  item.entry = std::move(e);
  item.in_flight = false;
  const bool delivered_now = out.kind == DeliveryOutcome::Kind::kDelivered;
  // A delivered ephemeral entry is not rewritten: compaction removes it at once.
  if (!delivered_now || !ephemeral(item.entry)) (void)persist_locked(item);
  std::optional<DeliveryEntry> delivered, failed;
  if (out.kind == DeliveryOutcome::Kind::kPermanent && !was_failed && options_.on_failed) failed = item.entry;
  if (delivered_now) {
    if (options_.on_delivered) delivered = item.entry;
    compact_locked({file});
  }
  update_gauges_locked();
  lock.unlock();
  // Outside the lock: the hook may enqueue (e.g. the deletion of the recording's partials).
  if (delivered) options_.on_delivered(*delivered);
  if (failed) options_.on_failed(*failed);
}

bool DeliveryQueue::compact_locked(const std::vector<std::string>& names) {
  // Ephemeral entries (options_.ephemeral_sinks) leave no catalogue row: only their file goes.
  std::vector<const DeliveryEntry*> entries;
  for (const auto& name : names)
    if (auto it = items_.find(name); it != items_.end() && it->second.entry.state == DeliveryState::kDelivered &&
                                     !ephemeral(it->second.entry))
      entries.push_back(&it->second.entry);
  if (auto st = entries.empty() ? common::Status(common::Ok{}) : catalogue_->put(entries); !st) {
    common::logger("delivery")->error("{}{}: delivered to {}, but not yet in the catalogue ({}); the entry file "
                                      "stays and is compacted at the next rescan",
                                      entries.front()->recording_id,
                                      entries.size() > 1 ? " and " + std::to_string(entries.size() - 1) + " more" : "",
                                      entries.front()->sink, st.error().message);
    return false;
  }
  std::vector<std::string> recordings;
  for (const auto& name : names) {
    auto it = items_.find(name);
    if (it == items_.end() || it->second.entry.state != DeliveryState::kDelivered) continue;
    if (!ephemeral(it->second.entry)) recordings.push_back(it->second.entry.recording_id);
    std::string path = (fs::path(options_.dir) / name).string();
    // No folder fsync: an unlink a crash undoes leaves a delivered file, compacted again (same row).
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      common::logger("delivery")->warn("{}: cannot remove compacted entry {}: {}", it->second.entry.recording_id,
                                       path, std::strerror(errno));
    items_.erase(it);
  }
  for (const auto& id : recordings) schedule_local_deletion_locked(id);
  return true;
}

void DeliveryQueue::schedule_local_deletion_locked(const std::string& recording_id) {
  if (!options_.local_retention_ms) return;
  // A remote sink still pending (its entries sort together: "<id>.<sink>.dq").
  for (auto it = items_.lower_bound(recording_id + "."); it != items_.end() && it->first.starts_with(recording_id + ".");
       ++it)
    if (it->second.entry.recording_id == recording_id && it->second.entry.sink != "local") return;
  auto rows = catalogue_->recording(recording_id);
  if (!rows) {
    common::logger("delivery")->error("{}: local retention not scheduled: {}", recording_id, rows.error().message);
    return;
  }
  bool local = false, remote = false;
  std::int64_t last = 0;
  for (const auto& r : *rows) {
    if (r.sink == "local") {
      local = r.local_deleted_unix_ms == 0;
    } else {
      remote = true;
      last = std::max(last, r.delivered_unix_ms);
    }
  }
  // Without a remote sink the local copy is the only one: never deleted.
  if (!local || !remote) return;
  if (auto st = catalogue_->set_local_delete_due(recording_id, last + *options_.local_retention_ms); !st)
    common::logger("delivery")->error("{}: local retention not scheduled: {}", recording_id, st.error().message);
}

bool DeliveryQueue::run_once() {
  std::optional<std::string> file;
  {
    std::lock_guard lock(mutex_);
    file = pick_locked(now(), nullptr);
  }
  if (!file) return false;
  attempt(*file, inline_sinks_);
  return true;
}

std::size_t DeliveryQueue::apply_local_retention() {
  if (!options_.local_retention_ms) return 0;
  auto log = common::logger("delivery");
  std::lock_guard lock(mutex_);
  std::int64_t t = now();
  // Only the rows whose time has come (an index), not every recording kept.
  auto due = catalogue_->local_copies_due(t, kRetentionBatch);
  if (!due) {
    log->error("local retention: {}", due.error().message);
    return 0;
  }
  std::size_t removed = 0;
  for (const auto& e : *due) {
    for (const auto& o : e.objects)
      if (::unlink(o.path.c_str()) != 0 && errno != ENOENT)
        log->warn("{}: cannot delete local copy {}: {}", e.recording_id, o.path, std::strerror(errno));
    if (auto st = catalogue_->set_local_deleted(e.recording_id, t); !st) {
      log->error("{}: {}", e.recording_id, st.error().message);
      continue;
    }
    bump(metrics_.local_deleted);
    ++removed;
    log->info("{}: local copy deleted (delivered and verified, retention passed)", e.recording_id);
  }
  return removed;
}

void DeliveryQueue::update_gauges_locked() {
  std::int64_t pending = 0, failed = 0;
  for (const auto& [name, item] : items_) {
    if (item.entry.state == DeliveryState::kFailed) ++failed;
    else if (item.entry.state != DeliveryState::kDelivered) ++pending;
  }
  if (metrics_.pending) metrics_.pending->set(pending);
  if (metrics_.failed) metrics_.failed->set(failed);
}

void DeliveryQueue::start() {
  std::lock_guard lock(mutex_);
  stopping_ = false;
  for (unsigned i = 0; i < std::max(1u, options_.threads); ++i)
    threads_.emplace_back([this, i] {
      common::set_thread_name("sgw-deliver-" + std::to_string(i));
      thread_main(i);
    });
}

void DeliveryQueue::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void DeliveryQueue::thread_main(unsigned index) {
  auto log = common::logger("delivery");
  std::map<std::string, std::unique_ptr<DeliverySink>> sinks;
  if (index == 0) {
    std::map<std::string, SinkFactory> factories;
    {
      std::lock_guard lock(mutex_);
      factories = factories_;
    }
    for (const auto& [name, factory] : factories) {
      auto& sink = sinks[name];
      sink = factory();
      DeliveryOutcome out = sink->check();
      std::lock_guard lock(mutex_);
      if (out.kind != DeliveryOutcome::Kind::kDelivered) {
        sink_errors_[name] = out.message;
        log->error("{} sink check failed ({}): {}; recordings are kept locally and stay queued", name,
                   out.code, out.message);
      } else {
        log->info("{} sink check passed", name);
      }
    }
  }
  while (true) {
    std::optional<std::string> file;
    {
      std::unique_lock lock(mutex_);
      if (stopping_) return;
      std::int64_t t = now();
      if (index == 0 && t - last_scan_ms_ >= options_.rescan_interval_ms) {
        last_scan_ms_ = t;
        lock.unlock();
        rescan();
        lock.lock();
        if (stopping_) return;
      }
      std::int64_t wait = -1;
      file = pick_locked(now(), &wait);
      if (!file) {
        std::int64_t w = options_.rescan_interval_ms;
        if (wait >= 0) w = std::min(w, wait);
        cv_.wait_for(lock, std::chrono::milliseconds(std::max<std::int64_t>(w, 1)));
        continue;
      }
    }
    attempt(*file, sinks);
  }
}

void DeliveryQueue::rescan() {
  {
    std::lock_guard lock(mutex_);
    load_dir(false);
  }
  apply_local_retention();
}

std::vector<DeliveryEntry> DeliveryQueue::snapshot() const {
  std::lock_guard lock(mutex_);
  std::vector<DeliveryEntry> out;
  for (const auto& [name, item] : items_) out.push_back(item.entry);
  if (auto st = catalogue_->for_each([&](DeliveryEntry&& e) { out.push_back(std::move(e)); }); !st)
    common::logger("delivery")->error("snapshot: {}", st.error().message);
  return out;
}

std::vector<std::string> DeliveryQueue::problems() const {
  std::lock_guard lock(mutex_);
  return problems_;
}

std::string DeliveryQueue::health() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& [sink, error] : sink_errors_) {
    if (error.empty()) continue;
    if (!out.empty()) out += "; ";
    out += sink + " delivery failing: " + error;
  }
  return out;
}

std::optional<std::int64_t> DeliveryQueue::oldest_undelivered_unix_ms() const {
  std::lock_guard lock(mutex_);
  std::optional<std::int64_t> oldest;
  for (const auto& [name, item] : items_)
    if (item.entry.state != DeliveryState::kDelivered && (!oldest || item.entry.created_unix_ms < *oldest))
      oldest = item.entry.created_unix_ms;
  return oldest;
}

DeliveryQueue::Known DeliveryQueue::known(const std::string& recording_id, const std::string& sink) const {
  std::lock_guard lock(mutex_);
  if (auto it = items_.find(entry_file_name(recording_id, sink)); it != items_.end())
    return it->second.entry.state == DeliveryState::kDelivered ? Known::kDelivered : Known::kPending;
  auto row = catalogue_->contains(recording_id, sink);
  if (!row) {
    common::logger("delivery")->error("catalogue lookup of {} ({}): {}", recording_id, sink, row.error().message);
    return Known::kPending;  // unknown: never taken as delivered, never as absent
  }
  return *row ? Known::kDelivered : Known::kNo;
}

std::string DeliveryQueue::previous_recording(const std::string& conversation_id,
                                              std::int64_t before_unix_ms) const {
  if (conversation_id.empty()) return "";
  std::lock_guard lock(mutex_);
  auto row = catalogue_->previous_in_conversation(conversation_id, before_unix_ms);
  if (!row) {
    common::logger("delivery")->error("previous fragment of conversation {}: {}", conversation_id,
                                      row.error().message);
    return "";
  }
  return *row ? (*row)->recording_id : std::string();
}

common::Status DeliveryQueue::retry(const std::string& dir, const std::string& recording_id,
                                    const std::string& sink, std::int64_t now_ms) {
  std::string path = (fs::path(dir) / entry_file_name(recording_id, sink)).string();
  auto bytes = read_small_file(path);
  if (!bytes) {
    std::string catalogue = (fs::path(dir) / kCatalogueName).string();
    if (fs::exists(catalogue))
      if (auto c = Catalogue::open(catalogue, Catalogue::Mode::kReadOnly))
        if (auto known = (*c)->contains(recording_id, sink); known && *known)
          return common::make_error("delivery.delivered", recording_id + " (" + sink + ") is already delivered");
    return common::make_error("delivery.not_found", "no " + sink + " delivery entry for " + recording_id +
                                                        " in " + dir);
  }
  auto e = decode_entry(*bytes, path);
  if (!e) return e.error();
  if (e->state == DeliveryState::kDelivered)
    return common::make_error("delivery.delivered", recording_id + " (" + sink + ") is already delivered");
  e->state = std::any_of(e->objects.begin(), e->objects.end(),
                         [](const DeliveryObject& o) { return !o.upload_id.empty(); })
                 ? DeliveryState::kUploading
                 : DeliveryState::kQueued;
  e->attempts = 0;
  e->next_attempt_unix_ms = now_ms;
  e->updated_unix_ms = now_ms;
  return common::write_file_atomically(path, encode_entry(*e));
}

std::vector<DeliveryEntry> DeliveryQueue::read_all(const std::string& dir,
                                                   std::vector<std::string>* problems) {
  std::vector<DeliveryEntry> out;
  for (const auto& name : list_entries(dir)) {
    std::string path = (fs::path(dir) / name).string();
    auto bytes = read_small_file(path);
    auto e = bytes ? decode_entry(*bytes, path) : common::Result<DeliveryEntry>(bytes.error());
    if (!e) {
      if (problems) problems->push_back(e.error().message);
      continue;
    }
    out.push_back(std::move(e).value());
  }
  std::string catalogue = (fs::path(dir) / kCatalogueName).string();
  if (!fs::exists(catalogue)) return out;
  // A delivered entry compacted by the running gateway between the folder's
  // read and the catalogue's is in both: listed once (its file, read first).
  std::set<std::pair<std::string, std::string>> from_files;
  for (const auto& e : out) from_files.emplace(e.recording_id, e.sink);
  auto c = Catalogue::open(catalogue, Catalogue::Mode::kReadOnly);
  common::Status st = c ? (*c)->for_each([&](DeliveryEntry&& e) {
                            if (!from_files.count({e.recording_id, e.sink})) out.push_back(std::move(e));
                          })
                        : common::Status(c.error());
  if (!st && problems) problems->push_back(st.error().message);
  return out;
}

}  // namespace sgw::storage
