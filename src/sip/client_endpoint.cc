// sofia-sip NTA implementation of sip::ClientEndpoint (the UAC used by
// siprec-src). Like endpoint.cc, this file is the only place the client
// touches sofia; everything leaves it as owning C++ copies.
//
// Ownership: SofiaClient owns every record (calls, client transactions,
// server transactions, timers) in maps keyed by handle; sofia objects carry
// plain pointers to those records as their "magic". A record is erased only
// after its sofia object was destroyed, so sofia never calls back into freed
// memory (nta_outgoing_destroy() rebinds the callback to nta's own default).

#include "sip/client_endpoint.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <unordered_map>

namespace sgw::sip {
struct SofiaClient;
struct ClientCall;
struct ClientOrq;
struct ClientTx;
}  // namespace sgw::sip

#define NTA_AGENT_MAGIC_T sgw::sip::SofiaClient
#define NTA_LEG_MAGIC_T sgw::sip::ClientCall
#define NTA_INCOMING_MAGIC_T sgw::sip::ClientTx
#define NTA_OUTGOING_MAGIC_T sgw::sip::ClientOrq

#include <sofia-sip/msg_header.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/nta_stateless.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su.h>
#include <sofia-sip/su_log.h>
#include <sofia-sip/su_wait.h>
#include <sofia-sip/tport.h>
#include <sofia-sip/tport_tag.h>

#include "common/logging.h"
#include "common/strings.h"
#include "sip/sofia_headers.h"
#include "sip/sofia_loop.h"

// sofia's tag macros expand to C casts; they are not ours to restyle.
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wcast-align"
#pragma GCC diagnostic ignored "-Wzero-as-null-pointer-constant"

extern "C" su_log_t tport_log[];
extern "C" su_log_t nta_log[];

namespace sgw::sip {

std::string Target::to_string() const {
  return transport + ":" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
         std::to_string(port);
}

std::string ClientResponse::header(std::string_view name) const {
  for (const auto& [n, v] : headers)
    if (common::iequals(n, name)) return v;
  return {};
}

// A client transaction we started (INVITE, re-INVITE, UPDATE, OPTIONS, BYE).
struct ClientOrq {
  SofiaClient* client = nullptr;
  CallHandle call = 0;
  nta_outgoing_t* orq = nullptr;
  std::string method;
  bool initial_invite = false;
};

// One call: a dialog-to-be (INVITE) or an out-of-dialog OPTIONS probe.
struct ClientCall {
  SofiaClient* client = nullptr;
  CallHandle id = 0;
  nta_leg_t* leg = nullptr;
  std::string call_id;
  std::string route_url;    // "sip:HOST:PORT;transport=X": next hop of the first request
  std::string request_uri;  // of the initial request; fallback target inside the dialog
  std::string contact;      // our Contact for this call's transport
  std::uint32_t ack_delay_ms = 0;  // early media: the first ACK waits this long
  bool ack_pending = false;        // a delayed ACK is scheduled; 2xx retransmissions wait for it
  bool acked = false;
  std::string ack_content_type;    // delayed offer: the first ACK's answer
  std::string ack_body;
  bool probe = false;       // out-of-dialog OPTIONS: forgotten after its final response
  bool confirmed = false;   // a 2xx to the initial INVITE arrived (dialog exists)
  bool ended = false;       // non-2xx final to the INVITE, or BYE sent
  std::string remote_tag;
  ClientOrq* invite = nullptr;  // initial INVITE while it has no final response
  std::vector<std::unique_ptr<ClientOrq>> orqs;  // in flight; a handful per call at most
};

// A server transaction: a request the gateway sent us inside a dialog.
struct ClientTx {
  SofiaClient* client = nullptr;
  TransactionId id = 0;
  CallHandle call = 0;
  nta_incoming_t* irq = nullptr;
  bool invite = false;
};

namespace {

constexpr unsigned kTcpQueue = 8192;  // messages waiting per TCP connection

std::string first_value(const HeaderList& headers, std::string_view name) {
  for (const auto& [n, v] : headers)
    if (common::iequals(n, name)) return v;
  return {};
}

std::string bracket(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

}  // namespace

struct SofiaClient final : public ClientEndpoint {
  ClientOptions opts_;
  ClientListener* listener = nullptr;  // not owned; outlives the endpoint
  su_home_t home[1] = {};
  std::unique_ptr<detail::SofiaLoop> loop;  // root, post queue, timers; destroyed last
  nta_agent_t* agent = nullptr;
  nta_leg_t* default_leg = nullptr;
  ClientCall default_record;   // magic of the default leg (out-of-dialog requests)
  std::vector<std::string> bound;
  std::string bound_port;
  std::string tls_port;  // the TLS transport's port ("" without TLS)
  std::string tls_dir;   // agent.pem / cafile.pem for sofia's TLS transport

