#include "siprec/admission.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace sgw::siprec {

std::string_view cap_name(Cap cap) {
  switch (cap) {
    case Cap::kAllowedSources: return "allowed_sources";
    case Cap::kInviteRate: return "invite_rate";
    case Cap::kSessionsPerSource: return "sessions_per_source";
    case Cap::kSessionsTotal: return "sessions_total";
    case Cap::kStreamsPerSession: return "streams_per_session";
    case Cap::kMetadataBytes: return "metadata_bytes";
  }
  return "?";
}

Admission::Admission(AdmissionLimits limits, common::LabelledCounter* hits)
    : limits_(std::move(limits)), hits_(hits) {}

Admission::SourceState& Admission::state(const std::string& source, Clock::time_point now) {
  auto it = sources_.find(source);
  if (it == sources_.end()) {
    if (sources_.size() >= kMaxIdleSources) forget_idle();
    SourceState s;
    s.tokens = limits_.invite_burst_per_source;
    s.refilled = now;
    it = sources_.emplace(source, s).first;
  }
  it->second.last_seen = now;
  return it->second;
}

// Sources holding sessions stay (they are bounded by sip.max_sessions); of the
// others, the least recently seen half goes. A forgotten source comes back
// with a full bucket, which it could also have had by waiting.
void Admission::forget_idle() {
  std::vector<std::pair<Clock::time_point, const std::string*>> idle;
  for (const auto& [name, s] : sources_)
    if (s.sessions == 0) idle.emplace_back(s.last_seen, &name);
  std::sort(idle.begin(), idle.end());
  std::vector<std::string> gone;
  for (std::size_t i = 0; i < idle.size() && i < kMaxIdleSources / 2; ++i) gone.push_back(*idle[i].second);
  for (const auto& name : gone) sources_.erase(name);
}

std::optional<std::uint32_t> Admission::take_invite(const std::string& source, Clock::time_point now) {
  if (limits_.invite_rate_per_source <= 0) return std::nullopt;
  SourceState& s = state(source, now);
  double elapsed = std::chrono::duration<double>(now - s.refilled).count();
  s.tokens = std::min<double>(limits_.invite_burst_per_source,
                              s.tokens + elapsed * limits_.invite_rate_per_source);
  s.refilled = now;
  if (s.tokens >= 1.0) {
    s.tokens -= 1.0;
    return std::nullopt;
  }
  double wait = (1.0 - s.tokens) / limits_.invite_rate_per_source;
  return static_cast<std::uint32_t>(std::max(1.0, std::ceil(wait)));
}

bool Admission::session_slot_free(const std::string& source) const {
  if (limits_.max_sessions_per_source == 0) return true;
  auto it = sources_.find(source);
  return it == sources_.end() || it->second.sessions < limits_.max_sessions_per_source;
}

void Admission::session_opened(const std::string& source) {
  ++state(source, Clock::now()).sessions;
}

void Admission::session_closed(const std::string& source) {
  auto it = sources_.find(source);
  if (it != sources_.end() && it->second.sessions > 0) --it->second.sessions;
}

bool Admission::hit(Cap cap, const std::string& source, Clock::time_point now) {
  if (hits_) hits_->with(std::string(cap_name(cap))).inc();
  SourceState& s = state(source, now);
  auto& logged = s.logged[static_cast<std::size_t>(cap)];
  if (logged != Clock::time_point{} && now - logged < std::chrono::minutes(1)) return false;
  logged = now;
  return true;
}

}  // namespace sgw::siprec
