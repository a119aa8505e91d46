#include "media/srtp_session.h"

#include <srtp2/srtp.h>
#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>

#include "common/base64.h"
#include "common/strings.h"

namespace sgw::media {

static_assert(kSrtpMaxTrailer >= SRTP_MAX_TRAILER_LEN);

namespace {

struct SuiteInfo {
  SrtpSuite suite;
  std::string_view name;
  std::size_t key_salt;
  void (*rtp)(srtp_crypto_policy_t*);
  void (*rtcp)(srtp_crypto_policy_t*);  // RFC 4568 §6.2.2: SRTCP keeps the 80-bit tag
};

constexpr std::array<SuiteInfo, 6> kSuites{{
    {SrtpSuite::kAesCm128HmacSha1_80, "AES_CM_128_HMAC_SHA1_80", SRTP_AES_ICM_128_KEY_LEN_WSALT,
     srtp_crypto_policy_set_rtp_default, srtp_crypto_policy_set_rtcp_default},
    {SrtpSuite::kAesCm128HmacSha1_32, "AES_CM_128_HMAC_SHA1_32", SRTP_AES_ICM_128_KEY_LEN_WSALT,
     srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32, srtp_crypto_policy_set_rtcp_default},
    {SrtpSuite::kAes256CmHmacSha1_80, "AES_256_CM_HMAC_SHA1_80", SRTP_AES_ICM_256_KEY_LEN_WSALT,
     srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80, srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80},
    {SrtpSuite::kAes256CmHmacSha1_32, "AES_256_CM_HMAC_SHA1_32", SRTP_AES_ICM_256_KEY_LEN_WSALT,
     srtp_crypto_policy_set_aes_cm_256_hmac_sha1_32, srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80},
    // RFC 7714 §14.2: 16-octet tag for both SRTP and SRTCP.
    {SrtpSuite::kAeadAes128Gcm, "AEAD_AES_128_GCM", SRTP_AES_GCM_128_KEY_LEN_WSALT,
     srtp_crypto_policy_set_aes_gcm_128_16_auth, srtp_crypto_policy_set_aes_gcm_128_16_auth},
    {SrtpSuite::kAeadAes256Gcm, "AEAD_AES_256_GCM", SRTP_AES_GCM_256_KEY_LEN_WSALT,
     srtp_crypto_policy_set_aes_gcm_256_16_auth, srtp_crypto_policy_set_aes_gcm_256_16_auth},
}};

constexpr std::array<SrtpSuite, 6> kSuiteList{
    SrtpSuite::kAesCm128HmacSha1_80, SrtpSuite::kAesCm128HmacSha1_32, SrtpSuite::kAes256CmHmacSha1_80,
    SrtpSuite::kAes256CmHmacSha1_32, SrtpSuite::kAeadAes128Gcm,       SrtpSuite::kAeadAes256Gcm};

const SuiteInfo& info(SrtpSuite s) {
  for (const auto& i : kSuites)
    if (i.suite == s) return i;
  return kSuites[0];  // unreachable: every enumerator is in the table
}

constexpr std::uint32_t kDefaultWindow = 1024;  // 20 s of 20 ms packets: reordering never looks like replay
constexpr std::uint32_t kMaxWindow = 0x7fff;    // libsrtp's limit

bool init_libsrtp() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] { ok = srtp_init() == srtp_err_status_ok; });
  return ok;
}

SrtpStatus status_of(srtp_err_status_t e) {
  switch (e) {
    case srtp_err_status_ok: return SrtpStatus::kOk;
    case srtp_err_status_auth_fail: return SrtpStatus::kAuthFailed;
    // AEAD: the cipher reports a failed tag check as a cipher failure.
    case srtp_err_status_cipher_fail: return SrtpStatus::kAuthFailed;
    case srtp_err_status_replay_fail:
    case srtp_err_status_replay_old: return SrtpStatus::kReplay;
    default: return SrtpStatus::kInvalid;
  }
}

