// Finalizer: integrity of the published recording (expected/received/lost per
// stream, spool damage, silence, media counters) and the job machinery under
// faults (failed finalisation retried with its cause persisted, queue overflow
// found by the rescan, background recovery, bounded concurrency). Spools are
// real files written by SpoolWriter; faults come from a failing delivery hook
// (the fake of the durable queue), corrupted bytes and failure records.
#include "recording/finalizer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "recording/spool_events.h"
#include "recording/spool_writer.h"
#include "spool_test_util.h"

namespace sgw::recording {
namespace {

using nlohmann::json;
using testing::TempDir;

constexpr std::int64_t kStartUnixUs = 1'717'421'820'000'000;  // 2024-06-03T13:37:00Z

// A synthetic session spool: PCMU streams, 20 ms packets.
class SpoolBuilder {
 public:
  SpoolBuilder(const std::string& dir, const std::string& id) {
    auto w = SpoolWriter::create(dir, id);
    EXPECT_TRUE(w.ok());
    w_ = std::move(w).value();
    json start = {{"recording_id", id}, {"call_id", id + "@src"}, {"start_unix_us", kStartUnixUs},
                  {"node", "gw1"}, {"region", "eu"}, {"conversation_id", "conv-" + id}};
    w_->append_json(RecordType::kSessionStart, 0, start.dump());
  }
  // One "streams" event: (index, label, paused) for each stream.
  SpoolBuilder& streams(std::int64_t at_us, std::vector<std::tuple<int, std::string, bool>> list) {
    json s = json::array();
    for (const auto& [index, label, paused] : list)
      s.push_back({{"index", index}, {"label", label}, {"recorded", true}, {"paused", paused},
                   {"codec", "PCMU/8000"},
                   {"payloads", json::array({{{"pt", 0}, {"encoding", "PCMU"}, {"clock_rate", 8000}}})}});
    w_->append_json(RecordType::kEvent, at_us, json{{"event", "streams"}, {"why", "test"}, {"streams", s}}.dump());
    return *this;
  }
  // Packets seq first.. every 20 ms from at_us; skip: sequence numbers not sent.
  SpoolBuilder& packets(int stream, std::int64_t at_us, int count, std::uint16_t first = 0,
                        std::vector<std::uint16_t> skip = {}, std::uint32_t ssrc = 0x1111) {
    std::vector<std::uint8_t> payload(160, 0xFF);
    for (int i = 0; i < count; ++i) {
      auto seq = static_cast<std::uint16_t>(first + i);
      if (std::find(skip.begin(), skip.end(), seq) != skip.end()) continue;
      w_->append_rtp(static_cast<std::uint8_t>(stream), at_us + i * 20000, seq, seq * 160U, ssrc, 0, false, payload);
    }
    return *this;
  }
  SpoolBuilder& event(std::int64_t at_us, const std::string& doc) {
    w_->append_json(RecordType::kEvent, at_us, doc);
    return *this;
  }
  SpoolBuilder& end(std::int64_t at_us, json doc = {{"cause", "bye"}, {"answered", true}, {"complete", true}}) {
    w_->append_json(RecordType::kSessionEnd, at_us, doc.dump());
    return *this;
  }
  void close() { EXPECT_TRUE(w_->close().ok()); }

 private:
  std::unique_ptr<SpoolWriter> w_;
};

// A clean two-second call on stream 0.
void clean_call(const std::string& dir, const std::string& id) {
  SpoolBuilder b(dir, id);
  b.streams(0, {{0, "1", false}}).packets(0, 0, 100).end(2'000'000).close();
}

struct Env {
  TempDir spool;
  TempDir out;
  common::Counter published, recovered, failed, queue_full, retries, incomplete, rescanned;
  common::Gauge depth, recovery;
  common::LabelledCounter warnings{"kind"};
  common::Counter expected, received, lost, late, duplicated, ssrc_changes;
  common::Histogram loss_ratio{{0, 0.01, 0.05}};
  common::LabelledCounter gap_ms{"cause"};

