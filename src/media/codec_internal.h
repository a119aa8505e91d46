// Private to the codecs library: factories of codecs that live in their own
// translation unit (G.729 is compiled only with SGW_WITH_G729, see
// codecs.cmake). Not for use outside src/media/codec*.cc.
#pragma once

#include <memory>

#include "media/codec.h"

namespace sgw::media::internal {

// Upper bound on an RTP payload we look at: a UDP datagram cannot carry more.
inline constexpr std::size_t kMaxPayloadBytes = 65535;

#if defined(SGW_WITH_G729) && SGW_WITH_G729
common::Result<std::unique_ptr<Decoder>> make_g729_decoder();
common::Result<std::unique_ptr<Encoder>> make_g729_encoder();
#endif

}  // namespace sgw::media::internal
