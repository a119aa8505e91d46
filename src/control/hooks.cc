#include "control/hooks.h"

#include <chrono>
#include <map>

#include <curl/curl.h>

#include "common/thread_name.h"

namespace sgw::control {

using Clock = std::chrono::steady_clock;

struct HookClient::Job {
  std::string url;
  std::string body;
  Done done;
  Clock::time_point submitted;
  std::string answer;
  bool too_big = false;
  curl_slist* headers = nullptr;
  CURL* easy = nullptr;
};

HookClient::HookClient(HookOptions options, HookMetrics metrics)
    : options_(options), metrics_(metrics), log_(common::logger("hooks")) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  multi_ = curl_multi_init();
  thread_ = std::thread([this] { run(); });
}

HookClient::~HookClient() { stop(); }

void HookClient::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  if (multi_) curl_multi_wakeup(static_cast<CURLM*>(multi_));
  if (thread_.joinable()) thread_.join();
  if (multi_) {
    curl_multi_cleanup(static_cast<CURLM*>(multi_));
    multi_ = nullptr;
  }
}

recording::CallDecision HookClient::on_error(const Job& job, const std::string& why) const {
  recording::CallDecision d;
  d.source = "on_error";
  d.action = options_.reject_on_error ? "reject" : "record";
  d.sip_code = options_.reject_on_error ? 480 : 0;
  d.error = why;
  d.elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - job.submitted).count();
  return d;
}

void HookClient::finish(Job& job, recording::CallDecision d, const char* outcome) {
  if (metrics_.outcomes) metrics_.outcomes->with(outcome).inc();
  if (d.source == "on_error")
    log_->warn("hook {} failed ({}): {}; on_error: {}", job.url, outcome, d.error, d.action);
  {
    std::lock_guard lock(mutex_);
    --in_flight_;
  }
  auto done = std::move(job.done);
  if (done) done(std::move(d));
}

void HookClient::call(const std::string& url, std::string body, Done done) {
  auto job = std::make_unique<Job>();
  job->url = url;
  job->body = std::move(body);
  job->done = std::move(done);
  job->submitted = Clock::now();
  {
    std::lock_guard lock(mutex_);
    if (!stopping_ && in_flight_ < options_.max_pending) {
      ++in_flight_;
      incoming_.push_back(std::move(job));
    }
  }
  if (!job) {
    curl_multi_wakeup(static_cast<CURLM*>(multi_));
    return;
  }
  // Refused here: queue full or stopping. Answered on the caller's thread.
  if (metrics_.outcomes) metrics_.outcomes->with("overload").inc();
  auto d = on_error(*job, "hook queue full or stopped (" + std::to_string(options_.max_pending) + " pending)");
  log_->warn("hook {}: {}; on_error: {}", url, d.error, d.action);
  job->done(std::move(d));
}

void HookClient::run() {
  common::set_thread_name("sgw-hooks");
  auto* multi = static_cast<CURLM*>(multi_);
  std::map<CURL*, std::unique_ptr<Job>> running;
  for (;;) {
    std::deque<std::unique_ptr<Job>> fresh;
    bool stopping;
    {
      std::lock_guard lock(mutex_);
      fresh.swap(incoming_);
      stopping = stopping_;
    }
    if (stopping) {
      for (auto& j : fresh) finish(*j, on_error(*j, "hook client stopped"), "overload");
      for (auto& [easy, j] : running) {
        curl_multi_remove_handle(multi, easy);
        curl_easy_cleanup(easy);
        curl_slist_free_all(j->headers);
        finish(*j, on_error(*j, "hook client stopped"), "overload");
      }
      return;
    }
    for (auto& j : fresh) {
      CURL* easy = curl_easy_init();
      j->easy = easy;
      j->headers = curl_slist_append(nullptr, "Content-Type: application/json");
      j->headers = curl_slist_append(j->headers, "Expect:");
      // The request's whole time counts from submission: queueing here is part of it.
      auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - j->submitted).count();
      long budget = std::max<long>(1, static_cast<long>(options_.timeout_ms) - static_cast<long>(waited));
      curl_easy_setopt(easy, CURLOPT_URL, j->url.c_str());
      curl_easy_setopt(easy, CURLOPT_POST, 1L);
      curl_easy_setopt(easy, CURLOPT_POSTFIELDS, j->body.data());
      curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(j->body.size()));
      curl_easy_setopt(easy, CURLOPT_HTTPHEADER, j->headers);
      curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, budget);
      curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
      curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
      curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION,
                       +[](char* data, std::size_t size, std::size_t n, void* user) -> std::size_t {
                         auto* job = static_cast<Job*>(user);
                         job->answer.append(data, size * n);
                         if (job->answer.size() > 64 * 1024) {
                           job->too_big = true;
                           return 0;  // aborts the transfer
                         }
                         return size * n;
                       });
      curl_easy_setopt(easy, CURLOPT_WRITEDATA, j.get());
      curl_multi_add_handle(multi, easy);
      running.emplace(easy, std::move(j));
    }
    int still = 0;
    curl_multi_perform(multi, &still);
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      CURL* easy = m->easy_handle;
      CURLcode rc = m->data.result;
      auto it = running.find(easy);
      curl_multi_remove_handle(multi, easy);
      if (it == running.end()) {
        curl_easy_cleanup(easy);
        continue;
      }
      auto job = std::move(it->second);
      running.erase(it);
      long status = 0;
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
      curl_easy_cleanup(easy);
      curl_slist_free_all(job->headers);
      job->headers = nullptr;
      if (rc == CURLE_OPERATION_TIMEDOUT) {
        finish(*job, on_error(*job, "no answer within hooks.timeout_ms = " + std::to_string(options_.timeout_ms) + " ms"),
               "timeout");
      } else if (job->too_big) {
        finish(*job, on_error(*job, "answer larger than 64 KiB"), "bad_answer");
      } else if (rc != CURLE_OK) {
        finish(*job, on_error(*job, std::string("request failed: ") + curl_easy_strerror(rc)), "down");
      } else if (status < 200 || status > 299) {
        finish(*job, on_error(*job, "answered HTTP " + std::to_string(status)), "http_error");
      } else if (auto d = recording::parse_hook_answer(job->answer, options_.answer_rules); !d) {
        finish(*job, on_error(*job, "bad answer: " + d.error().message), "bad_answer");
      } else {
        d->source = "hook";
        d->elapsed_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - job->submitted).count();
        finish(*job, std::move(d).value(), "answered");
      }
    }
    curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
  }
}

}  // namespace sgw::control
