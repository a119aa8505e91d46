// DeliveryQueue and DeliveryEntry: state transitions with a fake sink and a
// fake clock, persistence across reopen, torn and corrupt entry files
// reported and skipped, the backoff schedule, idempotent enqueue, local
// retention, `deliveries retry`; and the user-metadata size rule.
#include "storage/delivery_queue.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "storage/catalogue.h"
#include "storage/delivery_entry.h"
#include "storage/s3_sink.h"
#include "storage/user_metadata.h"
#include "storage/webhook_event.h"
#include "test_support/temp_dir.h"

namespace sgw::storage {
namespace {

namespace fs = std::filesystem;
using test_support::TempDir;

DeliveryEntry entry(const std::string& id, const std::string& sink = "s3") {
  DeliveryEntry e;
  e.recording_id = id;
  e.sink = sink;
  e.start_unix_ms = 1'700'000'000'000;
  DeliveryObject o;
  o.path = "/rec/" + id + ".wav";
  o.key = "k/" + id + ".wav";
  o.content_type = "audio/wav";
  e.objects.push_back(o);
  return e;
}

// A sink that answers from a script, and records what it was asked.
struct ScriptedSink : DeliverySink {
  std::deque<DeliveryOutcome>* script;
  std::vector<std::string>* calls;
  DeliveryOutcome deliver(DeliveryEntry& e, const std::function<void(const DeliveryEntry&)>& checkpoint) override {
    calls->push_back(e.recording_id);
    DeliveryOutcome o = DeliveryOutcome::delivered();
    if (!script->empty()) {
      o = script->front();
      script->pop_front();
    }
    if (o.code == "checkpoint") {  // a multipart upload that got one part in, then failed
      e.objects[0].upload_id = "UPLOAD-1";
      e.objects[0].parts.push_back({1, 5, "etag1", "c1"});
      checkpoint(e);
      o.code = "Transport.CouldNotConnect";
    }
    if (o.kind == DeliveryOutcome::Kind::kDelivered)
      for (auto& obj : e.objects) obj.delivered = true;
    return o;
  }
};

DeliveryOutcome retry(std::string code = "Transport.CouldNotConnect", bool slowdown = false) {
  DeliveryOutcome o;
  o.kind = DeliveryOutcome::Kind::kRetry;
  o.code = std::move(code);
  o.message = "PutObject s3://b/k: " + o.code;
  o.slowdown = slowdown;
  return o;
}

DeliveryOutcome permanent(std::string code) {
  DeliveryOutcome o;
  o.kind = DeliveryOutcome::Kind::kPermanent;
  o.code = code;
  o.message = "PutObject s3://b/k: HTTP 403 " + code;
  return o;
}

struct Fixture {
  TempDir dir;
  std::int64_t now = 1'000'000;
  std::deque<DeliveryOutcome> script;
  std::vector<std::string> calls;
  common::Counter delivered, failures, permanent_failures, corrupt, local_deleted;
  common::Gauge pending, failed;

  std::unique_ptr<DeliveryQueue> open(std::optional<std::int64_t> retention = std::nullopt,
                                      std::set<std::string> ephemeral_sinks = {}) {
    DeliveryQueueOptions o;
    o.ephemeral_sinks = std::move(ephemeral_sinks);
    o.dir = dir.path() + "/q";
    o.now_ms = [this] { return now; };
    o.jitter = [] { return 0.0; };  // the low end of every jitter interval
    o.backoff = {1000, 8000, 5000};
    o.local_retention_ms = retention;
    auto q = DeliveryQueue::open(o, {&delivered, &failures, &permanent_failures, &corrupt, &local_deleted,
                                     &pending, &failed});
    EXPECT_TRUE(q.ok()) << q.error().message;
    (*q)->add_sink("s3", [this] {
      auto s = std::make_unique<ScriptedSink>();
      s->script = &script;
      s->calls = &calls;
      return s;
    });
    return std::move(q).value();
  }
  const DeliveryEntry* find(DeliveryQueue& q, const std::string& id, const std::string& sink = "s3") {
    static std::vector<DeliveryEntry> snap;
    snap = q.snapshot();
    for (const auto& e : snap)
      if (e.recording_id == id && e.sink == sink) return &e;
    return nullptr;
  }
};

TEST(DeliveryBackoff, ExponentialCappedWithEqualJitter) {
  BackoffPolicy p{1000, 60000, 5000};
  EXPECT_EQ(backoff_delay_ms(p, 1, 0.0, false), 500);
  EXPECT_EQ(backoff_delay_ms(p, 1, 0.999999, false), 999);
  EXPECT_EQ(backoff_delay_ms(p, 2, 0.0, false), 1000);
  EXPECT_EQ(backoff_delay_ms(p, 3, 0.0, false), 2000);
  EXPECT_EQ(backoff_delay_ms(p, 6, 1.0, false), 32000);
  EXPECT_EQ(backoff_delay_ms(p, 7, 1.0, false), 60000);   // capped
  EXPECT_EQ(backoff_delay_ms(p, 500, 0.0, false), 30000);  // no overflow at large attempts
  EXPECT_EQ(backoff_delay_ms(p, 1, 0.0, true), 2500);      // SlowDown: at least 5 s before jitter
  EXPECT_EQ(backoff_delay_ms(p, 1, 1.0, true), 5000);
}

TEST(DeliveryEntryFormat, RoundTripsAndRejectsTornOrEdited) {
  DeliveryEntry e = entry("rec-1");
  e.state = DeliveryState::kUploading;
  e.objects[0].upload_id = "U1";
  e.objects[0].parts = {{1, 5242880, "aa", "c1"}, {2, 100, "bb", "c2"}};
  e.last_error = "bad \xff byte";
  e.call_id = "c283f8da@edge.example.com";
  std::string bytes = encode_entry(e);
  auto back = decode_entry(bytes, "f");
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->state, DeliveryState::kUploading);
  EXPECT_EQ(back->call_id, e.call_id);
  // recording.delivered / recording.failed carry the recording's ids (call_id from the entry).
  for (const auto& ev : {delivered_event(*back), failed_event(*back, "primary")}) {
    EXPECT_EQ(ev.recording_id, "rec-1");
    EXPECT_EQ(ev.call_id, e.call_id);
    EXPECT_EQ(ev.sub, "s3");
  }
  // A failure before any bucket was chosen names the sink's bucket; a chosen one, that one.
  EXPECT_EQ(failed_event(*back, "primary").data["bucket"], "primary");
  back->bucket = "fallback-eu";
  EXPECT_EQ(failed_event(*back, "primary").data["bucket"], "fallback-eu");
  EXPECT_EQ(back->objects[0].parts.size(), 2u);
  EXPECT_EQ(back->objects[0].parts[1].etag, "bb");
  EXPECT_EQ(back->start_unix_ms, e.start_unix_ms);