void wipe(std::vector<std::uint8_t>& v) {
  if (!v.empty()) explicit_bzero(v.data(), v.size());
}

}  // namespace

std::optional<SrtpSuite> srtp_suite_from_name(std::string_view name) {
  for (const auto& i : kSuites)
    if (common::iequals(i.name, name)) return i.suite;
  return std::nullopt;
}

std::string_view srtp_suite_name(SrtpSuite suite) { return info(suite).name; }
std::size_t srtp_key_salt_bytes(SrtpSuite suite) { return info(suite).key_salt; }
std::span<const SrtpSuite> srtp_suites() { return kSuiteList; }

SrtpKeys::~SrtpKeys() {
  for (auto& k : keys) wipe(k.key_salt);
}

bool SrtpKeys::operator==(const SrtpKeys& o) const {
  if (suite != o.suite || window_size != o.window_size || keys.size() != o.keys.size()) return false;
  for (std::size_t i = 0; i < keys.size(); ++i)
    if (keys[i].key_salt != o.keys[i].key_salt || keys[i].mki != o.keys[i].mki) return false;
  return true;
}

common::Result<SrtpKeys> random_srtp_keys(SrtpSuite suite) {
  SrtpKeys k;
  k.suite = suite;
  SrtpMasterKey m;
  m.key_salt.resize(srtp_key_salt_bytes(suite));
  std::size_t got = 0;
  while (got < m.key_salt.size()) {
    ssize_t n = getrandom(m.key_salt.data() + got, m.key_salt.size() - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return common::make_error("srtp.random", std::string("getrandom: ") + std::strerror(errno));
    }
    got += static_cast<std::size_t>(n);
  }
  k.keys.push_back(std::move(m));
  return k;
}

std::string sdes_key_params(const SrtpKeys& keys) {
  if (keys.keys.empty()) return {};
  const SrtpMasterKey& m = keys.keys.front();
  std::string out = "inline:" + common::base64_encode(m.key_salt);
  if (!m.mki.empty()) {
    std::uint64_t v = 0;
    for (auto b : m.mki) v = (v << 8) | b;  // callers keep MKIs short (<= 8 bytes) in what they send
    out += "|" + std::to_string(v) + ":" + std::to_string(m.mki.size());
  }
  return out;
}

common::Status srtp_library_init() {
  if (!init_libsrtp()) return common::make_error("srtp.init", "libsrtp2: srtp_init failed (cipher self-test)");
  return common::Ok{};
}

std::string_view to_string(SrtpStatus s) {
  switch (s) {
    case SrtpStatus::kOk: return "ok";
    case SrtpStatus::kAuthFailed: return "auth_failed";
    case SrtpStatus::kReplay: return "replay";
    case SrtpStatus::kInvalid: return "invalid";
  }
  return "invalid";
}

