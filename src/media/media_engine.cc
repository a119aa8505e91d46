#include "media/media_engine.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "common/logging.h"
#include "media/rtp_packet_view.h"

namespace sgw::media {
namespace {

constexpr int kBatch = 32;
constexpr std::size_t kMaxDatagram = 2048;
constexpr std::size_t kMaxPosted = 65536;

// Binds a UDP socket to address:port; -1 on failure (errno kept).
int bind_udp(const std::string& address, std::uint16_t port) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    family = AF_INET6;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof(sockaddr_in6);
  } else {
    errno = EINVAL;
    return -1;
  }
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

// Per-stream receive state; owned by one worker.
struct Stream {
  StreamId id = 0;
  int rtp_fd = -1;
  int rtcp_fd = -1;
  bool have_seq = false;
  std::uint32_t ssrc = 0;
  std::uint16_t max_seq = 0;
  std::uint64_t received = 0;
  std::uint64_t lost = 0;
};

class Worker {
 public:
  Worker(const MediaMetrics& metrics, unsigned index) : metrics_(metrics), index_(index) {}
  ~Worker() { join(); }

  bool start() {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    evfd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epfd_ < 0 || evfd_ < 0) return false;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // nullptr marks the wakeup fd
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, evfd_, &ev) != 0) return false;
    thread_ = std::thread([this] { loop(); });
    return true;
  }

  void join() {
    if (thread_.joinable()) {
      post([this] { running_ = false; });
      thread_.join();
      run_posted();  // streams handed over after the loop ended are closed below
    }
    for (auto& [id, s] : streams_) close_fds(*s);
    streams_.clear();
    if (epfd_ >= 0) close(epfd_);
    if (evfd_ >= 0) close(evfd_);
    epfd_ = evfd_ = -1;
  }

  bool post(std::function<void()> fn) {
    {
      std::lock_guard lock(mutex_);
      if (posted_.size() >= kMaxPosted) return false;
      posted_.push_back(std::move(fn));
    }
    std::uint64_t one = 1;
    if (::write(evfd_, &one, sizeof one) < 0) { /* counter saturated: wakeup pending */ }
    return true;
  }

  // Worker thread.
  void add(std::unique_ptr<Stream> s) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = s.get();
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, s->rtp_fd, &ev) != 0) {
      common::logger("media")->error("worker {}: epoll_ctl: {}", index_, std::strerror(errno));
    }
    streams_.emplace(s->id, std::move(s));
  }

  // Worker thread.
  void remove(StreamId id) {
    auto it = streams_.find(id);
    if (it == streams_.end()) return;
    // Read what is still queued: the last packets count too.
    drain(*it->second);
    epoll_ctl(epfd_, EPOLL_CTL_DEL, it->second->rtp_fd, nullptr);
    close_fds(*it->second);
    streams_.erase(it);
  }

 private:
  static void close_fds(Stream& s) {
    if (s.rtp_fd >= 0) close(s.rtp_fd);
    if (s.rtcp_fd >= 0) close(s.rtcp_fd);
    s.rtp_fd = s.rtcp_fd = -1;
  }

  void loop() {
    std::array<epoll_event, 64> events{};
    while (running_) {
      int n = epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), 1000);
      for (int i = 0; i < n; ++i) {
        auto* s = static_cast<Stream*>(events[static_cast<std::size_t>(i)].data.ptr);
        if (s == nullptr) {
          run_posted();
        } else {
          drain(*s);
        }
      }
    }
  }

  void run_posted() {
    std::uint64_t n = 0;
    if (::read(evfd_, &n, sizeof n) < 0) { /* spurious */ }
    std::deque<std::function<void()>> batch;
    {
      std::lock_guard lock(mutex_);
      batch.swap(posted_);
    }
    for (auto& fn : batch) fn();
  }

  void drain(Stream& s) {
    while (true) {
      for (int i = 0; i < kBatch; ++i) {
        iov_[i].iov_base = bufs_[static_cast<std::size_t>(i)].data();
        iov_[i].iov_len = kMaxDatagram;
        msgs_[i].msg_hdr = {};
        msgs_[i].msg_hdr.msg_iov = &iov_[i];
        msgs_[i].msg_hdr.msg_iovlen = 1;
      }
      int n = recvmmsg(s.rtp_fd, msgs_, kBatch, MSG_DONTWAIT, nullptr);
      if (n <= 0) return;
      for (int i = 0; i < n; ++i) {
        std::span<const std::uint8_t> d(bufs_[static_cast<std::size_t>(i)].data(), msgs_[i].msg_len);
        on_datagram(s, d);
      }
      if (n < kBatch) return;
    }
  }

  void on_datagram(Stream& s, std::span<const std::uint8_t> d) {
    auto pkt = RtpPacketView::parse(d);
    if (!pkt) {
      metrics_.packets_invalid->inc();
      return;
    }
    ++s.received;
    metrics_.packets_received->inc();
    if (!s.have_seq || pkt->ssrc != s.ssrc) {
      s.have_seq = true;
      s.ssrc = pkt->ssrc;
      s.max_seq = pkt->sequence;
      return;
    }
    // RFC 3550 A.1: forward distance modulo 2^16; small forward jumps are loss,
    // everything else (duplicates, reordering, resets) is not counted here.
    auto delta = static_cast<std::uint16_t>(pkt->sequence - s.max_seq);
    if (delta > 0 && delta < 3000) {
      if (delta > 1) {
        s.lost += delta - 1u;
        metrics_.packets_lost->inc(delta - 1u);
      }
      s.max_seq = pkt->sequence;
    }
  }

  MediaMetrics metrics_;
  unsigned index_;
  int epfd_ = -1;
  int evfd_ = -1;
  std::thread thread_;
  bool running_ = true;  // worker thread only
  std::mutex mutex_;
  std::deque<std::function<void()>> posted_;
  std::map<StreamId, std::unique_ptr<Stream>> streams_;
  std::array<std::array<std::uint8_t, kMaxDatagram>, kBatch> bufs_{};
  iovec iov_[kBatch]{};
  mmsghdr msgs_[kBatch]{};
};