  std::uint64_t next_id = 1;
  std::unordered_map<CallHandle, std::unique_ptr<ClientCall>> calls;
  std::unordered_map<std::string, CallHandle> by_call_id;  // stray 2xx retransmissions
  std::unordered_map<TransactionId, std::unique_ptr<ClientTx>> txs;
  std::mt19937_64 rng{std::random_device{}()};

  std::shared_ptr<spdlog::logger> log = common::logger("sip.client");

  ~SofiaClient() override {
    if (loop) loop->obtain();
    for (auto& [id, tx] : txs)
      if (tx->irq) nta_incoming_destroy(tx->irq);
    txs.clear();
    for (auto& [id, call] : calls) destroy_call_objects(*call);
    calls.clear();
    by_call_id.clear();
    if (default_leg) nta_leg_destroy(default_leg);
    if (agent) nta_agent_destroy(agent);
    su_home_deinit(home);
    if (!tls_dir.empty()) std::filesystem::remove_all(tls_dir);
  }

  // sofia's TLS transport reads its certificate and CAs from one directory
  // with fixed names: agent.pem (private key and certificate) and cafile.pem.
  // A private temporary directory (removed with the client) holds copies.
  common::Status add_tls(const std::string& host) {
    const ClientOptions& o = opts_;
    char dir_template[] = "/tmp/siprec-src-tls-XXXXXX";
    if (mkdtemp(dir_template) == nullptr)
      return common::make_error("sip.client.tls", std::string("mkdtemp: ") + std::strerror(errno));
    tls_dir = dir_template;
    const auto slurp = [](const std::string& path, std::string& out) {
      std::ifstream in(path, std::ios::binary);
      if (!in) return false;
      out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      return true;
    };
    const auto spill = [this](const char* name, const std::string& data) {
      std::ofstream out(tls_dir + "/" + name, std::ios::binary);
      out << data;
      return static_cast<bool>(out);
    };
    std::string key, cert, ca;
    if (!o.tls_cert_file.empty() && !slurp(o.tls_cert_file, cert))
      return common::make_error("sip.client.tls", "--tls-cert: cannot read " + o.tls_cert_file);
    if (!o.tls_key_file.empty() && !slurp(o.tls_key_file, key))
      return common::make_error("sip.client.tls", "--tls-key: cannot read " + o.tls_key_file);
    if (!o.tls_ca_file.empty() && !slurp(o.tls_ca_file, ca))
      return common::make_error("sip.client.tls", "--tls-ca: cannot read " + o.tls_ca_file);
    if ((!cert.empty() && !spill("agent.pem", key + "\n" + cert)) || (!ca.empty() && !spill("cafile.pem", ca)))
      return common::make_error("sip.client.tls", "cannot write " + tls_dir);
    std::string url = "sips:" + host + ":0";
    if (nta_agent_add_tport(agent, URL_STRING_MAKE(url.c_str()), TPTAG_CERTIFICATE(tls_dir.c_str()),
                            TPTAG_TLS_VERIFY_POLICY(ca.empty() ? TPTLS_VERIFY_NONE : TPTLS_VERIFY_OUT),
                            TPTAG_QUEUESIZE(kTcpQueue), TAG_END()) < 0)
      return common::make_error("sip.client.tls", "cannot create the TLS transport on " + host +
                                                      " (certificate, key or CA file unusable?)");
    for (tport_t* tp = tport_primaries(nta_agent_tports(agent)); tp; tp = tport_next(tp)) {
      tp_name_t const* tpn = tport_name(tp);
      if (tpn && tpn->tpn_proto && std::strcmp(tpn->tpn_proto, "tls") == 0 && tpn->tpn_port) {
        tls_port = tpn->tpn_port;
        bound.push_back("tls:" + host + ":" + tls_port);
      }
    }
    return common::Ok{};
  }