  auto torn = decode_entry(bytes.substr(0, bytes.size() - 7), "f");
  ASSERT_FALSE(torn.ok());
  EXPECT_EQ(torn.error().code, "delivery.corrupt");
  EXPECT_NE(torn.error().message.find("torn"), std::string::npos) << torn.error().message;
  std::string edited = bytes;
  edited[edited.find("rec-1")] = 'R';
  auto bad = decode_entry(edited, "f");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("checksum"), std::string::npos);
  EXPECT_FALSE(decode_entry("", "f").ok());
  EXPECT_FALSE(decode_entry("SGWDQ1 x y\n{}", "f").ok());
}

// The call-control hook's retention and tags travel with the entry (docs/integrations.md).
TEST(DeliveryEntryFormat, OverridesRoundTripAndSurviveARestart) {
  recording::CallDecision d;
  d.retention_mode = "GOVERNANCE";
  d.retention_days = 2;
  d.tags = {{"team", "sales"}, {"note", "a b&c=d/é"}};
  DeliveryEntry e = entry("rec-o");
  e.overrides = object_overrides(d);
  EXPECT_EQ(e.overrides.retention_mode, "GOVERNANCE");
  EXPECT_EQ(e.overrides.retention_days, 2u);
  auto back = decode_entry(encode_entry(e), "f");
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->overrides, e.overrides);
  EXPECT_TRUE(object_overrides(recording::CallDecision{}).empty());
  // An entry written before overrides existed has none.
  std::string old_entry = encode_entry(entry("rec-p"));
  auto plain = decode_entry(old_entry, "f");
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->overrides.empty());
  // A mode that is not one is corruption, not a default.
  DeliveryEntry bad = e;
  bad.overrides.retention_mode = "FOREVER";
  auto refused = decode_entry(encode_entry(bad), "f");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("retention_mode"), std::string::npos);

  Fixture f;
  {
    auto q = f.open();
    ASSERT_TRUE(q->enqueue(e).ok());
  }
  auto q2 = f.open();
  const auto* again = f.find(*q2, "rec-o");
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->overrides, e.overrides);
}

TEST(DeliveryQueue, DeliversAndPersists) {
  Fixture f;
  auto q = f.open();
  auto r = q->enqueue(entry("a"));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(*r);
  EXPECT_EQ(f.pending.value(), 1);
  ASSERT_TRUE(q->run_once());
  EXPECT_FALSE(q->run_once());  // nothing left
  EXPECT_EQ(f.find(*q, "a")->state, DeliveryState::kDelivered);
  EXPECT_EQ(f.find(*q, "a")->delivered_unix_ms, f.now);
  EXPECT_EQ(f.delivered.value(), 1u);
  EXPECT_EQ(f.pending.value(), 0);
  q.reset();
  auto q2 = f.open();  // survives a restart
  const auto* e = f.find(*q2, "a");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->state, DeliveryState::kDelivered);
  EXPECT_TRUE(e->objects[0].delivered);
  EXPECT_FALSE(q2->run_once());
}

TEST(DeliveryQueue, EnqueueIsIdempotent) {
  Fixture f;
  auto q = f.open();
  ASSERT_TRUE(*q->enqueue(entry("a")));
  ASSERT_TRUE(q->run_once());
  auto again = q->enqueue(entry("a"));  // re-finalised after a crash
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  EXPECT_EQ(f.find(*q, "a")->state, DeliveryState::kDelivered);  // not reset to queued
  EXPECT_TRUE(*q->enqueue(entry("a", "local")));                  // another sink: its own entry
  EXPECT_EQ(q->snapshot().size(), 2u);
  EXPECT_EQ(f.calls.size(), 1u);
}

TEST(DeliveryQueue, RetriesWithBackoffThenDelivers) {
  Fixture f;
  auto q = f.open();
  f.script = {retry(), retry(), DeliveryOutcome::delivered()};
  ASSERT_TRUE(*q->enqueue(entry("a")));
  ASSERT_TRUE(q->run_once());
  const auto* e = f.find(*q, "a");
  EXPECT_EQ(e->state, DeliveryState::kQueued);
  EXPECT_EQ(e->attempts, 1u);
  EXPECT_EQ(e->last_error_code, "Transport.CouldNotConnect");
  EXPECT_EQ(e->next_attempt_unix_ms, f.now + 500);
  EXPECT_FALSE(q->run_once());  // not due yet
  f.now += 499;
  EXPECT_FALSE(q->run_once());
  f.now += 1;
  ASSERT_TRUE(q->run_once());
  EXPECT_EQ(f.find(*q, "a")->attempts, 2u);
  EXPECT_EQ(f.find(*q, "a")->next_attempt_unix_ms, f.now + 1000);
  EXPECT_EQ(q->health(), "");  // two failures: not yet degraded
  f.now += 1000;
  ASSERT_TRUE(q->run_once());
  EXPECT_EQ(f.find(*q, "a")->state, DeliveryState::kDelivered);
  EXPECT_EQ(f.find(*q, "a")->last_error, "");
  EXPECT_EQ(f.failures.value(), 2u);
}

