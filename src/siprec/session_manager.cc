#include "siprec/session_manager.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <future>

#include "common/ids.h"
#include "common/logging.h"
#include "common/strings.h"
#include "metadata/cisco_headers.h"
#include "metadata/metadata_json.h"
#include "metadata/metadata_merge.h"
#include "siprec/multipart.h"

namespace sgw::siprec {

namespace {

constexpr const char* kAllow = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO";
constexpr const char* kAccept = "application/sdp, multipart/mixed, application/rs-metadata+xml, application/rs-metadata";
constexpr const char* kSupported = "siprec, timer";

// Option tags we implement (RFC 7866 §6.1.1 siprec, RFC 4028 timer).
bool supported_option(const std::string& tag) { return tag == "siprec" || tag == "timer"; }

// Makes peer-supplied text safe for a reason phrase or a quoted Warning text.
std::string phrase_safe(std::string_view s, std::size_t max = 200) {
  std::string out;
  for (char c : s) {
    if (out.size() >= max) break;
    unsigned char u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f || c == '"' || c == '\\') ? ' ' : c;
  }
  return out;
}

// The labels of the streams we offer for a delayed-offer INVITE: those the INVITE's metadata
// names (RFC 7865 §6.4 stream label = the SDP a=label), so the SRC's mapping of participants to
// streams holds; else "1" and "2", one per side of a two-party call. At most 16; a label that is
// not an RFC 4574 token is not usable in SDP and is left out.
std::vector<std::string> delayed_offer_labels(const RecordingBody& body,
                                              const metadata::ParseLimits& limits) {
  std::vector<std::string> labels;
  for (const auto& doc : body.metadata_docs) {
    auto md = metadata::parse(doc, limits);
    if (!md) continue;
    for (const auto& st : md->streams) {
      const bool token = !st.label.empty() && st.label.size() <= 64 &&
                         std::all_of(st.label.begin(), st.label.end(), [](char c) {
                           return std::isalnum(static_cast<unsigned char>(c)) ||
                                  std::string_view("-.!%*_+`'~").find(c) != std::string_view::npos;
                         });
      if (token && labels.size() < 16 && std::find(labels.begin(), labels.end(), st.label) == labels.end())
        labels.push_back(st.label);
    }
  }
  if (labels.empty()) labels = {"1", "2"};
  return labels;
}

sip::Response simple(int status, std::string reason) {
  sip::Response r;
  r.status = status;
  r.reason = std::move(reason);
  return r;
}

}  // namespace

struct SessionManager::PendingInvite {
  std::unique_ptr<Session> s;
  SessionDescription offer;
  OfferPlan plan;
  sip::Response resp;
  // Policy::metadata_thread: the INVITE (its body left out) while its metadata is parsed.
  std::optional<sip::Request> req;
};

SessionManager::SessionManager(Policy policy, media::MediaEngine* media, SessionMetrics metrics,
                               SinkFactory make_sink, ClosedCallback on_closed)
    : policy_(std::move(policy)),
      media_(media),
      metrics_(metrics),
      make_sink_(std::move(make_sink)),
      on_closed_(std::move(on_closed)),
      log_(common::logger("siprec")),
      admission_(policy_.admission, metrics.limits_hit) {
  // Queue bound: beyond it (a burst the disk cannot follow) make_sink runs on the SIP thread.
  if (policy_.sink_thread) sink_thread_ = std::make_unique<common::TaskThread>("sgw-spool-open", 4096);
  // Queue bound: beyond it the metadata is parsed on the SIP thread.
  if (policy_.metadata_thread) metadata_thread_ = std::make_unique<common::TaskThread>("sgw-metadata", 4096);
}

SessionManager::~SessionManager() { shutdown(); }

void SessionManager::shutdown() {
  draining_ = true;
  on_drained_ = nullptr;
  // Sinks being made: their jobs run to the end (the SIP thread has stopped, so what they post
  // never runs); each is then discarded with its session below.
  if (sink_thread_) sink_thread_->stop();
  if (metadata_thread_) metadata_thread_->stop();  // its posts never run either
  pending_answers_.clear();
  waiting_.clear();
  std::vector<std::uint64_t> keys;
  for (auto& [key, s] : sessions_) keys.push_back(key);
  for (auto key : keys) {
    auto it = sessions_.find(key);
    if (it == sessions_.end()) continue;
    it->second->cut_short = true;
    it->second->dialog = 0;  // the SIP stack is gone: nothing to release
    end_session(key, "gateway stopped");
  }
  by_invite_tx_.clear();
  by_dialog_.clear();
  std::map<std::uint64_t, std::pair<std::string, MadeSink>> left;
  {
    std::lock_guard lock(made_mutex_);
    left.swap(made_sinks_);
  }
  for (auto& [key, made] : left) discard_sink(made.first, std::move(made.second), "gateway stopped");
}

std::size_t SessionManager::active_sessions() const {
  std::lock_guard lock(snapshot_mutex_);
  return active_;
}

nlohmann::json SessionManager::snapshot_json() const {
  if (endpoint_ == nullptr) return build_snapshot();  // no SIP thread: the caller owns the state
  // sessions_ belongs to the SIP thread: the list is built there, on demand.
  // Keeping it always current cost O(sessions) per event (docs/performance.md).
  auto built = std::make_shared<std::promise<nlohmann::json>>();
  auto future = built->get_future();
  if (endpoint_->post([this, built] {
        auto list = build_snapshot();
        {
          std::lock_guard lock(snapshot_mutex_);
          snapshot_ = list;
        }
        built->set_value(std::move(list));
      }) &&
      future.wait_for(std::chrono::seconds(2)) == std::future_status::ready)
    return future.get();
  std::lock_guard lock(snapshot_mutex_);  // SIP thread stopped or stuck: the last list
  return snapshot_;
}

void SessionManager::publish() {
  // O(1) per event. The /sessions list is built only when asked
  // (snapshot_json): rebuilding it on every INVITE made a ramp of calls
  // O(n^2), and even every 500 ms it cost 8 % of the SIP thread at 1000 calls.
  std::size_t active = sessions_.size();
  metrics_.active_sessions->set(static_cast<std::int64_t>(active));
  std::lock_guard lock(snapshot_mutex_);
  active_ = active;
}

nlohmann::json SessionManager::build_snapshot() const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [key, s] : sessions_) {
    nlohmann::json streams = nlohmann::json::array();
    for (const auto& st : s->streams)
      streams.push_back({{"label", st.label}, {"codec", st.codec}, {"port", st.port},
                         {"paused", st.paused}, {"recorded", st.media_id != 0}});
    const char* state = s->state == State::kAnswering     ? "answering"
                        : s->state == State::kEstablished ? "established"
                                                          : "ending";
    list.push_back({{"recording_id", s->recording_id}, {"call_id", s->call_id},
                    {"conversation_id", s->conversation_id}, {"state", state},
                    {"start_time", s->start_time}, {"streams", streams}});
  }
  return list;
}

void SessionManager::log_event(Session& s, std::string what) {
  log_->info("{} [{}]: {}", s.recording_id, s.call_id, what);
  // Into the spool as well: the recording's JSON lists the session's events.
  if (s.media)
    media_->post_event(s.media, nlohmann::json{{"event", what}}.dump(
                                    -1, ' ', false, nlohmann::json::error_handler_t::replace));
}