class MediaEngineImpl final : public MediaEngine {
 public:
  MediaEngineImpl(const MediaOptions& options, const MediaMetrics& metrics)
      : options_(options), metrics_(metrics), next_port_(options.port_min) {}
  ~MediaEngineImpl() override { stop(); }

  common::Status start() {
    unsigned n = options_.workers == 0 ? std::max(1u, std::thread::hardware_concurrency())
                                       : options_.workers;
    for (unsigned i = 0; i < n; ++i) {
      workers_.push_back(std::make_unique<Worker>(metrics_, i));
      if (!workers_.back()->start())
        return common::make_error("media.worker", "cannot start media worker");
    }
    // Probe the address once so a bad media.address fails at start-up.
    int fd = bind_udp(options_.address, 0);
    if (fd < 0)
      return common::make_error("media.address", "media.address " + options_.address +
                                                      ": cannot bind: " + std::strerror(errno));
    close(fd);
    return common::Ok{};
  }

  common::Result<OpenedStream> open_stream(const std::string& session_tag) override {
    unsigned span = (options_.port_max - options_.port_min + 1u) / 2u;  // port pairs in range
    for (unsigned attempt = 0; attempt < span; ++attempt) {
      std::uint16_t port = next_port_;
      next_port_ = static_cast<std::uint16_t>(next_port_ + 2);
      if (next_port_ + 1 > options_.port_max) next_port_ = options_.port_min;
      if (ports_in_use_.count(port)) continue;
      int rtp = bind_udp(options_.address, port);
      if (rtp < 0) continue;
      int rtcp = bind_udp(options_.address, static_cast<std::uint16_t>(port + 1));
      if (rtcp < 0) {
        close(rtp);
        continue;
      }
      auto s = std::make_unique<Stream>();
      s->id = next_id_++;
      s->rtp_fd = rtp;
      s->rtcp_fd = rtcp;
      StreamId id = s->id;
      Worker* w = workers_[id % workers_.size()].get();
      ports_in_use_.insert(port);
      streams_[id] = {port, w};
      Stream* raw = s.release();
      w->post([w, raw] { w->add(std::unique_ptr<Stream>(raw)); });
      metrics_.streams_open->add(1);
      common::logger("media")->debug("{}: stream {} on port {}", session_tag, id, port);
      return OpenedStream{id, port};
    }
    return common::make_error("media.no_ports", "no free RTP port pair in " +
                                                    std::to_string(options_.port_min) + "-" +
                                                    std::to_string(options_.port_max));
  }

  void close_stream(StreamId id) override {
    auto it = streams_.find(id);
    if (it == streams_.end()) return;
    ports_in_use_.erase(it->second.port);
    Worker* w = it->second.worker;
    w->post([w, id] { w->remove(id); });
    streams_.erase(it);
    metrics_.streams_open->add(-1);
  }

  std::size_t open_streams() const override { return streams_.size(); }

  void stop() override {
    for (auto& w : workers_) w->join();
    workers_.clear();
  }

 private:
  struct Placement {
    std::uint16_t port;
    Worker* worker;  // not owned
  };
  MediaOptions options_;
  MediaMetrics metrics_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::uint16_t next_port_;
  StreamId next_id_ = 1;
  std::set<std::uint16_t> ports_in_use_;
  std::map<StreamId, Placement> streams_;
};

}  // namespace

common::Result<std::unique_ptr<MediaEngine>> MediaEngine::create(const MediaOptions& options,
                                                                 const MediaMetrics& metrics) {
  auto e = std::make_unique<MediaEngineImpl>(options, metrics);
  auto st = e->start();
  if (!st) return st.error();
  return std::unique_ptr<MediaEngine>(std::move(e));
}

}  // namespace sgw::media
