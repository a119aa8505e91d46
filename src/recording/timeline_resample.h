// Resampling of one decoded packet onto the output rate, for the timeline.
//
// Deliberately simple and stateless apart from one carried sample, because
// the timeline places every packet at an exact sample position and a
// filter with memory would smear audio across gaps and re-anchors:
//   - up (8 kHz codec on a 16/48 kHz track): linear interpolation between
//     consecutive input samples, running ONE input sample late (at 8 kHz,
//     125 us) so that a packet never needs the next packet's first sample;
//     `prev` is the previous packet's last input sample when contiguous.
//   - down (16 kHz codec on an 8 kHz track): mean of the input samples that
//     fall into each output sample (a box filter; adequate for speech).
//   - equal sizes: copy.
// The output length is given (the packet's span on the timeline), so the
// ratio is per packet and any rate pair works. Quality note: linear
// interpolation leaves images above the source Nyquist attenuated but not
// removed; a polyphase resampler (speexdsp) would be the upgrade.
#pragma once

#include <cstdint>
#include <span>

namespace sgw::recording {

// Fills all of `out` from `in` (out is zeros if `in` is empty).
void resample(std::span<const std::int16_t> in, std::int16_t prev, std::span<std::int16_t> out);

}  // namespace sgw::recording
