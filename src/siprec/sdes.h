// SDES (RFC 4568): an a=crypto line's key-params and session-params turned
// into the keys media/ decrypts with.
//
// Pure functions on the message path: never throw, never assert on input.
// Error messages never contain key material (a key is a secret: it must not
// reach a log line or a SIP Warning header). Thread: any.
#pragma once

#include "common/result.h"
#include "media/srtp_session.h"
#include "siprec/sdp.h"

namespace sgw::siprec {

// Limits for what one a=crypto line may carry.
inline constexpr std::size_t kMaxSdesKeys = 16;     // libsrtp's SRTP_MAX_NUM_MASTER_KEYS
inline constexpr std::size_t kMaxSdesMkiBytes = 128;  // RFC 4568 §6.1 (libsrtp's SRTP_MAX_MKI_LEN)

// Parses crypto.suite, crypto.key_params and crypto.session_params:
//   key-params  = key-param *(";" key-param)             RFC 4568 §9.1
//   key-param   = "inline:" base64(key||salt) ["|" lifetime] ["|" MKI ":" length]
//   lifetime    = decimal | "2^" decimal  (at most 2^48 packets, RFC 3711 §9.2)
// Session parameters: WSH=<n> sets the replay window (RFC 4568 §6.3.7);
// KDR=0 is accepted (no re-keying by derivation rate, what libsrtp does); any
// other KDR, UNENCRYPTED_SRTP, UNAUTHENTICATED_SRTP, FEC_ORDER, FEC_KEY and
// unknown parameters make the line unusable (§6.3: the answerer must not
// accept what it does not implement). UNENCRYPTED_SRTCP is accepted (we do
// not decrypt SRTCP).
// Error codes: "sdes.unknown_suite", "sdes.key_method" (not inline:),
// "sdes.base64", "sdes.key_length", "sdes.lifetime", "sdes.mki",
// "sdes.too_many_keys", "sdes.session_param".
common::Result<media::SrtpKeys> parse_sdes_keys(const Crypto& crypto);

}  // namespace sgw::siprec
