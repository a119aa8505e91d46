// HookClient: the call-control hook's HTTP client (docs/integrations.md).
//
// call() queues a POST of a JSON document to a URL and returns at once; one
// thread of its own runs every request concurrently through a libcurl multi
// handle, so nothing the SIP thread does ever waits on HTTP. `done` is called
// exactly once per call, on the hook thread, with the decision: the hook's
// validated answer (source "hook"), or, when the hook is slower than
// timeout_ms, down, answers non-2xx or with a body that does not validate,
// the on_error decision (source "on_error", the reason in `error`, logged).
//
// Thread: call() from any thread; stop() (and the destructor) from one thread
// after the callers stopped calling; pending calls then get on_error
// ("hook client stopped").
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/logging.h"
#include "common/metrics.h"
#include "recording/call_decision.h"

namespace sgw::control {

struct HookOptions {
  std::uint32_t timeout_ms = 300;  // whole request (connect + answer)
  bool reject_on_error = false;    // hooks.on_error: reject (480) instead of record
  std::size_t max_pending = 4096;  // requests queued or running; beyond: on_error at once (counted)
  recording::AnswerRules answer_rules;  // what the configuration lets an answer ask for
};

struct HookMetrics {
  // sgw_hook_requests_total{outcome}: answered, timeout, down, http_error, bad_answer, overload
  common::LabelledCounter* outcomes = nullptr;
};

class HookClient {
 public:
  using Done = std::function<void(recording::CallDecision)>;
  HookClient(HookOptions options, HookMetrics metrics);
  ~HookClient();
  HookClient(const HookClient&) = delete;
  HookClient& operator=(const HookClient&) = delete;

  // Any thread: POSTs `body` (application/json) to `url`; `done` once, on the hook thread.
  void call(const std::string& url, std::string body, Done done);
  void stop();

 private:
  struct Job;
  void run();
  void finish(Job& job, recording::CallDecision d, const char* outcome);
  recording::CallDecision on_error(const Job& job, const std::string& why) const;

  HookOptions options_;
  HookMetrics metrics_;
  std::shared_ptr<spdlog::logger> log_;
  void* multi_ = nullptr;  // CURLM*
  std::mutex mutex_;
  std::deque<std::unique_ptr<Job>> incoming_;
  std::size_t in_flight_ = 0;  // queued + running (under mutex_)
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace sgw::control
