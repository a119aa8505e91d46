// Per-component loggers (spdlog). Lines about a call carry its Call-ID or recording id.
//
// Every logger writes through one sink to stderr (journald takes it from
// there), as text or as one JSON object per line (docs/operations.md). The
// sink masks personal data when asked (log.redact) and rate-limits a repeated
// warning/error: identical lines within kRepeatWindow are counted, not
// printed, and one "repeated N times" line follows.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

namespace sgw::common {

struct LogOptions {
  std::string level = "info";   // "trace" .. "off"
  std::string format = "text";  // "text" | "json"
  bool redact = false;          // mask AoRs, display names, phone numbers
  std::string node;             // added to JSON lines about a call
  std::string region;
};

// A warning/error line identical to one printed less than this long ago is counted, not printed.
inline constexpr std::chrono::milliseconds kRepeatWindow{10000};

// Sets the global level ("trace", "debug", "info", "warn", "error", "off").
// Returns false for an unknown level name. Call once at start-up.
bool init_logging(std::string_view level);
// Sets level, format and redaction (false for an unknown level or format).
// May be called again at run time (SIGHUP reload); any thread.
bool init_logging(const LogOptions& options);

// Returns the logger for a component ("sip", "siprec", "media", ...), creating it once.
std::shared_ptr<spdlog::logger> logger(const std::string& component);

bool valid_log_level(std::string_view level);
bool valid_log_format(std::string_view format);

// What a line about a call is tied to in JSON output. A line whose text holds
// a registered recording id or Call-ID gets call_id, recording_id,
// conversation_id, node and region fields. The session layer registers a
// session when it knows its ids (again when the conversation id is known);
// the last kLoggedCalls calls are kept (so the finaliser's lines after the
// BYE still match). Any thread.
inline constexpr std::size_t kLoggedCalls = 8192;
void log_register_call(const std::string& recording_id, const std::string& call_id,
                       const std::string& conversation_id);

// Masks personal data in TEXT: the user part of sip:/sips:/tel: URIs, quoted
// display names, and phone numbers (7+ digits, an optional leading '+', with
// no letters next to them). UUIDs, IP addresses and ports are left alone.
std::string redact_personal_data(std::string_view text);

// Prints the pending "repeated N times" lines (at exit; tests).
void flush_logging();

}  // namespace sgw::common
