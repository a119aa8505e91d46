// SessionManager with fault-injecting fakes for the SIP endpoint, the media
// engine and the spool: what is answered, what is written and what is ended
// when ports, workers or storage fail (docs/guarantees.md).
#include "siprec/session_manager.h"

#include <chrono>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

namespace sgw::siprec {
namespace {

class FakeEndpoint final : public sip::Endpoint {
 public:
  void reply(sip::TransactionId tx, const sip::Response& r) override { replies.emplace_back(tx, r); }
  sip::DialogId accept_invite(sip::TransactionId tx, const sip::Response& r) override {
    accepted.emplace_back(tx, r);
    return next_dialog++;
  }
  void send_bye(sip::DialogId d, const sip::HeaderList& h) override { byes.emplace_back(d, h); }
  bool send_refresh(sip::DialogId, const sip::HeaderList&) override { return false; }
  void release_dialog(sip::DialogId) override {}
  void run() override {}
  void stop() override {}
  bool post(std::function<void()> fn) override {
    std::lock_guard l(mutex);
    posted.push_back(std::move(fn));
    return true;
  }
  void after(std::uint32_t, std::function<void()> fn) override { post(std::move(fn)); }
  std::vector<std::string> bound_addresses() const override { return {}; }
  // Other threads posted n things (bounded wait; false after 10 s).
  bool wait_posted(std::size_t n = 1) {
    for (int i = 0; i < 10000; ++i) {
      {
        std::lock_guard l(mutex);
        if (posted.size() >= n) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  }
  // The SIP thread's turn: runs what other threads posted.
  void run_posted() {
    std::deque<std::function<void()>> batch;
    {
      std::lock_guard l(mutex);
      batch.swap(posted);
    }
    for (auto& fn : batch) fn();
  }

  std::vector<std::pair<sip::TransactionId, sip::Response>> replies, accepted;
  std::vector<std::pair<sip::DialogId, sip::HeaderList>> byes;
  sip::DialogId next_dialog = 100;
  std::mutex mutex;
  std::deque<std::function<void()>> posted;
};

class NullSink final : public media::SessionSink {
 public:
  void start(std::int64_t) override {}
  void on_rtp(std::uint8_t, std::int64_t, const media::RtpPacketView&) override {}
  void on_event(std::int64_t, std::string_view) override {}
  void on_metadata(std::int64_t, std::string_view) override {}
  void on_tick(std::int64_t) override {}
  void finish(std::int64_t, std::string_view) override {}
};

// Keeps the end record it is finished with.
class EndSink final : public media::SessionSink {
 public:
  explicit EndSink(std::vector<std::string>* ends) : ends_(ends) {}
  void start(std::int64_t) override {}
  void on_rtp(std::uint8_t, std::int64_t, const media::RtpPacketView&) override {}
  void on_event(std::int64_t, std::string_view) override {}
  void on_metadata(std::int64_t, std::string_view) override {}
  void on_tick(std::int64_t) override {}
  void finish(std::int64_t, std::string_view end) override { ends_->emplace_back(end); }

 private:
  std::vector<std::string>* ends_;
};

// Media engine whose workers and ports run out on demand.
class FakeMedia final : public media::MediaEngine {
 public:
  struct Session {
    bool started = false;
    bool closed = false;
    std::string end;
    std::function<void()> on_closed;
    std::vector<std::string> events;
    int streams = 0;  // open, each holding a port pair
  };
  media::SessionHandle reserve_session(const std::string&) override {
    if (workers_busy) return 0;
    sessions[next];
    return next++;
  }
  void start_session(media::SessionHandle h, std::unique_ptr<media::SessionSink>,
                     std::int64_t) override {
    sessions[h].started = true;
  }
  common::Result<media::OpenedStream> open_stream(media::SessionHandle h, const media::StreamSpec&) override {
    if (ports_left == 0) return common::make_error("media.no_ports", "no free RTP port pair");
    --ports_left;
    ++sessions[h].streams;
    return media::OpenedStream{next_stream++, static_cast<std::uint16_t>(20000 + 2 * next_stream)};
  }
  void update_stream(media::SessionHandle, media::StreamId, const media::StreamSpec&) override {}
  void close_stream(media::SessionHandle h, media::StreamId) override {
    ++ports_left;
    --sessions[h].streams;
  }
  void post_event(media::SessionHandle h, std::string json) override { sessions[h].events.push_back(json); }
  void post_metadata(media::SessionHandle, std::string) override {}
  void close_session(media::SessionHandle h, std::string end, std::function<void()> cb) override {
    auto& s = sessions[h];
    ports_left += s.streams;  // the session's ports are released with it
    s.streams = 0;
    s.closed = true;
    s.end = end;
    s.on_closed = std::move(cb);
  }
  std::size_t open_streams() const override { return 0; }
  void stop() override {}

  bool workers_busy = false;
  int ports_left = 100;
  media::SessionHandle next = 1;
  media::StreamId next_stream = 1;
  std::map<media::SessionHandle, Session> sessions;
};

constexpr const char* kSdp =
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0\r\na=label:1\r\na=sendonly\r\n"
    "m=audio 40002 RTP/AVP 0\r\na=label:2\r\na=sendonly\r\n";
constexpr const char* kMetadata =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n"
    "<recording xmlns=\"urn:ietf:params:xml:ns:recording:1\"><datamode>complete</datamode>"
    "<participant participant_id=\"cDE=\"><nameID aor=\"sip:alice@example.com\"/></participant>"
    "</recording>\r\n";

sip::Request invite(const std::string& call_id) {
  sip::Request r;
  r.method = "INVITE";
  r.request_uri = "sip:srs@127.0.0.1";
  r.call_id = call_id;
  r.from = "<sip:src@127.0.0.1>;tag=1";
  r.to = "<sip:srs@127.0.0.1>";
  r.cseq = 1;
  r.transport = "udp";
  r.content_type = "multipart/mixed;boundary=b1";
  r.body = std::string("--b1\r\nContent-Type: application/sdp\r\n\r\n") + kSdp +
           "--b1\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n" +
           kMetadata + "--b1--\r\n";
  r.headers = {{"Require", "siprec"}};
  return r;
}

std::string header(const sip::Response& r, const std::string& name) {
  for (const auto& [n, v] : r.headers)
    if (n == name) return v;
  return {};
}

struct Harness {
  explicit Harness(Policy policy = {}) {
    manager = std::make_unique<SessionManager>(
        std::move(policy), &media,
        SessionMetrics{&active, &invites, &requests, &metadata_errors, &storage_failures, nullptr, &unfit},
        [this](SinkRequest r) -> common::Result<std::unique_ptr<media::SessionSink>> {
          if (gate.valid()) gate.wait();  // Policy::sink_thread: the spool's thread waits here
          ++sinks_asked;
          if (!sink_error.empty()) return common::make_error("io.open", sink_error);
          if (durable_at_once) r.on_durable(common::Ok{});  // a syncer quicker than the SIP thread
          requests_seen.push_back(std::move(r));
          return std::unique_ptr<media::SessionSink>(std::make_unique<EndSink>(&ends));
        },
        [this](const std::string& id) { closed.push_back(id); });
    manager->attach(&endpoint);
  }
  // An INVITE answered 200 (spool durable), and its dialog.
  sip::DialogId establish(sip::TransactionId tx) {
    manager->on_request(tx, invite("call-" + std::to_string(tx)));
    requests_seen.back().on_durable(common::Ok{});
    endpoint.run_posted();
    return endpoint.accepted.empty() ? 0 : endpoint.next_dialog - 1;
  }

  common::Gauge active;
  common::LabelledCounter invites{"code"}, requests{"method"};
  common::Counter metadata_errors, storage_failures;
  common::LabelledCounter unfit{"reason"};
  FakeEndpoint endpoint;
  FakeMedia media;
  std::string sink_error;
  std::shared_future<void> gate;  // set: make_sink waits for it
  bool durable_at_once = false;
  std::vector<std::string> ends;  // end records the sinks were finished with (discarded sinks)
  int sinks_asked = 0;
  std::vector<SinkRequest> requests_seen;
  std::vector<std::string> closed;
  std::unique_ptr<SessionManager> manager;
};

TEST(SessionManagerTest, AnswersOnlyOnceTheSpoolStartWithMetadataAndStreamsIsDurable) {
  Harness h;
  h.manager->on_request(1, invite("c1"));
  ASSERT_EQ(h.requests_seen.size(), 1u);
  const SinkRequest& r = h.requests_seen[0];
  // Everything a reviewer needs is in the records written before the answer.
  EXPECT_NE(r.start_json.find("\"call_id\":\"c1\""), std::string::npos);
  ASSERT_EQ(r.metadata_docs.size(), 1u);
  EXPECT_NE(r.metadata_docs[0].find("sip:alice@example.com"), std::string::npos);
  auto streams = nlohmann::json::parse(r.streams_event_json);
  EXPECT_EQ(streams["event"], "streams");
  EXPECT_EQ(streams["streams"].size(), 2u);
  EXPECT_TRUE(h.media.sessions[1].started);
  // Not durable yet: no answer on the wire.
  h.endpoint.run_posted();
  EXPECT_TRUE(h.endpoint.accepted.empty());
  EXPECT_TRUE(h.endpoint.replies.empty());
  r.on_durable(common::Ok{});  // the syncer's thread
  EXPECT_TRUE(h.endpoint.accepted.empty());  // the answer is sent on the SIP thread
  h.endpoint.run_posted();
  ASSERT_EQ(h.endpoint.accepted.size(), 1u);
  EXPECT_EQ(h.endpoint.accepted[0].second.status, 200);
  EXPECT_EQ(h.endpoint.accepted[0].second.content_type, "application/sdp");
  EXPECT_EQ(h.invites.with("200").value(), 1u);
}

TEST(SessionManagerTest, SpoolThatCannotBeCreatedRefuses503WithRetryAfterAndTurnsStorageBad) {
  Harness h;
  h.sink_error = "open /spool/x.spool: No space left on device";
  h.manager->on_request(1, invite("c1"));
  ASSERT_EQ(h.endpoint.replies.size(), 1u);
  EXPECT_EQ(h.endpoint.replies[0].second.status, 503);
  EXPECT_EQ(header(h.endpoint.replies[0].second, "Retry-After"), "30");
  EXPECT_TRUE(h.endpoint.accepted.empty());
  // Ports were taken first and given back; the media session never started.
  ASSERT_EQ(h.media.sessions.size(), 1u);
  EXPECT_TRUE(h.media.sessions[1].closed);
  EXPECT_FALSE(h.media.sessions[1].started);
  EXPECT_EQ(h.media.ports_left, 100);
  EXPECT_EQ(h.storage_failures.value(), 1u);
  EXPECT_FALSE(h.manager->storage_ok());
  EXPECT_EQ(h.manager->active_sessions(), 0u);
  // Health follows: OPTIONS and the next INVITE get 503 without touching storage.
  sip::Request options;
  options.method = "OPTIONS";
  h.manager->on_request(2, options);
  EXPECT_EQ(h.endpoint.replies.back().second.status, 503);
  h.sink_error.clear();
  h.manager->on_request(3, invite("c3"));
  EXPECT_EQ(h.endpoint.replies.back().second.status, 503);
  EXPECT_EQ(h.sinks_asked, 1);
}

TEST(SessionManagerTest, SpoolStartThatCannotBeSyncedRefusesAndEndsUnanswered) {
  Harness h;
  h.manager->on_request(1, invite("c1"));
  h.requests_seen[0].on_durable(common::make_error("io.fdatasync", "fdatasync /spool/x.spool: EIO"));
  h.endpoint.run_posted();
  ASSERT_EQ(h.endpoint.replies.size(), 1u);
  EXPECT_EQ(h.endpoint.replies[0].second.status, 503);
  EXPECT_TRUE(h.endpoint.accepted.empty());
  auto end = nlohmann::json::parse(h.media.sessions[1].end);
  // Unanswered: the finaliser removes the spool, nothing is published.
  EXPECT_EQ(end["answered"], false);
  EXPECT_NE(end["cause"].get<std::string>().find("EIO"), std::string::npos);
  EXPECT_FALSE(h.manager->storage_ok());
  EXPECT_EQ(h.invites.with("503").value(), 1u);
}

TEST(SessionManagerTest, NoPortsOrBusyWorkersRefuseBeforeAnySpoolIsCreated) {
  Harness h;
  h.media.ports_left = 1;  // two m-lines offered
  h.manager->on_request(1, invite("c1"));
  ASSERT_EQ(h.endpoint.replies.size(), 1u);
  EXPECT_EQ(h.endpoint.replies[0].second.status, 503);
  EXPECT_EQ(h.endpoint.replies[0].second.reason, "No media ports available");
  EXPECT_EQ(header(h.endpoint.replies[0].second, "Retry-After"), "30");
  EXPECT_EQ(h.media.ports_left, 1);  // the one pair taken was given back
  EXPECT_TRUE(h.media.sessions[1].closed);
  EXPECT_FALSE(h.media.sessions[1].started);
  h.media.ports_left = 100;
  h.media.workers_busy = true;
  h.manager->on_request(2, invite("c2"));
  EXPECT_EQ(h.endpoint.replies.back().second.status, 503);
  EXPECT_EQ(h.endpoint.replies.back().second.reason, "Media workers busy");
  EXPECT_EQ(h.sinks_asked, 0);  // no spool for a refused call
  EXPECT_EQ(h.invites.with("503").value(), 2u);
  EXPECT_TRUE(h.closed.empty());
  EXPECT_TRUE(h.manager->storage_ok());  // not a storage problem
}

TEST(SessionManagerTest, SpoolWriteFailureDuringTheCallSendsByeWithReasonAndEndsIncomplete) {
  Harness h;
  sip::DialogId d = h.establish(1);
  ASSERT_NE(d, 0u);
  h.manager->on_ack(d, {});
  // Reported by the sink on its media worker.
  h.requests_seen[0].on_failure("write /spool/x.spool: No space left on device");
  EXPECT_FALSE(h.manager->storage_ok());  // at once, before the SIP thread runs
  h.endpoint.run_posted();
  ASSERT_EQ(h.endpoint.byes.size(), 1u);
  EXPECT_EQ(h.endpoint.byes[0].first, d);
  ASSERT_EQ(h.endpoint.byes[0].second.size(), 1u);
  EXPECT_EQ(h.endpoint.byes[0].second[0].first, "Reason");
  EXPECT_EQ(h.endpoint.byes[0].second[0].second, "SIP;cause=503;text=\"Recording storage failed\"");
  EXPECT_EQ(h.storage_failures.value(), 1u);
  // A second report of the same recording changes nothing.
  h.requests_seen[0].on_failure("write: again");
  h.endpoint.run_posted();
  EXPECT_EQ(h.endpoint.byes.size(), 1u);
  h.manager->on_bye_result(d, 200);
  ASSERT_TRUE(h.media.sessions[1].closed);
  auto end = nlohmann::json::parse(h.media.sessions[1].end);
  EXPECT_EQ(end["complete"], false);
  EXPECT_EQ(end["answered"], true);
  EXPECT_EQ(end["cause"], "recording storage failed: write /spool/x.spool: No space left on device");
  ASSERT_TRUE(h.media.sessions[1].on_closed);
  h.media.sessions[1].on_closed();  // the worker finished the spool
  EXPECT_EQ(h.closed.size(), 1u);
}

TEST(SessionManagerTest, ShutdownClosesEverySessionIncompleteWhileTheMediaEngineIsThere) {
  Harness h;
  ASSERT_NE(h.establish(1), 0u);
  h.manager->on_request(2, invite("c2"));  // still being answered
  h.manager->shutdown();
  ASSERT_EQ(h.media.sessions.size(), 2u);
  auto established = nlohmann::json::parse(h.media.sessions[1].end);
  EXPECT_EQ(established["complete"], false);
  EXPECT_EQ(established["answered"], true);
  EXPECT_EQ(established["cause"], "gateway stopped");
  auto answering = nlohmann::json::parse(h.media.sessions[2].end);
  EXPECT_EQ(answering["answered"], false);
  EXPECT_EQ(h.manager->active_sessions(), 0u);
  // The spool of the second call becoming durable after shutdown answers nothing.
  h.requests_seen[1].on_durable(common::Ok{});
  h.endpoint.run_posted();
  EXPECT_EQ(h.endpoint.accepted.size(), 1u);
  h.manager.reset();  // the destructor has nothing left to close
  EXPECT_EQ(h.media.sessions.size(), 2u);
}

}  // namespace
TEST(SessionManagerTest, UnfitReasonsRefuseOptionsAndInvitesWith503AndAreCountedByLabel) {
  Harness h;
  sip::Request options;
  options.method = "OPTIONS";
  h.manager->on_request(1, options);
  EXPECT_EQ(h.endpoint.replies.back().second.status, 200);
  EXPECT_TRUE(h.manager->unfit_reasons().empty());
  h.manager->set_unfit(Unfit::kSpoolDiskLow, true, "/spool has 3 MB free");
  h.manager->set_unfit(Unfit::kBacklog, true, "oldest 901 s");
  h.manager->on_request(2, options);
  EXPECT_EQ(h.endpoint.replies.back().second.status, 503);
  EXPECT_EQ(h.endpoint.replies.back().second.reason, "Spool disk low");
  EXPECT_EQ(header(h.endpoint.replies.back().second, "Retry-After"), "30");
  h.manager->on_request(3, invite("c3"));
  EXPECT_EQ(h.endpoint.replies.back().second.status, 503);
  EXPECT_EQ(h.sinks_asked, 0);
  EXPECT_EQ(h.unfit.with("spool_disk_low").value(), 2u);
  auto reasons = h.manager->unfit_reasons();
  ASSERT_EQ(reasons.size(), 2u);
  EXPECT_EQ(reasons[0].first, Unfit::kSpoolDiskLow);
  EXPECT_EQ(reasons[0].second, "/spool has 3 MB free");
  EXPECT_EQ(reasons[1].first, Unfit::kBacklog);
  h.manager->set_unfit(Unfit::kSpoolDiskLow, false);
  h.manager->on_request(4, options);
  EXPECT_EQ(h.endpoint.replies.back().second.reason, "Delivery backlog too old");
  EXPECT_EQ(h.unfit.with("delivery_backlog").value(), 1u);
  h.manager->set_unfit(Unfit::kBacklog, false);
  h.manager->on_request(5, options);
  EXPECT_EQ(h.endpoint.replies.back().second.status, 200);
}

TEST(SessionManagerTest, DrainWithMaxSLetsCallsRunUntilTheDeadlineAndResumeCancelsIt) {
  Harness h;
  ASSERT_NE(h.establish(1), 0u);
  ASSERT_NE(h.establish(2), 0u);
  int drained = 0;
  h.manager->drain([&] { ++drained; }, 60);
  EXPECT_TRUE(h.endpoint.byes.empty());  // the calls go on until drain.max_s
  EXPECT_EQ(h.manager->unfit_reasons().front().first, Unfit::kDraining);
  h.manager->resume();
  h.endpoint.run_posted();  // the (fake) deadline fires: stale after resume
  EXPECT_TRUE(h.endpoint.byes.empty());
  EXPECT_FALSE(h.manager->draining());
  h.manager->drain([&] { ++drained; }, 60);
  h.endpoint.run_posted();  // deadline reached: BYE with Reason to both
  ASSERT_EQ(h.endpoint.byes.size(), 2u);
  EXPECT_EQ(h.endpoint.byes[0].second.front().first, "Reason");
  EXPECT_NE(h.endpoint.byes[0].second.front().second.find("cause=503"), std::string::npos);
  EXPECT_EQ(drained, 0);
  h.manager->on_bye_result(h.endpoint.byes[0].first, 200);
  h.manager->on_bye_result(h.endpoint.byes[1].first, 200);
  EXPECT_EQ(drained, 1);
  auto end = nlohmann::json::parse(h.media.sessions[1].end);
  EXPECT_EQ(end["complete"], false);
}

}  // namespace sgw::siprec

namespace sgw::siprec {
namespace {

// Our delayed-offer SDP is RTP/AVP only: under media.srtp: require an INVITE without SDP is
// refused before any media session or spool, with a Warning about the delayed offer (not about
// an RTP/AVP offer the SRC never made). Under allow it is offered and answered as usual.
TEST(SessionManagerTest, DelayedOfferUnderSrtpRequireIs488WithAClearWarningAndNothingTaken) {
  Policy policy;
  policy.codecs.srtp = CodecPolicy::Srtp::kRequire;
  Harness h(policy);
  sip::Request metadata_only = invite("c1");
  metadata_only.content_type = "application/rs-metadata+xml";
  metadata_only.body = kMetadata;
  sip::Request no_body = invite("c2");
  no_body.content_type.clear();
  no_body.body.clear();
  h.manager->on_request(1, metadata_only);
  h.manager->on_request(2, no_body);
  ASSERT_EQ(h.endpoint.replies.size(), 2u);
  for (const auto& [tx, r] : h.endpoint.replies) {
    EXPECT_EQ(r.status, 488) << tx;
    EXPECT_NE(header(r, "Warning").find("302 "), std::string::npos) << header(r, "Warning");
    EXPECT_NE(header(r, "Warning").find("SRTP required (media.srtp: require): an INVITE without SDP (delayed offer)"),
              std::string::npos)
        << header(r, "Warning");
    EXPECT_TRUE(r.body.empty());
  }
  EXPECT_TRUE(h.endpoint.accepted.empty());
  EXPECT_TRUE(h.media.sessions.empty());  // no media session reserved, no port
  EXPECT_EQ(h.sinks_asked, 0);            // no spool
  EXPECT_EQ(h.invites.with("488").value(), 2u);

  Policy allow;
  allow.codecs.srtp = CodecPolicy::Srtp::kAllow;
  Harness a(allow);
  a.manager->on_request(1, no_body);
  EXPECT_TRUE(a.endpoint.replies.empty());  // offered: waits for the spool, then 200 with our offer
  EXPECT_EQ(a.sinks_asked, 1);
}

// Policy::sink_thread (docs/performance.md "The SIP thread"): the spool is made on the manager's
// own thread while the INVITE waits; the media session starts, and its offer is logged, when
// the SIP thread takes the sink; a syncer that reports the spool durable first only makes the
// answer wait for that.
TEST(SessionManagerTest, OnItsOwnThreadTheSpoolIsMadeWhileTheInviteWaitsThenTheCallIsAnswered) {
  Policy p;
  p.sink_thread = true;
  Harness h(p);
  std::promise<void> open;
  h.gate = open.get_future().share();
  h.durable_at_once = true;
  h.manager->on_request(1, invite("c1"));
  // The SIP thread is free at once: the session is reserved with its ports, not started.
  EXPECT_EQ(h.manager->active_sessions(), 1u);
  EXPECT_FALSE(h.media.sessions[1].started);
  EXPECT_EQ(h.media.sessions[1].streams, 2);
  EXPECT_TRUE(h.endpoint.accepted.empty());
  open.set_value();
  ASSERT_TRUE(h.endpoint.wait_posted(2));  // the durable report, then the sink: both, or a race
  h.endpoint.run_posted();  // durable (stashed), then the sink: started, then answered
  ASSERT_EQ(h.endpoint.accepted.size(), 1u);
  EXPECT_EQ(h.endpoint.accepted[0].second.status, 200);
  EXPECT_TRUE(h.media.sessions[1].started);
  ASSERT_FALSE(h.media.sessions[1].events.empty());
  EXPECT_NE(h.media.sessions[1].events[0].find("recording session offered by"), std::string::npos);
  EXPECT_TRUE(h.ends.empty());
}

// A session that ends before its spool is taken (CANCEL, shutdown) leaves it finished
// unanswered for the finaliser to remove, whichever came first: the sink or the end.
TEST(SessionManagerTest, OnItsOwnThreadASpoolWhoseCallEndedFirstIsDiscardedUnanswered) {
  Policy p;
  p.sink_thread = true;
  Harness h(p);
  auto expect_discarded = [&h](const std::string& cause) {
    ASSERT_EQ(h.ends.size(), 1u);
    auto end = nlohmann::json::parse(h.ends[0]);
    EXPECT_EQ(end["answered"], false);
    EXPECT_EQ(end["cause"], cause);
    EXPECT_EQ(h.closed.size(), 1u);  // handed to the finaliser
    EXPECT_TRUE(h.endpoint.accepted.empty());
    EXPECT_EQ(h.manager->active_sessions(), 0u);
    h.ends.clear();
    h.closed.clear();
  };
  {  // CANCEL while the spool is being made
    std::promise<void> open;
    h.gate = open.get_future().share();
    h.manager->on_request(1, invite("c1"));
    h.manager->on_cancelled(1);
    EXPECT_TRUE(h.media.sessions[1].closed);
    EXPECT_EQ(h.ends.size(), 0u);
    open.set_value();
    ASSERT_TRUE(h.endpoint.wait_posted());
    h.endpoint.run_posted();
    expect_discarded("ended before its spool was ready");
  }
  {  // CANCEL after it was made, before the SIP thread took it
    h.gate = {};
    h.manager->on_request(2, invite("c2"));
    ASSERT_TRUE(h.endpoint.wait_posted());
    h.manager->on_cancelled(2);
    expect_discarded("CANCEL before answer");
    h.endpoint.run_posted();  // the take finds nothing
    EXPECT_TRUE(h.ends.empty());
  }
  {  // shutdown: the job runs to its end, its post never runs
    std::promise<void> open;
    h.gate = open.get_future().share();
    h.manager->on_request(3, invite("c3"));
    open.set_value();
    h.manager->shutdown();
    expect_discarded("gateway stopped");
    EXPECT_EQ(h.invites.with("200").value(), 0u);
  }
}

// Policy::metadata_thread (docs/performance.md "The SIP thread"): a new INVITE's metadata is
// parsed on the manager's own thread while the INVITE waits; nothing is reserved until the SIP
// thread takes the result, then the call goes on as before with the parsed model. A waiting
// INVITE counts toward sip.max_sessions; CANCEL and drain answer it, and its late result is
// dropped.
TEST(SessionManagerTest, OnItsOwnThreadTheMetadataIsParsedWhileTheInviteWaits) {
  Policy p;
  p.metadata_thread = true;
  p.max_sessions = 1;
  std::vector<storage::WebhookEvent> events;
  p.on_event = [&events](storage::WebhookEvent e) { events.push_back(std::move(e)); };
  Harness h(p);
  h.manager->on_request(1, invite("c1"));
  EXPECT_TRUE(h.media.sessions.empty());  // no port, no spool yet
  EXPECT_TRUE(h.requests_seen.empty());
  EXPECT_TRUE(h.endpoint.replies.empty());
  h.manager->on_request(2, invite("c2"));  // the waiting INVITE holds the one session slot
  ASSERT_EQ(h.endpoint.replies.size(), 1u);
  EXPECT_EQ(h.endpoint.replies[0].first, 2u);
  EXPECT_EQ(h.endpoint.replies[0].second.status, 503);
  ASSERT_TRUE(h.endpoint.wait_posted());
  h.endpoint.run_posted();  // parsed: ports, spool
  ASSERT_EQ(h.requests_seen.size(), 1u);
  EXPECT_EQ(h.media.sessions[1].streams, 2);
  ASSERT_EQ(h.requests_seen[0].metadata_docs.size(), 1u);
  h.requests_seen[0].on_durable(common::Ok{});
  h.endpoint.run_posted();
  ASSERT_EQ(h.endpoint.accepted.size(), 1u);
  EXPECT_EQ(h.endpoint.accepted[0].second.status, 200);
  // The session has the parsed model: its participant is in the started event.
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, "session.started");
  EXPECT_NE(events[0].data["participants"].dump().find("sip:alice@example.com"), std::string::npos);
  EXPECT_EQ(h.metadata_errors.value(), 0u);

  p.max_sessions = 10;
  Harness w(p);
  w.manager->on_request(3, invite("c3"));
  w.manager->on_cancelled(3);  // CANCEL while parsing: 487, nothing reserved
  EXPECT_EQ(w.invites.with("487").value(), 1u);
  w.manager->on_request(4, invite("c4"));
  int drained = 0;
  w.manager->drain([&] { ++drained; }, 60);  // drain while parsing: 503
  ASSERT_EQ(w.endpoint.replies.size(), 1u);
  EXPECT_EQ(w.endpoint.replies[0].first, 4u);
  EXPECT_EQ(w.endpoint.replies[0].second.status, 503);
  EXPECT_EQ(drained, 1);
  ASSERT_TRUE(w.endpoint.wait_posted(2));  // both results come back and find no INVITE waiting
  w.endpoint.run_posted();
  EXPECT_TRUE(w.media.sessions.empty());
  EXPECT_TRUE(w.requests_seen.empty());
  EXPECT_TRUE(w.endpoint.accepted.empty());
  EXPECT_EQ(w.manager->active_sessions(), 0u);
}

}  // namespace
}  // namespace sgw::siprec
