// Spool file format, version 1: constants, byte encoding helpers and CRC-32C.
// The byte layout is specified in docs/spool.md; change both together.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace sgw::recording {

enum class RecordType : std::uint8_t {
  kSessionStart = 1,  // time_us i64 + UTF-8 JSON
  kMetadata = 2,      // time_us i64 + raw XML
  kEvent = 3,         // time_us i64 + UTF-8 JSON
  kRtp = 4,           // binary, see kRtpFixedSize
  kSessionEnd = 5,    // time_us i64 + UTF-8 JSON
};

namespace spool {

inline constexpr std::string_view kMagic = "SGWSPOOL";
inline constexpr std::uint16_t kVersion = 1;
// The file name <id>.spool must fit NAME_MAX (255).
inline constexpr std::size_t kMaxRecordingIdSize = 249;
// magic 8 + version 2 + salt 4 + id length 2; then id, then header CRC 4.
inline constexpr std::size_t kHeaderFixedSize = 16;

inline constexpr std::array<std::uint8_t, 4> kSyncMarker = {0xF3, 0x5B, 0x0C, 0x7A};
// marker 4 + length 4 + type 1 + CRC 4.
inline constexpr std::size_t kRecordHeaderSize = 13;
inline constexpr std::size_t kMaxPayloadSize = std::size_t{1} << 20;  // 1 MiB
// stream 1 + arrival_us 8 + seq 2 + ts 4 + ssrc 4 + pt/marker 1.
inline constexpr std::size_t kRtpFixedSize = 20;
inline constexpr std::size_t kMaxRtpPayloadSize = 65535;
inline constexpr std::size_t kTimeSize = 8;  // time_us prefix of JSON/XML records

// Allowed payload length range of a type; {0, 0} for an unknown type.
struct LengthRange {
  std::size_t min = 0;
  std::size_t max = 0;
};
constexpr LengthRange payload_range(std::uint8_t type) {
  switch (type) {
    case 1:
    case 2:
    case 3:
    case 5:
      return {kTimeSize, kMaxPayloadSize};
    case 4:
      return {kRtpFixedSize, kRtpFixedSize + kMaxRtpPayloadSize};
    default:
      return {0, 0};
  }
}
constexpr bool known_type(std::uint8_t type) { return type >= 1 && type <= 5; }

// Big-endian stores into a caller-sized buffer (explicit shifts, no casts over memory).
inline void put_u16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
inline void put_u32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}
inline void put_u64(std::uint8_t* p, std::uint64_t v) {
  put_u32(p, static_cast<std::uint32_t>(v >> 32));
  put_u32(p + 4, static_cast<std::uint32_t>(v));
}
inline std::uint16_t get_u16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((std::uint16_t{p[0]} << 8) | std::uint16_t{p[1]});
}
inline std::uint32_t get_u32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}
inline std::uint64_t get_u64(const std::uint8_t* p) {
  return (std::uint64_t{get_u32(p)} << 32) | std::uint64_t{get_u32(p + 4)};
}

// CRC-32C (Castagnoli), reflected polynomial 0x82F63B78; crc32c("123456789") == 0xE3069283.
// Running CRC: start with crc32c_init(), extend, finish with crc32c_final().
// crc32c_extend is ISA-L's crc32_iscsi (spool_format.cc): the SSE4.2/PCLMUL
// or ARMv8 CRC instructions when the CPU has them, picked at run time. A
// table-driven CRC was 8 % of a media worker's time at 1000 calls.
constexpr std::uint32_t crc32c_init() { return 0xFFFFFFFFU; }
std::uint32_t crc32c_extend(std::uint32_t state, std::span<const std::uint8_t> data);
constexpr std::uint32_t crc32c_final(std::uint32_t state) { return state ^ 0xFFFFFFFFU; }
inline std::uint32_t crc32c(std::span<const std::uint8_t> data) {
  return crc32c_final(crc32c_extend(crc32c_init(), data));
}

// Record CRC: over salt (4 bytes BE), length (4 bytes BE), type, payload. See docs/spool.md "CRC".
inline std::uint32_t record_crc(std::uint32_t salt, std::uint32_t length, std::uint8_t type,
                                std::span<const std::uint8_t> payload) {
  std::uint8_t head[9];
  put_u32(head, salt);
  put_u32(head + 4, length);
  head[8] = type;
  return crc32c_final(crc32c_extend(crc32c_extend(crc32c_init(), head), payload));
}

// Recording ids become file names: 1..249 bytes of [A-Za-z0-9._-], not starting with '.'.
constexpr bool valid_recording_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxRecordingIdSize || id.front() == '.') return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace spool
}  // namespace sgw::recording