  // --- bookkeeping ----------------------------------------------------------
  ClientCall* find_call(CallHandle id) {
    auto it = calls.find(id);
    return it == calls.end() ? nullptr : it->second.get();
  }

  static void destroy_call_objects(ClientCall& call) {
    for (auto& o : call.orqs)
      if (o->orq) nta_outgoing_destroy(o->orq);
    call.orqs.clear();
    call.invite = nullptr;
    if (call.leg) nta_leg_destroy(call.leg);
    call.leg = nullptr;
  }

  // Destroys the client transaction and forgets its record.
  static void drop_orq(ClientCall& call, ClientOrq* o) {
    if (call.invite == o) call.invite = nullptr;
    for (auto it = call.orqs.begin(); it != call.orqs.end(); ++it) {
      if (it->get() != o) continue;
      if (o->orq) nta_outgoing_destroy(o->orq);
      call.orqs.erase(it);
      return;
    }
  }

  std::string new_call_id() {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%016llx%08llx", static_cast<unsigned long long>(rng()),
                  static_cast<unsigned long long>(next_id));
    return std::string(buf) + "@" + bracket(opts_.bind_address);
  }

  std::string contact_for(const std::string& transport) const {
    std::string user = opts_.contact_user.empty() ? "" : opts_.contact_user + "@";
    // RFC 7866 §6.1.1: the SRC marks its Contact with the +sip.src feature tag.
    // RFC 5630 §3.1.3: a dialog over TLS gets a sips: Contact.
    if (transport == "tls")
      return "<sips:" + user + bracket(opts_.bind_address) + ":" + tls_port + ">;+sip.src";
    return "<sip:" + user + bracket(opts_.bind_address) + ":" + bound_port +
           ";transport=" + transport + ">;+sip.src";
  }

  // Reports a failure that never reached the wire, from the event loop (not
  // from inside the caller's invite()/options() call).
  void fail_later(CallHandle id, const std::string& method, int status, const std::string& reason) {
    after(0, [this, id, method, status, reason] {
      if (calls.find(id) == calls.end()) return;
      ClientResponse r;
      r.status = status;
      r.reason = reason;
      r.local = true;
      if (ClientCall* c = find_call(id); c && c->probe) forget(id);
      listener->on_response(id, method, r);
    });
  }

  void forget(CallHandle id) {
    auto it = calls.find(id);
    if (it == calls.end()) return;
    destroy_call_objects(*it->second);
    auto cid = by_call_id.find(it->second->call_id);
    if (cid != by_call_id.end() && cid->second == id) by_call_id.erase(cid);
    calls.erase(it);
  }

  // --- conversions ----------------------------------------------------------
  static ClientResponse to_response(sip_t const* sip, int status) {
    ClientResponse r;
    r.status = status;
    if (sip == nullptr) {
      r.local = true;
      r.reason = status == 408 ? "Request Timeout" : "Local failure";
      return r;
    }
    r.local = nta_sip_is_internal(sip) != 0;
    if (sip->sip_status && sip->sip_status->st_phrase) r.reason = sip->sip_status->st_phrase;
    r.headers = detail::collect_headers(reinterpret_cast<msg_header_t const*>(sip->sip_status));
    r.content_type = first_value(r.headers, "Content-Type");
    if (sip->sip_payload && sip->sip_payload->pl_data)
      r.body.assign(sip->sip_payload->pl_data, sip->sip_payload->pl_len);
    return r;
  }

  Request to_request(nta_incoming_t* irq, sip_t const* sip) {
    Request r = detail::request_from_sip(sip);
    msg_t* msg = nta_incoming_getrequest(irq);
    if (tport_t* tp = nta_incoming_transport(agent, irq, msg)) {
      if (tp_name_t const* tpn = tport_name(tp)) {
        if (tpn->tpn_proto) r.transport = tpn->tpn_proto;
        if (tpn->tpn_host) r.local_host = tpn->tpn_host;
        if (tpn->tpn_port) r.local_port = tpn->tpn_port;
      }
      tport_unref(tp);
    }
    if (msg) msg_destroy(msg);
    return r;
  }