TEST(DeliveryQueue, ThreeRetryableFailuresDegradeHealthUntilSuccess) {
  Fixture f;
  auto q = f.open();
  f.script = {retry(), retry(), retry()};
  ASSERT_TRUE(*q->enqueue(entry("a")));
  for (int i = 0; i < 3; ++i) {
    f.now += 10'000;
    ASSERT_TRUE(q->run_once());
  }
  EXPECT_NE(q->health().find("s3 delivery failing: PutObject s3://b/k"), std::string::npos) << q->health();
  f.now += 10'000;
  ASSERT_TRUE(q->run_once());
  EXPECT_EQ(q->health(), "");
}

TEST(DeliveryQueue, SlowDownPausesTheSink) {
  Fixture f;
  auto q = f.open();
  f.script = {retry("SlowDown", true)};
  ASSERT_TRUE(*q->enqueue(entry("a")));
  ASSERT_TRUE(*q->enqueue(entry("b")));
  ASSERT_TRUE(q->run_once());  // a: SlowDown
  EXPECT_EQ(f.find(*q, "a")->next_attempt_unix_ms, f.now + 2500);
  EXPECT_FALSE(q->run_once());  // b is due, but the sink is paused
  f.now += 2500;
  EXPECT_TRUE(q->run_once());
  EXPECT_TRUE(q->run_once());
  EXPECT_EQ(f.calls, (std::vector<std::string>{"a", "a", "b"}));
}

TEST(DeliveryQueue, PermanentFailureIsReportedAndRetriedAtTheCap) {
  Fixture f;
  auto q = f.open();
  f.script = {permanent("AccessDenied")};
  ASSERT_TRUE(*q->enqueue(entry("a")));
  ASSERT_TRUE(q->run_once());
  const auto* e = f.find(*q, "a");
  EXPECT_EQ(e->state, DeliveryState::kFailed);
  EXPECT_EQ(e->last_error_code, "AccessDenied");
  EXPECT_EQ(e->next_attempt_unix_ms, f.now + 4000);  // max 8000 with equal jitter at 0
  EXPECT_EQ(f.permanent_failures.value(), 1u);
  EXPECT_EQ(f.failed.value(), 1);
  EXPECT_NE(q->health().find("AccessDenied"), std::string::npos);
  q.reset();
  auto q2 = f.open();  // a failed entry keeps /readyz degraded after a restart
  EXPECT_NE(q2->health().find("AccessDenied"), std::string::npos);
  f.now += 4000;
  ASSERT_TRUE(q2->run_once());
  EXPECT_EQ(f.find(*q2, "a")->state, DeliveryState::kDelivered);
  EXPECT_EQ(q2->health(), "");
}

TEST(DeliveryQueue, MultipartProgressSurvivesACrash) {
  Fixture f;
  auto q = f.open();
  DeliveryOutcome cp = retry();
  cp.code = "checkpoint";
  f.script = {cp};
  ASSERT_TRUE(*q->enqueue(entry("a")));
  ASSERT_TRUE(q->run_once());
  EXPECT_EQ(f.find(*q, "a")->state, DeliveryState::kUploading);
  q.reset();
  auto q2 = f.open();
  const auto* e = f.find(*q2, "a");
  EXPECT_EQ(e->state, DeliveryState::kUploading);
  EXPECT_EQ(e->objects[0].upload_id, "UPLOAD-1");
  ASSERT_EQ(e->objects[0].parts.size(), 1u);
  EXPECT_EQ(e->objects[0].parts[0].etag, "etag1");
}

