// Verdicts: what the recorder's answers say about a call (docs/siprec-src.md, "Verdicts").
// siprec-src is how users and our tests judge a recorder, so anything short of proof that the
// recording session ended normally is a failure. Pure; any thread.
#pragma once

#include <cstdint>
#include <string>

namespace sgw::siprec_src {

// The final answer to the BYE that ends a call. status: the SIP status; local: made by our own
// stack (no answer within the transaction timeout, a transport error). Returns "" when the
// recorder ended the session (2xx); otherwise the failure reason: a 481 means the recorder had
// lost the call, any other answer or none means it cannot be known to have ended the recording.
std::string bye_failure(int status, bool local);

// The key a failed call is counted under in the summary: its SIP code when it has one, else
// the reason's first words up to a ':' ("gateway lost", "wall-clock limit reached").
std::string failure_key(int code, const std::string& reason);

}  // namespace sgw::siprec_src
