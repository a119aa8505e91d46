// sgw-floor-receiver: the physical floor of the gateway's packet path (docs/performance.md).
//
// Binds one UDP socket on each port of a range (every STEP-th port, by default the even ones, as
// the gateway's RTP ports), spreads them over THREADS threads that each run epoll + recvmmsg —
// the same receive pattern as a siprecd media worker — and does nothing with a packet but count
// it. What this process costs per packet is what any receiver on this kernel pays; the benchmark
// divides the gateway's cost by it.
//
// Output (stdout, one line each, flushed): "ready PORTS" once every socket is bound; "packets N"
// on SIGUSR1 (a sample) and at exit (SIGTERM/SIGINT, or after --duration). Errors: one line on
// stderr naming the port, exit status 2.
//
// Threads: THREADS receivers, each owning its sockets and its counter (read relaxed by main);
// main only waits for signals. Bounded: --duration (default 600 s) ends the run.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kBatch = 32;  // as siprecd's media worker (src/media/media_engine.cc)
constexpr std::size_t kMaxDatagram = 2048;

struct alignas(64) Receiver {
  int epfd = -1;
  std::vector<int> fds;
  std::atomic<std::uint64_t> packets{0};
  std::thread thread;
};

std::atomic<bool> g_running{true};

void usage() {
  std::fprintf(stderr,
               "usage: sgw-floor-receiver --ports MIN-MAX [--address 127.0.0.1] [--step 2] "
               "[--threads 2] [--duration 600]\n");
}

void receive_loop(Receiver* r) {
  std::array<epoll_event, 64> events{};
  static thread_local std::array<std::array<std::uint8_t, kMaxDatagram>, kBatch> bufs;
  static thread_local std::array<sockaddr_storage, kBatch> addrs;
  std::array<iovec, kBatch> iov{};
  std::array<mmsghdr, kBatch> msgs{};
  std::uint64_t local = 0;
  while (g_running.load(std::memory_order_relaxed)) {
    int n = epoll_wait(r->epfd, events.data(), static_cast<int>(events.size()), 100);
    for (int e = 0; e < n; ++e) {
      int fd = events[static_cast<std::size_t>(e)].data.fd;
      while (true) {
        for (int i = 0; i < kBatch; ++i) {
          auto k = static_cast<std::size_t>(i);
          iov[k] = {bufs[k].data(), kMaxDatagram};
          msgs[k].msg_hdr = {};
          msgs[k].msg_hdr.msg_iov = &iov[k];
          msgs[k].msg_hdr.msg_iovlen = 1;
          msgs[k].msg_hdr.msg_name = &addrs[k];
          msgs[k].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
        }
        int got = recvmmsg(fd, msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
        if (got <= 0) break;
        local += static_cast<std::uint64_t>(got);
        if (got < kBatch) break;
      }
    }
    r->packets.store(local, std::memory_order_relaxed);
  }
}

bool parse_uint(const char* s, unsigned long max, unsigned long* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long v = std::strtoul(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v > max) return false;
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string address = "127.0.0.1";
  unsigned long port_min = 0, port_max = 0, step = 2, threads = 2, duration_s = 600;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage();
      return 0;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "sgw-floor-receiver: %s needs a value\n", a.c_str());
      return 2;
    }
    const char* v = argv[++i];
    bool ok = true;
    if (a == "--address") {
      address = v;
    } else if (a == "--ports") {
      std::string s = v;
      auto dash = s.find('-');
      ok = dash != std::string::npos && parse_uint(s.substr(0, dash).c_str(), 65535, &port_min) &&
           parse_uint(s.substr(dash + 1).c_str(), 65535, &port_max) && port_min >= 1 &&
           port_min <= port_max;
    } else if (a == "--step") {
      ok = parse_uint(v, 1000, &step) && step >= 1;
    } else if (a == "--threads") {
      ok = parse_uint(v, 256, &threads) && threads >= 1;
    } else if (a == "--duration") {
      ok = parse_uint(v, 86400, &duration_s) && duration_s >= 1;
    } else {
      std::fprintf(stderr, "sgw-floor-receiver: unknown option %s\n", a.c_str());
      usage();
      return 2;
    }
    if (!ok) {
      std::fprintf(stderr, "sgw-floor-receiver: %s: bad value '%s'\n", a.c_str(), v);
      return 2;
    }
  }
  if (port_min == 0) {
    usage();
    return 2;
  }
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  if (inet_pton(AF_INET, address.c_str(), &sa.sin_addr) != 1) {
    std::fprintf(stderr, "sgw-floor-receiver: --address: not an IPv4 literal: '%s'\n", address.c_str());
    return 2;
  }
  // Many sockets: lift the soft descriptor limit to the hard one.
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  // Signals go to main only (sigwait below); receivers block them.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGUSR1);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGALRM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  std::vector<std::unique_ptr<Receiver>> rx;
  for (unsigned long t = 0; t < threads; ++t) {
    rx.push_back(std::make_unique<Receiver>());
    rx.back()->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (rx.back()->epfd < 0) {
      std::fprintf(stderr, "sgw-floor-receiver: epoll_create1: %s\n", std::strerror(errno));
      return 2;
    }
  }
  // Ports are grouped in pairs of streams (a call's two legs, as siprecd keeps a session's
  // streams on one worker) and the pairs dealt round-robin to the threads.
  std::size_t count = 0;
  for (unsigned long p = port_min; p <= port_max; p += step, ++count) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sa.sin_port = htons(static_cast<std::uint16_t>(p));
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      std::fprintf(stderr, "sgw-floor-receiver: bind %s:%lu: %s\n", address.c_str(), p,
                   std::strerror(errno));
      return 2;
    }
    Receiver& r = *rx[(count / 2) % rx.size()];
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(r.epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      std::fprintf(stderr, "sgw-floor-receiver: epoll_ctl port %lu: %s\n", p, std::strerror(errno));
      return 2;
    }
    r.fds.push_back(fd);
  }
  for (auto& r : rx) r->thread = std::thread(receive_loop, r.get());
  std::printf("ready %zu\n", count);
  std::fflush(stdout);

  auto total = [&rx] {
    std::uint64_t n = 0;
    for (auto& r : rx) n += r->packets.load(std::memory_order_relaxed);
    return n;
  };
  alarm(static_cast<unsigned>(duration_s));
  while (true) {
    int sig = 0;
    if (sigwait(&sigs, &sig) != 0) continue;
    if (sig == SIGUSR1) {
      std::printf("packets %llu\n", static_cast<unsigned long long>(total()));
      std::fflush(stdout);
      continue;
    }
    break;  // SIGTERM, SIGINT, SIGALRM (--duration)
  }
  g_running = false;
  for (auto& r : rx) r->thread.join();
  std::printf("packets %llu\n", static_cast<unsigned long long>(total()));
  std::fflush(stdout);
  for (auto& r : rx) {
    for (int fd : r->fds) close(fd);
    close(r->epfd);
  }
  return 0;
}
