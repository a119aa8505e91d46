#include "sip/tcp_guard.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <linux/tcp.h>  // tcp_info with tcpi_bytes_received (glibc's lacks it)
#include <sys/socket.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

namespace sgw::sip::detail {

namespace {

struct Conn {
  int fd = -1;
  std::string ip;
  std::string peer;
  std::uint64_t bytes_received = 0;
};

// The accepted connection on one of our ports behind fd, if it is one.
bool inspect(int fd, const std::set<std::uint16_t>& ports, Conn* out) {
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) return false;
  std::uint16_t port = 0;
  if (local.ss_family == AF_INET)
    port = ntohs(reinterpret_cast<const sockaddr_in*>(&local)->sin_port);
  else if (local.ss_family == AF_INET6)
    port = ntohs(reinterpret_cast<const sockaddr_in6*>(&local)->sin6_port);
  else
    return false;
  if (ports.count(port) == 0) return false;
  int type = 0;
  socklen_t tlen = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 || type != SOCK_STREAM) return false;
  sockaddr_storage peer{};
  len = sizeof peer;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) return false;  // the listener
  char ip[INET6_ADDRSTRLEN] = {0};
  std::uint16_t pport = 0;
  if (peer.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&peer);
    ::inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    pport = ntohs(a->sin_port);
  } else {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&peer);
    ::inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    pport = ntohs(a->sin6_port);
  }
  tcp_info info{};
  socklen_t ilen = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &ilen) != 0) return false;
  out->fd = fd;
  out->ip = ip;
  out->peer = std::string(ip) + ":" + std::to_string(pport);
  out->bytes_received = info.tcpi_bytes_received;
  return true;
}

}  // namespace

void TcpGuard::end(int fd, const std::string& peer, const std::string& why) {
  ::shutdown(fd, SHUT_RDWR);
  if (options_.closed) options_.closed->inc();
  log_->warn("closed SIP TCP connection from {}: {}", peer, why);
}

void TcpGuard::message_received(const std::string& peer) {
  if (options_.message_timeout.count() == 0) return;
  auto it = fd_by_peer_.find(peer);
  Conn c;
  if (it == fd_by_peer_.end() || !inspect(it->second, options_.ports, &c) || c.peer != peer) {
    if (completed_unseen_.size() < 65536) completed_unseen_.insert(peer);  // settled at the next sweep
    return;
  }
  Seen& s = seen_[c.fd];
  s.complete_bytes = s.last_bytes = c.bytes_received;
  s.partial_since.reset();
}

bool TcpGuard::message_overdue(Seen& s, std::uint64_t bytes,
                               std::chrono::steady_clock::time_point now) const {
  const bool grew = bytes > s.last_bytes;
  if (bytes <= s.complete_bytes) {
    s.partial_since.reset();
  } else if (grew && !s.partial_since) {
    s.partial_since = now;  // the first byte of a message came since the last sweep
    s.partial_from = s.last_bytes;
  } else if (!grew && s.partial_since && bytes - s.partial_from <= 4) {
    // A CRLF or CRLFCRLF keepalive (RFC 5626 §3.5.1) and then quiet: sofia consumed it.
    s.complete_bytes = bytes;
    s.partial_since.reset();
  }
  s.last_bytes = bytes;
  return s.partial_since && now - *s.partial_since >= options_.message_timeout;
}

void TcpGuard::sweep(std::chrono::steady_clock::time_point now) {
  std::vector<Conn> conns;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    int fd = std::atoi(e->d_name);
    if (fd == ::dirfd(dir)) continue;
    Conn c;
    if (inspect(fd, options_.ports, &c)) conns.push_back(std::move(c));
  }
  ::closedir(dir);

  std::map<int, Seen> seen;
  for (const auto& c : conns) {
    auto it = seen_.find(c.fd);
    Seen s;
    if (it != seen_.end() && it->second.peer == c.peer) {
      s = it->second;
    } else {
      s.peer = c.peer;
      s.first_seen = now;
    }
    if (completed_unseen_.count(c.peer)) s.complete_bytes = s.last_bytes = c.bytes_received;
    seen.emplace(c.fd, s);
  }
  seen_ = std::move(seen);
  completed_unseen_.clear();
  fd_by_peer_.clear();
  for (const auto& c : conns) fd_by_peer_[c.peer] = c.fd;

  std::map<std::string, std::vector<const Conn*>> by_source;
  for (const auto& c : conns) {
    Seen& s = seen_[c.fd];
    if (options_.silent_timeout.count() > 0 && c.bytes_received == 0 &&
        now - s.first_seen >= options_.silent_timeout) {
      end(c.fd, c.peer, "nothing received for " +
                            std::to_string(options_.silent_timeout.count() / 1000) +
                            " s (sip.tcp_idle_timeout_s)");
      continue;
    }
    if (options_.message_timeout.count() > 0 && message_overdue(s, c.bytes_received, now)) {
      end(c.fd, c.peer, "a message not complete " + std::to_string(options_.message_timeout.count() / 1000) +
                            " s after its first byte (sip.tcp_message_timeout_s; " +
                            std::to_string(c.bytes_received - s.partial_from) + " bytes received)");
      continue;
    }
    by_source[c.ip].push_back(&c);
  }
  if (options_.max_per_source == 0) return;
  for (auto& [ip, list] : by_source) {
    if (list.size() <= options_.max_per_source) continue;
    // Oldest first: the connections a source already relies on are kept.
    std::stable_sort(list.begin(), list.end(), [this](const Conn* a, const Conn* b) {
      return seen_[a->fd].first_seen < seen_[b->fd].first_seen;
    });
    for (std::size_t i = options_.max_per_source; i < list.size(); ++i)
      end(list[i]->fd, list[i]->peer,
          "more than " + std::to_string(options_.max_per_source) + " connections from " + ip +
              " (sip.max_connections_per_source)");
  }
}

}  // namespace sgw::sip::detail
