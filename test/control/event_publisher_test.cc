// EventPublisher (control/events.h) over a real DeliveryQueue in a temp
// folder: an event is on disk when publish() returns (so a kill -9 right
// after it cannot lose it), every event published reaches the queue, also
// past the in-memory buffer, and one recording's events leave in order.
#include "control/events.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "storage/delivery_entry.h"
#include "test_support/temp_dir.h"

namespace sgw::control {
namespace {

namespace fs = std::filesystem;
using test_support::TempDir;

// Records the event ids it is given, in order; always answers delivered.
struct RecordingSink : storage::DeliverySink {
  std::vector<std::string>* ids;
  storage::DeliveryOutcome deliver(storage::DeliveryEntry& e,
                                   const std::function<void(const storage::DeliveryEntry&)>&) override {
    ids->push_back(e.recording_id);
    return storage::DeliveryOutcome::delivered();
  }
};

storage::WebhookEvent event(const std::string& recording, const char* type, std::string sub = "") {
  storage::WebhookEvent e;
  e.type = type;
  e.recording_id = recording;
  e.conversation_id = "conv-" + recording;
  e.call_id = "call-" + recording + "@h";
  e.sub = std::move(sub);
  return e;
}

// The event's entry is staged or queued. The staged folder first: the
// publisher's thread queues an entry (its file renamed in) before it removes
// the staged one, so the two looks cannot both miss it.
bool on_disk(const std::string& dir, const std::string& event_id) {
  std::string name = storage::entry_file_name(event_id, storage::kWebhookSink);
  if (fs::exists(dir + "/staged"))
    for (const auto& f : fs::directory_iterator(dir + "/staged"))
      if (f.path().filename().string().ends_with("." + name)) return true;
  return fs::exists(dir + "/" + name);
}

struct Fixture {
  TempDir tmp;
  std::string dir = tmp.path() + "/events";
  std::vector<std::string> delivered;
  common::Counter published, dropped;

  std::unique_ptr<storage::DeliveryQueue> open() {
    storage::DeliveryQueueOptions o;
    o.dir = dir;
    auto q = storage::DeliveryQueue::open(o);
    EXPECT_TRUE(q.ok()) << q.error().message;
    (*q)->add_sink(std::string(storage::kWebhookSink), [this] {
      auto s = std::make_unique<RecordingSink>();
      s->ids = &delivered;
      return s;
    });
    return std::move(q).value();
  }
};

TEST(EventPublisher, AnEventIsOnDiskWhenPublishReturns) {
  Fixture f;
  auto q = f.open();
  EventPublisher p(q.get(), "gw-1", "eu", {&f.published, &f.dropped});
  const char* types[] = {"session.started", "session.ended", "recording.published"};
  for (int r = 0; r < 20; ++r) {
    std::string rec = "rec-" + std::to_string(r);
    for (const char* type : types) {
      auto e = event(rec, type);
      std::string id = storage::event_id(e);
      p.publish(std::move(e));
      // No wait: what a kill -9 at this instant would leave behind.
      ASSERT_TRUE(on_disk(f.dir, id)) << id;
    }
  }
  EXPECT_EQ(f.published.value(), 60u);
  EXPECT_EQ(f.dropped.value(), 0u);
}

TEST(EventPublisher, EveryEventReachesTheQueueInOrderAlsoPastTheBuffer) {
  Fixture f;
  auto q = f.open();
  {
    // A buffer of 2: most events are admitted from the staged folder.
    EventPublisher p(q.get(), "gw-1", "eu", {&f.published, &f.dropped}, 2);
    for (int r = 0; r < 5; ++r) {
      std::string rec = "rec-" + std::to_string(r);
      p.publish(event(rec, "session.started"));
      for (int u = 1; u <= 3; ++u) {
        char sub[16];
        std::snprintf(sub, sizeof sub, "%06d", u);
        p.publish(event(rec, "session.updated", sub));
      }
      p.publish(event(rec, "session.ended"));
    }
    p.stop();
  }
  EXPECT_EQ(f.dropped.value(), 0u);
  for (const auto& x : fs::directory_iterator(f.dir + "/staged"))  // spares only: every event was admitted
    EXPECT_TRUE(x.path().filename().string().starts_with("spare-")) << x.path();
  while (q->run_once()) {
  }
  ASSERT_EQ(f.delivered.size(), 25u);
  // Per recording: started, updated 1..3, ended, in that order.
  for (int r = 0; r < 5; ++r) {
    std::string rec = "rec-" + std::to_string(r);
    std::vector<std::string> mine;
    for (const auto& id : f.delivered)
      if (id.starts_with(rec + ".")) mine.push_back(id);
    EXPECT_EQ(mine, (std::vector<std::string>{rec + ".10", rec + ".20.000001", rec + ".20.000002",
                                              rec + ".20.000003", rec + ".30"}));
  }
}

TEST(EventPublisher, EventsStagedByAKilledProcessAreQueuedByTheNextOne) {
  Fixture f;
  {
    auto q = f.open();
    // A publisher that staged and was killed before admitting: the staged
    // files are all that is left (here written by stage() directly).
    auto e = storage::event_entry(event("rec-k", "session.ended"), "gw-1", "eu");
    ASSERT_TRUE(e.ok());
    ASSERT_TRUE(q->stage(*e).ok());
  }
  auto q = f.open();
  EventPublisher p(q.get(), "gw-1", "eu", {&f.published, &f.dropped});
  p.publish(event("rec-k", "recording.published"));
  p.stop();
  while (q->run_once()) {
  }
  EXPECT_EQ(f.delivered, (std::vector<std::string>{"rec-k.30", "rec-k.40"}));
}

TEST(EventPublisher, AnInvalidEventIsDroppedAndCounted) {
  Fixture f;
  auto q = f.open();
  EventPublisher p(q.get(), "gw-1", "eu", {&f.published, &f.dropped});
  p.publish(event("../x", "session.started"));
  p.publish(event("rec-1", "session.exploded"));
  p.stop();
  EXPECT_EQ(f.dropped.value(), 2u);
  EXPECT_EQ(f.published.value(), 0u);
}

}  // namespace
}  // namespace sgw::control
