// Shared helpers for the media tests: the engine's counters, an RTP sender
// and a bounded wait for a condition.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "media/media_engine.h"

namespace sgw::media::testing {

struct Metrics {
  common::Counter received, lost, invalid, wrong_source, refused, kernel_drops;
  common::Gauge open;
  MediaMetrics get() { return {&received, &lost, &invalid, &open, &wrong_source, &refused, &kernel_drops}; }
};

// A UDP socket on `from`, port chosen by the kernel: one RTP source.
class Source {
 public:
  explicit Source(const char* from) {
    fd_ = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    inet_pton(AF_INET, from, &src.sin_addr);
    ok_ = bind(fd_, reinterpret_cast<sockaddr*>(&src), sizeof src) == 0;
  }
  ~Source() { close(fd_); }
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;
  bool ok() const { return ok_; }
  // One 172-byte RTP packet (PT 0) to 127.0.0.1:port; valid=false sends version 1 (not RTP).
  void send(std::uint16_t port, std::uint16_t seq, std::uint8_t ssrc = 7, bool valid = true) const {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    std::uint8_t pkt[172] = {0x80, 0, static_cast<std::uint8_t>(seq >> 8), static_cast<std::uint8_t>(seq),
                             0, 0, 0, 0, 0, 0, 0, ssrc};
    if (!valid) pkt[0] = 0x40;
    sendto(fd_, pkt, sizeof pkt, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  }

 private:
  int fd_ = -1;
  bool ok_ = false;
};

// One RTP packet (SSRC 7) from `from`, always from the same socket per host:
// a stream latches address and port of its first packet (media.latch).
inline void send_rtp(const char* from, std::uint16_t port, std::uint16_t seq, bool valid = true) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<Source>> sources;
  std::lock_guard l(mutex);
  auto& src = sources[from];
  if (!src) src = std::make_unique<Source>(from);
  ASSERT_TRUE(src->ok()) << from;
  src->send(port, seq, 7, valid);
}

// Polls f every 10 ms for up to 10 s; returns its last value.
template <typename F>
bool eventually(F f) {
  for (int i = 0; i < 1000 && !f(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return f();
}

}  // namespace sgw::media::testing
