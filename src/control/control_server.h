// ControlServer: the HTTP side door — /healthz, /readyz, /metrics (Prometheus
// text format), /sessions (JSON list of active recording sessions), and
// POST /drain, POST /resume (drain a running node without stopping it).
// /readyz answers JSON: {"ready": true|false, "reasons": [{"reason", "detail"}]}
// (503 when any reason holds; docs/failover.md).
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
#include <vector>

#include "common/metrics.h"
#include "common/result.h"

namespace httplib {
class Server;
}

namespace sgw::control {

// One reason the node is not ready: a metric-label-like name and a line for people.
struct NotReady {
  std::string reason;  // e.g. "draining", "max_sessions", "spool_disk_low"
  std::string detail;
};

struct ControlCallbacks {
  // Empty: ready. Otherwise every reason we are not (served with 503).
  std::function<std::vector<NotReady>()> not_ready;
  std::function<std::string()> sessions_json;
  // POST /drain and POST /resume: start or cancel a drain; return the JSON
  // body of the 202 answer. Empty: the paths answer 404.
  std::function<std::string()> drain;
  std::function<std::string()> resume;
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

// Client side (`siprecd drain`): POSTs to PATH of the control server at
// LISTEN ("ADDR:PORT", "[::1]:PORT" or "http://ADDR:PORT"); returns the HTTP
// status and body. The error names the address.
struct ControlReply {
  int status = 0;
  std::string body;
};
common::Result<ControlReply> control_post(const std::string& listen, const std::string& path);

}  // namespace sgw::control
