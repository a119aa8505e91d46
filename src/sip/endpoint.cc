// sofia-sip NTA implementation of sip::Endpoint. Sofia headers stay in src/sip
// .cc files; everything leaves this one as owning C++ copies.

#include "sip/endpoint.h"

#include <arpa/inet.h>

#include <chrono>
#include <climits>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <thread>

namespace sgw::sip {
struct SofiaEndpoint;
struct TxRecord;
struct DialogRecord;
}  // namespace sgw::sip

#define NTA_AGENT_MAGIC_T sgw::sip::SofiaEndpoint
#define NTA_LEG_MAGIC_T sgw::sip::DialogRecord
#define NTA_INCOMING_MAGIC_T sgw::sip::TxRecord
#define NTA_OUTGOING_MAGIC_T sgw::sip::DialogRecord

#include <sofia-sip/msg_addr.h>
#include <sofia-sip/msg_header.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su.h>
#include <sofia-sip/su_log.h>
#include <sofia-sip/su_wait.h>
#include <sofia-sip/tport.h>

#include "common/logging.h"
#include "common/strings.h"
#include "sip/sofia_headers.h"
#include "sip/sofia_log_tap.h"
#include "sip/sofia_loop.h"
#include "sip/tcp_guard.h"

// sofia's tag macros expand to C casts; they are not ours to restyle.
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wcast-align"
#pragma GCC diagnostic ignored "-Wzero-as-null-pointer-constant"

extern "C" su_log_t tport_log[];
extern "C" su_log_t nta_log[];

namespace sgw::sip {

struct TxRecord {
  SofiaEndpoint* endpoint = nullptr;
  TransactionId id = 0;
  nta_incoming_t* irq = nullptr;
  bool invite = false;
  DialogId dialog = 0;  // for re-INVITE inside a dialog: ACK goes there
};

struct DialogRecord {
  SofiaEndpoint* endpoint = nullptr;
  DialogId id = 0;
  nta_leg_t* leg = nullptr;
  nta_outgoing_t* bye = nullptr;
  // The connection the dialog was created over (a reference): while we hold
  // it, TPTAG_IDLE does not close that connection under a live call.
  tport_t* tport = nullptr;
  nta_outgoing_t* refresh = nullptr;  // our UPDATE (session refresh), while pending
  // Created over TLS (through the TlsFrontend): our in-dialog requests go back
  // over that same connection (tport), the only way to the peer over TLS.
  bool tls = false;
};

namespace {

// Header classes whose parse errors make a request unusable: everything but
// the response-only and proxy-only groups, which is what nta refuses by
// default. nta itself is told to refuse nothing (NTATAG_BAD_REQ_MASK(0)): it
// would answer 400 and then half-close a TCP connection, and with it every
// other dialog on that connection (or, for an ACK, close it at once).
constexpr unsigned kBadRequestMask = ~(static_cast<unsigned>(sip_mask_response) |
                                       static_cast<unsigned>(sip_mask_proxy));

using detail::printable;

}  // namespace

struct SofiaEndpoint final : public Endpoint {
  EndpointOptions options;
  EndpointListener* listener = nullptr;  // not owned; outlives the endpoint
  std::unique_ptr<detail::SofiaLoop> loop;  // root, post queue, timers; destroyed last
  nta_agent_t* agent = nullptr;
  nta_leg_t* default_leg = nullptr;
  DialogRecord default_record;  // magic of the default leg (out-of-dialog requests)
  std::vector<std::string> bound;
  std::unique_ptr<detail::TcpGuard> tcp_guard;
  // Requests nta refuses by itself (no Via/From/To/Call-ID/CSeq): logged and counted.
  std::unique_ptr<detail::SofiaLogTap> log_tap;

