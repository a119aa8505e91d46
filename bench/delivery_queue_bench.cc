// The cost of a delivery-queue pick and of its 2 s rescan, against the number
// of recordings delivered before (issue 8 item 16): 0, 10k and 1M delivered
// entries in the catalogue, 100 pending entries in the queue folder. Delivered
// entries live in the catalogue (SQLite), not in the hot queue, so the figures
// must not grow with them. Run: build/<preset>/bench/sgw-delivery-queue-bench
// (the 1M catalogue is built once, in some seconds).
//
// A pick is DeliveryQueue::run_once() on a due entry whose sink answers
// "retry": choose the earliest due entry, attempt it, rewrite its entry file.
// The queue folder is on /dev/shm when there is one, so that fsync does not
// dominate what is measured.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/logging.h"
#include "storage/catalogue.h"
#include "storage/delivery_queue.h"

namespace {

namespace fs = std::filesystem;
using namespace sgw::storage;

constexpr int kPending = 100;

std::string make_dir() {
  fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
  std::string t = (base / "sgw-dq-bench-XXXXXX").string();
  return ::mkdtemp(t.data());
}

DeliveryEntry recording(const std::string& id, const std::string& sink) {
  DeliveryEntry e;
  e.recording_id = id;
  e.sink = sink;
  e.conversation_id = "conv-" + id.substr(0, 12);
  e.start_unix_ms = 1'700'000'000'000;
  e.end_unix_ms = e.start_unix_ms + 180'000;
  for (const char* ext : {".wav", ".json"}) {
    DeliveryObject o;
    o.path = "/var/recordings/2026/12/04/" + id + ext;
    o.key = "eu/2026/12/04/" + e.conversation_id + "/" + id + ext;
    o.content_type = ext[1] == 'w' ? "audio/wav" : "application/json";
    e.objects.push_back(o);
  }
  return e;
}

struct RetrySink : DeliverySink {
  DeliveryOutcome deliver(DeliveryEntry&, const std::function<void(const DeliveryEntry&)>&) override {
    DeliveryOutcome o;
    o.kind = DeliveryOutcome::Kind::kRetry;
    o.code = "Transport.CouldNotConnect";
    o.message = "PutObject s3://b/k: connection refused";
    return o;
  }
};

// A queue folder with `delivered` delivered entries (catalogue rows, each with
// two objects) and kPending pending entries.
struct Setup {
  std::string dir;
  std::int64_t now = 1'800'000'000'000;
  std::unique_ptr<DeliveryQueue> queue;

  explicit Setup(std::int64_t delivered) {
    dir = make_dir();
    {
      auto c = Catalogue::open(dir + "/catalogue.sqlite", Catalogue::Mode::kReadWrite);
      if (!c) throw std::runtime_error(c.error().message);
      std::vector<DeliveryEntry> batch;
      for (std::int64_t i = 0; i < delivered; ++i) {
        char id[64];
        std::snprintf(id, sizeof id, "%08llx-0000-4000-8000-%012llx", static_cast<unsigned long long>(i),
                      static_cast<unsigned long long>(i * 7919));
        {
          DeliveryEntry e = recording(id, "s3");
          e.state = DeliveryState::kDelivered;
          e.delivered_unix_ms = e.start_unix_ms + 200'000;
          e.bucket = "recordings";
          for (auto& o : e.objects) {
            o.delivered = true;
            o.size = 1'440'044;
            o.sha256 = std::string(64, 'a');
            o.etag = std::string(32, 'b');
            o.version_id = "v-" + std::string(id);
            o.verified = "size sha256-metadata metadata retention=COMPLIANCE@2033-12-04T00:00:00Z";
          }
          batch.push_back(std::move(e));
        }
        if (batch.size() >= 100'000 || i + 1 == delivered) {
          std::vector<const DeliveryEntry*> ptrs;
          for (const auto& e : batch) ptrs.push_back(&e);
          if (auto st = (*c)->put(ptrs); !st) throw std::runtime_error(st.error().message);
          batch.clear();
        }
      }
    }
    sgw::common::init_logging("error");  // a warning per failed attempt otherwise
    DeliveryQueueOptions o;
    o.dir = dir;
    o.now_ms = [this] { return now; };
    o.jitter = [] { return 0.5; };
    o.local_retention_ms = 30LL * 86'400'000;
    auto q = DeliveryQueue::open(o);
    if (!q) throw std::runtime_error(q.error().message);
    queue = std::move(q).value();
    queue->add_sink("s3", [] { return std::make_unique<RetrySink>(); });
    for (int i = 0; i < kPending; ++i) (void)queue->enqueue(recording("pending-" + std::to_string(i), "s3"));
  }
  ~Setup() {
    queue.reset();
    fs::remove_all(dir);
  }
};

Setup& setup(std::int64_t delivered) {
  static std::map<std::int64_t, std::unique_ptr<Setup>> cache;
  auto& s = cache[delivered];
  if (!s) s = std::make_unique<Setup>(delivered);
  return *s;
}

void BM_Pick(benchmark::State& state) {
  Setup& s = setup(state.range(0));
  for (auto _ : state) {
    s.now += 3'600'000;  // every pending entry is due again
    if (!s.queue->run_once()) state.SkipWithError("nothing picked");
  }
  state.counters["delivered"] = static_cast<double>(state.range(0));
  state.counters["pending"] = kPending;
}
BENCHMARK(BM_Pick)->Arg(0)->Arg(10'000)->Arg(1'000'000)->Unit(benchmark::kMicrosecond)->Iterations(2000);

// The 2 s rescan: list and stat the queue folder, retry compactions, ask the
// catalogue for local copies due for deletion.
void BM_Rescan(benchmark::State& state) {
  Setup& s = setup(state.range(0));
  for (auto _ : state) s.queue->rescan();
  state.counters["delivered"] = static_cast<double>(state.range(0));
  state.counters["pending"] = kPending;
}
BENCHMARK(BM_Rescan)->Arg(0)->Arg(10'000)->Arg(1'000'000)->Unit(benchmark::kMicrosecond)->Iterations(500);

}  // namespace

BENCHMARK_MAIN();
