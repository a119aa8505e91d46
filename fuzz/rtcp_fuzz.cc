// libFuzzer target: RtcpCompoundView::parse (and looks_like_rtcp) must accept or refuse any
// datagram without reading outside it. Seed corpus: fuzz/corpus/fuzz_rtcp.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "media/rtcp_packet_view.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::uint8_t> d(data, size);
  (void)sgw::media::looks_like_rtcp(d);
  auto v = sgw::media::RtcpCompoundView::parse(d);
  if (v) {
    if (v->size == 0 || v->size > sgw::media::RtcpCompoundView::kMaxPackets) std::abort();
    volatile std::uint32_t sink = 0;
    for (std::size_t i = 0; i < v->size; ++i) {
      sink = sink ^ v->packets[i].ssrc;
      for (auto b : v->packets[i].body) sink = sink ^ b;
    }
  }
  return 0;
}
