// Load-run statistics: setup latency percentiles and failure counts. Pure, any thread (the
// engine keeps one instance on the SIP thread).
#pragma once

#include <cstdint>
#include <map>
#include <vector>

namespace sgw::siprec_src {

// Nearest-rank percentile (p in [0, 100]) of unsorted samples; 0 for no samples.
// p50 of {1,2,3,4} is 2, p99 of 100 samples is the 99th smallest, p100 is the max.
double percentile(std::vector<double> samples, double p);

struct LatencySummary {
  std::size_t count = 0;
  double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
};
LatencySummary summarize(const std::vector<double>& samples);

}  // namespace sgw::siprec_src
