// SessionManager: the SRS side of RFC 7866 recording sessions.
//
// It answers OPTIONS, accepts or refuses recording-session INVITEs (policy:
// 503 when draining or full, 420 for unknown Require, 400 for a malformed
// body, 488 when nothing offered can be recorded), allocates media ports
// before the 200 OK, keeps the merged RFC 7865 metadata, and follows the
// dialog (re-INVITE/UPDATE pause/resume, stream add/remove, metadata updates,
// session-timer refreshes, BYE in both directions, drain).
//
// Thread: everything runs on the SIP thread, except snapshot_json() and
// active_sessions(), which any thread may call.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/logging.h"
#include "common/metrics.h"
#include "common/result.h"
#include "common/task_thread.h"
#include "media/media_engine.h"
#include "media/session_sink.h"
#include "metadata/conversation_id.h"
#include "metadata/metadata_parser.h"
#include "metadata/recording_metadata.h"
#include "recording/call_decision.h"
#include "sip/endpoint.h"
#include "siprec/admission.h"
#include "siprec/offer_answer.h"
#include "siprec/sdp.h"
#include "storage/webhook_event.h"

namespace sgw::siprec {

struct Policy {
  std::string node_name = "siprecd";
  std::string region = "local";
  std::uint32_t max_sessions = 10000;
  std::uint32_t retry_after_s = 30;
  std::uint32_t answer_delay_ms = 0;  // test aid: delay the final answer to INVITE
  std::uint32_t min_session_expires_s = 90;  // RFC 4028 §5 Min-SE floor (sip.min_session_expires_s)
  std::uint32_t max_paused_s = 7200;  // all streams paused/held this long: BYE (0: never)
  std::string media_address = "127.0.0.1";
  CodecPolicy codecs;
  metadata::ParseLimits metadata_limits;
  std::vector<metadata::ConversationIdRule> conversation_id_rules;
  std::string recordings_dir;  // finished sessions' metadata JSON goes here
  AdmissionLimits admission;   // per-source limits (docs/security.md)
  // Call-control hook (docs/integrations.md). Null: no hook, every call is
  // recorded with the configuration's settings. Called on the SIP thread with
  // the request document; must not block; `done` is called once, on any thread.
  using HookCall = std::function<void(std::string request_json,
                                      std::function<void(recording::CallDecision)> done)>;
  HookCall invite_hook;
  HookCall update_hook;  // re-INVITE/UPDATE with new metadata (hooks.update_url); answer only logged
  // Event webhooks (docs/integrations.md): session.started/updated/ended of
  // answered sessions, on the SIP thread; must not block. Null: none.
  std::function<void(storage::WebhookEvent)> on_event;
  // make_sink (the spool's open(O_CREAT) and first writes) runs on a thread of the manager's
  // own ("sgw-spool-open") while the INVITE waits for its 200 OK, not on the SIP thread
  // (docs/performance.md). make_sink must then be callable from that thread. False: on the
  // SIP thread (unit tests).
  bool sink_thread = false;
  // The metadata documents of a new INVITE are parsed on a thread of the manager's own
  // ("sgw-metadata") while the INVITE waits, not on the SIP thread (docs/performance.md).
  // False: on the SIP thread (unit tests). Re-INVITEs and UPDATEs are parsed on the SIP thread.
  bool metadata_thread = false;
};

struct SessionMetrics {
  common::Gauge* active_sessions = nullptr;
  common::LabelledCounter* invites_by_code = nullptr;
  common::LabelledCounter* requests_by_method = nullptr;
  common::Counter* metadata_errors = nullptr;
  // Calls refused or ended because their spool could not be created, synced
  // or written (may be null).
  common::Counter* storage_failures = nullptr;
  // Delayed-offer sessions ended because the ACK had no usable answer (may be null).
  common::Counter* delayed_offer_failures = nullptr;
  // OPTIONS and new INVITEs answered 503 because the node is unfit, by
  // reason (unfit_label; may be null).
  common::LabelledCounter* unfit_refusals = nullptr;
  common::LabelledCounter* limits_hit = nullptr;  // sgw_limits_hit_total{cap} (may be null)
  // INVITE received -> 200 OK sent, seconds (may be null).
  common::Histogram* setup_latency_s = nullptr;
};

// Why a node refuses new recording sessions: OPTIONS and new INVITEs get 503 +
// Retry-After and /readyz says 503 with these reasons (docs/failover.md).
enum class Unfit : unsigned {
  kDraining = 0,     // drain (SIGTERM, `siprecd drain`, POST /drain)
  kMaxSessions,      // sip.max_sessions sessions active
  kStorage,          // the spool or recordings folder is not writable, or a spool write failed
  kSpoolDiskLow,     // the spool's filesystem has less than recording.min_free_mb free
  kBacklog,          // an undelivered recording is older than storage.max_backlog_age_s
};
inline constexpr unsigned kUnfitReasons = 5;
// The metric label and /readyz reason: "draining", "max_sessions", "storage",
// "spool_disk_low", "delivery_backlog".
const char* unfit_label(Unfit reason);

// What a new session's sink (the spool) must hold before the call is answered.
struct SinkRequest {
  std::string recording_id;
  std::string start_json;                  // session-start record: enough to finish from the spool alone
  std::vector<std::string> metadata_docs;  // the INVITE's RFC 7865 documents
  std::string streams_event_json;          // the first "streams" event
  // The call-control hook's live-audio target for this call (docs/integrations.md);
  // unset: the configuration's stream.*; an empty url: no live stream.
  std::optional<recording::StreamOverride> stream;
  // Any thread, once: the records above are durable (Ok) or cannot be made so.
  // The 200 OK is sent only after Ok.
  std::function<void(common::Status)> on_durable;
  // Any thread: the sink could not write the spool during the call.
  std::function<void(const std::string& message)> on_failure;
};
// Creates the sink of a new recording session on the SIP thread, writing the
// request's records; an error refuses the call with 503 (and must leave
// nothing on disk).
using SinkFactory =
    std::function<common::Result<std::unique_ptr<media::SessionSink>>(SinkRequest request)>;
// Called on a media worker thread once a session's sink has finished (its
// spool is complete): the application hands the recording to finalisation.
using ClosedCallback = std::function<void(const std::string& recording_id)>;

class SessionManager final : public sip::EndpointListener {
 public:
  SessionManager(Policy policy, media::MediaEngine* media, SessionMetrics metrics,
                 SinkFactory make_sink, ClosedCallback on_closed);
  ~SessionManager() override;