TEST(DeliveryQueue, CorruptAndTornEntriesAreReportedAndSkipped) {
  Fixture f;
  {
    auto q = f.open();
    ASSERT_TRUE(*q->enqueue(entry("good")));
    ASSERT_TRUE(*q->enqueue(entry("torn")));
    ASSERT_TRUE(*q->enqueue(entry("edited")));
  }
  std::string dir = f.dir.path() + "/q/";
  auto read = [](const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  std::string torn = read(dir + "torn.s3.dq");
  std::ofstream(dir + "torn.s3.dq", std::ios::binary | std::ios::trunc) << torn.substr(0, torn.size() / 2);
  std::string edited = read(dir + "edited.s3.dq");
  edited[edited.rfind("audio/wav")] = 'A';
  std::ofstream(dir + "edited.s3.dq", std::ios::binary | std::ios::trunc) << edited;
  std::ofstream(dir + "garbage.s3.dq") << "hello";
  std::ofstream(dir + "leftover.s3.dq.tmp") << "half";  // a write a crash interrupted

  auto q = f.open();
  EXPECT_EQ(q->snapshot().size(), 1u);
  EXPECT_EQ(q->problems().size(), 3u);
  EXPECT_EQ(f.corrupt.value(), 3u);
  EXPECT_FALSE(fs::exists(dir + "leftover.s3.dq.tmp"));
  EXPECT_TRUE(fs::exists(dir + "torn.s3.dq"));  // kept for inspection, not trusted
  ASSERT_TRUE(q->run_once());
  EXPECT_FALSE(q->run_once());
  std::vector<std::string> problems;
  EXPECT_EQ(DeliveryQueue::read_all(f.dir.path() + "/q", &problems).size(), 1u);
  EXPECT_EQ(problems.size(), 3u);
  // Re-finalising the torn recording writes a fresh entry over the corrupt one.
  EXPECT_TRUE(*q->enqueue(entry("torn")));
  EXPECT_TRUE(q->run_once());
}

TEST(DeliveryQueue, RetryCommandRequeuesAFailedEntry) {
  Fixture f;
  auto q = f.open();
  f.script = {permanent("InvalidRequest")};
  ASSERT_TRUE(*q->enqueue(entry("a")));
  ASSERT_TRUE(q->run_once());
  q.reset();
  auto st = DeliveryQueue::retry(f.dir.path() + "/q", "a", "s3", f.now);
  ASSERT_TRUE(st.ok()) << st.error().message;
  auto q2 = f.open();
  const auto* e = f.find(*q2, "a");
  EXPECT_EQ(e->state, DeliveryState::kQueued);
  EXPECT_EQ(e->attempts, 0u);
  EXPECT_TRUE(q2->run_once());  // due now
  EXPECT_EQ(f.find(*q2, "a")->state, DeliveryState::kDelivered);
  EXPECT_EQ(DeliveryQueue::retry(f.dir.path() + "/q", "a", "s3", f.now).error().code, "delivery.delivered");
  EXPECT_EQ(DeliveryQueue::retry(f.dir.path() + "/q", "zz", "s3", f.now).error().code, "delivery.not_found");
}

TEST(DeliveryQueue, LocalCopyDeletedOnlyAfterVerifiedDeliveryAndRetention) {
  Fixture f;
  auto q = f.open(std::int64_t{60'000});
  std::string file = f.dir.path() + "/rec.wav";
  std::ofstream(file) << "RIFF";
  DeliveryEntry local = entry("a", "local");
  local.state = DeliveryState::kDelivered;
  local.objects[0].path = file;
  local.objects[0].delivered = true;
  ASSERT_TRUE(*q->enqueue(local));
  f.script = {retry()};
  ASSERT_TRUE(*q->enqueue(entry("a")));
  EXPECT_EQ(q->apply_local_retention(), 0u);
  ASSERT_TRUE(q->run_once());  // failed: not delivered
  f.now += 120'000;
  EXPECT_EQ(q->apply_local_retention(), 0u);
  EXPECT_TRUE(fs::exists(file));
  ASSERT_TRUE(q->run_once());  // delivered now
  f.now += 59'999;
  EXPECT_EQ(q->apply_local_retention(), 0u);
  f.now += 1;
  EXPECT_EQ(q->apply_local_retention(), 1u);
  EXPECT_FALSE(fs::exists(file));
  EXPECT_NE(f.find(*q, "a", "local")->local_deleted_unix_ms, 0);
  EXPECT_EQ(q->apply_local_retention(), 0u);
  EXPECT_EQ(f.local_deleted.value(), 1u);
}

TEST(DeliveryQueue, LocalOnlyRecordingsAreNeverDeleted) {
  Fixture f;
  auto q = f.open(std::int64_t{0});
  std::string file = f.dir.path() + "/rec.wav";
  std::ofstream(file) << "RIFF";
  DeliveryEntry local = entry("a", "local");
  local.state = DeliveryState::kDelivered;
  local.objects[0].path = file;
  ASSERT_TRUE(*q->enqueue(local));
  f.now += 1'000'000'000;
  EXPECT_EQ(q->apply_local_retention(), 0u);
  EXPECT_TRUE(fs::exists(file));
}

TEST(DeliveryQueue, DeliveredEntriesLeaveTheQueueFolderForTheCatalogue) {
  Fixture f;
  std::string dir = f.dir.path() + "/q/";
  auto q = f.open();
  DeliveryEntry e = entry("a");
  e.conversation_id = "conv-1";
  e.end_unix_ms = e.start_unix_ms + 5000;
  ASSERT_TRUE(*q->enqueue(e));
  EXPECT_TRUE(fs::exists(dir + "a.s3.dq"));
  ASSERT_TRUE(q->run_once());
  EXPECT_FALSE(fs::exists(dir + "a.s3.dq"));  // compacted
  EXPECT_FALSE(*q->enqueue(entry("a")));       // still known: not queued again
  DeliveryEntry local = entry("a", "local");
  local.state = DeliveryState::kDelivered;
  ASSERT_TRUE(*q->enqueue(local));
  EXPECT_FALSE(fs::exists(dir + "a.local.dq"));  // delivered when queued: straight to the catalogue
  q.reset();

  auto c = Catalogue::open(dir + "catalogue.sqlite", Catalogue::Mode::kReadOnly);
  ASSERT_TRUE(c.ok()) << c.error().message;
  auto rows = (*c)->recording("a");
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);
  const DeliveryEntry& s3 = (*rows)[1];
  EXPECT_EQ(s3.sink, "s3");
  EXPECT_EQ(s3.state, DeliveryState::kDelivered);
  EXPECT_EQ(s3.conversation_id, "conv-1");
  EXPECT_EQ(s3.end_unix_ms, e.end_unix_ms);
  EXPECT_EQ(s3.delivered_unix_ms, f.now);
  ASSERT_EQ(s3.objects.size(), 1u);
  EXPECT_EQ(s3.objects[0].key, "k/a.wav");
  EXPECT_TRUE(s3.objects[0].delivered);

  std::vector<std::string> problems;
  auto all = DeliveryQueue::read_all(f.dir.path() + "/q", &problems);  // the `deliveries` command
  EXPECT_EQ(all.size(), 2u);
  EXPECT_TRUE(problems.empty());
  EXPECT_EQ(DeliveryQueue::retry(f.dir.path() + "/q", "a", "s3", f.now).error().code, "delivery.delivered");
  auto q2 = f.open();
  EXPECT_FALSE(q2->run_once());
  EXPECT_EQ(f.pending.value(), 0);
}

TEST(DeliveryQueue, EphemeralSinkEntriesSurviveARestartUntilDeliveredThenLeaveNoRow) {
  // In-call partials: written without fsync, but still entry files a restart
  // (after a process crash) reads back; once delivered, removed without a
  // catalogue row, so a partial costs no disk sync and the catalogue stays
  // the list of recordings.
  Fixture f;
  std::string dir = f.dir.path() + "/q/";
  auto q = f.open(std::nullopt, {"s3"});
  f.script.push_back(retry());
  ASSERT_TRUE(*q->enqueue(entry("p")));
  ASSERT_TRUE(fs::exists(dir + "p.s3.dq"));
  ASSERT_TRUE(q->run_once());  // the first attempt fails: the entry is rewritten with it
  q.reset();
  auto q2 = f.open(std::nullopt, {"s3"});
  const auto* e = f.find(*q2, "p");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->attempts, 1u);
  EXPECT_EQ(e->state, DeliveryState::kQueued);
  f.now += 60'000;
  ASSERT_TRUE(q2->run_once());
  EXPECT_EQ(f.delivered.value(), 1u);
  EXPECT_FALSE(fs::exists(dir + "p.s3.dq"));
  EXPECT_EQ(f.find(*q2, "p"), nullptr);
  EXPECT_EQ(f.pending.value(), 0);
  q2.reset();
  auto c = Catalogue::open(dir + "catalogue.sqlite", Catalogue::Mode::kReadOnly);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_FALSE(*(*c)->contains("p", "s3"));
}

TEST(DeliveryQueue, TheDeliveriesListingShowsAnEntryBeingCompactedOnce) {
  // `siprecd deliveries` reads the folder, then the catalogue: an entry the
  // running gateway compacts in between is in both, and is listed once.
  Fixture f;
  std::string dir = f.dir.path() + "/q/";
  auto q = f.open();
  ASSERT_TRUE(*q->enqueue(entry("a")));
  ASSERT_TRUE(q->run_once());  // delivered: in the catalogue, its file removed
  q.reset();
  DeliveryEntry file = entry("a");
  file.state = DeliveryState::kDelivered;
  file.delivered_unix_ms = f.now;
  std::ofstream(dir + "a.s3.dq") << encode_entry(file);  // the file not yet removed
  std::vector<std::string> problems;
  auto all = DeliveryQueue::read_all(f.dir.path() + "/q", &problems);
  EXPECT_TRUE(problems.empty());
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].state, DeliveryState::kDelivered);
}

