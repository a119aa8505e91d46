#include "media/rtp_packet_view.h"

#include "common/byte_cursor.h"

namespace sgw::media {

std::optional<RtpPacketView> RtpPacketView::parse(std::span<const std::uint8_t> datagram) {
  common::ByteCursor c(datagram);
  auto b0 = c.u8();
  auto b1 = c.u8();
  auto seq = c.u16be();
  auto ts = c.u32be();
  auto ssrc = c.u32be();
  if (!b0 || !b1 || !seq || !ts || !ssrc) return std::nullopt;
  if ((*b0 >> 6) != 2) return std::nullopt;
  // RFC 5761 §4: second byte 192..223 is an RTCP packet type on a muxed port.
  if (*b1 >= 192 && *b1 <= 223) return std::nullopt;
  bool padding = (*b0 & 0x20) != 0;
  bool extension = (*b0 & 0x10) != 0;
  unsigned csrc_count = *b0 & 0x0f;
  if (!c.skip(4u * csrc_count)) return std::nullopt;
  if (extension) {
    // RFC 3550 §5.3.1: 16-bit profile, 16-bit length in 32-bit words.
    auto profile = c.u16be();
    auto words = c.u16be();
    if (!profile || !words || !c.skip(4u * *words)) return std::nullopt;
  }
  auto rest = c.rest();
  if (padding) {
    // RFC 3550 §5.1: the last octet counts the padding, itself included.
    if (rest.empty()) return std::nullopt;
    std::size_t pad = rest.back();
    if (pad == 0 || pad > rest.size()) return std::nullopt;
    rest = rest.first(rest.size() - pad);
  }
  RtpPacketView v;
  v.marker = (*b1 & 0x80) != 0;
  v.payload_type = static_cast<std::uint8_t>(*b1 & 0x7f);
  v.sequence = *seq;
  v.timestamp = *ts;
  v.ssrc = *ssrc;
  v.payload = rest;
  return v;
}

}  // namespace sgw::media