  // --- sending --------------------------------------------------------------
  // Creates and sends a request in `call` through its leg. route_url may be
  // empty (in-dialog: the leg's route set and remote target decide).
  ClientOrq* send_request(ClientCall& call, sip_method_t method, const char* method_name,
                          const std::string& route_url, const std::string& request_uri,
                          const HeaderList& headers, const std::string& content_type,
                          const std::string& body, bool with_contact) {
    auto rec = std::make_unique<ClientOrq>();
    rec->client = this;
    rec->call = call.id;
    rec->method = method_name;
    ClientOrq* o = rec.get();
    call.orqs.push_back(std::move(rec));

    std::string extra = detail::build_headers(headers);
    sip_payload_t* pl = nullptr;
    if (!content_type.empty()) pl = sip_payload_create(home, body.data(), static_cast<isize_t>(body.size()));
    url_string_t const* route = route_url.empty() ? nullptr : URL_STRING_MAKE(route_url.c_str());
    url_string_t const* ruri = request_uri.empty() ? nullptr : URL_STRING_MAKE(request_uri.c_str());
    nta_outgoing_t* orq = nta_outgoing_tcreate(
        call.leg, &SofiaClient::on_orq_response, o, route, method, method_name, ruri,
        TAG_IF(with_contact, SIPTAG_CONTACT_STR(call.contact.c_str())),
        SIPTAG_USER_AGENT_STR(opts_.user_agent.c_str()),
        TAG_IF(!extra.empty(), SIPTAG_HEADER_STR(extra.c_str())),
        TAG_IF(pl != nullptr, SIPTAG_CONTENT_TYPE_STR(content_type.c_str())),
        TAG_IF(pl != nullptr, SIPTAG_PAYLOAD(pl)), TAG_END());
    if (pl) su_free(home, pl);
    if (orq == nullptr) {
      drop_orq(call, o);
      return nullptr;
    }
    o->orq = orq;
    return o;
  }

  // ACK for a 2xx (RFC 3261 §13.2.2.4): a new transaction inside the dialog
  // with the INVITE's CSeq number. NTATAG_ACK_BRANCH files the ACK under the
  // INVITE's branch, so nta answers retransmitted 2xx by resending this ACK.
  void send_ack(ClientCall& call, sip_t const* sip) {
    if (call.leg == nullptr || sip->sip_cseq == nullptr) return;
    std::string branch;
    if (sip->sip_via && sip->sip_via->v_branch) branch = std::string("branch=") + sip->sip_via->v_branch;
    std::uint32_t cseq = sip->sip_cseq->cs_seq;
    if (call.ack_pending) return;  // the delayed ACK answers this retransmission too
    if (!call.acked && call.ack_delay_ms > 0) {
      call.ack_pending = true;
      CallHandle id = call.id;
      after(call.ack_delay_ms, [this, id, cseq, branch] {
        ClientCall* c = find_call(id);
        if (c == nullptr) return;
        c->ack_pending = false;
        send_ack_now(*c, cseq, branch);
      });
      return;
    }
    send_ack_now(call, cseq, branch);
  }

  void send_ack_now(ClientCall& call, std::uint32_t cseq, const std::string& branch) {
    if (call.leg == nullptr) return;
    // The answer to a delayed offer goes in the ACK of the initial 2xx only.
    const bool answer = !call.acked && !call.ack_content_type.empty();
    call.acked = true;
    std::string route = dialog_route(call);
    std::string cseq_text = std::to_string(cseq) + " ACK";
    nta_outgoing_t* ack = nta_outgoing_tcreate(
        call.leg, nullptr, nullptr, route.empty() ? nullptr : URL_STRING_MAKE(route.c_str()),
        SIP_METHOD_ACK, nullptr, SIPTAG_CSEQ_STR(cseq_text.c_str()),
        TAG_IF(!branch.empty(), NTATAG_ACK_BRANCH(branch.c_str())),
        TAG_IF(answer, SIPTAG_CONTENT_TYPE_STR(call.ack_content_type.c_str())),
        TAG_IF(answer, SIPTAG_PAYLOAD_STR(call.ack_body.c_str())), TAG_END());
    if (ack == nullptr) {
      log->warn("call {}: cannot send ACK", call.call_id);
      return;
    }
    nta_outgoing_destroy(ack);  // nta keeps it around to catch 2xx retransmissions
  }

