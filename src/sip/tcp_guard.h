// TcpGuard: limits what idle or hostile peers can hold on our SIP TCP
// listeners, where sofia-sip has no hook: a connection that never sends a byte
// (sofia's TPTAG_IDLE timer starts only with the first message) is closed
// after the idle timeout, and a source address with more than
// max_per_source connections loses its newest ones.
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
  common::Counter* closed = nullptr;   // connections we ended (not owned, may be null)
};

class TcpGuard {
 public:
  explicit TcpGuard(TcpGuardOptions options) : options_(std::move(options)) {}
  bool enabled() const {
    return !options_.ports.empty() &&
           (options_.silent_timeout.count() > 0 || options_.max_per_source > 0);
  }
  // One pass over the process's descriptors.
  void sweep(std::chrono::steady_clock::time_point now);

 private:
  struct Seen {
    std::string peer;  // "ip:port"
    std::chrono::steady_clock::time_point first_seen;
  };
  void end(int fd, const std::string& peer, const std::string& why);

  TcpGuardOptions options_;
  std::map<int, Seen> seen_;  // by descriptor; an entry whose peer changed is a new connection
  std::shared_ptr<spdlog::logger> log_ = common::logger("sip");
};

}  // namespace sgw::sip::detail