  void on_stack_refusal(const detail::StackRefusal& r) {
    if (options.malformed_requests) options.malformed_requests->inc();
    log->warn("malformed {} from {}: {}; {}", r.method.empty() ? "request" : r.method, r.peer,
              r.problem, r.outcome);
    Request req;
    req.method = r.method;
    listener->on_malformed(req, r.outcome.rfind("answered 400", 0) == 0 ? 400 : 0);
  }
  // SIP over TLS: the frontend and the private TCP listener it relays to.
  std::unique_ptr<TlsFrontend> tls_frontend;
  tport_t* tls_backend = nullptr;  // primary tport of the backend listener

  // SIP thread: one TcpGuard pass a second.
  void guard_tcp() {
    tcp_guard->sweep(std::chrono::steady_clock::now());
    loop->after(1000, [this] { guard_tcp(); });
  }

  // A complete message arrived (irq's, or msg's when irq is null): on a
  // connection, the TcpGuard's first-byte clock stops.
  void note_complete(nta_incoming_t* irq, msg_t* msg) {
    if (!tcp_guard || !tcp_guard->enabled()) return;
    tport_t* tp = nta_incoming_transport(agent, irq, msg);
    if (tp == nullptr) return;
    tp_name_t const* tpn = tport_is_secondary(tp) && tport_is_stream(tp) ? tport_name(tp) : nullptr;
    if (tpn && tpn->tpn_host && tpn->tpn_port) {
      std::string host = tpn->tpn_host;
      if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
      tcp_guard->message_received(host + ":" + tpn->tpn_port);
    }
    tport_unref(tp);
  }

  std::uint64_t next_id = 1;
  std::map<TransactionId, std::unique_ptr<TxRecord>> txs;
  std::map<DialogId, std::unique_ptr<DialogRecord>> dialogs;
  std::shared_ptr<spdlog::logger> log = common::logger("sip");

  ~SofiaEndpoint() override {
    if (loop) loop->obtain();
    for (auto& [id, tx] : txs)
      if (tx->irq) nta_incoming_destroy(tx->irq);
    txs.clear();
    for (auto& [id, d] : dialogs) {
      if (d->bye) nta_outgoing_destroy(d->bye);
      if (d->refresh) nta_outgoing_destroy(d->refresh);
      if (d->leg) nta_leg_destroy(d->leg);
      if (d->tport) tport_unref(d->tport);
    }
    dialogs.clear();
    if (default_leg) nta_leg_destroy(default_leg);
    if (agent) nta_agent_destroy(agent);
    if (tls_frontend) tls_frontend->stop();
  }

  // The TLS connection behind a request that came through the frontend;
  // nullopt for UDP/TCP. A connection to the backend that the frontend does
  // not know (a local process bypassing TLS) gives a peer that is not allowed.
  std::optional<TlsPeer> tls_peer_of(tport_t* tp) {
    if (tls_frontend == nullptr || tp == nullptr || tport_parent(tp) != tls_backend) return std::nullopt;
    tp_name_t const* tpn = tport_name(tp);
    int port = tpn && tpn->tpn_port ? std::atoi(tpn->tpn_port) : 0;
    if (auto p = tls_frontend->peer(static_cast<std::uint16_t>(port))) return p;
    TlsPeer unknown;
    unknown.peer = "tcp:127.0.0.1:" + std::to_string(port) + " (not through the TLS listener)";
    unknown.allowed = false;
    return unknown;
  }

  std::optional<TlsPeer> tls_peer_of(nta_incoming_t* irq, msg_t* msg) {
    if (tls_frontend == nullptr) return std::nullopt;
    tport_t* tp = nta_incoming_transport(agent, irq, msg);
    auto p = tls_peer_of(tp);
    if (tp) tport_unref(tp);
    return p;
  }

  // A request over TLS from a peer whose certificate subject is not allowed
  // (tls.allowed_subjects): answered 403 here and counted; true if so. The
  // frontend logged the peer once when its connection was established.
  bool forbid_tls(nta_incoming_t* irq, sip_t const* sip) {
    if (tls_frontend == nullptr) return false;
    msg_t* msg = nta_incoming_getrequest(irq);
    auto p = tls_peer_of(irq, msg);
    if (msg) msg_destroy(msg);
    if (!p || p->allowed) return false;
    if (options.tls_forbidden) options.tls_forbidden->inc();
    log->debug("403 to {} from TLS peer {} (subject '{}')",
               sip->sip_request ? sip->sip_request->rq_method_name : "?", p->peer,
               printable(p->subject, 120));
    if (sip->sip_request && sip->sip_request->rq_method == sip_method_ack) return true;
    nta_incoming_treply(irq, 403, "Forbidden (TLS client certificate subject not allowed)", TAG_END());
    nta_incoming_destroy(irq);
    return true;
  }

