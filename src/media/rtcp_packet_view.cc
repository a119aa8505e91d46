#include "media/rtcp_packet_view.h"

#include "common/byte_cursor.h"

namespace sgw::media {

bool looks_like_rtcp(std::span<const std::uint8_t> d) {
  return d.size() >= 2 && (d[0] >> 6) == 2 && d[1] >= 192 && d[1] <= 223;
}

std::optional<RtcpCompoundView> RtcpCompoundView::parse(std::span<const std::uint8_t> datagram) {
  RtcpCompoundView out;
  common::ByteCursor c(datagram);
  if (c.empty()) return std::nullopt;
  while (!c.empty()) {
    if (out.size == kMaxPackets) return std::nullopt;
    auto b0 = c.u8();
    auto pt = c.u8();
    auto words = c.u16be();
    if (!b0 || !pt || !words) return std::nullopt;
    if ((*b0 >> 6) != 2 || *pt < 192 || *pt > 223) return std::nullopt;
    // RFC 3550 §6.4.1: length in 32-bit words minus one, header included.
    auto body = c.bytes(std::size_t{*words} * 4);
    if (!body) return std::nullopt;
    std::span<const std::uint8_t> b = *body;
    if ((*b0 & 0x20) != 0) {
      // RFC 3550 A.2: only the last packet of a compound may be padded.
      if (!c.empty() || b.empty()) return std::nullopt;
      std::size_t pad = b.back();
      if (pad == 0 || pad > b.size()) return std::nullopt;
      b = b.first(b.size() - pad);
    }
    RtcpPacketView p;
    p.type = *pt;
    p.count = static_cast<std::uint8_t>(*b0 & 0x1f);
    p.body = b;
    if (b.size() >= 4)
      p.ssrc = (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
    // RFC 3550 §6.4.1/§6.4.2: SSRC (4), sender info (20, SR only), 24 bytes per report block.
    if (p.type == kRtcpSr && b.size() < 24 + std::size_t{p.count} * 24) return std::nullopt;
    if (p.type == kRtcpRr && b.size() < 4 + std::size_t{p.count} * 24) return std::nullopt;
    // RFC 3550 §6.6: a BYE lists `count` SSRCs.
    if (p.type == kRtcpBye && b.size() < std::size_t{p.count} * 4) return std::nullopt;
    out.packets[out.size++] = p;
  }
  return out;
}

}  // namespace sgw::media