TEST(DeliveryQueue, ADeliveredEntryFileLeftByACrashIsCompactedAtStart) {
  Fixture f;
  std::string dir = f.dir.path() + "/q/";
  fs::create_directories(dir);
  DeliveryEntry e = entry("a");
  e.state = DeliveryState::kDelivered;
  e.objects[0].delivered = true;
  e.objects[0].version_id = "v1";
  std::ofstream(dir + "a.s3.dq", std::ios::binary) << encode_entry(e);
  DeliveryEntry b = e;  // and one written by a version without the catalogue
  b.recording_id = "b";
  std::ofstream(dir + "b.s3.dq", std::ios::binary) << encode_entry(b);
  auto q = f.open();
  EXPECT_FALSE(fs::exists(dir + "a.s3.dq"));
  EXPECT_FALSE(fs::exists(dir + "b.s3.dq"));
  EXPECT_NE(f.find(*q, "b"), nullptr);
  const auto* got = f.find(*q, "a");
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->state, DeliveryState::kDelivered);
  EXPECT_EQ(got->objects[0].version_id, "v1");
  EXPECT_FALSE(q->run_once());
}

TEST(Catalogue, RoundTripsReplacesAndPages) {
  TempDir d;
  auto c = Catalogue::open(d.path() + "/c.sqlite", Catalogue::Mode::kReadWrite);
  ASSERT_TRUE(c.ok()) << c.error().message;
  std::vector<DeliveryEntry> es;
  for (int i = 0; i < 2500; ++i) {
    DeliveryEntry e = entry("r" + std::to_string(10000 + i));
    e.state = DeliveryState::kDelivered;
    e.bucket = "b";
    e.objects[0].sha256 = "ab";
    e.objects.push_back(e.objects[0]);
    e.objects[1].key = "k2";
    es.push_back(e);
  }
  std::vector<const DeliveryEntry*> ptrs;
  for (const auto& e : es) ptrs.push_back(&e);
  ASSERT_TRUE((*c)->put(ptrs).ok());
  ASSERT_TRUE((*c)->put(es[0]).ok());  // again: replaced, not duplicated
  EXPECT_EQ(*(*c)->count(), 2500);
  std::size_t n = 0;
  std::string last;
  ASSERT_TRUE((*c)->for_each([&](DeliveryEntry&& e) {
                 EXPECT_GT(e.recording_id, last);
                 last = e.recording_id;
                 ASSERT_EQ(e.objects.size(), 2u);
                 EXPECT_EQ(e.objects[1].key, "k2");
                 EXPECT_EQ(e.objects[0].sha256, "ab");
                 ++n;
               }).ok());
  EXPECT_EQ(n, 2500u);
  EXPECT_TRUE(*(*c)->contains("r10000", "s3"));
  EXPECT_FALSE(*(*c)->contains("r10000", "local"));
  c->reset();
  // A file that is not a catalogue is refused with its name.
  std::ofstream(d.path() + "/bad.sqlite") << "not a database, just text that is long enough to be read as a header";
  auto bad = Catalogue::open(d.path() + "/bad.sqlite", Catalogue::Mode::kReadWrite);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("bad.sqlite"), std::string::npos) << bad.error().message;
}

