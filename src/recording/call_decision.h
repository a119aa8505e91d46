// CallDecision: what the call-control hook decided for one recording session
// (docs/integrations.md). The session manager writes it into the spool's
// session-start record; the finaliser reads it back, applies the overrides
// (format, channel layout, key prefix) and copies it into the recording JSON
// (`decision`); the delivery applies retention and tags (carried in the
// delivery entry), the streamer the per-call live-audio target. Encode and decode
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

// The hook's `stream` for one call (docs/integrations.md "Live audio"): it
// replaces stream.* of the configuration for that call. An empty url means no
// live stream for the call ("stream": null or {"url": ""}).
struct StreamOverride {
  std::string url;                             // ws:// or wss://...; empty: no stream
  std::optional<std::string> protocol;         // audiohook | plain; unset: stream.protocol
  std::optional<std::string> api_key;          // unset: stream.api_key. Never stored (encode_decision)
  std::optional<std::string> organization_id;  // unset: stream.organization_id
  bool operator==(const StreamOverride&) const = default;
};

// What the configuration says an answer may ask for, for the checks that
// depend on it (parse_hook_answer). Defaults: no limit from the configuration.
struct AnswerRules {
  // s3.tags: the hook's tags are added to them (same name: the hook's value),
  // and S3 takes at most 10 per object.
  std::map<std::string, std::string> configured_tags;
  // An S3 bucket is configured without s3.retention_mode: the bucket is not
  // known to have Object Lock, so a retention in the answer is refused (an
  // upload with lock headers to such a bucket fails for good).
  bool retention_refused = false;
};

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
  std::map<std::string, std::string> tags;      // S3 object tags (at most 10, with s3.tags)
  std::optional<std::string> key_prefix;        // prepended to the key template's path
  std::optional<StreamOverride> stream;         // unset: the configuration's stream.*
  std::string error;                            // on_error: why the hook's answer was not used
  std::int64_t elapsed_ms = 0;                  // request sent -> answer (or failure)
};

// Validates a hook's HTTP answer body (a JSON object; every field optional;
// unknown fields refused). Errors (code "hook.answer") name the field.
// Tags follow S3's rules: at most 10 (with rules.configured_tags), names 1-128
// and values 0-256 characters (UTF-8, counted in code points), no control
// characters, names not starting "aws:".
common::Result<CallDecision> parse_hook_answer(std::string_view body, const AnswerRules& rules = {});

// The decision as it appears in the spool's start record and the recording
// JSON. Secrets are left out: the stream's api_key, and the query and
// fragment of its url (they may carry a token).
nlohmann::json encode_decision(const CallDecision& d);
// The inverse of encode_decision (also validates: a damaged spool record is refused).
common::Result<CallDecision> decode_decision(const nlohmann::json& j);

}  // namespace sgw::recording