  // In-dialog requests follow the route set and remote target (RFC 3261
  // §12.2.1.1). Only when the 2xx gave neither do we fall back to the target
  // the INVITE went to.
  static std::string dialog_route(ClientCall& call) {
    sip_route_t const* route = nullptr;
    sip_contact_t const* target = nullptr;
    nta_leg_get_route(call.leg, &route, &target);
    if (route != nullptr || target != nullptr) return {};
    return call.route_url;
  }

  bool in_dialog(CallHandle id, sip_method_t method, const char* name, const HeaderList& headers,
                 const std::string& content_type, const std::string& body, bool with_contact) {
    ClientCall* call = find_call(id);
    if (call == nullptr || !call->confirmed || call->ended || call->leg == nullptr) return false;
    if (method == sip_method_invite) {
      // RFC 3261 §14.1: no re-INVITE while another INVITE transaction is pending.
      for (const auto& o : call->orqs)
        if (o->method == "INVITE") return false;
    }
    std::string route = dialog_route(*call);
    std::string ruri;
    sip_route_t const* r = nullptr;
    sip_contact_t const* target = nullptr;
    nta_leg_get_route(call->leg, &r, &target);
    if (target == nullptr) ruri = call->request_uri;
    ClientOrq* o =
        send_request(*call, method, name, route, ruri, headers, content_type, body, with_contact);
    if (o == nullptr) {
      log->warn("call {}: cannot send {}", call->call_id, name);
      return false;
    }
    if (method == sip_method_bye) call->ended = true;
    return true;
  }

  // --- sofia callbacks ------------------------------------------------------
  static int on_orq_response(ClientOrq* o, nta_outgoing_t* orq, sip_t const* sip) {
    SofiaClient* self = o->client;
    ClientCall* call = self->find_call(o->call);
    if (call == nullptr) return 0;  // cannot happen: release() destroys orqs first
    int status = sip && sip->sip_status ? sip->sip_status->st_status : nta_outgoing_status(orq);
    ClientResponse resp = to_response(sip, status);
    CallHandle id = call->id;
    std::string method = o->method;
    bool is_invite = method == "INVITE";

    if (status >= 200 && status < 300 && is_invite && !resp.local && sip != nullptr) {
      char const* tag = sip->sip_to ? sip->sip_to->a_tag : nullptr;
      if (o->initial_invite && call->confirmed && tag && call->remote_tag != tag) {
        // RFC 3261 §13.2.2.4: a 2xx from a second fork; ACK and BYE it, keep the first.
        msg_t* m = nta_outgoing_getresponse(orq);
        if (m && nta_msg_ackbye(self->agent, m) < 0) msg_destroy(m);
        return 0;
      }
      if (o->initial_invite && !call->confirmed) {
        if (tag) {
          nta_leg_rtag(call->leg, tag);
          call->remote_tag = tag;
        }
        // RFC 3261 §12.1.2: route set from Record-Route (reversed), target from Contact.
        nta_leg_client_reroute(call->leg, sip->sip_record_route, sip->sip_contact, 1);
        call->confirmed = true;
      } else if (sip->sip_contact) {
        nta_leg_client_reroute(call->leg, nullptr, sip->sip_contact, 0);  // target refresh
      }
      self->send_ack(*call, sip);
    }

    if (status >= 200) {
      if (o->initial_invite && status >= 300) call->ended = true;
      drop_orq(*call, o);  // o is gone from here on
      if (call->probe) self->forget(id);
    }
    self->listener->on_response(id, method, resp);
    return 0;
  }

  // 2xx retransmissions that no transaction claimed (nta passes them here).
  static int on_stray(SofiaClient* self, nta_agent_t* agent, msg_t* msg, sip_t* sip) {
    if (sip && sip->sip_status && sip->sip_cseq && sip->sip_call_id &&
        sip->sip_cseq->cs_method == sip_method_invite && sip->sip_status->st_status >= 200 &&
        sip->sip_status->st_status < 300) {
      auto it = self->by_call_id.find(sip->sip_call_id->i_id ? sip->sip_call_id->i_id : "");
      ClientCall* call = it == self->by_call_id.end() ? nullptr : self->find_call(it->second);
      char const* tag = sip->sip_to ? sip->sip_to->a_tag : nullptr;
      if (call && call->confirmed && call->leg && tag && call->remote_tag == tag) {
        self->send_ack(*call, sip);  // RFC 3261 §13.2.2.4: every 2xx retransmission is ACKed
        msg_destroy(msg);
        return 0;
      }
      // Not a dialog of ours (released call): what nta does by default.
      if (nta_msg_ackbye(agent, msg) >= 0) return 0;
    }
    msg_destroy(msg);
    return 0;
  }

