#include "siprec_src/timeline.h"

#include <gtest/gtest.h>

namespace sgw::siprec_src {
namespace {

TEST(Timeline, ParsesEveryActionAndSortsByTime) {
  auto t = parse_timeline(
      "resume@4s, pause@2s,metadata-update@5s,transfer@6s,ssrc-change@7s,hold@8s,unhold@9s,"
      "update@1500ms,bye@9.5",
      10000);
  ASSERT_TRUE(t.ok()) << t.error().message;
  ASSERT_EQ(t->size(), 9u);
  EXPECT_EQ((*t)[0].kind, ActionKind::kUpdate);
  EXPECT_EQ((*t)[0].at_ms, 1500u);
  EXPECT_EQ((*t)[1].kind, ActionKind::kPause);
  EXPECT_EQ((*t)[1].at_ms, 2000u);
  EXPECT_EQ((*t)[2].kind, ActionKind::kResume);
  EXPECT_EQ((*t)[8].kind, ActionKind::kBye);
  EXPECT_EQ((*t)[8].at_ms, 9500u);
}

TEST(Timeline, HoldZeroIsItsOwnActionNotHold) {
  auto t = parse_timeline("hold-zero@1s,resume@2s,hold@2.5s", 3000);
  ASSERT_TRUE(t.ok()) << t.error().message;
  ASSERT_EQ(t->size(), 3u);
  EXPECT_EQ((*t)[0].kind, ActionKind::kHoldZero);
  EXPECT_EQ(action_name((*t)[0].kind), "hold-zero");
  EXPECT_EQ((*t)[2].kind, ActionKind::kHold);
}

TEST(Timeline, EmptyIsNoActions) {
  auto t = parse_timeline("", 1000);
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->empty());
  EXPECT_TRUE(parse_timeline(" , ,", 1000)->empty());
}

TEST(Timeline, EqualTimesKeepTheirOrder) {
  auto t = parse_timeline("hold@1s,ssrc-change@1s,unhold@1s", 2000);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)[0].kind, ActionKind::kHold);
  EXPECT_EQ((*t)[1].kind, ActionKind::kSsrcChange);
  EXPECT_EQ((*t)[2].kind, ActionKind::kUnhold);
}

TEST(Timeline, RejectsBadEntries) {
  EXPECT_EQ(parse_timeline("pause", 1000).error().code, "timeline.syntax");
  EXPECT_EQ(parse_timeline("dance@1s", 1000).error().code, "timeline.syntax");
  EXPECT_EQ(parse_timeline("pause@", 1000).error().code, "timeline.syntax");
  EXPECT_EQ(parse_timeline("pause@-1s", 1000).error().code, "timeline.syntax");
  EXPECT_EQ(parse_timeline("pause@1x", 1000).error().code, "timeline.syntax");
  EXPECT_EQ(parse_timeline("pause@2s", 2000).error().code, "timeline.range");
  EXPECT_NE(parse_timeline("pause@1s,dance@1s", 5000).error().message.find("dance"), std::string::npos);
}

TEST(Timeline, TimeUnits) {
  EXPECT_EQ(*parse_time_ms("2"), 2000u);
  EXPECT_EQ(*parse_time_ms("2.25s"), 2250u);
  EXPECT_EQ(*parse_time_ms("75ms"), 75u);
  EXPECT_FALSE(parse_time_ms("1e3").ok());
  EXPECT_FALSE(parse_time_ms("99999999s").ok());
}

TEST(Timeline, ActionNamesRoundTrip) {
  for (auto k : {ActionKind::kPause, ActionKind::kResume, ActionKind::kMetadataUpdate, ActionKind::kUpdate,
                 ActionKind::kTransfer, ActionKind::kSsrcChange, ActionKind::kHold, ActionKind::kUnhold,
                 ActionKind::kBye}) {
    auto t = parse_timeline(std::string(action_name(k)) + "@1s", 2000);
    ASSERT_TRUE(t.ok()) << action_name(k);
    EXPECT_EQ((*t)[0].kind, k);
  }
}

}  // namespace
}  // namespace sgw::siprec_src
