// Test helper: an RTP port range that is free now and reserved for this test (docs/testing.md,
// "Ports"). Never a fixed range: another program (or another test running in parallel) may
// hold ports in it, and the test then fails with "no free RTP port pair".
//
// The range is the start of a 200-port chunk, even-aligned, outside the kernel's ephemeral
// port range (so client sockets do not take its ports later), whose every UDP port binds on
// 127.0.0.1 right now. The chunk is reserved with flock() on
// $TMPDIR/sgw-test-rtp-ports/<first port>.lock, the same lock the integration harness
// (test/integration/harness.py, free_rtp_range) takes, for as long as the lease lives; the
// kernel drops it when the process dies.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace sgw::test {

class PortRangeLease {
 public:
  static constexpr unsigned kChunk = 200;

  // count: ports wanted (≤ kChunk, from an even first port). min() is 0 when no chunk was free.
  explicit PortRangeLease(unsigned count) {
    std::string dir = lock_dir();
    mkdir(dir.c_str(), 0777);
    std::vector<unsigned> bases = candidate_bases();
    std::shuffle(bases.begin(), bases.end(), std::mt19937(std::random_device{}()));
    for (unsigned base : bases) {
      int fd = open((dir + "/" + std::to_string(base) + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
      if (fd < 0) continue;
      if (flock(fd, LOCK_EX | LOCK_NB) != 0 || !all_bind(base, kChunk)) {
        close(fd);
        continue;
      }
      lock_fd_ = fd;
      min_ = static_cast<std::uint16_t>(base);
      max_ = static_cast<std::uint16_t>(base + count - 1);
      return;
    }
  }
  ~PortRangeLease() {
    if (lock_fd_ >= 0) close(lock_fd_);
  }
  PortRangeLease(const PortRangeLease&) = delete;
  PortRangeLease& operator=(const PortRangeLease&) = delete;

  std::uint16_t min() const { return min_; }
  std::uint16_t max() const { return max_; }

 private:
  static std::string lock_dir() {
    const char* t = std::getenv("TMPDIR");
    return std::string(t && *t ? t : "/tmp") + "/sgw-test-rtp-ports";
  }
  // Chunks from 10000 up to 65535, skipping the ephemeral range.
  static std::vector<unsigned> candidate_bases() {
    unsigned lo = 32768, hi = 60999;
    std::ifstream f("/proc/sys/net/ipv4/ip_local_port_range");
    f >> lo >> hi;
    std::vector<unsigned> out;
    for (unsigned b = 10000; b + kChunk - 1 <= 65535; b += kChunk)
      if (b + kChunk - 1 < lo || b > hi) out.push_back(b);
    return out;
  }
  static bool all_bind(unsigned base, unsigned count) {
    std::vector<int> fds;
    bool ok = true;
    for (unsigned p = base; ok && p < base + count; ++p) {
      int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(static_cast<std::uint16_t>(p));
      ok = s >= 0 && bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
      if (s >= 0) fds.push_back(s);
    }
    for (int s : fds) close(s);
    return ok;
  }

  int lock_fd_ = -1;
  std::uint16_t min_ = 0, max_ = 0;
};

}  // namespace sgw::test
