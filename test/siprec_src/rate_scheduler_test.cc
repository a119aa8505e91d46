#include "siprec_src/rate_scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace sgw::siprec_src {
namespace {

constexpr std::int64_t kMs = 1000;

// Polls the scheduler every `tick` from `from` to `to` (a fake clock), with at most `limit`
// calls allowed per poll; returns the start time of every call.
std::vector<std::int64_t> run(RateScheduler& s, std::int64_t from, std::int64_t to, std::int64_t tick,
                              std::size_t limit = 1000) {
  std::vector<std::int64_t> starts;
  for (std::int64_t t = from; t <= to; t += tick)
    for (std::size_t n = s.due(t, limit); n > 0; --n) starts.push_back(t);
  return starts;
}

TEST(RateScheduler, KeepsTheRateWhenPolledOnTime) {
  RateScheduler s(10, 0);  // one call per 100 ms
  auto starts = run(s, 0, 1000 * kMs - 1, 5 * kMs);
  ASSERT_EQ(starts.size(), 10u);
  for (std::size_t i = 0; i < starts.size(); ++i) EXPECT_EQ(starts[i], static_cast<std::int64_t>(i) * 100 * kMs);
}

TEST(RateScheduler, HighRateStartsSeveralPerPoll) {
  // 500 calls/s polled every 5 ms: 2.5 calls per poll on average; by the last poll (995 ms)
  // every call due (0, 2, ..., 994 ms) has started.
  RateScheduler s(500, 0);
  auto starts = run(s, 0, 1000 * kMs - 1, 5 * kMs);
  EXPECT_EQ(starts.size(), 498u);
  EXPECT_EQ(s.next_due_us(), 996 * kMs);
}

TEST(RateScheduler, ASlightlyLatePollCatchesUp) {
  RateScheduler s(100, 0);  // 10 ms
  EXPECT_EQ(s.due(0, 100), 1u);
  // 40 ms late (< kMaxLag): the calls due at 10, 20, 30 and 40 ms start now.
  EXPECT_EQ(s.due(40 * kMs, 100), 4u);
  EXPECT_EQ(s.next_due_us(), 50 * kMs);
}

TEST(RateScheduler, NoBurstAfterAStall) {
  // The issue: --rate 2 sent 70 INVITEs in 0.5 s after a stall. Calls at 0 and 500 ms, then
  // no free place until 35 s: one call starts at 35 s, the next at 35.5 s.
  RateScheduler s(2, 0);
  EXPECT_EQ(s.due(0, 1000), 1u);
  EXPECT_EQ(s.due(500 * kMs, 1000), 1u);
  for (std::int64_t t = 505 * kMs; t < 35000 * kMs; t += 5 * kMs) EXPECT_EQ(s.due(t, 0), 0u);
  auto starts = run(s, 35000 * kMs, 36000 * kMs - 1, 5 * kMs);
  ASSERT_EQ(starts.size(), 2u);
  EXPECT_EQ(starts[0], 35000 * kMs);
  EXPECT_EQ(starts[1], 35500 * kMs);
}

TEST(RateScheduler, NoBurstAfterAStalledThread) {
  // The caller itself did not poll for 10 s (a busy machine): same as a stall.
  RateScheduler s(10, 0);
  EXPECT_EQ(s.due(0, 1000), 1u);
  EXPECT_EQ(s.due(10000 * kMs, 1000), 1u);
  EXPECT_EQ(s.due(10050 * kMs, 1000), 0u);
  EXPECT_EQ(s.due(10100 * kMs, 1000), 1u);
}

TEST(RateScheduler, NeverFasterThanTheRateOverAnyWindow) {
  // Stalls of random length between polls: in any window of W the starts never exceed
  // rate × (W + kMaxLag) + 1.
  const double rate = 20;
  RateScheduler s(rate, 0);
  std::vector<std::int64_t> starts;
  std::uint32_t x = 12345;
  std::int64_t t = 0;
  for (int i = 0; i < 5000; ++i) {
    x = x * 1103515245u + 12345u;
    t += (x >> 16) % 7 == 0 ? static_cast<std::int64_t>((x >> 8) % 3000) * kMs : 5 * kMs;
    std::size_t limit = (x >> 20) % 5 == 0 ? 0 : 1000;  // sometimes no free place
    for (std::size_t n = s.due(t, limit); n > 0; --n) starts.push_back(t);
  }
  ASSERT_GT(starts.size(), 100u);
  const std::int64_t window = 1000 * kMs;
  const double bound = rate * static_cast<double>(window + RateScheduler::kMaxLagUs) / 1e6 + 1;
  for (std::size_t i = 0, j = 0; i < starts.size(); ++i) {
    while (starts[i] - starts[j] >= window) ++j;
    EXPECT_LE(static_cast<double>(i - j + 1), bound) << "at " << starts[i];
  }
}

TEST(RateScheduler, RespectsTheLimit) {
  RateScheduler s(1000, 0);
  EXPECT_EQ(s.due(10 * kMs, 3), 3u);  // 11 due (0..10 ms), 3 places
  EXPECT_EQ(s.due(10 * kMs, 100), 8u);
}

TEST(LaunchTime, RateAndConcurrencyAdd) {
  // 1000 calls at 10/s, 100 at once, each holding its place 70 s: every wave of 100 takes
  // 10 s to launch, and the next waits 70 s for places. max(rate, waves) would give 630 s.
  EXPECT_DOUBLE_EQ(launch_time_s(1000, 10, 100, 70), 99.9 + 9 * 70);
  EXPECT_DOUBLE_EQ(launch_time_s(1, 10, 100, 70), 0);
  EXPECT_DOUBLE_EQ(launch_time_s(5, 1, 100, 70), 4);       // one wave: the rate alone
  EXPECT_DOUBLE_EQ(launch_time_s(4, 1000, 1, 3), 0.003 + 9);  // concurrency 1: one after another
  EXPECT_DOUBLE_EQ(launch_time_s(0, 10, 1, 3), 0);
}

TEST(LaunchTime, BoundsASimulatedRun) {
  // Simulate a run on a fake clock: calls hold their place for `hold`, the scheduler is
  // polled every 5 ms; the last call starts before launch_time_s (plus one poll).
  struct Case {
    std::uint64_t calls;
    double rate;
    std::size_t conc;
    double hold_s;
  };
  for (const Case& c : {Case{40, 10, 5, 1.3}, Case{100, 100, 10, 0.7}, Case{7, 2, 3, 4.0},
                        Case{300, 1000, 50, 0.25}}) {
    RateScheduler s(c.rate, 0);
    std::vector<std::int64_t> ends;  // of running calls
    std::uint64_t started = 0;
    std::int64_t last_start = 0;
    const auto hold = static_cast<std::int64_t>(c.hold_s * 1e6);
    for (std::int64_t t = 0; started < c.calls; t += 5 * kMs) {
      std::erase_if(ends, [t](std::int64_t e) { return e <= t; });
      std::size_t limit = std::min<std::uint64_t>(c.calls - started, c.conc - ends.size());
      for (std::size_t n = s.due(t, limit); n > 0; --n, ++started) {
        ends.push_back(t + hold);
        last_start = t;
      }
    }
    EXPECT_LE(static_cast<double>(last_start) / 1e6,
              launch_time_s(c.calls, c.rate, c.conc, c.hold_s) + 0.005 * static_cast<double>(c.calls))
        << c.calls << " calls, rate " << c.rate << ", concurrency " << c.conc;
  }
}

}  // namespace
}  // namespace sgw::siprec_src
