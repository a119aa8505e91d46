// RtpPacketView: a bounds-checked view of one RTP packet (RFC 3550 §5.1).
// It borrows the receive buffer: valid only while that buffer is (the
// worker's receive callback). parse() never reads past the datagram.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace sgw::media {

struct RtpPacketView {
  bool marker = false;
  std::uint8_t payload_type = 0;
  std::uint16_t sequence = 0;
  std::uint32_t timestamp = 0;
  std::uint32_t ssrc = 0;
  std::span<const std::uint8_t> payload;

  // nullopt for anything that is not a well-formed RTP v2 packet: too short,
  // wrong version, CSRC list / extension / padding running past the end, or
  // an RTCP packet type (RFC 5761 §4: PT 64-95 with the marker bit are RTCP).
  static std::optional<RtpPacketView> parse(std::span<const std::uint8_t> datagram);
};

}  // namespace sgw::media
