// RateScheduler: when siprec-src starts the next call, for `--rate` (docs/siprec-src.md,
// "Rate and concurrency"). Pure: the caller passes the time, so tests drive it with a fake clock.
// One instance per run, used from one thread.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sgw::siprec_src {

class RateScheduler {
 public:
  // How late a launch may be and still keep its place in the schedule. A caller that polls
  // every few milliseconds is always a little late: within this the calls it missed are
  // started at once, so a high rate is kept. Later than this is a stall (no free place under
  // --concurrency, a busy thread): the schedule restarts from the current time, so the calls
  // it missed are not sent in a burst.
  static constexpr std::int64_t kMaxLagUs = 50'000;

  // rate: calls per second (> 0). The first call is due at start_us.
  RateScheduler(double rate, std::int64_t start_us);

  // How many calls to start at now_us, at most `limit` (calls left, free places); the
  // schedule moves on by that many. After a stall the first call starts now and the next
  // one 1/rate later: never more than rate × (kMaxLag + time since the previous start) + 1
  // calls in a row, whatever happened before.
  std::size_t due(std::int64_t now_us, std::size_t limit);

  // When the next call is due (µs, the caller's clock).
  std::int64_t next_due_us() const { return static_cast<std::int64_t>(next_us_); }

 private:
  double interval_us_;
  double next_us_;
};

// Time (s) to launch `calls` calls at `rate` when at most `concurrency` run at once and each
// holds its place for hold_s: call k starts by k / rate + floor(k / concurrency) × hold_s with
// RateScheduler (a call waits for its slot in the rate and for the call `concurrency` places
// before it to end), so the last one by (calls − 1) / rate + (waves − 1) × hold_s. The default
// --max-wall is built on it, so a launch slowed by --concurrency is not cut short.
double launch_time_s(std::uint64_t calls, double rate, std::size_t concurrency, double hold_s);

}  // namespace sgw::siprec_src
