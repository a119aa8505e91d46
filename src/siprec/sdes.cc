#include "siprec/sdes.h"

#include <string.h>  // explicit_bzero

#include <string>

#include "common/base64.h"
#include "common/strings.h"
#include "siprec/parse_util.h"

namespace sgw::siprec {

namespace {

using common::make_error;
using detail::parse_uint;

// RFC 3711 §9.2: an SRTP master key protects at most 2^48 packets.
constexpr std::uint64_t kMaxLifetime = std::uint64_t{1} << 48;

common::Status check_lifetime(std::string_view v) {
  std::optional<std::uint64_t> n;
  if (common::istarts_with(v, "2^")) {
    auto exp = parse_uint<std::uint32_t>(v.substr(2), 48);
    if (exp) n = std::uint64_t{1} << *exp;
  } else {
    n = parse_uint<std::uint64_t>(v, kMaxLifetime);
  }
  if (!n || *n == 0)
    return make_error("sdes.lifetime", "bad key lifetime '" + detail::printable(v, 24) +
                                           "' (expected 2^N or a number, at most 2^48)");
  return common::Ok{};
}

// "<value>:<length>": the MKI value in `length` bytes, network order (RFC 4568 §6.1).
common::Result<std::vector<std::uint8_t>> parse_mki(std::string_view v) {
  auto colon = v.find(':');
  auto bad = [&](std::string_view why) {
    return make_error("sdes.mki", "bad MKI '" + detail::printable(v, 24) + "': " + std::string(why));
  };
  if (colon == std::string_view::npos) return bad("expected <value>:<length>");
  auto length = parse_uint<std::uint32_t>(v.substr(colon + 1), kMaxSdesMkiBytes);
  if (!length || *length == 0) return bad("length must be 1..128");
  auto value = parse_uint<std::uint64_t>(v.substr(0, colon));
  if (!value) return bad("value is not a number");
  if (*length < 8 && (*value >> (8 * *length)) != 0) return bad("value does not fit its length");
  std::vector<std::uint8_t> out(*length);
  for (std::size_t i = 0; i < out.size() && i < 8; ++i)
    out[out.size() - 1 - i] = static_cast<std::uint8_t>(*value >> (8 * i));
  return out;
}

common::Status apply_session_param(std::string_view p, media::SrtpKeys& keys) {
  auto eq = p.find('=');
  std::string_view name = p.substr(0, eq);
  std::string_view value = eq == std::string_view::npos ? std::string_view{} : p.substr(eq + 1);
  if (common::iequals(name, "WSH") && eq != std::string_view::npos) {
    // RFC 4568 §6.3.7: a hint; libsrtp takes 64..32767.
    auto w = parse_uint<std::uint32_t>(value, 0x7fff);
    if (!w || *w < 64)
      return make_error("sdes.session_param", "WSH must be 64..32767, got '" + detail::printable(value, 12) + "'");
    keys.window_size = *w;
    return common::Ok{};
  }
  if (common::iequals(name, "KDR") && eq != std::string_view::npos) {
    auto kdr = parse_uint<std::uint32_t>(value, 24);
    if (!kdr) return make_error("sdes.session_param", "bad KDR '" + detail::printable(value, 12) + "'");
    if (*kdr == 0) return common::Ok{};
    return make_error("sdes.session_param", "KDR " + std::to_string(*kdr) + " (key derivation rate) not supported");
  }
  if (common::iequals(name, "UNENCRYPTED_SRTCP") && eq == std::string_view::npos) return common::Ok{};
  return make_error("sdes.session_param", "session parameter '" + detail::printable(name, 24) + "' not supported");
}

}  // namespace

common::Result<media::SrtpKeys> parse_sdes_keys(const Crypto& crypto) {
  auto suite = media::srtp_suite_from_name(crypto.suite);
  if (!suite)
    return make_error("sdes.unknown_suite", "crypto suite '" + detail::printable(crypto.suite, 32) + "' not supported");
  media::SrtpKeys keys;
  keys.suite = *suite;
  const std::size_t want = media::srtp_key_salt_bytes(*suite);
  const std::string where = "crypto tag " + std::to_string(crypto.tag) + ": ";
  for (auto param : common::split(crypto.key_params, ';')) {
    if (keys.keys.size() == kMaxSdesKeys)
      return make_error("sdes.too_many_keys", where + "more than " + std::to_string(kMaxSdesKeys) + " keys");
    // RFC 4568 §9.1: "inline" is the only key method defined.
    if (!param.starts_with("inline:"))
      return make_error("sdes.key_method", where + "key method is not inline: (RFC 4568 §6.1)");
    auto fields = common::split(param.substr(7), '|');
    if (fields.empty() || fields.size() > 3)
      return make_error("sdes.key_method", where + "expected inline:<key>[|lifetime][|MKI:length]");
    auto decoded = common::base64_decode(fields[0]);
    if (!decoded) return make_error("sdes.base64", where + "key is not valid base64");
    media::SrtpMasterKey mk;
    mk.key_salt = std::move(*decoded);
    if (mk.key_salt.size() != want) {
      std::size_t got = mk.key_salt.size();
      if (got > 0) explicit_bzero(mk.key_salt.data(), got);
      return make_error("sdes.key_length", where + "key and salt of " + std::to_string(got) + " bytes, " +
                                               std::string(media::srtp_suite_name(*suite)) + " needs " +
                                               std::to_string(want));
    }
    // [|lifetime][|MKI:length]: the MKI is the field with a ':'.
    for (std::size_t i = 1; i < fields.size(); ++i) {
      if (fields[i].find(':') != std::string_view::npos) {
        if (i + 1 != fields.size())
          return make_error("sdes.mki", where + "the MKI must be the last field of a key");
        auto mki = parse_mki(fields[i]);
        if (!mki) return make_error(mki.error().code, where + mki.error().message);
        mk.mki = std::move(*mki);
      } else {
        if (i != 1) return make_error("sdes.lifetime", where + "the lifetime must come before the MKI");
        if (auto st = check_lifetime(fields[i]); !st) return make_error(st.error().code, where + st.error().message);
      }
    }
    if (!keys.keys.empty() && keys.keys.front().mki.size() != mk.mki.size())
      return make_error("sdes.mki", where + "every key needs an MKI of the same length");
    for (const auto& other : keys.keys)
      if (!mk.mki.empty() && other.mki == mk.mki) return make_error("sdes.mki", where + "two keys with the same MKI");
    keys.keys.push_back(std::move(mk));
  }
  if (keys.keys.size() > 1 && keys.keys.front().mki.empty())
    return make_error("sdes.mki", where + "several keys need MKIs (RFC 4568 §6.1)");
  for (auto p : detail::split_ws(crypto.session_params))
    if (auto st = apply_session_param(p, keys); !st) return make_error(st.error().code, where + st.error().message);
  return keys;
}

}  // namespace sgw::siprec