  // --- request conversion -------------------------------------------------
  Request to_request(nta_incoming_t* irq, msg_t* msg, sip_t const* sip) {
    Request r = detail::request_from_sip(sip);
    std::string tls_source;  // over TLS, sofia saw the frontend (127.0.0.1): the real peer
    if (tport_t* tp = nta_incoming_transport(agent, irq, msg)) {
      // A TCP request arrives on an accepted connection whose name is the
      // peer's; the listening (primary) transport names our address.
      tport_t* named = tport_parent(tp) ? tport_parent(tp) : tp;
      if (auto p = tls_peer_of(tp)) {
        // Through the TLS frontend: the listen address the peer connected to.
        r.transport = "tls";
        r.local_host = p->listen_host;
        r.local_port = p->listen_port;
        tls_source = p->address;
      } else if (tp_name_t const* tpn = tport_name(named)) {
        if (tpn->tpn_proto) r.transport = tpn->tpn_proto;
        if (tpn->tpn_host) r.local_host = tpn->tpn_host;
        if (tpn->tpn_port) r.local_port = tpn->tpn_port;
      }
      tport_unref(tp);
    }
    r.source_address = tls_source.empty() ? source_address_of(msg) : tls_source;
    return r;
  }

  // The sender's address of a received message (tport records it on each).
  static std::string source_address_of(msg_t* msg) {
    su_sockaddr_t su{};
    socklen_t len = sizeof su;
    if (msg == nullptr || msg_get_address(msg, &su, &len) < 0) return {};
    char buf[INET6_ADDRSTRLEN] = {};
    if (su.su_family == AF_INET && inet_ntop(AF_INET, &su.su_sin.sin_addr, buf, sizeof buf)) return buf;
    if (su.su_family == AF_INET6 && inet_ntop(AF_INET6, &su.su_sin6.sin6_addr, buf, sizeof buf)) return buf;
    return {};
  }

  Request request_of(nta_incoming_t* irq, sip_t const* sip) {
    msg_t* msg = nta_incoming_getrequest(irq);
    Request r = to_request(irq, msg, sip);
    if (msg) msg_destroy(msg);
    return r;
  }

  // "tcp:192.0.2.1:5060": where a request came from, for the log.
  std::string peer_of(nta_incoming_t* irq, msg_t* msg) {
    std::string out = "?";
    if (tport_t* tp = nta_incoming_transport(agent, irq, msg)) {
      if (auto p = tls_peer_of(tp)) {
        out = "tls:" + p->peer;
      } else if (tp_name_t const* tpn = tport_name(tp)) {
        out = std::string(tpn->tpn_proto ? tpn->tpn_proto : "?") + ":" +
              (tpn->tpn_host ? tpn->tpn_host : "?") + ":" + (tpn->tpn_port ? tpn->tpn_port : "?");
      }
      tport_unref(tp);
    }
    return out;
  }

  // The sender as nta saw it on the top Via (received=, rport=), for requests
  // that arrive without a transaction (an ACK to a dialog).
  static std::string peer_of_via(sip_via_t const* v) {
    if (v == nullptr) return "?";
    char const* proto = v->v_protocol ? std::strrchr(v->v_protocol, '/') : nullptr;
    std::string out = proto ? common::to_lower(proto + 1) : std::string("?");
    char const* host = v->v_received ? v->v_received : v->v_host;
    char const* port = v->v_rport && *v->v_rport ? v->v_rport : v->v_port;
    return out + ":" + (host ? host : "?") + ":" + (port ? port : "5060");
  }

