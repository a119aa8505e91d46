// Mid-call actions of siprec-src, given as a timeline on the command line:
//   --timeline "pause@2s,resume@4s,metadata-update@5s,transfer@6s,ssrc-change@7s,hold@8s,unhold@9s,hold-zero@10s,resume@11s"
// Each entry is ACTION@TIME; TIME is seconds ("2", "2.5s") or milliseconds ("1500ms") after the
// call was answered. See docs/siprec-src.md. Pure functions, any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sgw::siprec_src {

enum class ActionKind {
  kPause,           // re-INVITE with every stream a=inactive; RTP stops (RFC 7866 §8.1.3)
  kResume,          // re-INVITE back to a=sendonly; RTP resumes on its 2xx
  kMetadataUpdate,  // re-INVITE with SDP + partial metadata: a supervisor joins
  kUpdate,          // UPDATE with partial metadata only (no SDP): a supervisor joins
  kTransfer,        // re-INVITE with partial metadata: the agent leaves, a new agent takes stream 2
  kSsrcChange,      // both legs switch to a new SSRC (new random seq and timestamp)
  kHoldZero,        // re-INVITE with c=0.0.0.0 and no direction attribute (RFC 2543 hold); RTP stops; `resume` ends it
  kHold,            // the recorded call is on hold: RTP stops, no signalling
  kUnhold,          // RTP resumes
  kBye,             // ends the call before --duration
  kRekey,           // --srtp: re-INVITE with new keys; RTP switches to them on its 2xx (RFC 4568 §7.1.4)
  kTamper,          // --srtp: one forged copy of the next packet (a flipped byte) before the real one
};

std::string_view action_name(ActionKind k);

struct TimelineAction {
  ActionKind kind;
  std::uint32_t at_ms = 0;  // after the 200 OK of the initial INVITE
};

// Parses a timeline. Entries are returned sorted by time (stable for equal times). Errors
// (code "timeline.syntax") name the offending entry; an entry at or after `duration_ms` is an
// error too ("timeline.range"), since the call has ended by then.
common::Result<std::vector<TimelineAction>> parse_timeline(std::string_view text,
                                                           std::uint32_t duration_ms);

// "2s", "2.5", "1500ms" -> milliseconds; nullopt-like error on anything else.
common::Result<std::uint32_t> parse_time_ms(std::string_view text);

}  // namespace sgw::siprec_src
