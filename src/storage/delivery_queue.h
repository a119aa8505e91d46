// DeliveryQueue: the durable queue that gets every finished recording to each
// configured sink (the local recordings folder, S3), with retries, backoff and
// local-copy retention. One entry file per pending (recording, sink) in its
// folder; delivered entries are compacted into the catalogue (catalogue.h), so
// a pick, the rescan and retention cost O(pending), not O(ever delivered).
// Formats and states: docs/storage.md. Everything it knows is on disk, so it
// survives restarts and `siprecd deliveries` can read and requeue entries.
//
// Threads: enqueue()/snapshot()/health() from any thread. start() runs
// `threads` delivery threads, each with its own sink instances (an S3Client is
// one-per-thread); they never touch media or SIP threads. run_once() delivers
// one due entry on the caller's thread (tests, with a fake clock).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "common/result.h"
#include "storage/catalogue.h"
#include "storage/delivery_entry.h"

namespace sgw::storage {

// What one delivery attempt came to.
struct DeliveryOutcome {
  enum class Kind { kDelivered, kRetry, kPermanent } kind = Kind::kDelivered;
  std::string code;     // S3 error code ("AccessDenied", "SlowDown", "Transport.CouldNotConnect")
  std::string message;  // one line naming the operation, bucket, key and code
  bool slowdown = false;  // the server asked us to slow down (503 SlowDown, 429)

  static DeliveryOutcome delivered() { return {}; }
};

// A sink. One instance per delivery thread; deliver() may block (network).
class DeliverySink {
 public:
  virtual ~DeliverySink() = default;
  // Checks the sink's configuration against the server (start-up): bucket
  // reachable, credentials accepted, Object Lock enabled when configured.
  virtual DeliveryOutcome check() { return DeliveryOutcome::delivered(); }
  // Delivers the entry's objects that are not delivered yet, verifying each;
  // updates `entry` in place (upload ids, parts, verification facts) and calls
  // `checkpoint` after every step worth keeping across a crash.
  virtual DeliveryOutcome deliver(DeliveryEntry& entry,
                                  const std::function<void(const DeliveryEntry&)>& checkpoint) = 0;
};
using SinkFactory = std::function<std::unique_ptr<DeliverySink>()>;

// Exponential backoff with jitter, capped: delay(n) for the n-th failed attempt
// (n >= 1) is d = min(max, initial * 2^(n-1)), then d/2 + jitter * d/2 with
// jitter in [0, 1) ("equal jitter": never under half the step). A SlowDown
// answer makes the step at least slowdown_min before jitter.
struct BackoffPolicy {
  std::int64_t initial_ms = 1000;
  std::int64_t max_ms = 300'000;
  std::int64_t slowdown_min_ms = 5000;
};
std::int64_t backoff_delay_ms(const BackoffPolicy& policy, std::uint32_t attempt, double jitter,
                              bool slowdown);

struct DeliveryQueueOptions {
  std::string dir;  // the queue folder (created)
  unsigned threads = 4;
  BackoffPolicy backoff;
  // Local copies (the "local" sink's files) are deleted once every other sink
  // of the recording is delivered and local_retention_ms has passed since
  // the last delivery. nullopt: never deleted.
  std::optional<std::int64_t> local_retention_ms;
  std::int64_t rescan_interval_ms = 2000;  // new/edited entry files (deliveries retry)
  std::string catalogue_path;              // default <dir>/catalogue.sqlite
  std::function<std::int64_t()> now_ms;    // Unix ms; default the system clock
  std::function<double()> jitter;          // [0, 1); default a PRNG
  // Called on the delivery thread after an entry is delivered, verified and
  // durable (not under the queue's lock; may call enqueue()). Null: none.
  std::function<void(const DeliveryEntry&)> on_delivered;
  // Likewise when an attempt fails permanently and the entry enters state
  // failed (not again while it stays failed). Null: none.
  std::function<void(const DeliveryEntry&)> on_failed;
  // Sinks whose entries are copies of bytes kept durably elsewhere (in-call
  // partials: the spool still holds them, and the final recording supersedes
  // them): their entry files are written without fsync, and once delivered
  // they are removed without a catalogue row. A power loss may lose such an
  // entry (the spool's recovery then delivers the whole recording); a process
  // crash does not. Costs no disk sync per partial.
  std::set<std::string> ephemeral_sinks;
};

struct DeliveryQueueMetrics {
  common::Counter* delivered = nullptr;       // entries verified and delivered
  common::Counter* attempt_failures = nullptr;
  common::Counter* permanent_failures = nullptr;
  common::Counter* corrupt_entries = nullptr;
  common::Counter* local_deleted = nullptr;
  common::Gauge* pending = nullptr;  // queued + uploading
  common::Gauge* failed = nullptr;   // in state failed
  common::Histogram* lag_s = nullptr;  // enqueued (recording finished) -> delivered and verified, seconds
};

class DeliveryQueue {
 public:
  // Opens (creates) the catalogue, then reads every entry file in options.dir,
  // compacting delivered ones into the catalogue. Corrupt or torn files are
  // reported (problems(), metric, log) and skipped, never trusted; they stay on
  // disk for inspection until enqueue() writes a fresh entry for that
  // recording. Fails when the folder or the catalogue cannot be used.
  static common::Result<std::unique_ptr<DeliveryQueue>> open(DeliveryQueueOptions options,
                                                             DeliveryQueueMetrics metrics = {});
  ~DeliveryQueue();
  DeliveryQueue(const DeliveryQueue&) = delete;
  DeliveryQueue& operator=(const DeliveryQueue&) = delete;