  static int on_default_request(ClientCall* /*d*/, nta_leg_t* /*leg*/, nta_incoming_t* /*irq*/,
                                sip_t const* sip) {
    if (sip == nullptr || sip->sip_request == nullptr) return 500;
    auto m = sip->sip_request->rq_method;
    if (m == sip_method_ack) return 0;
    if (m == sip_method_options) return 200;
    // RFC 3261 §12.2.2: a request for a dialog we do not (or no longer) have.
    if (sip->sip_to && sip->sip_to->a_tag) return 481;
    return 501;
  }

  static int on_leg_request(ClientCall* call, nta_leg_t* /*leg*/, nta_incoming_t* irq,
                            sip_t const* sip) {
    SofiaClient* self = call->client;
    if (sip == nullptr || sip->sip_request == nullptr) return 500;
    auto method = sip->sip_request->rq_method;
    if (method == sip_method_ack) return 0;     // ACK for a 2xx we sent to a re-INVITE
    if (method == sip_method_cancel) return 481;  // no INVITE of theirs pending here
    auto tx = std::make_unique<ClientTx>();
    tx->client = self;
    tx->id = self->next_id++;
    tx->call = call->id;
    tx->irq = irq;
    tx->invite = method == sip_method_invite;
    ClientTx* p = tx.get();
    self->txs.emplace(p->id, std::move(tx));
    if (p->invite) nta_incoming_bind(irq, &SofiaClient::on_ack_cancel, p);
    Request req = self->to_request(irq, sip);
    self->listener->on_request(call->id, p->id, req);
    return 0;
  }

  static int on_ack_cancel(ClientTx* tx, nta_incoming_t* irq, sip_t const* sip) {
    SofiaClient* self = tx->client;
    bool cancelled = sip && sip->sip_request && sip->sip_request->rq_method == sip_method_cancel;
    if (cancelled && nta_incoming_status(irq) < 200)
      nta_incoming_treply(irq, SIP_487_REQUEST_TERMINATED, TAG_END());
    self->drop_tx(tx->id);
    return 0;
  }

  void drop_tx(TransactionId id) {
    auto it = txs.find(id);
    if (it == txs.end()) return;
    if (it->second->irq) nta_incoming_destroy(it->second->irq);
    txs.erase(it);
  }

  // --- ClientEndpoint -------------------------------------------------------
  CallHandle invite(const Target& target, const OutgoingRequest& request) override {
    return start_call(target, request, false);
  }

  CallHandle options(const Target& target, const std::string& request_uri) override {
    OutgoingRequest req;
    req.request_uri = request_uri;
    req.from = "<sip:" + (opts_.contact_user.empty() ? "" : opts_.contact_user + "@") +
               bracket(opts_.bind_address) + ">";
    req.to = "<" + request_uri + ">";
    return start_call(target, req, true);
  }

  CallHandle start_call(const Target& target, const OutgoingRequest& request, bool probe) {
    const char* method = probe ? "OPTIONS" : "INVITE";
    auto call = std::make_unique<ClientCall>();
    call->client = this;
    call->id = next_id++;
    call->probe = probe;
    call->call_id = request.call_id.empty() ? new_call_id() : request.call_id;
    call->request_uri = request.request_uri;
    call->ack_delay_ms = request.ack_delay_ms;
    call->ack_content_type = request.ack_content_type;
    call->ack_body = request.ack_body;
    CallHandle id = call->id;
    ClientCall* c = call.get();
    calls.emplace(id, std::move(call));
    by_call_id[c->call_id] = id;

    if (target.transport != "udp" && target.transport != "tcp" &&
        !(target.transport == "tls" && !tls_port.empty())) {
      c->ended = true;
      fail_later(id, method, 503, "Unsupported transport " + target.transport);
      return id;
    }
    c->route_url = "sip:" + bracket(target.host) + ":" + std::to_string(target.port) +
                   ";transport=" + target.transport;
    c->contact = contact_for(target.transport);
    c->leg = nta_leg_tcreate(agent, &SofiaClient::on_leg_request, c,
                             SIPTAG_CALL_ID_STR(c->call_id.c_str()),
                             SIPTAG_FROM_STR(request.from.c_str()),
                             SIPTAG_TO_STR(request.to.c_str()), TAG_END());
    if (c->leg == nullptr) {
      c->ended = true;
      fail_later(id, method, 500, "Cannot create dialog (bad From/To?)");
      return id;
    }
    if (nta_leg_get_tag(c->leg) == nullptr) nta_leg_tag(c->leg, nullptr);
    ClientOrq* o = send_request(*c, probe ? sip_method_options : sip_method_invite, method,
                                c->route_url, request.request_uri, request.headers,
                                request.content_type, request.body, !probe);
    if (o == nullptr) {
      c->ended = true;
      fail_later(id, method, 500, "Cannot create request (bad Request-URI or header?)");
      return id;
    }
    if (!probe) {
      o->initial_invite = true;
      c->invite = o;
    }
    return id;
  }

