// SrtpSession over libsrtp2: protect -> unprotect round trip per suite; tampering, replays and
// a wrong key are told apart; RTCP compound parsing.
#include "media/srtp_session.h"

#include <gtest/gtest.h>

#include <array>
#include <vector>

#include "media/rtcp_packet_view.h"
#include "media/rtp_packet_view.h"

using namespace sgw::media;

namespace {

std::vector<std::uint8_t> rtp(std::uint16_t seq, std::uint8_t fill) {
  std::vector<std::uint8_t> p = {0x80, 8, static_cast<std::uint8_t>(seq >> 8), static_cast<std::uint8_t>(seq),
                                 0, 0, 0, 160, 0x12, 0x34, 0x56, 0x78};
  p.resize(12 + 160, fill);
  return p;
}

std::vector<std::uint8_t> protect(SrtpSession& tx, std::vector<std::uint8_t> p) {
  std::size_t len = p.size();
  p.resize(p.size() + kSrtpMaxTrailer);
  EXPECT_EQ(tx.protect_rtp(p.data(), &len, p.size()), SrtpStatus::kOk);
  p.resize(len);
  return p;
}

SrtpStatus unprotect(SrtpSession& rx, std::vector<std::uint8_t>& p) {
  std::size_t len = p.size();
  auto st = rx.unprotect_rtp(p.data(), &len);
  if (st == SrtpStatus::kOk) p.resize(len);
  return st;
}

}  // namespace

TEST(SrtpSession, EverySuiteRoundTripsAndRefusesForgeriesAndReplays) {
  for (SrtpSuite suite : srtp_suites()) {
    SCOPED_TRACE(std::string(srtp_suite_name(suite)));
    auto keys = random_srtp_keys(suite);
    ASSERT_TRUE(keys.ok());
    auto tx = SrtpSession::create(*keys, SrtpSession::Direction::kSend);
    auto rx = SrtpSession::create(*keys, SrtpSession::Direction::kReceive);
    ASSERT_TRUE(tx.ok() && rx.ok());
    auto plain = rtp(100, 0x55);
    auto sent = protect(**tx, plain);
    EXPECT_GT(sent.size(), plain.size());
    auto forged = sent;
    forged[20] ^= 1;
    EXPECT_EQ(unprotect(**rx, forged), SrtpStatus::kAuthFailed);
    auto copy = sent;
    ASSERT_EQ(unprotect(**rx, copy), SrtpStatus::kOk);
    EXPECT_EQ(copy, plain);
    auto view = RtpPacketView::parse(copy);
    ASSERT_TRUE(view);
    EXPECT_EQ(view->sequence, 100);
    auto again = sent;
    EXPECT_EQ(unprotect(**rx, again), SrtpStatus::kReplay);
    // Another key: an authentication failure, not a crash.
    auto other = random_srtp_keys(suite);
    auto rx2 = SrtpSession::create(*other, SrtpSession::Direction::kReceive);
    auto next = protect(**tx, rtp(101, 0x66));
    EXPECT_EQ(unprotect(**rx2, next), SrtpStatus::kAuthFailed);
    std::vector<std::uint8_t> tiny = {0x80, 8, 0};
    EXPECT_EQ(unprotect(**rx, tiny), SrtpStatus::kInvalid);
  }
}

TEST(SrtpSession, KeysOfTheWrongLengthAreRefused) {
  SrtpKeys k;
  k.suite = SrtpSuite::kAeadAes256Gcm;
  k.keys.push_back({std::vector<std::uint8_t>(30, 1), {}});
  auto s = SrtpSession::create(k, SrtpSession::Direction::kReceive);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, "srtp.keys");
}

TEST(RtcpCompound, ParsesSrSdesAndRefusesBadLengths) {
  // SR with no report blocks (28 bytes) + SDES with one CNAME chunk (12 bytes).
  std::vector<std::uint8_t> p = {0x80, 200, 0, 6, 0x12, 0x34, 0x56, 0x78};
  p.resize(28, 0);
  std::vector<std::uint8_t> sdes = {0x81, 202, 0, 2, 0x12, 0x34, 0x56, 0x78, 1, 1, 'a', 0};
  p.insert(p.end(), sdes.begin(), sdes.end());
  ASSERT_TRUE(looks_like_rtcp(p));
  auto v = RtcpCompoundView::parse(p);
  ASSERT_TRUE(v);
  ASSERT_EQ(v->size, 2u);
  EXPECT_EQ(v->packets[0].type, kRtcpSr);
  EXPECT_EQ(v->packets[0].ssrc, 0x12345678u);
  EXPECT_EQ(v->packets[1].type, kRtcpSdes);
  auto cut = p;
  cut.pop_back();
  EXPECT_FALSE(RtcpCompoundView::parse(cut));
  auto rr_short = std::vector<std::uint8_t>{0x81, 201, 0, 1, 0, 0, 0, 1};  // RC=1 but no block
  EXPECT_FALSE(RtcpCompoundView::parse(rr_short));
  EXPECT_FALSE(RtcpCompoundView::parse({}));
  EXPECT_FALSE(looks_like_rtcp(rtp(1, 0)));
}
