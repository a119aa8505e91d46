#include "media/media_engine.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "media_test_util.h"
#include "test_port_range.h"

namespace sgw::media {
namespace {

using testing::eventually;
using testing::Metrics;
using testing::send_rtp;

// What a sink saw, readable from the test thread.
struct Seen {
  std::mutex mutex;
  std::vector<std::pair<int, std::uint16_t>> packets;  // (stream, seq)
  std::vector<std::string> events;
  bool started = false;
  bool finished = false;
};

class CapturingSink final : public SessionSink {
 public:
  explicit CapturingSink(Seen* seen) : seen_(seen) {}
  void start(std::int64_t) override { std::lock_guard l(seen_->mutex); seen_->started = true; }
  void on_rtp(std::uint8_t stream, std::int64_t, const RtpPacketView& p) override {
    std::lock_guard l(seen_->mutex);
    seen_->packets.emplace_back(stream, p.sequence);
  }
  void on_event(std::int64_t, std::string_view json) override {
    std::lock_guard l(seen_->mutex);
    seen_->events.emplace_back(json);
  }
  void on_metadata(std::int64_t, std::string_view xml) override {
    std::lock_guard l(seen_->mutex);
    seen_->events.emplace_back(xml);
  }
  void on_tick(std::int64_t) override {}
  void finish(std::int64_t, std::string_view end) override {
    std::lock_guard l(seen_->mutex);
    seen_->events.emplace_back(end);
    seen_->finished = true;
  }

