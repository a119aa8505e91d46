// SRTP (RFC 3711) with SDES keys (RFC 4568), on top of libsrtp2.
//
// SrtpKeys is what one side of an a=crypto line carries: the suite and one or
// more master keys (key || salt, with an MKI when there are several). An
// SrtpSession is one libsrtp context built from them, for receiving (the
// gateway decrypts what the SRC sends with the SRC's keys) or sending
// (siprec-src, tests). Any SSRC is accepted (ssrc_any_inbound/outbound), so an
// SSRC change mid-call needs no new keys.
//
// Keys are secrets: nothing here logs them, error messages never contain
// them, and SrtpKeys wipes its bytes when destroyed.
//
// Thread: a session is used by one thread at a time (create it anywhere, hand
// it over, then only its owner touches it). The suite table is immutable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sgw::media {

// The SDES crypto suites we implement (RFC 4568 §6.2, RFC 6188 §7, RFC 7714 §12).
enum class SrtpSuite : std::uint8_t {
  kAesCm128HmacSha1_80,
  kAesCm128HmacSha1_32,
  kAes256CmHmacSha1_80,
  kAes256CmHmacSha1_32,
  kAeadAes128Gcm,
  kAeadAes256Gcm,
};

// Suite by its SDP name (case-insensitive), e.g. "AES_CM_128_HMAC_SHA1_80".
std::optional<SrtpSuite> srtp_suite_from_name(std::string_view name);
// The SDP name, e.g. "AEAD_AES_128_GCM".
std::string_view srtp_suite_name(SrtpSuite suite);
// Master key + master salt length in bytes: 30 (AES-CM-128), 46 (AES-256-CM),
// 28 (AEAD-AES-128-GCM), 44 (AEAD-AES-256-GCM).
std::size_t srtp_key_salt_bytes(SrtpSuite suite);
// Every suite, in the order above.
std::span<const SrtpSuite> srtp_suites();

// Bytes SRTP adds to an RTP packet at most (auth tag or AEAD tag, plus MKI).
inline constexpr std::size_t kSrtpMaxTrailer = 16 + 128;

struct SrtpMasterKey {
  std::vector<std::uint8_t> key_salt;  // master key || master salt
  std::vector<std::uint8_t> mki;       // RFC 3711 §3.1 MKI in network order; empty: none
};

struct SrtpKeys {
  SrtpSuite suite = SrtpSuite::kAesCm128HmacSha1_80;
  std::vector<SrtpMasterKey> keys;  // at least one; several only with MKIs of one length
  std::uint32_t window_size = 0;    // replay window in packets; 0: the default (1024)

  SrtpKeys() = default;
  SrtpKeys(const SrtpKeys&) = default;
  SrtpKeys& operator=(const SrtpKeys&) = default;
  ~SrtpKeys();  // wipes the key bytes
  bool operator==(const SrtpKeys& o) const;
};

// One fresh master key (no MKI) for `suite` from the kernel's CSPRNG (getrandom(2)).
// Error "srtp.random" if the kernel cannot give random bytes.
common::Result<SrtpKeys> random_srtp_keys(SrtpSuite suite);
// RFC 4568 §9.1 key-params for the first key: "inline:" base64(key || salt),
// with "|<mki>:<length>" when it has an MKI. A secret: never log it.
std::string sdes_key_params(const SrtpKeys& keys);

// Initialises libsrtp2 once (it runs its ciphers' self-tests: ~0.1-0.3 s). Start-up code calls it
// so the first SRTP call does not pay for it; SrtpSession::create calls it too. Any thread.
common::Status srtp_library_init();

enum class SrtpStatus {
  kOk,
  kAuthFailed,  // authentication (or AEAD tag) failed: forged, corrupted, or another key
  kReplay,      // already received, or older than the replay window
  kInvalid,     // not an SRTP packet libsrtp can process (too short, bad header, MKI unknown)
};
std::string_view to_string(SrtpStatus s);

class SrtpSession {
 public:
  enum class Direction { kReceive, kSend };

  // Errors: "srtp.keys" (no key, wrong length, inconsistent MKIs), "srtp.create" (libsrtp).
  static common::Result<std::unique_ptr<SrtpSession>> create(const SrtpKeys& keys, Direction dir);
  ~SrtpSession();
  SrtpSession(const SrtpSession&) = delete;
  SrtpSession& operator=(const SrtpSession&) = delete;

  SrtpSuite suite() const { return suite_; }

  // Receive: decrypts and authenticates packet[0, *len) in place; on kOk *len is
  // the plain RTP/RTCP length. On failure the buffer's content is undefined (an
  // AEAD suite decrypts before the tag check) and *len unchanged.
  SrtpStatus unprotect_rtp(std::uint8_t* packet, std::size_t* len);
  SrtpStatus unprotect_rtcp(std::uint8_t* packet, std::size_t* len);
  // Send: encrypts packet[0, *len) in place and appends the tag (and MKI);
  // `capacity` must leave kSrtpMaxTrailer bytes after *len (else kInvalid).
  SrtpStatus protect_rtp(std::uint8_t* packet, std::size_t* len, std::size_t capacity);

 private:
  SrtpSession() = default;
  void* ctx_ = nullptr;  // srtp_t (kept out of this header: libsrtp stays in srtp_session.cc)
  SrtpSuite suite_ = SrtpSuite::kAesCm128HmacSha1_80;
  bool mki_ = false;
};

}  // namespace sgw::media