namespace {
// The spool's session-end record (recording/spool_events.h).
std::string end_record(const std::string& cause, bool answered, bool complete) {
  nlohmann::json end = {{"cause", cause},
                        {"end_time", common::utc_now_iso8601()},
                        {"end_unix_us", std::chrono::duration_cast<std::chrono::microseconds>(
                                            std::chrono::system_clock::now().time_since_epoch()).count()},
                        {"answered", answered},
                        {"complete", complete}};
  return end.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The participants of the metadata model as in the recording JSON (events' data).
nlohmann::json participants_json(const std::optional<metadata::RecordingMetadata>& md) {
  return md ? metadata::to_json(*md).value("participants", nlohmann::json::array()) : nlohmann::json::array();
}
}  // namespace

void SessionManager::raise_event(Session& s, const char* type, const std::function<nlohmann::json()>& data,
                                 std::string sub) {
  if (!policy_.on_event) return;
  storage::WebhookEvent e;
  e.type = type;
  e.recording_id = s.recording_id;
  e.conversation_id = s.conversation_id;
  e.call_id = s.call_id;
  e.sub = std::move(sub);
  e.data = data();
  policy_.on_event(std::move(e));
}

const char* unfit_label(Unfit reason) {
  switch (reason) {
    case Unfit::kDraining: return "draining";
    case Unfit::kMaxSessions: return "max_sessions";
    case Unfit::kStorage: return "storage";
    case Unfit::kSpoolDiskLow: return "spool_disk_low";
    case Unfit::kBacklog: return "delivery_backlog";
  }
  return "unknown";
}

void SessionManager::set_unfit(Unfit reason, bool on, const std::string& detail) {
  const unsigned bit = 1u << static_cast<unsigned>(reason);
  {
    std::lock_guard lock(unfit_mutex_);
    unfit_detail_[static_cast<unsigned>(reason)] = on ? detail : std::string();
  }
  if (on)
    unfit_.fetch_or(bit);
  else
    unfit_.fetch_and(~bit);
}

std::vector<std::pair<Unfit, std::string>> SessionManager::unfit_reasons() const {
  std::vector<std::pair<Unfit, std::string>> out;
  if (draining_) out.emplace_back(Unfit::kDraining, "draining: new sessions are refused");
  if (active_sessions() >= policy_.max_sessions)
    out.emplace_back(Unfit::kMaxSessions, std::to_string(active_sessions()) + " sessions active, sip.max_sessions " +
                                              std::to_string(policy_.max_sessions));
  if (!storage_ok_) out.emplace_back(Unfit::kStorage, "recording storage unusable (see the log)");
  const unsigned bits = unfit_.load();
  std::lock_guard lock(unfit_mutex_);
  for (Unfit r : {Unfit::kSpoolDiskLow, Unfit::kBacklog})
    if (bits & (1u << static_cast<unsigned>(r))) out.emplace_back(r, unfit_detail_[static_cast<unsigned>(r)]);
  return out;
}

bool SessionManager::can_accept(std::string* why) const {
  const unsigned bits = unfit_.load();
  auto set = [&](Unfit r) { return (bits & (1u << static_cast<unsigned>(r))) != 0; };
  Unfit reason;
  if (draining_) {
    reason = Unfit::kDraining;
    *why = "Draining";
  } else if (!storage_ok_) {
    reason = Unfit::kStorage;
    *why = "Storage unavailable";
  } else if (set(Unfit::kSpoolDiskLow)) {
    reason = Unfit::kSpoolDiskLow;
    *why = "Spool disk low";
  } else if (set(Unfit::kBacklog)) {
    reason = Unfit::kBacklog;
    *why = "Delivery backlog too old";
  } else if (sessions_.size() + waiting_.size() >= policy_.max_sessions) {
    reason = Unfit::kMaxSessions;
    *why = "Session limit reached";
  } else {
    return true;
  }
  if (metrics_.unfit_refusals) metrics_.unfit_refusals->with(unfit_label(reason)).inc();
  return false;
}

sip::Response SessionManager::service_unavailable(const std::string& why) const {
  sip::Response r = simple(503, why);
  r.headers.emplace_back("Retry-After", std::to_string(policy_.retry_after_s));
  return r;
}

void SessionManager::count_invite(int status) {
  metrics_.invites_by_code->with(std::to_string(status)).inc();
}

void SessionManager::limit_hit(Cap cap, const std::string& source, const std::string& what) {
  if (admission_.hit(cap, source, Admission::Clock::now()))
    log_->warn("limit {} hit by {}: {} (further hits of it from this source in this minute are "
               "counted in sgw_limits_hit_total, not logged)",
               cap_name(cap), source.empty() ? "?" : source, what);
}

sip::Response SessionManager::contact_response(const sip::Request& req) const {
  sip::Response r;
  std::string host = req.local_host.empty() || req.local_host == "*" || req.local_host == "0.0.0.0"
                         ? policy_.media_address
                         : req.local_host;
  if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
  // RFC 3261 §12.1.1: a dialog begun with a sips: Request-URI gets a sips:
  // Contact (TLS implied); other requests over TLS get ;transport=tls.
  bool sips = common::istarts_with(req.request_uri, "sips:");
  std::string uri = (sips ? "sips:srs@" : "sip:srs@") + host;
  if (!req.local_port.empty()) uri += ":" + req.local_port;
  if (!req.transport.empty() && !sips) uri += ";transport=" + common::to_lower(req.transport);
  // RFC 7866 §6.1.1: the SRS marks its Contact with the +sip.srs feature tag.
  r.headers.emplace_back("Contact", "<" + uri + ">;+sip.srs");
  r.headers.emplace_back("Allow", kAllow);
  r.headers.emplace_back("Supported", kSupported);
  return r;
}

// RFC 4028 §9: a Session-Expires below our Min-SE gets 422; otherwise the
// 2xx echoes it with the refresher, and Require: timer when the UAC refreshes.
std::optional<int> SessionManager::check_session_timer(const sip::Request& req,
                                                       sip::Response& resp,
                                                       SessionTimer* timer) const {
  *timer = {};
  std::string se = req.header("Session-Expires");
  if (se.empty()) se = req.header("x");  // compact form of Session-Expires
  if (se.empty()) return std::nullopt;
  auto fields = common::split(se, ';');
  std::string_view delta_text = common::trim(fields[0]);
  unsigned long delta = 0;
  for (char c : delta_text) {
    if (c < '0' || c > '9' || delta > 100000000) return 400;
    delta = delta * 10 + static_cast<unsigned long>(c - '0');
  }
  if (delta_text.empty()) return 400;
  if (delta < policy_.min_session_expires_s) {
    resp.headers.emplace_back("Min-SE", std::to_string(policy_.min_session_expires_s));
    return 422;
  }
  std::string requested;
  for (std::size_t i = 1; i < fields.size(); ++i) {
    auto f = common::trim(fields[i]);
    if (common::istarts_with(f, "refresher=")) requested = common::to_lower(common::trim(f.substr(10)));
  }
  bool src_supports = false;
  for (const char* h : {"Supported", "k", "Require"})
    for (const auto& tag : req.option_tags(h)) src_supports |= tag == "timer";
  // RFC 4028 §9 table: a UAC that supports timer gets the refresher it asked
  // for, and refreshes itself when it left the choice to us; one that does
  // not (a proxy added Session-Expires) cannot refresh: we do (refresher=uas).
  std::string refresher = src_supports && requested != "uas" ? "uac" : "uas";
  resp.headers.emplace_back("Session-Expires", std::to_string(delta) + ";refresher=" + refresher);
  // §9: Require: timer only when the UAC refreshes (and so supports it).
  if (refresher == "uac") resp.headers.emplace_back("Require", "timer");
  timer->expires_s = static_cast<std::uint32_t>(delta);
  timer->we_refresh = refresher == "uas";
  return std::nullopt;
}

SessionManager::Session* SessionManager::by_key(std::uint64_t key) {
  auto it = sessions_.find(key);
  return it == sessions_.end() ? nullptr : it->second.get();
}

void SessionManager::arm_session_timer(Session& s) {
  std::uint64_t epoch = ++s.timer_epoch;
  if (s.timer.expires_s == 0) return;
  std::uint64_t key = s.key;
  std::uint64_t se_ms = std::uint64_t{s.timer.expires_s} * 1000;
  auto clamp = [](std::uint64_t ms) {
    return static_cast<std::uint32_t>(std::min<std::uint64_t>(ms, 0xffffffffu));
  };
  if (s.timer.we_refresh) {
    // RFC 4028 §10: the refresher refreshes at half the session interval.
    endpoint_->after(clamp(se_ms / 2), [this, key, epoch] { refresh_session(key, epoch); });
    return;
  }
  // RFC 4028 §10: with no refresh, the other side sends BYE shortly before
  // the session expires: min(32 s, interval / 3) before.
  std::uint32_t expires_s = s.timer.expires_s;
  endpoint_->after(clamp(se_ms - std::min<std::uint64_t>(32000, se_ms / 3)), [this, key, epoch, expires_s] {
    Session* sess = by_key(key);
    if (sess == nullptr || sess->timer_epoch != epoch) return;
    end_by_gateway(*sess, "session expired (no refresh within Session-Expires " + std::to_string(expires_s) + " s)",
                   408, "Session expired");
  });
}

void SessionManager::refresh_session(std::uint64_t key, std::uint64_t epoch) {
  Session* s = by_key(key);
  if (s == nullptr || s->timer_epoch != epoch || s->state != State::kEstablished || !s->dialog) return;
  // RFC 4028 §7.4/§10: an UPDATE without an offer refreshes the session. In
  // this transaction we are the UAC, so staying the refresher is refresher=uac.
  sip::HeaderList h = {{"Session-Expires", std::to_string(s->timer.expires_s) + ";refresher=uac"},
                       {"Supported", kSupported}};
  if (!s->contact.empty()) h.emplace_back("Contact", s->contact);
  if (!endpoint_->send_refresh(s->dialog, h)) {
    log_->warn("{} [{}]: session refresh could not be sent; retrying", s->recording_id, s->call_id);
    arm_session_timer(*s);
  }
}

void SessionManager::on_refresh_result(sip::DialogId dialog, int status) {
  std::uint64_t key = 0;
  Session* s = by_dialog(dialog, &key);
  if (s == nullptr || s->state != State::kEstablished) return;
  if (status >= 200 && status < 300) {
    arm_session_timer(*s);
  } else if (status == 408 || status == 481) {
    // RFC 4028 §10: a refresh that times out or finds no dialog ends the session.
    end_by_gateway(*s, "session refresh failed (" + std::to_string(status) + ")", 408, "Session refresh failed");
  } else {
    log_event(*s, "session refresh answered " + std::to_string(status) + "; retrying");
    arm_session_timer(*s);
  }
}

void SessionManager::watch_pause(Session& s) {
  bool any = false, all = true;
  for (const auto& st : s.streams) {
    if (!st.media_id) continue;
    any = true;
    all &= st.paused;
  }
  all &= any;
  if (all == s.all_paused) return;
  s.all_paused = all;
  std::uint64_t epoch = ++s.pause_epoch;
  if (!all || policy_.max_paused_s == 0) return;
  std::uint64_t key = s.key;
  std::uint32_t limit = policy_.max_paused_s;
  endpoint_->after(limit * 1000u, [this, key, epoch, limit] {
    Session* sess = by_key(key);
    if (sess == nullptr || sess->pause_epoch != epoch || !sess->all_paused) return;
    end_by_gateway(*sess, "paused too long (every stream paused or held for media.max_paused_s = " +
                           std::to_string(limit) + " s)",
                   408, "Paused too long");
  });
}

void SessionManager::end_by_gateway(Session& s, const std::string& cause, int code,
                                    const std::string& text) {
  if (s.state != State::kEstablished || !s.dialog) return;
  s.state = State::kEnding;
  s.end_cause = cause;
  log_event(s, cause + ": sending BYE");
  post_streams_event(s, cause);
  // RFC 3326: the Reason header tells the SRC why the recording stops.
  endpoint_->send_bye(s.dialog, {{"Reason", "SIP;cause=" + std::to_string(code) + ";text=\"" + text + "\""}});
}

namespace {
// RFC 3261 §8.2.2.3: the Require option tags we do not implement, comma-joined.
std::string unsupported_requires(const sip::Request& req) {
  std::string list;
  for (const auto& tag : req.option_tags("Require"))
    if (!supported_option(tag)) list += (list.empty() ? "" : ", ") + tag;
  return list;
}
}  // namespace

void SessionManager::answer_options(sip::TransactionId tx) {
  std::string why;
  if (!can_accept(&why)) {
    endpoint_->reply(tx, service_unavailable(why));
    return;
  }
  sip::Response r = simple(200, "OK");
  r.headers.emplace_back("Allow", kAllow);
  r.headers.emplace_back("Accept", kAccept);
  r.headers.emplace_back("Supported", kSupported);
  endpoint_->reply(tx, r);
}

void SessionManager::on_request(sip::TransactionId tx, const sip::Request& req) {
  metrics_.requests_by_method->with(req.method).inc();
  if (!admission_.allowed(req.source_address)) {  // sip.allowed_sources
    if (req.method == "INVITE") count_invite(403);
    limit_hit(Cap::kAllowedSources, req.source_address, req.method + " from a source outside sip.allowed_sources, 403");
    endpoint_->reply(tx, simple(403, "Forbidden"));
    return;
  }
  if (auto bad = unsupported_requires(req); !bad.empty()) {
    sip::Response r = simple(420, "Bad Extension");
    r.headers.emplace_back("Unsupported", bad);
    if (req.method == "INVITE") count_invite(420);
    endpoint_->reply(tx, r);
    log_->info("{} {} refused: 420 unsupported {}", req.method, req.call_id, bad);
    return;
  }
  if (req.method == "OPTIONS") {
    answer_options(tx);
  } else if (req.method == "INVITE") {
    handle_invite(tx, req);
  } else if (req.method == "BYE" || req.method == "UPDATE" || req.method == "INFO") {
    endpoint_->reply(tx, simple(481, "Call/Transaction Does Not Exist"));
  } else if (req.method == "REGISTER" || req.method == "SUBSCRIBE" || req.method == "MESSAGE" ||
             req.method == "NOTIFY" || req.method == "REFER" || req.method == "PUBLISH" ||
             req.method == "PRACK") {
    sip::Response r = simple(405, "Method Not Allowed");
    r.headers.emplace_back("Allow", kAllow);
    endpoint_->reply(tx, r);
  } else {
    sip::Response r = simple(501, "Not Implemented");
    r.headers.emplace_back("Allow", kAllow);
    endpoint_->reply(tx, r);
  }
}

void SessionManager::apply_metadata(Session& s, const std::vector<std::string>& docs) {
  take_metadata(s, docs, parse_metadata(docs, policy_.metadata_limits));
}

SessionManager::ParsedDocs SessionManager::parse_metadata(const std::vector<std::string>& docs,
                                                          const metadata::ParseLimits& limits) {
  ParsedDocs parsed;
  parsed.reserve(docs.size());
  for (const auto& doc : docs) parsed.push_back(metadata::parse(doc, limits));
  return parsed;
}

void SessionManager::take_metadata(Session& s, const std::vector<std::string>& docs, ParsedDocs parsed) {
  for (std::size_t i = 0; i < docs.size() && i < parsed.size(); ++i) {
    const std::string& doc = docs[i];
    s.metadata_raw.push_back(doc);
    if (doc.size() > policy_.metadata_limits.max_bytes)  // parse() refused it; the call goes on
      limit_hit(Cap::kMetadataBytes, s.source_address,
                s.recording_id + " [" + s.call_id + "]: metadata document of " + std::to_string(doc.size()) +
                    " bytes over metadata.max_bytes, not parsed (call recorded)");
    if (s.media) media_->post_metadata(s.media, doc);
    auto& one = parsed[i];
    if (!one) {
      // Metadata never stops a recording: keep the raw document and the error.
      metrics_.metadata_errors->inc();
      s.metadata_errors.push_back(one.error().code + ": " + one.error().message);
      log_->warn("{} [{}]: metadata not understood ({}): {}", s.recording_id, s.call_id,
                 one.error().code, one.error().message);
      continue;
    }
    s.metadata = s.metadata ? metadata::merge(*s.metadata, *one) : std::move(one).value();
  }
}

bool SessionManager::apply_plan(Session& s, const OfferPlan& plan, const char* why) {
  std::vector<StreamState> next;
  std::vector<media::StreamId> opened;
  for (const auto& sp : plan.streams) {
    StreamState st;
    st.mline = sp.index;
    st.label = sp.label.value_or(std::to_string(sp.index));
    const StreamState* old = sp.index < s.streams.size() ? &s.streams[sp.index] : nullptr;
    if (sp.accepted && sp.index < 256) {
      // Every answered payload type (codecs, telephone-event, CN): the finaliser decodes by them.
      st.codec = sp.codecs.front().encoding + "/" + std::to_string(sp.codecs.front().clock_rate);
      st.payloads = nlohmann::json::array();
      for (const auto* list : {&sp.codecs, &sp.telephone_events, &sp.comfort_noise})
        for (const auto& c : *list)
          st.payloads.push_back({{"pt", c.payload_type}, {"encoding", c.encoding}, {"clock_rate", c.clock_rate},
                                 {"channels", c.channels}, {"fmtp", c.fmtp}});
      if (!sp.telephone_events.empty()) st.telephone_event_pt = sp.telephone_events.front().payload_type;
      st.paused = sp.paused;
      st.held = sp.held;
      st.remote_address = sp.remote_address;
      st.remote_port = sp.remote_port;
      if (sp.srtp && sp.srtp_keys) {
        if (auto ok = srtp_for_stream(sp, old, st); !ok) {
          for (auto id : opened) media_->close_stream(s.media, id);
          log_->error("{} [{}]: {}", s.recording_id, s.call_id, ok.error().message);
          return false;
        }
      }
      media::StreamSpec spec{static_cast<std::uint8_t>(sp.index), sp.remote_address, sp.paused,
                             sp.remote_port, st.srtp_keys};
      if (old && old->media_id) {
        st.media_id = old->media_id;
        st.port = old->port;
        if (old->paused != st.paused || old->remote_address != st.remote_address ||
            old->remote_port != st.remote_port || old->srtp_offer != st.srtp_offer)
          media_->update_stream(s.media, st.media_id, spec);
        if (old->srtp_offer != st.srtp_offer && s.state != State::kAnswering)
          log_event(s, "stream " + st.label + (st.srtp_suite.empty() ? " now plain RTP" : " rekeyed (" + st.srtp_suite + ")"));
      } else {
        auto o = media_->open_stream(s.media, spec);
        if (!o) {
          for (auto id : opened) media_->close_stream(s.media, id);
          log_->warn("{} [{}]: {}", s.recording_id, s.call_id, o.error().message);
          return false;
        }
        st.media_id = o->id;
        st.port = o->rtp_port;
        opened.push_back(o->id);
      }
    }
    next.push_back(std::move(st));
  }
  // Streams that were recorded and are now rejected or gone: close them.
  for (std::size_t i = 0; i < s.streams.size(); ++i) {
    const auto& old = s.streams[i];
    if (!old.media_id) continue;
    bool kept = i < next.size() && next[i].media_id == old.media_id;
    if (!kept) {
      media_->close_stream(s.media, old.media_id);
      if (s.state != State::kAnswering) log_event(s, "stream " + old.label + " removed");
    }
  }
  bool changed = s.streams.size() != next.size();
  if (s.state != State::kAnswering) {
    for (std::size_t i = 0; i < next.size(); ++i) {
      const StreamState* old = i < s.streams.size() ? &s.streams[i] : nullptr;
      if (next[i].media_id && (!old || !old->media_id)) {
        log_event(s, "stream " + next[i].label + " added");
        changed = true;
      }
      if (old && old->media_id && next[i].media_id == old->media_id &&
          (old->paused != next[i].paused || old->held != next[i].held)) {
        log_event(s, "stream " + next[i].label +
                         (next[i].held ? " held" : next[i].paused ? " paused" : " resumed"));
        changed = true;
      }
      if (old && old->media_id != next[i].media_id) changed = true;
      if (old && old->media_id && next[i].media_id == old->media_id && old->payloads != next[i].payloads) {
        // A re-offer that changes codecs or payload types (PCMA -> PCMU): the finaliser decodes the
        // packets from here on with the new mapping.
        std::string list;
        for (const auto& pl : next[i].payloads)
          list += (list.empty() ? "" : ", ") + pl.value("encoding", std::string()) + "/" +
                  std::to_string(pl.value("clock_rate", 0u)) + " (" + std::to_string(pl.value("pt", 0)) + ")";
        log_event(s, "stream " + next[i].label + " codecs changed: " + list);
        changed = true;
      }
    }
  }
  s.streams = std::move(next);
  if (changed && s.state != State::kAnswering) post_streams_event(s, why);
  return true;
}

// RFC 4568 §7.1.4: a re-offer with the same crypto line keeps our answer key; a new line
// (rekey, other suite) gets a fresh one. Keys from the kernel's CSPRNG.
common::Status SessionManager::srtp_for_stream(const StreamPlan& sp, const StreamState* old, StreamState& st) {
  st.srtp_offer = std::to_string(sp.srtp->tag) + " " + sp.srtp->suite + " " + sp.srtp->key_params + " " +
                  sp.srtp->session_params;
  st.srtp_suite = std::string(media::srtp_suite_name(sp.srtp_keys->suite));
  st.srtp_keys = sp.srtp_keys;
  if (old && old->media_id && old->srtp_offer == st.srtp_offer && !old->srtp_answer_key.empty()) {
    st.srtp_answer_key = old->srtp_answer_key;
    st.srtp_keys = old->srtp_keys;  // same keys: the media engine sees no change
    return common::Ok{};
  }
  auto ours = media::random_srtp_keys(sp.srtp_keys->suite);
  if (!ours) return ours.error();
  st.srtp_answer_key = media::sdes_key_params(*ours);
  return common::Ok{};
}

nlohmann::json SessionManager::streams_json(const Session& s) const {
  nlohmann::json streams = nlohmann::json::array();
  for (const auto& st : s.streams) {
    nlohmann::json j = {{"index", st.mline}, {"label", st.label}, {"recorded", st.media_id != 0},
                        {"paused", st.paused}, {"held", st.held}, {"codec", st.codec},
                        {"payloads", st.payloads}};
    // The suite only: keys never leave the session (docs/security.md "SRTP").
    j["srtp"] = st.srtp_suite.empty() ? nlohmann::json(nullptr) : nlohmann::json(st.srtp_suite);
    j["telephone_event_pt"] = st.telephone_event_pt ? nlohmann::json(*st.telephone_event_pt)
                                                    : nlohmann::json(nullptr);
    streams.push_back(std::move(j));
  }
  return streams;
}

std::string SessionManager::streams_event(const Session& s, const std::string& why) const {
  nlohmann::json e = {{"event", "streams"}, {"why", why}, {"time", common::utc_now_iso8601()},
                      {"streams", streams_json(s)}};
  return e.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void SessionManager::post_streams_event(Session& s, const std::string& why) {
  media_->post_event(s.media, streams_event(s, why));
}

// RFC 3261 §20.43: 302 Incompatible transport protocol (media.srtp refused RTP/AVP or RTP/SAVP),
// 304 Media type not available, 305 Incompatible media format.
std::string SessionManager::warning_for(const common::Error& e) const {
  int code = e.code == "sdp.no_media" ? 304 : e.code == "sdp.srtp_policy" ? 302 : 305;
  return std::to_string(code) + " " + policy_.node_name + " \"" + phrase_safe(e.message, 400) + "\"";
}

std::string SessionManager::build_sdp(Session& s, const SessionDescription& offer,
                                      const OfferPlan& plan) {
  AnswerParams params;
  params.media_address = policy_.media_address;
  for (const auto& st : s.streams) {
    params.ports.push_back(st.port);
    params.srtp_key_params.push_back(st.srtp_answer_key);
  }
  params.session_id = s.sdp_session_id;
  params.session_version = ++s.sdp_version;
  s.last_answer = build_answer(offer, plan, params);
  return s.last_answer;
}

void SessionManager::handle_invite(sip::TransactionId tx, const sip::Request& req) {
  // Per-source limits first: a flood costs a table lookup and a 503, nothing more.
  const std::string& source = req.source_address;
  if (auto wait_s = admission_.take_invite(source, Admission::Clock::now())) {
    count_invite(503);
    sip::Response r = simple(503, "INVITE rate limit");
    r.headers.emplace_back("Retry-After", std::to_string(*wait_s));
    endpoint_->reply(tx, r);
    limit_hit(Cap::kInviteRate, source, "INVITE " + phrase_safe(req.call_id) + " over sip.invite_rate_per_source, 503");
    return;
  }
  if (!admission_.session_slot_free(source)) {
    count_invite(503);
    endpoint_->reply(tx, service_unavailable("Session limit per source reached"));
    limit_hit(Cap::kSessionsPerSource, source,
              "INVITE " + phrase_safe(req.call_id) + " over sip.max_sessions_per_source, 503");
    return;
  }
  std::string why;
  if (!can_accept(&why)) {
    if (sessions_.size() >= policy_.max_sessions)
      limit_hit(Cap::kSessionsTotal, source, "INVITE " + phrase_safe(req.call_id) + " over sip.max_sessions, 503");
    count_invite(503);
    endpoint_->reply(tx, service_unavailable(why));
    log_->info("INVITE {} refused: 503 {}", req.call_id, why);
    return;
  }
  auto refuse = [&](int status, const std::string& reason, sip::Response r = {}) {
    refuse_invite(tx, req.call_id, status, reason, std::move(r));
  };
  // No body, or metadata alone: a delayed offer (RFC 3261 §13.2.1). We offer in the 200 OK and
  // take the SRC's answer from the ACK (on_ack); everything else is as for an offer.
  common::Result<RecordingBody> body = RecordingBody{};
  if (!req.body.empty() || !req.content_type.empty()) body = split_recording_body(req.content_type, req.body);
  if (!body) {
    if (body.error().code == "body.unsupported_type") {
      sip::Response r;
      r.headers.emplace_back("Accept", kAccept);
      refuse(415, "Unsupported Media Type", r);
    } else {
      refuse(400, "Malformed body: " + body.error().message);
    }
    return;
  }
  const bool delayed_offer = !body->sdp;
  if (delayed_offer && policy_.codecs.srtp == CodecPolicy::Srtp::kRequire) {
    // Our delayed-offer SDP is RTP/AVP only (we make no SDES offer): under media.srtp: require
    // nothing could be recorded. Refused before any port or spool, saying why (RFC 3261 §20.43:
    // 302 Incompatible transport protocol), instead of "RTP/AVP refused" about an offer the SRC
    // never made. docs/security.md "SRTP".
    sip::Response r;
    r.headers.emplace_back("Warning", "302 " + policy_.node_name +
                                          " \"SRTP required (media.srtp: require): an INVITE without SDP "
                                          "(delayed offer) is not accepted, send the SDP offer with "
                                          "RTP/SAVP and a=crypto in the INVITE\"");
    refuse(488, "Not Acceptable Here", r);
    return;
  }
  auto offer = delayed_offer ? delayed_offer_template(policy_.codecs, delayed_offer_labels(*body, policy_.metadata_limits))
                             : parse_sdp(*body->sdp);
  if (!offer) {
    refuse(400, "Malformed SDP: " + offer.error().message);
    return;
  }
  if (const auto max = policy_.admission.max_streams_per_session; max && offer->media.size() > max) {
    sip::Response r;
    r.headers.emplace_back("Warning", "300 " + policy_.node_name + " \"" + std::to_string(offer->media.size()) +
                                          " media streams offered, sip.max_streams_per_session is " +
                                          std::to_string(max) + "\"");
    limit_hit(Cap::kStreamsPerSession, source,
              "INVITE " + phrase_safe(req.call_id) + " offered " + std::to_string(offer->media.size()) +
                  " m-lines, over sip.max_streams_per_session, 488");
    refuse(488, "Not Acceptable Here", r);
    return;
  }
  auto plan = plan_answer(*offer, policy_.codecs);
  if (plan && delayed_offer) {
    for (auto& sp : plan->streams) {  // the SRC's address comes with its answer: latch the first source until then
      sp.remote_address.clear();
      sp.remote_port = 0;
      sp.remote_rtcp_port = 0;
    }
  }
  if (!plan) {
    sip::Response r;
    r.headers.emplace_back("Warning", warning_for(plan.error()));
    refuse(488, "Not Acceptable Here", r);
    return;
  }
  sip::Response resp = contact_response(req);
  SessionTimer timer;
  if (auto st = check_session_timer(req, resp, &timer)) {
    refuse(*st, *st == 422 ? "Session Interval Too Small" : "Bad Session-Expires", resp);
    return;
  }

  auto s = std::make_unique<Session>();
  s->recording_id = common::uuid_v4();
  s->offer_pending = s->awaiting_answer = delayed_offer;
  s->call_id = req.call_id;
  s->source_address = source;
  s->src = req.from;
  s->transport = req.transport;
  s->invite_tx = tx;
  s->setup_start_us = media::monotonic_us();  // INVITE taken (sgw_setup_latency_seconds)
  s->sdp_session_id = common::random_u64() >> 2;
  s->invite_headers = req.headers;
  s->timer = timer;
  for (const auto& [n, v] : resp.headers)
    if (n == "Contact") s->contact = v;
  for (const auto& w : body->warnings)
    log_->info("{} [{}]: body: {}", s->recording_id, s->call_id, w);
  auto p = std::make_unique<PendingInvite>(
      PendingInvite{std::move(s), std::move(*offer), std::move(*plan), std::move(resp), std::nullopt});
  if (metadata_thread_ && !body->metadata_docs.empty()) {
    // Parsed on the manager's metadata thread while the INVITE waits (docs/performance.md "The
    // SIP thread"), in waiting_ as for the hook: CANCEL, drain and sip.max_sessions see it.
    // Its result is taken on this thread, so the INVITE is put there after the post.
    auto docs = std::make_shared<std::vector<std::string>>(std::move(body->metadata_docs));
    if (metadata_thread_->post([this, tx, docs, limits = policy_.metadata_limits] {
          auto parsed = std::make_shared<ParsedDocs>(parse_metadata(*docs, limits));
          if (!endpoint_->post([this, tx, docs, parsed] {
                on_metadata_parsed(tx, std::move(*docs), std::move(*parsed));
              }))
            log_->error("INVITE tx {}: SIP thread queue full or stopped: metadata parsed, not answered", tx);
        })) {
      p->req = req;
      p->req->body.clear();
      waiting_[tx] = std::move(p);
      return;
    }
    body->metadata_docs = std::move(*docs);  // the queue is full: parsed here
  }
  apply_metadata(*p->s, body->metadata_docs);
  continue_invite(tx, std::move(p), req);
}

void SessionManager::on_metadata_parsed(sip::TransactionId tx, std::vector<std::string> docs, ParsedDocs parsed) {
  auto it = waiting_.find(tx);
  if (it == waiting_.end()) return;  // cancelled or drained meanwhile
  auto p = std::move(it->second);
  waiting_.erase(it);
  take_metadata(*p->s, docs, std::move(parsed));
  const sip::Request req = std::move(*p->req);
  p->req.reset();
  continue_invite(tx, std::move(p), req);
}

void SessionManager::continue_invite(sip::TransactionId tx, std::unique_ptr<PendingInvite> p,
                                     const sip::Request& req) {
  Session& s = *p->s;
  if (!s.metadata) {
    auto cisco = req.header_values(metadata::kCiscoParticipantHeader);
    if (!cisco.empty()) s.metadata = metadata::from_cisco_headers(cisco, req.call_id);
  }
  metadata::HeaderLookup lookup = [&req](std::string_view name) { return req.header_values(name); };
  if (auto m = metadata::find_conversation_id(policy_.conversation_id_rules, s.metadata ? &*s.metadata : nullptr,
                                              lookup, req.call_id)) {
    s.conversation_id = m->value;
    s.conversation_id_rule = m->rule;
  }
  // JSON log lines about this call carry its ids (docs/operations.md).
  common::log_register_call(s.recording_id, s.call_id, s.conversation_id);
  if (policy_.invite_hook) {
    // The INVITE waits for the hook's decision (docs/integrations.md); the
    // SIP thread does not: 100 Trying now, the request on the hook's thread.
    endpoint_->reply(tx, simple(100, "Trying"));
    auto doc = hook_request(s, req, p->offer, p->plan, "invite");
    waiting_[tx] = std::move(p);
    policy_.invite_hook(doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                        [this, tx](recording::CallDecision d) {
                          if (!endpoint_->post([this, tx, d = std::move(d)]() mutable {
                                on_hook_decision(tx, std::move(d));
                              }))
                            log_->error("INVITE tx {}: SIP thread queue full or stopped: hook decision lost", tx);
                        });
    return;
  }
  admit_invite(tx, std::move(p), std::nullopt);
}

void SessionManager::refuse_invite(sip::TransactionId tx, const std::string& call_id, int status,
                                   const std::string& reason, sip::Response r) {
  r.status = status;
  r.reason = phrase_safe(reason);
  count_invite(status);
  endpoint_->reply(tx, r);
  log_->info("INVITE {} refused: {} {}", call_id, status, r.reason);
}

nlohmann::json SessionManager::hook_request(const Session& s, const sip::Request& req,
                                            const SessionDescription& offer, const OfferPlan& plan,
                                            const char* event) const {
  nlohmann::json headers = nlohmann::json::object();
  for (const auto& [n, v] : req.headers)
    if (common::istarts_with(n, "X-") || common::iequals(n, "Session-ID") || common::iequals(n, "User-Agent") ||
        common::iequals(n, "Via") || common::iequals(n, "Contact"))
      headers[n].push_back(v);
  nlohmann::json streams = nlohmann::json::array();
  for (const auto& sp : plan.streams) {
    nlohmann::json offered = nlohmann::json::array();
    if (sp.index < offer.media.size())
      for (const auto& pf : offer.media[sp.index].payloads)
        offered.push_back({{"pt", pf.payload_type}, {"encoding", pf.encoding}, {"clock_rate", pf.clock_rate}});
    nlohmann::json st = {{"index", sp.index}, {"label", sp.label ? nlohmann::json(*sp.label) : nlohmann::json(nullptr)},
                         {"media", sp.media}, {"recordable", sp.accepted}, {"paused", sp.paused},
                         {"codecs_offered", offered}};
    if (sp.accepted) st["codec"] = sp.codecs.front().encoding + "/" + std::to_string(sp.codecs.front().clock_rate);
    streams.push_back(std::move(st));
  }
  return {{"event", event},
          {"time", common::utc_now_iso8601()},
          {"gateway", {{"node", policy_.node_name}, {"region", policy_.region}}},
          {"recording_id", s.recording_id},
          {"call_id", s.call_id},
          {"from", req.from},
          {"to", req.to},
          {"request_uri", req.request_uri},
          {"transport", req.transport},
          {"source", req.header("Via")},
          {"headers", headers},
          {"conversation_id", s.conversation_id},
          {"conversation_id_rule", s.conversation_id_rule},
          {"metadata", s.metadata ? metadata::to_json(*s.metadata) : nlohmann::json(nullptr)},
          {"metadata_errors", s.metadata_errors},
          {"streams", streams}};
}

void SessionManager::on_hook_decision(sip::TransactionId tx, recording::CallDecision d) {
  auto it = waiting_.find(tx);
  if (it == waiting_.end()) return;  // cancelled or drained meanwhile
  auto p = std::move(it->second);
  waiting_.erase(it);
  const auto& s = *p->s;
  if (d.action == "reject") {
    log_->info("{} [{}]: call-control hook ({}): reject {}{}", s.recording_id, s.call_id, d.source, d.sip_code,
               d.error.empty() ? "" : " (" + d.error + ")");
    refuse_invite(tx, s.call_id, d.sip_code,
                  d.source == "hook" ? (d.sip_code == 403   ? "Forbidden"
                                        : d.sip_code == 480 ? "Temporarily Unavailable"
                                                            : "Decline")
                                     : "Call-control hook failed");
    return;
  }
  admit_invite(tx, std::move(p), std::move(d));
}

void SessionManager::admit_invite(sip::TransactionId tx, std::unique_ptr<PendingInvite> p,
                                  std::optional<recording::CallDecision> decision) {
  auto s = std::move(p->s);
  const auto& offer = p->offer;
  const auto& plan = p->plan;
  sip::Response resp = std::move(p->resp);
  auto refuse = [&](int status, const std::string& reason, sip::Response r = {}) {
    refuse_invite(tx, s->call_id, status, reason, std::move(r));
  };
  // Time zero of the recording: the same instant on both clocks, so the
  // JSON's start_time is the time of the audio's first sample.
  const std::int64_t start_mono_us = media::monotonic_us();
  const std::int64_t start_unix_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count();
  s->start_time = common::iso8601_from_unix_us(start_unix_us);
  // The spool's first record: enough to finish the recording from the spool alone.
  nlohmann::json start = {
      {"recording_id", s->recording_id}, {"call_id", s->call_id}, {"start_time", s->start_time},
      {"start_unix_us", start_unix_us},
      {"node", policy_.node_name}, {"region", policy_.region},
      {"conversation_id", s->conversation_id}, {"conversation_id_rule", s->conversation_id_rule},
      {"src", s->src}, {"transport", s->transport}};
  nlohmann::json headers = nlohmann::json::object();
  for (const auto& [n, v] : s->invite_headers)
    if (common::istarts_with(n, "X-") || common::iequals(n, "Session-ID")) headers[n].push_back(v);
  start["headers"] = headers;
  if (decision) start["decision"] = recording::encode_decision(*decision);
  // Ports first, then the spool (docs/guarantees.md): a call refused for
  // want of ports or workers leaves nothing on disk.
  s->media = media_->reserve_session(s->recording_id);
  if (s->media == 0) {
    refuse(503, "Media workers busy", service_unavailable("Media workers busy"));
    return;
  }
  // RFC 7866 §6.1: ports are bound before the 200 OK so early media is kept.
  if (!apply_plan(*s, plan)) {
    media_->close_session(s->media, {}, nullptr);  // never started: releases the ports only
    refuse(503, "No media ports available", service_unavailable("No media ports available"));
    return;
  }
  std::uint64_t key = next_key_++;
  // The session's start record, metadata and streams are written now and the
  // 200 OK waits until they are durable: a crash after the answer keeps them.
  SinkRequest request;
  request.recording_id = s->recording_id;
  request.start_json = start.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  request.metadata_docs = s->metadata_raw;
  request.streams_event_json = streams_event(*s, "offer");
  if (decision) request.stream = decision->stream;
  request.on_durable = [this, key, id = s->recording_id](common::Status st) {
    if (!endpoint_->post([this, key, st] { on_start_durable(key, st); }))
      log_->error("{}: SIP thread queue full or stopped: not answered", id);
  };
  request.on_failure = [this, id = s->recording_id](const std::string& message) {
    storage_failed(id, message);
  };
  resp.status = 200;
  resp.reason = "OK";
  resp.content_type = "application/sdp";
  resp.body = build_sdp(*s, offer, plan);

  s->key = key;
  s->start_mono_us = start_mono_us;
  // Into the spool once its sink has started (on_sink_made): post_event drops events for a
  // media session not started yet.
  s->offered_event = std::string(s->awaiting_answer ? "recording session (delayed offer: ours in the 200 OK) requested by "
                                                    : "recording session offered by ") +
                     phrase_safe(s->src) + " over " + s->transport +
                     (s->conversation_id.empty() ? "" : ", conversation " + s->conversation_id +
                                                            " (" + s->conversation_id_rule + ")") +
                     (decision ? "; call-control hook (" + decision->source + "): record" +
                                     (decision->error.empty() ? "" : " (" + decision->error + ")")
                               : "");
  by_invite_tx_[tx] = key;
  admission_.session_opened(s->source_address);
  Session& sess = *s;
  sessions_[key] = std::move(s);
  publish();
  pending_answers_[key] = std::make_shared<sip::Response>(std::move(resp));
  const std::string id = sess.recording_id;
  if (sink_thread_) {
    // The spool's open(O_CREAT) and first writes off the SIP thread; the INVITE waits (its
    // 200 OK waits for the spool to be durable anyway). The media session is reserved and
    // its ports bound: a packet that comes early waits in its socket's buffer.
    sess.sink_pending = true;
    auto req = std::make_shared<SinkRequest>(std::move(request));
    if (sink_thread_->post([this, key, id, req] {
          MadeSink made = make_sink_(std::move(*req));
          {
            std::lock_guard lock(made_mutex_);
            made_sinks_.emplace(key, std::make_pair(id, std::move(made)));
          }
          if (!endpoint_->post([this, key] { take_made_sink(key); }))
            log_->error("{}: SIP thread queue full or stopped: spool made, not answered", id);
        }))
      return;
    sess.sink_pending = false;
    request = std::move(*req);
  }
  on_sink_made(key, id, make_sink_(std::move(request)));
}

void SessionManager::take_made_sink(std::uint64_t key) {
  std::optional<MadeSink> made;
  std::string id;
  {
    std::lock_guard lock(made_mutex_);
    auto it = made_sinks_.find(key);
    if (it == made_sinks_.end()) return;  // taken by end_session
    id = std::move(it->second.first);
    made.emplace(std::move(it->second.second));
    made_sinks_.erase(it);
  }
  on_sink_made(key, id, std::move(*made));
}

void SessionManager::on_sink_made(std::uint64_t key, const std::string& recording_id, MadeSink sink) {
  auto it = sessions_.find(key);
  if (it == sessions_.end()) {
    discard_sink(recording_id, std::move(sink), "ended before its spool was ready");
    return;
  }
  Session& s = *it->second;
  s.sink_pending = false;
  if (!sink) {
    // SpoolSink::create left nothing on disk. The ports are released by end_session.
    storage_ok_ = false;  // until the application's storage check says otherwise
    refuse_answering(key, "Recording storage unavailable", "refused: spool not created: " + sink.error().message);
    return;
  }
  media_->start_session(s.media, std::move(sink).value(), s.start_mono_us);
  log_event(s, std::move(s.offered_event));
  s.offered_event.clear();
  if (auto early = std::move(s.early_durable)) {
    s.early_durable.reset();
    on_start_durable(key, *early);
  }
}

void SessionManager::discard_sink(const std::string& recording_id, MadeSink sink, const std::string& cause) {
  if (!sink) return;  // nothing was left on disk
  auto made = std::move(sink).value();
  made->start(media::monotonic_us());
  made->finish(0, end_record(cause, false, false));
  log_->info("{}: {}: spool discarded", recording_id, cause);
  if (on_closed_) on_closed_(recording_id);
}

void SessionManager::on_start_durable(std::uint64_t key, const common::Status& status) {
  if (auto sit = sessions_.find(key); sit != sessions_.end() && sit->second->sink_pending) {
    // The syncer was quicker than the SIP thread's take of the sink: answer once it started.
    sit->second->early_durable = status;
    return;
  }
  auto pa = pending_answers_.find(key);
  if (pa == pending_answers_.end()) return;
  auto pending = pa->second;
  pending_answers_.erase(pa);
  auto it = sessions_.find(key);
  if (it == sessions_.end() || it->second->state != State::kAnswering) return;  // cancelled meanwhile
  if (!status) {
    storage_ok_ = false;
    refuse_answering(key, "Recording storage unavailable",
                     "refused: spool not durable: " + status.error().message);
    return;
  }
  auto send = [this, key, pending] {
    auto found = sessions_.find(key);
    if (found == sessions_.end()) return;  // cancelled meanwhile
    Session& sess = *found->second;
    if (!sess.storage_error.empty()) {
      refuse_answering(key, "Recording storage unavailable", "refused: " + sess.storage_error);
      return;
    }
    by_invite_tx_.erase(sess.invite_tx);
    sip::DialogId d = endpoint_->accept_invite(sess.invite_tx, *pending);
    if (d == 0) {
      end_session(key, "invite transaction gone");
      return;
    }
    count_invite(200);
    if (metrics_.setup_latency_s && sess.setup_start_us > 0)
      metrics_.setup_latency_s->observe(static_cast<double>(media::monotonic_us() - sess.setup_start_us) / 1e6);
    sess.dialog = d;
    sess.state = State::kEstablished;
    by_dialog_[d] = key;
    arm_session_timer(sess);
    watch_pause(sess);
    sess.started_event = true;
    raise_event(sess, "session.started", [&] {
      return nlohmann::json{{"start_time", sess.start_time}, {"from", sess.src}, {"transport", sess.transport},
                            {"conversation_id_rule", sess.conversation_id_rule}, {"streams", streams_json(sess)},
                            {"participants", participants_json(sess.metadata)}};
    });
    publish();
  };
  if (policy_.answer_delay_ms > 0) {
    endpoint_->after(policy_.answer_delay_ms, send);
  } else {
    send();
  }
}

// SIP thread: answers a session still being answered 503 and ends it
// unanswered (the finaliser removes an unanswered spool: nothing is published).
void SessionManager::refuse_answering(std::uint64_t key, const std::string& why,
                                      const std::string& cause) {
  auto it = sessions_.find(key);
  if (it == sessions_.end()) return;
  Session& s = *it->second;
  by_invite_tx_.erase(s.invite_tx);
  count_invite(503);
  if (metrics_.storage_failures) metrics_.storage_failures->inc();
  endpoint_->reply(s.invite_tx, service_unavailable(why));
  log_->error("INVITE {} refused: 503 {} ({})", s.call_id, why, cause);
  end_session(key, cause);
}

void SessionManager::storage_failed(const std::string& recording_id, const std::string& message) {
  storage_ok_ = false;
  if (endpoint_ == nullptr ||
      !endpoint_->post([this, recording_id, message] { on_storage_failed(recording_id, message); }))
    log_->error("{}: spool write failed ({}); SIP thread stopped", recording_id, message);
}

void SessionManager::on_storage_failed(const std::string& recording_id, const std::string& message) {
  for (auto& [key, s] : sessions_) {
    if (s->recording_id != recording_id) continue;
    if (!s->storage_error.empty()) return;
    s->storage_error = "recording storage failed: " + message;
    s->cut_short = true;
    if (metrics_.storage_failures) metrics_.storage_failures->inc();
    if (s->state == State::kEstablished && s->dialog) {
      s->state = State::kEnding;
      log_->error("{} [{}]: {}: sending BYE", s->recording_id, s->call_id, s->storage_error);
      // RFC 3326 Reason: the SRC learns why the recording stops.
      endpoint_->send_bye(s->dialog, {{"Reason", "SIP;cause=503;text=\"Recording storage failed\""}});
    } else {
      // Being answered: the answer becomes a 503 (send / on_start_durable);
      // already ending: the end record carries the cause.
      log_->error("{} [{}]: {}", s->recording_id, s->call_id, s->storage_error);
    }
    return;
  }
}

void SessionManager::handle_reoffer(Session& s, sip::TransactionId tx, const sip::Request& req,
                                    bool is_invite) {
  // What session.updated reports: paused/resumed streams, streams added, metadata (participants).
  auto counts = [&s] {
    std::pair<std::size_t, std::size_t> c{0, 0};  // recorded, paused or held
    for (const auto& st : s.streams)
      if (st.media_id) {
        ++c.first;
        if (st.paused || st.held) ++c.second;
      }
    return c;
  };
  const auto before = counts();
  sip::Response resp = simple(200, "OK");
  auto timer_resp = contact_response(req);
  SessionTimer timer;
  if (auto st = check_session_timer(req, timer_resp, &timer)) {
    timer_resp.status = *st;
    timer_resp.reason = *st == 422 ? "Session Interval Too Small" : "Bad Session-Expires";
    endpoint_->reply(tx, timer_resp);
    return;
  }
  resp.headers = timer_resp.headers;
  std::optional<RecordingBody> body;
  if (!req.body.empty() && !req.content_type.empty()) {
    auto b = split_recording_body(req.content_type, req.body);
    if (!b) {
      sip::Response r = simple(b.error().code == "body.unsupported_type" ? 415 : 400,
                               phrase_safe("Malformed body: " + b.error().message));
      endpoint_->reply(tx, r);
      return;
    }
    body = std::move(b).value();
  }
  if (body && body->sdp && s.offer_pending) {
    sip::Response r = simple(491, "Request Pending");
    endpoint_->reply(tx, r);
    log_->info("{} [{}]: {} with an offer while ours awaits its answer: 491", s.recording_id,
               s.call_id, req.method);
    return;
  }
  if (body && body->sdp) {
    auto offer = parse_sdp(*body->sdp);
    if (!offer) {
      endpoint_->reply(tx, simple(400, phrase_safe("Malformed SDP: " + offer.error().message)));
      return;
    }
    auto plan = plan_answer(*offer, policy_.codecs);
    if (!plan) {
      // RFC 3264 §8: a refused re-offer leaves the session as it was.
      sip::Response r = simple(488, "Not Acceptable Here");
      r.headers.emplace_back("Warning", warning_for(plan.error()));
      endpoint_->reply(tx, r);
      return;
    }
    if (!apply_plan(s, *plan)) {
      endpoint_->reply(tx, service_unavailable("No media ports available"));
      return;
    }
    resp.content_type = "application/sdp";
    resp.body = build_sdp(s, *offer, *plan);
  } else if (is_invite) {
    // No offer in a re-INVITE (metadata-only or empty): our 2xx carries the
    // current description as the offer (RFC 3261 §14.2).
    resp.content_type = "application/sdp";
    resp.body = s.last_answer;
    s.offer_pending = true;  // until the ACK
  }
  if (body && !body->metadata_docs.empty()) {
    apply_metadata(s, body->metadata_docs);
    log_event(s, "metadata updated (" + std::to_string(body->metadata_docs.size()) + " document(s))");
    if (policy_.update_hook) {
      // Informational (docs/integrations.md): the session goes on whatever the answer.
      nlohmann::json doc = hook_request(s, req, {}, {}, "update");
      doc.erase("streams");
      policy_.update_hook(doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                          [log = log_, id = s.recording_id](recording::CallDecision d) {
                            log->info("{}: update hook answered ({}){}", id, d.source,
                                      d.error.empty() ? "" : ": " + d.error);
                          });
    }
  }
  // Cisco CUBE names the parties in headers, also on the re-INVITE after a transfer: a metadata
  // update like an XML partial one (docs/metadata.md), replayed by the finaliser from the spool.
  if (auto cisco = req.header_values(metadata::kCiscoParticipantHeader); !cisco.empty()) {
    metadata::CiscoHeadersEvent e{common::utc_now_iso8601(), std::move(cisco)};
    if (auto md = metadata::merge_cisco_headers(s.metadata ? &*s.metadata : nullptr, e.values, s.call_id, e.time)) {
      s.metadata = std::move(md);
      const nlohmann::json j = metadata::encode_cisco_event(e);
      log_->info("{} [{}]: {}", s.recording_id, s.call_id, j["event"].get<std::string>());
      if (s.media) media_->post_event(s.media, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
  }
  endpoint_->reply(tx, resp);
  // RFC 4028 §10: a re-INVITE or UPDATE answered 2xx refreshes (renegotiates) the session timer.
  s.timer = timer;
  arm_session_timer(s);
  watch_pause(s);
  const auto after = counts();
  nlohmann::json changes = nlohmann::json::array();
  if (after.second > before.second) changes.push_back("paused");
  if (after.second < before.second) changes.push_back("resumed");
  if (after.first > before.first) changes.push_back("streams_added");
  if (after.first < before.first) changes.push_back("streams_removed");
  if (body && !body->metadata_docs.empty()) changes.push_back("metadata");
  if (s.started_event && !changes.empty()) {
    char sub[16];
    std::snprintf(sub, sizeof sub, "%06u", ++s.update_events);
    raise_event(s, "session.updated", [&] {
      return nlohmann::json{{"changes", changes}, {"streams", streams_json(s)},
                            {"participants", participants_json(s.metadata)}};
    }, sub);
  }
  publish();
}

SessionManager::Session* SessionManager::by_dialog(sip::DialogId d, std::uint64_t* key) {
  auto it = by_dialog_.find(d);
  if (it == by_dialog_.end()) return nullptr;
  auto s = sessions_.find(it->second);
  if (s == sessions_.end()) return nullptr;
  *key = it->second;
  return s->second.get();
}

void SessionManager::on_dialog_request(sip::DialogId dialog, sip::TransactionId tx,
                                       const sip::Request& req) {
  metrics_.requests_by_method->with(req.method).inc();
  std::uint64_t key = 0;
  Session* s = by_dialog(dialog, &key);
  if (s == nullptr) {
    endpoint_->reply(tx, simple(481, "Call/Transaction Does Not Exist"));
    return;
  }
  if (req.method == "BYE") {
    endpoint_->reply(tx, simple(200, "OK"));
    endpoint_->release_dialog(dialog);
    by_dialog_.erase(dialog);
    s->dialog = 0;
    end_session(key, "BYE from SRC");
  } else if (req.method == "INVITE" || req.method == "UPDATE") {
    handle_reoffer(*s, tx, req, req.method == "INVITE");
  } else if (req.method == "INFO" || req.method == "OPTIONS" || req.method == "NOTIFY") {
    sip::Response r = simple(200, "OK");
    if (req.method == "OPTIONS") {
      r.headers.emplace_back("Allow", kAllow);
      r.headers.emplace_back("Accept", kAccept);
      r.headers.emplace_back("Supported", kSupported);
    }
    endpoint_->reply(tx, r);
  } else {
    sip::Response r = simple(405, "Method Not Allowed");
    r.headers.emplace_back("Allow", kAllow);
    endpoint_->reply(tx, r);
  }
}

void SessionManager::on_ack(sip::DialogId dialog, const sip::Request& ack) {
  std::uint64_t key = 0;
  Session* s = by_dialog(dialog, &key);
  if (s == nullptr) return;
  const bool answer_due = s->offer_pending;
  s->offer_pending = false;
  if (!s->acked) {
    s->acked = true;
    log_event(*s, "established (ACK)");
  }
  if (!answer_due) return;
  // Our 2xx carried an offer (delayed-offer INVITE, or an offerless re-INVITE): the ACK carries
  // the answer (RFC 3264 §4, RFC 3261 §13.2.1), and may carry metadata (RFC 7866 §6.2).
  std::string problem;
  std::optional<RecordingBody> body;
  if (!ack.body.empty() || !ack.content_type.empty()) {
    auto b = split_recording_body(ack.content_type, ack.body);
    if (b) body = std::move(b).value();
    else problem = "ACK body not understood: " + b.error().message;
  }
  if (body && !body->metadata_docs.empty()) {
    apply_metadata(*s, body->metadata_docs);
    log_event(*s, "metadata received in the ACK (" + std::to_string(body->metadata_docs.size()) +
                      " document(s))");
  }
  if (problem.empty()) problem = apply_ack_answer(*s, body && body->sdp ? &*body->sdp : nullptr);
  if (problem.empty()) return;
  if (!s->awaiting_answer) {
    // A re-INVITE's offer left unanswered: the session goes on as it was (RFC 3264 §8: the
    // previous description stays in force).
    log_event(*s, "no usable answer in the ACK to our re-offer (" + problem + "); session unchanged");
    return;
  }
  // A delayed-offer session with no usable answer has nothing we can record as offered: end it
  // (RFC 3261 §13.3.1.4), and the recording says it is not complete.
  s->awaiting_answer = false;
  s->cut_short = true;
  if (metrics_.delayed_offer_failures) metrics_.delayed_offer_failures->inc();
  end_by_gateway(*s, "delayed offer: " + problem, 488, "No usable SDP answer in ACK");
}

std::string SessionManager::apply_ack_answer(Session& s, const std::string* sdp) {
  if (sdp == nullptr) return "no SDP answer in the ACK";
  auto answer = parse_sdp(*sdp);
  if (!answer) return "malformed SDP answer in the ACK: " + answer.error().message;
  // RFC 3264 §6: the answer has exactly the offer's m= lines.
  if (answer->media.size() != s.streams.size())
    return "the answer in the ACK has " + std::to_string(answer->media.size()) + " m= lines, our offer " +
           std::to_string(s.streams.size());
  // The SRC's answer says what it sends and from where: planned like an offer it gives the
  // streams, payload types and source addresses to record (port 0: a stream it will not send).
  auto plan = plan_answer(*answer, policy_.codecs);
  if (!plan) return "unusable SDP answer in the ACK: " + plan.error().message;
  for (auto& sp : plan->streams)
    if (!sp.label && sp.index < s.streams.size()) sp.label = s.streams[sp.index].label;  // ours, echoed
  if (!apply_plan(s, *plan, "answer")) return "no media ports";
  s.awaiting_answer = false;
  log_event(s, "SDP answer in the ACK: " + std::to_string(plan->accepted_count()) + " stream(s) to record");
  watch_pause(s);
  publish();
  return {};
}

void SessionManager::on_malformed(const sip::Request& req, int status) {
  // The endpoint answered (or dropped) it, logged and counted it; an INVITE
  // refused that way is still an INVITE refused.
  metrics_.requests_by_method->with(req.method).inc();
  if (req.method == "INVITE" && status >= 400) count_invite(status);
}

void SessionManager::on_cancelled(sip::TransactionId tx) {
  if (waiting_.erase(tx) > 0) {  // still waiting for the hook: nothing was written
    count_invite(487);
    return;
  }
  auto it = by_invite_tx_.find(tx);
  if (it == by_invite_tx_.end()) return;
  std::uint64_t key = it->second;
  by_invite_tx_.erase(it);
  count_invite(487);
  end_session(key, "CANCEL before answer");
}

void SessionManager::on_bye_result(sip::DialogId dialog, int status) {
  std::uint64_t key = 0;
  Session* s = by_dialog(dialog, &key);
  by_dialog_.erase(dialog);
  if (s == nullptr) return;
  s->dialog = 0;
  std::string answered = "BYE sent by gateway (answered " + std::to_string(status) + ")";
  end_session(key, s->end_cause.empty() ? answered : s->end_cause + "; " + answered);
}

void SessionManager::on_ack_timeout(sip::DialogId dialog) {
  std::uint64_t key = 0;
  Session* s = by_dialog(dialog, &key);
  if (s == nullptr) return;
  // RFC 3261 §13.3.1.4: a 2xx never ACKed within 64*T1 (timer H): the UAS ends the session.
  end_by_gateway(*s, s->acked ? "no ACK for the 2xx to a re-INVITE" : "no ACK", 408, "No ACK");
}

void SessionManager::end_session(std::uint64_t key, const std::string& cause) {
  auto it = sessions_.find(key);
  if (it == sessions_.end()) return;
  Session& s = *it->second;
  log_event(s, "ended: " + cause);
  if (s.started_event)
    raise_event(s, "session.ended", [&] {
      return nlohmann::json{{"cause", s.storage_error.empty() ? cause : s.storage_error},
                            {"end_time", common::utc_now_iso8601()},
                            {"complete", !s.cut_short && s.storage_error.empty()}};
    });
  if (s.dialog) {
    by_dialog_.erase(s.dialog);
    endpoint_->release_dialog(s.dialog);
  }
  if (s.media) {
    // A spool failure is the cause that matters for the recording, whatever ended the dialog.
    std::string id = s.recording_id;
    auto closed = on_closed_;
    media_->close_session(s.media, end_record(s.storage_error.empty() ? cause : s.storage_error,
                                              s.state != State::kAnswering, !s.cut_short),
                          [closed, id] {
                            if (closed) closed(id);
                          });
  }
  if (s.sink_pending) {
    // Its media session never started (closed above: ports released); the sink, if already
    // made, is discarded now, else when it comes (take_made_sink).
    std::optional<std::pair<std::string, MadeSink>> made;
    {
      std::lock_guard lock(made_mutex_);
      if (auto m = made_sinks_.find(key); m != made_sinks_.end()) {
        made.emplace(std::move(m->second));
        made_sinks_.erase(m);
      }
    }
    if (made) discard_sink(made->first, std::move(made->second), cause);
  }
  admission_.session_closed(s.source_address);
  sessions_.erase(it);
  publish();
  if (draining_ && sessions_.empty() && on_drained_) {
    auto cb = std::move(on_drained_);
    on_drained_ = nullptr;
    cb();
  }
}

void SessionManager::on_media_timeout(media::SessionHandle handle) {
  for (auto& [key, s] : sessions_) {
    if (s->media != handle) continue;
    end_by_gateway(*s, "media timeout", 408, "Media timeout");
    return;
  }
}

void SessionManager::drain(std::function<void()> on_drained, std::uint32_t max_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(max_s);
  const bool sooner = !draining_ || deadline < drain_deadline_;
  draining_ = true;
  on_drained_ = std::move(on_drained);
  for (auto& [tx, p] : waiting_) {
    count_invite(503);
    endpoint_->reply(tx, service_unavailable("Draining"));
  }
  waiting_.clear();
  std::vector<std::uint64_t> keys;
  for (auto& [key, s] : sessions_) keys.push_back(key);
  for (auto key : keys) {
    auto it = sessions_.find(key);
    if (it == sessions_.end()) continue;
    Session& s = *it->second;
    if (s.state == State::kAnswering) {
      by_invite_tx_.erase(s.invite_tx);
      count_invite(503);
      endpoint_->reply(s.invite_tx, service_unavailable("Draining"));
      end_session(key, "drain before answer");
    } else if (s.state == State::kEstablished && s.dialog) {
      log_event(s, max_s == 0 ? "drain" : "drain: ends on its own or in " + std::to_string(max_s) + " s");
    }
  }
  publish();
  if (sooner) {
    drain_deadline_ = deadline;
    if (max_s == 0) {
      bye_remaining_after_drain(drain_epoch_);
    } else {
      std::uint64_t epoch = drain_epoch_;
      endpoint_->after(max_s * 1000, [this, epoch] { bye_remaining_after_drain(epoch); });
    }
  }
  if (sessions_.empty() && on_drained_) {
    auto cb = std::move(on_drained_);
    on_drained_ = nullptr;
    cb();
  }
}

void SessionManager::bye_remaining_after_drain(std::uint64_t epoch) {
  if (!draining_ || epoch != drain_epoch_) return;  // resumed meanwhile
  for (auto& [key, sp] : sessions_) {
    Session& s = *sp;
    if (s.state != State::kEstablished || !s.dialog) continue;
    s.state = State::kEnding;
    s.cut_short = true;
    log_event(s, "drain: sending BYE");
    // RFC 3326 Reason header tells the SRC why the recording stops.
    endpoint_->send_bye(s.dialog, {{"Reason", "SIP;cause=503;text=\"Recorder draining\""}});
  }
}

void SessionManager::resume() {
  if (!draining_) return;
  draining_ = false;
  ++drain_epoch_;
  on_drained_ = nullptr;
  log_->info("drain cancelled: taking new sessions again");
}

}  // namespace sgw::siprec
