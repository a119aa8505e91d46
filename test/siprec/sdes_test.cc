// parse_sdes_keys: RFC 4568 key-params and session-params; bad input gives a clear error (and
// never the key) instead of a crash.
#include "siprec/sdes.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

using sgw::media::SrtpSuite;
using sgw::siprec::Crypto;
using sgw::siprec::parse_sdes_keys;
using ::testing::HasSubstr;
using ::testing::Not;

namespace {

// RFC 4568 §4's example key (30 bytes: AES_CM_128 key || salt).
constexpr const char* kKey30 = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

Crypto line(std::string suite, std::string params, std::string session = "") {
  return Crypto{1, std::move(suite), std::move(params), std::move(session)};
}

std::string error_code(const Crypto& c) {
  auto r = parse_sdes_keys(c);
  return r ? "ok" : r.error().code;
}

}  // namespace

TEST(Sdes, Rfc4568ExampleWithLifetimeAndMki) {
  auto r = parse_sdes_keys(line("AES_CM_128_HMAC_SHA1_80", std::string("inline:") + kKey30 + "|2^20|1:4"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->suite, SrtpSuite::kAesCm128HmacSha1_80);
  ASSERT_EQ(r->keys.size(), 1u);
  EXPECT_EQ(r->keys[0].key_salt.size(), 30u);
  EXPECT_EQ(r->keys[0].mki, (std::vector<std::uint8_t>{0, 0, 0, 1}));
}

TEST(Sdes, EverySuiteWithItsKeyLength) {
  struct Case {
    const char* suite;
    std::size_t bytes;
  };
  for (auto c : {Case{"AES_CM_128_HMAC_SHA1_32", 30}, Case{"AES_256_CM_HMAC_SHA1_80", 46},
                 Case{"aead_aes_128_gcm", 28}, Case{"AEAD_AES_256_GCM", 44}}) {
    auto keys = sgw::media::random_srtp_keys(*sgw::media::srtp_suite_from_name(c.suite));
    ASSERT_TRUE(keys.ok());
    auto params = sgw::media::sdes_key_params(*keys);
    auto r = parse_sdes_keys(line(c.suite, params));
    ASSERT_TRUE(r.ok()) << c.suite << ": " << r.error().message;
    EXPECT_EQ(r->keys[0].key_salt.size(), c.bytes) << c.suite;
    EXPECT_TRUE(*r == *keys) << c.suite;
  }
}

TEST(Sdes, SeveralKeysNeedMkisOfOneLength) {
  std::string two = std::string("inline:") + kKey30 + "|1:1;inline:" + kKey30 + "|2:1";
  auto r = parse_sdes_keys(line("AES_CM_128_HMAC_SHA1_80", two));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->keys.size(), 2u);
  EXPECT_EQ(error_code(line("AES_CM_128_HMAC_SHA1_80", std::string("inline:") + kKey30 + ";inline:" + kKey30)),
            "sdes.mki");
  EXPECT_EQ(error_code(line("AES_CM_128_HMAC_SHA1_80",
                            std::string("inline:") + kKey30 + "|1:1;inline:" + kKey30 + "|2:2")),
            "sdes.mki");
  EXPECT_EQ(error_code(line("AES_CM_128_HMAC_SHA1_80",
                            std::string("inline:") + kKey30 + "|1:1;inline:" + kKey30 + "|1:1")),
            "sdes.mki");
}

TEST(Sdes, SessionParameters) {
  auto r = parse_sdes_keys(line("AES_CM_128_HMAC_SHA1_80", std::string("inline:") + kKey30, "WSH=256 KDR=0 UNENCRYPTED_SRTCP"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->window_size, 256u);
  for (const char* p : {"UNENCRYPTED_SRTP", "UNAUTHENTICATED_SRTP", "FEC_ORDER=FEC_SRTP", "KDR=3", "WSH=10",
                        "WSH=abc", "FOO=1", "KDR=99"})
    EXPECT_EQ(error_code(line("AES_CM_128_HMAC_SHA1_80", std::string("inline:") + kKey30, p)), "sdes.session_param")
        << p;
}

TEST(Sdes, BadInputGivesClearErrorsWithoutTheKey) {
  const std::string key = std::string("inline:") + kKey30;
  struct Case {
    Crypto c;
    const char* code;
    const char* says;
  };
  const Case cases[] = {
      {line("F8_128_HMAC_SHA1_80", key), "sdes.unknown_suite", "not supported"},
      {line("AES_CM_128_HMAC_SHA1_80", "uri:http://example.com/key"), "sdes.key_method", "inline"},
      {line("AES_CM_128_HMAC_SHA1_80", "inline:"), "sdes.key_length", "of 0 bytes"},
      {line("AES_CM_128_HMAC_SHA1_80", "inline:!!!!"), "sdes.base64", "base64"},
      {line("AES_CM_128_HMAC_SHA1_80", "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVB="), "sdes.base64", "base64"},
      {line("AES_256_CM_HMAC_SHA1_80", key), "sdes.key_length", "needs 46"},
      {line("AEAD_AES_128_GCM", key), "sdes.key_length", "needs 28"},
      {line("AES_CM_128_HMAC_SHA1_80", key + "|2^49"), "sdes.lifetime", "2^48"},
      {line("AES_CM_128_HMAC_SHA1_80", key + "|0"), "sdes.lifetime", "lifetime"},
      {line("AES_CM_128_HMAC_SHA1_80", key + "|2^x"), "sdes.lifetime", "lifetime"},
      {line("AES_CM_128_HMAC_SHA1_80", key + "|1:0"), "sdes.mki", "1..128"},
      {line("AES_CM_128_HMAC_SHA1_80", key + "|1:129"), "sdes.mki", "1..128"},
      {line("AES_CM_128_HMAC_SHA1_80", key + "|256:1"), "sdes.mki", "fit"},
      {line("AES_CM_128_HMAC_SHA1_80", key + "|x:1"), "sdes.mki", "number"},
      {line("AES_CM_128_HMAC_SHA1_80", key + "|1:4|2^20"), "sdes.mki", "last"},
      {line("AES_CM_128_HMAC_SHA1_80", key + "|2^20|2^20"), "sdes.lifetime", "before"},
      {line("AES_CM_128_HMAC_SHA1_80", key + "|a|b|c"), "sdes.key_method", "expected"},
  };
  for (const auto& c : cases) {
    auto r = parse_sdes_keys(c.c);
    ASSERT_FALSE(r.ok()) << c.c.key_params;
    EXPECT_EQ(r.error().code, c.code) << c.c.key_params << ": " << r.error().message;
    EXPECT_THAT(r.error().message, HasSubstr(c.says)) << c.c.key_params;
    EXPECT_THAT(r.error().message, Not(HasSubstr(kKey30))) << c.c.key_params;
    EXPECT_THAT(r.error().message, Not(HasSubstr("PS1uQCVe"))) << c.c.key_params;
  }
  std::string many;
  for (int i = 0; i < 17; ++i) many += (i ? ";" : "") + key + "|" + std::to_string(i) + ":1";
  EXPECT_EQ(error_code(line("AES_CM_128_HMAC_SHA1_80", many)), "sdes.too_many_keys");
}
