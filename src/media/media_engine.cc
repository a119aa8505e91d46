#include "media/media_engine.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/logging.h"
#include "common/thread_name.h"
#include "media/rtcp_packet_view.h"
#include "media/rtp_packet_view.h"

namespace sgw::media {

std::int64_t monotonic_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

namespace {

constexpr int kBatch = 32;
constexpr std::size_t kMaxDatagram = 2048;
constexpr std::size_t kControlBytes = 64;            // room for the SO_RXQ_OVFL cmsg
constexpr unsigned kDrainAll = 65536;                // closing a stream: read what is queued
constexpr std::int64_t kStatsIntervalUs = 1000000;   // on_stream_counters at most once a second
constexpr std::int64_t kTickUs = 100000;

void bump(common::Counter* c, std::uint64_t n = 1) {
  if (c) c->inc(n);
}

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

// The address part of a peer, comparable across packets (port ignored).
struct SourceAddress {
  int family = 0;
  std::array<std::uint8_t, 16> bytes{};
  std::uint16_t port = 0;
  bool same_host(const SourceAddress& o) const { return family == o.family && bytes == o.bytes; }
  bool same(const SourceAddress& o) const { return same_host(o) && port == o.port; }
};

SourceAddress from_sockaddr(const sockaddr_storage& ss) {
  SourceAddress a;
  if (ss.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&ss);
    a.family = AF_INET;
    std::memcpy(a.bytes.data(), &v4->sin_addr, 4);
    a.port = ntohs(v4->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    a.family = AF_INET6;
    std::memcpy(a.bytes.data(), &v6->sin6_addr, 16);
    a.port = ntohs(v6->sin6_port);
  }
  return a;
}

// Parses the SDP address; nullopt when it cannot be trusted as a source
// (empty, unspecified 0.0.0.0/::, or not a literal): the stream then latches.
std::optional<SourceAddress> expected_source(const std::string& text) {
  SourceAddress a;
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    if (v4.s_addr == 0) return std::nullopt;
    a.family = AF_INET;
    std::memcpy(a.bytes.data(), &v4, 4);
    return a;
  }
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_UNSPECIFIED(&v6)) return std::nullopt;
    if (IN6_IS_ADDR_V4MAPPED(&v6)) {
      a.family = AF_INET;
      std::memcpy(a.bytes.data(), &v6.s6_addr[12], 4);
    } else {
      a.family = AF_INET6;
      std::memcpy(a.bytes.data(), &v6, 16);
    }
    return a;
  }
  return std::nullopt;
}

struct Session;

// Per-stream receive state; owned by one worker.
struct Stream {
  StreamId id = 0;
  Session* session = nullptr;  // not owned: the session owns its streams
  std::uint8_t index = 0;
  int rtp_fd = -1;
  int rtcp_fd = -1;
  bool paused = false;
  std::optional<SourceAddress> expected;  // SDP host: packets must come from it
  std::optional<SourceAddress> latched;   // source of the first valid packet
  std::uint16_t remote_port = 0;          // SDP port (a change re-latches)
  std::uint64_t wrong_source = 0;         // packets refused by the source check
  std::uint32_t kernel_drops = 0;         // SO_RXQ_OVFL: the socket's cumulative drops
  bool stats_dirty = false;               // figures not yet given to the sink
  bool have_seq = false;
  std::uint32_t ssrc = 0;
  std::uint16_t max_seq = 0;
  // SRTP (RTP/SAVP): packets are authenticated and decrypted in place first.
  std::unique_ptr<SrtpSession> srtp;           // current keys; null: plain RTP
  std::unique_ptr<SrtpSession> srtp_previous;  // keys before a rekey, tried second until...
  std::int64_t srtp_previous_until_us = 0;     // ...this time (monotonic)
  bool srtp_measured = false;                  // had SRTP at some point: its counters are reported
  std::uint64_t srtp_auth_failures = 0;
  std::uint64_t srtp_replays = 0;
};

