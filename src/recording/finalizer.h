// Finalizer: turns a recording session's spool file into the published
// recording — audio file(s) and the metadata JSON — and then removes the spool.
//
// The same code runs when a session ends normally and, at start-up, for every
// spool left behind by a crash (recover()): the spool is the only input, so a
// recovered recording is built exactly like a normal one, marked
// complete=false when the session's end was never recorded.
//
// Jobs (docs/spool.md "Closed spools, rescans and retries"): submit() queues a
// finished session; the queue is bounded, and whatever it cannot hold is found
// again by a periodic rescan of the spool folder (spools no session is writing
// and nobody has queued). recover_in_background() queues the spools left by a
// previous run without delaying start-up. A failed finalisation keeps the spool,
// appends a finalize_failed record to it (the cause survives a restart) and is
// retried with exponential backoff until it succeeds.
//
// Thread: submit()/recover_in_background() from any thread; jobs run on the
// finalizer's own threads (`start(n)`: at most n finalisations at once, each
// holding one recording's tracks in memory). finalize_file() and recover()
// run on the caller's thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
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
#include "metadata/metadata_parser.h"
#include "recording/audio_writer.h"
#include "recording/call_decision.h"
#include "recording/channel_layout.h"
#include "recording/spool_file_system.h"

namespace sgw::recording {

// What the recording's location may depend on (see the key template).
struct PathFields {
  std::int64_t start_unix_us = 0;
  std::int64_t end_unix_us = 0;  // start + duration
  std::string conversation_id;
  std::string recording_id;
  std::string region;
  std::string node;
  std::string call_id;
  std::string key_prefix;  // the call-control hook's key_prefix (already checked), or empty
};

// A published recording, as handed to FinalizerOptions::enqueue.
struct PublishedRecording {
  std::string recording_id;
  PathFields fields;
  std::string base_path;  // recordings_dir / relative_path, without extension
  std::vector<std::string> audio_paths;
  std::string json_path;
  // The call-control hook's decision (the spool's start record), when there
  // was a hook: the delivery applies its retention and tags.
  std::optional<CallDecision> decision;
};

struct FinalizerOptions {
  std::string spool_dir;
  std::string recordings_dir;
  AudioFormat format = AudioFormat::kWavPcm16;
  LayoutConfig layout = default_layout_config();
  std::uint32_t reorder_window_ms = 60;
  bool keep_spool = false;
  metadata::ParseLimits metadata_limits;
  // Relative path (no extension) of a recording under recordings_dir; must
  // return a sanitised path (the application uses storage::KeyTemplate).
  std::function<std::string(const PathFields&)> relative_path;
  // Called after the recording's files are published and BEFORE its spool is
  // removed (finalizer thread): the application durably queues the
  // recording's deliveries here. An error keeps the spool, so the recording is
  // finalised again at the next start; the hook must be idempotent (same
  // recording id, same entries).
  std::function<common::Status(const PublishedRecording&)> enqueue;
  // The recording JSON's previous_fragment: this node's latest recording of
  // fragment_of that started before start_unix_us ("" when none). Finalizer
  // thread. Null: always null.
  std::function<std::string(const std::string& fragment_of, std::int64_t start_unix_us)> previous_fragment;
  // Called after a recording is published (any thread): JSON path.
  std::function<void(const std::string& recording_id, const std::string& json_path)> on_published;