  // Must be called once before the endpoint runs; the endpoint outlives us.
  void attach(sip::Endpoint* endpoint) { endpoint_ = endpoint; }

  // Storage health, set by the application (503 when false).
  void set_storage_ok(bool ok) { storage_ok_ = ok; }
  // Live limits (SIGHUP reload). SIP thread (post it there).
  void set_limits(std::uint32_t max_sessions, std::uint32_t retry_after_s) {
    policy_.max_sessions = max_sessions;
    policy_.retry_after_s = retry_after_s;
  }
  bool storage_ok() const { return storage_ok_; }
  // Any thread: a recording's spool could not be written. Storage turns bad
  // at once (OPTIONS, new INVITEs and /readyz say 503 until the application's
  // check sets it good again); on the SIP thread the call gets a BYE with
  // Reason 503 and its recording ends complete:false with this cause.
  void storage_failed(const std::string& recording_id, const std::string& message);

  // After the SIP thread has stopped (the caller owns our state then), before
  // the media engine stops: closes every session still open, its recording
  // marked complete:false "gateway stopped", and hands it to on_closed.
  // Idempotent; the destructor calls it.
  void shutdown();

  // SIP thread: refuse new sessions (503) and let the established ones end on
  // their own; after max_s seconds (at once when 0) every session still open
  // gets a BYE with a Reason header and its recording ends complete:false.
  // Calls on_drained (may be empty) once no session is left (immediately if
  // none). A later drain() replaces on_drained and keeps the earlier deadline
  // when it is sooner.
  void drain(std::function<void()> on_drained, std::uint32_t max_s = 0);
  // SIP thread: stop draining (a drain started by `siprecd drain`): new
  // sessions are taken again; the pending deadline is cancelled.
  void resume();
  bool draining() const { return draining_; }  // any thread

  // Any thread: a reason the application measures (kSpoolDiskLow, kBacklog)
  // holds or not; `detail` is shown by /readyz.
  void set_unfit(Unfit reason, bool on, const std::string& detail = "");
  // Any thread: every reason that holds now, with its detail ("" when fit).
  std::vector<std::pair<Unfit, std::string>> unfit_reasons() const;

