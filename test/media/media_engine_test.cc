#include "media/media_engine.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
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
using testing::Source;

// What a sink saw, readable from the test thread.
struct Seen {
  std::mutex mutex;
  std::vector<std::pair<int, std::uint16_t>> packets;  // (stream, seq)
  std::vector<std::string> events;
  bool started = false;
  bool finished = false;
  std::map<int, std::pair<std::uint64_t, std::uint64_t>> counters;  // on_stream_counters, last per stream
  // An event "block" holds the worker inside on_event until `release` is set.
  std::condition_variable cv;
  bool blocked = false;
  bool release = false;
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
    std::unique_lock l(seen_->mutex);
    if (json == "block") {
      seen_->blocked = true;
      seen_->cv.wait(l, [this] { return seen_->release; });
      return;
    }
    seen_->events.emplace_back(json);
  }
  void on_stream_counters(std::int64_t, std::uint8_t stream, std::uint64_t wrong_source,
                          std::uint64_t kernel_drops) override {
    std::lock_guard l(seen_->mutex);
    seen_->counters[stream] = {wrong_source, kernel_drops};
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

// An engine with one session; members in the order that finishes the sink
// before the Seen it writes to goes away.
struct Rig {
  explicit Rig(const MediaOptions& o) {
    if (auto e = MediaEngine::create(o, m.get(), nullptr)) engine = std::move(e).value();
    if (engine) h = engine->open_session("t", std::make_unique<CapturingSink>(&seen));
  }
  Seen seen;
  Metrics m;
  std::unique_ptr<MediaEngine> engine;
  SessionHandle h = 0;
};

TEST(MediaEngineTest, LatchesAddressAndPortSoAFloodFromOtherPortsOfTheHostIsRefused) {
  Rig r({"127.0.0.1", 31800, 31900, 1, 60000});
  ASSERT_TRUE(r.engine);
  auto s = r.engine->open_stream(r.h, {0, "127.0.0.1", false, 40000});
  ASSERT_TRUE(s);
  Source tone("127.0.0.1"), flood("127.0.0.1");
  ASSERT_TRUE(tone.ok() && flood.ok());
  tone.send(s->rtp_port, 1);  // the first valid packet latches 127.0.0.1:<tone's port>
  ASSERT_TRUE(eventually([&] { return r.m.received.value() >= 1; }));
  for (std::uint16_t i = 0; i < 20; ++i) flood.send(s->rtp_port, static_cast<std::uint16_t>(500 + i), 99);
  tone.send(s->rtp_port, 2);
  ASSERT_TRUE(eventually([&] { return r.m.received.value() >= 2 && r.m.wrong_source.value() >= 20; }));
  std::atomic<bool> closed{false};
  r.engine->close_session(r.h, "{}", [&] { closed = true; });
  ASSERT_TRUE(eventually([&] { return closed.load(); }));
  EXPECT_EQ(r.m.received.value(), 2u);
  EXPECT_EQ(r.m.wrong_source.value(), 20u);
  {
    std::lock_guard l(r.seen.mutex);
    ASSERT_EQ(r.seen.packets.size(), 2u);  // only the latched source reached the timeline
    EXPECT_EQ(r.seen.packets[1].second, 2);
  }
  std::lock_guard l(r.seen.mutex);
  ASSERT_TRUE(r.seen.counters.count(0)) << "no stream counters reported";
  EXPECT_EQ(r.seen.counters[0], (std::pair<std::uint64_t, std::uint64_t>(20, 0)));
}

TEST(MediaEngineTest, LatchByAddressOnlyAcceptsOtherPortsOfTheSameHost) {
  MediaOptions o{"127.0.0.1", 32000, 32100, 1, 60000};
  o.latch_port = false;  // media.latch: address
  Rig r(o);
  ASSERT_TRUE(r.engine);
  auto s = r.engine->open_stream(r.h, {0, "127.0.0.1", false, 40000});
  ASSERT_TRUE(s);
  Source a("127.0.0.1"), b("127.0.0.1"), other_host("127.0.0.2");
  a.send(s->rtp_port, 1);
  ASSERT_TRUE(eventually([&] { return r.m.received.value() >= 1; }));
  b.send(s->rtp_port, 2);
  other_host.send(s->rtp_port, 3);
  ASSERT_TRUE(eventually([&] { return r.m.received.value() >= 2 && r.m.wrong_source.value() >= 1; }));
  EXPECT_EQ(r.m.received.value(), 2u);
}

TEST(MediaEngineTest, ReOfferWithANewPortLatchesTheNextSource) {
  Rig r({"127.0.0.1", 32200, 32300, 1, 60000});
  ASSERT_TRUE(r.engine);
  auto s = r.engine->open_stream(r.h, {0, "127.0.0.1", false, 40000});
  ASSERT_TRUE(s);
  Source first("127.0.0.1"), second("127.0.0.1");
  first.send(s->rtp_port, 1);
  ASSERT_TRUE(eventually([&] { return r.m.received.value() >= 1; }));
  // Hold by c=0.0.0.0 keeps the latched source...
  r.engine->update_stream(r.h, s->id, {0, "0.0.0.0", true, 40000});
  second.send(s->rtp_port, 2);
  ASSERT_TRUE(eventually([&] { return r.m.wrong_source.value() >= 1; }));
  // ... a re-offer naming a new port latches the next source.
  r.engine->update_stream(r.h, s->id, {0, "127.0.0.1", false, 40010});
  second.send(s->rtp_port, 3);
  ASSERT_TRUE(eventually([&] { return r.m.received.value() >= 2; }));
  first.send(s->rtp_port, 4);
  ASSERT_TRUE(eventually([&] { return r.m.wrong_source.value() >= 2; }));
  EXPECT_EQ(r.m.received.value(), 2u);
}

TEST(MediaEngineTest, FloodedPortDoesNotStarveItsNeighbourAndKernelDropsAreCounted) {
  MediaOptions o{"127.0.0.1", 32400, 32500, 1, 60000};  // one worker for both streams
  o.max_packets_per_wake = 16;
  Rig r(o);
  ASSERT_TRUE(r.engine);
  auto noisy = r.engine->open_stream(r.h, {0, "127.0.0.1", false, 40000});
  auto quiet = r.engine->open_stream(r.h, {1, "127.0.0.1", false, 40002});
  ASSERT_TRUE(noisy && quiet);
  Source flood("127.0.0.1"), tone("127.0.0.1");
  flood.send(noisy->rtp_port, 0);
  tone.send(quiet->rtp_port, 0);
  ASSERT_TRUE(eventually([&] { return r.m.received.value() >= 2; }));  // both sources latched
  // Hold the worker, overflow the noisy socket's buffer (more than
  // rmem_default can hold), then queue the quiet stream's packets behind it.
  r.engine->post_event(r.h, "block");
  ASSERT_TRUE(eventually([&] { std::lock_guard l(r.seen.mutex); return r.seen.blocked; }));
  long rmem = 212992;
  std::ifstream("/proc/sys/net/core/rmem_default") >> rmem;
  const int flooded = static_cast<int>(std::max(3000L, rmem / 128));
  for (int i = 1; i <= flooded; ++i) flood.send(noisy->rtp_port, static_cast<std::uint16_t>(i));
  for (std::uint16_t i = 1; i <= 10; ++i) tone.send(quiet->rtp_port, i);
  {
    std::lock_guard l(r.seen.mutex);
    r.seen.release = true;
  }
  r.seen.cv.notify_all();
  ASSERT_TRUE(eventually([&] {
    std::lock_guard l(r.seen.mutex);
    return std::count_if(r.seen.packets.begin(), r.seen.packets.end(), [](auto& p) { return p.first == 1; }) == 11;
  }));
  {
    // The noisy socket was ready first; the quiet one got its turn after at
    // most one wake-up's share of the flood, not after all of it.
    std::lock_guard l(r.seen.mutex);
    std::size_t first_quiet = 2;
    while (first_quiet < r.seen.packets.size() && r.seen.packets[first_quiet].first != 1) ++first_quiet;
    EXPECT_LE(first_quiet - 2, 16u) << "quiet stream waited behind " << first_quiet - 2 << " flooded packets";
  }
  // One more packet carries the socket's drop count (SO_RXQ_OVFL).
  ASSERT_TRUE(eventually([&] { return r.m.received.value() >= 2u + 10u; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the flood is read
  flood.send(noisy->rtp_port, static_cast<std::uint16_t>(flooded + 1));
  std::size_t noisy_received = 0;
  ASSERT_TRUE(eventually([&] {
    std::lock_guard l(r.seen.mutex);
    noisy_received = static_cast<std::size_t>(
        std::count_if(r.seen.packets.begin(), r.seen.packets.end(), [](auto& p) { return p.first == 0; }));
    return r.seen.packets.back() == std::pair<int, std::uint16_t>(0, static_cast<std::uint16_t>(flooded + 1));
  }));
  std::atomic<bool> closed{false};
  r.engine->close_session(r.h, "{}", [&] { closed = true; });
  ASSERT_TRUE(eventually([&] { return closed.load(); }));
  // The shared counter is published once a tick.
  ASSERT_TRUE(eventually([&] { return r.m.kernel_drops.value() > 0; }));
  // Every packet sent to the noisy port was either read or counted as dropped by the kernel.
  EXPECT_EQ(noisy_received + r.m.kernel_drops.value(), static_cast<std::size_t>(flooded) + 2);
  std::lock_guard l(r.seen.mutex);
  ASSERT_TRUE(r.seen.counters.count(0));
  EXPECT_EQ(r.seen.counters[0].second, r.m.kernel_drops.value());
  // The quiet stream was measured and lost nothing.
  EXPECT_EQ(r.seen.counters[1], (std::pair<std::uint64_t, std::uint64_t>(0, 0)));
}

TEST(MediaEngineTest, BadAddressFailsAtStart) {
  Metrics m;
  auto engine = MediaEngine::create({"192.0.2.55", 31300, 31400, 1, 60000}, m.get(), nullptr);
  ASSERT_FALSE(engine);
  EXPECT_NE(engine.error().message.find("192.0.2.55"), std::string::npos);
}

}  // namespace
}  // namespace sgw::media
