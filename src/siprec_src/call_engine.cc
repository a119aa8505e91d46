#include "siprec_src/call_engine.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <atomic>
#include <cmath>
#include <cstdio>

#include "common/ids.h"
#include "common/logging.h"
#include "sip/srv_resolver.h"
#include "siprec_src/rate_scheduler.h"
#include "siprec_src/sdp_offer.h"
#include "siprec_src/verdict.h"

namespace sgw::siprec_src {
namespace {

constexpr std::uint32_t kTickMs = 5;
constexpr const char* kAllow = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO";
constexpr const char* kAccept = "application/sdp, application/rs-metadata+xml";
constexpr const char* kBoundary = "siprec-src-boundary-7f3a";
constexpr std::size_t kSlotBits = 20;  // stream table of at most 2^20 slots

std::int64_t mono_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

// Sets OutgoingRequest::ack_delay_ms when the ClientEndpoint offers it (real early media: RTP
// before the ACK); otherwise the ACK leaves with the 200 OK and RTP follows right after.
template <typename R>
bool set_ack_delay(R& req, std::uint32_t ms) {
  if constexpr (requires { req.ack_delay_ms; }) {
    req.ack_delay_ms = ms;
    return true;
  } else {
    (void)req;
    (void)ms;
    return false;
  }
}

std::string bracket(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

std::string failure_key(const sip::ClientResponse& r) {
  if (r.local && r.status == 408) return "timeout";
  if (r.local) return "transport-error";
  return std::to_string(r.status);
}

std::uint32_t retry_after_s(const sip::ClientResponse& r) {
  std::string v = r.header("Retry-After");
  std::uint32_t s = 0;
  for (char ch : v) {
    if (ch < '0' || ch > '9') break;
    s = s * 10 + static_cast<std::uint32_t>(ch - '0');
    if (s > 86400) break;
  }
  return s;
}

bool names_siprec(const std::string& unsupported) {
  std::string l = unsupported;
  for (auto& ch : l) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return l.find("siprec") != std::string::npos;
}

}  // namespace

struct CallEngine::Call {
  std::size_t index = 0;
  enum class State { kInviting, kActive, kEnding, kDone } state = State::kInviting;
  sip::CallHandle handle = 0;
  std::string call_id;
  bool established_once = false;
  bool reestablishing = false;
  bool require = true;
  bool retried_420 = false;
  int retries_503 = 0;
  std::vector<std::size_t> order;  // target indices in the order to try
  std::size_t attempt = 0;
  std::size_t target = 0;
  std::uint32_t gen = 0;  // bumped per INVITE attempt; timers of older attempts are stale
  std::int64_t invite_sent_us = 0;
  bool got_response = false;
  std::int64_t answered_ms = -1;
  std::int64_t session_invite_us = -1;  // INVITE sent, of the attempt that was answered 2xx
  std::int64_t session_ok_us = -1;      // its 200 OK received
  std::int64_t bye_sent_us = -1;
  std::uint64_t sdp_session = 0;
  std::uint64_t sdp_version = 1;
  bool paused = false;
  bool held = false;
  bool held_by_zero = false;  // paused by a re-INVITE with c=0.0.0.0 (hold-zero) until resume
  std::int64_t silent_since_ms = -1;
  ParticipantState pstate;
  StreamId slot[2] = {0, 0};
  bool streams = false;
  // end_call: the BYE waits until the sender has removed both streams, so
  // no RTP follows it to ports the recorder has already closed.
  int bye_after_removals = 0;
  bool reinvite_pending = false;
  std::uint32_t reinvite_seq = 0;
  bool resume_on_ok = false;
  struct Signal {
    std::string metadata;
    bool update = false;
    sip::HeaderList headers;
  };
  std::vector<Signal> signals;  // waiting for the re-INVITE in progress
  bool ka_outstanding = false;
  int error_code = 0;  // a mid-call problem reported at the end
  std::string error;
  // --srtp, per leg: the keys RTP is encrypted with, the keys the next offer carries (new after
  // a rekey action), and the keys of the offer in flight (in use once its 2xx arrives).
  std::shared_ptr<const media::SrtpKeys> keys[2];
  std::shared_ptr<const media::SrtpKeys> offer_keys[2];
  std::shared_ptr<const media::SrtpKeys> inflight_keys[2];
};

common::Result<std::unique_ptr<CallEngine>> CallEngine::create(const Options& options) {
  std::unique_ptr<CallEngine> e(new CallEngine());
  e->opt_ = options;
  e->local_host_ = options.bind;
  if (options.srtp)
    if (auto st = media::srtp_library_init(); !st) return st.error();
  // Audio: a tone per leg (or sound files), encoded once for the whole run.
  auto legs = encode_legs(options.codec, options.wav_caller, options.wav_agent,
                          options.tone_caller, options.tone_agent);
  if (!legs) return legs.error();
  e->audio_ = *legs;
  std::size_t max_streams = std::min<std::size_t>(options.concurrency * 2 + 64, (1u << kSlotBits) - 1);
  SenderOptions so;
  so.bind_address = options.bind;
  so.max_streams = max_streams;
  so.loss = options.loss;
  so.reorder = options.reorder;
  so.dup = options.dup;
  so.jitter_ms = options.jitter_ms;
  so.seed = options.seed;
  so.threads = options.sender_threads;
  CallEngine* self = e.get();
  auto sender = RtpSender::create(so, [self](std::uint64_t tag, const StreamStats& st) {
    auto apply = [self, tag, st] {
      std::size_t idx = tag >> (kSlotBits + 1);
      auto slot = static_cast<StreamId>((tag >> 1) & ((1u << kSlotBits) - 1));
      std::size_t leg = tag & 1;
      if (idx < self->records_.size()) {
        auto& rec = self->records_[idx];
        rec.packets[leg] += st.packets;
        rec.lost_injected[leg] += st.lost;
        rec.paused_packets[leg] += st.paused;
        rec.ssrcs[leg].insert(rec.ssrcs[leg].end(), st.ssrcs.begin(), st.ssrcs.end());
      }
      self->free_slots_.push_back(slot);
      if (self->streams_live_ > 0) --self->streams_live_;
      if (idx < self->calls_.size()) {
        Call* c = self->calls_[idx].get();
        if (c != nullptr && c->bye_after_removals > 0 && --c->bye_after_removals == 0) self->send_bye(*c);
      }
      self->maybe_done();
    };
    if (self->sip_running_.load()) {
      if (!self->ep_->post(apply)) apply();  // queue full: we are the only writer left anyway
    } else {
      // The SIP loop has ended; several sender threads may still remove streams at once.
      std::lock_guard lock(self->removed_mu_);
      apply();
    }
  });
  if (!sender) return sender.error();
  e->sender_ = std::move(sender).value();
  for (std::size_t i = max_streams; i > 0; --i) e->free_slots_.push_back(static_cast<StreamId>(i - 1));

  sip::ClientOptions co;
  co.bind_address = options.bind;
  co.user_agent = "siprec-src/0.1";
  co.transaction_timeout_ms = options.invite_timeout_ms;
  // TLS when any target asks for it (sips:, ;transport=tls, --transport tls) or a TLS file is given.
  co.tls = options.transport == "tls" || options.target.find("sips:") != std::string::npos ||
           options.target.find("transport=tls") != std::string::npos || !options.tls_ca.empty() ||
           !options.tls_cert.empty();
  co.tls_ca_file = options.tls_ca;
  co.tls_cert_file = options.tls_cert;
  co.tls_key_file = options.tls_key;
  auto ep = sip::ClientEndpoint::create(co, self);
  if (!ep) return ep.error();
  e->ep_ = std::move(ep).value();
  return e;
}

CallEngine::~CallEngine() {
  if (sender_) sender_->stop();
}

std::int64_t CallEngine::now_ms() const { return (mono_us() - t0_us_) / 1000; }

void CallEngine::note(Call& c, const std::string& what) {
  auto& ev = records_[c.index].events;
  if (ev.size() < 64) ev.push_back(std::to_string(now_ms()) + "ms " + what);
  common::logger("siprec-src")->debug("call {} [{}]: {}", c.index, c.call_id, what);
}

common::Status CallEngine::run() {
  // TARGET may list several URIs separated by commas (a static recorder list, as SBCs allow):
  // each is resolved in turn and the targets are tried in that order.
  std::string uri;
  sip::ResolverOptions ro;
  ro.servers = opt_.dns_servers;
  ro.timeout_ms = opt_.dns_timeout_ms;
  ro.seed = static_cast<unsigned>(opt_.seed);
  std::size_t pos = 0;
  while (pos <= opt_.target.size()) {
    std::size_t comma = opt_.target.find(',', pos);
    if (comma == std::string::npos) comma = opt_.target.size();
    std::string one = opt_.target.substr(pos, comma - pos);
    pos = comma + 1;
    if (one.empty()) continue;
    if (!opt_.transport.empty() && one.find(";transport=") == std::string::npos)
      one += ";transport=" + opt_.transport;
    auto targets = sip::resolve_targets(one, ro);
    if (!targets) return targets.error();
    targets_.insert(targets_.end(), targets->begin(), targets->end());
    uri += (uri.empty() ? "" : ",") + one;
  }
  if (targets_.empty()) return common::make_error("target.none", "no target for " + opt_.target);
  target_down_until_.assign(targets_.size(), -1);
  if (!opt_.quiet) {
    std::string list;
    for (const auto& t : targets_) list += (list.empty() ? "" : ", ") + t.to_string();
    std::printf("siprec-src: %s -> %s\n", uri.c_str(), list.c_str());
  }
  records_.resize(opt_.calls);
  calls_.resize(opt_.calls);
  // Bounded run: launch time + one call + failover allowance. A call holds its place under
  // --concurrency for its duration, its setup (every target at worst), the streams' stop (≤ 2 s)
  // and the BYE transaction; the launch adds the rate's spacing and those waits.
  double transaction_s = opt_.invite_timeout_ms / 1000.0 + 1;
  double hold_s = opt_.duration_s + transaction_s * static_cast<double>(targets_.size() + 1) + 2;
  double launch_s = launch_time_s(opt_.calls, opt_.rate, opt_.concurrency, hold_s);
  double margin = transaction_s * static_cast<double>(targets_.size() + 2) + 15;
  if (opt_.reestablish) margin *= 2;
  double wall = opt_.max_wall_s > 0 ? opt_.max_wall_s : launch_s + opt_.duration_s + margin;
  wall_limit_ms_ = static_cast<std::int64_t>(wall * 1000);
  t0_us_ = mono_us();
  t0_unix_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch()).count();
  scheduler_ = std::make_unique<RateScheduler>(opt_.rate, 0);
  sender_->start();
  sip_running_ = true;
  ep_->post([this] { tick(); });
  ep_->run();
  sip_running_ = false;
  sender_->stop();
  wall_s_ = static_cast<double>(mono_us() - t0_us_) / 1e6;
  return common::Ok{};
}

void CallEngine::tick() {
  if (stopping_) return;
  std::int64_t now = now_ms();
  if (now >= wall_limit_ms_) {
    wall_hit_ = true;
    stopping_ = true;
    for (auto& c : calls_)
      if (c && c->state != Call::State::kDone) fail(*c, 0, "wall-clock limit reached");
    for (std::size_t i = started_; i < records_.size(); ++i) {
      records_[i].index = i;
      records_[i].status = "failed";
      records_[i].reason = "not started: wall-clock limit reached";
      ++done_;
    }
    started_ = records_.size();
    // Streams report back through the sender; do not wait for them for ever.
    ep_->after(3000, [this] { ep_->stop(); });
    maybe_done();
    return;
  }
  std::size_t places = active_ < opt_.concurrency ? opt_.concurrency - active_ : 0;
  std::size_t n = scheduler_->due(mono_us() - t0_us_, std::min(records_.size() - started_, places));
  while (n-- > 0) start_call(started_++);
  if (done_ < records_.size()) ep_->after(kTickMs, [this] { tick(); });
  maybe_done();
}

std::vector<std::size_t> CallEngine::target_order(const Call& c) const {
  (void)c;
  std::int64_t now = now_ms();
  std::vector<std::size_t> up, down;
  for (std::size_t i = 0; i < targets_.size(); ++i)
    (target_down_until_[i] > now ? down : up).push_back(i);
  // Targets that failed recently are still tried, last, soonest-back first.
  std::stable_sort(down.begin(), down.end(), [this](std::size_t a, std::size_t b) {
    return target_down_until_[a] < target_down_until_[b];
  });
  up.insert(up.end(), down.begin(), down.end());
  return up;
}

void CallEngine::start_call(std::size_t index) {
  auto c = std::make_unique<Call>();
  c->index = index;
  c->sdp_session = common::random_u64() >> 2;
  c->require = !opt_.no_require;
  c->order = target_order(*c);
  auto& rec = records_[index];
  rec.index = index;
  rec.id = make_identity(opt_.dialect, index, common::utc_now_iso8601());
  rec.duration_ms = opt_.duration_ms;
  for (const auto& a : opt_.timeline)
    if (a.kind == ActionKind::kBye) {
      rec.duration_ms = std::min(rec.duration_ms, a.at_ms);
    }
  ++active_;
  Call& ref = *c;
  calls_[index] = std::move(c);
  send_invite(ref);
}

std::string CallEngine::offer(Call& c, bool paused) {
  OfferParams p;
  p.address = opt_.bind;
  p.session_id = c.sdp_session;
  p.version = c.sdp_version;
  p.codec = opt_.codec;
  p.hold_by_zero_address = paused && c.held_by_zero;
  for (int leg = 0; leg < 2; ++leg) {
    p.streams.push_back({sender_->port_for(c.index * 2 + static_cast<std::size_t>(leg)),
                         std::to_string(leg + 1),
                         p.hold_by_zero_address ? "" : paused ? "inactive" : "sendonly", ""});
    if (opt_.srtp) {
      auto& k = c.offer_keys[leg];
      if (!k) {
        auto fresh = media::random_srtp_keys(*opt_.srtp);
        if (fresh) k = std::make_shared<const media::SrtpKeys>(std::move(fresh).value());
      }
      if (k)
        p.streams.back().crypto = "1 " + std::string(media::srtp_suite_name(*opt_.srtp)) + " " +
                                  media::sdes_key_params(*k);
      c.inflight_keys[leg] = k;
    }
  }
  return build_offer(p);
}

std::pair<std::string, std::string> CallEngine::body(Call& c, bool paused, const std::string& md) {
  std::string sdp = offer(c, paused);
  if (md.empty()) return {"application/sdp", sdp};
  return multipart({{"application/sdp", sdp}, {"application/rs-metadata+xml", md}}, kBoundary);
}

void CallEngine::send_invite(Call& c) {
  auto& rec = records_[c.index];
  c.state = Call::State::kInviting;
  ++c.gen;
  c.got_response = false;
  if (c.attempt >= c.order.size()) c.attempt = 0;
  c.target = c.order[c.attempt];
  const sip::Target& t = targets_[c.target];
  sip::OutgoingRequest req;
  std::string hostport = bracket(t.host) + ":" + std::to_string(t.port);
  // RFC 5630 §3.1.1: over TLS the request URI is sips: (TLS on every hop).
  req.request_uri = t.transport == "tls" ? "sips:srs@" + hostport
                                         : "sip:srs@" + hostport + ";transport=" + t.transport;
  req.from = "<sip:src@" + bracket(local_host_) + ">";
  req.to = "<sip:srs@" + hostport + ">";
  std::string hex = common::uuid_v4();
  hex.erase(std::remove(hex.begin(), hex.end(), '-'), hex.end());
  req.call_id = hex + "@" + local_host_;
  c.call_id = req.call_id;
  if (c.require) req.headers.emplace_back("Require", "siprec");
  req.headers.emplace_back("Supported", c.require ? "replaces" : "siprec, replaces");
  req.headers.emplace_back("Allow", kAllow);
  req.headers.emplace_back("Accept", kAccept);
  for (auto& h : dialect_headers(opt_.dialect, rec.id)) req.headers.push_back(std::move(h));
  ++c.sdp_version;
  auto [ct, b] = body(c, c.paused, render_complete(opt_.dialect, rec.id, c.pstate));
  req.content_type = ct;
  req.body = b;
  if (opt_.delayed_offer) {
    // RFC 3261 §13.2.1: no offer in the INVITE; the metadata alone (or nothing, for dialects that
    // send it in headers). The gateway offers the streams of the metadata's labels (1 and 2), and
    // our usual description, sendonly on those labels, is the answer in the ACK.
    std::string md = render_complete(opt_.dialect, rec.id, c.pstate);
    req.content_type = md.empty() ? "" : "application/rs-metadata+xml";
    req.body = md;
    req.ack_content_type = "application/sdp";
    req.ack_body = offer(c, c.paused);
  }
  if (opt_.early_media_ms > 0) set_ack_delay(req, opt_.early_media_ms);
  c.invite_sent_us = mono_us();
  // Noted before the stack sends it: the event's time is never later than the INVITE on the
  // wire (tests bound the recorder's start time by it; a send that takes a few ms on a busy
  // machine made the note later than the recorder's start).
  note(c, std::string(c.reestablishing ? "re-establishing: " : "") + "INVITE to " + t.to_string());
  c.handle = ep_->invite(t, req);
  by_handle_[c.handle] = c.index;
  rec.targets_tried.push_back(t.to_string());
  std::uint32_t gen = c.gen;
  std::size_t idx = c.index;
  // Backstop for a target that never answers (the transaction timeout should come first).
  ep_->after(opt_.invite_timeout_ms + 500, [this, idx, gen] {
    Call* cc = calls_[idx].get();
    if (!cc || cc->gen != gen || cc->state != Call::State::kInviting || cc->got_response) return;
    ep_->cancel(cc->handle);
    by_handle_.erase(cc->handle);
    ep_->release(cc->handle);
    target_down_until_[cc->target] = now_ms() + 5000;
    sip::ClientResponse r;
    r.status = 408;
    r.local = true;
    try_next_target(*cc, 408, "no response from " + targets_[cc->target].to_string(), 0);
  });
}

void CallEngine::on_response(sip::CallHandle handle, const std::string& method,
                             const sip::ClientResponse& r) {
  auto it = by_handle_.find(handle);
  if (it == by_handle_.end()) return;
  Call* c = calls_[it->second].get();
  if (c == nullptr || c->handle != handle) return;
  if (method == "INVITE") {
    if (c->state == Call::State::kInviting) {
      on_invite_response(*c, r);
    } else if (c->reinvite_pending) {
      on_reinvite_response(*c, r);
    }
  } else if (method == "UPDATE") {
    if (c->reinvite_pending) on_reinvite_response(*c, r);
  } else if (method == "OPTIONS") {
    if (r.status < 200) return;
    c->ka_outstanding = false;
    if (r.local || r.status == 481 || r.status == 408)
      gateway_lost(*c, "keepalive OPTIONS answered " + std::to_string(r.status) +
                           (r.local ? " (no response)" : ""));
  } else if (method == "BYE") {
    if (r.status < 200) return;
    note(*c, "BYE answered " + std::to_string(r.status) + (r.local ? " (local)" : ""));
    if (c->state != Call::State::kEnding) return;
    if (!r.local && r.status < 300 && c->session_ok_us >= 0 && c->bye_sent_us >= c->session_ok_us) {
      auto& rec = records_[c->index];
      rec.call_min_ms = (c->bye_sent_us - c->session_ok_us) / 1000;       // rounded down
      rec.call_max_ms = (mono_us() - c->session_invite_us + 999) / 1000;  // rounded up
    }
    // A 481 means the recorder lost the call: a failure, never "ok" (docs/siprec-src.md).
    if (std::string why = bye_failure(r.status, r.local); !why.empty()) {
      fail_ending(*c, r.local ? 0 : r.status, why);
      return;
    }
    finish(*c);
  }
}

void CallEngine::on_invite_response(Call& c, const sip::ClientResponse& r) {
  if (r.status < 200) {
    if (!r.local) c.got_response = true;
    return;
  }
  c.got_response = true;
  if (r.status < 300) {
    on_established(c, r);
  } else {
    on_invite_failed(c, r);
  }
}

void CallEngine::on_established(Call& c, const sip::ClientResponse& r) {
  auto& rec = records_[c.index];
  c.session_ok_us = mono_us();
  c.session_invite_us = c.invite_sent_us;
  double setup = static_cast<double>(c.session_ok_us - c.invite_sent_us) / 1000.0;
  if (!c.established_once) {
    setup_samples_.push_back(setup);
    rec.setup_ms = setup;
    rec.call_id = c.call_id;
  }
  rec.target = targets_[c.target].to_string();
  ++rec.fragments;
  c.state = Call::State::kActive;
  c.reestablishing = false;
  note(c, "200 OK after " + std::to_string(static_cast<int>(setup)) + " ms");
  auto ans = parse_answer(find_sdp(r.content_type, r.body));
  Destination dest[2];
  bool ok = ans.ok();
  for (int leg = 0; ok && leg < 2; ++leg) {
    const AnsweredStream* m = nullptr;
    for (const auto& s : *ans)
      if (s.label == std::to_string(leg + 1)) m = &s;
    if (m == nullptr && static_cast<std::size_t>(leg) < ans->size()) m = &(*ans)[static_cast<std::size_t>(leg)];
    if (m == nullptr || m->port == 0) {
      ok = false;
      break;
    }
    auto d = make_destination(m->address, m->port);
    if (!d) {
      ok = false;
      break;
    }
    dest[leg] = *d;
  }
  if (!ok) {
    c.error_code = 0;
    c.error = "SDP answer without two accepted streams";
    end_call(c);
    return;
  }
  if (std::string why = srtp_answer_problem(*ans); !why.empty()) {
    c.error_code = 0;
    c.error = why;
    end_call(c);
    return;
  }
  bool silent = c.paused || c.held;
  if (!c.streams) {
    if (free_slots_.size() < 2) {
      c.error = "stream table full";
      end_call(c);
      return;
    }
    for (int leg = 0; leg < 2; ++leg) {
      StreamId slot = free_slots_.back();
      free_slots_.pop_back();
      c.slot[leg] = slot;
      std::uint64_t tag = (static_cast<std::uint64_t>(c.index) << (kSlotBits + 1)) |
                          (static_cast<std::uint64_t>(slot) << 1) | static_cast<std::uint64_t>(leg);
      c.keys[leg] = c.inflight_keys[leg];
      sender_->add(&c.slot[leg], tag, audio_[leg].get(), dest[leg], c.index * 2 + static_cast<std::size_t>(leg),
                   opt_.seed * 1000003ULL + c.index * 2 + static_cast<std::uint64_t>(leg), silent,
                   c.keys[leg]);
      ++streams_live_;
    }
    c.streams = true;
  } else {
    for (int leg = 0; leg < 2; ++leg) {
      sender_->set_destination(c.slot[leg], dest[leg]);
      if (c.keys[leg] != c.inflight_keys[leg]) {
        c.keys[leg] = c.inflight_keys[leg];
        sender_->set_keys(c.slot[leg], c.keys[leg]);
      }
      if (!silent) sender_->set_paused(c.slot[leg], false);
    }
  }
  std::size_t idx = c.index;
  if (!c.established_once) {
    c.established_once = true;
    c.answered_ms = now_ms();
    for (std::size_t i = 0; i < opt_.timeline.size(); ++i)
      ep_->after(opt_.timeline[i].at_ms, [this, idx, i] {
        if (Call* cc = calls_[idx].get()) run_action(*cc, i);
      });
    ep_->after(opt_.duration_ms, [this, idx] {
      if (Call* cc = calls_[idx].get()) end_call(*cc);
    });
  }
  if (opt_.keepalive_ms > 0) {
    std::uint32_t gen = c.gen;
    ep_->after(opt_.keepalive_ms, [this, idx, gen] {
      if (Call* cc = calls_[idx].get()) keepalive(*cc, gen);
    });
  }
}

void CallEngine::on_invite_failed(Call& c, const sip::ClientResponse& r) {
  by_handle_.erase(c.handle);
  ep_->release(c.handle);
  note(c, "INVITE answered " + std::to_string(r.status) + " " + r.reason + (r.local ? " (local)" : ""));
  // RFC 7866 §6.1.1 / RFC 3261 §8.1.3.5: a recorder without the siprec extension says 420
  // with Unsupported: siprec; retry once offering it as Supported only.
  if (!r.local && r.status == 420 && c.require && !c.retried_420 && names_siprec(r.header("Unsupported"))) {
    c.require = false;
    c.retried_420 = true;
    send_invite(c);
    return;
  }
  if (r.local || r.status == 503 || r.status == 408) {
    std::uint32_t ra = r.local ? 0 : retry_after_s(r);
    target_down_until_[c.target] = now_ms() + (ra > 0 ? ra * 1000 : 5000);
    try_next_target(c, r.status, failure_key(r) + " from " + targets_[c.target].to_string() +
                                     (r.reason.empty() ? "" : " (" + r.reason + ")"),
                    ra);
    return;
  }
  fail(c, r.status, std::to_string(r.status) + " " + r.reason);
}

void CallEngine::try_next_target(Call& c, int code, const std::string& why, std::uint32_t retry_after) {
  if (c.attempt + 1 < c.order.size()) {
    ++c.attempt;
    send_invite(c);
    return;
  }
  std::int64_t now = now_ms();
  if (retry_after > 0 && c.retries_503 < 1 && !stopping_ &&
      now + retry_after * 1000 + opt_.duration_ms < wall_limit_ms_) {
    ++c.retries_503;
    note(c, "every target refused; retrying after " + std::to_string(retry_after) + " s (Retry-After)");
    std::size_t idx = c.index;
    std::uint32_t gen = ++c.gen;
    ep_->after(retry_after * 1000, [this, idx, gen] {
      Call* cc = calls_[idx].get();
      if (!cc || cc->gen != gen || cc->state == Call::State::kDone) return;
      cc->order = target_order(*cc);
      cc->attempt = 0;
      send_invite(*cc);
    });
    return;
  }
  fail(c, code, (c.reestablishing ? "re-establishing failed: " : "") + why);
}

void CallEngine::run_action(Call& c, std::size_t i) {
  if (c.state == Call::State::kDone || c.state == Call::State::kEnding) return;
  const TimelineAction& a = opt_.timeline[i];
  auto& rec = records_[c.index];
  note(c, std::string(action_name(a.kind)));
  auto set_silent = [&](bool before) {
    bool after = c.paused || c.held;
    if (!before && after) c.silent_since_ms = now_ms();
    if (before && !after && c.silent_since_ms >= 0) {
      rec.silent_ms += static_cast<std::uint32_t>(now_ms() - c.silent_since_ms);
      c.silent_since_ms = -1;
    }
  };
  bool was_silent = c.paused || c.held;
  bool active = c.state == Call::State::kActive;
  switch (a.kind) {
    case ActionKind::kPause:
    case ActionKind::kHoldZero:
      if (c.paused) return;
      c.paused = true;
      c.held_by_zero = a.kind == ActionKind::kHoldZero;
      set_silent(was_silent);
      if (c.streams)
        for (auto s : c.slot) sender_->set_paused(s, true);
      if (active) send_reinvite(c, {}, false);
      break;
    case ActionKind::kResume:
      if (!c.paused) return;
      c.paused = false;
      c.held_by_zero = false;
      c.resume_on_ok = true;
      if (active) send_reinvite(c, {}, false);
      break;
    case ActionKind::kMetadataUpdate:
    case ActionKind::kUpdate:
      c.pstate.supervisor_joined = common::utc_now_iso8601();
      if (active) {
        std::string md = render_join(opt_.dialect, rec.id, *c.pstate.supervisor_joined);
        if (a.kind == ActionKind::kUpdate && md.empty()) break;  // Cisco: nothing to say
        send_reinvite(c, md, a.kind == ActionKind::kUpdate);
      }
      break;
    case ActionKind::kTransfer:
      c.pstate.transferred = common::utc_now_iso8601();
      if (active)
        send_reinvite(c, render_transfer(opt_.dialect, rec.id, *c.pstate.transferred), false,
                      transfer_headers(opt_.dialect, rec.id));
      break;
    case ActionKind::kSsrcChange:
      if (c.streams)
        for (auto s : c.slot) sender_->change_ssrc(s);
      break;
    case ActionKind::kHold:
      if (c.held) return;
      c.held = true;
      set_silent(was_silent);
      if (c.streams)
        for (auto s : c.slot) sender_->set_paused(s, true);
      break;
    case ActionKind::kUnhold:
      if (!c.held) return;
      c.held = false;
      if (!c.paused && c.streams && active)
        for (auto s : c.slot) sender_->set_paused(s, false);
      set_silent(was_silent);
      break;
    case ActionKind::kBye:
      end_call(c);
      break;
    case ActionKind::kRekey:
      // RFC 4568 §7.1.4: new keys in a re-offer; RTP switches to them when the 2xx arrives.
      if (!opt_.srtp || !active) break;
      for (int leg = 0; leg < 2; ++leg) {
        auto fresh = media::random_srtp_keys(*opt_.srtp);
        if (fresh) c.offer_keys[leg] = std::make_shared<const media::SrtpKeys>(std::move(fresh).value());
      }
      send_reinvite(c, {}, false);
      break;
    case ActionKind::kTamper:
      if (opt_.srtp && c.streams)
        for (auto s : c.slot) sender_->tamper(s);
      break;
  }
}

void CallEngine::send_reinvite(Call& c, const std::string& md, bool use_update, sip::HeaderList headers) {
  if (c.reinvite_pending) {
    if (c.signals.size() < 64) c.signals.push_back({md, use_update, std::move(headers)});
    return;
  }
  bool ok = false;
  if (use_update) {
    ok = ep_->update(c.handle, headers, "application/rs-metadata+xml", md);
  } else {
    ++c.sdp_version;
    auto [ct, b] = body(c, c.paused, md);
    ok = ep_->reinvite(c.handle, headers, ct, b);
  }
  if (!ok) {
    gateway_lost(c, "no dialog for re-INVITE");
    return;
  }
  c.reinvite_pending = true;
  std::uint32_t seq = ++c.reinvite_seq;
  std::size_t idx = c.index;
  std::uint32_t gen = c.gen;
  ep_->after(opt_.invite_timeout_ms + 500, [this, idx, gen, seq] {
    Call* cc = calls_[idx].get();
    if (!cc || cc->gen != gen || !cc->reinvite_pending || cc->reinvite_seq != seq) return;
    gateway_lost(*cc, "re-INVITE unanswered");
  });
}

void CallEngine::on_reinvite_response(Call& c, const sip::ClientResponse& r) {
  if (r.status < 200) return;
  c.reinvite_pending = false;
  if (r.status < 300) {
    // Noted with its time: a recorder's pause or hold lies between a re-INVITE's 2xx and the next
    // re-INVITE sent, at most between the two sent and the next 2xx (docs/siprec-src.md).
    note(c, "re-INVITE answered " + std::to_string(r.status));
    // The gateway may have moved a stream (RFC 3264 §8.3.2): follow its new address.
    auto ans = parse_answer(find_sdp(r.content_type, r.body));
    if (ans && c.streams) {
      for (int leg = 0; leg < 2; ++leg)
        for (const auto& s : *ans)
          if (s.label == std::to_string(leg + 1) && s.port != 0)
            if (auto d = make_destination(s.address, s.port)) sender_->set_destination(c.slot[leg], *d);
      // The offer's keys are accepted: encrypt with them from now on (a rekey).
      for (int leg = 0; leg < 2; ++leg)
        if (c.keys[leg] != c.inflight_keys[leg]) {
          c.keys[leg] = c.inflight_keys[leg];
          sender_->set_keys(c.slot[leg], c.keys[leg]);
          note(c, "leg " + std::to_string(leg + 1) + ": SRTP keys changed");
        }
    }
    if (c.resume_on_ok) {
      c.resume_on_ok = false;
      bool was_silent = true;
      if (!c.held && c.streams)
        for (auto s : c.slot) sender_->set_paused(s, false);
      if (was_silent && !c.held && c.silent_since_ms >= 0) {
        records_[c.index].silent_ms += static_cast<std::uint32_t>(now_ms() - c.silent_since_ms);
        c.silent_since_ms = -1;
      }
    }
  } else if (r.local || r.status == 481 || r.status == 408) {
    gateway_lost(c, "re-INVITE answered " + std::to_string(r.status) + (r.local ? " (no response)" : ""));
    return;
  } else {
    for (int leg = 0; leg < 2; ++leg) c.offer_keys[leg] = c.keys[leg];  // refused: keys unchanged
    note(c, "re-INVITE answered " + std::to_string(r.status) + " " + r.reason);
    if (c.error_code == 0) {
      c.error_code = r.status;
      c.error = "re-INVITE answered " + std::to_string(r.status) + " " + r.reason;
    }
  }
  if (!c.signals.empty() && c.state == Call::State::kActive) {
    auto s = c.signals.front();
    c.signals.erase(c.signals.begin());
    send_reinvite(c, s.metadata, s.update, s.headers);
  }
}

std::string CallEngine::srtp_answer_problem(const std::vector<AnsweredStream>& answer) const {
  if (!opt_.srtp) return {};
  for (const auto& s : answer) {
    if (s.port == 0) continue;
    if (s.proto.find("SAVP") == std::string::npos)
      return "SRTP offered, answer has " + s.proto + " (RFC 4568 §7.1.2)";
    if (media::srtp_suite_from_name(s.crypto_suite) != opt_.srtp)
      return "SRTP offered, answer has no a=crypto line with " + std::string(media::srtp_suite_name(*opt_.srtp));
  }
  return {};
}

void CallEngine::keepalive(Call& c, std::uint32_t gen) {
  if (c.gen != gen || c.state != Call::State::kActive) return;
  if (c.ka_outstanding) {
    gateway_lost(c, "keepalive OPTIONS unanswered for " + std::to_string(opt_.keepalive_ms) + " ms");
    return;
  }
  if (!ep_->options_in_dialog(c.handle)) {
    gateway_lost(c, "no dialog for OPTIONS");
    return;
  }
  c.ka_outstanding = true;
  std::size_t idx = c.index;
  ep_->after(opt_.keepalive_ms, [this, idx, gen] {
    if (Call* cc = calls_[idx].get()) keepalive(*cc, gen);
  });
}

void CallEngine::gateway_lost(Call& c, const std::string& why) {
  if (c.state != Call::State::kActive) return;
  note(c, "gateway lost: " + why);
  by_handle_.erase(c.handle);
  ep_->release(c.handle);
  c.ka_outstanding = false;
  c.reinvite_pending = false;
  c.signals.clear();
  target_down_until_[c.target] = now_ms() + 10000;
  if (!opt_.reestablish || stopping_) {
    c.handle = 0;
    fail(c, 0, "gateway lost: " + why);
    return;
  }
  // RFC 7866 §6.2 / DESIGN: a new recording session elsewhere, same communication session
  // identifiers and conversation id; the RTP clock keeps running meanwhile.
  if (c.streams)
    for (auto s : c.slot) sender_->set_paused(s, true);
  c.reestablishing = true;
  c.order = target_order(c);
  c.attempt = 0;
  c.retries_503 = 0;
  c.require = !opt_.no_require;
  send_invite(c);
}

void CallEngine::end_call(Call& c) {
  if (c.state == Call::State::kDone || c.state == Call::State::kEnding) return;
  auto& rec = records_[c.index];
  if (c.silent_since_ms >= 0) {
    rec.silent_ms += static_cast<std::uint32_t>(now_ms() - c.silent_since_ms);
    c.silent_since_ms = -1;
  }
  if (c.state == Call::State::kInviting) {
    // Still (re-)establishing when the call ends.
    ep_->cancel(c.handle);
    by_handle_.erase(c.handle);
    ep_->release(c.handle);
    fail(c, 0, c.reestablishing ? "call ended while re-establishing" : "call ended before answer");
    return;
  }
  c.state = Call::State::kEnding;
  if (c.streams) {
    note(c, "RTP stop");  // the BYE's own event follows the sender's confirmation
    c.bye_after_removals = 2;
    stop_streams(c);
    // The sender acknowledges within a tick (1 ms), or later when it is
    // overloaded and running behind; should that never come, the BYE goes
    // after 2 s anyway.
    std::size_t idx = c.index;
    ep_->after(2000, [this, idx] {
      Call* cc = calls_[idx].get();
      if (cc && cc->bye_after_removals > 0) {
        cc->bye_after_removals = 0;
        send_bye(*cc);
      }
    });
    return;
  }
  send_bye(c);
}

void CallEngine::send_bye(Call& c) {
  if (c.state != Call::State::kEnding) return;
  note(c, "BYE");
  c.bye_sent_us = mono_us();
  if (!ep_->bye(c.handle)) {
    fail_ending(c, 0, "BYE not sent: no dialog");
    return;
  }
  std::size_t idx = c.index;
  ep_->after(opt_.invite_timeout_ms + 1000, [this, idx] {
    Call* cc = calls_[idx].get();
    if (cc && cc->state == Call::State::kEnding) {
      note(*cc, "BYE unanswered");
      fail_ending(*cc, 0, "BYE unanswered: no final answer");
    }
  });
}

void CallEngine::fail(Call& c, int code, const std::string& why) {
  if (c.state == Call::State::kDone) return;
  auto& rec = records_[c.index];
  rec.status = "failed";
  rec.code = code;
  rec.reason = why;
  note(c, "failed: " + why);
  if ((c.state == Call::State::kActive) && c.handle) ep_->bye(c.handle);
  stop_streams(c);
  finish(c);
}

void CallEngine::fail_ending(Call& c, int code, const std::string& why) {
  auto& rec = records_[c.index];
  note(c, "failed: " + why);
  if (rec.status == "pending" && c.error.empty()) {  // else finish() reports the earlier error
    rec.status = "failed";
    rec.code = code;
    rec.reason = why;
  }
  finish(c);
}

void CallEngine::stop_streams(Call& c) {
  if (!c.streams) return;
  for (auto s : c.slot) sender_->remove(s);
  c.streams = false;
}

void CallEngine::finish(Call& c) {
  if (c.state == Call::State::kDone) return;
  auto& rec = records_[c.index];
  stop_streams(c);
  c.state = Call::State::kDone;
  if (rec.status == "pending") {
    if (c.error.empty()) {
      rec.status = "ok";
    } else {
      rec.status = "failed";
      rec.code = c.error_code;
      rec.reason = c.error;
    }
  }
  if (c.handle) {
    by_handle_.erase(c.handle);
    ep_->release(c.handle);
  }
  if (!opt_.quiet) {
    if (rec.status == "ok")
      std::printf("call %llu ok: %s setup %.1f ms via %s\n", static_cast<unsigned long long>(c.index),
                  rec.call_id.c_str(), rec.setup_ms, rec.target.c_str());
    else
      std::printf("call %llu FAILED: %s\n", static_cast<unsigned long long>(c.index), rec.reason.c_str());
    std::fflush(stdout);
  }
  --active_;
  ++done_;
  std::size_t idx = c.index;
  calls_[idx].reset();  // c is gone from here on
  maybe_done();
}

void CallEngine::maybe_done() {
  if (done_ >= records_.size() && streams_live_ == 0 && sip_running_) ep_->stop();
}

void CallEngine::on_request(sip::CallHandle handle, sip::TransactionId tx, const sip::Request& req) {
  auto it = by_handle_.find(handle);
  Call* c = it == by_handle_.end() ? nullptr : calls_[it->second].get();
  sip::Response resp;
  if (c == nullptr) {
    resp.status = 481;
    resp.reason = "Call/Transaction Does Not Exist";
    ep_->reply(tx, resp);
    return;
  }
  if (req.method == "BYE") {
    resp.status = 200;
    resp.reason = "OK";
    ep_->reply(tx, resp);
    std::string reason = req.header("Reason");
    note(*c, "BYE from gateway" + (reason.empty() ? "" : " (" + reason + ")"));
    if (c->state == Call::State::kEnding) {
      finish(*c);
    } else if (c->state == Call::State::kActive && opt_.reestablish && !stopping_) {
      gateway_lost(*c, "BYE from gateway" + (reason.empty() ? "" : " (" + reason + ")"));
    } else {
      c->handle = 0;  // the dialog is over; nothing to BYE
      by_handle_.erase(handle);
      ep_->release(handle);
      fail(*c, 0, "BYE from gateway" + (reason.empty() ? "" : " (" + reason + ")"));
    }
    return;
  }
  resp.status = 200;
  resp.reason = "OK";
  if (req.method == "OPTIONS") {
    resp.headers = {{"Allow", kAllow}, {"Accept", kAccept}, {"Supported", "siprec, replaces"}};
  } else if (req.method == "INVITE") {
    // A re-INVITE from the recorder: answer with our current description.
    resp.content_type = "application/sdp";
    resp.body = offer(*c, c->paused);
  }
  ep_->reply(tx, resp);
}

RunSummary CallEngine::summary() const {
  RunSummary s;
  s.calls = records_.size();
  for (const auto& r : records_) {
    if (r.status == "ok") {
      ++s.ok;
    } else {
      ++s.failed;
      ++s.failures[failure_key(r.code, r.reason)];
    }
  }
  s.setup = summarize(setup_samples_);
  s.rtp_packets = sender_ ? sender_->packets_sent() : 0;
  s.late_ticks = sender_ ? sender_->late_ticks() : 0;
  s.late_packets = sender_ ? sender_->late_packets() : 0;
  s.max_late_ms = sender_ ? sender_->max_late_ms() : 0;
  s.sender_threads = sender_ ? sender_->threads() : 1;
  s.wall_s = wall_s_;
  s.wall_limit_hit = wall_hit_;
  return s;
}

nlohmann::json CallEngine::to_json(const RunSummary& s) const {
  nlohmann::json j;
  j["target"] = opt_.target;
  j["targets"] = nlohmann::json::array();
  for (const auto& t : targets_) j["targets"].push_back(t.to_string());
  j["options"] = {{"calls", opt_.calls},       {"rate", opt_.rate},
                  {"concurrency", opt_.concurrency}, {"duration_ms", opt_.duration_ms},
                  {"codec", opt_.codec_name}, {"dialect", std::string(dialect_name(opt_.dialect))},
                  {"early_media_ms", opt_.early_media_ms}, {"loss", opt_.loss},
                  {"reorder", opt_.reorder}, {"dup", opt_.dup}, {"jitter_ms", opt_.jitter_ms},
                  {"seed", opt_.seed}, {"timeline", opt_.timeline_text},
                  {"reestablish", opt_.reestablish}};
  j["calls"] = s.calls;
  j["ok"] = s.ok;
  j["failed"] = s.failed;
  j["failures"] = s.failures;
  j["setup_ms"] = {{"count", s.setup.count}, {"p50", s.setup.p50}, {"p90", s.setup.p90},
                   {"p99", s.setup.p99},     {"max", s.setup.max},  {"mean", s.setup.mean}};
  j["rtp_packets_sent"] = s.rtp_packets;
  j["sender_late_ticks"] = s.late_ticks;
  j["sender_late_packets"] = s.late_packets;
  j["sender_max_late_ms"] = s.max_late_ms;
  j["sender_threads"] = s.sender_threads;
  j["wall_s"] = s.wall_s;
  j["t0_unix_ms"] = t0_unix_ms_;  // events' times ("<ms>ms ...") count from this instant
  j["wall_limit_hit"] = s.wall_limit_hit;
  j["records"] = nlohmann::json::array();
  for (const auto& r : records_) {
    nlohmann::json c;
    c["index"] = r.index;
    c["call_id"] = r.call_id;
    c["conversation_id"] = r.id.conversation_id;
    c["target"] = r.target;
    c["targets_tried"] = r.targets_tried;
    c["status"] = r.status;
    c["code"] = r.code;
    c["reason"] = r.reason;
    c["setup_ms"] = r.setup_ms;
    c["fragments"] = r.fragments;
    c["duration_ms"] = r.duration_ms;
    c["silent_ms"] = r.silent_ms;
    c["call_ms"] = r.call_max_ms < 0 ? nlohmann::json(nullptr)
                                     : nlohmann::json::array({r.call_min_ms, r.call_max_ms});
    c["caller"] = {{"aor", r.id.caller.aor}, {"tone_hz", opt_.wav_caller.empty() ? opt_.tone_caller : 0.0},
                   {"packets", r.packets[0]}, {"lost_injected", r.lost_injected[0]},
                   {"paused_packets", r.paused_packets[0]}, {"ssrcs", r.ssrcs[0]}};
    c["agent"] = {{"aor", r.id.agent.aor},
                  {"tone_hz", (opt_.wav_agent.empty() && opt_.wav_caller.empty()) ? opt_.tone_agent : 0.0},
                  {"packets", r.packets[1]}, {"lost_injected", r.lost_injected[1]},
                  {"paused_packets", r.paused_packets[1]}, {"ssrcs", r.ssrcs[1]}};
    c["events"] = r.events;
    j["records"].push_back(std::move(c));
  }
  return j;
}

}  // namespace sgw::siprec_src