  // A request with a header it depends on that did not parse: logged with its
  // peer and counted here, once. Returns the status to answer with (400, or 0
  // for an ACK, which cannot be answered and is dropped), or nullopt when the
  // request is usable. The connection stays open either way.
  // used_anyway: an ACK that nta already matched to its INVITE transaction
  // (which ends with it); it is logged and counted but still delivered.
  std::optional<int> check_malformed(nta_incoming_t* irq, sip_t const* sip,
                                     bool used_anyway = false) {
    if (sip->sip_error == nullptr) return std::nullopt;
    msg_t* msg = irq ? nta_incoming_getrequest(irq) : nullptr;
    unsigned errors = msg ? msg_extract_errors(msg) : ~0u;
    if ((errors & kBadRequestMask) == 0) {
      if (msg) msg_destroy(msg);
      return std::nullopt;
    }
    std::string bad;
    // The error list also holds surplus copies of single headers (a second
    // Call-ID), which keep their own class: only sip_error_class has er_name.
    for (auto const* h = reinterpret_cast<sip_header_t const*>(sip->sip_error); h != nullptr;
         h = h->sh_next) {
      char const* name = h->sh_class == sip_error_class ? h->sh_error->er_name
                                                        : h->sh_class->hc_name;
      if (name && *name) {
        bad = name;
        break;
      }
    }
    Request req = detail::request_from_sip(sip);
    std::string peer = irq ? peer_of(irq, msg) : "?";
    if (peer == "?") peer = peer_of_via(sip->sip_via);  // an ACK has no transport of its own
    if (msg) msg_destroy(msg);
    bool ack = sip->sip_request && sip->sip_request->rq_method == sip_method_ack;
    int status = ack ? 0 : 400;
    if (options.malformed_requests) options.malformed_requests->inc();
    log->warn("malformed {} from {} (Call-ID {}): bad {} header; {}", req.method, peer,
              printable(req.call_id, 120), bad.empty() ? "?" : printable(bad, 60),
              used_anyway ? "used as the ACK" : ack ? "dropped" : "answered 400, connection kept");
    if (!ack && irq) {
      std::string phrase = bad.empty() ? "Bad Request" : "Bad " + printable(bad, 60) + " Header";
      nta_incoming_treply(irq, 400, phrase.c_str(), TAG_END());
      nta_incoming_destroy(irq);  // nta keeps it for retransmissions
    }
    listener->on_malformed(req, status);
    return status;
  }

  TxRecord* new_tx(nta_incoming_t* irq, bool invite, DialogId dialog) {
    auto rec = std::make_unique<TxRecord>();
    rec->endpoint = this;
    rec->id = next_id++;
    rec->irq = irq;
    rec->invite = invite;
    rec->dialog = dialog;
    TxRecord* p = rec.get();
    txs.emplace(p->id, std::move(rec));
    if (invite) nta_incoming_bind(irq, &SofiaEndpoint::on_ack_cancel, p);
    return p;
  }

  void drop_tx(TransactionId id) {
    auto it = txs.find(id);
    if (it == txs.end()) return;
    if (it->second->irq) nta_incoming_destroy(it->second->irq);
    txs.erase(it);
  }

  // --- sofia callbacks ----------------------------------------------------
  static int on_default_request(DialogRecord* d, nta_leg_t* /*leg*/, nta_incoming_t* irq,
                                sip_t const* sip) {
    SofiaEndpoint* self = d->endpoint;
    self->note_complete(irq, nullptr);
    if (sip == nullptr || sip->sip_request == nullptr) return 500;
    if (sip->sip_request->rq_method == sip_method_ack) return 0;  // stray ACK: nothing to do
    if (sip->sip_request->rq_method == sip_method_cancel) return 481;
    if (self->check_malformed(irq, sip)) return 0;  // answered (or an ACK dropped)
    if (self->forbid_tls(irq, sip)) return 0;
    // RFC 3261 §12.2.2: a request with a To tag that matches no dialog of ours.
    if (sip->sip_to && sip->sip_to->a_tag) return 481;
    bool invite = sip->sip_request->rq_method == sip_method_invite;
    TxRecord* tx = self->new_tx(irq, invite, 0);
    Request req = self->request_of(irq, sip);
    self->listener->on_request(tx->id, req);
    return 0;
  }