  // Before start(): a sink by name ("s3"). Entries of sinks not added wait.
  void add_sink(const std::string& name, SinkFactory factory);

  // Durably adds an entry (atomic write + directory fsync; an entry already
  // delivered, the local copy, goes straight to the catalogue) unless one
  // exists for the same (recording, sink), pending or in the catalogue: then
  // the existing one is kept and false is returned (re-finalising a recording
  // after a crash is idempotent).
  common::Result<bool> enqueue(DeliveryEntry entry);

  // Staging (docs/storage.md "Staged entries"): the way in for a caller that
  // must neither wait for an fsync nor take the queue's lock (the SIP
  // thread), yet needs its entry to outlive the process once the call
  // returns. stage() writes the encoded entry to
  // <dir>/staged/<seq>.<entry file name> (temporary name, then rename, no
  // fsync: it survives kill -9 and crashes, not a power loss until admitted)
  // and returns its seq, greater than that of every entry staged before.
  // admit() then enqueue()s it (fsync'd, deduplicated) and removes the staged
  // file. open() admits, in seq order, what a previous process left staged.
  // stage(): any thread, concurrently; no lock of the queue, no fsync. Sets
  // entry.created_unix_ms when 0.
  common::Result<std::uint64_t> stage(DeliveryEntry& entry);
  // enqueue(entry), then the staged file (seq, entry) is removed. On an error
  // the staged file stays (admit_staged() takes it again).
  common::Result<bool> admit(std::uint64_t seq, DeliveryEntry entry);
  // Creates stage()'s spare files (empty, kept open) up to a pool of 64, so
  // that stage() only writes and renames: creating a file is its costly part
  // (an inode allocation, hundreds of microseconds of CPU on a busy ext4).
  // The admitting thread calls it (admit() does, after each admission);
  // without spares stage() creates its file itself.
  void prepare_staging();
  // Admits the staged files, in seq order, whose stage() has returned and
  // every stage() before them too; stops at the first that cannot be
  // enqueued (the error; later ones stay staged, so none overtakes it).
  // Corrupt staged files are reported and skipped. Returns how many were read.
  common::Result<std::size_t> admit_staged();

  // Starts the delivery threads; each first runs its sinks' check() once.
  void start();
  // Stops after the attempts in progress end (an upload in progress is
  // finished or abandoned by its own timeout; its checkpoint stays on disk).
  void stop();

  // One due entry delivered on the caller's thread; false when none is due.
  bool run_once();
  // Deletes local copies whose retention has passed (also run by the threads
  // on every rescan). Returns how many recordings were removed.
  std::size_t apply_local_retention();

  // Rereads the folder for edited entries, retries compactions, applies local
  // retention: what thread 0 does every rescan_interval_ms (benchmarks, tests).
  void rescan();

