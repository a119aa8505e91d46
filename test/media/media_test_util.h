// Shared helpers for the media tests: the engine's counters, an RTP sender
// and a bounded wait for a condition.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <thread>

#include <gtest/gtest.h>

#include "media/media_engine.h"

namespace sgw::media::testing {

struct Metrics {
  common::Counter received, lost, invalid, wrong_source, refused;
  common::Gauge open;
  MediaMetrics get() { return {&received, &lost, &invalid, &open, &wrong_source, &refused}; }
};

// One 172-byte RTP packet (PT 0, SSRC 7) from `from` to 127.0.0.1:port;
// valid=false sends version 1 (not RTP).
inline void send_rtp(const char* from, std::uint16_t port, std::uint16_t seq, bool valid = true) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in src{};
  src.sin_family = AF_INET;
  inet_pton(AF_INET, from, &src.sin_addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src), 0);
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

// Polls f every 10 ms for up to 10 s; returns its last value.
template <typename F>
bool eventually(F f) {
  for (int i = 0; i < 1000 && !f(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return f();
}

}  // namespace sgw::media::testing