  FinalizerOptions options() {
    FinalizerOptions o;
    o.spool_dir = spool.path();
    o.recordings_dir = out.path();
    o.rescan_interval = std::chrono::milliseconds(0);
    o.retry_initial = std::chrono::milliseconds(10);
    o.retry_max = std::chrono::milliseconds(40);
    return o;
  }
  FinalizerMetrics metrics() {
    return {&published, &recovered, &failed, &queue_full, &retries, &incomplete, &rescanned,
            &depth,     &recovery,  &warnings,
            {&expected, &received, &lost, &late, &duplicated, &loss_ratio, &gap_ms, &ssrc_changes}};
  }
  json doc(const std::string& id) const {
    std::ifstream in(out.file(id + ".json"));
    return json::parse(in, nullptr, false);
  }
  bool published_file(const std::string& id) const { return std::filesystem::exists(out.file(id + ".json")); }
};

// Polls cond for up to 20 s (a busy machine); true once it holds.
template <typename F>
bool wait_for(F cond) {
  for (int i = 0; i < 2000; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

std::uint64_t warning_count(const common::LabelledCounter& c, const std::string& kind) {
  for (const auto& [k, v] : c.snapshot())
    if (k == kind) return v;
  return 0;
}

// ---- integrity -------------------------------------------------------------

TEST(FinalizerIntegrity, CleanCallIsCompleteAndCountsMatch) {
  Env env;
  clean_call(env.spool.path(), "r1");
  Finalizer f(env.options(), env.metrics());
  auto r = f.finalize_file(env.spool.file("r1.spool"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->complete);
  json d = env.doc("r1");
  EXPECT_EQ(d["complete"], true);
  EXPECT_EQ(d["warnings"], json::array());
  const auto& s = d["integrity"]["streams"][0];
  EXPECT_EQ(s["packets_expected"], 100);
  EXPECT_EQ(s["packets_received"], 100);
  EXPECT_EQ(s["packets_lost"], 0);
  EXPECT_EQ(s["silences"], json::array());
  EXPECT_EQ(d["integrity"]["spool"]["bytes_unreadable"], 0);
  EXPECT_EQ(d["integrity"]["causes"], json::array());
  EXPECT_FALSE(std::filesystem::exists(env.spool.file("r1.spool")));
}

// Sequence holes are network loss (never reached us): counted, not damage.
TEST(FinalizerIntegrity, SequenceHolesAreLossNotDamage) {
  Env env;
  SpoolBuilder b(env.spool.path(), "r1");
  b.streams(0, {{0, "1", false}}).packets(0, 0, 100, 65500, {65530, 65531, 3}).end(2'000'000).close();
  Finalizer f(env.options(), env.metrics());
  ASSERT_TRUE(f.finalize_file(env.spool.file("r1.spool")).ok());
  json d = env.doc("r1");
  const auto& s = d["integrity"]["streams"][0];
  EXPECT_EQ(s["packets_expected"], 100);  // across the 16-bit wrap (RFC 3550 A.3)
  EXPECT_EQ(s["packets_received"], 97);
  EXPECT_EQ(s["packets_lost"], 3);
  EXPECT_EQ(d["complete"], true) << d["incomplete_reason"];
  // The operator metrics carry the same figures (sgw_recorded_*, docs/operations.md).
  EXPECT_EQ(env.expected.value(), 100U);
  EXPECT_EQ(env.received.value(), 97U);
  EXPECT_EQ(env.lost.value(), 3U);
  EXPECT_EQ(env.loss_ratio.cumulative(), (std::vector<std::uint64_t>{0, 0, 1, 1}));  // 3 % <= 0.05
}

// A new SSRC mid-stream (the SRC restarted its media): listed in the JSON and counted.
TEST(FinalizerIntegrity, SsrcChangeIsCounted) {
  Env env;
  SpoolBuilder b(env.spool.path(), "r1");
  b.streams(0, {{0, "1", false}}).packets(0, 0, 50, 0, {}, 0x1111).packets(0, 1'000'000, 50, 7000, {}, 0x2222)
      .end(2'000'000).close();
  Finalizer f(env.options(), env.metrics());
  ASSERT_TRUE(f.finalize_file(env.spool.file("r1.spool")).ok());
  json d = env.doc("r1");
  EXPECT_EQ(d["streams"][0]["ssrcs"], json({0x1111, 0x2222})) << d["streams"];
  EXPECT_EQ(env.ssrc_changes.value(), 1U);
}

TEST(FinalizerIntegrity, SpoolFaultRecordMakesTheRecordingIncomplete) {
  Env env;
  SpoolBuilder b(env.spool.path(), "r1");
  b.streams(0, {{0, "1", false}}).packets(0, 0, 100)
      .event(1'000'000, SpoolFault{7, 2, 0, "write /s/r1.spool: No space left on device"}.encode())
      .end(2'000'000)
      .close();
  Finalizer f(env.options(), env.metrics());
  auto r = f.finalize_file(env.spool.file("r1.spool"));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->complete);
  json d = env.doc("r1");
  EXPECT_EQ(d["complete"], false);
  EXPECT_EQ(d["integrity"]["spool"]["records_dropped"], 7);
  EXPECT_EQ(d["integrity"]["spool"]["write_errors"], 2);
  EXPECT_NE(d["incomplete_reason"].get<std::string>().find("7 record(s) dropped"), std::string::npos) << d;
  EXPECT_NE(d["warnings"][0].get<std::string>().find("No space left on device"), std::string::npos) << d;
  EXPECT_EQ(env.incomplete.value(), 1U);
  EXPECT_EQ(warning_count(env.warnings, "spool_damage"), 1U);
  // The damage record is integrity, not a session event.
  for (const auto& e : d["events"]) EXPECT_EQ(e["what"].get<std::string>().find("spool_fault"), std::string::npos);
}

TEST(FinalizerIntegrity, UnreadableSpoolBytesMakeTheRecordingIncomplete) {
  Env env;
  clean_call(env.spool.path(), "r1");
  auto bytes = testing::read_bytes(env.spool.file("r1.spool"));
  bytes[bytes.size() / 2] ^= 0x40;  // inside some RTP record
  testing::write_bytes(env.spool.file("r1.spool"), bytes);
  Finalizer f(env.options(), env.metrics());
  ASSERT_TRUE(f.finalize_file(env.spool.file("r1.spool")).ok());
  json d = env.doc("r1");
  EXPECT_EQ(d["complete"], false);
  EXPECT_GT(d["integrity"]["spool"]["bytes_unreadable"].get<int>(), 0);
  EXPECT_EQ(d["integrity"]["spool"]["regions_unreadable"], 1);
  EXPECT_LT(d["integrity"]["streams"][0]["packets_received"].get<int>(), 100);
}

TEST(FinalizerIntegrity, MissingEndAfterAWriteFaultBlamesTheSpoolWrite) {
  Env env;
  SpoolBuilder b(env.spool.path(), "r1");
  b.streams(0, {{0, "1", false}}).packets(0, 0, 50)
      .event(1'000'000, SpoolFault{0, 1, 0, "write /s/r1.spool: No space left on device"}.encode())
      .close();  // no end record: it never reached the disk
  Finalizer f(env.options(), env.metrics());
  ASSERT_TRUE(f.finalize_file(env.spool.file("r1.spool")).ok());
  json d = env.doc("r1");
  EXPECT_EQ(d["complete"], false);
  EXPECT_EQ(d["incomplete_reason"].get<std::string>().rfind("spool write failed (write /s/r1.spool: No space", 0), 0u)
      << d["incomplete_reason"];
}

TEST(FinalizerIntegrity, SilenceWhileActiveIsWarnedPausesAreNot) {
  Env env;
  SpoolBuilder b(env.spool.path(), "r1");
  // Stream 0 (label 1): audio 0-2 s, nothing 2-15 s, audio 15-17 s.
  // Stream 1 (label 2): same packets, but paused from 2 s to 15 s.
  b.streams(0, {{0, "1", false}, {1, "2", false}})
      .packets(0, 0, 100).packets(1, 0, 100)
      .streams(2'000'000, {{0, "1", false}, {1, "2", true}})
      .streams(15'000'000, {{0, "1", false}, {1, "2", false}})
      .packets(0, 15'000'000, 100, 100).packets(1, 15'000'000, 100, 100)
      .end(17'000'000)
      .close();
  Finalizer f(env.options(), env.metrics());
  ASSERT_TRUE(f.finalize_file(env.spool.file("r1.spool")).ok());
  json d = env.doc("r1");
  EXPECT_EQ(d["complete"], true) << "silence is a warning, not missing audio";
  ASSERT_EQ(d["warnings"].size(), 1u) << d["warnings"];
  EXPECT_EQ(d["warnings"][0], "stream 1: no audio received for 13.0 s");
  const auto& s0 = d["integrity"]["streams"][0]["silences"];
  ASSERT_EQ(s0.size(), 1u);
  EXPECT_NEAR(s0[0]["start_ms"].get<double>(), 1980, 1);
  EXPECT_NEAR(s0[0]["length_ms"].get<double>(), 13020, 1);
  EXPECT_EQ(d["integrity"]["streams"][1]["silences"], json::array());
  EXPECT_EQ(warning_count(env.warnings, "silence"), 1U);
}

TEST(FinalizerIntegrity, AStreamThatReceivedNothingIsWarned) {
  Env env;
  SpoolBuilder b(env.spool.path(), "r1");
  b.streams(0, {{0, "1", false}, {1, "2", false}}).packets(0, 0, 1000).end(20'000'000).close();
  Finalizer f(env.options(), env.metrics());
  ASSERT_TRUE(f.finalize_file(env.spool.file("r1.spool")).ok());
  json d = env.doc("r1");
  EXPECT_EQ(d["warnings"], json::array({"stream 2: no audio received at all (20.0 s)"}));
}

TEST(FinalizerIntegrity, MediaCountersFillWrongSourceAndKernelDrops) {
  Env env;
  StreamCounters sc;
  sc.streams[0] = {350, 0};
  sc.streams[1] = {0, 12};
  SpoolBuilder b(env.spool.path(), "r1");
  b.streams(0, {{0, "1", false}, {1, "2", false}})
      .packets(0, 0, 100).packets(1, 0, 100)
      .event(1'000'000, StreamCounters{{{0, {100, std::nullopt}}}}.encode())  // an earlier, smaller count
      .event(2'000'000, sc.encode())
      .end(2'000'000)
      .close();
  Finalizer f(env.options(), env.metrics());
  ASSERT_TRUE(f.finalize_file(env.spool.file("r1.spool")).ok());
  json d = env.doc("r1");
  EXPECT_EQ(d["integrity"]["streams"][0]["packets_wrong_source"], 350);
  EXPECT_EQ(d["integrity"]["streams"][1]["packets_kernel_dropped"], 12);
  EXPECT_EQ(d["complete"], false);  // the kernel dropped audio that reached us
  EXPECT_EQ(d["warnings"], json::array({"stream 2: 12 packet(s) dropped by the kernel (receive buffer full)",
                                        "stream 1: 350 packet(s) from an unexpected source dropped"}));
}

// ---- jobs --------------------------------------------------------------------

// The delivery queue refuses twice (disk full), then accepts: the recording is
// published without a restart, the failures and their cause are in its JSON.
TEST(FinalizerJobs, FailedFinalisationIsRetriedWithItsCause) {
  Env env;
  clean_call(env.spool.path(), "r1");
  auto o = env.options();
  std::atomic<int> calls{0};
  o.enqueue = [&](const PublishedRecording&) -> common::Status {
    if (++calls <= 2) return common::make_error("io.write", "write /q/r1.entry: No space left on device");
    return common::Ok{};
  };
  Finalizer f(o, env.metrics());
  f.start(1);
  ASSERT_TRUE(f.submit("r1"));
  ASSERT_TRUE(wait_for([&] { return env.published.value() == 1; }));
  ASSERT_TRUE(wait_for([&] { return f.pending() == 0; }));
  f.stop();
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(env.retries.value(), 2U);
  EXPECT_EQ(env.failed.value(), 2U);
  json d = env.doc("r1");
  EXPECT_EQ(d["complete"], true);  // late, not damaged
  EXPECT_EQ(d["integrity"]["finalize_failures"], 2);
  EXPECT_NE(d["integrity"]["last_finalize_error"].get<std::string>().find("No space left on device"),
            std::string::npos);
  EXPECT_EQ(warning_count(env.warnings, "finalize_retry"), 1U);
  EXPECT_FALSE(std::filesystem::exists(env.spool.file("r1.spool")));
}

// The cause is in the spool: a restart (a new Finalizer) still states it.
TEST(FinalizerJobs, FailureCauseSurvivesARestart) {
  Env env;
  clean_call(env.spool.path(), "r1");
  {
    auto o = env.options();
    o.enqueue = [](const PublishedRecording&) -> common::Status {
      return common::make_error("io.write", "write /q/r1.entry: No space left on device");
    };
    Finalizer f(o, env.metrics());
    f.start(1);
    ASSERT_TRUE(f.submit("r1"));
    ASSERT_TRUE(wait_for([&] { return env.retries.value() >= 1; }));
    f.stop();  // "crash" with the retry pending
  }
  ASSERT_TRUE(std::filesystem::exists(env.spool.file("r1.spool")));
  Finalizer again(env.options(), env.metrics());
  EXPECT_EQ(again.recover(), 1U);
  json d = env.doc("r1");
  EXPECT_GE(d["integrity"]["finalize_failures"].get<int>(), 1);
  EXPECT_NE(d["integrity"]["last_finalize_error"].get<std::string>().find("No space left on device"),
            std::string::npos);
  EXPECT_EQ(d["complete"], true);
}

TEST(FinalizerJobs, UnreadableHeaderIsNotRetried) {
  Env env;
  testing::write_bytes(env.spool.file("bad.spool"), {});
  Finalizer f(env.options(), env.metrics());
  f.start(1);
  ASSERT_TRUE(f.submit("bad"));
  ASSERT_TRUE(wait_for([&] { return env.failed.value() == 1 && f.pending() == 0; }));
  f.stop();
  EXPECT_EQ(env.retries.value(), 0U);
  EXPECT_TRUE(std::filesystem::exists(env.spool.file("bad.spool")));  // left for an operator
}

// Queue of one, five finished spools: four submits overflow; the rescan finds them.
TEST(FinalizerJobs, OverflowedSpoolsArePublishedByTheRescan) {
  Env env;
  for (int i = 0; i < 5; ++i) clean_call(env.spool.path(), "r" + std::to_string(i));
  auto o = env.options();
  o.queue_capacity = 1;
  o.rescan_interval = std::chrono::milliseconds(20);
  o.rescan_min_age = std::chrono::milliseconds(0);
  Finalizer f(o, env.metrics());
  int accepted = 0;
  for (int i = 0; i < 5; ++i) accepted += f.submit("r" + std::to_string(i)) ? 1 : 0;
  EXPECT_EQ(accepted, 1);
  EXPECT_EQ(env.queue_full.value(), 4U);
  f.start(1);
  ASSERT_TRUE(wait_for([&] { return env.published.value() == 5; })) << env.published.value();
  f.stop();
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(env.published_file("r" + std::to_string(i))) << i;
  EXPECT_GE(env.rescanned.value(), 4U);
}

// A spool a session is still writing is never taken by a rescan.
TEST(FinalizerJobs, RescanLeavesOpenSpoolsAlone) {
  Env env;
  clean_call(env.spool.path(), "live");
  clean_call(env.spool.path(), "done");
  auto o = env.options();
  o.rescan_interval = std::chrono::milliseconds(20);
  o.rescan_min_age = std::chrono::milliseconds(0);
  std::mutex m;
  std::vector<std::string> open{env.spool.file("live.spool")};
  std::atomic<int> rescans{0};
  o.open_spools = [&] {
    ++rescans;
    std::lock_guard lock(m);
    return open;
  };
  Finalizer f(o, env.metrics());
  f.start(1);
  ASSERT_TRUE(wait_for([&] { return env.published_file("done") && f.pending() == 0; }));
  // Three more rescans, each of which saw "live" on disk and left it.
  auto seen = env.rescanned.value();
  const int now = rescans.load();
  ASSERT_TRUE(wait_for([&] { return rescans.load() >= now + 3; }));
  ASSERT_TRUE(wait_for([&] { return f.pending() == 0; }));
  EXPECT_FALSE(env.published_file("live"));
  EXPECT_EQ(env.rescanned.value(), seen);
  {
    std::lock_guard lock(m);
    open.clear();  // the session ended
  }
  ASSERT_TRUE(wait_for([&] { return env.published_file("live"); }));
  f.stop();
}

TEST(FinalizerJobs, RecoveryRunsInTheBackgroundAndCountsDown) {
  Env env;
  for (int i = 0; i < 3; ++i) {
    SpoolBuilder b(env.spool.path(), "c" + std::to_string(i));
    b.streams(0, {{0, "1", false}}).packets(0, 0, 50).close();  // no end: a crash
  }
  Finalizer f(env.options(), env.metrics());
  EXPECT_EQ(f.recover_in_background(), 3U);
  EXPECT_EQ(f.recovery_pending(), 3U);
  EXPECT_EQ(env.recovery.value(), 3);
  f.start(1);
  ASSERT_TRUE(wait_for([&] { return f.recovery_pending() == 0; }));
  f.stop();
  EXPECT_EQ(env.recovery.value(), 0);
  EXPECT_EQ(env.recovered.value(), 3U);
  json d = env.doc("c1");
  EXPECT_EQ(d["complete"], false);
  EXPECT_EQ(d["incomplete_reason"], "gateway stopped during the call; recovered from the spool");
}

// finalize_workers: never more finalisations at once than workers, and as many.
TEST(FinalizerJobs, ConcurrencyIsBoundedByWorkers) {
  for (unsigned workers : {1u, 2u}) {
    Env env;
    for (int i = 0; i < 6; ++i) clean_call(env.spool.path(), "r" + std::to_string(i));
    auto o = env.options();
    std::mutex m;
    std::condition_variable cv;
    int in_flight = 0, most = 0;
    o.enqueue = [&](const PublishedRecording&) -> common::Status {
      std::unique_lock lock(m);
      most = std::max(most, ++in_flight);
      cv.notify_all();
      // Hold until as many as allowed run at once (or 2 s: the bound is then 1).
      cv.wait_for(lock, std::chrono::seconds(2), [&] { return in_flight >= static_cast<int>(workers); });
      --in_flight;
      return common::Ok{};
    };
    Finalizer f(o, env.metrics());
    for (int i = 0; i < 6; ++i) ASSERT_TRUE(f.submit("r" + std::to_string(i)));
    f.start(workers);
    ASSERT_TRUE(wait_for([&] { return env.published.value() == 6; }));
    f.stop();
    EXPECT_EQ(most, static_cast<int>(workers));
  }
}

}  // namespace
}  // namespace sgw::recording