  // Any thread. snapshot_json() builds the /sessions list on the SIP thread
  // when asked (waits at most 2 s for it, else returns the last list built);
  // nothing is built while nobody asks.
  std::size_t active_sessions() const;
  nlohmann::json snapshot_json() const;

  // sip::EndpointListener
  void on_request(sip::TransactionId tx, const sip::Request& request) override;
  void on_dialog_request(sip::DialogId dialog, sip::TransactionId tx,
                         const sip::Request& request) override;
  void on_ack(sip::DialogId dialog, const sip::Request& ack) override;
  void on_malformed(const sip::Request& request, int status) override;
  void on_cancelled(sip::TransactionId tx) override;
  void on_bye_result(sip::DialogId dialog, int status) override;
  void on_ack_timeout(sip::DialogId dialog) override;
  void on_refresh_result(sip::DialogId dialog, int status) override;

  // SIP thread: a session's unpaused streams have been silent for media.timeout_s.
  void on_media_timeout(media::SessionHandle handle);

 private:
  struct StreamState {
    std::size_t mline = 0;
    std::string label;
    std::string codec;                 // "PCMA/8000"
    nlohmann::json payloads = nlohmann::json::array();  // [{pt, encoding, clock_rate, channels, fmtp}]
    std::optional<int> telephone_event_pt;
    std::string remote_address;
    std::uint16_t remote_port = 0;
    media::StreamId media_id = 0;      // 0 when rejected
    std::uint16_t port = 0;
    bool paused = false;
    bool held = false;                 // paused by c=0.0.0.0
    // SDES-SRTP (RTP/SAVP): the SRC's accepted crypto line ("<tag> <suite> <key-params>
    // <session-params>", a rekey changes it), its keys, and our answer's key-params (a fresh
    // random key per stream, new when the SRC's line changes). Secrets: never logged nor in JSON.
    std::string srtp_offer;
    std::string srtp_suite;            // "" for plain RTP
    std::shared_ptr<const media::SrtpKeys> srtp_keys;
    std::string srtp_answer_key;
  };
  // RFC 4028 session timer as the last INVITE/UPDATE negotiated it.
  struct SessionTimer {
    std::uint32_t expires_s = 0;       // 0: no session timer
    bool we_refresh = false;           // refresher=uas: we send the refreshes (UPDATE)
  };
  enum class State { kAnswering, kEstablished, kEnding };
  struct Session {
    std::int64_t setup_start_us = 0;   // media::monotonic_us() when the INVITE was taken (setup latency)
    std::string recording_id;
    std::string call_id;
    std::string source_address;        // the INVITE's sender (per-source limits)
    std::string src;                   // From of the INVITE
    std::string transport;
    sip::TransactionId invite_tx = 0;
    media::SessionHandle media = 0;
    sip::DialogId dialog = 0;
    State state = State::kAnswering;
    bool acked = false;
    // Our 2xx to an offerless re-INVITE carried an offer; its answer comes in
    // the ACK. A new offer meanwhile is glare: 491 (RFC 3261 §14.2, RFC 3311 §5.2).
    bool offer_pending = false;
    // A delayed-offer INVITE: our 2xx made the offer, and no usable answer has come yet (on_ack).
    bool awaiting_answer = false;
    bool cut_short = false;            // ended by our drain: the recording is incomplete
    std::string storage_error;         // the spool failed: the recording's end cause
    std::string start_time;
    std::uint64_t sdp_session_id = 0;
    std::uint64_t sdp_version = 0;
    std::string last_answer;
    std::vector<StreamState> streams;
    std::optional<metadata::RecordingMetadata> metadata;
    std::vector<std::string> metadata_raw;
    std::vector<std::string> metadata_errors;
    std::string conversation_id;
    std::string conversation_id_rule;
    sip::HeaderList invite_headers;
    std::uint64_t key = 0;             // in sessions_
    std::string contact;               // our Contact (for the UPDATEs we send)
    SessionTimer timer;
    std::uint64_t timer_epoch = 0;     // bumped at every (re)negotiation: older timers are stale
    bool all_paused = false;           // every recorded stream paused or held
    std::uint64_t pause_epoch = 0;     // bumped when all_paused changes
    std::string end_cause;             // why the gateway sent BYE (the recording's end cause)
    bool started_event = false;        // session.started was raised (then session.ended will be)
    std::uint32_t update_events = 0;   // session.updated raised so far (their ids' number)
    // make_sink runs on policy.sink_worker: the media session is reserved, its ports bound,
    // not started (packets wait in the sockets' buffers) until the sink comes (on_sink_made).
    bool sink_pending = false;
    std::int64_t start_mono_us = 0;              // the recording's time zero (start_session)
    std::optional<common::Status> early_durable;  // on_start_durable before on_sink_made
    std::string offered_event;                    // logged into the spool once the sink started
  };