  bool reinvite(CallHandle call, const HeaderList& headers, const std::string& content_type,
                const std::string& body) override {
    return in_dialog(call, SIP_METHOD_INVITE, headers, content_type, body, true);
  }

  bool update(CallHandle call, const HeaderList& headers, const std::string& content_type,
              const std::string& body) override {
    return in_dialog(call, SIP_METHOD_UPDATE, headers, content_type, body, true);
  }

  bool options_in_dialog(CallHandle call) override {
    return in_dialog(call, SIP_METHOD_OPTIONS, {}, {}, {}, false);
  }

  bool bye(CallHandle call) override { return in_dialog(call, SIP_METHOD_BYE, {}, {}, {}, false); }

  bool cancel(CallHandle id) override {
    ClientCall* call = find_call(id);
    if (call == nullptr || call->invite == nullptr || call->invite->orq == nullptr) return false;
    if (nta_outgoing_status(call->invite->orq) >= 200) return false;
    // RFC 3261 §9.1: nta holds the CANCEL back until a provisional response
    // arrived; the INVITE then ends with 487 (or 408 if nothing ever came).
    nta_outgoing_t* c = nta_outgoing_tcancel(call->invite->orq, nullptr, nullptr, TAG_END());
    return c != nullptr || nta_outgoing_status(call->invite->orq) >= 200;
  }

  void reply(TransactionId tx_id, const Response& r) override {
    auto it = txs.find(tx_id);
    if (it == txs.end() || it->second->irq == nullptr) return;
    ClientTx* tx = it->second.get();
    std::string extra = detail::build_headers(r.headers);
    const char* reason = r.reason.empty() ? nullptr : r.reason.c_str();
    sip_payload_t* pl = nullptr;
    if (!r.content_type.empty())
      pl = sip_payload_create(home, r.body.data(), static_cast<isize_t>(r.body.size()));
    bool with_contact = tx->invite && r.status >= 200 && r.status < 300;
    ClientCall* call = find_call(tx->call);
    nta_incoming_treply(tx->irq, r.status, reason,
                        TAG_IF(with_contact && call, SIPTAG_CONTACT_STR(call ? call->contact.c_str() : "")),
                        TAG_IF(!extra.empty(), SIPTAG_HEADER_STR(extra.c_str())),
                        TAG_IF(pl != nullptr, SIPTAG_CONTENT_TYPE_STR(r.content_type.c_str())),
                        TAG_IF(pl != nullptr, SIPTAG_PAYLOAD(pl)), TAG_END());
    if (pl) su_free(home, pl);
    // A 2xx to an INVITE waits for its ACK (on_ack_cancel); anything else is
    // done: nta absorbs retransmissions on its own.
    if (r.status >= 200 && !(tx->invite && r.status < 300)) drop_tx(tx_id);
  }

  void release(CallHandle call) override { forget(call); }

  std::string call_id(CallHandle call) const override {
    auto it = calls.find(call);
    return it == calls.end() ? std::string() : it->second->call_id;
  }

  std::vector<std::string> bound_addresses() const override { return bound; }

