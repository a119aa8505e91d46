// RtcpCompoundView: a bounds-checked view of one RTCP compound packet
// (RFC 3550 §6.1, validity checks of Appendix A.2; RFC 5506 reduced-size
// packets, whose first packet need not be SR/RR, are accepted). It borrows the
// receive buffer like RtpPacketView: valid only while that buffer is.
//
// The gateway does not act on RTCP (it records, it does not adapt); it tells
// RTCP from RTP on a muxed port (RFC 5761 §4) so RTCP is never counted as a bad
// RTP packet, and checks its structure before counting it as RTCP.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace sgw::media {

// RFC 3550 §12.1, RFC 4585 §6.1.
enum RtcpType : std::uint8_t {
  kRtcpSr = 200,
  kRtcpRr = 201,
  kRtcpSdes = 202,
  kRtcpBye = 203,
  kRtcpApp = 204,
  kRtcpRtpfb = 205,
  kRtcpPsfb = 206,
  kRtcpXr = 207,
};

struct RtcpPacketView {
  std::uint8_t type = 0;
  std::uint8_t count = 0;   // RC / SC / FMT: the low five bits of the first byte
  std::uint32_t ssrc = 0;   // first word after the header (sender SSRC; first SDES chunk); 0 if none
  std::span<const std::uint8_t> body;  // after the 4-byte header, padding removed
};

struct RtcpCompoundView {
  static constexpr std::size_t kMaxPackets = 16;
  std::array<RtcpPacketView, kMaxPackets> packets{};
  std::size_t size = 0;

  // nullopt for anything that is not a well-formed compound: version not 2, a
  // packet type outside 192..223 (RFC 5761 §4), a length running past the
  // datagram or not filling it exactly, padding anywhere but in the last packet
  // (or larger than that packet), an SR/RR shorter than its report count says,
  // or more than kMaxPackets packets.
  static std::optional<RtcpCompoundView> parse(std::span<const std::uint8_t> datagram);
};

// True if the datagram's second byte is an RTCP packet type (RFC 5761 §4:
// 192..223 once the marker bit is included), i.e. RTCP on a muxed RTP port.
bool looks_like_rtcp(std::span<const std::uint8_t> datagram);

}  // namespace sgw::media