  struct PendingInvite;  // an INVITE between its checks and its admission (session_manager.cc)

  // The first reason (in Unfit order) that refuses a new session; counted in
  // unfit_refusals. *why is the 503's reason phrase.
  bool can_accept(std::string* why) const;
  void bye_remaining_after_drain(std::uint64_t epoch);
  sip::Response service_unavailable(const std::string& why) const;
  void answer_options(sip::TransactionId tx);
  // Raises a session.* event (Policy::on_event) with the session's ids. `data` is called only
  // when there is a listener (the participants' JSON is built from the metadata model).
  void raise_event(Session& s, const char* type, const std::function<nlohmann::json()>& data,
                   std::string sub = {});
  void handle_invite(sip::TransactionId tx, const sip::Request& req);
  // An INVITE that passed the checks (hook decided, or no hook): ports, spool, 200 OK.
  void admit_invite(sip::TransactionId tx, std::unique_ptr<PendingInvite> p,
                    std::optional<recording::CallDecision> decision);
  void refuse_invite(sip::TransactionId tx, const std::string& call_id, int status,
                     const std::string& reason, sip::Response r = {});
  // The call-control hook (docs/integrations.md): request document, decision on the SIP thread.
  nlohmann::json hook_request(const Session& s, const sip::Request& req, const SessionDescription& offer,
                              const OfferPlan& plan, const char* event) const;
  void on_hook_decision(sip::TransactionId tx, recording::CallDecision d);
  void handle_reoffer(Session& s, sip::TransactionId tx, const sip::Request& req, bool is_invite);
  void finish_invite(std::uint64_t key);
  // SIP thread: the spool's start records of session key are durable (or not).
  void on_start_durable(std::uint64_t key, const common::Status& status);
  using MadeSink = common::Result<std::unique_ptr<media::SessionSink>>;
  // SIP thread: starts the session with its sink, or discards the sink when the session is gone.
  void on_sink_made(std::uint64_t key, const std::string& recording_id, MadeSink sink);
  void take_made_sink(std::uint64_t key);  // SIP thread: sink_thread_'s result for key, if any
  // A sink whose session is gone before it started: finished unanswered, then the finaliser
  // removes its spool (nothing is published for a call we did not answer).
  void discard_sink(const std::string& recording_id, MadeSink sink, const std::string& cause);
  void on_storage_failed(const std::string& recording_id, const std::string& message);
  void refuse_answering(std::uint64_t key, const std::string& why, const std::string& cause);
  void count_invite(int status);
  // A per-source limit refused something of source: metric, and one log line
  // per source, cap and minute.
  void limit_hit(Cap cap, const std::string& source, const std::string& what);
  // Applies metadata documents to the session (merge; errors kept, never fatal).
  void apply_metadata(Session& s, const std::vector<std::string>& docs);
  // One parse result per document (any thread), and applying them in order (SIP thread).
  using ParsedDocs = std::vector<common::Result<metadata::RecordingMetadata>>;
  static ParsedDocs parse_metadata(const std::vector<std::string>& docs, const metadata::ParseLimits& limits);
  void take_metadata(Session& s, const std::vector<std::string>& docs, ParsedDocs parsed);
  // SIP thread: metadata_thread_ parsed the documents of the INVITE of tx, if it still waits.
  void on_metadata_parsed(sip::TransactionId tx, std::vector<std::string> docs, ParsedDocs parsed);
  // An INVITE whose metadata is applied: conversation id, then the hook or admit_invite.
  void continue_invite(sip::TransactionId tx, std::unique_ptr<PendingInvite> p, const sip::Request& req);
  // Opens/keeps/closes media per m-line of an accepted plan; false on port exhaustion.
  // `why` names the streams event a change posts.
  bool apply_plan(Session& s, const OfferPlan& plan, const char* why = "reoffer");
  // The SRC's SDP answer in the ACK to our offer (null: none); "" when applied, else why not.
  std::string apply_ack_answer(Session& s, const std::string* sdp);
  std::string build_sdp(Session& s, const SessionDescription& offer, const OfferPlan& plan);
  // SRTP state of an accepted RTP/SAVP stream: the SRC's line and keys, our answer key.
  static common::Status srtp_for_stream(const StreamPlan& sp, const StreamState* old, StreamState& st);
  // The Warning header of a 488 for a plan_answer error.
  std::string warning_for(const common::Error& e) const;
  // RFC 4028 §9: adds Session-Expires (and Require: timer) to resp and fills
  // *timer; a status (422, 400) when the request must be refused.
  std::optional<int> check_session_timer(const sip::Request& req, sip::Response& resp,
                                         SessionTimer* timer) const;
  // (Re)starts the session timer after a successful (re)negotiation: a BYE
  // before expiry when the SRC refreshes, our UPDATE at half the interval when we do.
  void arm_session_timer(Session& s);
  void refresh_session(std::uint64_t key, std::uint64_t epoch);
  // Starts or stops the media.max_paused_s clock when every stream is paused/held.
  void watch_pause(Session& s);
  // BYE with a Reason header (RFC 3326); `cause` becomes the recording's end cause.
  void end_by_gateway(Session& s, const std::string& cause, int code, const std::string& text);
  Session* by_key(std::uint64_t key);
  sip::Response contact_response(const sip::Request& req) const;
  void end_session(std::uint64_t key, const std::string& cause);
  nlohmann::json streams_json(const Session& s) const;
  std::string streams_event(const Session& s, const std::string& why) const;
  void post_streams_event(Session& s, const std::string& why);
  void publish();                          // the session count, O(1)
  nlohmann::json build_snapshot() const;   // the /sessions list, O(sessions)
  void log_event(Session& s, std::string what);
  Session* by_dialog(sip::DialogId d, std::uint64_t* key);

