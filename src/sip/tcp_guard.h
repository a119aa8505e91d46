// TcpGuard: limits what idle or hostile peers can hold on our SIP TCP
// listeners, where sofia-sip has no hook: a connection that never sends a byte
// (sofia's TPTAG_IDLE timer starts only with the first message) is closed
// after the idle timeout, and a source address with more than
// max_per_source connections loses its newest ones.
//
// A message trickled byte by byte is cut too: sofia restarts its incomplete-
// message timer (TPTAG_TIMEOUT) with every byte, so each connection gets its
// own first-byte clock here. The endpoint reports every complete message it
// receives on a connection (message_received); bytes beyond the last complete
// message (TCP_INFO's byte count) are a message in progress, and one not
// complete within message_timeout of its first byte (as seen by the sweep,
// within a second) closes the connection. RFC 5626 keepalives (CRLFCRLF,
// consumed by sofia without a message) are told apart only by size: a burst of
// at most 4 bytes followed by a quiet second starts no clock.
//
// It finds the accepted connections among the process's descriptors (TCP,
// local port one of ours, connected) and ends one with shutdown(2): sofia then
// reads EOF and closes it itself, so no descriptor is closed behind its back.
//
// Thread: the SIP thread (the one that runs sofia), via sweep().
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "common/logging.h"
#include "common/metrics.h"

namespace sgw::sip::detail {

struct TcpGuardOptions {
  std::set<std::uint16_t> ports;       // our TCP listen ports
  std::chrono::milliseconds silent_timeout{0};  // 0: never
  std::uint32_t max_per_source = 0;    // 0: unlimited
  std::chrono::milliseconds message_timeout{0};  // first byte -> complete message; 0: never
  common::Counter* closed = nullptr;   // connections we ended (not owned, may be null)
};

class TcpGuard {
 public:
  explicit TcpGuard(TcpGuardOptions options) : options_(std::move(options)) {}
  bool enabled() const {
    return !options_.ports.empty() &&
           (options_.silent_timeout.count() > 0 || options_.max_per_source > 0 ||
            options_.message_timeout.count() > 0);
  }
  // One pass over the process's descriptors.
  void sweep(std::chrono::steady_clock::time_point now);
  // A complete SIP message arrived on the connection from peer ("ip:port",
  // IPv6 without brackets): the bytes received so far are not a message in progress.
  void message_received(const std::string& peer);

 private:
  struct Seen {
    std::string peer;  // "ip:port"
    std::chrono::steady_clock::time_point first_seen;
    std::uint64_t complete_bytes = 0;  // bytes received up to the end of the last complete message
    std::uint64_t last_bytes = 0;      // at the previous sweep
    std::optional<std::chrono::steady_clock::time_point> partial_since;  // first byte of a message in progress
    std::uint64_t partial_from = 0;    // bytes received before that message began
  };
  // The first-byte clock of one connection; true when it must be closed.
  bool message_overdue(Seen& s, std::uint64_t bytes, std::chrono::steady_clock::time_point now) const;
  void end(int fd, const std::string& peer, const std::string& why);

  TcpGuardOptions options_;
  std::map<int, Seen> seen_;  // by descriptor; an entry whose peer changed is a new connection
  std::map<std::string, int> fd_by_peer_;  // as of the last sweep
  std::set<std::string> completed_unseen_;  // message_received for a connection not swept yet
  std::shared_ptr<spdlog::logger> log_ = common::logger("sip");
};

}  // namespace sgw::sip::detail