  void run() override { loop->run(); }
  void stop() override { loop->stop(); }
  bool post(std::function<void()> fn) override { return loop->post(std::move(fn)); }
  void after(std::uint32_t delay_ms, std::function<void()> fn) override {
    loop->after(delay_ms, std::move(fn));
  }
};

common::Result<std::unique_ptr<ClientEndpoint>> ClientEndpoint::create(const ClientOptions& options,
                                                                       ClientListener* listener) {
  if (listener == nullptr) return common::make_error("sip.client", "no listener");
  auto loop = detail::SofiaLoop::create("sip.client");
  if (!loop) return loop.error();
  su_log_set_level(nullptr, 0);
  su_log_set_level(tport_log, 0);
  su_log_set_level(nta_log, 0);
  auto ep = std::make_unique<SofiaClient>();
  ep->opts_ = options;
  ep->listener = listener;
  ep->loop = std::move(loop).value();
  su_home_init(ep->home);

  // UDP first (port 0: the kernel picks), then TCP on the same port so one
  // Contact port serves both. (sofia 1.12's "transport=udp,tcp" list form
  // does the same but corrupts its state on the second agent in a process.)
  std::string host = bracket(options.bind_address);
  std::string failure;
  for (int attempt = 0; attempt < 20 && ep->bound_port.empty(); ++attempt) {
    if (ep->agent) nta_agent_destroy(ep->agent);
    ep->agent = nta_agent_create(
        ep->loop->root(), reinterpret_cast<url_string_t const*>(-1), &SofiaClient::on_stray, ep.get(),
        NTATAG_UA(1), NTATAG_MERGE_482(0), NTATAG_MAXSIZE(options.max_message_bytes),
        // SIPREC metadata makes INVITEs of 10-60 KB; keep them on UDP (up to
        // 64 KB datagrams) instead of RFC 3261 §18.1.1's switch to TCP.
        NTATAG_UDP_MTU(65535), NTATAG_RPORT(1),
        TAG_IF(options.transaction_timeout_ms > 0,
               NTATAG_SIP_T1X64(options.transaction_timeout_ms)),
        TAG_END());
    if (ep->agent == nullptr) return common::make_error("sip.client", "nta_agent_create failed");
    std::string udp = "sip:" + host + ":" + std::to_string(options.bind_port) + ";transport=udp";
    // A load run gets 1000s of responses a second: a large receive buffer
    // (capped by net.core.rmem_max) rides out a busy moment of the SIP thread.
    if (nta_agent_add_tport(ep->agent, URL_STRING_MAKE(udp.c_str()), TPTAG_MTU(usize_t{65535}),
                            TPTAG_UDP_RMEM(usize_t{4} * 1024 * 1024), TAG_END()) < 0) {
      failure = "udp:" + host + ":" + std::to_string(options.bind_port) + ": " + std::strerror(errno);
      break;
    }
    tport_t* primary = tport_primaries(nta_agent_tports(ep->agent));
    tp_name_t const* tpn = primary ? tport_name(primary) : nullptr;
    if (tpn == nullptr || tpn->tpn_port == nullptr) {
      failure = "udp: no bound port";
      break;
    }
    std::string port = tpn->tpn_port;
    std::string tcp = "sip:" + host + ":" + port + ";transport=tcp";
    // A burst of calls queues its requests while the TCP connection is still
    // being set up; sofia's default queue (64) turns the rest into local 503s.
    if (nta_agent_add_tport(ep->agent, URL_STRING_MAKE(tcp.c_str()),
                            TPTAG_QUEUESIZE(kTcpQueue), TAG_END()) < 0) {
      failure = "tcp:" + host + ":" + port + ": " + std::strerror(errno);
      if (options.bind_port != 0) break;
      continue;  // the kernel's UDP port is taken for TCP: try another one
    }
    ep->bound_port = port;
    ep->bound = {"udp:" + host + ":" + port, "tcp:" + host + ":" + port};
  }
  if (ep->bound_port.empty())
    return common::make_error("sip.client.listen", "cannot bind " + failure);
  if (options.tls)
    if (auto st = ep->add_tls(host); !st) return st.error();

  ep->default_record.client = ep.get();
  ep->default_leg = nta_leg_tcreate(ep->agent, &SofiaClient::on_default_request,
                                    &ep->default_record, NTATAG_NO_DIALOG(1), TAG_END());
  if (ep->default_leg == nullptr) return common::make_error("sip.client", "default leg failed");
  ep->loop->release();
  return std::unique_ptr<ClientEndpoint>(std::move(ep));
}

}  // namespace sgw::sip
