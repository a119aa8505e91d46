// ControlServer: the HTTP side door — /healthz, /readyz, /metrics (Prometheus
// text format) and /sessions (JSON list of active recording sessions).
//
// Clients are served by a fixed pool of 32 threads; a client that stalls
// (sends nothing, or stops mid-request) is dropped after 2 s without data, so
// stalled clients cannot keep /healthz from answering.
//
// Thread: runs its own listener thread; the callbacks it is given are called
// from that thread and must be thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/metrics.h"
#include "common/result.h"

namespace httplib {
class Server;
}

namespace sgw::control {

struct ControlCallbacks {
  // Empty string: ready. Otherwise the reason we are not (served with 503).
  std::function<std::string()> not_ready_reason;
  std::function<std::string()> sessions_json;
};

class ControlServer {
 public:
  ControlServer(const common::MetricsRegistry* metrics, ControlCallbacks callbacks);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Binds "ADDR:PORT" ("[::1]:8080" for IPv6) and starts serving. The error
  // names the address.
  common::Status start(const std::string& listen);
  void stop();

 private:
  const common::MetricsRegistry* metrics_;  // not owned; outlives the server
  ControlCallbacks callbacks_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace sgw::control
