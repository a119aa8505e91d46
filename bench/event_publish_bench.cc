// The cost of EventPublisher::publish() on the publishing thread (the SIP
// thread raises session.* events): build the event's document and entry,
// then stage it (one small file written and renamed, no fsync) so that it
// survives a kill -9 once publish() returns (docs/integrations.md, "Event
// webhooks"). Publishes N events paced at R per second into an event queue
// folder on a real disk (default: a new folder under the current directory,
// not /dev/shm), with the admission thread running and fsyncing as in the
// daemon, and prints the per-call time, wall and the thread's CPU time (what
// the call costs, without the waits for a CPU a busy machine adds): mean,
// p50, p99, max.
//
// Run: build/<preset>/bench/sgw-event-publish-bench [folder] [events=4000] [rate=800]
// (800/s: 200 calls per second with 4 events each).
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "control/events.h"

namespace {

double thread_cpu_us() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

void print(const char* what, std::vector<double>& us) {
  std::sort(us.begin(), us.end());
  double sum = 0;
  for (double v : us) sum += v;
  auto pct = [&](double p) { return us[std::min(us.size() - 1, static_cast<std::size_t>(p * us.size()))]; };
  std::printf("  %-5s mean %.1f us  p50 %.1f us  p99 %.1f us  max %.1f us\n", what, sum / us.size(), pct(0.50),
              pct(0.99), us.back());
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  using Clock = std::chrono::steady_clock;
  std::string base = argc > 1 ? argv[1] : fs::current_path().string();
  const int events = argc > 2 ? std::atoi(argv[2]) : 4000;
  const int rate = argc > 3 ? std::atoi(argv[3]) : 800;
  if (events <= 0 || rate <= 0) {
    std::fprintf(stderr, "usage: %s [folder] [events>0] [rate>0]\n", argv[0]);
    return 2;
  }
  std::string t = (fs::path(base) / "sgw-event-bench-XXXXXX").string();
  if (!::mkdtemp(t.data())) {
    std::perror("mkdtemp");
    return 1;
  }
  sgw::storage::DeliveryQueueOptions o;
  o.dir = t + "/events";
  auto q = sgw::storage::DeliveryQueue::open(o);
  if (!q) {
    std::fprintf(stderr, "%s\n", q.error().message.c_str());
    return 1;
  }
  std::vector<double> us, cpu;
  us.reserve(static_cast<std::size_t>(events));
  cpu.reserve(static_cast<std::size_t>(events));
  {
    sgw::control::EventPublisher publisher(q->get(), "gw-bench-1", "eu-west-1", {});
    const auto step = std::chrono::nanoseconds(1'000'000'000 / rate);
    auto next = Clock::now();
    for (int i = 0; i < events; ++i) {
      // A session.started of a two-party call with two streams (~1 KB document).
      sgw::storage::WebhookEvent e;
      e.type = "session.started";
      char id[40];
      std::snprintf(id, sizeof id, "63de3bc1-ca33-44d6-9d34-%012d", i);
      e.recording_id = id;
      e.conversation_id = "3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
      e.call_id = std::string("c283f8da-") + id + "@edge.example.com";
      e.data = {{"start_time", "2026-12-04T10:41:07.512Z"},
                {"from", "udp:10.1.2.3:5060"},
                {"transport", "udp"},
                {"conversation_id_rule", "x-genesys-conversation-id"},
                {"streams", {{{"label", "1"}, {"codec", "PCMA/8000"}, {"port", 20000}, {"paused", false}},
                             {{"label", "2"}, {"codec", "PCMA/8000"}, {"port", 20002}, {"paused", false}}}},
                {"participants", {{{"aor", "sip:+441234567890@example.com"}, {"name", "Caller"}, {"role", "external"}},
                                  {{"aor", "sip:agent-17@example.com"}, {"name", "Agent 17"}, {"role", "internal"}}}}};
      std::this_thread::sleep_until(next);
      next += step;
      auto t0 = Clock::now();
      double c0 = thread_cpu_us();
      publisher.publish(std::move(e));
      cpu.push_back(thread_cpu_us() - c0);
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    publisher.stop();
  }
  q->reset();
  std::printf("publish() on the caller's thread, %d events at %d/s into %s:\n", events, rate, o.dir.c_str());
  print("wall", us);
  print("cpu", cpu);
  fs::remove_all(t);
  return 0;
}
