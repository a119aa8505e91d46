// Tones: generation for the RTP legs and detection (Goertzel) for --verify. Pure, any thread.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace sgw::siprec_src {

// `samples` of a sine at `hz`, amplitude 0..1 of full scale, starting at phase 0.
std::vector<std::int16_t> make_tone(double hz, std::uint32_t rate, std::size_t samples,
                                    double amplitude = 0.3);

// Goertzel power of `hz` in `pcm`, normalised so a full-scale sine at that frequency gives
// about 0.25 regardless of length (power / N^2).
double goertzel_power(std::span<const float> pcm, double hz, std::uint32_t rate);

// Mean square of the samples (full-scale sine: 0.5).
double mean_square(std::span<const float> pcm);

struct ToneCheck {
  bool present = false;   // the tone holds most of the signal's energy
  double ratio = 0;       // tone power (x2) / mean square: ~1 for a pure tone
  double rms = 0;
};

// Whether `pcm` (a stretch of one channel) is dominated by a tone at `hz`: the Goertzel power
// explains at least `min_ratio` of the energy and the signal is not silence.
ToneCheck check_tone(std::span<const float> pcm, double hz, std::uint32_t rate,
                     double min_ratio = 0.5);

}  // namespace sgw::siprec_src
