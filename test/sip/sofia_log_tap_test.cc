#include "sip/sofia_log_tap.h"

#include <gtest/gtest.h>

#include <cstdarg>
#include <functional>
#include <vector>

namespace sgw::sip::detail {
namespace {

struct Tapped {
  std::vector<StackRefusal> reports;
  std::vector<std::function<void()>> deferred;
  SofiaLogTap tap{[this](const StackRefusal& r) { reports.push_back(r); },
                  [this](std::function<void()> fn) { deferred.push_back(std::move(fn)); }};
  Tapped() { tap.set_thread(std::this_thread::get_id()); }
  void log(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    tap.line(fmt, ap);
    va_end(ap);
  }
  void deliver(const char* host, const char* port) {
    int msg = 0;
    log("%s(%p): %smsg %p (%zu bytes) from %s/%s:%s%s%s%s%s next=%p\n", "tport_deliver",
        static_cast<void*>(this), "", static_cast<void*>(&msg), std::size_t{200}, "tcp", host, port, "",
        "", "", "", static_cast<void*>(nullptr));
  }
  void run_deferred() {
    auto d = std::move(deferred);
    deferred.clear();
    for (auto& fn : d) fn();
  }
};

// The lines of sofia-sip 1.12.11's nta.c, with their format strings.
TEST(SofiaLogTap, SanityFailureAnsweredBySofiaIsReportedOnceWithItsPeer) {
  Tapped t;
  t.deliver("192.0.2.7", "5071");
  t.log("nta: received %s %s (CSeq %u)\n", "OPTIONS", "sip:srs@x", 1u);  // not of interest
  t.log("nta: %s (%u) %s\n", "OPTIONS", 1u, "failed sanity check");
  t.log("nta: %s (%u) is %s\n", "OPTIONS", 1u, "Bad Request");
  EXPECT_TRUE(t.reports.empty());  // reported after nta is done with the message
  t.run_deferred();
  ASSERT_EQ(t.reports.size(), 1u);
  EXPECT_EQ(t.reports[0].peer, "tcp:192.0.2.7:5071");
  EXPECT_EQ(t.reports[0].method, "OPTIONS");
  EXPECT_NE(t.reports[0].problem.find("Via, From, To, Call-ID or CSeq"), std::string::npos);
  EXPECT_EQ(t.reports[0].outcome, "answered 400 Bad Request by sofia; connection shut down after the answer");
  t.run_deferred();
  EXPECT_EQ(t.reports.size(), 1u);
}

TEST(SofiaLogTap, TwoMessagesInOneLoopTurnAreTwoReportsWithTheirOwnPeers) {
  Tapped t;
  t.deliver("192.0.2.7", "5071");
  t.log("nta: %s (%u) %s\n", "ACK", 1u, "failed sanity check");
  t.deliver("192.0.2.8", "5072");  // the next message flushes the first
  t.log("nta: %s has bad %s header\n", "INVITE", "Via");
  t.run_deferred();
  ASSERT_EQ(t.reports.size(), 2u);
  EXPECT_EQ(t.reports[0].peer, "tcp:192.0.2.7:5071");
  EXPECT_EQ(t.reports[0].outcome, "dropped by sofia without an answer; connection half-closed");
  EXPECT_EQ(t.reports[1].peer, "tcp:192.0.2.8:5072");
  EXPECT_EQ(t.reports[1].method, "INVITE");
  EXPECT_EQ(t.reports[1].problem, "bad Via header");
}

TEST(SofiaLogTap, OtherLinesAndOtherThreadsReportNothing) {
  Tapped t;
  t.deliver("192.0.2.7", "5071");
  t.log("nta: %s (%u) %s\n", "INVITE", 1u, "going to a default leg");
  t.log("nta: %s (%u) is %s\n", "INVITE", 1u, "Request Entity Too Large");
  t.log("nta: %03d has bad %s header\n", 200, "Contact");  // a response
  t.tap.set_thread(std::thread::id());
  t.log("nta: %s (%u) %s\n", "INVITE", 1u, "failed sanity check");
  t.run_deferred();
  EXPECT_TRUE(t.reports.empty());
}

TEST(SofiaLogTap, PeerTextIsBoundedAndPrintable) {
  Tapped t;
  std::string host(300, 'h');
  host[3] = '\n';
  t.deliver(host.c_str(), "1");
  t.log("nta: %s (%u) %s\n", "OPT\x01IONS", 1u, "failed sanity check");
  t.run_deferred();
  ASSERT_EQ(t.reports.size(), 1u);
  EXPECT_LE(t.reports[0].peer.size(), 80u);
  EXPECT_EQ(t.reports[0].peer.find('\n'), std::string::npos);
  EXPECT_EQ(t.reports[0].method, "OPT?IONS");
}

}  // namespace
}  // namespace sgw::sip::detail