TEST(DeliveryQueue, ThreadsDeliverEverything) {
  Fixture f;
  DeliveryQueueOptions o;
  o.dir = f.dir.path() + "/q";
  o.threads = 3;
  o.backoff = {1, 2, 1};
  auto q = DeliveryQueue::open(o);
  ASSERT_TRUE(q.ok());
  std::atomic<int> n{0};
  struct CountingSink : DeliverySink {
    std::atomic<int>* n;
    DeliveryOutcome deliver(DeliveryEntry&, const std::function<void(const DeliveryEntry&)>&) override {
      return ++*n % 3 == 0 ? retry() : DeliveryOutcome::delivered();
    }
  };
  (*q)->add_sink("s3", [&n] {
    auto s = std::make_unique<CountingSink>();
    s->n = &n;
    return s;
  });
  (*q)->start();
  for (int i = 0; i < 50; ++i) ASSERT_TRUE((*q)->enqueue(entry("r" + std::to_string(i))).ok());
  for (int i = 0; i < 500; ++i) {
    auto snap = (*q)->snapshot();
    if (std::all_of(snap.begin(), snap.end(), [](const DeliveryEntry& e) { return e.state == DeliveryState::kDelivered; }))
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  (*q)->stop();
  for (const auto& e : (*q)->snapshot()) EXPECT_EQ(e.state, DeliveryState::kDelivered) << e.recording_id;
}

// ---------------------------------------------------------------------------

TEST(UserMetadata, FieldsFromTheRecordingJson) {
  auto doc = nlohmann::json::parse(R"({
    "recording_id": "r1", "conversation_id": "c1", "siprec_session_id": "g==",
    "recording_call_id": "abc@host", "start_time": "2024-06-03T13:37:00.000Z",
    "end_time": "2024-06-03T13:40:03.000Z", "duration_ms": 183000,
    "streams": [{"codec": "PCMA/8000"}, {"codec": "PCMA/8000"}, {"codec": "G722/8000"}],
    "gateway": {"node": "gw1", "region": "eu"},
    "participants": [{"aor": "sip:a@x"}, {"aor": ""}, {"aor": "sip:b@x"}, {"aor": "sip:a@x"},
                     {"aor": "sip:Jos\u00e9 %@x"}]})");
  auto m = user_metadata(doc);
  EXPECT_EQ(m["recording-id"], "r1");
  EXPECT_EQ(m["conversation-id"], "c1");
  EXPECT_EQ(m["siprec-session-id"], "g==");
  EXPECT_EQ(m["call-id"], "abc@host");
  EXPECT_EQ(m["start"], "2024-06-03T13:37:00.000Z");
  EXPECT_EQ(m["end"], "2024-06-03T13:40:03.000Z");
  EXPECT_EQ(m["duration-ms"], "183000");
  EXPECT_EQ(m["codec"], "PCMA/8000,G722/8000");
  EXPECT_EQ(m["gateway-node"], "gw1");
  EXPECT_EQ(m["gateway-region"], "eu");
  EXPECT_EQ(m["participants"], "sip:a@x,sip:b@x,sip:Jos%C3%A9%20%25@x");
  EXPECT_EQ(m.size(), 11u);
  // Missing fields give empty values, never a throw.
  EXPECT_EQ(user_metadata(nlohmann::json::object())["participants"], "");
  EXPECT_EQ(user_metadata(nlohmann::json::array()).size(), 11u);
}

TEST(UserMetadata, StaysUnder2KBAndSaysHowManyParticipantsWereLeftOut) {
  nlohmann::json doc = {{"conversation_id", std::string(500, 'c')}, {"recording_call_id", std::string(300, '\xff')}};
  doc["participants"] = nlohmann::json::array();
  for (int i = 0; i < 200; ++i)
    doc["participants"].push_back({{"aor", "sip:participant-number-" + std::to_string(i) + "@example.com"}});
  auto m = user_metadata(doc);
  m[std::string(kObjectSha256Name)] = std::string(64, 'a');  // what the S3 sink adds per object
  EXPECT_LE(user_metadata_size(m), kUserMetadataLimit);
  EXPECT_EQ(m["conversation-id"].size(), kUserMetadataValueMax);
  EXPECT_LE(m["call-id"].size(), kUserMetadataValueMax);
  EXPECT_EQ(m["call-id"].substr(0, 6), "%FF%FF");  // cut between escapes, never inside one
  EXPECT_EQ(m["call-id"].size() % 3, 0u);
  const std::string& p = m["participants"];
  EXPECT_EQ(p.substr(0, 36), "sip:participant-number-0@example.com");
  auto marker = p.rfind(",+");
  ASSERT_NE(marker, std::string::npos);
  int left_out = std::stoi(p.substr(marker + 2));
  int kept = static_cast<int>(std::count(p.begin(), p.begin() + static_cast<long>(marker), ',')) + 1;
  EXPECT_EQ(kept + left_out, 200);
  // Filling the budget: one more AoR would not fit.
  EXPECT_GT(user_metadata_size(m) + std::string(",sip:participant-number-199@example.com").size(), kUserMetadataLimit);
}

TEST(S3SinkHelpers, RetainUntil) {
  // 2024-02-29T10:00:00Z
  std::int64_t leap = 1709200800000;
  EXPECT_EQ(iso8601(retain_until(leap, 1, 0)), "2024-03-01T10:00:00Z");
  EXPECT_EQ(iso8601(retain_until(leap, 0, 1)), "2025-02-28T10:00:00Z");
  EXPECT_EQ(iso8601(retain_until(leap, 0, 7)), "2031-02-28T10:00:00Z");
  EXPECT_EQ(iso8601(retain_until(leap, 0, 4)), "2028-02-29T10:00:00Z");
}

TEST(S3SinkHelpers, MultipartEtagOfAFile) {
  TempDir d;
  std::string path = d.path() + "/f";
  std::string data(12, 'x');
  std::ofstream(path, std::ios::binary) << data;
  auto single = digest_file(path, 5, false);
  ASSERT_TRUE(single.ok());
  EXPECT_EQ(single->size, 12u);
  EXPECT_EQ(single->md5_hex, "f94c84fac5cb091c60bb143cb957d229");  // md5 of "xxxxxxxxxxxx"
  auto multi = digest_file(path, 5, true);
  ASSERT_TRUE(multi.ok());
  ASSERT_EQ(multi->part_md5_hex.size(), 3u);  // 5 + 5 + 2
  EXPECT_EQ(multi->part_md5_hex[0], "fb0e22c79ac75679e9881e6ba183b354");  // md5 of "xxxxx"
  EXPECT_EQ(multi->multipart_etag.substr(multi->multipart_etag.size() - 2), "-3");
  EXPECT_FALSE(digest_file(d.path() + "/missing", 5, false).ok());
}