struct Session {
  SessionHandle handle = 0;
  std::unique_ptr<SessionSink> sink;
  std::int64_t start_us = 0;       // monotonic time the session was opened
  std::int64_t last_activity_us = 0;
  bool timeout_reported = false;
  std::int64_t stats_reported_us = 0;  // last on_stream_counters round
  // Counts of streams already closed, by m-line index: the sink's counters are
  // per index for the whole session (a re-offer may replace a stream).
  std::map<std::uint8_t, std::pair<std::uint64_t, std::uint64_t>> closed_counts;
  std::map<std::uint8_t, std::pair<std::uint64_t, std::uint64_t>> closed_srtp;  // auth failures, replays
  std::map<StreamId, std::unique_ptr<Stream>> streams;
};

class Worker {
 public:
  Worker(const MediaMetrics& metrics, unsigned index, std::int64_t timeout_us,
         std::function<void(SessionHandle)>* on_timeout, bool latch_port, unsigned per_wake)
      : metrics_(metrics), index_(index), timeout_us_(timeout_us), on_timeout_(on_timeout),
        latch_port_(latch_port), per_wake_(per_wake == 0 ? 1 : per_wake) {}
  ~Worker() { join(); }

  bool start() {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    evfd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epfd_ < 0 || evfd_ < 0) return false;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // nullptr marks the wakeup fd
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, evfd_, &ev) != 0) return false;
    setup_slots();
    thread_ = std::thread([this] {
      common::set_thread_name("sgw-media-" + std::to_string(index_));
      loop();
    });
    return true;
  }

  void setup_slots() {
    for (int i = 0; i < kBatch; ++i) {
      iov_[i].iov_base = bufs_[static_cast<std::size_t>(i)].data();
      iov_[i].iov_len = kMaxDatagram;
      msgs_[i].msg_hdr = {};
      msgs_[i].msg_hdr.msg_iov = &iov_[i];
      msgs_[i].msg_hdr.msg_iovlen = 1;
      msgs_[i].msg_hdr.msg_name = &addrs_[i];
      msgs_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      msgs_[i].msg_hdr.msg_control = controls_[static_cast<std::size_t>(i)].data();
      msgs_[i].msg_hdr.msg_controllen = kControlBytes;
    }
  }

  void join() {
    if (thread_.joinable()) {
      post([this] { running_ = false; });
      thread_.join();
      run_posted();  // sessions handed over after the loop ended are finished below
    }
    for (auto& [h, s] : sessions_) finish_session(*s, R"({"cause":"gateway stopped","complete":false})");
    sessions_.clear();
    publish_counts();
    if (epfd_ >= 0) close(epfd_);
    if (evfd_ >= 0) close(evfd_);
    epfd_ = evfd_ = -1;
  }

  // Any thread. Never drops: the queue is bounded by admission instead
  // (MediaEngineImpl::reserve_session checks queued() against the high-water
  // mark), so a close or an event for an admitted session is always delivered.
  // After join(), closures are run by nobody and destroyed with the worker.
  void post(std::function<void()> fn) {
    {
      std::lock_guard lock(mutex_);
      posted_.push_back(std::move(fn));
    }
    std::uint64_t one = 1;
    if (::write(evfd_, &one, sizeof one) < 0) { /* counter saturated: wakeup pending */ }
  }

  // Any thread, for a stream no worker has (yet).
  static void close_fds(Stream& s) {
    if (s.rtp_fd >= 0) close(s.rtp_fd);
    if (s.rtcp_fd >= 0) close(s.rtcp_fd);
    s.rtp_fd = s.rtcp_fd = -1;
  }

  // Any thread: work posted and not yet taken by the worker.
  std::size_t queued() {
    std::lock_guard lock(mutex_);
    return posted_.size();
  }

  // --- worker thread ----------------------------------------------------
  void add_session(SessionHandle h, std::unique_ptr<SessionSink> sink, std::int64_t start_us) {
    auto s = std::make_unique<Session>();
    s->handle = h;
    s->sink = std::move(sink);
    s->start_us = start_us;
    s->last_activity_us = monotonic_us();
    s->sink->start(monotonic_us() - start_us);
    sessions_.emplace(h, std::move(s));
  }

  void add_stream(SessionHandle h, std::unique_ptr<Stream> st) {
    auto it = sessions_.find(h);
    if (it == sessions_.end()) {
      close_fds(*st);
      return;
    }
    st->session = it->second.get();
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = st.get();
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, st->rtp_fd, &ev) != 0)
      common::logger("media")->error("worker {}: epoll_ctl: {}", index_, std::strerror(errno));
    // Early media waits in the socket buffer: read it now, in order.
    drain(*st, kDrainAll);
    it->second->streams.emplace(st->id, std::move(st));
  }

  void update_stream(SessionHandle h, StreamId id, bool paused, std::optional<SourceAddress> expected,
                     std::uint16_t remote_port) {
    Stream* st = find_stream(h, id);
    if (st == nullptr) return;
    if (st->paused && !paused) st->session->last_activity_us = monotonic_us();
    st->paused = paused;
    // An unusable SDP address (0.0.0.0: hold) keeps the source; a new host or
    // port is a new media endpoint: its first packet latches again.
    if (expected && (!st->expected || !st->expected->same_host(*expected) ||
                     (remote_port != 0 && remote_port != st->remote_port))) {
      st->expected = expected;
      st->remote_port = remote_port;
      st->latched.reset();
    }
  }

  // New SRTP keys from a re-offer (null: plain RTP from now on). The old
  // context still decrypts packets sent before the SRC switched.
  void rekey_stream(SessionHandle h, StreamId id, std::unique_ptr<SrtpSession> srtp) {
    Stream* st = find_stream(h, id);
    if (st == nullptr) return;
    if (srtp && st->srtp) {
      st->srtp_previous = std::move(st->srtp);
      st->srtp_previous_until_us = monotonic_us() + kRekeyOverlapUs;
    } else {
      st->srtp_previous.reset();
    }
    st->srtp_measured |= srtp != nullptr;
    st->srtp = std::move(srtp);
  }

  void remove_stream(SessionHandle h, StreamId id) {
    Stream* st = find_stream(h, id);
    if (st == nullptr) return;
    drain(*st, kDrainAll);  // the last packets count too
    epoll_ctl(epfd_, EPOLL_CTL_DEL, st->rtp_fd, nullptr);
    close_fds(*st);
    report_stats(*st->session, *st, monotonic_us(), true);
    auto& closed = st->session->closed_counts[st->index];
    closed.first += st->wrong_source;
    closed.second += st->kernel_drops;
    if (st->srtp_measured) {
      auto& cs = st->session->closed_srtp[st->index];
      cs.first += st->srtp_auth_failures;
      cs.second += st->srtp_replays;
    }
    st->session->streams.erase(id);
  }

  void event(SessionHandle h, const std::string& json, bool metadata) {
    auto it = sessions_.find(h);
    if (it == sessions_.end()) return;
    std::int64_t at = monotonic_us() - it->second->start_us;
    if (metadata) {
      it->second->sink->on_metadata(at, json);
    } else {
      it->second->sink->on_event(at, json);
    }
  }

  void close_session(SessionHandle h, const std::string& end_json) {
    auto it = sessions_.find(h);
    if (it == sessions_.end()) return;
    finish_session(*it->second, end_json);
    sessions_.erase(it);
  }

 private:
  Stream* find_stream(SessionHandle h, StreamId id) {
    auto it = sessions_.find(h);
    if (it == sessions_.end()) return nullptr;
    auto st = it->second->streams.find(id);
    return st == it->second->streams.end() ? nullptr : st->second.get();
  }

  void finish_session(Session& s, const std::string& end_json) {
    std::int64_t now = monotonic_us();
    for (auto& [id, st] : s.streams) {
      drain(*st, kDrainAll);
      epoll_ctl(epfd_, EPOLL_CTL_DEL, st->rtp_fd, nullptr);
      close_fds(*st);
      report_stats(s, *st, now, true);
    }
    s.streams.clear();
    s.sink->finish(monotonic_us() - s.start_us, end_json);
    s.sink.reset();
  }

  // Hands the stream's source-check and kernel-drop figures to the sink when
  // they changed since the last report, and always when it closes (`final`):
  // zeros then say "measured, nothing lost". Cumulative per m-line index.
  void report_stats(Session& sess, Stream& st, std::int64_t now, bool final = false) {
    if ((!st.stats_dirty && !final) || !sess.sink) return;
    st.stats_dirty = false;
    const auto& closed = sess.closed_counts[st.index];
    sess.sink->on_stream_counters(now - sess.start_us, st.index, closed.first + st.wrong_source,
                                  closed.second + st.kernel_drops);
    if (st.srtp_measured) {
      const auto& cs = sess.closed_srtp[st.index];
      sess.sink->on_srtp_counters(now - sess.start_us, st.index, cs.first + st.srtp_auth_failures,
                                  cs.second + st.srtp_replays);
    }
  }

  void loop() {
    std::array<epoll_event, 64> events{};
    std::int64_t next_tick = monotonic_us() + kTickUs;
    while (running_) {
      int wait_ms = static_cast<int>(std::max<std::int64_t>(0, next_tick - monotonic_us()) / 1000);
      int n = epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), wait_ms);
      for (int i = 0; i < n; ++i) {
        auto* st = static_cast<Stream*>(events[static_cast<std::size_t>(i)].data.ptr);
        if (st == nullptr) {
          run_posted();
        } else {
          drain(*st, per_wake_);
        }
      }
      std::int64_t now = monotonic_us();
      if (now >= next_tick) {
        next_tick = now + kTickUs;
        tick(now);
      }
    }
  }

  // Per-packet counts stay in the worker and reach the shared counters once a
  // tick: an atomic add per packet, on a cache line both workers write, cost
  // more than parsing the packet. The order keeps readers consistent (a
  // wrong-source count is never newer than the received count).
  void publish_counts() {
    bump(metrics_.packets_received, counts_.received);
    bump(metrics_.packets_lost, counts_.lost);
    bump(metrics_.packets_invalid, counts_.invalid);
    bump(metrics_.packets_wrong_source, counts_.wrong_source);
    bump(metrics_.packets_dropped_kernel, counts_.kernel_drops);
    bump(metrics_.srtp_auth_failures, counts_.srtp_auth_failures);
    bump(metrics_.srtp_replays, counts_.srtp_replays);
    bump(metrics_.rtcp_packets, counts_.rtcp);
    counts_ = {};
  }

  void tick(std::int64_t now) {
    publish_counts();
    for (auto& [h, s] : sessions_) {
      s->sink->on_tick(now - s->start_us);
      if (now - s->stats_reported_us >= kStatsIntervalUs) {
        s->stats_reported_us = now;
        for (auto& [id, st] : s->streams) report_stats(*s, *st, now);
      }
      bool any_active = false;
      for (auto& [id, st] : s->streams) any_active |= !st->paused;
      if (!any_active) {
        s->last_activity_us = now;  // hold/pause does not count towards the timeout
        continue;
      }
      if (!s->timeout_reported && timeout_us_ > 0 && now - s->last_activity_us > timeout_us_) {
        s->timeout_reported = true;
        if (on_timeout_ && *on_timeout_) (*on_timeout_)(s->handle);
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

  // Reads at most `budget` datagrams (one wake-up's share: epoll is
  // level-triggered, so what is left gets the next turn).
  void drain(Stream& s, unsigned budget) {
    if (s.rtp_fd < 0) return;
    unsigned done = 0;
    while (done < budget) {
      unsigned want = std::min<unsigned>(kBatch, budget - done);
      // The slots were set up once (setup_slots); the kernel only rewrites
      // msg_len, msg_namelen, msg_controllen and msg_flags of the ones it fills.
      int n = recvmmsg(s.rtp_fd, msgs_, want, MSG_DONTWAIT, nullptr);
      if (n <= 0) return;
      std::int64_t now = monotonic_us();
      for (int i = 0; i < n; ++i) {
        msghdr& h = msgs_[i].msg_hdr;
        if (h.msg_controllen > 0) note_kernel_drops(s, h);
        std::span<std::uint8_t> d(bufs_[static_cast<std::size_t>(i)].data(), msgs_[i].msg_len);
        on_datagram(s, from_sockaddr(addrs_[i]), now, d);
        h.msg_namelen = sizeof(sockaddr_storage);
        h.msg_controllen = kControlBytes;
      }
      done += static_cast<unsigned>(n);
      if (static_cast<unsigned>(n) < want) return;
    }
  }

  // SO_RXQ_OVFL (socket(7)): a packet carries the socket's cumulative drop
  // count as of its queueing; present only once something was dropped.
  void note_kernel_drops(Stream& s, msghdr& h) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SO_RXQ_OVFL) continue;
      std::uint32_t drops = 0;
      std::memcpy(&drops, CMSG_DATA(c), sizeof drops);
      if (drops > s.kernel_drops) {
        counts_.kernel_drops += drops - s.kernel_drops;
        s.kernel_drops = drops;
        s.stats_dirty = true;
      }
    }
  }

  // SRTP: authenticates and decrypts d in place with the stream's keys, then
  // (for a packet still in flight from before a rekey) with the previous ones.
  // On kOk *len is the plain RTP length.
  SrtpStatus unprotect(Stream& s, std::span<std::uint8_t> d, std::int64_t now, std::size_t* len) {
    if (s.srtp_previous && now >= s.srtp_previous_until_us) s.srtp_previous.reset();
    const bool fallback = s.srtp_previous != nullptr;
    // An AEAD suite decrypts before it checks the tag: keep the packet for the second try.
    if (fallback) std::memcpy(scratch_.data(), d.data(), d.size());
    *len = d.size();
    SrtpStatus r = s.srtp->unprotect_rtp(d.data(), len);
    if (r == SrtpStatus::kOk || !fallback) return r;
    std::memcpy(d.data(), scratch_.data(), d.size());
    *len = d.size();
    SrtpStatus r2 = s.srtp_previous->unprotect_rtp(d.data(), len);
    return r2 == SrtpStatus::kOk || r2 == SrtpStatus::kReplay ? r2 : r;
  }

  void on_datagram(Stream& s, const SourceAddress& from, std::int64_t now,
                   std::span<std::uint8_t> d) {
    // Source check: the host the SDP named (any host when the SDP address is
    // unusable: 0.0.0.0, NAT'd SRCs), then only the source of the first valid
    // packet: its address and port (media.latch: address_port), or its
    // address (media.latch: address). The SDP port is not the source port:
    // SRCs need not send from the port they receive on. A flood from other
    // ports of the SRC's host never reaches the timeline.
    if (s.latched ? !(latch_port_ ? from.same(*s.latched) : from.same_host(*s.latched))
                  : (s.expected && !from.same_host(*s.expected))) {
      ++counts_.wrong_source;
      ++s.wrong_source;
      s.stats_dirty = true;
      return;
    }
    if (looks_like_rtcp(d)) {
      // RFC 5761 §4: RTCP on a muxed port. Not recorded and not an RTP error;
      // SRTCP is counted as RTCP without being decrypted (nothing uses it).
      if (s.srtp || RtcpCompoundView::parse(d)) {
        ++counts_.rtcp;
      } else {
        ++counts_.invalid;
      }
      return;
    }
    std::span<const std::uint8_t> plain = d;
    if (s.srtp) {
      std::size_t len = 0;
      switch (unprotect(s, d, now, &len)) {
        case SrtpStatus::kOk:
          plain = d.first(len);
          break;
        case SrtpStatus::kAuthFailed:
          ++counts_.srtp_auth_failures;
          ++s.srtp_auth_failures;
          s.stats_dirty = true;
          return;
        case SrtpStatus::kReplay:
          ++counts_.srtp_replays;
          ++s.srtp_replays;
          s.stats_dirty = true;
          return;
        case SrtpStatus::kInvalid:
          ++counts_.invalid;
          return;
      }
    }
    auto pkt = RtpPacketView::parse(plain);
    if (!pkt) {
      ++counts_.invalid;
      return;
    }
    if (!s.latched) s.latched = from;
    ++counts_.received;
    Session& sess = *s.session;
    sess.last_activity_us = now;
    sess.sink->on_rtp(s.index, now - sess.start_us, *pkt);
    if (!s.have_seq || pkt->ssrc != s.ssrc) {
      s.have_seq = true;
      s.ssrc = pkt->ssrc;
      s.max_seq = pkt->sequence;
      return;
    }
    // RFC 3550 A.1: forward distance modulo 2^16; small forward jumps are loss
    // (live estimate for metrics; the recording computes exact figures).
    auto delta = static_cast<std::uint16_t>(pkt->sequence - s.max_seq);
    if (delta > 0 && delta < 3000) {
      if (delta > 1) counts_.lost += delta - 1u;
      s.max_seq = pkt->sequence;
    }
  }

  MediaMetrics metrics_;
  struct Counts {
    std::uint64_t received = 0, lost = 0, invalid = 0, wrong_source = 0, kernel_drops = 0;
    std::uint64_t srtp_auth_failures = 0, srtp_replays = 0, rtcp = 0;
  } counts_;  // not yet in metrics_ (publish_counts)
  unsigned index_;
  std::int64_t timeout_us_;
  std::function<void(SessionHandle)>* on_timeout_;  // owned by the engine
  bool latch_port_;
  unsigned per_wake_;
  int epfd_ = -1;
  int evfd_ = -1;
  std::thread thread_;
  bool running_ = true;  // worker thread only
  std::mutex mutex_;
  std::deque<std::function<void()>> posted_;
  std::map<SessionHandle, std::unique_ptr<Session>> sessions_;
  std::array<std::array<std::uint8_t, kMaxDatagram>, kBatch> bufs_{};
  std::array<std::uint8_t, kMaxDatagram> scratch_{};  // unprotect(): a packet's copy for a second key
  std::array<sockaddr_storage, kBatch> addrs_{};
  struct alignas(cmsghdr) Control : std::array<std::uint8_t, kControlBytes> {};
  std::array<Control, kBatch> controls_{};
  iovec iov_[kBatch]{};
  mmsghdr msgs_[kBatch]{};
};

