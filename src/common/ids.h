// Identifiers and timestamps shared by the layers.
#pragma once

#include <cstdint>
#include <string>

namespace sgw::common {

// Random RFC 4122 version-4 UUID, lower-case ("0f8e...-4...-...").
std::string uuid_v4();
// A random 64-bit number (for SDP session ids and the like).
std::uint64_t random_u64();
// Current UTC time, RFC 3339 with milliseconds: "2026-11-27T21:05:03.123Z".
std::string utc_now_iso8601();

}  // namespace sgw::common

namespace sgw::common {
// A Unix time in µs as RFC 3339 UTC with milliseconds.
std::string iso8601_from_unix_us(std::int64_t unix_us);
}  // namespace sgw::common
