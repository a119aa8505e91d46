// Admission: the per-source limits on who may start recording sessions and
// how fast (issue 10 item 5; docs/security.md).
//
// - allowed sources (sip::SourceAllowList): others get 403;
// - a token bucket of INVITEs per source address: 503 + Retry-After (the
//   seconds until the bucket holds a token again) when empty;
// - concurrent sessions per source and in total: 503 + Retry-After;
// - m-lines per offer (488) and metadata documents over metadata.max_bytes
//   (the call is kept) are checked by the session manager, which reports them
//   through hit() like the others.
// Every hit counts sgw_limits_hit_total{cap=...}; hit() says when to log it:
// the first time a cap is hit by a source in a minute (no log flood).
//
// The per-source table is bounded: sources with no session are forgotten
// (oldest activity first) beyond kMaxIdleSources.
//
// Thread: the SIP thread only.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/metrics.h"
#include "sip/source_policy.h"

namespace sgw::siprec {

enum class Cap : std::uint8_t {
  kAllowedSources,
  kInviteRate,
  kSessionsPerSource,
  kSessionsTotal,
  kStreamsPerSession,
  kMetadataBytes,
};
inline constexpr std::size_t kCapCount = 6;
// The metric label and config-facing name ("invite_rate", ...).
std::string_view cap_name(Cap cap);

struct AdmissionLimits {
  sip::SourceAllowList allowed_sources;     // empty: everyone
  double invite_rate_per_source = 0;        // tokens per second; 0: no rate limit
  std::uint32_t invite_burst_per_source = 100;  // bucket size
  std::uint32_t max_sessions_per_source = 0;    // 0: unlimited
  std::uint32_t max_streams_per_session = 16;   // 0: unlimited
};

class Admission {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t kMaxIdleSources = 4096;

  // hits: sgw_limits_hit_total (not owned, may be null).
  Admission(AdmissionLimits limits, common::LabelledCounter* hits);

  const AdmissionLimits& limits() const { return limits_; }
  bool allowed(std::string_view source) const { return limits_.allowed_sources.allows(source); }
  // Takes one INVITE token of source; nullopt when there was one, else the
  // whole seconds (>= 1) until there will be.
  std::optional<std::uint32_t> take_invite(const std::string& source, Clock::time_point now);
  bool session_slot_free(const std::string& source) const;
  void session_opened(const std::string& source);
  void session_closed(const std::string& source);

  // Counts a hit of cap by source; true when it should be logged (the first
  // hit of this cap by this source in the current minute).
  bool hit(Cap cap, const std::string& source, Clock::time_point now);

  std::size_t tracked_sources() const { return sources_.size(); }

 private:
  struct SourceState {
    double tokens = 0;
    Clock::time_point refilled{};
    Clock::time_point last_seen{};
    std::uint32_t sessions = 0;
    // Start of the minute a hit of each cap was last logged (epoch: never).
    std::array<Clock::time_point, kCapCount> logged{};
  };
  SourceState& state(const std::string& source, Clock::time_point now);
  void forget_idle();

  AdmissionLimits limits_;
  common::LabelledCounter* hits_;
  std::unordered_map<std::string, SourceState> sources_;
};

}  // namespace sgw::siprec