  // Pending entries and every catalogue row (tests; the command uses read_all).
  std::vector<DeliveryEntry> snapshot() const;
  std::vector<std::string> problems() const;
  // "" when healthy; else e.g. "s3 delivery failing: PutObject s3://b/k: HTTP 403 AccessDenied: ..."
  std::string health() const;
  // created_unix_ms of the oldest entry not yet delivered (queued, uploading
  // or failed), nullopt when none: the delivery backlog's age
  // (storage.max_backlog_age_s).
  std::optional<std::int64_t> oldest_undelivered_unix_ms() const;
  // What the queue knows of (recording, sink): no entry; an entry pending
  // (queued, uploading or failed); delivered (pending file or catalogue row).
  // A catalogue error answers kPending. Orphan adoption asks it
  // (orphan_recovery.h): a recording this node still has is not rebuilt, and
  // an adopted run is deleted once its recordings are delivered.
  enum class Known { kNo, kPending, kDelivered };
  Known known(const std::string& recording_id, const std::string& sink) const;
  // The recording id of this node's latest recording of the conversation
  // that started before before_unix_ms ("" when none, or on a catalogue
  // error, logged): the recording JSON's previous_fragment.
  std::string previous_recording(const std::string& conversation_id, std::int64_t before_unix_ms) const;

  // Requeues one entry on disk (state queued, attempts 0, due now): for the
  // `deliveries retry` command; a running daemon picks it up on its rescan.
  static common::Status retry(const std::string& dir, const std::string& recording_id,
                              const std::string& sink, std::int64_t now_ms);
  // Reads every entry of a folder and its catalogue (the `deliveries list` command).
  static std::vector<DeliveryEntry> read_all(const std::string& dir, std::vector<std::string>* problems);

 private:
  struct Item {
    DeliveryEntry entry;  // pending, or delivered and not yet compacted (the catalogue failed)
    bool in_flight = false;
    std::int64_t mtime_ns = 0;  // of the file as we last wrote or read it
  };
  explicit DeliveryQueue(DeliveryQueueOptions options, DeliveryQueueMetrics metrics);
  std::int64_t now() const;
  std::string path_of(const DeliveryEntry& e) const;
  common::Status persist_locked(Item& item);
  void load_dir(bool initial);
  // Picks the earliest due entry of a known sink; marks it in flight.
  std::optional<std::string> pick_locked(std::int64_t now, std::int64_t* wait_ms);
  void attempt(const std::string& file, std::map<std::string, std::unique_ptr<DeliverySink>>& sinks);
  void update_gauges_locked();
  // Moves delivered entries from their files into the catalogue (one
  // transaction); false (logged) when the catalogue cannot be written: the
  // files stay, retried at the next rescan.
  bool compact_locked(const std::vector<std::string>& names);
  // Its sink is one of options_.ephemeral_sinks.
  bool ephemeral(const DeliveryEntry& e) const { return options_.ephemeral_sinks.count(e.sink) > 0; }
  // Sets when the local copy of a recording may go (every remote sink delivered).
  void schedule_local_deletion_locked(const std::string& recording_id);
  void thread_main(unsigned index);

  std::string staged_path(std::uint64_t seq, const DeliveryEntry& e) const;

  DeliveryQueueOptions options_;
  DeliveryQueueMetrics metrics_;
  // stage(): seqs handed out and those whose file is not written yet (the
  // watermark of admit_staged()). Held for no I/O.
  std::mutex stage_mutex_;
  std::uint64_t next_stage_seq_ = 0;
  std::set<std::uint64_t> staging_;
  struct Spare {
    int fd = -1;
    std::string path;  // <dir>/staged/spare-<n>.tmp: removed at start-up if left over
  };
  std::vector<Spare> spares_;
  std::uint64_t spare_names_ = 0;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::map<std::string, Item> items_;  // by file name; pending entries only (and uncompacted delivered ones)
  std::unique_ptr<Catalogue> catalogue_;
  std::map<std::string, SinkFactory> factories_;
  std::map<std::string, std::string> sink_errors_;            // sink -> last error ("" = fine)
  std::map<std::string, std::int64_t> sink_paused_until_;     // SlowDown
  std::vector<std::string> problems_;
  std::map<std::string, bool> reported_corrupt_;
  std::int64_t last_scan_ms_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
  std::map<std::string, std::unique_ptr<DeliverySink>> inline_sinks_;  // run_once()
};

}  // namespace sgw::storage