TEST(DeliveryQueue, EntriesOfOneOrderKeyGoOneAtATimeInFileNameOrder) {
  Fixture f;
  auto q = f.open();
  auto ordered = [](const std::string& id, const std::string& key) {
    DeliveryEntry e = entry(id);
    e.order_key = key;
    return e;
  };
  // Queued out of order; "r1.10" must go first, and "r1.30" may not overtake
  // "r1.20" while that one waits for its retry. "r2.10" is independent.
  ASSERT_TRUE(*q->enqueue(ordered("r1.30", "r1")));
  ASSERT_TRUE(*q->enqueue(ordered("r1.10", "r1")));
  ASSERT_TRUE(*q->enqueue(ordered("r1.20", "r1")));
  ASSERT_TRUE(*q->enqueue(ordered("r2.10", "r2")));
  f.script = {DeliveryOutcome::delivered(), retry()};
  ASSERT_TRUE(q->run_once());  // r1.10
  ASSERT_TRUE(q->run_once());  // r1.20: fails, retry in 500 ms
  ASSERT_TRUE(q->run_once());  // r2.10 (r1.30 is held back)
  EXPECT_FALSE(q->run_once());
  EXPECT_EQ(f.calls, (std::vector<std::string>{"r1.10", "r1.20", "r2.10"}));
  f.now += 500;
  ASSERT_TRUE(q->run_once());
  ASSERT_TRUE(q->run_once());
  EXPECT_EQ(f.calls, (std::vector<std::string>{"r1.10", "r1.20", "r2.10", "r1.20", "r1.30"}));
  q.reset();
  auto q2 = f.open();  // all delivered, in the catalogue: queued again, they are refused
  EXPECT_FALSE(*q2->enqueue(ordered("r1.20", "r1")));
}

TEST(DeliveryQueue, OnFailedIsCalledOnceWhenAnEntryEntersFailed) {
  Fixture f;
  std::vector<std::string> failed;
  DeliveryQueueOptions o;
  o.dir = f.dir.path() + "/q";
  o.now_ms = [&f] { return f.now; };
  o.jitter = [] { return 0.0; };
  o.backoff = {1000, 8000, 5000};
  o.on_failed = [&failed](const DeliveryEntry& e) { failed.push_back(e.recording_id + " " + e.last_error_code); };
  auto q = DeliveryQueue::open(o);
  ASSERT_TRUE(q.ok());
  (*q)->add_sink("s3", [&f] {
    auto s = std::make_unique<ScriptedSink>();
    s->script = &f.script;
    s->calls = &f.calls;
    return s;
  });
  f.script = {permanent("AccessDenied"), permanent("AccessDenied")};
  ASSERT_TRUE(*(*q)->enqueue(entry("a")));
  ASSERT_TRUE((*q)->run_once());
  f.now += 8000;
  ASSERT_TRUE((*q)->run_once());  // still failed: not reported again
  EXPECT_EQ(failed, std::vector<std::string>{"a AccessDenied"});
}

TEST(WebhookEvent, IdsFollowTheLifecycleAndTheEntryCarriesTheDocument) {
  WebhookEvent e;
  e.type = "session.updated";
  e.recording_id = "63de3bc1-ca33-44d6-9d34-a0841468ac43";
  e.conversation_id = "conv-1";
  e.call_id = "c1@h";
  e.sub = "000002";
  e.time = "2026-12-04T10:00:00.000Z";
  e.data = {{"changes", {"paused"}}};
  EXPECT_EQ(event_id(e), e.recording_id + ".20.000002");
  auto entry = event_entry(e, "gw-1", "eu");
  ASSERT_TRUE(entry.ok()) << entry.error().message;
  EXPECT_EQ(entry->recording_id, event_id(e));
  EXPECT_EQ(entry->sink, "webhook");
  EXPECT_EQ(entry->order_key, e.recording_id);
  auto doc = nlohmann::json::parse(entry->payload);
  EXPECT_EQ(doc["id"], event_id(e));
  EXPECT_EQ(doc["type"], "session.updated");
  EXPECT_EQ(doc["time"], e.time);
  EXPECT_EQ(doc["conversation_id"], "conv-1");
  EXPECT_EQ(doc["gateway"]["node"], "gw-1");
  EXPECT_EQ(doc["data"]["changes"][0], "paused");
  // The entry (with its payload and order key) round-trips through the queue's file format.
  auto back = decode_entry(encode_entry(*entry), "f");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->payload, entry->payload);
  EXPECT_EQ(back->order_key, e.recording_id);

  // File names of one recording's events sort in lifecycle order.
  std::vector<std::string> names;
  for (const char* type : {"recording.delivered", "session.ended", "recording.failed", "session.started",
                           "recording.published", "session.updated"}) {
    WebhookEvent x = e;
    x.type = type;
    x.sub = x.type == "session.updated" ? "000001" : x.type.starts_with("recording.") && x.type != "recording.published" ? "s3" : "";
    names.push_back(entry_file_name(event_id(x), "webhook"));
  }
  std::sort(names.begin(), names.end());
  EXPECT_NE(names[0].find(".10."), std::string::npos);
  EXPECT_NE(names[1].find(".20."), std::string::npos);
  EXPECT_NE(names[2].find(".30."), std::string::npos);
  EXPECT_NE(names[3].find(".40."), std::string::npos);
  EXPECT_NE(names[4].find(".45."), std::string::npos);
  EXPECT_NE(names[5].find(".50."), std::string::npos);

  WebhookEvent bad = e;
  bad.type = "session.exploded";
  EXPECT_FALSE(event_entry(bad, "n", "r").ok());
  bad = e;
  bad.recording_id = "../x";
  EXPECT_FALSE(event_entry(bad, "n", "r").ok());
}

}  // namespace