  // Integrity: a stream that receives nothing for longer than this while it
  // is active (not paused) gets a warning in the recording JSON.
  std::int64_t silence_warning_ms = 10000;
  // Jobs queued at most; beyond, submit() returns false and the rescan finds the spool.
  std::size_t queue_capacity = 4096;
  // How often the spool folder is listed for spools nobody queued (overflow,
  // failures forgotten beyond queue_capacity). Zero: never (tests).
  std::chrono::milliseconds rescan_interval{30000};
  // A rescan skips spools modified more recently than this (a session that
  // is being set up may not be registered with the syncer yet).
  std::chrono::milliseconds rescan_min_age{5000};
  // Retry backoff after a failed finalisation: initial, doubled up to max.
  std::chrono::milliseconds retry_initial{1000};
  std::chrono::milliseconds retry_max{60000};
  // Paths of the spools sessions are still writing (SpoolSyncer::open_paths);
  // a rescan never takes those. Null: none.
  std::function<std::vector<std::string>()> open_spools;
  // Reading spools and appending finalize_failed records; null: POSIX. Tests fault it.
  SpoolFileSystem* fs = nullptr;
};

struct FinalizerMetrics {
  common::Counter* published = nullptr;
  common::Counter* recovered = nullptr;
  common::Counter* failed = nullptr;
  common::Counter* queue_full = nullptr;
  common::Counter* retries = nullptr;         // failed attempts that will be retried
  common::Counter* incomplete = nullptr;      // published with complete=false
  common::Counter* rescanned = nullptr;       // spools queued by a rescan
  common::Gauge* queue_depth = nullptr;       // queued + running + waiting for a retry
  common::Gauge* recovery_pending = nullptr;  // spools of a previous run not yet finished
  // Recordings published with a warning, by kind: silence, wrong_source,
  // unexpected_payload_type, undecodable, late, kernel_drops, srtp_auth_failure, srtp_replay,
  // spool_damage, finalize_retry.
  common::LabelledCounter* warnings = nullptr;
  // Integrity of each published recording (may be null): docs/operations.md.
  struct Integrity {
    common::Counter* packets_expected = nullptr;  // per stream, summed
    common::Counter* packets_received = nullptr;
    common::Counter* packets_lost = nullptr;
    common::Counter* packets_late = nullptr;
    common::Counter* packets_duplicated = nullptr;
    common::Histogram* stream_loss_ratio = nullptr;   // lost / expected, one sample per stream
    common::LabelledCounter* gap_ms = nullptr;        // gap milliseconds by cause
    common::Counter* ssrc_changes = nullptr;          // per stream: SSRCs seen beyond the first
  } integrity;
};

struct FinalizeReport {
  std::string recording_id;
  bool published = false;        // false: nothing to publish (never answered)
  bool complete = true;
  std::string json_path;
  std::vector<std::string> audio_paths;
  std::vector<std::string> problems;  // spool corruption, decode errors
  std::vector<std::string> warnings;  // as in the JSON
};

class Finalizer {
 public:
  Finalizer(FinalizerOptions options, FinalizerMetrics metrics);
  ~Finalizer();
  Finalizer(const Finalizer&) = delete;
  Finalizer& operator=(const Finalizer&) = delete;

  // Starts `threads` workers (at least 1): at most that many finalisations at once.
  void start(unsigned threads);
  // Thread-safe. Queues the session's spool for finalisation; false when the
  // queue is full (counted; the spool stays on disk and the next rescan queues it).
  bool submit(const std::string& recording_id);
  // Lists spool_dir now and queues every spool in it as a recovery (call
  // before sessions start: every spool there is then a previous run's).
  // Returns how many were found; recovery_pending() counts them down.
  std::size_t recover_in_background();
  // Finishes queued jobs, then joins the threads. Retries still waiting are
  // left on disk for the next start.
  void stop();

  std::size_t recovery_pending() const;
  // Queued + running + waiting for a retry.
  std::size_t pending() const;

  // Builds and publishes the recording of one spool file; removes the spool
  // afterwards unless keep_spool. Errors name the path and operation; a spool
  // that fails is left where it is.
  common::Result<FinalizeReport> finalize_file(const std::string& spool_path);
  // Finalises every spool in spool_dir (start-up, before new sessions).
  // Returns how many recordings were published.
  std::size_t recover();

 private:
  using Clock = std::chrono::steady_clock;
  struct Retry {
    Clock::time_point due;
    unsigned attempts = 0;
  };
  enum class Outcome { kDone, kRetry, kGiveUp };

  void run();
  // One job on a worker thread; the lock is not held.
  Outcome run_job(const std::string& id, unsigned attempts);
  // Spools on disk that nobody queued (lock not held while listing).
  void rescan();
  bool enqueue_locked(const std::string& id);
  void update_gauges_locked();
  std::string spool_path(const std::string& id) const;
  // Wait after the (failures_before + 1)-th failure: initial * 2^failures_before, capped.
  std::chrono::milliseconds retry_delay(unsigned failures_before) const;

  FinalizerOptions options_;
  FinalizerMetrics metrics_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::set<std::string> busy_;            // queued or running
  std::map<std::string, Retry> retry_;    // failed, waiting; at most queue_capacity
  std::set<std::string> given_up_;        // unreadable header: not retried, skipped by rescans
  std::set<std::string> recovering_;      // found by recover_in_background, not finished
  std::map<std::string, unsigned> attempts_;  // failures so far of a queued/running retry
  Clock::time_point next_rescan_{};
  bool rescanning_ = false;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace sgw::recording
