// Finalizer: turns a recording session's spool file into the published
// recording — audio file(s) and the metadata JSON — and then removes the spool.
//
// The same code runs when a session ends normally and, at start-up, for every
// spool left behind by a crash (recover()): the spool is the only input, so a
// recovered recording is built exactly like a normal one, marked
// complete=false when the session's end was never recorded.
//
// Thread: submit() from any thread; jobs run on the finalizer's own threads
// (blocking file work stays off the SIP and media threads). finalize_file()
// and recover() run on the caller's thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "common/result.h"
#include "metadata/metadata_parser.h"
#include "recording/audio_writer.h"
#include "recording/channel_layout.h"

namespace sgw::recording {

// What the recording's location may depend on (see the key template).
struct PathFields {
  std::int64_t start_unix_us = 0;
  std::string conversation_id;
  std::string recording_id;
  std::string region;
  std::string node;
  std::string call_id;
};

// A published recording, as handed to FinalizerOptions::enqueue.
struct PublishedRecording {
  std::string recording_id;
  PathFields fields;
  std::string base_path;  // recordings_dir / relative_path, without extension
  std::vector<std::string> audio_paths;
  std::string json_path;
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
  // Called after a recording is published (any thread): JSON path.
  std::function<void(const std::string& recording_id, const std::string& json_path)> on_published;
};

struct FinalizerMetrics {
  common::Counter* published = nullptr;
  common::Counter* recovered = nullptr;
  common::Counter* failed = nullptr;
  common::Counter* queue_full = nullptr;
};

struct FinalizeReport {
  std::string recording_id;
  bool published = false;        // false: nothing to publish (never answered)
  bool complete = true;
  std::string json_path;
  std::vector<std::string> audio_paths;
  std::vector<std::string> problems;  // spool corruption, decode errors
};

class Finalizer {
 public:
  Finalizer(FinalizerOptions options, FinalizerMetrics metrics);
  ~Finalizer();
  Finalizer(const Finalizer&) = delete;
  Finalizer& operator=(const Finalizer&) = delete;

  void start(unsigned threads);
  // Thread-safe. Queues the session's spool for finalisation; false when the
  // queue is full (the spool stays on disk and is recovered at next start).
  bool submit(const std::string& recording_id);
  // Finishes queued jobs, then joins the threads.
  void stop();

  // Builds and publishes the recording of one spool file; removes the spool
  // afterwards unless keep_spool. Errors name the path and operation; a spool
  // that fails is left where it is.
  common::Result<FinalizeReport> finalize_file(const std::string& spool_path);
  // Finalises every spool in spool_dir (start-up, before new sessions).
  // Returns how many recordings were published.
  std::size_t recover();

 private:
  void run();

  FinalizerOptions options_;
  FinalizerMetrics metrics_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace sgw::recording
