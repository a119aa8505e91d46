// TaskThread: one named thread that runs the jobs posted to it, in order.
//
// post() from any thread; false when the queue holds `capacity` jobs or the
// thread is stopping (the caller does the work itself or refuses it: a job is
// never dropped once taken). stop() (and the destructor) runs the jobs still
// queued, then joins.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace sgw::common {

class TaskThread {
 public:
  TaskThread(std::string name, std::size_t capacity);
  ~TaskThread();  // stop()
  TaskThread(const TaskThread&) = delete;
  TaskThread& operator=(const TaskThread&) = delete;

  bool post(std::function<void()> job);
  void stop();  // idempotent; from one thread, not from a job

 private:
  void run();

  std::string name_;
  std::size_t capacity_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace sgw::common