  Policy policy_;
  media::MediaEngine* media_;   // not owned
  sip::Endpoint* endpoint_ = nullptr;  // not owned
  SessionMetrics metrics_;
  SinkFactory make_sink_;
  ClosedCallback on_closed_;
  std::atomic<bool> storage_ok_{true};
  std::atomic<bool> draining_{false};
  std::function<void()> on_drained_;
  std::uint64_t drain_epoch_ = 0;                 // bumped by resume(): older deadlines are stale
  std::chrono::steady_clock::time_point drain_deadline_{};  // of the pending drain (SIP thread)
  std::atomic<unsigned> unfit_{0};                // bit per Unfit the application set
  mutable std::mutex unfit_mutex_;
  std::string unfit_detail_[kUnfitReasons];
  std::uint64_t next_key_ = 1;
  std::map<std::uint64_t, std::unique_ptr<Session>> sessions_;
  std::map<sip::TransactionId, std::uint64_t> by_invite_tx_;
  std::map<sip::DialogId, std::uint64_t> by_dialog_;
  // Answers (200 OK) waiting for their session's spool start to be durable.
  std::map<std::uint64_t, std::shared_ptr<sip::Response>> pending_answers_;
  // Policy::sink_thread: make_sink's results by session key, until the SIP thread takes them
  // (on_sink_made) or shutdown() discards them.
  std::unique_ptr<common::TaskThread> sink_thread_;
  std::mutex made_mutex_;
  std::map<std::uint64_t, std::pair<std::string, MadeSink>> made_sinks_;
  // Policy::metadata_thread.
  std::unique_ptr<common::TaskThread> metadata_thread_;
  // INVITEs waiting for their metadata to be parsed (Policy::metadata_thread) or for the
  // call-control hook's decision (100 Trying sent), by transaction. Nothing is reserved or
  // written for them yet; they count toward sip.max_sessions, CANCEL and drain answer them.
  std::map<sip::TransactionId, std::unique_ptr<PendingInvite>> waiting_;
  std::shared_ptr<spdlog::logger> log_;
  Admission admission_;

  mutable std::mutex snapshot_mutex_;
  mutable nlohmann::json snapshot_ = nlohmann::json::array();  // the last list built
  std::size_t active_ = 0;
};

}  // namespace sgw::siprec
