#include "media/media_engine.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

namespace sgw::media {
namespace {

struct Fixture {
  common::Counter received, lost, invalid;
  common::Gauge open;
  MediaMetrics metrics() { return {&received, &lost, &invalid, &open}; }
};

void send_rtp(std::uint16_t port, std::uint16_t seq, bool valid = true) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  std::uint8_t pkt[172] = {0x80, 0, static_cast<std::uint8_t>(seq >> 8), static_cast<std::uint8_t>(seq),
                           0, 0, 0, 0, 0, 0, 0, 7};
  if (!valid) pkt[0] = 0x40;
  sendto(fd, pkt, sizeof pkt, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  close(fd);
}

bool wait_for(const common::Counter& c, std::uint64_t want) {
  for (int i = 0; i < 200 && c.value() < want; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return c.value() >= want;
}

// Packets sent to a port after open_stream() returns but before the worker has
// registered the socket (the early-media case) are still counted.
TEST(MediaEngineTest, CountsPacketsFromTheFirstOneAndLossBySequence) {
  Fixture f;
  auto engine = MediaEngine::create({"127.0.0.1", 31000, 31100, 2}, f.metrics());
  ASSERT_TRUE(engine) << engine.error().message;
  auto s = (*engine)->open_stream("test");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->rtp_port % 2, 0);
  for (std::uint16_t seq : {65534, 65535, 0, 2, 3}) send_rtp(s->rtp_port, seq);  // wraps; 1 lost
  send_rtp(s->rtp_port, 4, false);
  ASSERT_TRUE(wait_for(f.received, 5));
  ASSERT_TRUE(wait_for(f.invalid, 1));
  EXPECT_EQ(f.lost.value(), 1u);
  EXPECT_EQ(f.open.value(), 1);
  (*engine)->close_stream(s->id);
  EXPECT_EQ(f.open.value(), 0);
  (*engine)->stop();
}

TEST(MediaEngineTest, ReportsExhaustedRangeAndReusesClosedPorts) {
  Fixture f;
  auto engine = MediaEngine::create({"127.0.0.1", 31200, 31203, 1}, f.metrics());
  ASSERT_TRUE(engine);
  auto a = (*engine)->open_stream("t");
  auto b = (*engine)->open_stream("t");
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_NE(a->rtp_port, b->rtp_port);
  auto c = (*engine)->open_stream("t");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, "media.no_ports");
  (*engine)->close_stream(a->id);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // worker closes the socket
  auto d = (*engine)->open_stream("t");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->rtp_port, a->rtp_port);
}

TEST(MediaEngineTest, BadAddressFailsAtStart) {
  Fixture f;
  auto engine = MediaEngine::create({"192.0.2.55", 31300, 31400, 1}, f.metrics());
  ASSERT_FALSE(engine);
  EXPECT_NE(engine.error().message.find("192.0.2.55"), std::string::npos);
}

}  // namespace
}  // namespace sgw::media