  static int on_leg_request(DialogRecord* d, nta_leg_t* /*leg*/, nta_incoming_t* irq,
                            sip_t const* sip) {
    SofiaEndpoint* self = d->endpoint;
    self->note_complete(irq, nullptr);
    if (sip == nullptr || sip->sip_request == nullptr) return 500;
    auto method = sip->sip_request->rq_method;
    if (self->check_malformed(irq, sip)) return 0;  // answered (or an ACK dropped)
    if (method != sip_method_ack && self->forbid_tls(irq, sip)) return 0;
    if (method == sip_method_ack) {
      self->listener->on_ack(d->id, detail::request_from_sip(sip));
      return 0;
    }
    if (method == sip_method_cancel) return 481;
    TxRecord* tx = self->new_tx(irq, method == sip_method_invite, d->id);
    Request req = self->request_of(irq, sip);
    self->listener->on_dialog_request(d->id, tx->id, req);
    return 0;
  }

  static int on_ack_cancel(TxRecord* tx, nta_incoming_t* irq, sip_t const* sip) {
    SofiaEndpoint* self = tx->endpoint;
    TransactionId id = tx->id;
    DialogId dialog = tx->dialog;
    bool cancelled = sip && sip->sip_request && sip->sip_request->rq_method == sip_method_cancel;
    bool ack = sip && sip->sip_request && sip->sip_request->rq_method == sip_method_ack;
    if (ack || cancelled) self->note_complete(irq, nullptr);
    if (ack) self->check_malformed(nullptr, sip, true);
    // Copied before the transaction (and the message sip points into) goes.
    std::optional<Request> ack_request;
    if (ack && dialog) ack_request = detail::request_from_sip(sip);
    if (cancelled && nta_incoming_status(irq) < 200)
      nta_incoming_treply(irq, SIP_487_REQUEST_TERMINATED, TAG_END());
    self->drop_tx(id);  // tx is gone from here on
    if (cancelled) self->listener->on_cancelled(id);
    else if (ack_request) self->listener->on_ack(dialog, *ack_request);
    // nta calls with no message when timer H fires: our 2xx was never ACKed.
    else if (sip == nullptr && dialog) self->listener->on_ack_timeout(dialog);
    return 0;
  }

  static int on_refresh_response(DialogRecord* d, nta_outgoing_t* orq, sip_t const* sip) {
    SofiaEndpoint* self = d->endpoint;
    if (sip != nullptr) {
      msg_t* response = nta_outgoing_getresponse(orq);
      self->note_complete(nullptr, response);
      if (response) msg_destroy(response);
    }
    int status = sip && sip->sip_status ? sip->sip_status->st_status : nta_outgoing_status(orq);
    if (status < 200) return 0;
    nta_outgoing_destroy(d->refresh);
    d->refresh = nullptr;
    self->listener->on_refresh_result(d->id, status);
    return 0;
  }

  static int on_bye_response(DialogRecord* d, nta_outgoing_t* orq, sip_t const* sip) {
    SofiaEndpoint* self = d->endpoint;
    if (sip != nullptr) {
      msg_t* response = nta_outgoing_getresponse(orq);
      self->note_complete(nullptr, response);
      if (response) msg_destroy(response);
    }
    int status = sip && sip->sip_status ? sip->sip_status->st_status : nta_outgoing_status(orq);
    if (status < 200) return 0;
    DialogId id = d->id;
    self->release_dialog(id);
    self->listener->on_bye_result(id, status);
    return 0;
  }

