// Fuzz target: RtpPacketView::parse must accept or refuse any datagram without
// reading outside it.
#include <cstddef>
#include <cstdint>

#include "media/rtp_packet_view.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto v = sgw::media::RtpPacketView::parse({data, size});
  if (v) {
    volatile std::uint8_t sink = 0;
    for (auto b : v->payload) sink = static_cast<std::uint8_t>(sink ^ b);
  }
  return 0;
}
