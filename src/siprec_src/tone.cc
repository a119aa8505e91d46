#include "siprec_src/tone.h"

#include <cmath>
#include <numbers>

namespace sgw::siprec_src {

std::vector<std::int16_t> make_tone(double hz, std::uint32_t rate, std::size_t samples,
                                    double amplitude) {
  std::vector<std::int16_t> out(samples);
  const double w = 2 * std::numbers::pi * hz / rate;
  for (std::size_t i = 0; i < samples; ++i)
    out[i] = static_cast<std::int16_t>(
        std::lround(amplitude * 32767.0 * std::sin(w * static_cast<double>(i))));
  return out;
}

double goertzel_power(std::span<const float> pcm, double hz, std::uint32_t rate) {
  if (pcm.empty() || rate == 0) return 0;
  const double w = 2 * std::numbers::pi * hz / rate;
  const double coeff = 2 * std::cos(w);
  double s1 = 0, s2 = 0;
  for (float x : pcm) {
    double s0 = x + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  double power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
  double n = static_cast<double>(pcm.size());
  return power / (n * n);
}

double mean_square(std::span<const float> pcm) {
  if (pcm.empty()) return 0;
  double sum = 0;
  for (float x : pcm) sum += static_cast<double>(x) * x;
  return sum / static_cast<double>(pcm.size());
}

ToneCheck check_tone(std::span<const float> pcm, double hz, std::uint32_t rate, double min_ratio) {
  ToneCheck c;
  double ms = mean_square(pcm);
  c.rms = std::sqrt(ms);
  if (ms < 1e-6) return c;  // below -60 dBFS: silence
  // A sine of amplitude A has mean square A^2/2 and Goertzel power A^2/4: ratio = 2P/ms.
  c.ratio = 2 * goertzel_power(pcm, hz, rate) / ms;
  c.present = c.ratio >= min_ratio;
  return c;
}

}  // namespace sgw::siprec_src