  // --- Endpoint ------------------------------------------------------------
  void reply_irq(nta_incoming_t* irq, const Response& r) {
    std::string extra = detail::build_headers(r.headers);
    const char* reason = r.reason.empty() ? nullptr : r.reason.c_str();
    if (r.content_type.empty()) {
      nta_incoming_treply(irq, r.status, reason,
                          TAG_IF(!extra.empty(), SIPTAG_HEADER_STR(extra.c_str())), TAG_END());
    } else {
      nta_incoming_treply(irq, r.status, reason,
                          TAG_IF(!extra.empty(), SIPTAG_HEADER_STR(extra.c_str())),
                          SIPTAG_CONTENT_TYPE_STR(r.content_type.c_str()),
                          SIPTAG_PAYLOAD_STR(r.body.c_str()), TAG_END());
    }
  }

  void reply(TransactionId tx_id, const Response& r) override {
    auto it = txs.find(tx_id);
    if (it == txs.end() || it->second->irq == nullptr) return;
    TxRecord* tx = it->second.get();
    reply_irq(tx->irq, r);
    if (r.status >= 200) {
      // A 2xx to a re-INVITE waits for its ACK (delivered via on_ack_cancel);
      // everything else is finished: nta keeps retransmitting on its own.
      if (!(tx->invite && r.status < 300 && tx->dialog != 0)) drop_tx(tx_id);
    }
  }

  DialogId accept_invite(TransactionId tx_id, const Response& r) override {
    auto it = txs.find(tx_id);
    if (it == txs.end() || it->second->irq == nullptr) return 0;
    TxRecord* tx = it->second.get();
    msg_t* msg = nta_incoming_getrequest(tx->irq);
    sip_t const* sip = msg ? sip_object(msg) : nullptr;
    if (sip == nullptr) {
      if (msg) msg_destroy(msg);
      return 0;
    }
    auto d = std::make_unique<DialogRecord>();
    d->endpoint = this;
    d->id = next_id++;
    // RFC 3261 §12.1.1: the UAS's local URI is the To, the remote is the From.
    d->leg = nta_leg_tcreate(agent, &SofiaEndpoint::on_leg_request, d.get(),
                             SIPTAG_CALL_ID(sip->sip_call_id), SIPTAG_FROM(sip->sip_to),
                             SIPTAG_TO(sip->sip_from), SIPTAG_CSEQ(sip->sip_cseq), TAG_END());
    if (d->leg == nullptr) {
      msg_destroy(msg);
      return 0;
    }
    nta_leg_tag(d->leg, nullptr);
    nta_leg_server_route(d->leg, sip->sip_record_route, sip->sip_contact);
    nta_incoming_tag(tx->irq, nta_leg_get_tag(d->leg));
    if (tport_t* tp = nta_incoming_transport(agent, tx->irq, msg)) {
      d->tls = tls_peer_of(tp).has_value();
      if (tport_is_secondary(tp)) d->tport = tp;  // a connection: keep it while the dialog lives
      else tport_unref(tp);
    }
    msg_destroy(msg);
    tx->dialog = d->id;
    DialogId id = d->id;
    dialogs.emplace(id, std::move(d));
    reply_irq(tx->irq, r);  // the irq stays until the ACK (on_ack_cancel)
    return id;
  }

  // A request in dialog d with extra headers; its responses go to cb.
  static nta_outgoing_t* request_in_dialog(DialogRecord* d, nta_response_f* cb, sip_method_t method,
                                           const char* name, const HeaderList& extra_headers) {
    std::string extra = detail::build_headers(extra_headers);
    return nta_outgoing_tcreate(d->leg, cb, d, nullptr, method, name, nullptr,
                                TAG_IF(d->tls && d->tport, NTATAG_TPORT(d->tport)),
                                TAG_IF(!extra.empty(), SIPTAG_HEADER_STR(extra.c_str())), TAG_END());
  }

  void send_bye(DialogId id, const HeaderList& extra_headers) override {
    auto it = dialogs.find(id);
    if (it == dialogs.end() || it->second->bye) return;
    DialogRecord* d = it->second.get();
    d->bye = request_in_dialog(d, &SofiaEndpoint::on_bye_response, SIP_METHOD_BYE, extra_headers);
    if (d->bye == nullptr) {
      log->warn("could not send BYE in dialog {}", id);
      release_dialog(id);
      listener->on_bye_result(id, 500);
    }
  }

