#include "siprec/admission.h"

#include <gtest/gtest.h>

namespace sgw::siprec {
namespace {

using namespace std::chrono_literals;
using Clock = Admission::Clock;

TEST(Admission, TokenBucketRefillsAtTheRateUpToTheBurst) {
  AdmissionLimits limits;
  limits.invite_rate_per_source = 2;
  limits.invite_burst_per_source = 3;
  Admission a(limits, nullptr);
  Clock::time_point t0{std::chrono::seconds(1000)};
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(a.take_invite("192.0.2.1", t0)) << i;
  auto wait = a.take_invite("192.0.2.1", t0);
  ASSERT_TRUE(wait);
  EXPECT_EQ(*wait, 1u);                              // 0.5 s to the next token, rounded up
  EXPECT_FALSE(a.take_invite("192.0.2.2", t0));     // another source has its own bucket
  EXPECT_FALSE(a.take_invite("192.0.2.1", t0 + 500ms));  // one token back
  EXPECT_TRUE(a.take_invite("192.0.2.1", t0 + 500ms));
  // An hour idle refills to the burst, not beyond.
  auto later = t0 + 1h;
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(a.take_invite("192.0.2.1", later)) << i;
  EXPECT_TRUE(a.take_invite("192.0.2.1", later));
}

TEST(Admission, RetryAfterCoversASlowRate) {
  AdmissionLimits limits;
  limits.invite_rate_per_source = 1;
  limits.invite_burst_per_source = 1;
  Admission a(limits, nullptr);
  Clock::time_point t0{std::chrono::seconds(1000)};
  EXPECT_FALSE(a.take_invite("s", t0));
  auto wait = a.take_invite("s", t0 + 100ms);
  ASSERT_TRUE(wait);
  EXPECT_EQ(*wait, 1u);
}

TEST(Admission, NoRateLimitByDefault) {
  Admission a(AdmissionLimits{}, nullptr);
  Clock::time_point t0{std::chrono::seconds(1000)};
  for (int i = 0; i < 10000; ++i) ASSERT_FALSE(a.take_invite("s", t0));
}

TEST(Admission, SessionsPerSource) {
  AdmissionLimits limits;
  limits.max_sessions_per_source = 2;
  Admission a(limits, nullptr);
  EXPECT_TRUE(a.session_slot_free("a"));
  a.session_opened("a");
  a.session_opened("a");
  EXPECT_FALSE(a.session_slot_free("a"));
  EXPECT_TRUE(a.session_slot_free("b"));
  a.session_closed("a");
  EXPECT_TRUE(a.session_slot_free("a"));
  a.session_closed("a");
  a.session_closed("a");  // more closes than opens: stays at zero
  a.session_opened("a");
  a.session_opened("a");
  EXPECT_FALSE(a.session_slot_free("a"));
}

TEST(Admission, HitsAreCountedEveryTimeAndLoggedOncePerSourceCapAndMinute) {
  common::LabelledCounter hits("cap");
  Admission a(AdmissionLimits{}, &hits);
  Clock::time_point t0{std::chrono::seconds(1000)};
  EXPECT_TRUE(a.hit(Cap::kInviteRate, "a", t0));
  EXPECT_FALSE(a.hit(Cap::kInviteRate, "a", t0 + 1s));
  EXPECT_FALSE(a.hit(Cap::kInviteRate, "a", t0 + 59s));
  EXPECT_TRUE(a.hit(Cap::kSessionsPerSource, "a", t0 + 2s));  // another cap
  EXPECT_TRUE(a.hit(Cap::kInviteRate, "b", t0 + 2s));         // another source
  EXPECT_TRUE(a.hit(Cap::kInviteRate, "a", t0 + 60s));        // a minute later
  std::map<std::string, std::uint64_t> by_cap;
  for (const auto& [cap, n] : hits.snapshot()) by_cap[cap] = n;
  EXPECT_EQ(by_cap["invite_rate"], 5u);
  EXPECT_EQ(by_cap["sessions_per_source"], 1u);
}

TEST(Admission, TheSourceTableIsBounded) {
  AdmissionLimits limits;
  limits.invite_rate_per_source = 1;
  limits.invite_burst_per_source = 1;
  limits.max_sessions_per_source = 1;
  Admission a(limits, nullptr);
  Clock::time_point t0{std::chrono::seconds(1000)};
  a.session_opened("holder");  // a source with a session is never forgotten
  for (int i = 0; i < 100000; ++i) {
    (void)a.take_invite("10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256), t0);
    ASSERT_LE(a.tracked_sources(), Admission::kMaxIdleSources + 1);
  }
  EXPECT_FALSE(a.session_slot_free("holder"));
}

TEST(Admission, CapNames) {
  EXPECT_EQ(cap_name(Cap::kAllowedSources), "allowed_sources");
  EXPECT_EQ(cap_name(Cap::kInviteRate), "invite_rate");
  EXPECT_EQ(cap_name(Cap::kSessionsPerSource), "sessions_per_source");
  EXPECT_EQ(cap_name(Cap::kSessionsTotal), "sessions_total");
  EXPECT_EQ(cap_name(Cap::kStreamsPerSession), "streams_per_session");
  EXPECT_EQ(cap_name(Cap::kMetadataBytes), "metadata_bytes");
}

}  // namespace
}  // namespace sgw::siprec
