// CallDecision: what the call-control hook decided for one recording session
// (docs/integrations.md). The session manager writes it into the spool's
// session-start record; the finaliser reads it back, applies the overrides
// (format, channel layout, key prefix) and copies it into the recording JSON
// (`decision`); the delivery applies retention and tags. Encode and decode
// live together here so the record cannot drift between those layers.
//
// Thread: plain values; the functions are pure and callable from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace sgw::recording {

struct CallDecision {
  // "hook": the hook's answer; "on_error": the hook failed (timeout, down,
  // bad answer) and hooks.on_error decided; `error` says why.
  std::string source = "hook";
  std::string action = "record";  // record | reject
  int sip_code = 0;               // reject: 403 | 480 | 603 (on_error reject: 480)
  std::optional<std::string> format;          // recording.format values (wav, flac, ...)
  std::optional<std::string> channel_layout;  // caller-left | caller-right | multichannel | mono-files
  std::optional<std::uint32_t> retention_days;  // S3 Object Lock retention, 1..36500
  std::optional<std::string> retention_mode;    // COMPLIANCE | GOVERNANCE
  std::map<std::string, std::string> tags;      // S3 object tags (at most 10)
  std::optional<std::string> key_prefix;        // prepended to the key template's path
  nlohmann::json stream;                        // {"url": ...}: kept for live streaming (not built)
  std::string error;                            // on_error: why the hook's answer was not used
  std::int64_t elapsed_ms = 0;                  // request sent -> answer (or failure)
};

// Validates a hook's HTTP answer body (a JSON object; every field optional;
// unknown fields refused). Errors (code "hook.answer") name the field.
common::Result<CallDecision> parse_hook_answer(std::string_view body);

// The decision as it appears in the spool's start record and the recording JSON.
nlohmann::json encode_decision(const CallDecision& d);
// The inverse of encode_decision (also validates: a damaged spool record is refused).
common::Result<CallDecision> decode_decision(const nlohmann::json& j);

}  // namespace sgw::recording
