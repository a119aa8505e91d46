#include "control/control_server.h"

#include <chrono>

// The kernel queues this many connections before accept() (httplib's default is 5).
#define CPPHTTPLIB_LISTEN_BACKLOG 128
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/thread_name.h"

namespace sgw::control {

namespace {
// A client that connects and sends nothing (or stops half-way) holds one
// worker for at most kIoTimeout; kWorkers of them bound the threads. With 50
// such clients, /healthz waits at most about (50 / kWorkers + 1) * kIoTimeout.
constexpr std::size_t kWorkers = 32;
constexpr std::chrono::seconds kIoTimeout{2};
}  // namespace

ControlServer::ControlServer(const common::MetricsRegistry* metrics, ControlCallbacks callbacks)
    : metrics_(metrics), callbacks_(std::move(callbacks)), server_(std::make_unique<httplib::Server>()) {}

ControlServer::~ControlServer() { stop(); }

common::Status ControlServer::start(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos)
    return common::make_error("http.listen", "http.listen " + listen + ": expected ADDR:PORT");
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = 0;
  try {
    port = std::stoi(listen.substr(colon + 1));
  } catch (...) {
    port = -1;
  }
  if (port <= 0 || port > 65535)
    return common::make_error("http.listen", "http.listen " + listen + ": bad port");

  server_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  server_->Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    auto reasons = callbacks_.not_ready ? callbacks_.not_ready() : std::vector<NotReady>{};
    nlohmann::json body = {{"ready", reasons.empty()}, {"reasons", nlohmann::json::array()}};
    for (const auto& r : reasons) body["reasons"].push_back({{"reason", r.reason}, {"detail", r.detail}});
    if (!reasons.empty()) res.status = 503;
    res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                    "application/json");
  });
  auto action = [](const std::function<std::string()>& fn) {
    return [&fn](const httplib::Request&, httplib::Response& res) {
      if (!fn) {
        res.status = 404;
        return;
      }
      res.status = 202;
      res.set_content(fn() + "\n", "application/json");
    };
  };
  server_->Post("/drain", action(callbacks_.drain));
  server_->Post("/resume", action(callbacks_.resume));
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_->render(), "text/plain; version=0.0.4");
  });
  server_->Get("/sessions", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(callbacks_.sessions_json ? callbacks_.sessions_json() : "[]", "application/json");
  });
  server_->new_task_queue = [] { return new httplib::ThreadPool(kWorkers); };
  server_->set_read_timeout(kIoTimeout);
  server_->set_write_timeout(kIoTimeout);
  server_->set_keep_alive_timeout(kIoTimeout.count());
  server_->set_keep_alive_max_count(10);
  if (!server_->bind_to_port(host.c_str(), port))
    return common::make_error("http.listen", "cannot listen on http " + listen);
  thread_ = std::thread([this] {
    common::set_thread_name("sgw-http");
    server_->listen_after_bind();
  });
  // httplib's stop() does nothing before the accept loop runs: wait for it,
  // or a signal right after start-up would leave stop() joining forever.
  for (int i = 0; i < 5000 && !server_->is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return common::Ok{};
}

void ControlServer::stop() {
  if (thread_.joinable()) {
    server_->stop();
    thread_.join();
  }
}

common::Result<ControlReply> control_post(const std::string& listen, const std::string& path) {
  std::string base = listen;
  if (base.rfind("http://", 0) != 0) base = "http://" + base;
  httplib::Client client(base);
  client.set_connection_timeout(5);
  client.set_read_timeout(10);
  auto res = client.Post(path);
  if (!res)
    return common::make_error("control.connect", "POST " + base + path + ": " + httplib::to_string(res.error()));
  return ControlReply{res->status, res->body};
}

}  // namespace sgw::control