// Staged entries (docs/storage.md "Staged entries"): what stage() wrote is
// there for the next process even if nothing admitted it, and it is admitted
// at open in seq order; new seqs go after the leftovers.
// The staged folder's entries and temporary files, not its spares.
std::vector<std::string> staged_files(const std::string& qdir) {
  std::vector<std::string> out;
  if (fs::exists(qdir + "/staged"))
    for (const auto& f : fs::directory_iterator(qdir + "/staged"))
      if (!f.path().filename().string().starts_with("spare-")) out.push_back(f.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(DeliveryQueue, StagedEntriesOutliveTheProcessAndAreAdmittedInSeqOrderAtOpen) {
  Fixture f;
  auto q = f.open();
  auto ordered = [](const std::string& id) {
    DeliveryEntry e = entry(id);
    e.order_key = "r1";
    return e;
  };
  std::vector<std::uint64_t> seqs;
  for (const char* id : {"r1.10", "r1.20", "r1.30"}) {
    DeliveryEntry e = ordered(id);
    auto seq = q->stage(e);
    ASSERT_TRUE(seq.ok()) << seq.error().message;
    seqs.push_back(*seq);
    EXPECT_EQ(e.created_unix_ms, f.now);
  }
  EXPECT_LT(seqs[0], seqs[1]);
  EXPECT_LT(seqs[1], seqs[2]);
  // Staged, not queued: the queue does not deliver it yet.
  EXPECT_FALSE(q->run_once());
  ASSERT_EQ(staged_files(f.dir.path() + "/q").size(), 3u);
  // The process "dies" here: nothing admitted. A write it did not finish is a temporary file.
  {
    std::ofstream torn(f.dir.path() + "/q/staged/00000000000000000009.r1.40.s3.dq.tmp");
    torn << "SGWDQ1 99";
  }
  q.reset();
  auto q2 = f.open();
  EXPECT_EQ(staged_files(f.dir.path() + "/q"), std::vector<std::string>{});
  ASSERT_NE(f.find(*q2, "r1.30"), nullptr);
  EXPECT_EQ(f.find(*q2, "r1.30")->state, DeliveryState::kQueued);
  ASSERT_TRUE(q2->run_once());
  ASSERT_TRUE(q2->run_once());
  ASSERT_TRUE(q2->run_once());
  EXPECT_EQ(f.calls, (std::vector<std::string>{"r1.10", "r1.20", "r1.30"}));
  DeliveryEntry next = ordered("r1.40");
  auto seq = q2->stage(next);
  ASSERT_TRUE(seq.ok());
  EXPECT_GT(*seq, seqs[2]);
}

TEST(DeliveryQueue, AdmitQueuesOnceAndRemovesTheStagedFile) {
  Fixture f;
  auto q = f.open();
  DeliveryEntry e = entry("a.10");
  auto seq = q->stage(e);
  ASSERT_TRUE(seq.ok());
  auto r = q->admit(*seq, e);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(*r);
  EXPECT_EQ(staged_files(f.dir.path() + "/q"), std::vector<std::string>{});
  EXPECT_TRUE(fs::exists(f.dir.path() + "/q/a.10.s3.dq"));
  // Spares are ready for the next stage() (admit() made them); one is used, and
  // what a killed process left of them is gone at the next open.
  auto spares = [&f] {
    std::size_t n = 0;
    for (const auto& x : fs::directory_iterator(f.dir.path() + "/q/staged"))
      n += x.path().filename().string().starts_with("spare-");
    return n;
  };
  EXPECT_EQ(spares(), 64u);
  // The same entry staged again (an event raised twice) is queued once.
  DeliveryEntry again = entry("a.10");
  seq = q->stage(again);
  ASSERT_TRUE(seq.ok());
  EXPECT_EQ(spares(), 63u);
  auto n = q->admit_staged();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1u);
  EXPECT_EQ(staged_files(f.dir.path() + "/q"), std::vector<std::string>{});
  ASSERT_TRUE(q->run_once());
  EXPECT_FALSE(q->run_once());
  EXPECT_EQ(f.calls, std::vector<std::string>{"a.10"});
  // A process killed with spares open: they are removed at the next start.
  q.reset();  // (a clean close removes them; put one back as a kill would leave it)
  { std::ofstream(f.dir.path() + "/q/staged/spare-7.tmp") << "SGWDQ1 12 ab"; }
  auto q2 = f.open();
  EXPECT_EQ(spares(), 0u);
}

TEST(DeliveryQueue, CorruptStagedEntriesAreReportedAndSkipped) {
  Fixture f;
  auto q = f.open();
  DeliveryEntry good = entry("b.10");
  auto seq = q->stage(good);
  ASSERT_TRUE(seq.ok());
  // A staged file a power loss left empty, and one whose name names another entry.
  { std::ofstream(f.dir.path() + "/q/staged/00000000000000000000.x.10.s3.dq"); }
  std::string text = encode_entry(entry("c.10"));
  { std::ofstream(f.dir.path() + "/q/staged/00000000000000000000.y.10.s3.dq") << text; }
  auto n = q->admit_staged();
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_EQ(*n, 1u);
  EXPECT_EQ(f.corrupt.value(), 2u);
  EXPECT_EQ(q->problems().size(), 2u);
  EXPECT_NE(f.find(*q, "b.10"), nullptr);
  EXPECT_EQ(f.find(*q, "c.10"), nullptr);
  // Reported once, however often the folder is read again.
  ASSERT_TRUE(q->admit_staged().ok());
  EXPECT_EQ(f.corrupt.value(), 2u);
}

}  // namespace sgw::storage
