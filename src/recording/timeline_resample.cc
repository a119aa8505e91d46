#include "recording/timeline_resample.h"

#include <algorithm>

namespace sgw::recording {

void resample(std::span<const std::int16_t> in, std::int16_t prev, std::span<std::int16_t> out) {
  const std::size_t n_in = in.size();
  const std::size_t n_out = out.size();
  if (n_out == 0) return;
  if (n_in == 0) {
    std::fill(out.begin(), out.end(), std::int16_t{0});
    return;
  }
  if (n_in == n_out) {
    std::copy(in.begin(), in.end(), out.begin());
    return;
  }
  if (n_out > n_in) {
    // Output j sits at input time j * n_in / n_out - 1: between in[i-1]
    // (prev for i = 0) and in[i].
    for (std::size_t j = 0; j < n_out; ++j) {
      const std::uint64_t num = std::uint64_t{j} * n_in;
      const std::size_t i = static_cast<std::size_t>(num / n_out);
      const std::int64_t frac = static_cast<std::int64_t>(num % n_out);
      const std::int64_t a = i == 0 ? prev : in[i - 1];
      const std::int64_t b = in[i];
      out[j] = static_cast<std::int16_t>(a + (b - a) * frac / static_cast<std::int64_t>(n_out));
    }
    return;
  }
  for (std::size_t j = 0; j < n_out; ++j) {
    const std::size_t lo = j * n_in / n_out;
    std::size_t hi = (j + 1) * n_in / n_out;
    if (hi <= lo) hi = lo + 1;
    std::int64_t sum = 0;
    for (std::size_t i = lo; i < hi; ++i) sum += in[i];
    out[j] = static_cast<std::int16_t>(sum / static_cast<std::int64_t>(hi - lo));
  }
}

}  // namespace sgw::recording
