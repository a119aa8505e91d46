#include "siprec_src/rate_scheduler.h"

#include <cmath>

namespace sgw::siprec_src {

RateScheduler::RateScheduler(double rate, std::int64_t start_us)
    : interval_us_(1e6 / rate), next_us_(static_cast<double>(start_us)) {}

std::size_t RateScheduler::due(std::int64_t now_us, std::size_t limit) {
  if (limit == 0) return 0;  // nothing may start; a long wait re-bases on the next call
  const auto now = static_cast<double>(now_us);
  // Example, --rate 2 (500 ms): calls due at 0, 500, 1000 ms; no free place from 500 ms to
  // 10 s. At 10 s one call starts, the next at 10.5 s, not 19 at once.
  if (now - next_us_ > static_cast<double>(kMaxLagUs)) next_us_ = now;
  std::size_t n = 0;
  while (n < limit && next_us_ <= now) {
    ++n;
    next_us_ += interval_us_;
  }
  return n;
}

double launch_time_s(std::uint64_t calls, double rate, std::size_t concurrency, double hold_s) {
  if (calls == 0) return 0;
  const double waves = std::ceil(static_cast<double>(calls) / static_cast<double>(concurrency));
  return static_cast<double>(calls - 1) / rate + (waves - 1) * hold_s;
}

}  // namespace sgw::siprec_src
