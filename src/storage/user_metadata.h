// The S3 user metadata (x-amz-meta-*) of a recording's objects, built from its
// recording JSON under a documented size rule (docs/storage.md, "User
// metadata"): S3 limits user metadata to 2 KB (the sum of the UTF-8 bytes of
// every name and value); the full metadata is always in the JSON object.
// Thread: pure functions.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace sgw::storage {

inline constexpr std::size_t kUserMetadataLimit = 2048;   // S3: names + values, bytes
inline constexpr std::size_t kUserMetadataValueMax = 128;  // every value but participants

// Every object also carries the hex SHA-256 of its own bytes under this name
// (set by the S3 sink per object; user_metadata() leaves room for it): with the
// recording id it says "this version is ours and holds these bytes" without
// trusting the ETag, which is not an MD5 under SSE-KMS.
inline constexpr std::string_view kObjectSha256Name = "sha256";
inline constexpr std::size_t kObjectSha256Bytes = 6 + 64;  // name + hex value

// Header-safe text: bytes outside 0x21-0x7E, and space and '%', become %XX (reversible).
std::string metadata_escape(std::string_view value);

// Names without "x-amz-meta-": recording-id, conversation-id, siprec-session-id,
// call-id, participants, start, end, duration-ms, codec, gateway-node,
// gateway-region. Values escaped; each cut to kUserMetadataValueMax bytes
// (never inside an escape); participants = the distinct participant AoRs in
// document order joined with ',', and when they do not all fit in what is left
// of the 2 KB (less kObjectSha256Bytes), as many whole AoRs as fit followed
// by ",+N" (N left out).
// `reserve`: bytes left free for metadata the caller adds (residency).
std::map<std::string, std::string> user_metadata(const nlohmann::json& recording, std::size_t reserve = 0);

// Sum of the bytes of names and values (S3's measure).
std::size_t user_metadata_size(const std::map<std::string, std::string>& metadata);

}  // namespace sgw::storage