common::Result<std::unique_ptr<SrtpSession>> SrtpSession::create(const SrtpKeys& keys, Direction dir) {
  const SuiteInfo& si = info(keys.suite);
  if (keys.keys.empty() || keys.keys.size() > SRTP_MAX_NUM_MASTER_KEYS)
    return common::make_error("srtp.keys", "between 1 and 16 master keys needed");
  const bool mki = !keys.keys.front().mki.empty();
  for (const auto& k : keys.keys) {
    if (k.key_salt.size() != si.key_salt)
      return common::make_error("srtp.keys", "key of " + std::to_string(k.key_salt.size()) + " bytes, " +
                                                 std::string(si.name) + " needs " + std::to_string(si.key_salt));
    if (k.mki.size() != keys.keys.front().mki.size() || k.mki.size() > SRTP_MAX_MKI_LEN)
      return common::make_error("srtp.keys", "MKIs of different lengths");
  }
  if (keys.keys.size() > 1 && !mki) return common::make_error("srtp.keys", "several keys without MKIs");
  if (!init_libsrtp()) return common::make_error("srtp.create", "srtp_init failed");

  srtp_policy_t policy;
  std::memset(&policy, 0, sizeof policy);
  si.rtp(&policy.rtp);
  si.rtcp(&policy.rtcp);
  policy.ssrc.type = dir == Direction::kReceive ? ssrc_any_inbound : ssrc_any_outbound;
  std::uint32_t window = keys.window_size == 0 ? kDefaultWindow : keys.window_size;
  policy.window_size = std::clamp<std::uint32_t>(window, 64, kMaxWindow);
  policy.allow_repeat_tx = 0;
  // libsrtp copies the key material into the session: these buffers only live for the call.
  std::vector<std::vector<std::uint8_t>> key_copies;
  std::vector<std::vector<std::uint8_t>> mki_copies;
  std::vector<srtp_master_key_t> masters(keys.keys.size());
  std::vector<srtp_master_key_t*> master_ptrs(keys.keys.size());
  for (const auto& k : keys.keys) {
    key_copies.push_back(k.key_salt);
    mki_copies.push_back(k.mki);
  }
  if (mki) {
    for (std::size_t i = 0; i < keys.keys.size(); ++i) {
      masters[i].key = key_copies[i].data();
      masters[i].mki_id = mki_copies[i].data();
      masters[i].mki_size = static_cast<unsigned>(mki_copies[i].size());
      master_ptrs[i] = &masters[i];
    }
    policy.keys = master_ptrs.data();
    policy.num_master_keys = keys.keys.size();
  } else {
    policy.key = key_copies.front().data();
  }
  srtp_t ctx = nullptr;
  srtp_err_status_t e = srtp_create(&ctx, &policy);
  for (auto& k : key_copies) wipe(k);
  if (e != srtp_err_status_ok)
    return common::make_error("srtp.create", "libsrtp refused the " + std::string(si.name) +
                                                 " context (error " + std::to_string(static_cast<int>(e)) + ")");
  std::unique_ptr<SrtpSession> s(new SrtpSession());
  s->ctx_ = ctx;
  s->suite_ = keys.suite;
  s->mki_ = mki;
  return s;
}

SrtpSession::~SrtpSession() {
  if (ctx_ != nullptr) srtp_dealloc(static_cast<srtp_t>(ctx_));
}

SrtpStatus SrtpSession::unprotect_rtp(std::uint8_t* packet, std::size_t* len) {
  if (*len > INT_MAX) return SrtpStatus::kInvalid;
  int n = static_cast<int>(*len);
  srtp_err_status_t e = srtp_unprotect_mki(static_cast<srtp_t>(ctx_), packet, &n, mki_ ? 1 : 0);
  if (e == srtp_err_status_ok) *len = static_cast<std::size_t>(n);
  return status_of(e);
}

SrtpStatus SrtpSession::unprotect_rtcp(std::uint8_t* packet, std::size_t* len) {
  if (*len > INT_MAX) return SrtpStatus::kInvalid;
  int n = static_cast<int>(*len);
  srtp_err_status_t e = srtp_unprotect_rtcp_mki(static_cast<srtp_t>(ctx_), packet, &n, mki_ ? 1 : 0);
  if (e == srtp_err_status_ok) *len = static_cast<std::size_t>(n);
  return status_of(e);
}

SrtpStatus SrtpSession::protect_rtp(std::uint8_t* packet, std::size_t* len, std::size_t capacity) {
  if (*len > INT_MAX - kSrtpMaxTrailer || capacity < *len + kSrtpMaxTrailer) return SrtpStatus::kInvalid;
  int n = static_cast<int>(*len);
  srtp_err_status_t e = srtp_protect_mki(static_cast<srtp_t>(ctx_), packet, &n, mki_ ? 1 : 0, 0);
  if (e == srtp_err_status_ok) *len = static_cast<std::size_t>(n);
  return status_of(e);
}

}  // namespace sgw::media
