// MediaEngine admission and lifecycle: bounded worker queues refuse new
// sessions, never work for admitted ones (docs/guarantees.md); sessions are
// reserved (ports bound) before anything is written; stop() leaves nothing a
// late caller could reach.
#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "media/media_engine.h"
#include "media_test_util.h"
#include "test_port_range.h"

namespace sgw::media {
namespace {

using testing::eventually;
using testing::Metrics;
using testing::send_rtp;

struct Seen {
  std::mutex mutex;
  std::vector<std::string> events;
  std::vector<std::uint16_t> packets;
  bool finished = false;
  std::string end;
};

// A sink whose start() blocks its worker until the test opens the gate: the
// fault a real worker shows when its disk or CPU stalls.
class GatedSink final : public SessionSink {
 public:
  GatedSink(Seen* seen, std::shared_future<void> gate, std::promise<void>* entered)
      : seen_(seen), gate_(std::move(gate)), entered_(entered) {}
  void start(std::int64_t) override {
    if (entered_) entered_->set_value();
    gate_.wait();
  }
  void on_rtp(std::uint8_t, std::int64_t, const RtpPacketView& p) override {
    std::lock_guard l(seen_->mutex);
    seen_->packets.push_back(p.sequence);
  }
  void on_event(std::int64_t, std::string_view json) override {
    std::lock_guard l(seen_->mutex);
    seen_->events.emplace_back(json);
  }
  void on_metadata(std::int64_t, std::string_view) override {}
  void on_tick(std::int64_t) override {}
  void finish(std::int64_t, std::string_view end) override {
    std::lock_guard l(seen_->mutex);
    seen_->finished = true;
    seen_->end = end;
  }

 private:
  Seen* seen_;
  std::shared_future<void> gate_;
  std::promise<void>* entered_;
};

std::shared_future<void> open_gate() {
  std::promise<void> p;
  p.set_value();
  return p.get_future().share();
}

MediaOptions options(std::uint16_t base, std::uint16_t pairs, std::size_t queue_capacity) {
  MediaOptions o;
  o.address = "127.0.0.1";
  o.port_min = base;
  o.port_max = static_cast<std::uint16_t>(base + 2 * pairs - 1);
  o.workers = 1;
  o.queue_capacity = queue_capacity;
  return o;
}

TEST(MediaEngineAdmissionTest, FullQueueRefusesNewSessionsButNeverDropsWorkForAdmittedOnes) {
  Seen seen;
  Metrics m;
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::promise<void> entered;
  test::PortRangeLease ports(8);
  ASSERT_NE(ports.min(), 0) << "no free RTP port range";
  auto engine = MediaEngine::create(options(ports.min(), 4, 4), m.get(), nullptr);
  ASSERT_TRUE(engine) << engine.error().message;
  auto h = (*engine)->open_session("a", std::make_unique<GatedSink>(&seen, gate, &entered));
  ASSERT_NE(h, 0u);
  // The worker is now stuck in the sink's start(): whatever is posted waits.
  entered.get_future().wait();
  for (int i = 0; i < 4; ++i) (*engine)->post_event(h, "event " + std::to_string(i));
  // Queue at its capacity: a new session is refused (the SIP side answers 503)...
  EXPECT_EQ((*engine)->reserve_session("b"), 0u);
  EXPECT_EQ(m.refused.value(), 1u);
  // ...but the admitted session's work is still taken, beyond the capacity.
  (*engine)->post_event(h, "event 4");
  std::atomic<bool> closed{false};
  (*engine)->close_session(h, R"({"cause":"bye"})", [&] { closed = true; });
  release.set_value();
  ASSERT_TRUE(eventually([&] { return closed.load(); }));
  {
    std::lock_guard l(seen.mutex);
    ASSERT_EQ(seen.events.size(), 5u);
    EXPECT_EQ(seen.events[4], "event 4");
    EXPECT_TRUE(seen.finished);
    EXPECT_EQ(seen.end, R"({"cause":"bye"})");
  }
  // The queue drained: sessions are admitted again.
  EXPECT_NE((*engine)->reserve_session("c"), 0u);
}

TEST(MediaEngineAdmissionTest, ReservedSessionBindsPortsFirstAndLeavesNothingWhenClosedUnstarted) {
  Seen seen;
  Metrics m;
  test::PortRangeLease ports(2);
  ASSERT_NE(ports.min(), 0) << "no free RTP port range";
  std::uint16_t base = ports.min();
  auto engine = MediaEngine::create(options(base, 1, 64), m.get(), nullptr);
  ASSERT_TRUE(engine) << engine.error().message;
  auto refused = (*engine)->reserve_session("refused");
  ASSERT_NE(refused, 0u);
  auto a = (*engine)->open_stream(refused, {0, "127.0.0.1", false});
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->rtp_port, base);
  // The only pair is taken: a second call cannot get ports.
  auto other = (*engine)->reserve_session("other");
  auto none = (*engine)->open_stream(other, {0, "127.0.0.1", false});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, "media.no_ports");
  // Closing a never-started session frees its ports at once, on this thread,
  // and never calls back (there is nothing to finalise).
  bool called = false;
  (*engine)->close_session(refused, R"({"cause":"refused"})", [&] { called = true; });
  EXPECT_EQ(m.open.value(), 0);
  auto b = (*engine)->open_stream(other, {0, "127.0.0.1", false});
  ASSERT_TRUE(b) << b.error().message;
  // Early media sent before the session starts waits in the socket and is read first.
  send_rtp("127.0.0.1", b->rtp_port, 100);
  send_rtp("127.0.0.1", b->rtp_port, 101);
  std::atomic<bool> closed{false};
  (*engine)->start_session(other, std::make_unique<GatedSink>(&seen, open_gate(), nullptr),
                            media::monotonic_us());
  ASSERT_TRUE(eventually([&] {
    std::lock_guard l(seen.mutex);
    return seen.packets.size() == 2;
  }));
  (*engine)->close_session(other, "{}", [&] { closed = true; });
  ASSERT_TRUE(eventually([&] { return closed.load(); }));
  EXPECT_FALSE(called);
  std::lock_guard l(seen.mutex);
  EXPECT_EQ(seen.packets, (std::vector<std::uint16_t>{100, 101}));
}

TEST(MediaEngineAdmissionTest, StopFinishesOpenSessionsAndLateCallsReachNoWorker) {
  Seen seen;
  Metrics m;
  test::PortRangeLease ports(4);
  ASSERT_NE(ports.min(), 0) << "no free RTP port range";
  auto engine = MediaEngine::create(options(ports.min(), 2, 64), m.get(), nullptr);
  ASSERT_TRUE(engine) << engine.error().message;
  auto h = (*engine)->open_session("a", std::make_unique<GatedSink>(&seen, open_gate(), nullptr));
  auto s = (*engine)->open_stream(h, {0, "127.0.0.1", false});
  ASSERT_TRUE(s);
  (*engine)->stop();
  {
    std::lock_guard l(seen.mutex);
    EXPECT_TRUE(seen.finished);
    EXPECT_NE(seen.end.find("gateway stopped"), std::string::npos);
  }
  // What a SessionManager destroyed after the engine stopped would do: under
  // ASan a freed worker here is a report.
  (*engine)->post_event(h, "late");
  (*engine)->update_stream(h, s->id, {0, "127.0.0.1", true});
  (*engine)->close_stream(h, s->id);
  (*engine)->close_session(h, "{}", nullptr);
  EXPECT_EQ((*engine)->reserve_session("after"), 0u);
  EXPECT_EQ((*engine)->open_streams(), 0u);
}

}  // namespace
}  // namespace sgw::media
