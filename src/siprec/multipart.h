// multipart/mixed bodies (RFC 2046 §5.1) and the SIPREC body split (RFC 7866 §9.1): an INVITE to
// an SRS carries SDP and rs-metadata XML (RFC 7865) as parts of one multipart/mixed body; a re-INVITE
// or UPDATE may carry either alone.
//
// Hand-written (not sofia's msg_multipart_parse) so sofia stays inside sip/ and so we can tolerate
// real SBC output; see docs/sdp.md. Message path: never throws, never asserts on input.
// Thread: any. Results own their strings.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace sgw::siprec {

// A Content-Type value split into its parts, RFC 2045 §5.1.
struct MediaType {
  std::string type;     // lower-case, e.g. "multipart"
  std::string subtype;  // lower-case, e.g. "mixed"
  std::vector<std::pair<std::string, std::string>> params;  // name lower-case, value unquoted

  std::string essence() const { return type + "/" + subtype; }  // "multipart/mixed"
  // The value of parameter `name` (case-insensitive), or nullptr. Valid while *this lives.
  const std::string* param(std::string_view name) const;
};

// Parses "type/subtype *(; name = value)". Parameter values may be tokens or quoted strings (with
// backslash escapes); whitespace around ';' and '=' is allowed; empty parameters are skipped.
// Error code: "media_type.malformed" (no "type/subtype").
common::Result<MediaType> parse_media_type(std::string_view value);

struct BodyPart {
  // All part headers in order: name as received, value with folding removed and trimmed.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string content_type;               // Content-Type value; "text/plain" if absent (§5.1)
  std::string media_type;                 // its lower-case "type/subtype", no parameters
  std::string content_disposition;        // "" if absent
  std::string content_id;                 // "" if absent
  std::string content_transfer_encoding;  // "" if absent
  std::optional<std::size_t> content_length;  // informational only; never used to delimit
  std::string body;                       // exact octets between the header block and delimiter

  // First header with this name (case-insensitive), or nullptr. Valid while *this lives.
  const std::string* header(std::string_view name) const;
};

inline constexpr std::size_t kMaxMultipartParts = 16;
inline constexpr std::size_t kMaxMultipartBytes = 1024 * 1024;

// Splits a multipart body. `content_type_header_value` is the message's Content-Type value and
// must be multipart/* with a boundary parameter.
// Tolerates CRLF or bare LF, a preamble and an epilogue, transport padding after boundary lines,
// and a missing close delimiter (accepted with a warning when the last part's header block is
// complete). Warnings, if any, are appended to *warnings when it is not null.
// Error codes: "multipart.not_multipart", "multipart.no_boundary" (missing, empty or > 200 chars),
// "multipart.too_large", "multipart.no_parts" (no delimiter line), "multipart.too_many_parts"
// (> kMaxMultipartParts), "multipart.unterminated" (no close delimiter and the last part is cut
// inside its headers).
common::Result<std::vector<BodyPart>> parse_multipart(std::string_view content_type_header_value,
                                                      std::string_view body,
                                                      std::vector<std::string>* warnings = nullptr);

// The recording-relevant content of an INVITE/re-INVITE/UPDATE body.
struct RecordingBody {
  std::optional<std::string> sdp;          // application/sdp
  std::vector<std::string> metadata_docs;  // application/rs-metadata+xml or application/rs-metadata
  std::vector<std::string> warnings;       // ignored parts, tolerated defects
};

// Accepts application/sdp alone, rs-metadata alone (re-INVITE/UPDATE, RFC 7866 §6.2), or
// multipart/mixed holding those in any order; other part types are ignored with a warning. Types
// compare case-insensitively, ignoring parameters. An empty body with an empty Content-Type gives
// an empty RecordingBody.
// Error codes: "body.unsupported_type" (any other top-level type, or unparsable Content-Type),
// "body.multiple_sdp", and the "multipart.*" codes of parse_multipart.
common::Result<RecordingBody> split_recording_body(std::string_view content_type,
                                                   std::string_view body);

}  // namespace sgw::siprec