  bool send_refresh(DialogId id, const HeaderList& extra_headers) override {
    auto it = dialogs.find(id);
    if (it == dialogs.end() || it->second->bye || it->second->refresh) return false;
    DialogRecord* d = it->second.get();
    d->refresh = request_in_dialog(d, &SofiaEndpoint::on_refresh_response, SIP_METHOD_UPDATE, extra_headers);
    return d->refresh != nullptr;
  }

  void release_dialog(DialogId id) override {
    auto it = dialogs.find(id);
    if (it == dialogs.end()) return;
    if (it->second->refresh) nta_outgoing_destroy(it->second->refresh);
    if (it->second->bye) nta_outgoing_destroy(it->second->bye);
    if (it->second->leg) nta_leg_destroy(it->second->leg);
    if (it->second->tport) tport_unref(it->second->tport);
    dialogs.erase(it);
  }

  void run() override {
    if (log_tap) log_tap->set_thread(std::this_thread::get_id());
    loop->run();
  }
  void stop() override { loop->stop(); }
  bool post(std::function<void()> fn) override { return loop->post(std::move(fn)); }
  void after(std::uint32_t delay_ms, std::function<void()> fn) override {
    loop->after(delay_ms, std::move(fn));
  }

  std::vector<std::string> bound_addresses() const override { return bound; }

  common::Status reload_tls() override {
    if (tls_frontend == nullptr) return common::Ok{};
    return tls_frontend->reload();
  }