 private:
  Seen* seen_;
};

TEST(MediaEngineTest, DeliversPacketsFromTheFirstOneInOrderAndCountsLoss) {
  // Declared before the engine: sinks are finished when the engine stops.
  Seen seen;
  Metrics m;
  test::PortRangeLease ports(101);
  ASSERT_NE(ports.min(), 0) << "no free RTP port range";
  auto engine = MediaEngine::create({"127.0.0.1", ports.min(), ports.max(), 2, 60000}, m.get(), nullptr);
  ASSERT_TRUE(engine) << engine.error().message;
  auto h = (*engine)->open_session("t", std::make_unique<CapturingSink>(&seen));
  auto s = (*engine)->open_stream(h, {1, "127.0.0.1", false});
  ASSERT_TRUE(s);
  EXPECT_EQ(s->rtp_port % 2, 0);
  // Sent right after the port is bound, possibly before the worker polls it
  // (early media): nothing may be lost.
  for (std::uint16_t seq : {65534, 65535, 0, 2, 3}) send_rtp("127.0.0.1", s->rtp_port, seq);  // 1 lost
  send_rtp("127.0.0.1", s->rtp_port, 4, false);
  ASSERT_TRUE(eventually([&] { return m.received.value() >= 5 && m.invalid.value() >= 1; }));
  EXPECT_EQ(m.lost.value(), 1u);
  (*engine)->post_event(h, R"({"event":"x"})");
  std::atomic<bool> closed{false};
  (*engine)->close_session(h, R"({"cause":"bye"})", [&] { closed = true; });
  ASSERT_TRUE(eventually([&] { return closed.load(); }));
  std::lock_guard l(seen.mutex);
  EXPECT_TRUE(seen.started);
  EXPECT_TRUE(seen.finished);
  ASSERT_EQ(seen.packets.size(), 5u);
  EXPECT_EQ(seen.packets[0], (std::pair<int, std::uint16_t>(1, 65534)));
  EXPECT_EQ(seen.packets[4], (std::pair<int, std::uint16_t>(1, 3)));
  ASSERT_EQ(seen.events.size(), 2u);
  EXPECT_EQ(seen.events[1], R"({"cause":"bye"})");
  EXPECT_EQ(m.open.value(), 0);
}

TEST(MediaEngineTest, DropsPacketsFromOtherHostsAndLatchesWhenSdpHasNoAddress) {
  // Declared before the engine: sinks are finished when the engine stops.
  Seen seen;
  Metrics m;
  test::PortRangeLease ports(101);
  ASSERT_NE(ports.min(), 0) << "no free RTP port range";
  auto engine = MediaEngine::create({"127.0.0.1", ports.min(), ports.max(), 1, 60000}, m.get(), nullptr);
  ASSERT_TRUE(engine);
  auto h = (*engine)->open_session("t", std::make_unique<CapturingSink>(&seen));
  auto strict = (*engine)->open_stream(h, {0, "127.0.0.1", false});
  auto latch = (*engine)->open_stream(h, {1, "0.0.0.0", false});
  ASSERT_TRUE(strict);
  ASSERT_TRUE(latch);
  send_rtp("127.0.0.2", strict->rtp_port, 10);  // wrong host
  send_rtp("127.0.0.1", strict->rtp_port, 11);
  send_rtp("127.0.0.3", latch->rtp_port, 20);   // first source: latched
  ASSERT_TRUE(eventually([&] { return m.received.value() >= 2; }));
  send_rtp("127.0.0.4", latch->rtp_port, 21);   // another host after latching
  ASSERT_TRUE(eventually([&] { return m.wrong_source.value() >= 2; }));
  EXPECT_EQ(m.received.value(), 2u);
}

TEST(MediaEngineTest, ReportsMediaTimeoutButNotWhilePaused) {
  // Declared before the engine: sinks are finished when the engine stops.
  Seen a, b;
  Metrics m;
  std::atomic<int> timeouts{0};
  test::PortRangeLease ports(101);
  ASSERT_NE(ports.min(), 0) << "no free RTP port range";
  auto engine = MediaEngine::create({"127.0.0.1", ports.min(), ports.max(), 1, 300}, m.get(),
                                    [&](SessionHandle) { ++timeouts; });
  ASSERT_TRUE(engine);
  auto paused = (*engine)->open_session("p", std::make_unique<CapturingSink>(&a));
  ASSERT_TRUE((*engine)->open_stream(paused, {0, "127.0.0.1", true}));
  auto silent = (*engine)->open_session("s", std::make_unique<CapturingSink>(&b));
  ASSERT_TRUE((*engine)->open_stream(silent, {0, "127.0.0.1", false}));
  ASSERT_TRUE(eventually([&] { return timeouts.load() >= 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(timeouts.load(), 1);  // once, and only for the unpaused session
}

TEST(MediaEngineTest, ReportsExhaustedRangeAndReusesClosedPorts) {
  // Declared before the engine: sinks are finished when the engine stops.
  Seen seen;
  Metrics m;
  test::PortRangeLease ports(4);  // two pairs
  ASSERT_NE(ports.min(), 0) << "no free RTP port range";
  auto engine = MediaEngine::create({"127.0.0.1", ports.min(), ports.max(), 1, 60000}, m.get(), nullptr);
  ASSERT_TRUE(engine);
  auto h = (*engine)->open_session("t", std::make_unique<CapturingSink>(&seen));
  auto a = (*engine)->open_stream(h, {0, "", false});
  auto b = (*engine)->open_stream(h, {1, "", false});
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_NE(a->rtp_port, b->rtp_port);
  auto c = (*engine)->open_stream(h, {2, "", false});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, "media.no_ports");
  (*engine)->close_stream(h, a->id);
  // The worker closes the socket soon after; until then the pair is still bound.
  auto d = (*engine)->open_stream(h, {3, "", false});
  ASSERT_TRUE(eventually([&] { return d || (d = (*engine)->open_stream(h, {3, "", false})); }));
  EXPECT_EQ(d->rtp_port, a->rtp_port);
}

TEST(MediaEngineTest, BadAddressFailsAtStart) {
  Metrics m;
  auto engine = MediaEngine::create({"192.0.2.55", 31300, 31400, 1, 60000}, m.get(), nullptr);
  ASSERT_FALSE(engine);
  EXPECT_NE(engine.error().message.find("192.0.2.55"), std::string::npos);
}

}  // namespace
}  // namespace sgw::media