class MediaEngineImpl final : public MediaEngine {
 public:
  MediaEngineImpl(const MediaOptions& options, const MediaMetrics& metrics,
                  std::function<void(SessionHandle)> on_timeout)
      : options_(options), metrics_(metrics), on_timeout_(std::move(on_timeout)),
        next_port_(options.port_min) {}
  ~MediaEngineImpl() override { stop(); }

  common::Status start() {
    unsigned n = options_.workers == 0 ? std::max(1u, std::thread::hardware_concurrency())
                                       : options_.workers;
    for (unsigned i = 0; i < n; ++i) {
      workers_.push_back(std::make_unique<Worker>(
          metrics_, i, static_cast<std::int64_t>(options_.media_timeout_ms) * 1000, &on_timeout_,
          options_.latch_port, options_.max_packets_per_wake));
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

  SessionHandle reserve_session(const std::string& tag) override {
    if (workers_.empty()) return 0;  // stopped
    SessionHandle h = next_id_;
    Worker* w = workers_[h % workers_.size()].get();
    if (std::size_t q = w->queued(); q >= options_.queue_capacity) {
      bump(metrics_.admissions_refused);
      common::logger("media")->warn("{}: refused: media worker queue holds {} items (capacity {})",
                                    tag, q, options_.queue_capacity);
      return 0;
    }
    ++next_id_;
    sessions_[h] = {w, tag, {}, false, {}};
    return h;
  }

  void start_session(SessionHandle session, std::unique_ptr<SessionSink> sink,
                     std::int64_t start) override {
    auto sit = sessions_.find(session);
    if (sit == sessions_.end() || sit->second.started) return;
    SessionPlacement& p = sit->second;
    p.started = true;
    Worker* w = p.worker;
    auto holder = std::make_shared<std::unique_ptr<SessionSink>>(std::move(sink));
    w->post([w, session, holder, start] { w->add_session(session, std::move(*holder), start); });
    for (auto& st : p.pending) post_stream(w, session, std::move(st));
    p.pending.clear();
  }

  common::Result<OpenedStream> open_stream(SessionHandle session, const StreamSpec& spec) override {
    auto sit = sessions_.find(session);
    if (sit == sessions_.end()) return common::make_error("media.no_session", "unknown media session");
    std::unique_ptr<SrtpSession> srtp;
    if (spec.srtp) {
      auto created = SrtpSession::create(*spec.srtp, SrtpSession::Direction::kReceive);
      if (!created) return created.error();
      srtp = std::move(created).value();
    }
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
      // Loss caused by us (the socket buffer overflowed) is counted per stream.
      int one = 1;
      if (setsockopt(rtp, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one) != 0)
        common::logger("media")->debug("SO_RXQ_OVFL: {}", std::strerror(errno));
      auto st = std::make_shared<Stream>();
      st->id = next_id_++;
      st->index = spec.index;
      st->rtp_fd = rtp;
      st->rtcp_fd = rtcp;
      st->paused = spec.paused;
      st->expected = expected_source(spec.remote_address);
      st->remote_port = spec.remote_port;
      st->srtp_measured = srtp != nullptr;
      st->srtp = std::move(srtp);
      StreamId id = st->id;
      Worker* w = sit->second.worker;
      ports_in_use_.insert(port);
      streams_[id] = {port, session, spec.srtp};
      sit->second.streams.push_back(id);
      if (sit->second.started) {
        post_stream(w, session, std::move(st));
      } else {
        sit->second.pending.push_back(std::move(st));  // posted by start_session
      }
      if (metrics_.streams_open) metrics_.streams_open->add(1);
      common::logger("media")->debug("{}: stream {} (m-line {}) on port {}", sit->second.tag, id,
                                     spec.index, port);
      return OpenedStream{id, port};
    }
    return common::make_error("media.no_ports", "no free RTP port pair in " +
                                                    std::to_string(options_.port_min) + "-" +
                                                    std::to_string(options_.port_max));
  }

  void update_stream(SessionHandle session, StreamId id, const StreamSpec& spec) override {
    auto sit = sessions_.find(session);
    if (sit == sessions_.end()) return;
    Worker* w = sit->second.worker;
    auto expected = expected_source(spec.remote_address);
    bool paused = spec.paused;
    std::uint16_t remote_port = spec.remote_port;
    // New SRTP keys (a rekeying re-offer, or SAVP <-> AVP): a new context, made here so the
    // worker only swaps pointers.
    std::shared_ptr<std::unique_ptr<SrtpSession>> rekey;
    if (auto pl = streams_.find(id); pl != streams_.end() && !same_keys(pl->second.srtp, spec.srtp)) {
      rekey = std::make_shared<std::unique_ptr<SrtpSession>>();
      if (spec.srtp) {
        auto created = SrtpSession::create(*spec.srtp, SrtpSession::Direction::kReceive);
        if (!created) {
          // Validated keys do not fail here; if they did, the old keys stay and the SRC's
          // packets are counted as authentication failures.
          common::logger("media")->error("{}: stream {}: new SRTP keys refused: {}", sit->second.tag, id,
                                         created.error().message);
          rekey.reset();
        } else {
          *rekey = std::move(created).value();
        }
      }
      if (rekey) pl->second.srtp = spec.srtp;
    }
    if (Stream* st = pending_stream(sit->second, id)) {
      st->paused = paused;
      st->expected = expected;
      st->remote_port = remote_port;
      if (rekey) {
        st->srtp = std::move(*rekey);
        st->srtp_measured |= st->srtp != nullptr;
      }
      return;
    }
    if (rekey)
      w->post([w, session, id, rekey] { w->rekey_stream(session, id, std::move(*rekey)); });
    w->post([w, session, id, paused, expected, remote_port] {
      w->update_stream(session, id, paused, expected, remote_port);
    });
  }

  void close_stream(SessionHandle session, StreamId id) override {
    auto it = streams_.find(id);
    auto sit = sessions_.find(session);
    if (it == streams_.end() || sit == sessions_.end()) return;
    ports_in_use_.erase(it->second.port);
    streams_.erase(it);
    std::erase(sit->second.streams, id);
    if (metrics_.streams_open) metrics_.streams_open->add(-1);
    if (Stream* st = pending_stream(sit->second, id)) {
      Worker::close_fds(*st);
      std::erase_if(sit->second.pending, [id](const auto& p) { return p->id == id; });
      return;
    }
    Worker* w = sit->second.worker;
    w->post([w, session, id] { w->remove_stream(session, id); });
  }

  void post_event(SessionHandle session, std::string json) override {
    auto sit = sessions_.find(session);
    if (sit == sessions_.end() || !started(sit->second)) return;
    Worker* w = sit->second.worker;
    w->post([w, session, json = std::move(json)] { w->event(session, json, false); });
  }

  void post_metadata(SessionHandle session, std::string xml) override {
    auto sit = sessions_.find(session);
    if (sit == sessions_.end() || !started(sit->second)) return;
    Worker* w = sit->second.worker;
    w->post([w, session, xml = std::move(xml)] { w->event(session, xml, true); });
  }

  void close_session(SessionHandle session, std::string end_json,
                     std::function<void()> on_closed) override {
    auto sit = sessions_.find(session);
    if (sit == sessions_.end()) return;
    // Only this session's streams: a scan of every stream made each BYE cost
    // O(calls) on the SIP thread.
    for (StreamId id : sit->second.streams) {
      auto it = streams_.find(id);
      if (it == streams_.end()) continue;
      ports_in_use_.erase(it->second.port);
      if (metrics_.streams_open) metrics_.streams_open->add(-1);
      streams_.erase(it);
    }
    Worker* w = sit->second.worker;
    bool was_started = sit->second.started;
    for (auto& st : sit->second.pending) Worker::close_fds(*st);
    sessions_.erase(sit);
    if (!was_started) return;  // refused before start_session: nothing was written
    w->post([w, session, end_json = std::move(end_json), on_closed = std::move(on_closed)] {
      w->close_session(session, end_json);
      if (on_closed) on_closed();
    });
  }

  std::size_t open_streams() const override { return streams_.size(); }

  void stop() override {
    for (auto& w : workers_) w->join();
    // Placements point at the workers: forget them first, so a late
    // close_session (~SessionManager) finds nothing instead of a freed worker.
    for (auto& [h, p] : sessions_)
      for (auto& st : p.pending) Worker::close_fds(*st);
    sessions_.clear();
    streams_.clear();
    ports_in_use_.clear();
    workers_.clear();
  }

 private:
  struct SessionPlacement;
  static bool started(const SessionPlacement& p) {
    if (!p.started)  // an internal invariant of the SIP side, not input
      common::logger("media")->error("{}: work posted before start_session (ignored)", p.tag);
    return p.started;
  }
  static Stream* pending_stream(SessionPlacement& p, StreamId id) {
    for (auto& st : p.pending)
      if (st->id == id) return st.get();
    return nullptr;
  }
  static void post_stream(Worker* w, SessionHandle session, std::shared_ptr<Stream> st) {
    w->post([w, session, st] { w->add_stream(session, std::make_unique<Stream>(std::move(*st))); });
  }

  struct Placement {
    std::uint16_t port;
    SessionHandle session;
    std::shared_ptr<const SrtpKeys> srtp;  // the keys the stream's worker decrypts with
  };
  static bool same_keys(const std::shared_ptr<const SrtpKeys>& a, const std::shared_ptr<const SrtpKeys>& b) {
    if (a == b) return true;
    return a && b && *a == *b;
  }
  struct SessionPlacement {
    Worker* worker;  // not owned
    std::string tag;
    std::vector<StreamId> streams;  // open streams (a handful per session)
    bool started = false;           // start_session done: work goes to the worker
    std::vector<std::shared_ptr<Stream>> pending;  // opened before start_session
  };
  MediaOptions options_;
  MediaMetrics metrics_;
  std::function<void(SessionHandle)> on_timeout_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::uint16_t next_port_;
  std::uint64_t next_id_ = 1;
  std::unordered_set<std::uint16_t> ports_in_use_;
  std::unordered_map<StreamId, Placement> streams_;
  std::unordered_map<SessionHandle, SessionPlacement> sessions_;
};

}  // namespace

common::Result<std::unique_ptr<MediaEngine>> MediaEngine::create(
    const MediaOptions& options, const MediaMetrics& metrics,
    std::function<void(SessionHandle)> on_media_timeout) {
  auto e = std::make_unique<MediaEngineImpl>(options, metrics, std::move(on_media_timeout));
  auto st = e->start();
  if (!st) return st.error();
  return std::unique_ptr<MediaEngine>(std::move(e));
}

}  // namespace sgw::media