  // The private TCP listener on 127.0.0.1 (a kernel-chosen port) that the TLS
  // frontend relays to; its idle and incomplete-message timers are those of TCP.
  common::Status add_tls_backend(unsigned idle, unsigned incomplete) {
    if (nta_agent_add_tport(agent, URL_STRING_MAKE("sip:127.0.0.1:0;transport=tcp"), TPTAG_IDLE(idle),
                            TPTAG_TIMEOUT(incomplete), TAG_END()) < 0)
      return common::make_error("sip.listen", std::string("cannot create the TLS backend listener: ") +
                                                  std::strerror(errno));
    std::set<std::string> configured;
    for (const auto& l : options.listen) configured.insert(std::to_string(l.port));
    for (tport_t* tp = tport_primaries(nta_agent_tports(agent)); tp; tp = tport_next(tp)) {
      tp_name_t const* tpn = tport_name(tp);
      if (tpn && tpn->tpn_proto && std::strcmp(tpn->tpn_proto, "tcp") == 0 && tpn->tpn_host &&
          std::strcmp(tpn->tpn_host, "127.0.0.1") == 0 && tpn->tpn_port &&
          configured.count(tpn->tpn_port) == 0)
        tls_backend = tp;
    }
    if (tls_backend == nullptr) return common::make_error("sip.listen", "TLS backend listener not found");
    return common::Ok{};
  }
};

common::Result<std::unique_ptr<Endpoint>> Endpoint::create(const EndpointOptions& options,
                                                           EndpointListener* listener) {
  auto loop = detail::SofiaLoop::create("sip.init");
  if (!loop) return loop.error();
  // sofia logs to stderr at its own levels; keep it quiet unless asked.
  su_log_set_level(nullptr, 0);
  su_log_set_level(tport_log, 0);
  su_log_set_level(nta_log, 0);
  auto ep = std::make_unique<SofiaEndpoint>();
  ep->options = options;
  ep->listener = listener;
  ep->loop = std::move(loop).value();

  ep->agent = nta_agent_create(ep->loop->root(), reinterpret_cast<url_string_t const*>(-1), nullptr,
                               ep.get(), NTATAG_UA(1), NTATAG_MERGE_482(0),
                               NTATAG_MAXSIZE(options.max_message_bytes),
                               NTATAG_BAD_REQ_MASK(0),
                               NTATAG_UDP_MTU(65535), NTATAG_SERVER_RPORT(1), TAG_END());
  if (ep->agent == nullptr) return common::make_error("sip.init", "nta_agent_create failed");
  std::vector<TlsListen> tls_listen;
  for (const auto& l : options.listen) {
    if (l.transport == "tls") {
      tls_listen.push_back({l.address, l.port});
      ep->bound.emplace_back();  // filled in below, in configuration order
      continue;
    }
    bool v6 = l.address.find(':') != std::string::npos;
    std::string host = v6 ? "[" + l.address + "]" : l.address;
    std::string url = "sip:" + host + ":" + std::to_string(l.port) + ";transport=" + l.transport;
    std::string name = l.transport + ":" + host + ":" + std::to_string(l.port);
    // UINT_MAX is sofia's "never" for both timers (milliseconds).
    unsigned idle = options.tcp_idle_timeout_ms ? options.tcp_idle_timeout_ms : UINT_MAX;
    unsigned incomplete = options.tcp_message_timeout_ms ? options.tcp_message_timeout_ms : UINT_MAX;
    if (nta_agent_add_tport(ep->agent, URL_STRING_MAKE(url.c_str()),
                            TPTAG_UDP_RMEM(options.udp_receive_buffer_bytes),
                            TAG_IF(l.transport != "udp", TPTAG_IDLE(idle)),
                            TAG_IF(l.transport != "udp", TPTAG_TIMEOUT(incomplete)),
                            TAG_END()) < 0) {
      return common::make_error("sip.listen",
                                "cannot listen on " + name + ": " + std::strerror(errno));
    }
    ep->bound.push_back(name);
  }
  if (!tls_listen.empty()) {
    unsigned idle = options.tcp_idle_timeout_ms ? options.tcp_idle_timeout_ms : UINT_MAX;
    unsigned incomplete = options.tcp_message_timeout_ms ? options.tcp_message_timeout_ms : UINT_MAX;
    if (auto st = ep->add_tls_backend(idle, incomplete); !st) return st.error();
    tp_name_t const* tpn = tport_name(ep->tls_backend);
    auto frontend = TlsFrontend::create(options.tls, tls_listen,
                                        static_cast<std::uint16_t>(std::atoi(tpn->tpn_port)),
                                        options.tls_counters);
    if (!frontend) return frontend.error();
    ep->tls_frontend = std::move(frontend).value();
    auto names = ep->tls_frontend->bound_addresses();
    std::size_t next = 0;
    for (auto& b : ep->bound)
      if (b.empty() && next < names.size()) b = names[next++];
    ep->tls_frontend->start();
  }
  detail::TcpGuardOptions guard;
  for (const auto& l : options.listen)
    if (l.transport == "tcp") guard.ports.insert(l.port);
  guard.silent_timeout = std::chrono::milliseconds(options.tcp_idle_timeout_ms);
  guard.max_per_source = options.max_connections_per_source;
  guard.message_timeout = std::chrono::milliseconds(options.tcp_message_timeout_ms);
  guard.closed = options.connections_closed;
  ep->tcp_guard = std::make_unique<detail::TcpGuard>(std::move(guard));
  if (ep->tcp_guard->enabled()) {
    SofiaEndpoint* raw = ep.get();
    ep->loop->post([raw] { raw->guard_tcp(); });
  }
  {
    SofiaEndpoint* raw = ep.get();
    ep->log_tap = std::make_unique<detail::SofiaLogTap>(
        [raw](const detail::StackRefusal& r) { raw->on_stack_refusal(r); },
        [raw](std::function<void()> fn) { raw->loop->after(0, std::move(fn)); });
    ep->log_tap->set_thread(std::this_thread::get_id());
  }
  ep->default_record.endpoint = ep.get();
  ep->default_leg = nta_leg_tcreate(ep->agent, &SofiaEndpoint::on_default_request,
                                    &ep->default_record,
                                    NTATAG_NO_DIALOG(1), TAG_END());
  if (ep->default_leg == nullptr) return common::make_error("sip.init", "default leg failed");
  ep->loop->release();
  return std::unique_ptr<Endpoint>(std::move(ep));
}

}  // namespace sgw::sip
