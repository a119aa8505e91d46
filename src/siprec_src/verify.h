// --verify: checks the gateway's published recordings (docs/recording-json.md) against the
// calls siprec-src placed: the JSON whose conversation_id is the call's, its participants
// (caller and agent AoRs with those roles), the tone of each leg on that participant's
// channel (libsndfile + Goertzel), and the duration. Runs after the load, on the main thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sgw::siprec_src {

struct VerifyExpectation {
  std::string call_id;          // what the PASS/FAIL line names
  std::string conversation_id;  // matched against the JSON's conversation_id
  std::string caller_aor;
  std::string agent_aor;
  double caller_hz = 0;  // 0: leg carries a sound file; tone not checked
  double agent_hz = 0;
  std::uint32_t duration_ms = 0;     // expected recording length (as planned)
  // Measured bounds of the session (CallRecord::call_min_ms/call_max_ms); when known (>= 0)
  // the recording's length is checked against them instead of duration_ms +-200 ms, so a busy
  // machine's scheduling delays between the two processes cannot fail a correct recording.
  std::int64_t call_min_ms = -1;
  std::int64_t call_max_ms = -1;
  std::uint32_t silent_ms = 0;       // of which paused/held (no RTP)
  double setup_ms = 0;               // INVITE -> 200 OK: the recording may start this much early
  bool fragments_allowed = false;    // --reestablish: several recordings may share the id
};

struct VerifyResult {
  bool pass = false;
  std::string line;  // "PASS <call-id> ..." or "FAIL <call-id> <reason>"
};

// Scans `dir` recursively for *.json recordings (files that do not parse are skipped; they may
// be another tool's) and indexes them by conversation_id. Returns the index.
std::multimap<std::string, std::string> index_recordings(const std::string& dir);

// Checks one call against the recording JSON(s) at `paths` (all with its conversation id).
VerifyResult verify_call(const VerifyExpectation& e, const std::vector<std::string>& paths);

// Checks a parsed recording JSON (and its audio next to it in `dir`). Empty string = OK,
// otherwise the reason. *too_short: a fragment (check_duration false) shorter than 200 ms,
// passed without a check for sound. Exposed for tests.
std::string check_recording(const VerifyExpectation& e, const nlohmann::json& doc,
                            const std::string& dir, bool check_duration, std::string* details,
                            bool* too_short = nullptr);

// index_recordings over every folder of `dirs` (the gateways behind one load balancer), merged.
std::multimap<std::string, std::string> index_recordings(const std::vector<std::string>& dirs);

// Waits up to timeout_s for a recording of every expectation in any of `dirs`, then checks each
// (a re-established call's fragments may be on different gateways).
std::vector<VerifyResult> verify_all(const std::vector<std::string>& dirs,
                                     const std::vector<VerifyExpectation>& expectations,
                                     double timeout_s);

}  // namespace sgw::siprec_src
